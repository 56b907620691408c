//! The only part of this crate that talks to the proxy. Wrappers return errors instead of panicking: the SDK's
//! own wrappers panic on an unexpected host status, and a panic traps the VM.

use crate::header_map::{Edit, HeaderMap};
use crate::shell::{Flow, Host, HostError, Level, Loaded, Shell, StreamFilter, Tally, counter_names};
use crate::{FetchOnce, LocalResponse};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};
use std::cell::RefCell;
use std::ptr::null;
use std::rc::Rc;

/// Logs through the proxy; a failed log call has nowhere better to go, so it is dropped.
pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

// Re-exported for [`plugin_main!`](crate::plugin_main), so a plugin's entry point needs no other import.
pub use proxy_wasm;

/// The proxy-wasm entry point of a plugin module: Info logging, the panic hook, and one [`PluginRoot`] per VM
/// context for `$plugin` (a [`Shell`]); `$root` instead names a root context of its own (the suite's).
#[macro_export]
macro_rules! plugin_main {
    (root: $root:ty, name: $name:expr) => {
        $crate::host::proxy_wasm::main! {{
            $crate::host::proxy_wasm::set_log_level($crate::host::proxy_wasm::types::LogLevel::Info);
            $crate::host::install_panic_hook($name);
            $crate::host::proxy_wasm::set_root_context(
                |_| -> Box<dyn $crate::host::proxy_wasm::traits::RootContext> { Box::new(<$root>::default()) },
            );
        }}
    };
    ($plugin:ty) => {
        $crate::plugin_main!(root: $crate::host::PluginRoot<$plugin>, name: <$plugin as $crate::PluginConfig>::NAME);
    };
}

/// A panic aborts the module (`panic = "abort"`) and the proxy then fails every request the filter sees. This hook
/// (replacing the SDK's) says so first, at critical level, with the plugin and where it panicked, so the
/// gateway's log tells why; the message is the panic's own, which the plugins never build from credentials.
pub fn install_panic_hook(plugin: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        // One line, so the whole of it stays together in the proxy's log.
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)")
            .escape_debug();
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        log(LogLevel::Critical, &format!("{plugin}: panicked{at}: {message}; the module stops here"));
    }));
}

/// The proxy's ids of a plugin's counters, defined once at configure time; the counts themselves are kept in the
/// module ([`Tally`]) and reach the proxy at each [`flush`](Self::flush) (every
/// [`FLUSH_PERIOD`](crate::metrics::FLUSH_PERIOD)).
pub struct CounterIds(Vec<Option<u32>>);

impl CounterIds {
    /// Defines `wasmgate.<plugin>.<name>` for each name; a counter the host refuses is logged and then skipped.
    pub fn define(plugin: &str, names: &[String]) -> Self {
        let ids = names
            .iter()
            .map(|name| {
                let full = crate::metrics::metric_name(plugin, name);
                match hostcalls::define_metric(MetricType::Counter, &full) {
                    Ok(id) => Some(id),
                    Err(status) => {
                        log(LogLevel::Warn, &format!("cannot define metric {full}: {status:?}"));
                        None
                    }
                }
            })
            .collect();
        Self(ids)
    }

    /// Hands what `tally` counted since the last flush to the proxy, one host call per counter that moved.
    pub fn flush(&self, tally: &Tally) {
        tally.drain(|index, count| {
            if let Some(Some(id)) = self.0.get(index) {
                let _ = hostcalls::increment_metric(*id, i64::try_from(count).unwrap_or(i64::MAX));
            }
        });
    }
}

/// Asks the proxy for `on_tick` every [`FLUSH_PERIOD`](crate::metrics::FLUSH_PERIOD), to flush the counters.
pub fn start_flushing_counters() {
    if let Err(status) = hostcalls::set_tick_period(crate::metrics::FLUSH_PERIOD) {
        log(LogLevel::Warn, &format!("cannot set a tick period, counters will not reach the proxy: {status:?}"));
    }
}

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_get_header_map_pairs(map_type: i32, return_data: *mut *mut u8, return_size: *mut usize) -> Status;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
}

