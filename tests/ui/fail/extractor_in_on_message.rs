use ws_endpoint::prelude::*;

struct Db;

#[derive(Default)]
struct Rpc;

#[server_endpoint("/rpc")]
impl Rpc {
    #[on_message]
    async fn text(&mut self, db: web::Data<Db>, msg: String) -> String {
        let _ = db;
        msg
    }

    #[on_close]
    fn close(&mut self, reason: CloseReason, req: HttpRequest) {
        let _ = (reason, req);
    }
}

fn main() {}
