//! The HTTP/2 settings the model server and its client share.

/// HTTP/2 flow control for large messages. With hyper's defaults (1 MiB windows, 16 KiB frames) a 100 MB message
/// waits for a window update every MiB and crosses as 6400 frames; with windows that cover several round trips
/// and 1 MiB frames the sender rarely stops (measured in `make bench -- payload`). The windows bound what one
/// stream or connection may have in flight towards this server, well under the message limit it buffers anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Settings {
    pub stream_window: u32,
    pub connection_window: u32,
    /// The largest frame this side accepts (16 KiB to 16 MiB - 1, RFC 9113).
    pub max_frame: u32,
}

impl Http2Settings {
    pub const DEFAULT: Self = Self { stream_window: 16 << 20, connection_window: 32 << 20, max_frame: 1 << 20 };

    /// A clear error for settings HTTP/2 does not allow, before a server or client is built with them.
    pub fn validate(&self) -> Result<(), String> {
        const MAX_WINDOW: u32 = (1 << 31) - 1;
        if self.stream_window < 65_535 || self.stream_window > MAX_WINDOW {
            return Err(format!("the HTTP/2 stream window must be 64Ki to 2Gi - 1, not {}", self.stream_window));
        }
        if self.connection_window < self.stream_window || self.connection_window > MAX_WINDOW {
            return Err(format!(
                "the HTTP/2 connection window must be at least the stream window ({}) and under 2Gi, not {}",
                self.stream_window, self.connection_window
            ));
        }
        if !(16_384..(1 << 24)).contains(&self.max_frame) {
            return Err(format!("the HTTP/2 frame size must be 16Ki to 16Mi - 1, not {}", self.max_frame));
        }
        Ok(())
    }
}

impl Default for Http2Settings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::Http2Settings;

    #[test]
    fn the_defaults_are_valid_http2() {
        assert_eq!(Http2Settings::default().validate(), Ok(()));
    }

    #[test]
    fn settings_http2_forbids_are_refused_with_the_range() {
        let d = Http2Settings::DEFAULT;
        let small_window = Http2Settings { stream_window: 1024, ..d };
        assert!(small_window.validate().unwrap_err().contains("64Ki to 2Gi"));
        let connection_below_stream = Http2Settings { connection_window: d.stream_window - 1, ..d };
        assert!(connection_below_stream.validate().unwrap_err().contains("at least the stream window"));
        for max_frame in [16_383, 1 << 24] {
            let frame = Http2Settings { max_frame, ..d };
            assert!(frame.validate().unwrap_err().contains("16Ki to 16Mi - 1"), "{max_frame}");
        }
        assert_eq!(Http2Settings { max_frame: 16_384, ..d }.validate(), Ok(()));
    }
}
