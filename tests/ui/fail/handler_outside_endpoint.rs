use ws_endpoint::prelude::*;

struct Chat;

impl Chat {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

fn main() {}
