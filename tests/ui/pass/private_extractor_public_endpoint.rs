//! A private extractor type on a public endpoint compiles (no "private type in public
//! interface"), and a private path parameter type too.
use std::future::{ready, Ready};

use ws_endpoint::prelude::*;

struct Token(String);

impl actix_web::FromRequest for Token {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(
            req.headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(|t| Token(t.to_owned()))
                .ok_or_else(|| actix_web::error::ErrorUnauthorized("no token")),
        )
    }
}

#[derive(Clone)]
struct RoomId(u32);

impl std::str::FromStr for RoomId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(RoomId)
    }
}

pub struct Api {
    token: String,
    room: u32,
}

#[server_endpoint("/api/{room}")]
impl Api {
    #[on_open]
    fn open(token: Token, #[path_param] room: RoomId) -> Self {
        Api { token: token.0, room: room.0 }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        format!("{} {} {msg}", self.token, self.room)
    }
}

fn main() {
    let _ = actix_web::App::new().service(Api::endpoint());
}
