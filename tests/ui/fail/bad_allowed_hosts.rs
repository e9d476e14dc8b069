use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat", allowed_hosts = ["app.example", "https://app.example/"])]
impl Chat {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

fn main() {}
