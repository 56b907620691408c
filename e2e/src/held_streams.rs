//! Streams a client opens and never finishes: each request's headers sent, its body never ended, all on one
//! HTTP/2 connection (Rust's `h2`). What anyone can do to tie up a server's streams, at the cost of one frame each.

use anyhow::{Context, Result};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;

pub struct HeldStreams {
    /// Kept so the streams stay open; dropping them resets the streams.
    _bodies: Vec<h2::SendStream<Bytes>>,
    /// Each stream's answer, until it comes.
    responses: Vec<Option<h2::client::ResponseFuture>>,
    /// The answers so far, by what they said (see [`HeldStreams::answers`]).
    answers: std::collections::BTreeMap<String, usize>,
    connection: JoinHandle<()>,
}

impl HeldStreams {
    /// Opens `count` streams to `addr`: `POST path` for `authority`, with `headers`, no body yet.
    pub async fn open(
        addr: SocketAddr,
        authority: &str,
        path: &str,
        headers: &[(&str, &str)],
        count: usize,
    ) -> Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        let (client, connection) = h2::client::handshake(tcp).await.context("HTTP/2 handshake")?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let uri = format!("http://{authority}{path}");
        let (mut bodies, mut responses) = (Vec::with_capacity(count), Vec::with_capacity(count));
        let mut client = client;
        for _ in 0..count {
            client = client.ready().await.context("the gateway stopped taking streams")?;
            let mut request = http::Request::post(&uri);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let (response, body) = client.send_request(request.body(())?, false)?;
            bodies.push(body);
            responses.push(Some(response));
        }
        Ok(Self { _bodies: bodies, responses, answers: Default::default(), connection })
    }

    /// The streams answered so far, waiting up to `wait` for more, by what the answer said: `grpc-status N` for a
    /// gRPC answer (Envoy's own refusals included), `:status N` otherwise, `reset` for a reset stream; and how many
    /// are still open.
    pub async fn answers(&mut self, wait: Duration) -> (std::collections::BTreeMap<String, usize>, usize) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut open = 0;
        for slot in &mut self.responses {
            let Some(response) = slot else { continue };
            let answer = match tokio::time::timeout_at(deadline, &mut *response).await {
                Err(_) => {
                    open += 1;
                    continue;
                }
                Ok(Err(_)) => "reset".to_string(),
                Ok(Ok(r)) => match r.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
                    Some(code) => format!("grpc-status {code}"),
                    None => format!(":status {}", r.status().as_u16()),
                },
            };
            *slot = None;
            *self.answers.entry(answer).or_default() += 1;
        }
        (self.answers.clone(), open)
    }
}

impl Drop for HeldStreams {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
