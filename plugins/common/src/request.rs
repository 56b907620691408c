//! The request line as policies see it: host read as Envoy's router reads it (no port, no trailing dot, lower
//! case), computed at most once per request and only if a policy looks at it, and path without its query
//! string; and the check that a policy's decision does not depend on how the request is read.

use crate::host_match::BadAuthority;
use crate::path_match::{other_readings, split_path};
use crate::{Denial, GrpcStatus, HostPattern, normalize_host};
use std::borrow::Cow;
use std::cell::OnceCell;

#[derive(Debug, Clone)]
pub struct RequestLine<'a> {
    authority: &'a str,
    host: OnceCell<Result<Cow<'a, str>, BadAuthority>>,
    pub path: &'a str,
    pub method: &'a str,
    /// Whether `path` holds anything another reading can come from (else there is nothing to check).
    may_read_otherwise: bool,
}

/// Why a request cannot be decided on: a policy answers it with 400 instead of choosing a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The authority is not a host name, and the policy has rules scoped to hosts.
    Host(BadAuthority),
    /// The path reads as another path to a server that decodes, merges or drops what Envoy kept, and the
    /// policy's decision for that other path differs.
    AmbiguousPath,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Host(why) => write!(f, "invalid host: {why}"),
            Self::AmbiguousPath => f.write_str("ambiguous path (encoded or repeated slashes, `;`, dot segments)"),
        }
    }
}

impl Unreadable {
    pub fn denial(self) -> Denial {
        Denial::new(400, GrpcStatus::InvalidArgument, format!("Bad request: {self}."))
    }
}

impl<'a> RequestLine<'a> {
    pub fn new(authority: &'a str, path: &'a str, method: &'a str) -> Self {
        let (path, may_read_otherwise) = split_path(path);
        Self { authority, host: OnceCell::new(), path, method, may_read_otherwise }
    }

    /// The host, or why the authority is not one.
    pub fn host(&self) -> &Result<Cow<'a, str>, BadAuthority> {
        self.host.get_or_init(|| normalize_host(self.authority))
    }

    /// Whether the host is one of `patterns`; an empty list covers every request, a host that could not be read
    /// is in no list.
    pub fn host_in(&self, patterns: &[HostPattern]) -> bool {
        patterns.is_empty() || self.host().as_ref().is_ok_and(|host| patterns.iter().any(|p| p.matches(host)))
    }

    /// The same request with another path (already without its query).
    pub fn with_path<'b>(&'b self, path: &'b str) -> RequestLine<'b> {
        // The host once read is kept (rebuilt, since a cell does not shorten its lifetime).
        let host = self.host.get().map_or_else(OnceCell::new, |host| OnceCell::from(host.clone()));
        // Not scanned: nothing checks a reading for readings of its own, and `true` only lets `other_readings`
        // scan it should anything ever do so.
        RequestLine { authority: self.authority, host, path, method: self.method, may_read_otherwise: true }
    }

    /// Checks that the request reads one way only before a policy decides on it: with `host_scoped` (the
    /// policy has rules naming hosts), the authority must be a host name; and `same_decision` must hold between
    /// this request and each other reading of its path (see [`other_readings`]). Free for a path with nothing to
    /// read another way.
    pub fn check_unambiguous(
        &self,
        host_scoped: bool,
        same_decision: impl Fn(&RequestLine<'_>, &RequestLine<'_>) -> bool,
    ) -> Result<(), Unreadable> {
        if host_scoped && let Err(why) = self.host() {
            return Err(Unreadable::Host(*why));
        }
        if !self.may_read_otherwise {
            return Ok(());
        }
        for reading in other_readings(self.path) {
            if !same_decision(self, &self.with_path(&reading)) {
                return Err(Unreadable::AmbiguousPath);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decision_that_changes_with_the_reading_is_refused() {
        // `^/admin(/|$)`, as a deny rule writes it.
        let under_admin = |r: &RequestLine<'_>| r.path == "/admin" || r.path.starts_with("/admin/");
        let admin = |a: &RequestLine<'_>, b: &RequestLine<'_>| under_admin(a) == under_admin(b);
        for path in ["/admin%2Fusers", "//admin", "/x/..%2Fadmin", "/admin;a=b"] {
            let req = RequestLine::new("h", path, "GET");
            assert_eq!(req.check_unambiguous(false, admin), Err(Unreadable::AmbiguousPath), "{path}");
        }
        // Readings that do not change the decision pass: `/admin//users` is under `/admin` either way.
        for path in ["/admin//users", "/admin/x%2Fy", "/public%20file", "/admin"] {
            let req = RequestLine::new("h", path, "GET");
            assert_eq!(req.check_unambiguous(false, admin), Ok(()), "{path}");
        }
    }

    #[test]
    fn hosts_are_checked_only_where_rules_name_hosts() {
        let req = RequestLine::new("a:b.example.com:443", "/", "GET");
        assert!(matches!(req.check_unambiguous(true, |_, _| true), Err(Unreadable::Host(_))));
        assert_eq!(req.check_unambiguous(false, |_, _| true), Ok(()));
        let patterns = [HostPattern::parse("*.example.com").unwrap()];
        assert!(!req.host_in(&patterns));
        assert!(req.host_in(&[]));
        assert!(RequestLine::new("A.Example.com:8443", "/", "GET").host_in(&patterns));
        let denial = Unreadable::AmbiguousPath.denial();
        assert_eq!((denial.http_status, denial.grpc_status), (400, GrpcStatus::InvalidArgument));
    }
}
