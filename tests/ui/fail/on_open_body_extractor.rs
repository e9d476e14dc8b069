use ws_endpoint::prelude::*;

#[derive(Default)]
struct Upload;

#[server_endpoint("/upload")]
impl Upload {
    #[on_open]
    async fn open(&mut self, body: String, json: web::Json<u32>, payload: web::Payload, raw: Bytes) {
        let _ = (body, json, payload, raw);
    }
}

fn main() {}
