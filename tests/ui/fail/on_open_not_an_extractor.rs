use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

struct NotAnExtractor;

#[server_endpoint("/chat")]
impl Chat {
    #[on_open]
    fn open(&mut self, thing: NotAnExtractor) {
        let _ = thing;
    }
}

fn main() {}
