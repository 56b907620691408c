//! A TF Serving `PredictRequest` or `ClassificationRequest` off the wire, then the server's decoding on each
//! signature: refused with a message or decoded into whole images in range, never a panic or an allocation the
//! bytes do not back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use wasmgate_inference::budget::Limits;
use wasmgate_inference::model::IMAGE_VALUES;
use wasmgate_inference::proto::tensorflow::serving::{ClassificationRequest, PredictRequest};
use wasmgate_inference::tf_serving::tensor::{self as tf_tensor, Signature};

fn check(pixels: &ndarray::Array2<f32>) {
    assert_eq!(pixels.ncols(), IMAGE_VALUES);
    assert!(pixels.nrows() > 0);
    assert!(pixels.iter().all(|v| (0.0..=1.0).contains(v)));
}

fuzz_target!(|bytes: &[u8]| {
    if let Ok(request) = PredictRequest::decode(bytes) {
        for signature in [Signature::Predict, Signature::Classify] {
            let mut budget = Limits::default().input(bytes.len());
            if let Ok((pixels, outputs)) =
                tf_tensor::decode_predict(signature, &request.inputs, &request.output_filter, &mut budget)
            {
                check(&pixels);
                assert!(!outputs.is_empty());
            }
        }
    }
    if let Ok(request) = ClassificationRequest::decode(bytes) {
        let kind = request.input.as_ref().and_then(|i| i.kind.as_ref());
        if let Ok(pixels) = tf_tensor::decode_classify(kind, &mut Limits::default().input(bytes.len())) {
            check(&pixels);
        }
    }
});
