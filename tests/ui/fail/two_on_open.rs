use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat")]
impl Chat {
    #[on_open]
    fn open(&mut self) {}

    #[on_open]
    fn open_again(&mut self) {}
}

fn main() {}
