use serde::Deserialize;
use ws_endpoint::{prelude::*, BinaryStream};

#[derive(Deserialize)]
struct Cmd {}

#[derive(Default)]
struct Parts;

#[server_endpoint("/parts")]
impl Parts {
    // parts are String or Bytes, not Json<T>
    #[on_message]
    fn json(&mut self, _cmd: Json<Cmd>, _last: bool) {}

    // a stream has no `last`
    #[on_message]
    async fn stream(&mut self, _data: BinaryStream, _last: bool) {}
}

#[derive(Default)]
struct Twice;

#[server_endpoint("/twice")]
impl Twice {
    #[on_message]
    fn text(&mut self, _part: String, _last: bool, _again: bool) {}
}

fn main() {}
