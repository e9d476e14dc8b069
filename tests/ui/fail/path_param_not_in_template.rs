use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat/{room}")]
impl Chat {
    #[on_open]
    fn open(&mut self, #[path_param] rooom: String) {
        let _ = rooom;
    }
}

fn main() {}
