//! A plugin's shell apart from the proxy: the [`Host`] it asks (headers, replies, body bytes, the client's
//! address, the clock, the log), the per-request [`StreamFilter`] the proxy's callbacks drive, and the state its
//! requests share ([`Loaded`]). The wasm build drives a filter from proxy-wasm callbacks through the real host
//! (`host`); native tests drive the same filter through a recording fake ([`crate::fake::FakeHost`]), so the
//! shell's own decisions are tested without Envoy, as Envoy's `filter_test.cc` tests a filter with mocks.

use crate::{HeaderMap, LocalResponse, PluginConfig};
use std::cell::RefCell;
use std::rc::Rc;

/// What a filter callback tells the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop the request here: the filter has answered it.
    Pause,
}

/// A host call that failed, as the proxy reported it (a proxy-wasm status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError(pub String);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warn,
    Error,
    Critical,
}

/// What a filter asks of the proxy about the request in hand.
pub trait Host {
    /// Every request header, parsed (shared by the parts of a composite filter within one callback).
    fn request_headers(&self) -> Result<Rc<HeaderMap>, HostError>;
    /// Sets (`Some`) or removes (`None`) a request header.
    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError>;
    /// Adds a value next to any the header already has.
    fn add_request_header(&self, name: &str, value: &str) -> Result<(), HostError>;
    fn request_trailers(&self) -> Result<HeaderMap, HostError>;
    fn set_request_trailer(&self, name: &str, value: Option<&str>) -> Result<(), HostError>;
    /// `len` bytes of the request body chunk being streamed, from `offset`.
    fn request_body(&self, offset: usize, len: usize) -> Result<Vec<u8>, HostError>;
    fn response_headers(&self) -> Result<HeaderMap, HostError>;
    /// Answers the request and ends its filter chain; `details` shows as `%RESPONSE_CODE_DETAILS%`.
    fn send_local_response(&self, response: &LocalResponse, details: &str) -> Result<(), HostError>;
    /// The downstream client's address without its port, if the proxy knows it.
    fn client_address(&self) -> Option<String>;
    /// Microseconds since the Unix epoch (0 if the proxy cannot tell).
    fn now_micros(&self) -> u64;
    /// Has the proxy pick the route again after the filter changed what routes match on.
    fn clear_route_cache(&self);
    fn log(&self, level: Level, message: &str);
}

/// A request as a filter sees it: each callback may answer (and then returns [`Flow::Pause`]).
pub trait StreamFilter {
    fn on_request_headers(&mut self, _host: &dyn Host, _end_of_stream: bool) -> Flow {
        Flow::Continue
    }
    fn on_request_body(&mut self, _host: &dyn Host, _body_size: usize, _end_of_stream: bool) -> Flow {
        Flow::Continue
    }
    fn on_request_trailers(&mut self, _host: &dyn Host) -> Flow {
        Flow::Continue
    }
    fn on_response_headers(&mut self, _host: &dyn Host, _end_of_stream: bool) -> Flow {
        Flow::Continue
    }
    fn on_response_body(&mut self, _host: &dyn Host, _body_size: usize, _end_of_stream: bool) -> Flow {
        Flow::Continue
    }
}

/// What a plugin's shell adds to what it is natively ([`PluginConfig`]): its counters and its per-request filter.
pub trait Shell: PluginConfig {
    /// The plugin's counters, in index order; `host_error` is added after them.
    fn counters(config: &Self::Config) -> Vec<String>;
    /// The filter for one request: a type of its own, so that the proxy's request context holds it without a
    /// second allocation.
    type Filter: StreamFilter + 'static;
    fn filter(state: Rc<Loaded<Self::Config>>) -> Self::Filter;
}

/// A configured plugin, shared by its requests.
pub struct Loaded<C> {
    pub config: C,
    pub counters: Tally,
    /// Index of the `host_error` counter.
    pub host_error: usize,
}

impl<C> Loaded<C> {
    /// The state for a parsed config, with a zero for each of the plugin's counters ([`counter_names`]).
    pub fn new<P: Shell<Config = C>>(config: C) -> Self {
        let names = counter_names::<P>(&config);
        Self { counters: Tally::new(names.len()), host_error: names.len() - 1, config }
    }
}

/// The plugin's counters for a config, `host_error` last.
pub fn counter_names<P: Shell>(config: &P::Config) -> Vec<String> {
    let mut names = P::counters(config);
    names.push("host_error".into());
    names
}

/// Counts kept in the module, by counter index, until the root context hands them to the proxy: counting is then
/// free on the request path (a host call per count costs ~1.9k instructions under V8).
#[derive(Debug, Default)]
pub struct Tally(RefCell<Vec<u64>>);

impl Tally {
    pub fn new(counters: usize) -> Self {
        Self(RefCell::new(vec![0; counters]))
    }

    pub fn add(&self, index: usize, value: u64) {
        if let Some(slot) = self.0.borrow_mut().get_mut(index) {
            *slot = slot.saturating_add(value);
        }
    }

    pub fn inc(&self, index: usize) {
        self.add(index, 1);
    }

    /// Hands each counter that moved since the last drain to `each` (index, count), leaving zeros.
    pub fn drain(&self, mut each: impl FnMut(usize, u64)) {
        for (index, count) in self.0.borrow_mut().iter_mut().enumerate() {
            match std::mem::take(count) {
                0 => {}
                moved => each(index, moved),
            }
        }
    }

    /// The count at `index` since the last drain.
    pub fn get(&self, index: usize) -> u64 {
        self.0.borrow().get(index).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_by_index_until_taken() {
        let tally = Tally::new(2);
        tally.inc(1);
        tally.add(1, 4);
        tally.add(7, 1); // no such counter: ignored, not a panic
        assert_eq!(tally.get(1), 5);
        let drained = |tally: &Tally| {
            let mut moved = Vec::new();
            tally.drain(|index, count| moved.push((index, count)));
            moved
        };
        assert_eq!(drained(&tally), [(1, 5)]);
        assert_eq!(drained(&tally), [], "drained to zero");
    }
}
