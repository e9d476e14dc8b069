use ws_endpoint::prelude::*;

#[derive(Default)]
struct Chat;

#[server_endpoint("chat")]
impl Chat {}

fn main() {}
