//! What the parameter classification must not get wrong: `&HttpRequest` in `on_handshake`,
//! another crate's `Session` (actix-session) in `on_handshake`, an imported `Path<T>` named like
//! a template parameter, a `CloseReason` named like one.
use actix_web::web::Path;
use ws_endpoint::prelude::*;

struct Room {
    name: String,
}

#[server_endpoint("/room/{room}/{reason}")]
impl Room {
    #[on_handshake]
    fn handshake(req: &HttpRequest, http: actix_session::Session, hs: &mut Handshake) {
        let _ = (req.path(), http.get::<String>("user"));
        hs.set_property(1u32);
    }

    #[on_open]
    fn open(room: Path<(String, String)>) -> Self {
        Room { name: room.into_inner().0 }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        format!("{}: {msg}", self.name)
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        let _ = reason;
    }
}

fn main() {
    let _ = actix_web::App::new().service(Room::endpoint());
}
