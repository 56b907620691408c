//! What one call may cost to decode, decided before anything is allocated.
//!
//! A call's decoding may allocate a small multiple of its own message plus a fixed budget
//! (`--max-decoded-bytes`), in two stages:
//! - the protobuf structures prost builds ([`STRUCTURE_BYTES_PER_BYTE`] × the message): estimated from the wire
//!   bytes by [`crate::wire_cost`] before prost runs;
//! - the model's input (pixels as f32, and every encoded image at its declared size while it is decoded)
//!   ([`INPUT_BYTES_PER_BYTE`] × the message): counted from the shapes, counts and image headers the request
//!   declares.
//!
//! So a call's peak is at most the message, plus 12× the message, plus twice the budget. Decoded image pixels are
//! what a call's CPU grows with, so the same count bounds its CPU.

use crate::input_error::InputError;

/// 64 MiB: a few hundred 64×64 images' worth of work for a request that does not carry them itself.
pub const DEFAULT_MAX_DECODED_BYTES: u64 = 64 << 20;
/// Protobuf structures per message byte: 8 covers a packed `uint32` of 1-byte varints (4 bytes each, in a `Vec`
/// that doubles as it grows) and every form a client sends data in for this model.
pub const STRUCTURE_BYTES_PER_BYTE: u64 = 8;
/// The model's input per message byte: 4, one f32 for each uint8 pixel sent raw.
pub const INPUT_BYTES_PER_BYTE: u64 = 4;

/// The server's decoding limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The fixed part of what one call may allocate in each stage, above what its message size allows.
    pub max_decoded_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES }
    }
}

impl Limits {
    /// What prost may build from a message of `message_bytes`.
    pub fn structures(&self, message_bytes: usize) -> Budget {
        Budget::new(message_bytes, STRUCTURE_BYTES_PER_BYTE, self.max_decoded_bytes)
    }

    /// What the model's input may take for a message of `message_bytes`.
    pub fn input(&self, message_bytes: usize) -> Budget {
        Budget::new(message_bytes, INPUT_BYTES_PER_BYTE, self.max_decoded_bytes)
    }
}

/// Bytes a call may still allocate in one stage; each allocation is charged before it is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    allowed: u64,
    spent: u64,
    message_bytes: u64,
    per_byte: u64,
    fixed: u64,
}

impl Budget {
    fn new(message_bytes: usize, per_byte: u64, fixed: u64) -> Self {
        let message_bytes = message_bytes as u64;
        let allowed = message_bytes.saturating_mul(per_byte).saturating_add(fixed);
        Self { allowed, spent: 0, message_bytes, per_byte, fixed }
    }

    /// A budget with no message behind it, for tests and tools.
    pub fn fixed(bytes: u64) -> Self {
        Self::new(0, 0, bytes)
    }

    /// Charges `bytes` for `what`, or refuses (RESOURCE_EXHAUSTED) when the call would go over its allowance.
    pub fn spend(&mut self, bytes: u64, what: impl FnOnce() -> String) -> Result<(), InputError> {
        let total = self.spent.saturating_add(bytes);
        if total > self.allowed {
            return Err(InputError::too_costly(format!(
                "{} would take {total} bytes; a call may use {}x its {}-byte message plus {} bytes \
                 (--max-decoded-bytes)",
                what(),
                self.per_byte,
                self.message_bytes,
                self.fixed
            )));
        }
        self.spent = total;
        Ok(())
    }

    pub fn spent(&self) -> u64 {
        self.spent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_may_spend_its_multiple_plus_the_fixed_part_and_no_more() {
        let limits = Limits { max_decoded_bytes: 1000 };
        let mut budget = limits.input(100);
        budget.spend(1000, || "a".into()).unwrap();
        budget.spend(400, || "b".into()).unwrap();
        assert_eq!(budget.spent(), 1400);
        let error = budget.spend(1, || "one more byte".into()).unwrap_err();
        assert!(error.is_too_costly());
        assert_eq!(
            error.to_string(),
            "one more byte would take 1401 bytes; a call may use 4x its 100-byte message plus 1000 bytes \
             (--max-decoded-bytes)"
        );
        assert_eq!(budget.spent(), 1400, "a refused charge is not spent");
        assert!(limits.structures(usize::MAX).spend(u64::MAX, String::new).is_ok(), "saturates, no overflow");
    }
}
