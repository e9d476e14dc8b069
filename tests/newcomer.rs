//! Constructor-style `on_open`, `#[on_handshake]`, per-session settings
//! (`set_max_idle_timeout`, message limits) and `join_limited`, on the wire.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use ws_endpoint::prelude::*;

/// Built by its constructor: no `Default`, no `Option` fields.
struct Greeter {
    room: String,
    log: web::Data<Log>,
    greeting: String,
}

#[server_endpoint("/greet/{room}", heartbeat = false)]
impl Greeter {
    #[on_open]
    async fn open(
        session: &Session,
        #[path_param] room: String,
        log: web::Data<Log>,
        query: web::Query<std::collections::HashMap<String, String>>,
    ) -> Self {
        log.push(format!("open:{room}"));
        let greeting = query.get("greeting").cloned().unwrap_or("hello".into());
        let _ = session.text(format!("{greeting} from {room}")).await;
        Greeter {
            room,
            log: log.clone(),
            greeting,
        }
    }

    #[on_message]
    fn text(&mut self, msg: String, #[path_param] room: String) -> String {
        assert_eq!(room, self.room);
        format!("{} {}: {msg}", self.greeting, self.room)
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        self.log.closed(&reason);
    }
}

#[actix_web::test]
async fn a_constructor_on_open_builds_the_instance_from_extractors_and_path_params() {
    let server = start(|cfg| {
        cfg.service(Greeter::endpoint());
    });
    let mut ws = connect(&server.url("/greet/lobby?greeting=hi")).await;
    assert_eq!(recv_text(&mut ws).await, "hi from lobby");
    send_text(&mut ws, "there").await;
    assert_eq!(recv_text(&mut ws).await, "hi lobby: there");
    ws.send(close_frame(1000, "bye")).await.unwrap();
    assert_eq!(expect_close(&mut ws).await.0, 1000);
    server.log.wait_for("close:1000").await;
    assert_eq!(server.log.count("open:lobby"), 1);
    assert_eq!(server.log.count("close:"), 1);
    server.stop().await;
}

/// A constructor that fails (or panics): no instance, so no handler runs; the peer gets 1011.
struct Picky {
    log: web::Data<Log>,
}

#[server_endpoint("/picky/{n}", heartbeat = false)]
impl Picky {
    #[on_open]
    fn open(#[path_param] n: u32, log: web::Data<Log>) -> Result<Self, String> {
        match n {
            0 => Err("zero is not welcome".into()),
            13 => panic!("unlucky"),
            _ => {
                log.push(format!("open:{n}"));
                Ok(Picky { log: log.clone() })
            }
        }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        self.log.closed(&reason);
    }
}

#[actix_web::test]
async fn a_failing_constructor_closes_with_1011_and_runs_no_handler() {
    let server = start(|cfg| {
        cfg.service(Picky::endpoint());
    });
    for n in ["0", "13"] {
        let mut ws = connect(&server.url(&format!("/picky/{n}"))).await;
        assert_eq!(
            expect_close(&mut ws).await,
            (1011, "internal server error".into())
        );
    }
    let mut ws = connect(&server.url("/picky/7")).await;
    send_text(&mut ws, "ok").await;
    assert_eq!(recv_text(&mut ws).await, "ok");
    ws.send(close_frame(1000, "")).await.unwrap();
    expect_close(&mut ws).await;
    server.log.wait_for("close:1000").await;
    // Only the session that was built ran handlers.
    assert_eq!(server.log.events(), vec!["open:7", "close:1000:"]);
    server.stop().await;
}

/// `#[on_handshake]`: refuses before the 101, adds headers to it, hands a property to on_open.
#[derive(Clone)]
struct User(String);

struct Feed {
    user: String,
}

#[server_endpoint("/feed/{topic}", heartbeat = false)]
impl Feed {
    #[on_handshake]
    async fn handshake(
        req: &HttpRequest,
        #[path_param] topic: String,
        log: web::Data<Log>,
        hs: &mut Handshake,
    ) -> Result<(), actix_web::Error> {
        log.push(format!("handshake:{topic}"));
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(user) = token else {
            return Err(actix_web::error::ErrorUnauthorized(
                "a bearer token is required",
            ));
        };
        hs.append_header(("set-cookie", "a=1; HttpOnly"));
        hs.append_header(("set-cookie", "b=2; HttpOnly"));
        hs.insert_header(("x-feed-user", user));
        hs.set_property(User(user.to_owned()));
        Ok(())
    }

    #[on_open]
    fn open(session: &Session, log: web::Data<Log>) -> Self {
        let user = session.property::<User>().expect("set in the handshake").0;
        log.push(format!("open:{user}"));
        Feed { user }
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        format!("{}: {msg}", self.user)
    }
}

