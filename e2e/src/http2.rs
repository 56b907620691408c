//! HTTP/2 requests no polite client sends (any `:method` spelling, any `:authority`, several content types),
//! sent by python-hyper's `h2` with its header validation off (`e2e/clients/h2_request.py`): tonic, hyper and
//! nghttp refuse to build them, and an attacker is not limited to what they build.

use crate::workspace;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

#[derive(Debug, Clone)]
pub struct H2Request {
    method: String,
    path: String,
    authority: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

/// What came back: `:status` and every header and trailer, in order. A request the peer refused at the
/// protocol level (a reset stream or a GOAWAY before any answer) has status 0.
#[derive(Debug, Clone)]
pub struct H2Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The error code of a `RST_STREAM` that ended the answer, if one did.
    pub reset: Option<u64>,
    /// The error code of a `GOAWAY` that ended the connection, if one did.
    pub goaway: Option<u64>,
    /// Whether the connection closed before the answer ended.
    pub closed: bool,
}

impl H2Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether the peer refused the request in the protocol itself, before answering it.
    pub fn refused_by_protocol(&self) -> bool {
        self.status == 0 && (self.reset.is_some() || self.goaway.is_some() || self.closed)
    }

    /// `grpc-status` as a number, from headers or trailers.
    pub fn grpc_status(&self) -> Option<u32> {
        self.header("grpc-status")?.parse().ok()
    }
}

impl H2Request {
    pub fn new(method: &str, path: &str, authority: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            authority: authority.into(),
            headers: Vec::new(),
            body: Vec::new(),
            trailers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        self.header("authorization", &crate::http1::basic_authorization(user, password))
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A trailer, sent after the body (which must not be empty).
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.into(), value.into()));
        self
    }

    /// Sends over h2c (prior knowledge) to `addr` and waits for the whole answer.
    pub async fn send(&self, addr: SocketAddr) -> Result<H2Response> {
        let request = self.clone();
        tokio::task::spawn_blocking(move || request.send_blocking(addr)).await?
    }

    fn send_blocking(&self, addr: SocketAddr) -> Result<H2Response> {
        let dir = tempfile::tempdir()?;
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", &self.method),
            (":scheme", "http"),
            (":path", &self.path),
            (":authority", &self.authority),
        ];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let body = if self.body.is_empty() {
            Value::Null
        } else {
            let file = dir.path().join("body");
            std::fs::write(&file, &self.body)?;
            Value::String(file.display().to_string())
        };
        let request = json!({"address": addr.to_string(), "headers": headers, "body": body, "trailers": self.trailers});
        let script = workspace::root().join("e2e/clients/h2_request.py");
        let mut child = Command::new(workspace::python()?)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running e2e/clients/h2_request.py")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(request.to_string().as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!("h2_request.py failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let answer: Value = serde_json::from_slice(&output.stdout).context("reading h2_request.py's answer")?;
        let headers: Vec<(String, String)> = answer["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pair| Some((pair[0].as_str()?.to_string(), pair[1].as_str()?.to_string())))
            .collect();
        let (reset, goaway) = (answer["reset"].as_u64(), answer["goaway"].as_u64());
        let closed = answer["closed"].as_bool().unwrap_or(false);
        let status = answer["status"].as_u64().and_then(|s| u16::try_from(s).ok()).unwrap_or(0);
        Ok(H2Response { status, headers, reset, goaway, closed })
    }
}
