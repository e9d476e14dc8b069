//! A server process for the cross-process tests (`tests/cluster.rs`): the chat example's app plus
//! a probe endpoint at `/node/{room}` and the history probes at `/rec/{room}` and `/short/{room}`
//! (`history_probe.rs`), sharing broadcasts, rooms and room histories through Redis.
//!
//! `cluster-node REDIS_URL` prints `listening on ADDR` once it serves (on a free port of
//! 127.0.0.1).

#[path = "../../examples/chat.rs"]
#[allow(dead_code)]
mod chat;

#[path = "history_probe.rs"]
mod history_probe;

use ws_endpoint::prelude::*;

/// Joins the room of its path; text commands: `all:X`, `others:X`, `room:R:X`, `join:R`,
/// `leave:R`, `user:U` (set the user key), `id` (the cluster id), `to_user:U:X`,
/// `to_session:ID:X`, `count` (cluster-wide), `members:R` (the cluster's members of room R:
/// their user keys, sorted, comma-separated).
#[derive(Default)]
struct Node;

#[server_endpoint("/node/{room}", heartbeat = false)]
impl Node {
    #[on_open]
    fn open(&mut self, session: &Session, #[path_param] room: String) {
        session.join(&room);
    }

    #[on_message]
    async fn text(&mut self, session: &Session, msg: String) -> Option<String> {
        let hub = Node::hub();
        let (cmd, rest) = msg.split_once(':').unwrap_or((msg.as_str(), ""));
        let _ = match cmd {
            "user" => {
                session.set_user(rest);
                let flushed = ws_endpoint::cluster::flush_presence().await.is_ok();
                return Some(format!("user:{flushed}"));
            }
            "id" => return Some(format!("id:{}", session.cluster_id())),
            "to_user" => {
                let (user, text) = rest.split_once(':').unwrap_or((rest, ""));
                hub.to_user(user, text.to_owned())
            }
            "to_session" => {
                let (id, text) = rest.split_once(':').unwrap_or((rest, ""));
                let Ok(id) = id.parse() else {
                    return Some(format!("bad id:{id}"));
                };
                hub.to_session(id, text.to_owned())
            }
            "count" => {
                return Some(match hub.cluster_count().await {
                    Ok(n) => format!("count:{n}"),
                    Err(e) => format!("error:{e}"),
                })
            }
            "members" => {
                return Some(match hub.cluster_room_members(rest).await {
                    Ok(members) => {
                        let mut users: Vec<String> =
                            members.into_iter().filter_map(|m| m.user).collect();
                        users.sort();
                        format!("members:{}", users.join(","))
                    }
                    Err(e) => format!("error:{e}"),
                })
            }
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
    // `CLUSTER_TTL_MS`: a short presence TTL for the tests (renewed four times per TTL).
    let mut config = ws_endpoint::cluster::ClusterConfig::default();
    if let Some(ms) = std::env::var("CLUSTER_TTL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        config.presence_ttl = std::time::Duration::from_millis(ms);
        config.heartbeat = std::time::Duration::from_millis(ms / 4);
    }
    chat::on_lost_members();
    ws_endpoint::cluster::connect_redis_with(&url, config)
        .await
        .map_err(std::io::Error::other)?;
    let server = HttpServer::new(|| {
        App::new()
            .configure(chat::configure)
            .configure(history_probe::configure)
            .service(Node::endpoint())
    })
    .with_ws_defaults()
    .workers(1)
    .bind(("127.0.0.1", 0))?;
    println!("listening on {}", server.addrs()[0]);
    server.run().await
}
