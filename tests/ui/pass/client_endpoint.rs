//! A client endpoint with every handler form the server has that makes sense for a client.
use ws_endpoint::{prelude::*, BinaryStream};

#[derive(serde::Deserialize)]
struct Tick {
    price: f64,
}

struct Feed {
    ticks: usize,
}

#[client_endpoint(
    max_text_message_size = "64KiB",
    max_binary_message_size = "1GiB",
    subprotocols = ["feed.v1"],
    idle_timeout = "5m",
    ping_interval = "20s",
    pong_timeout = "10s",
    compression(level = 1, min_size = 128)
)]
impl Feed {
    /// Constructor-style.
    #[on_open]
    async fn open(session: &Session) -> Self {
        let _ = session.text("subscribe").await;
        Feed { ticks: 0 }
    }

    #[on_message]
    fn tick(&mut self, tick: Json<Tick>) -> Option<String> {
        self.ticks += 1;
        (tick.price < 0.0).then(|| "negative?".to_owned())
    }

    #[on_message]
    async fn dump(&mut self, mut data: BinaryStream) -> Result<(), EndpointError> {
        while let Some(chunk) = data.next_chunk().await {
            let _ = chunk?.len();
        }
        Ok(())
    }

    #[on_error]
    fn error(&mut self, err: EndpointError) {
        let _ = err;
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        let _ = (self.ticks, reason);
    }
}

fn main() {
    let _connector = Feed::connector("ws://127.0.0.1:1/feed").header("authorization", "Bearer x");
    let _connect = Feed::connect("ws://127.0.0.1:1/feed");
}
