//! The floor under any proxy-wasm HTTP filter on V8: a hand-written module that exports only what the host
//! needs to run a stream context (create, request headers, delete) and does nothing in them. What it costs over
//! passthrough is Envoy's and V8's share of a wasm filter, which no plugin code can remove.

use anyhow::Result;
use std::path::{Path, PathBuf};

const NOOP: &str = r#"
(module
  (memory (export "memory") 2)
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
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_delete") (param i32)))
"#;

/// Writes the no-op module into `dir` and returns its path.
pub fn write_noop(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("noop.wasm");
    std::fs::write(&path, wat::parse_str(NOOP)?)?;
    Ok(path)
}
