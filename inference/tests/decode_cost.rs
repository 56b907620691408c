//! What accepted and refused input costs the server to decode, measured with a counting allocator: the whole path
//! of a call (the codec's estimate and prost's decode, then the input's decode into the model's batch) against
//! the rule in `budget.rs`: at most 12× the message plus twice `--max-decoded-bytes` above the message itself.
//! Each attack from the security review is here, beside the requests a client sends for real.

#[path = "support/palette.rs"]
mod palette;
mod support;

use bytes::Bytes;
use palette::palette_png;
use prost::Message;
use std::collections::HashMap;
use support::{Call, Outcome};
use wasmgate_inference::budget::Limits;
use wasmgate_inference::client;
use wasmgate_inference::model::IMAGE_VALUES;
use wasmgate_inference::proto::model_infer_request::InferInputTensor;
use wasmgate_inference::proto::tensorflow::serving::{
    ClassificationRequest, ExampleList, ExampleListWithContext, Input, PredictRequest, input,
};
use wasmgate_inference::proto::tensorflow::{
    BytesList, DataType, Example, Feature, Features, TensorProto, TensorShapeProto, feature, tensor_shape_proto::Dim,
};
use wasmgate_inference::proto::{InferTensorContents, ModelInferRequest};

/// The fixed part of the budget in these tests: small, so that what a request costs beyond it shows.
const LIMITS: Limits = Limits { max_decoded_bytes: 4 << 20 };

/// The rule every call is held to, accepted or refused.
fn assert_within_the_rule(what: &str, wire: usize, peak: u64) {
    eprintln!("{what}: {wire}-byte message, {peak} bytes at the peak ({:.2}x)", peak as f64 / wire as f64);
    let allowed = support::allowed(wire, &LIMITS);
    assert!(peak <= allowed, "{what}: {peak} bytes allocated for a {wire}-byte message; the rule allows {allowed}");
}

fn accepted(what: &str, call: Call, message: &impl Message, images: usize) -> u64 {
    let wire = Bytes::from(message.encode_to_vec());
    let length = wire.len();
    let (outcome, peak) = support::decode(call, wire, &LIMITS);
    let Outcome::Decoded(pixels) = outcome else { panic!("{what}: {outcome:?}") };
    assert_eq!(pixels.dim(), (images, IMAGE_VALUES), "{what}");
    assert_within_the_rule(what, length, peak);
    peak
}

/// A refusal for cost, which must come before the work it refuses: `peak` at most `most` bytes.
fn refused_for_cost(what: &str, call: Call, message: &impl Message, most: u64) -> String {
    let wire = Bytes::from(message.encode_to_vec());
    let length = wire.len();
    let (outcome, peak) = support::decode(call, wire, &LIMITS);
    let Outcome::Refused(error) = outcome else { panic!("{what}: {outcome:?}") };
    assert!(error.is_too_costly(), "{what}: refused, but not for its cost: {error}");
    assert_within_the_rule(what, length, peak);
    assert!(peak <= most, "{what}: {peak} bytes allocated before the refusal (at most {most})");
    error.to_string()
}

fn image_example(pixels: Bytes) -> Example {
    let feature = Feature { kind: Some(feature::Kind::BytesList(BytesList { value: vec![pixels] })) };
    Example { features: Some(Features { feature: HashMap::from([("images".to_owned(), feature)]) }) }
}

