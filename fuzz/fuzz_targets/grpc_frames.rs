//! The gRPC frame counter fed a body in arbitrary chunks: it counts the same messages as reading the whole body
//! at once, and never reads past a chunk.
#![no_main]

use arbitrary::Arbitrary;
use grpc_limits::frames::FrameCounter;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    body: Vec<u8>,
    cuts: Vec<u16>,
    max_message: Option<u32>,
}

fn count(body: &[u8], chunks: &[usize], max: Option<u64>) -> (FrameCounter, bool) {
    let mut counter = FrameCounter::default();
    let mut start = 0;
    for &len in chunks {
        let chunk = &body[start..start + len];
        let result = counter.advance(len, max, |offset, want| {
            assert!(offset + want <= chunk.len(), "read past the chunk");
            Ok::<_, ()>(chunk[offset..offset + want].to_vec())
        });
        start += len;
        if result.is_err() {
            return (counter, true);
        }
    }
    (counter, false)
}

fuzz_target!(|input: Input| {
    let mut chunks = Vec::new();
    let mut left = input.body.len();
    for cut in input.cuts {
        let len = usize::from(cut).min(left);
        chunks.push(len);
        left -= len;
    }
    chunks.push(left);
    let max = input.max_message.map(u64::from);
    let (split, split_stopped) = count(&input.body, &chunks, max);
    let (whole, whole_stopped) = count(&input.body, &[input.body.len()], max);
    assert_eq!(split.messages(), whole.messages());
    assert_eq!(split.largest(), whole.largest());
    assert_eq!(split_stopped, whole_stopped);
});
