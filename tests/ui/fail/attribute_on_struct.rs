use ws_endpoint::prelude::*;

#[derive(Default)]
#[server_endpoint("/chat")]
struct Chat;

impl Chat {
    #[on_open]
    async fn open(&mut self, session: &Session) {
        let _ = session;
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

fn main() {}
