//! An upstream of the harness's own: speaks HTTP/1.1 and h2c on one port, records every request that reaches
//! it (so a test can prove a denied request never did), answers plain requests with a JSON echo, gRPC health
//! with a real `grpc.health.v1.Health` service, and any other gRPC method as a sink that returns the SHA-256
//! of what it received.

use anyhow::Result;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// What reached the upstream: the request line, headers, and the body's size and SHA-256.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub authority: String,
    pub headers: Vec<(String, String)>,
    /// The request's trailers, if it had any.
    pub trailers: Vec<(String, String)>,
    pub body_len: u64,
    pub body_sha256: String,
    /// Whether the body arrived whole (false when the stream was reset, e.g. by a refusal).
    pub complete: bool,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<RecordedRequest>>>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Starts on a free loopback port; responses carry `x-upstream: <name>`.
    pub async fn start(name: &str) -> Result<Self> {
        let listener = TcpListener::bind((crate::loopback::next_address(), 0)).await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (_reporter, health) = tonic_health::server::health_reporter();
        let grpc = tonic::service::Routes::new(health).prepare();
        let state = (name.to_string(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (name, seen, grpc) = (state.0.clone(), state.1.clone(), grpc.clone());
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| handle(req, name.clone(), seen.clone(), grpc.clone()));
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    // HTTP/2 as the model server speaks it, so a large message meets the same flow control.
                    let http2 = wasmgate_inference::http2_settings::Http2Settings::DEFAULT;
                    builder
                        .http2()
                        .initial_stream_window_size(http2.stream_window)
                        .initial_connection_window_size(http2.connection_window)
                        .max_frame_size(http2.max_frame);
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Ok(Self { name: name.to_string(), addr, seen, task })
    }

    /// Everything received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().map(|v| v.len()).unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut v) = self.seen.lock() {
            v.clear();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    req: Request<Incoming>,
    name: String,
    seen: Arc<Mutex<Vec<RecordedRequest>>>,
    grpc: tonic::service::Routes,
) -> Result<Response<tonic::body::Body>, Infallible> {
    let (parts, mut body) = req.into_parts();
    let is_grpc = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    let is_health = parts.uri.path().starts_with("/grpc.health.v1.Health/");
    // Hash the body as it streams, so a 100 MB upload costs no 100 MB here; health requests are small and kept
    // whole for the service behind.
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut kept = Vec::new();
    let mut complete = true;
    let mut trailers = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            complete = false;
            break;
        };
        if let Some(map) = frame.trailers_ref() {
            trailers
                .extend(map.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())));
        }
        if let Some(data) = frame.data_ref() {
            hasher.update(data);
            len += data.len() as u64;
            if is_health {
                kept.extend_from_slice(data);
            }
        }
    }
    let record = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        authority: parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .or_else(|| parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string))
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        trailers,
        body_len: len,
        body_sha256: hex::encode(hasher.finalize()),
        complete,
    };
    let echo = json!({
        "upstream": name,
        "method": record.method,
        "path": record.path,
        "authority": record.authority,
        "body_len": record.body_len,
        "body_sha256": record.body_sha256,
    });
    let digest = record.body_sha256.clone();
    if let Ok(mut v) = seen.lock() {
        v.push(record);
    }
    let mut response = if is_health {
        let req = Request::from_parts(parts, Full::new(Bytes::from(kept)));
        grpc.oneshot(req).await?
    } else if is_grpc {
        grpc_sink_response(&digest)
    } else {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(tonic::body::Body::new(Full::new(Bytes::from(echo.to_string()))))
            .unwrap_or_default()
    };
    response.headers_mut().insert("x-upstream", header_value(&name));
    Ok(response)
}

/// The gRPC sink's answer to any other method: one message holding the hex SHA-256 of the request body as
/// received (prefixes included), then `grpc-status: 0`.
fn grpc_sink_response(digest: &str) -> Response<tonic::body::Body> {
    let message = crate::grpc::frame(digest.as_bytes());
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body = Full::new(Bytes::from(message)).with_trailers(async move { Some(Ok(trailers)) });
    Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(tonic::body::Body::new(body))
        .unwrap_or_default()
}

fn header_value(name: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(name).unwrap_or(http::HeaderValue::from_static("upstream"))
}