/// Sends a local reply and ends the request's filter chain. `details` shows in Envoy's access log as
/// `%RESPONSE_CODE_DETAILS%`.
fn send_local_response(response: &LocalResponse, details: &str) -> Result<(), Status> {
    let pairs: Vec<(&str, &[u8])> = response.headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
    let headers = crate::header_map::serialize(&pairs);
    let grpc_status = response.grpc_status.and_then(|s| i32::try_from(s).ok()).unwrap_or(-1);
    let body = response.body.as_bytes();
    // SAFETY: every pointer/length pair describes a live slice for the duration of the call.
    let status = unsafe {
        proxy_send_local_response(
            response.status,
            if details.is_empty() { null() } else { details.as_ptr() },
            details.len(),
            if body.is_empty() { null() } else { body.as_ptr() },
            body.len(),
            headers.as_ptr(),
            headers.len(),
            grpc_status,
        )
    };
    match status {
        Status::Ok => Ok(()),
        other => Err(other),
    }
}

thread_local! {
    /// The request headers, fetched and parsed once for all the parts of a composite filter (see
    /// [`sharing_request_headers`]).
    static REQUEST_HEADERS: RefCell<FetchOnce<Rc<HeaderMap>>> = const { RefCell::new(FetchOnce::new()) };
}

/// Every request header, in one host call, parsed (read it through [`HeaderMap::view`]). Inside
/// [`sharing_request_headers`] the host is asked once, and the parts share one parsed copy.
fn request_headers() -> Result<Rc<HeaderMap>, Status> {
    REQUEST_HEADERS.with_borrow_mut(|headers| {
        headers.get(|| header_map(proxy_wasm::types::MapType::HttpRequestHeaders).map(Rc::new))
    })
}

/// Runs `callback` (the parts of one filter, in one host callback) with the request headers fetched at most
/// once between them; a change through [`set_request_header`] or [`add_request_header`] is applied to the shared
/// copy where the proxy's result is certain ([`Edit`]), else the next part fetches them again.
fn sharing_request_headers<R>(callback: impl FnOnce() -> R) -> R {
    REQUEST_HEADERS.with_borrow_mut(FetchOnce::open);
    let result = callback();
    REQUEST_HEADERS.with_borrow_mut(FetchOnce::close);
    result
}

/// Sets (`Some`) or removes (`None`) a request header.
fn set_request_header(name: &str, value: Option<&str>) -> Result<(), Status> {
    let result = hostcalls::set_map_value(proxy_wasm::types::MapType::HttpRequestHeaders, name, value);
    let edit = match value {
        None => Edit::Remove(name),
        Some(value) => Edit::Insert(name, value),
    };
    shared_headers_changed(result.is_ok().then_some(edit));
    result
}

/// Adds a request header value next to any it already has.
fn add_request_header(name: &str, value: &str) -> Result<(), Status> {
    let result = hostcalls::add_map_value(proxy_wasm::types::MapType::HttpRequestHeaders, name, value);
    shared_headers_changed(result.is_ok().then_some(Edit::Insert(name, value)));
    result
}

/// Keeps the shared request headers in step with a change the proxy made (`None`: unknown, fetch again).
fn shared_headers_changed(edit: Option<Edit<'_>>) {
    REQUEST_HEADERS.with_borrow_mut(|headers| {
        // In place when no part holds the map any more (a part lets go of its copy before it changes headers),
        // else on a copy: a part still holding the old one reads what it read before.
        headers.update(|map| edit.is_some_and(|edit| edit.apply(Rc::make_mut(map))));
    });
}

/// One of the request's header maps, in one host call, parsed.
fn header_map(map: proxy_wasm::types::MapType) -> Result<HeaderMap, Status> {
    HeaderMap::parse(header_map_raw(map)?).map_err(|_| Status::ParseFailure)
}

