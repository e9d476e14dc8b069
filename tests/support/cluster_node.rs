//! A server process for the cross-process tests (`tests/cluster.rs`): the chat example's app plus
//! a probe endpoint at `/node/{room}`, sharing broadcasts and rooms through Redis.
//!
//! `cluster-node REDIS_URL` prints `listening on ADDR` once it serves (on a free port of
//! 127.0.0.1).

#[path = "../../examples/chat.rs"]
#[allow(dead_code)]
mod chat;

use ws_endpoint::prelude::*;

/// Joins the room of its path; text commands: `all:X`, `others:X`, `room:R:X`, `join:R`,
/// `leave:R`.
#[derive(Default)]
struct Node;

#[server_endpoint("/node/{room}", heartbeat = false)]
impl Node {
    #[on_open]
    fn open(&mut self, session: &Session, #[path_param] room: String) {
        session.join(&room);
    }

    #[on_message]
    fn text(&mut self, session: &Session, msg: String) -> Option<String> {
        let hub = Node::hub();
        let (cmd, rest) = msg.split_once(':').unwrap_or((msg.as_str(), ""));
        let _ = match cmd {
            "all" => hub.broadcast(rest.to_owned()),
            "others" => hub.broadcast_except(session, rest.to_owned()),
            "room" => {
                let (room, text) = rest.split_once(':').unwrap_or((rest, ""));
                hub.to_room(room, text.to_owned())
            }
            "join" => return Some(format!("joined:{}", session.join(rest))),
            "leave" => return Some(format!("left:{}", session.leave(rest))),
            _ => return Some(format!("unknown:{msg}")),
        };
        None
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let url = std::env::args()
        .nth(1)
        .expect("usage: cluster-node REDIS_URL");
    ws_endpoint::cluster::connect_redis(&url)
        .await
        .map_err(std::io::Error::other)?;
    let server = HttpServer::new(|| {
        App::new()
            .configure(chat::configure)
            .service(Node::endpoint())
    })
    .with_ws_defaults()
    .workers(1)
    .bind(("127.0.0.1", 0))?;
    println!("listening on {}", server.addrs()[0]);
    server.run().await
}
