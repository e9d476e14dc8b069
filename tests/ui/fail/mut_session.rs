use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat")]
impl Chat {
    #[on_message]
    fn text(&mut self, session: &mut Session, msg: String) {
        let _ = (session, msg);
    }
}

fn main() {}
