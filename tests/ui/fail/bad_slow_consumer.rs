use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("/chat", slow_consumer = "drop_everything")]
impl Chat {}

fn main() {}
