//! What decoding costs, not only whether it crashes: any bytes, as each of the three calls that carry a model's
//! input, through the server's whole decoding under a counting allocator, which must stay within the rule of
//! `inference/src/budget.rs` (12× the message plus twice the fixed budget), and a refusal's message stays short. The seeds are the security review's
//! inputs, cut to the fuzzer's length.
#![no_main]

#[path = "../../inference/tests/support/mod.rs"]
mod support;

use libfuzzer_sys::fuzz_target;
use wasmgate_inference::budget::Limits;
use wasmgate_inference::model::IMAGE_VALUES;

/// A small fixed budget, so that a cost above the message's share shows within the fuzzer's input sizes.
const LIMITS: Limits = Limits { max_decoded_bytes: 1 << 20 };

fuzz_target!(|bytes: &[u8]| {
    for call in support::CALLS {
        let (outcome, peak) = support::decode(call, bytes::Bytes::copy_from_slice(bytes), &LIMITS);
        let allowed = support::allowed(bytes.len(), &LIMITS);
        assert!(peak <= allowed, "{call:?} of {} bytes allocated {peak} (allowed {allowed}): {outcome:?}", bytes.len());
        match &outcome {
            support::Outcome::Decoded(pixels) => assert_eq!(pixels.ncols(), IMAGE_VALUES),
            // A refusal quotes the client in bounded prefixes only.
            support::Outcome::Refused(error) => assert!(error.to_string().len() < 1024, "{error}"),
            support::Outcome::NotARequest => {}
        }
    }
});
