use ws_endpoint::prelude::*;

struct Chat;

#[server_endpoint("/chat")]
impl Chat {
    #[on_open]
    fn open(session: &Session) -> Option<Self> {
        let _ = session;
        Some(Chat)
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

fn main() {}
