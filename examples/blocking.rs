//! Blocking work in a handler: a user directory behind a blocking "database".
//!
//! ```text
//! cargo run --example blocking                              # ws://127.0.0.1:8080/users
//! BLOCKING_ADDR=0.0.0.0:8080 cargo run --example blocking   # or: cargo run --example blocking -- 127.0.0.1:9000
//! ```
//!
//! Send a user name as a text message (`ada`); the reply is the directory entry
//! (`ada: Ada Lovelace, analyst`) or `grace: not found`.
//!
//! A Java port is full of blocking calls: JDBC, a file read, a synchronous HTTP client. A handler
//! that makes one directly stalls its actix-web worker thread, and with it every other connection
//! that worker serves. So the lookup runs in `web::block`, on the blocking thread pool, and the
//! handler awaits it. Awaiting is safe: the handlers of one session never overlap (the next message
//! of this session waits for this handler, in arrival order), while the other sessions are served
//! as usual. `tokio::task::spawn_blocking` works the same way.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use actix_web::error::BlockingError;
use ws_endpoint::prelude::*;

/// The blocking "database": a table behind a `std::sync::Mutex`, and a delay per query that
/// stands for the round trip of a JDBC call.
pub struct Db {
    /// Name → entry. Held while a query reads it (a table lock, as a transaction would hold it).
    pub table: Mutex<HashMap<String, String>>,
    latency: Duration,
    in_flight: AtomicUsize,
}

impl Db {
    /// A directory with a few entries, each query taking `latency`.
    pub fn new(latency: Duration) -> Db {
        let table = [
            ("ada", "Ada Lovelace, analyst"),
            ("alan", "Alan Turing, cryptanalyst"),
            ("edsger", "Edsger Dijkstra, programmer"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Db {
            table: Mutex::new(table),
            latency,
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Looks `name` up. **Blocks** the calling thread: call it from `web::block`.
    pub fn find(&self, name: &str) -> Option<String> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.latency);
        let entry = self
            .table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
            .cloned();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        entry
    }

    /// Queries started and not finished yet (waiting for the table or running).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }
}

/// One connection: the directory it was given at the handshake.
#[derive(Default)]
struct Users {
    db: Option<web::Data<Db>>,
}

#[server_endpoint("/users", max_message_size = 256)]
impl Users {
    #[on_open]
    fn open(&mut self, db: web::Data<Db>) {
        self.db = Some(db);
    }

    #[on_message]
    async fn lookup(&mut self, name: String) -> Result<String, BlockingError> {
        let Some(db) = self.db.clone() else {
            return Ok("no directory".to_owned());
        };
        let name = name.trim().to_owned();
        tracing::debug!(%name, queries_in_flight = db.in_flight(), "lookup");
        // The blocking call runs on the blocking pool; this worker serves other sessions meanwhile.
        let entry = web::block({
            let name = name.clone();
            move || db.find(&name)
        })
        .await?;
        Ok(match entry {
            Some(entry) => format!("{name}: {entry}"),
            None => format!("{name}: not found"),
        })
    }
}

/// Registers the endpoint; the app must hold a `web::Data<Db>` (also used by the example's test).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(Users::endpoint());
}

#[allow(dead_code)] // the integration test includes this file as a module
#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BLOCKING_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let db = web::Data::new(Db::new(Duration::from_millis(20)));
    let server = HttpServer::new(move || App::new().app_data(db.clone()).configure(configure))
        .with_ws_defaults()
        .bind(&addr)?;
    for bound in server.addrs() {
        println!("blocking: ws://{bound}/users (send a name: ada, alan, edsger)");
    }
    server.run().await
}
