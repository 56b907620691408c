//! gRPC is POST only (gRPC over HTTP/2: `:method` is `POST`), but tonic routes by path and never looks at the
//! method: an `OPTIONS`, `TRACE` or, over HTTP/2, lower-case `post` request on a gRPC path was served like a
//! POST. A gateway rule that lists methods skips those requests, so the server must refuse them itself. The
//! refusal is HTTP 405 with `allow: POST`, and a gRPC status for clients that read one. The layer wraps the gRPC
//! services only: the web page beside them ([`crate::page`]) is fetched with GET.

use http::{Method, Request, Response, StatusCode, header};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The layer that wraps the gRPC services (see `crate::server`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PostOnlyLayer;

impl<S> Layer<S> for PostOnlyLayer {
    type Service = PostOnly<S>;

    fn layer(&self, inner: S) -> PostOnly<S> {
        PostOnly { inner }
    }
}

#[derive(Debug, Clone)]
pub struct PostOnly<S> {
    inner: S,
}

/// The answer to a request whose method is not POST.
pub fn refusal<B: Default>(method: &Method) -> Response<B> {
    // A method that is not a token cannot come through hyper; the message stays ASCII either way.
    let message =
        format!("gRPC requires POST; got {}", crate::echo::text(method.as_str()).to_string().escape_default());
    let mut response = Response::new(B::default());
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    let headers = response.headers_mut();
    headers.insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", header::HeaderValue::from_static("12"));
    if let Ok(value) = header::HeaderValue::from_str(&message) {
        headers.insert("grpc-message", value);
    }
    response
}

impl<S, B, RB> Service<Request<B>> for PostOnly<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if request.method() != Method::POST {
            tracing::info!(
                method = %crate::echo::text(request.method().as_str()),
                path = %crate::echo::text(request.uri().path()),
                "refused: gRPC requires POST"
            );
            let response = refusal(request.method());
            return Box::pin(async move { Ok(response) });
        }
        let future = self.inner.call(request);
        Box::pin(future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_names_the_method_and_what_is_allowed() {
        let response = refusal::<tonic::body::Body>(&Method::from_bytes(b"post").unwrap());
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "POST");
        assert_eq!(response.headers()["grpc-status"], "12");
        assert_eq!(response.headers()["grpc-message"], "gRPC requires POST; got post");
    }
}
