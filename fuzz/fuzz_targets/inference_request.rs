//! A `ModelInferRequest` off the wire, then the server's input decoding: refused with a message or decoded into
//! exactly the announced batch, never a panic or an allocation the bytes do not back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use wasmgate_inference::budget::Limits;
use wasmgate_inference::model::IMAGE_VALUES;
use wasmgate_inference::proto::ModelInferRequest;
use wasmgate_inference::oip::tensor;

fuzz_target!(|bytes: &[u8]| {
    let Ok(request) = ModelInferRequest::decode(bytes) else { return };
    if let Ok(batch) = tensor::decode(&request, &mut Limits::default().input(bytes.len())) {
        let announced = request.inputs[0].shape[0] as usize;
        assert_eq!(batch.pixels.dim(), (announced, IMAGE_VALUES));
        assert!(batch.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
