use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat/{room}")]
impl Chat {
    #[on_open]
    async fn open(&mut self, session: &Session, room: String) {
        let _ = (session, room);
    }
}

fn main() {}
