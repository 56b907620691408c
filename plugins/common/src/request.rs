//! The request line as policies see it: host normalised (no port, no trailing dot, lower case) and path
//! without its query string, computed once per request.

use crate::{normalize_host, path_without_query};
use std::borrow::Cow;

#[derive(Debug, Clone)]
pub struct RequestLine<'a> {
    pub host: Cow<'a, str>,
    pub path: &'a str,
    pub method: &'a str,
}

impl<'a> RequestLine<'a> {
    pub fn new(authority: &'a str, path: &'a str, method: &'a str) -> Self {
        Self { host: normalize_host(authority), path: path_without_query(path), method }
    }
}
