use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat")]
impl Chat {
    #[on_close]
    fn close(&mut self, code: u16) {
        let _ = code;
    }
}

fn main() {}
