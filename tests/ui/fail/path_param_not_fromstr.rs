use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

struct Room;

#[server_endpoint("/chat/{room}")]
impl Chat {
    #[on_open]
    fn open(&mut self, #[path_param] room: Room) {
        let _ = room;
    }
}

fn main() {}
