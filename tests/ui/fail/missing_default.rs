use ws_endpoint::prelude::*;

struct Chat {
    _nick: String,
}

#[server_endpoint("/chat")]
impl Chat {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

fn main() {}
