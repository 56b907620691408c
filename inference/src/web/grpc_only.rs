//! Only gRPC reaches the gRPC services. tonic routes by path and reads any body as gRPC frames, whatever its
//! method or content type, so the server refuses itself what a gateway rule could miss:
//! - a method other than POST (`OPTIONS`, `TRACE`, over HTTP/2 a lower-case `post`): HTTP 405 with `allow: POST`;
//! - a content type other than gRPC's (`application/grpc`, `application/grpc+...`) and the four gRPC-Web ones
//!   tonic-web decodes: HTTP 415. A browser sends a form (`application/x-www-form-urlencoded`,
//!   `multipart/form-data`, `text/plain`) to any site without asking first, with the Basic credentials it holds
//!   for ours; a body built to survive form encoding ran `ModelInfer` as the signed-in user;
//! - a request a browser marks `sec-fetch-site: cross-site`: the web page calls from its own origin, and no
//!   other site's page has any business here: HTTP 403.
//!
//! Each refusal carries a gRPC status for clients that read one. The layer wraps the gRPC services only: the web
//! page beside them ([`super::page`]) is fetched with GET.

use http::{Method, Request, Response, StatusCode, header};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The layer that wraps the gRPC services (see `crate::server`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcOnlyLayer;

impl<S> Layer<S> for GrpcOnlyLayer {
    type Service = GrpcOnly<S>;

    fn layer(&self, inner: S) -> GrpcOnly<S> {
        GrpcOnly { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcOnly<S> {
    inner: S,
}

/// The gRPC-Web content types tonic-web turns into gRPC: exactly these.
const GRPC_WEB: [&str; 4] = [
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
];

/// Why a request may not reach a gRPC service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Method(String),
    ContentType(String),
    CrossSite,
}

impl Refused {
    fn status(&self) -> StatusCode {
        match self {
            Self::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::CrossSite => StatusCode::FORBIDDEN,
        }
    }

    /// UNIMPLEMENTED for a method gRPC does not have, INVALID_ARGUMENT for a body that is not gRPC's,
    /// PERMISSION_DENIED for another site's page.
    fn grpc_status(&self) -> &'static str {
        match self {
            Self::Method(_) => "12",
            Self::ContentType(_) => "3",
            Self::CrossSite => "7",
        }
    }

    /// The client's text is cut short ([`crate::echo`]) and escaped, so the message is a valid header value.
    fn message(&self) -> String {
        match self {
            Self::Method(method) => format!("gRPC requires POST; got {}", method.escape_default()),
            Self::ContentType(content_type) => format!(
                "gRPC requires content-type application/grpc or gRPC-Web's; got {}",
                content_type.escape_default()
            ),
            Self::CrossSite => "gRPC calls are not taken from another site's page (sec-fetch-site: cross-site)".into(),
        }
    }
}

/// Whether a request may reach the gRPC services, read from its method and headers.
pub fn check(method: &Method, headers: &http::HeaderMap) -> Result<(), Refused> {
    if method != Method::POST {
        return Err(Refused::Method(crate::echo::text(method.as_str()).to_string()));
    }
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let content_type = match (types.next(), types.next()) {
        (Some(only), None) => only.to_str().unwrap_or_default(),
        (None, _) => return Err(Refused::ContentType("none".into())),
        (Some(_), Some(_)) => return Err(Refused::ContentType("several".into())),
    };
    let grpc = content_type == "application/grpc" || content_type.starts_with("application/grpc+");
    if !grpc && !GRPC_WEB.contains(&content_type) {
        return Err(Refused::ContentType(crate::echo::text(content_type).to_string()));
    }
    if headers.get("sec-fetch-site").is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site")) {
        return Err(Refused::CrossSite);
    }
    Ok(())
}

/// The answer to a refused request.
pub fn refusal<B: Default>(refused: &Refused) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = refused.status();
    let headers = response.headers_mut();
    if let Refused::Method(_) = refused {
        headers.insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    }
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", header::HeaderValue::from_static(refused.grpc_status()));
    if let Ok(value) = header::HeaderValue::from_str(&refused.message()) {
        headers.insert("grpc-message", value);
    }
    response
}

impl<S, B, RB> Service<Request<B>> for GrpcOnly<S>
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
        if let Err(refused) = check(request.method(), request.headers()) {
            tracing::info!(
                path = %crate::echo::text(request.uri().path()),
                why = %refused.message(),
                "refused: not a gRPC request"
            );
            let response = refusal(&refused);
            return Box::pin(async move { Ok(response) });
        }
        let future = self.inner.call(request);
        Box::pin(future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(method: &str, pairs: &[(&str, &str)]) -> Result<(), Refused> {
        let mut headers = http::HeaderMap::new();
        for (name, value) in pairs {
            headers.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        check(&Method::from_bytes(method.as_bytes()).unwrap(), &headers)
    }

    #[test]
    fn grpc_and_the_grpc_web_tonic_web_decodes_pass() {
        for ct in ["application/grpc", "application/grpc+proto"].iter().chain(&GRPC_WEB) {
            assert_eq!(checked("POST", &[("content-type", ct)]), Ok(()), "{ct}");
        }
        assert_eq!(checked("POST", &[("content-type", "application/grpc"), ("sec-fetch-site", "same-origin")]), Ok(()));
    }

    /// What a page on another site can make a browser send without a preflight, and the other spellings.
    #[test]
    fn forms_other_types_and_other_sites_are_refused() {
        for ct in [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "application/grpcx",
            "application/grpc-web-text+json",
            "Application/grpc",
        ] {
            assert!(matches!(checked("POST", &[("content-type", ct)]), Err(Refused::ContentType(_))), "{ct}");
        }
        assert_eq!(checked("POST", &[]), Err(Refused::ContentType("none".into())));
        let two = [("content-type", "application/grpc"), ("content-type", "text/plain")];
        assert_eq!(checked("POST", &two), Err(Refused::ContentType("several".into())));
        let cross = [("content-type", "application/grpc-web+proto"), ("sec-fetch-site", "cross-site")];
        assert_eq!(checked("POST", &cross), Err(Refused::CrossSite));
    }

    #[test]
    fn the_refusal_names_the_method_and_what_is_allowed() {
        let refused = checked("post", &[("content-type", "application/grpc")]).unwrap_err();
        let response = refusal::<tonic::body::Body>(&refused);
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "POST");
        assert_eq!(response.headers()["grpc-status"], "12");
        assert_eq!(response.headers()["grpc-message"], "gRPC requires POST; got post");
        let response = refusal::<tonic::body::Body>(&checked("POST", &[("content-type", "text/plain")]).unwrap_err());
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(response.headers()["grpc-status"], "3");
    }
}
