use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat/{room")]
impl Chat {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

fn main() {
    let _ = App::new().service(Chat::endpoint());
}
