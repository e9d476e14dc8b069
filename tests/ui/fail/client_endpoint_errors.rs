use ws_endpoint::prelude::*;

#[derive(Default)]
struct WithPath;

// A client has no path: the URL goes to `connect`.
#[client_endpoint("/feed")]
impl WithPath {}

#[derive(Default)]
struct ServerKeys;

// Settings of a server.
#[client_endpoint(allowed_origins = ["https://app.example"], max_sessions = 10)]
impl ServerKeys {}

#[derive(Default)]
struct Hooks;

#[client_endpoint]
impl Hooks {
    // There is no 101 response for a client to shape.
    #[on_handshake]
    fn handshake(hs: &mut Handshake) {
        let _ = hs;
    }

    // There is no request to extract from.
    #[on_open]
    fn open(&mut self, session: &Session, req: HttpRequest) {
        let _ = (session, req);
    }

    // There is no path template.
    #[on_message]
    fn text(&mut self, msg: String, #[path_param] room: String) {
        let _ = (msg, room);
    }
}

fn main() {}
