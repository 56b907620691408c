//! Byte-level progress of registry transfers: a bar on a terminal, one summary line per transfer otherwise
//! (CI logs), nothing in the test harness.

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;

/// What a transfer reports. `start` once with the bytes to move, `advance` as they move, then `finish` at the end
/// or `abandon` when it fails.
pub trait Progress: Send + Sync {
    fn start(&self, what: &str, total: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
    fn abandon(&self) {}
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
}

impl Bar {
    pub fn stderr() -> Arc<dyn Progress> {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        Arc::new(Self { bar })
    }
}

impl Progress for Bar {
    /// Resets the bar's position and clock, so `finish` reports this transfer alone.
    fn start(&self, what: &str, total: u64) {
        self.bar.reset();
        self.bar.set_length(total);
        self.bar.set_message(what.to_string());
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn finish(&self) {
        let (what, seconds, bytes) = (self.bar.message(), self.bar.elapsed().as_secs_f64(), self.bar.position());
        self.bar.finish_and_clear();
        let rate = if seconds > 0.0 { (bytes as f64 / seconds) as u64 } else { bytes };
        eprintln!("  {what}: {} in {seconds:.2} s ({}/s)", HumanBytes(bytes), HumanBytes(rate));
    }

    /// Clears the bar without a summary, so the error that follows is not printed under a half-drawn bar.
    fn abandon(&self) {
        self.bar.finish_and_clear();
    }
}
