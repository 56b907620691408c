//! The floor under any proxy-wasm HTTP filter on V8: hand-written modules that export only what the host needs
//! to run a stream context (create, request headers, delete). What the no-op one costs over passthrough is
//! Envoy's and V8's share of any wasm filter, which no plugin code can remove; the one that reads the request
//! headers (what every wasmgate plugin does once per request) shows what that host call costs, and the one that
//! asks for five headers by name what the other way of reading them costs.

use anyhow::Result;
use std::path::{Path, PathBuf};

/// `ON_REQUEST` is the body of `proxy_on_request_headers`. The allocator hands out memory from a bump pointer
/// that each request resets, so the host always has room to copy the headers into.
fn module(on_request: &str) -> String {
    format!(
        r#"
(module
  (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 64) ":authority:path:methodauthorizationcontent-typex-wasmgate-userusername")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $at))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $heap (i32.const 1024))
    {on_request}
    (i32.const 0))
  (func (export "proxy_on_delete") (param i32)))
"#
    )
}

/// Writes the no-op module into `dir` and returns its path.
pub fn write_noop(dir: &Path) -> Result<PathBuf> {
    write_module(dir, "noop", "")
}

/// Writes a module that reads every request header (one host call, and the host's call back into the module's
/// allocator) and does nothing else.
pub fn write_header_reader(dir: &Path) -> Result<PathBuf> {
    // Map type 0 is the request headers; the host writes the buffer's address at 16 and its size at 20.
    write_module(dir, "reads-headers", "(drop (call $pairs (i32.const 0) (i32.const 16) (i32.const 20)))")
}

/// Writes a module that reads, one host call each, the request headers basic-auth needs (`:authority`, `:path`,
/// `:method`, `authorization`, `content-type`), and does nothing else: the other way to read headers.
pub fn write_value_reader(dir: &Path) -> Result<PathBuf> {
    // The names sit at 64 in the data segment; the host writes each value's address at 16 and its size at 20.
    let read = |at: u32, len: u32| {
        format!("(drop (call $value (i32.const 0) (i32.const {at}) (i32.const {len}) (i32.const 16) (i32.const 20)))")
    };
    let names = [(64, 10), (74, 5), (79, 7), (86, 13), (99, 12)];
    let body: Vec<String> = names.iter().map(|&(at, len)| read(at, len)).collect();
    write_module(dir, "reads-values", &body.join("\n    "))
}

/// Writes a module that reads every request header and adds one (`x-wasmgate-user: username`, what basic-auth
/// forwards to the upstream once it knows the caller), and does nothing else: the floor under a plugin that
/// forwards what it found.
pub fn write_header_forwarder(dir: &Path) -> Result<PathBuf> {
    // The name sits at 111 in the data segment, the value at 126.
    let body = "(drop (call $pairs (i32.const 0) (i32.const 16) (i32.const 20)))
    (drop (call $add (i32.const 0) (i32.const 111) (i32.const 15) (i32.const 126) (i32.const 8)))";
    write_module(dir, "forwards-a-header", body)
}

/// Writes `<name>.wasm` into `dir`: the minimal module with `on_request` (WAT instructions) as the body of
/// `proxy_on_request_headers`.
pub fn write_module(dir: &Path, name: &str, on_request: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_str(module(on_request))?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_modules_are_valid_wasm() {
        let dir = tempfile::tempdir().expect("tempdir");
        for path in [
            super::write_noop(dir.path()).expect("noop"),
            super::write_header_reader(dir.path()).expect("reader"),
            super::write_value_reader(dir.path()).expect("value reader"),
            super::write_header_forwarder(dir.path()).expect("forwarder"),
        ] {
            let bytes = std::fs::read(path).expect("read");
            assert!(bytes.starts_with(b"\0asm"));
        }
    }
}
