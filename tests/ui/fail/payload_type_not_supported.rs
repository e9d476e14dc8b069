use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat")]
impl Chat {
    #[on_message]
    fn number(&mut self, n: u32) {
        let _ = n;
    }
}

fn main() {}
