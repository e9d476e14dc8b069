use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat", subprotocols = ["chat v2"], idle_timeout = "5 parsecs")]
impl Chat {}

fn main() {}
