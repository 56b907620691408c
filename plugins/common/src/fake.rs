//! A recording stand-in for the proxy, for native tests of a plugin's shell (its [`Host`]): the request as the
//! test sets it up, and what the filter did with it (headers changed, the reply sent, log lines, route cache
//! clears). Any call can be made to fail, as the proxy's would. Header edits follow Envoy's: removing takes every
//! value, setting replaces the first value (or appends), adding appends.

use crate::header_map::serialize;
use crate::shell::{Flow, Host, HostError, Level, StreamFilter};
use crate::{HeaderMap, LocalResponse};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

type Pairs = Vec<(String, Vec<u8>)>;

#[derive(Default)]
pub struct FakeHost {
    request_headers: RefCell<Pairs>,
    request_trailers: RefCell<Pairs>,
    response_headers: RefCell<Pairs>,
    /// The body chunk the proxy holds during `on_request_body`.
    chunk: RefCell<Vec<u8>>,
    client_address: Option<String>,
    replies: RefCell<Vec<(LocalResponse, String)>>,
    logs: RefCell<Vec<(Level, String)>>,
    route_cache_clears: Cell<u32>,
    request_header_fetches: Cell<u32>,
    failing: RefCell<Vec<&'static str>>,
}

fn pairs(headers: &[(&str, &str)]) -> Pairs {
    headers.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
}

fn header_map(pairs: &Pairs) -> Result<HeaderMap, HostError> {
    let refs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    HeaderMap::parse(serialize(&refs)).map_err(|_| HostError("ParseFailure".into()))
}

fn values(pairs: &Pairs, name: &str) -> Vec<String> {
    pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).collect()
}

fn set(pairs: &mut Pairs, name: &str, value: Option<&str>) {
    let name = name.to_ascii_lowercase();
    match value {
        None => pairs.retain(|(k, _)| *k != name),
        Some(value) => match pairs.iter_mut().find(|(k, _)| *k == name) {
            Some((_, first)) => *first = value.as_bytes().to_vec(),
            None => pairs.push((name, value.as_bytes().to_vec())),
        },
    }
}

impl FakeHost {
    /// A request with these headers (pseudo-headers included), from no known address, at time 0.
    pub fn request(headers: &[(&str, &str)]) -> Self {
        Self { request_headers: RefCell::new(pairs(headers)), ..Self::default() }
    }

    pub fn with_client_address(mut self, address: &str) -> Self {
        self.client_address = Some(address.into());
        self
    }

    pub fn with_trailers(self, trailers: &[(&str, &str)]) -> Self {
        *self.request_trailers.borrow_mut() = pairs(trailers);
        self
    }

    pub fn set_response_headers(&self, headers: &[(&str, &str)]) {
        *self.response_headers.borrow_mut() = pairs(headers);
    }

    /// Makes every later call of the [`Host`] method called `call` fail.
    pub fn fail(&self, call: &'static str) {
        self.failing.borrow_mut().push(call);
    }

    fn check(&self, call: &'static str) -> Result<(), HostError> {
        match self.failing.borrow().contains(&call) {
            true => Err(HostError(format!("{call}: InternalFailure"))),
            false => Ok(()),
        }
    }

    /// Hands `chunk` to the filter as the next piece of the request body.
    pub fn send_body(&self, filter: &mut dyn StreamFilter, chunk: &[u8], end_of_stream: bool) -> Flow {
        *self.chunk.borrow_mut() = chunk.to_vec();
        filter.on_request_body(self, chunk.len(), end_of_stream)
    }

    /// Every value of a request header, as the upstream would now see it.
    pub fn request_header(&self, name: &str) -> Vec<String> {
        values(&self.request_headers.borrow(), name)
    }

    pub fn request_trailer(&self, name: &str) -> Vec<String> {
        values(&self.request_trailers.borrow(), name)
    }

