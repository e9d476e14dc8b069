use ws_endpoint::prelude::*;

#[derive(Default)]
struct Feed;

#[server_endpoint("/feed", compression(level = 11, max_window_bits = 8))]
impl Feed {}

#[derive(Default)]
struct Typo;

#[server_endpoint("/typo", compression(context_takover = true))]
impl Typo {}

#[derive(Default)]
struct Word;

#[server_endpoint("/word", compression = "gzip")]
impl Word {}

fn main() {}