fn header_map_raw(map: proxy_wasm::types::MapType) -> Result<Vec<u8>, Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a buffer it allocated through our `proxy_on_memory_allocate` (the global
    // allocator), which we then own.
    match unsafe { proxy_get_header_map_pairs(map as i32, &mut data, &mut size) } {
        Status::Ok if data.is_null() => Ok(Vec::new()),
        Status::Ok => Ok(unsafe { Vec::from_raw_parts(data, size, size) }),
        other => Err(other),
    }
}

/// The plugin configuration handed to `on_configure`.
pub fn plugin_configuration() -> Result<Vec<u8>, Status> {
    Ok(hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX)?.unwrap_or_default())
}

/// Reads and parses the plugin configuration in `on_configure`, logging the outcome. `None` means the plugin
/// must return `false`, which makes Envoy refuse it: a bad config fails closed.
pub fn load_configuration<T>(plugin: &str, parse: impl FnOnce(&[u8]) -> Result<T, crate::ConfigError>) -> Option<T> {
    let bytes = match plugin_configuration() {
        Ok(bytes) => bytes,
        Err(status) => {
            log(LogLevel::Critical, &format!("{plugin}: cannot read plugin configuration: {status:?}"));
            return None;
        }
    };
    match parse(&bytes) {
        Ok(config) => Some(config),
        Err(e) => {
            log(LogLevel::Critical, &format!("{plugin}: {e}; plugin refused"));
            None
        }
    }
}

/// The downstream client's address without its port (`source.address`), if the host knows it.
fn client_address() -> Option<String> {
    let raw = hostcalls::get_property(vec!["source", "address"]).ok()??;
    let text = String::from_utf8(raw).ok()?;
    let host = match text.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
        None => text.rsplit_once(':').map_or(text.as_str(), |(host, _)| host).to_string(),
    };
    (!host.is_empty()).then_some(host)
}

/// The proxy's clock in microseconds since the Unix epoch (0 if the host cannot tell). Envoy reads the system
/// clock at each call, so two readings around a computation measure it.
fn now_micros() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_micros()).ok())
        .unwrap_or(0)
}

/// The proxy as a [`Host`]: each call a host call.
pub struct Proxy;

fn host_error(status: Status) -> HostError {
    HostError(format!("{status:?}"))
}

impl Host for Proxy {
    fn request_headers(&self) -> Result<Rc<HeaderMap>, HostError> {
        request_headers().map_err(host_error)
    }

    fn set_request_header(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        set_request_header(name, value).map_err(host_error)
    }

    fn add_request_header(&self, name: &str, value: &str) -> Result<(), HostError> {
        add_request_header(name, value).map_err(host_error)
    }

    fn request_trailers(&self) -> Result<HeaderMap, HostError> {
        header_map(proxy_wasm::types::MapType::HttpRequestTrailers).map_err(host_error)
    }

    fn set_request_trailer(&self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        hostcalls::set_map_value(proxy_wasm::types::MapType::HttpRequestTrailers, name, value).map_err(host_error)
    }

    fn request_body(&self, offset: usize, len: usize) -> Result<Vec<u8>, HostError> {
        let buffer = hostcalls::get_buffer(proxy_wasm::types::BufferType::HttpRequestBody, offset, len);
        Ok(buffer.map_err(host_error)?.unwrap_or_default())
    }

    fn response_headers(&self) -> Result<HeaderMap, HostError> {
        header_map(proxy_wasm::types::MapType::HttpResponseHeaders).map_err(host_error)
    }

    fn send_local_response(&self, response: &LocalResponse, details: &str) -> Result<(), HostError> {
        send_local_response(response, details).map_err(host_error)
    }

    fn client_address(&self) -> Option<String> {
        client_address()
    }

    fn now_micros(&self) -> u64 {
        now_micros()
    }

