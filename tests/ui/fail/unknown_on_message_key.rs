use ws_endpoint::prelude::*;

#[derive(Default)]
struct Echo;

#[server_endpoint("/echo")]
impl Echo {
    #[on_message(max_size = 1024)]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

fn main() {}
