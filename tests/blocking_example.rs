//! The blocking-work example, served by the test harness (one worker thread) and driven by
//! tokio-tungstenite: lookups are answered, and a lookup that blocks does not hold up the other
//! sessions of the same worker.

#[path = "../examples/blocking.rs"]
mod blocking;
mod common;

use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use actix_web::web;
use blocking::Db;
use common::*;

/// Serves the example with `db` in the app data.
fn serve(db: web::Data<Db>) -> TestServer {
    start(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(db.clone());
        blocking::configure(cfg);
    })
}

/// Waits (up to 5 s) until `done()` holds.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_lookup_is_answered() {
    let srv = serve(web::Data::new(Db::new(Duration::from_millis(5))));
    let mut ws = connect(&srv.url("/users")).await;
    send_text(&mut ws, "ada").await;
    assert_eq!(recv_text(&mut ws).await, "ada: Ada Lovelace, analyst");
    send_text(&mut ws, "grace").await;
    assert_eq!(recv_text(&mut ws).await, "grace: not found");
    srv.stop().await;
}

#[tokio::test]
async fn a_blocked_lookup_does_not_hold_up_another_session() {
    let db = web::Data::new(Db::new(Duration::ZERO));
    let srv = serve(db.clone());
    let mut ada = connect(&srv.url("/users")).await;
    let mut alan = connect(&srv.url("/users")).await;

    // Another thread holds the table, so every lookup blocks until it lets go.
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let table_db = db.clone();
    let holder = std::thread::spawn(move || {
        let _table = table_db.table.lock().unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    locked_rx.recv().unwrap();

    send_text(&mut ada, "ada").await;
    wait_until("ada's lookup is blocked on the table", || {
        db.in_flight() == 1
    })
    .await;
    // The server has one worker thread. Had ada's handler blocked it, alan's message would wait
    // behind it and his lookup would never start.
    send_text(&mut alan, "alan").await;
    wait_until("alan's lookup runs beside ada's", || db.in_flight() == 2).await;

    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(recv_text(&mut ada).await, "ada: Ada Lovelace, analyst");
    assert_eq!(
        recv_text(&mut alan).await,
        "alan: Alan Turing, cryptanalyst"
    );
    srv.stop().await;
}