    fn clear_route_cache(&self) {
        // Newer Envoys no longer re-pick the route by themselves after a header change; older ones lack the
        // function and re-pick anyway, so "not found" is fine.
        let _ = hostcalls::call_foreign_function("clear_route_cache", None);
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Info => LogLevel::Info,
            Level::Warn => LogLevel::Warn,
            Level::Error => LogLevel::Error,
            Level::Critical => LogLevel::Critical,
        };
        log(level, message);
    }
}

/// A [`StreamFilter`] driven by the proxy's callbacks, through [`Proxy`].
pub struct InProxy<F> {
    filter: F,
    /// Whether the filter runs several parts (the suite's), which then share one fetch of the request headers
    /// per callback.
    parts: bool,
}

impl<F: StreamFilter> InProxy<F> {
    /// One plugin's filter.
    pub fn new(filter: F) -> Self {
        Self { filter, parts: false }
    }

    /// A filter that runs several plugins' filters in turn.
    pub fn of_parts(filter: F) -> Self {
        Self { filter, parts: true }
    }
}

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl<F> Context for InProxy<F> {}

impl<F: StreamFilter> HttpContext for InProxy<F> {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let filter = &mut self.filter;
        match self.parts {
            true => action(sharing_request_headers(|| filter.on_request_headers(&Proxy, end_of_stream))),
            false => action(filter.on_request_headers(&Proxy, end_of_stream)),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.filter.on_request_body(&Proxy, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        action(self.filter.on_request_trailers(&Proxy))
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        action(self.filter.on_response_headers(&Proxy, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(self.filter.on_response_body(&Proxy, body_size, end_of_stream))
    }
}

/// A configured plugin as a root context runs it: its counters to flush and a filter per request. A plugin's
/// own root ([`PluginRoot`]) runs one; the suite runs one per section.
pub trait Active {
    fn flush(&self);
    fn filter(&self) -> Box<dyn StreamFilter>;
}

/// A plugin loaded from its parsed config: the state its requests share and its counters' ids.
pub struct Running<P: Shell> {
    state: Rc<Loaded<P::Config>>,
    ids: CounterIds,
}

impl<P: Shell> Running<P> {
    /// Defines the plugin's counters (`wasmgate.<NAME>.*` and `host_error`) and logs what the config holds.
    pub fn load(config: P::Config) -> Self {
        log(LogLevel::Info, &format!("{}: configured: {}", P::NAME, P::summary(&config)));
        let ids = CounterIds::define(P::NAME, &counter_names::<P>(&config));
        Self { state: Rc::new(Loaded::new::<P>(config)), ids }
    }
}

impl<P: Shell> Active for Running<P> {
    fn flush(&self) {
        self.ids.flush(&self.state.counters);
    }

    fn filter(&self) -> Box<dyn StreamFilter> {
        Box::new(P::filter(self.state.clone()))
    }
}

/// A root context is dropped when the proxy deletes it (a new config, the plugin removed): what it counted since
/// the last tick still reaches the proxy.
impl<P: Shell> Drop for Running<P> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The root context every plugin uses: parse the config in `on_configure` (refusing the plugin on error),
/// define the counters, and hand each request a filter over the shared state.
pub struct PluginRoot<P: Shell> {
    running: Option<Running<P>>,
}

impl<P: Shell> Default for PluginRoot<P> {
    fn default() -> Self {
        Self { running: None }
    }
}

impl<P: Shell> Context for PluginRoot<P> {}

impl<P: Shell> RootContext for PluginRoot<P> {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(config) = load_configuration(P::NAME, P::parse) else {
            return false;
        };
        self.running = Some(Running::load(config));
        start_flushing_counters();
        true
    }

    fn on_tick(&mut self) {
        self.running.iter().for_each(Active::flush);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let running = self.running.as_ref()?;
        Some(Box::new(InProxy::new(P::filter(running.state.clone()))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
