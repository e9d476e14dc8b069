use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat")]
impl Chat {
    #[on_message]
    fn text(&mut self, msg: String) {
        let _ = msg;
    }

    #[on_message]
    fn json(&mut self, msg: Json<serde_json::Value>) {
        let _ = msg;
    }
}

fn main() {}
