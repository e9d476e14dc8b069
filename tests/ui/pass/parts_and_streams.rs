//! Handlers that take messages in parts (`last: bool`) and as streams, sync and async.
use ws_endpoint::{prelude::*, BinaryStream, TextStream};

#[derive(Default)]
struct Parts;

#[server_endpoint("/parts/{id}")]
impl Parts {
    #[on_message]
    fn text(&mut self, session: &Session, part: String, last: bool, #[path_param] id: u32) -> Option<String> {
        let _ = (session, id);
        last.then_some(part)
    }

    #[on_message]
    async fn binary(&mut self, last: bool, part: Vec<u8>) {
        let _ = (last, part);
    }
}

#[derive(Default)]
struct Streams;

#[server_endpoint("/streams", max_message_size = "4GiB")]
impl Streams {
    #[on_message]
    async fn text(&mut self, data: TextStream) -> Result<String, EndpointError> {
        data.to_text().await
    }

    #[on_message]
    async fn binary(&mut self, mut data: BinaryStream, session: &Session) -> Result<(), EndpointError> {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).await.map_err(EndpointError::handler)?;
        session.binary(buf).await?;
        Ok(())
    }
}

fn main() {}
