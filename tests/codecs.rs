//! Custom codecs (JSR 356 `Decoder` / `Encoder`): payloads and replies in `Text<T>` /
//! `Binary<T>`, decode failures to `on_error` with the session kept open, `Session::send` of an
//! encodable value (`sendObject`), and the serde binary formats `MsgPack<T>` and `Cbor<T>`.

mod common;

use common::*;
use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;
use ws_endpoint::{
    codec::{Binary, Cbor, DecodeBinary, DecodeText, EncodeBinary, EncodeText, MsgPack, Text},
    prelude::*,
};

/// `move X Y` as text.
#[derive(Debug, PartialEq)]
struct Move {
    x: i32,
    y: i32,
}

impl DecodeText for Move {
    type Error = String;
    fn decode_text(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("move ")
            .ok_or_else(|| format!("`{text}` is not `move X Y`"))?;
        let (x, y) = rest.split_once(' ').ok_or("expected two numbers")?;
        Ok(Move {
            x: x.parse().map_err(|_| "x is not a number")?,
            y: y.parse().map_err(|_| "y is not a number")?,
        })
    }
}

impl EncodeText for Move {
    type Error = std::convert::Infallible;
    fn encode_text(&self) -> Result<String, Self::Error> {
        Ok(format!("at {} {}", self.x, self.y))
    }
}

/// Two big-endian u32 as 8 bytes.
struct Point(u32, u32);

impl DecodeBinary for Point {
    type Error = String;
    fn decode_binary(data: &[u8]) -> Result<Self, String> {
        let raw: [u8; 8] = data
            .try_into()
            .map_err(|_| format!("a point is 8 bytes, not {}", data.len()))?;
        Ok(Point(
            u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
        ))
    }
}

impl EncodeBinary for Point {
    type Error = std::convert::Infallible;
    fn encode_binary(&self) -> Result<Vec<u8>, Self::Error> {
        let mut v = self.0.to_be_bytes().to_vec();
        v.extend_from_slice(&self.1.to_be_bytes());
        Ok(v)
    }
}

struct Game {
    log: web::Data<Log>,
}

#[server_endpoint("/game", heartbeat = false)]
impl Game {
    #[on_open]
    async fn open(session: &Session, log: web::Data<Log>) -> Self {
        // sendObject: any encodable value
        let _ = session.send(Text(Move { x: 0, y: 0 })).await;
        Game { log }
    }

    #[on_message]
    fn text(&mut self, Text(m): Text<Move>) -> Text<Move> {
        Text(Move {
            x: m.x + 1,
            y: m.y + 1,
        })
    }

    #[on_message]
    fn binary(&mut self, Binary(p): Binary<Point>) -> Binary<Point> {
        Binary(Point(p.1, p.0))
    }

    #[on_error]
    fn error(&mut self, err: EndpointError) -> String {
        self.log.push(format!("error:{err}"));
        format!("error: {err}")
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    value: f64,
}

#[derive(Default)]
struct PackEcho;

#[server_endpoint("/msgpack", heartbeat = false)]
impl PackEcho {
    #[on_message]
    fn reading(&mut self, MsgPack(r): MsgPack<Reading>) -> MsgPack<Reading> {
        MsgPack(Reading {
            sensor: r.sensor.to_uppercase(),
            value: r.value * 2.0,
        })
    }
}

#[derive(Default)]
struct CborEcho;

#[server_endpoint("/cbor", heartbeat = false)]
impl CborEcho {
    #[on_message]
    fn reading(&mut self, Cbor(r): Cbor<Reading>) -> Cbor<Reading> {
        Cbor(Reading {
            sensor: r.sensor.to_uppercase(),
            value: r.value * 2.0,
        })
    }
}

fn app(cfg: &mut web::ServiceConfig) {
    cfg.service(Game::endpoint())
        .service(PackEcho::endpoint())
        .service(CborEcho::endpoint());
}

#[tokio::test]
async fn text_and_binary_codecs_decode_payloads_and_encode_replies() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/game")).await;
    assert_eq!(recv_text(&mut ws).await, "at 0 0"); // sent with session.send(Text(..))
    send_text(&mut ws, "move 3 4").await;
    assert_eq!(recv_text(&mut ws).await, "at 4 5");
    let mut point = 1u32.to_be_bytes().to_vec();
    point.extend_from_slice(&2u32.to_be_bytes());
    ws.send(Message::binary(point)).await.unwrap();
    let mut swapped = 2u32.to_be_bytes().to_vec();
    swapped.extend_from_slice(&1u32.to_be_bytes());
    assert_eq!(recv(&mut ws).await, Message::binary(swapped));
    srv.stop().await;
}

#[tokio::test]
async fn a_decode_failure_goes_to_on_error_and_the_session_stays_open() {
    let srv = start(app);
    let mut ws = connect(&srv.url("/game")).await;
    assert_eq!(recv_text(&mut ws).await, "at 0 0");
    send_text(&mut ws, "jump").await;
    let reply = recv_text(&mut ws).await;
    assert!(reply.contains("`jump` is not `move X Y`"), "{reply}");
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert!(recv_text(&mut ws)
        .await
        .contains("a point is 8 bytes, not 3"));
    assert_eq!(srv.log.count("error:could not decode"), 2);
    send_text(&mut ws, "move 1 1").await;
    assert_eq!(recv_text(&mut ws).await, "at 2 2");
    srv.stop().await;
}

#[tokio::test]
async fn msgpack_and_cbor_round_trip_serde_types() {
    let srv = start(app);
    let reading = Reading {
        sensor: "t1".into(),
        value: 21.5,
    };
    let expected = Reading {
        sensor: "T1".into(),
        value: 43.0,
    };

    let mut ws = connect(&srv.url("/msgpack")).await;
    ws.send(Message::binary(rmp_serde::to_vec_named(&reading).unwrap()))
        .await
        .unwrap();
    let Message::Binary(data) = recv(&mut ws).await else {
        panic!("expected binary")
    };
    assert_eq!(rmp_serde::from_slice::<Reading>(&data).unwrap(), expected);

    let mut ws = connect(&srv.url("/cbor")).await;
    let mut body = Vec::new();
    ciborium::into_writer(&reading, &mut body).unwrap();
    ws.send(Message::binary(body)).await.unwrap();
    let Message::Binary(data) = recv(&mut ws).await else {
        panic!("expected binary")
    };
    assert_eq!(
        ciborium::from_reader::<Reading, _>(&data[..]).unwrap(),
        expected
    );
    srv.stop().await;
}
