use ws_endpoint::prelude::*;

#[server_endpoint("/chat/{room}")]
struct Chat {
    room: String,
}

impl Chat {
    #[on_open]
    fn open(#[path_param] room: String) -> Self {
        Chat { room }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        format!("{}: {msg}", self.room)
    }
}

fn main() {}