fn classify(kind: input::Kind) -> ClassificationRequest {
    ClassificationRequest { model_spec: None, input: Some(Input { kind: Some(kind) }) }
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 9]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn encoded(files: Vec<Vec<u8>>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "catnet".into(),
        inputs: vec![InferInputTensor {
            name: "encoded_images".into(),
            datatype: "BYTES".into(),
            shape: vec![files.len() as i64],
            contents: Some(InferTensorContents {
                bytes_contents: files.into_iter().map(Bytes::from).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn requests_clients_send_are_decoded_within_the_rule() {
    accepted("ModelInfer, 300 raw UINT8 images", Call::ModelInfer, &client::generated(300).request(), 300);
    let typed = ModelInferRequest {
        inputs: vec![InferInputTensor {
            name: "images".into(),
            datatype: "UINT8".into(),
            shape: vec![100, 64, 64, 3],
            contents: Some(InferTensorContents { uint_contents: vec![3; 100 * IMAGE_VALUES], ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    };
    accepted("ModelInfer, 100 typed UINT8 images", Call::ModelInfer, &typed, 100);
    let photos = encoded(vec![png(640, 480), png(64, 64), png(256, 256)]);
    accepted("ModelInfer, 3 encoded PNGs", Call::ModelInfer, &photos, 3);

    let tensor = TensorProto {
        dtype: DataType::DtUint8 as i32,
        tensor_shape: Some(TensorShapeProto {
            dim: [200, 64, 64, 3].map(|size| Dim { size, name: String::new() }).to_vec(),
            unknown_rank: false,
        }),
        tensor_content: Bytes::from(vec![1u8; 200 * IMAGE_VALUES]),
        ..Default::default()
    };
    let predict = PredictRequest { inputs: HashMap::from([("images".to_owned(), tensor)]), ..Default::default() };
    accepted("Predict, 200 images in tensor_content", Call::Predict, &predict, 200);

    let examples = (0..50).map(|_| image_example(Bytes::from(vec![5u8; IMAGE_VALUES]))).collect();
    accepted(
        "Classify, 50 examples",
        Call::Classify,
        &classify(input::Kind::ExampleList(ExampleList { examples })),
        50,
    );
    let context = ExampleListWithContext {
        examples: vec![Example::default(); 20],
        context: Some(image_example(Bytes::from(vec![5u8; IMAGE_VALUES]))),
    };
    accepted(
        "Classify, 20 examples sharing the context's image",
        Call::Classify,
        &classify(input::Kind::ExampleListWithContext(context)),
        20,
    );
}

/// Review item 1: every empty example inherits the context's image, 2 bytes becoming 48 KiB of pixels.
#[test]
fn examples_that_inherit_the_context_are_charged_before_their_pixels() {
    let context = |count| {
        classify(input::Kind::ExampleListWithContext(ExampleListWithContext {
            examples: vec![Example::default(); count],
            context: Some(image_example(Bytes::from(vec![5u8; IMAGE_VALUES]))),
        }))
    };
    // 4 KB of examples asking for 98 MB of pixels: refused by their count, before the pixels.
    let error = refused_for_cost("Classify, 2000 empty examples", Call::Classify, &context(2000), 1 << 20);
    assert!(error.contains("a batch of 2000 images as the model's input"), "{error}");
    // The review's 212 KB request: 100000 of them, refused before prost builds them.
    let error = refused_for_cost("Classify, 100000 empty examples", Call::Classify, &context(100_000), 1 << 20);
    assert!(error.contains("decoding this ClassificationRequest"), "{error}");
}

/// Review item 6: 1 million empty `inputs` in a 2 MB ModelInferRequest took 302 MiB inside prost.
#[test]
fn empty_repeated_messages_are_refused_before_prost_builds_them() {
    let request = ModelInferRequest { inputs: vec![InferInputTensor::default(); 1_000_000], ..Default::default() };
    let error = refused_for_cost("ModelInfer, 1M empty inputs", Call::ModelInfer, &request, 1 << 20);
    assert!(error.contains("decoding this ModelInferRequest would take"), "{error}");
    // The same through a DT_STRING tensor of serialized examples: each one charged before it is decoded.
    let tensor = TensorProto {
        dtype: DataType::DtString as i32,
        string_val: vec![Bytes::new(); 1_000_000],
        ..Default::default()
    };
    let predict = PredictRequest {
        model_spec: Some(wasmgate_inference::proto::tensorflow::serving::ModelSpec {
            signature_name: "classify".into(),
            ..Default::default()
        }),
        inputs: HashMap::from([("inputs".to_owned(), tensor)]),
        ..Default::default()
    };
    refused_for_cost("Predict on classify, 1M empty examples", Call::Predict, &predict, 1 << 20);
}

/// Review item 5: an 8 KB palette PNG declaring 8192×8192 pixels, 16 of them in one request.
#[test]
fn image_bombs_are_refused_from_their_headers() {
    let bomb = palette_png(8192);
    assert!(bomb.len() < 32 << 10, "the bomb is {} bytes", bomb.len());
    let error = refused_for_cost("ModelInfer, 16 palette bombs", Call::ModelInfer, &encoded(vec![bomb; 16]), 1 << 20);
    assert!(error.contains("decoding encoded_images[0] (67108864 pixels declared by its header)"), "{error}");
    // A smaller bomb fits the budget and is decoded within the rule.
    accepted("ModelInfer, one 512² palette PNG", Call::ModelInfer, &encoded(vec![palette_png(512)]), 1);
}

/// A raw batch declaring more images than it carries is refused before any pixel is allocated.
#[test]
fn an_announced_batch_is_charged_before_its_pixels() {
    let mut request = client::generated(1).request();
    request.inputs[0].shape[0] = 1_000_000;
    let error = refused_for_cost("ModelInfer, 1M images announced, 1 sent", Call::ModelInfer, &request, 1 << 20);
    assert!(error.contains("a batch of 1000000 images"), "{error}");
}

proptest::proptest! {
    /// Whatever bytes arrive as any of the three calls, decoding stays within the rule (the `decode_cost` fuzz
    /// target runs the same check for longer).
    #[test]
    fn any_bytes_are_decoded_within_the_rule(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        for call in support::CALLS {
            let (_, peak) = support::decode(call, Bytes::from(bytes.clone()), &LIMITS);
            proptest::prop_assert!(peak <= support::allowed(bytes.len(), &LIMITS), "{call:?}: {peak}");
        }
    }
}
