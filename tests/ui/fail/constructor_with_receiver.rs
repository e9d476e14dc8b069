use ws_endpoint::prelude::*;

struct Chat {
    room: String,
}

#[server_endpoint("/chat/{room}")]
impl Chat {
    #[on_open]
    fn open(&mut self, #[path_param] room: String) -> Self {
        Chat { room }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        format!("{}: {msg}", self.room)
    }
}

fn main() {}
