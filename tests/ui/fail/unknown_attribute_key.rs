use ws_endpoint::prelude::*;

#[derive(Default)]
struct Echo;

#[server_endpoint("/echo", max_mesage_size = 1024)]
impl Echo {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

fn main() {
    let _ = App::new().service(Echo::endpoint());
}
