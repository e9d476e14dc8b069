use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat/{room}")]
impl Chat {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    // Forgot #[on_close]:
    fn close(&mut self, #[path_param] room: String) {
        let _ = room;
    }
}

fn main() {}