    /// The local reply sent, with its details, if one was.
    pub fn reply(&self) -> Option<(LocalResponse, String)> {
        let replies = self.replies.borrow();
        assert!(replies.len() <= 1, "more than one local reply: {replies:?}");
        replies.first().cloned()
    }

    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }

    pub fn route_cache_clears(&self) -> u32 {
        self.route_cache_clears.get()
    }

    pub fn request_header_fetches(&self) -> u32 {
        self.request_header_fetches.get()
    }
}

impl Host for FakeHost {
    fn request_headers(&self) -> Result<Rc<HeaderMap>, HostError> {
        self.check("request_headers")?;
        self.request_header_fetches.set(self.request_header_fetches.get() + 1);
        header_map(&self.request_headers.borrow()).map(Rc::new)
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.check("set_request_header")?;
        set(&mut self.request_headers.borrow_mut(), name, value);
        Ok(())
    }

    fn add_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        self.check("add_request_header")?;
        self.request_headers.borrow_mut().push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        Ok(())
    }

    fn request_trailers(&self) -> Result<HeaderMap, HostError> {
        self.check("request_trailers")?;
        header_map(&self.request_trailers.borrow())
    }

    fn set_request_trailer(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.check("set_request_trailer")?;
        set(&mut self.request_trailers.borrow_mut(), name, value);
        Ok(())
    }

    fn request_body(&self, offset: usize, len: usize) -> Result<Vec<u8>, HostError> {
        self.check("request_body")?;
        let chunk = self.chunk.borrow();
        let start = offset.min(chunk.len());
        Ok(chunk[start..(start + len).min(chunk.len())].to_vec())
    }

    fn response_headers(&self) -> Result<HeaderMap, HostError> {
        self.check("response_headers")?;
        header_map(&self.response_headers.borrow())
    }

    fn send_local_response(&self, response: &LocalResponse, details: &str) -> Result<(), HostError> {
        self.check("send_local_response")?;
        self.replies.borrow_mut().push((response.clone(), details.into()));
        Ok(())
    }

    fn client_address(&self) -> Option<String> {
        self.client_address.clone()
    }

    fn now_micros(&self) -> u64 {
        0
    }

    fn clear_route_cache(&self) {
        self.route_cache_clears.set(self.route_cache_clears.get() + 1);
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_edits_follow_envoys() {
        let host = FakeHost::request(&[(":path", "/"), ("x-a", "1"), ("x-a", "2"), ("X-B", "b")]);
        host.set_request_header("x-a", Some("set")).unwrap();
        assert_eq!(host.request_header("x-a"), ["set", "2"], "setting replaces the first value");
        host.add_request_header("x-a", "3").unwrap();
        host.set_request_header("x-a", None).unwrap();
        assert!(host.request_header("x-a").is_empty(), "removing takes every value");
        host.set_request_header("x-c", Some("c")).unwrap();
        let headers = host.request_headers().unwrap();
        assert_eq!(headers.view().get("x-c"), Some(&b"c"[..]));
        assert_eq!(host.request_header_fetches(), 1);
    }

    #[test]
    fn a_failing_call_fails_and_the_others_go_on() {
        let host = FakeHost::request(&[(":path", "/")]);
        host.fail("set_request_header");
        assert!(host.set_request_header("x", None).is_err());
        assert!(host.request_headers().is_ok());
    }

    #[test]
    fn body_reads_are_clipped_to_the_chunk() {
        struct Reader(Vec<Vec<u8>>);
        impl StreamFilter for Reader {
            fn on_request_body(&mut self, host: &dyn Host, size: usize, _end: bool) -> Flow {
                self.0.push(host.request_body(1, size).unwrap());
                Flow::Continue
            }
        }
        let host = FakeHost::request(&[]);
        let mut reader = Reader(Vec::new());
        host.send_body(&mut reader, b"abcd", true);
        assert_eq!(reader.0, [b"bcd".to_vec()]);
    }
}
