//! The only part of this crate that talks to the proxy. Wrappers return errors instead of panicking: the SDK's
//! own wrappers panic on an unexpected host status, and a panic traps the VM.

use crate::LocalResponse;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, MetricType, Status};
use std::ptr::null;

/// Logs through the proxy; a failed log call has nowhere better to go, so it is dropped.
pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// Counters defined once at configure time and bumped by index on the request path.
pub struct Counters {
    ids: Vec<Option<u32>>,
}

impl Counters {
    /// Defines `wasmgate.<plugin>.<name>` for each name; a counter the host refuses is logged and then skipped.
    pub fn define(plugin: &str, names: &[&str]) -> Self {
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
        Self { ids }
    }

    pub fn add(&self, index: usize, value: u64) {
        if let Some(Some(id)) = self.ids.get(index) {
            let _ = hostcalls::increment_metric(*id, i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    pub fn inc(&self, index: usize) {
        self.add(index, 1);
    }
}

#[link(wasm_import_module = "env")]
unsafe extern "C" {
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
pub fn send_local_response(response: &LocalResponse, details: &str) -> Result<(), Status> {
    let headers = serialize_headers(&response.headers);
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

/// The proxy-wasm map encoding: count, then each key and value length, then the NUL-terminated strings.
fn serialize_headers(headers: &[(String, String)]) -> Vec<u8> {
    let size = 4 + headers.iter().map(|(k, v)| 8 + k.len() + v.len() + 2).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    for (k, v) in headers {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// A request header as bytes (`None` when absent). The SDK's string variant panics on non-UTF-8 values, which
/// a client controls; this one cannot.
pub fn request_header(name: &str) -> Result<Option<Vec<u8>>, Status> {
    hostcalls::get_map_value_bytes(proxy_wasm::types::MapType::HttpRequestHeaders, name)
}

/// The plugin configuration handed to `on_configure`.
pub fn plugin_configuration() -> Result<Vec<u8>, Status> {
    Ok(hostcalls::get_buffer(proxy_wasm::types::BufferType::PluginConfiguration, 0, usize::MAX)?.unwrap_or_default())
}
