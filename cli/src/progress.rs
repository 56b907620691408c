//! Byte-level progress of registry transfers: a bar on a terminal, one summary line per transfer otherwise
//! (CI logs), nothing in the test harness.

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::time::Instant;

/// What a transfer reports. `start` once with the bytes to move, `advance` as they move, `finish` at the end.
pub trait Progress: Send + Sync {
    fn start(&self, what: &str, total: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _what: &str, _total: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

pub fn silent() -> Arc<dyn Progress> {
    Arc::new(Silent)
}

/// A bar on stderr when it is a terminal; otherwise a line per finished transfer with its size and rate.
pub struct Bar {
    bar: ProgressBar,
    started: std::sync::Mutex<Option<(String, Instant)>>,
}

impl Bar {
    pub fn stderr() -> Arc<dyn Progress> {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        Arc::new(Self { bar, started: std::sync::Mutex::new(None) })
    }
}

impl Progress for Bar {
    fn start(&self, what: &str, total: u64) {
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_message(what.to_string());
        if let Ok(mut started) = self.started.lock() {
            *started = Some((what.to_string(), Instant::now()));
        }
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
        let Some((what, at)) = self.started.lock().ok().and_then(|mut s| s.take()) else { return };
        let seconds = at.elapsed().as_secs_f64();
        let bytes = self.bar.position();
        let rate = if seconds > 0.0 { (bytes as f64 / seconds) as u64 } else { bytes };
        eprintln!("  {what}: {} in {seconds:.2} s ({}/s)", HumanBytes(bytes), HumanBytes(rate));
    }
}
