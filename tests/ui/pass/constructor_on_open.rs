//! Constructor-style `on_open`: no receiver, returns `Self` (or `Result<Self, E>`); the type
//! needs no `Default`; extractors, path parameters and the session in any order.
use ws_endpoint::prelude::*;

struct Rooms;

struct Chat {
    room: String,
    rooms: web::Data<Rooms>,
}

#[server_endpoint("/chat/{room}")]
impl Chat {
    #[on_open]
    async fn open(session: &Session, #[path_param] room: String, rooms: web::Data<Rooms>) -> Self {
        session.join(&room);
        Chat { room, rooms }
    }

    #[on_message]
    fn text(&mut self, msg: String, #[path_param] room: String) -> String {
        let _ = &self.rooms;
        format!("{}/{room}: {msg}", self.room)
    }
}

struct Fallible {
    n: u32,
}

#[server_endpoint("/n/{n}")]
impl Fallible {
    #[on_open]
    fn open(#[path_param] n: u32) -> Result<Fallible, std::io::Error> {
        if n == 0 {
            return Err(std::io::Error::other("zero"));
        }
        Ok(Fallible { n })
    }

    #[on_message]
    fn text(&mut self, _msg: String) -> String {
        self.n.to_string()
    }
}

fn main() {
    let _ = actix_web::App::new()
        .app_data(web::Data::new(Rooms))
        .service(Chat::endpoint())
        .service(Fallible::endpoint());
}
