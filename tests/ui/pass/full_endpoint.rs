//! Every handler kind and parameter kind, sync and async, in any order.
use serde::{Deserialize, Serialize};
use ws_endpoint::prelude::*;

#[derive(Deserialize)]
struct Cmd {
    text: String,
}

#[derive(Serialize)]
struct Reply {
    len: usize,
}

#[derive(Deserialize)]
struct Params {
    nick: Option<String>,
}

struct Rooms;

#[derive(Debug)]
struct MyError;

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}

impl std::error::Error for MyError {}

#[derive(Default)]
struct Chat {
    nick: Option<String>,
}

#[server_endpoint(
    "/chat/{room}/{id:\\d+}",
    max_message_size = 65536,
    subprotocols = ["chat.v2", "chat.v1"],
    allowed_origins = ["https://app.example"],
    idle_timeout = "5m",
    ping_interval = "20s",
    pong_timeout = 10
)]
impl Chat {
    #[on_open]
    async fn open(
        &mut self,
        query: web::Query<Params>,
        session: &Session,
        #[path_param] room: String,
        _rooms: web::Data<Rooms>,
        #[path_param("id")] number: u64,
        _req: HttpRequest,
    ) -> Result<(), MyError> {
        self.nick = query.into_inner().nick;
        let _ = (session.id(), room, number);
        Ok(())
    }

    #[on_message]
    async fn text(&mut self, session: &Session, msg: Json<Cmd>) -> Option<Json<Reply>> {
        let _ = session;
        Some(Json(Reply {
            len: msg.text.len(),
        }))
    }

    #[on_message(max_message_size = "1MiB")]
    fn bytes(&mut self, data: Bytes, #[path_param] room: String) -> Result<Bytes, MyError> {
        let _ = room;
        Ok(data)
    }

    #[on_message]
    fn pong(&self, _pong: Pong) {}

    #[on_close]
    async fn close(&mut self, reason: CloseReason, session: Session) {
        let _ = (reason, session);
    }

    #[on_error]
    fn error(session: &Session, err: EndpointError) -> String {
        let _ = session;
        err.to_string()
    }

    /// Not a handler: left alone.
    fn helper(&self) -> usize {
        self.nick.as_ref().map_or(0, String::len)
    }
}

#[derive(Default)]
struct Minimal;

#[server_endpoint("/minimal")]
impl Minimal {}

fn main() {
    let service = Chat::endpoint().max_message_size(1024);
    assert_eq!(service.config().max_text_message_size, 1024);
    assert_eq!(service.config().subprotocols, ["chat.v2", "chat.v1"]);
    let _ = App::new().service(service).service(Minimal::endpoint());
    let _ = Chat::default().helper();
}
