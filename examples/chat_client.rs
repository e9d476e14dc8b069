//! A terminal client for the chat example: lines typed on stdin go out, the room's events are
//! printed.
//!
//! ```text
//! cargo run --example chat                 # in one terminal
//! cargo run --example chat_client -- 'ws://127.0.0.1:8080/chat/lobby?nick=bob'
//! ```
//!
//! `/nick NAME` renames you (the server's command); `/quit` (or end of input, Ctrl-D) leaves.
//! The client reconnects by itself if the server goes away (a restart: 1001), with backoff.

use std::io::Write as _;

use serde::Deserialize;
use tokio::io::AsyncBufReadExt as _;
use ws_endpoint::{client::Reconnect, prelude::*};

/// The chat's server → client events (see examples/chat.rs).
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Event {
    Welcome {
        room: String,
        nick: String,
        members: Vec<String>,
    },
    Join {
        nick: String,
    },
    Leave {
        nick: String,
    },
    Message {
        from: String,
        text: String,
    },
    Nick {
        from: String,
        to: String,
    },
    Error {
        error: String,
    },
    /// Sent after a reconnection with `?since=` whose id is no longer in the room's history.
    Gap {
        since: String,
    },
}

/// How an event is printed: one line.
fn line(event: &Event) -> String {
    match event {
        Event::Welcome {
            room,
            nick,
            members,
        } => format!("* you are {nick} in {room}; here: {}", members.join(", ")),
        Event::Join { nick } => format!("* {nick} joined"),
        Event::Leave { nick } => format!("* {nick} left"),
        Event::Message { from, text } => format!("<{from}> {text}"),
        Event::Nick { from, to } => format!("* {from} is now {to}"),
        Event::Error { error } => format!("! {error}"),
        Event::Gap { since } => format!("* messages after {since} are no longer available"),
    }
}

#[derive(Default)]
struct ChatClient;

#[client_endpoint(max_message_size = "64KiB")]
impl ChatClient {
    #[on_message]
    fn event(&mut self, event: Json<Event>) {
        println!("{}", line(&event));
    }

    #[on_error]
    fn error(&mut self, err: EndpointError) {
        eprintln!("! {err}");
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason) {
        eprintln!("* disconnected: {reason}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080/chat/lobby".to_owned());
    let client = match ChatClient::connector(url.as_str())
        .reconnect(Reconnect::default().max_tries(10))
        .connect()
        .await
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("could not connect to {url}: {e}");
            std::process::exit(1);
        }
    };
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let line = match line {
                    Ok(Some(line)) => line,
                    _ => break, // end of input
                };
                let line = line.trim();
                if line == "/quit" {
                    break;
                }
                if line.is_empty() {
                    continue;
                }
                let Some(session) = client.connected().await else { break };
                if let Err(e) = session.json(&serde_json::json!({ "text": line })).await {
                    eprintln!("! not sent: {e}");
                }
            }
            reason = client.closed() => {
                eprintln!("* the client ended: {reason}");
                std::process::exit(1);
            }
        }
        let _ = std::io::stdout().flush();
    }
    client.close(CloseReason::normal()).await;
}
