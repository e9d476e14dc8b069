use ws_endpoint::prelude::*;

#[derive(Default)]
struct Feed;

#[server_endpoint("/feed")]
impl Feed {
    #[on_handshake]
    fn handshake(session: &Session, hs: &mut Handshake) {
        let _ = (session, hs);
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

fn main() {}
