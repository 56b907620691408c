//! A byte-exact HTTP/1.1 client: tests need requests no polite client sends (odd spacing, duplicate or
//! non-UTF-8 headers, absolute-form targets), so the request is written as given and the response parsed here.

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub struct RawRequest {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// Send the body with `transfer-encoding: chunked` in pieces of this size (no content-length).
    chunk_size: Option<usize>,
    /// Connect from this loopback address (the proxy sees it as the client's).
    source: Option<std::net::IpAddr>,
}

#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl RawRequest {
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.into(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
            chunk_size: None,
            source: None,
        }
    }

    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    pub fn host(self, host: &str) -> Self {
        self.header("host", host)
    }

    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// A header whose value is sent as these exact bytes.
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.into(), value.to_vec()));
        self
    }

    /// `authorization: Basic base64(user:password)`.
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        self.header("authorization", &basic_authorization(user, password))
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the body chunked, `size` bytes a chunk, without a content-length.
    pub fn chunked(mut self, size: usize) -> Self {
        self.chunk_size = Some(size.max(1));
        self
    }

    /// Sends over TLS to `addr`, naming `server_name` (SNI) and trusting the CA in `ca_pem`; ALPN `http/1.1`.
    pub async fn send_tls(&self, addr: SocketAddr, server_name: &str, ca_pem: &str) -> Result<RawResponse> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())?;
        tokio::time::timeout(Duration::from_secs(60), async {
            let tcp = self.connect(addr).await?;
            let mut stream = connector.connect(name, tcp).await.context("TLS handshake")?;
            stream.write_all(&self.to_bytes()).await?;
            let mut raw = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        raw.extend_from_slice(&buf[..n]);
                        if is_complete(&raw) {
                            break;
                        }
                    }
                    Err(e) if raw.is_empty() => return Err(e.into()),
                    Err(_) => break,
                }
            }
            parse_response(&raw)
        })
        .await
        .context("no response within 60 s")?
    }

    /// A connection to `addr`, from the request's source address if it has one.
    async fn connect(&self, addr: SocketAddr) -> Result<TcpStream> {
        match self.source {
            None => TcpStream::connect(addr).await,
            Some(source) => {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind((source, 0).into())?;
                socket.connect(addr).await
            }
        }
        .with_context(|| format!("connecting to {addr}"))
    }

    /// Connects from `source` (any of 127.0.0.0/8 works on Linux loopback): another client address.
    pub fn from(mut self, source: std::net::IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        match self.chunk_size {
            Some(_) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            None if !self.body.is_empty() => {
                out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
            }
            None => {}
        }
        out.extend_from_slice(b"connection: close\r\n\r\n");
        match self.chunk_size {
            Some(size) => {
                for chunk in self.body.chunks(size) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            None => out.extend_from_slice(&self.body),
        }
        out
    }

    /// Sends on a fresh connection and reads the whole response (the connection is closed after it). Reading
    /// runs alongside writing: a proxy may answer (413, 401) before a large body is sent, and stop reading it.
    pub async fn send(&self, addr: SocketAddr) -> Result<RawResponse> {
        tokio::time::timeout(Duration::from_secs(60), async {
            let stream = self.connect(addr).await?;
            let (mut reader, mut writer) = stream.into_split();
            let bytes = self.to_bytes();
            let write = tokio::spawn(async move {
                let _ = writer.write_all(&bytes).await;
                writer
            });
            // Read until the response is whole, not until the connection closes: after a local reply Envoy
            // waits up to its `delayed_close_timeout` (1 s) for the client to close first.
            let mut raw = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            let read = loop {
                match reader.read(&mut buf).await {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        raw.extend_from_slice(&buf[..n]);
                        if is_complete(&raw) {
                            break Ok(());
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            write.abort();
            if raw.is_empty() {
                read.context("reading the response")?;
            }
            parse_response(&raw)
        })
        .await
        .context("no response within 60 s")?
    }
}

/// Whether `raw` holds a whole response: headers, and a body as long as `content-length` says, or chunked up to
/// its last chunk, or none for statuses that have none.
fn is_complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let Ok(response) = parse_head(&raw[..end]) else {
        return false;
    };
    let body = &raw[end + 4..];
    let header = |name: &str| response.1.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if matches!(response.0, 100..=199 | 204 | 304) {
        return true;
    }
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return dechunk(body).is_ok();
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(length) => body.len() >= length,
        None => false,
    }
}

fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>)> {
    let head = std::str::from_utf8(head).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).context("bad status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

/// The `authorization` value for Basic credentials: `Basic base64(user:password)`.
pub fn basic_authorization(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

pub fn parse_response(raw: &[u8]) -> Result<RawResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("response without end of headers")?;
    let (status, headers) = parse_head(&raw[..end])?;
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Ok(RawResponse { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").context("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end])?.split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text.trim(), 16).context("bad chunk size")?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_and_plain() {
        let r = parse_response(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\ncontent-length: 2\r\n\r\nno")
            .unwrap();
        assert_eq!((r.status, r.header("www-authenticate"), r.text().as_str()), (401, Some("Basic"), "no"));
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(r.text(), "abcde");
    }
}