#[actix_web::test]
async fn on_handshake_refuses_adds_headers_and_hands_properties_to_on_open() {
    let server = start(|cfg| {
        cfg.service(Feed::endpoint());
    });
    // Refused before the upgrade: 401 with the hook's body; on_open never ran.
    let (status, head) =
        http_request(server.addr, &upgrade_request(server.addr, "/feed/news", "")).await;
    assert_eq!(status, 401, "{head}");
    assert!(head.contains("a bearer token is required"), "{head}");
    assert_eq!(server.log.count("open:"), 0);

    let mut req = server.url("/feed/news").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer ada".parse().unwrap());
    let (mut ws, resp) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["x-feed-user"], "ada");
    let cookies: Vec<_> = resp.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1; HttpOnly", "b=2; HttpOnly"]);
    send_text(&mut ws, "hi").await;
    assert_eq!(recv_text(&mut ws).await, "ada: hi");
    assert_eq!(server.log.count("handshake:news"), 2);
    assert_eq!(server.log.count("open:ada"), 1);
    server.stop().await;
}

/// Per-session settings, JSR 356 `setMaxIdleTimeout` / `setMaxTextMessageBufferSize`.
#[derive(Default)]
struct Tunable;

#[server_endpoint("/tunable", heartbeat = false, max_message_size = 1024)]
impl Tunable {
    #[on_message]
    fn text(&mut self, session: &Session, msg: String) -> String {
        if let Some(n) = msg.strip_prefix("limit:") {
            session.set_max_text_message_size(n.parse().unwrap());
        } else if let Some(ms) = msg.strip_prefix("idle:") {
            session.set_max_idle_timeout(Some(Duration::from_millis(ms.parse().unwrap())));
        }
        format!("ok:{}", msg.len())
    }
}

#[actix_web::test]
async fn a_session_s_own_text_limit_applies_to_its_next_message() {
    let server = start(|cfg| {
        cfg.service(Tunable::endpoint());
    });
    let mut other = connect(&server.url("/tunable")).await;
    let mut ws = connect(&server.url("/tunable")).await;
    send_text(&mut ws, &"x".repeat(100)).await;
    assert_eq!(recv_text(&mut ws).await, "ok:100");
    send_text(&mut ws, "limit:50").await;
    assert_eq!(recv_text(&mut ws).await, "ok:8");
    send_text(&mut ws, &"x".repeat(60)).await;
    assert_eq!(expect_close(&mut ws).await.0, 1009);
    // The other session keeps the endpoint's limit.
    send_text(&mut other, &"x".repeat(1000)).await;
    assert_eq!(recv_text(&mut other).await, "ok:1000");
    server.stop().await;
}

#[actix_web::test]
async fn a_session_s_own_idle_timeout_closes_it_with_1001() {
    let server = start(|cfg| {
        cfg.service(Tunable::endpoint());
    });
    let mut ws = connect(&server.url("/tunable")).await;
    send_text(&mut ws, "idle:100").await;
    assert_eq!(recv_text(&mut ws).await, "ok:8");
    // Nothing more is sent: the session's own timeout closes it (the endpoint has none).
    assert_eq!(
        expect_close(&mut ws).await,
        (1001, "idle timeout".to_owned())
    );
    server.stop().await;
}

/// `join_limited`: the count and the join are one step.
struct Table;

#[server_endpoint("/table/{id}", heartbeat = false)]
impl Table {
    #[on_open]
    async fn open(session: &Session, #[path_param] id: String, log: web::Data<Log>) -> Self {
        match session.join_limited(&id, 3) {
            Ok(joined) => {
                log.push(format!("joined:{joined}"));
                let _ = session.text("seated").await;
            }
            Err(full) => {
                log.push("full");
                let _ = session
                    .close(CloseReason::new(1013, full.to_string()))
                    .await;
            }
        }
        Table
    }
}

#[actix_web::test]
async fn join_limited_seats_exactly_its_capacity_when_clients_race() {
    let server = start(|cfg| {
        cfg.service(Table::endpoint());
    });
    let url = server.url("/table/t1");
    let clients = (0..8).map(|_| {
        let url = url.clone();
        async move {
            let mut ws = connect(&url).await;
            match recv(&mut ws).await {
                Message::Text(t) => {
                    assert_eq!(t.as_str(), "seated");
                    (true, Some(ws))
                }
                Message::Close(Some(frame)) => {
                    assert_eq!(u16::from(frame.code), 1013);
                    assert_eq!(frame.reason.as_str(), "room `t1` is full (3 members)");
                    (false, None)
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let results = futures_util::future::join_all(clients).await;
    let seated = results.iter().filter(|(s, _)| *s).count();
    assert_eq!(seated, 3);
    assert_eq!(server.log.count("joined:true"), 3);
    assert_eq!(server.log.count("full"), 5);
    assert_eq!(Table::hub().room_members("t1").len(), 3);
    server.stop().await;
}

/// A hook that sets a header the upgrade itself owns: refused with 500, nothing half-sent.
#[derive(Default)]
struct Meddler;

#[server_endpoint("/meddler", heartbeat = false)]
impl Meddler {
    #[on_handshake]
    fn handshake(hs: &mut Handshake) {
        hs.insert_header(("sec-websocket-protocol", "mine"));
    }

    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }
}

#[actix_web::test]
async fn a_hook_that_sets_a_handshake_header_is_refused_with_500() {
    let server = start(|cfg| {
        cfg.service(Meddler::endpoint());
    });
    let (status, head) =
        http_request(server.addr, &upgrade_request(server.addr, "/meddler", "")).await;
    assert_eq!(status, 500, "{head}");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol: mine"),
        "{head}"
    );
    server.stop().await;
}
