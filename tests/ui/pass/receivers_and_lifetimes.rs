//! Receivers written out (`self: &mut Self`), named lifetimes, no receiver, `Session` by value.
use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat/{room}", send_timeout = "2s")]
impl Chat {
    #[on_open]
    async fn open<'a>(self: &mut Self, session: &'a Session, #[path_param("room")] r: String) {
        let _ = (session, r);
    }

    #[on_message]
    fn text(self: &Self, session: Session, msg: String) -> Option<String> {
        let _ = session;
        Some(msg)
    }

    #[on_close]
    fn close(reason: CloseReason) {
        let _ = reason;
    }
}

fn main() {
    let _ = App::new().service(Chat::endpoint());
}
