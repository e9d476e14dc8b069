//! A client endpoint that runs the Autobahn testsuite's client protocol against its fuzzing
//! server (`wstest -m fuzzingserver`): reads `/getCaseCount`, runs every
//! `/runCase?case=N&agent=AGENT` echoing each text and binary message back, then asks for
//! `/updateReports?agent=AGENT`. `scripts/conformance.sh` runs it (in release).
//!
//! ```text
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9002 ws-endpoint
//! ```
//!
//! `CASES=3-7` runs only cases 3 to 7 (by number, as the fuzzing server counts them).

use ws_endpoint::{client::ConnectError, prelude::*};

/// Echoes every message of a case. The largest messages Autobahn sends (section 9) are 16 MiB.
#[derive(Default)]
struct Echo;

#[client_endpoint(max_message_size = "64MiB", heartbeat = false)]
impl Echo {
    #[on_message]
    fn text(&mut self, msg: String) -> String {
        msg
    }

    #[on_message]
    fn binary(&mut self, data: Bytes) -> Bytes {
        data
    }
}

/// Reads the one text message of `/getCaseCount`.
#[derive(Default)]
struct CaseCount;

#[derive(Clone)]
struct Count(usize);

#[client_endpoint(heartbeat = false)]
impl CaseCount {
    #[on_message]
    fn text(&mut self, msg: String, session: &Session) {
        if let Ok(n) = msg.trim().parse() {
            session.set_property(Count(n));
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ConnectError> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let agent = args.next().unwrap_or_else(|| "ws-endpoint".to_owned());
    let base = base.trim_end_matches('/');

    let counter = CaseCount::connect(format!("{base}/getCaseCount")).await?;
    counter.closed().await;
    let Some(Count(count)) = counter.session().property::<Count>() else {
        eprintln!("the fuzzing server sent no case count");
        std::process::exit(1);
    };
    let (first, last) = match std::env::var("CASES").ok().and_then(|r| {
        let (a, b) = r.split_once('-')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }) {
        Some(range) => range,
        None => (1, count),
    };
    println!("{count} cases; running {first} to {last} as {agent}");
    for case in first..=last.min(count) {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match Echo::connect(url).await {
            Ok(client) => {
                client.closed().await;
            }
            // Some cases fail the handshake on purpose; the report says what was expected.
            Err(e) => eprintln!("case {case}: {e}"),
        }
        if case % 50 == 0 {
            println!("{case} / {count}");
        }
    }
    let reports = Echo::connect(format!("{base}/updateReports?agent={agent}")).await?;
    reports.closed().await;
    println!("reports updated");
    Ok(())
}
