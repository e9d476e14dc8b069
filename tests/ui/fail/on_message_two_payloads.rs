use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat")]
impl Chat {
    #[on_message]
    fn text(&mut self, msg: String, more: Bytes) {
        let _ = (msg, more);
    }
}

fn main() {}
