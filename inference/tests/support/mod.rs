//! A call's message through the server's whole decoding (the codec's estimate and prost's decode, then the
//! input's decode into the model's batch), with the peak of what it allocated on the way, read from a counting
//! global allocator. Shared by `tests/decode_cost.rs` and the `decode_cost` fuzz target, which hold it to the rule
//! in `budget.rs`.

use bytes::Bytes;
use ndarray::Array2;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use wasmgate_inference::budget::{INPUT_BYTES_PER_BYTE, Limits, STRUCTURE_BYTES_PER_BYTE};
use wasmgate_inference::input_error::InputError;
use wasmgate_inference::oip::tensor;
use wasmgate_inference::proto::ModelInferRequest;
use wasmgate_inference::proto::tensorflow::serving::{ClassificationRequest, PredictRequest};
use wasmgate_inference::tf_serving::tensor::{self as tf_tensor, Signature};
use wasmgate_inference::wire_cost::{self, Undecoded};

struct Counting;

/// Bytes allocated less bytes freed by the measuring thread since its measurement began, and the highest that
/// reached. Other threads' allocations (the test harness, other tests building their messages) are not counted.
static CURRENT: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

fn grew(bytes: usize) {
    if counted() {
        let now = CURRENT.fetch_add(bytes as i64, Ordering::Relaxed) + bytes as i64;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    if counted() {
        CURRENT.fetch_sub(bytes as i64, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; only the counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the allocator may do it: the new block before the old one is freed.
        grew(new_size);
        shrank(layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measurement at a time: the counters are the process's.
static MEASURING: Mutex<()> = Mutex::new(());

/// The three calls that carry a model's input.
#[derive(Clone, Copy, Debug)]
pub enum Call {
    ModelInfer,
    Predict,
    Classify,
}

pub const CALLS: [Call; 3] = [Call::ModelInfer, Call::Predict, Call::Classify];

#[derive(Debug)]
pub enum Outcome {
    Decoded(Array2<f32>),
    Refused(InputError),
    /// Not a message of the call's type (prost's error), or a Predict naming no signature of the model.
    NotARequest,
}

/// `wire` through the server's decoding of `call` within `limits`, and the bytes allocated at the peak.
pub fn decode(call: Call, wire: Bytes, limits: &Limits) -> (Outcome, u64) {
    let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    CURRENT.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    COUNTED.set(true);
    let outcome = run(call, wire, limits);
    COUNTED.set(false);
    let peak = PEAK.load(Ordering::Relaxed).max(0) as u64;
    (outcome, peak)
}

fn run(call: Call, wire: Bytes, limits: &Limits) -> Outcome {
    let length = wire.len();
    let input = |result: Result<Array2<f32>, InputError>| match result {
        Ok(pixels) => Outcome::Decoded(pixels),
        Err(error) => Outcome::Refused(error),
    };
    match call {
        Call::ModelInfer => match wire_cost::decode::<ModelInferRequest>(wire, limits) {
            Ok(request) => input(tensor::decode(&request, &mut limits.input(length)).map(|batch| batch.pixels)),
            Err(undecoded) => refused(undecoded),
        },
        Call::Predict => match wire_cost::decode::<PredictRequest>(wire, limits) {
            Ok(request) => {
                let name = request.model_spec.as_ref().map_or("", |s| s.signature_name.as_str());
                let Some(signature) = Signature::named(name) else { return Outcome::NotARequest };
                let mut budget = limits.input(length);
                input(
                    tf_tensor::decode_predict(signature, &request.inputs, &request.output_filter, &mut budget)
                        .map(|(pixels, _)| pixels),
                )
            }
            Err(undecoded) => refused(undecoded),
        },
        Call::Classify => match wire_cost::decode::<ClassificationRequest>(wire, limits) {
            Ok(request) => {
                let kind = request.input.as_ref().and_then(|i| i.kind.as_ref());
                input(tf_tensor::decode_classify(kind, &mut limits.input(length)))
            }
            Err(undecoded) => refused(undecoded),
        },
    }
}

fn refused(undecoded: Undecoded) -> Outcome {
    match undecoded {
        Undecoded::TooCostly(error) => Outcome::Refused(error),
        Undecoded::Malformed(_) => Outcome::NotARequest,
    }
}

/// What the rule lets a call of `wire` bytes allocate: 12× its message plus twice the fixed budget.
pub fn allowed(wire: usize, limits: &Limits) -> u64 {
    (STRUCTURE_BYTES_PER_BYTE + INPUT_BYTES_PER_BYTE) * wire as u64 + 2 * limits.max_decoded_bytes
}
