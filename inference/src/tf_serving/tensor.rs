//! TensorFlow Serving's side of the model: its signatures, a Predict request's tensors and a Classify request's
//! tf.Examples decoded into a batch of images, and the answers encoded as TF Serving writes them.
//!
//! Two signatures, as a classifier exported for TF Serving has: `serving_default` (predict: `images` uint8
//! `[N, 64, 64, 3]` → `probabilities` float `[N, 1]` and `classes` string `[N, 1]`) and `classify` (classify:
//! serialized tf.Examples with an `images` feature → `classes` and `scores`, `[N, 2]`). Everything here runs on
//! untrusted input: sizes are checked against the data before anything is allocated.

use crate::budget::Budget;
use crate::echo;
use crate::input_error::{InputError, invalid};
use crate::model::{IMAGE_SHAPE, IMAGE_VALUES, LABELS, label};
use crate::oip::tensor::{
    Datatype, INPUT, PROBABILITIES, charge_pixels, check_count, check_range, pixel_values, raw_pixels,
};
use crate::proto::tensorflow::serving::{
    Class, ClassificationResult, Classifications, ExampleList, ExampleListWithContext, SignatureDefMap, input,
};
use crate::proto::tensorflow::{
    DataType, Example, Feature, SignatureDef, TensorInfo, TensorProto, TensorShapeProto, feature, tensor_info,
    tensor_shape_proto::Dim,
};
use bytes::Bytes;
use ndarray::Array2;
use prost::Message;
use std::collections::HashMap;

pub const SERVING_DEFAULT: &str = "serving_default";
pub const CLASSIFY_SIGNATURE: &str = "classify";
pub const PREDICT_METHOD: &str = "tensorflow/serving/predict";
pub const CLASSIFY_METHOD: &str = "tensorflow/serving/classify";
/// `serving_default`'s label output; `classify`'s class names.
pub const CLASSES: &str = "classes";
pub const SCORES: &str = "scores";
/// `classify`'s one input: serialized tf.Examples.
pub const EXAMPLES: &str = "inputs";

/// One of the model's signatures, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    Predict,
    Classify,
}

impl Signature {
    /// An empty name is `serving_default`, as in TF Serving.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "" | SERVING_DEFAULT => Some(Self::Predict),
            CLASSIFY_SIGNATURE => Some(Self::Classify),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Predict => SERVING_DEFAULT,
            Self::Classify => CLASSIFY_SIGNATURE,
        }
    }

    fn input(self) -> &'static str {
        match self {
            Self::Predict => INPUT,
            Self::Classify => EXAMPLES,
        }
    }

    fn outputs(self) -> [&'static str; 2] {
        match self {
            Self::Predict => [PROBABILITIES, CLASSES],
            Self::Classify => [CLASSES, SCORES],
        }
    }

    fn def(self) -> SignatureDef {
        let n = -1;
        let (method, inputs, outputs) = match self {
            Self::Predict => (
                PREDICT_METHOD,
                vec![(
                    INPUT,
                    DataType::DtUint8,
                    vec![n, dim(IMAGE_SHAPE[0]), dim(IMAGE_SHAPE[1]), dim(IMAGE_SHAPE[2])],
                )],
                vec![(PROBABILITIES, DataType::DtFloat, vec![n, 1]), (CLASSES, DataType::DtString, vec![n, 1])],
            ),
            Self::Classify => (
                CLASSIFY_METHOD,
                vec![(EXAMPLES, DataType::DtString, vec![n])],
                vec![(CLASSES, DataType::DtString, vec![n, 2]), (SCORES, DataType::DtFloat, vec![n, 2])],
            ),
        };
        let infos = |tensors: Vec<(&str, DataType, Vec<i64>)>| {
            tensors
                .into_iter()
                .map(|(alias, dtype, dims)| (alias.to_owned(), tensor_info(alias, dtype, &dims)))
                .collect()
        };
        SignatureDef {
            inputs: infos(inputs),
            outputs: infos(outputs),
            method_name: method.to_owned(),
            defaults: HashMap::new(),
        }
    }
}

fn dim(size: usize) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

fn shape(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto { dim: dims.iter().map(|&size| Dim { size, name: String::new() }).collect(), unknown_rank: false }
}

fn tensor_info(alias: &str, dtype: DataType, dims: &[i64]) -> TensorInfo {
    TensorInfo {
        encoding: Some(tensor_info::Encoding::Name(format!("{alias}:0"))),
        dtype: dtype as i32,
        tensor_shape: Some(shape(dims)),
    }
}

/// What GetModelMetadata's `signature_def` entry holds.
pub fn signatures() -> SignatureDefMap {
    let all = [Signature::Predict, Signature::Classify];
    SignatureDefMap { signature_def: all.into_iter().map(|s| (s.name().to_owned(), s.def())).collect() }
}

fn dtype_name(dtype: i32) -> String {
    DataType::try_from(dtype).map_or_else(|_| format!("dtype {dtype}"), |d| d.as_str_name().to_owned())
}

/// The images of a Predict request's inputs on `signature`, and the outputs to answer in order; each allocation
/// charged to `budget` before it is made.
pub fn decode_predict(
    signature: Signature,
    inputs: &HashMap<String, TensorProto>,
    output_filter: &[String],
    budget: &mut Budget,
) -> Result<(Array2<f32>, Vec<&'static str>), InputError> {
    let expected = signature.input();
    let tensor = match inputs.get(expected) {
        Some(tensor) if inputs.len() == 1 => tensor,
        _ => {
            let mut sent: Vec<&str> = inputs.keys().map(String::as_str).collect();
            sent.sort_unstable();
            return invalid(format!(
                "input size does not match signature: {}!=1 len({{{}}}) != len({{{expected}}}); signature `{}` \
                 takes one input, `{expected}`",
                inputs.len(),
                echo::joined(&sent, ","),
                signature.name()
            ));
        }
    };
    let outputs = output_aliases(signature, output_filter)?;
    let pixels = match signature {
        Signature::Predict => images(tensor, budget)?,
        Signature::Classify => examples_tensor(tensor, budget)?,
    };
    Ok((pixels, outputs))
}

/// `output_filter` checked against the signature as TF Serving does (unknown or repeated aliases are errors);
/// empty: all outputs.
fn output_aliases(signature: Signature, filter: &[String]) -> Result<Vec<&'static str>, InputError> {
    let all = signature.outputs();
    if filter.is_empty() {
        return Ok(all.to_vec());
    }
    let mut outputs = Vec::with_capacity(all.len());
    for alias in filter {
        let Some(&name) = all.iter().find(|&&name| name == alias) else {
            return invalid(format!(
                "output tensor alias not found in signature: {} Outputs expected to be in the set {{{}}}.",
                echo::text(alias),
                all.join(",")
            ));
        };
        if outputs.contains(&name) {
            return invalid(format!("duplicate output tensor alias: {}", echo::text(alias)));
        }
        outputs.push(name);
    }
    Ok(outputs)
}

/// DT_UINT8 (0-255) or DT_FLOAT (0-1) `[N, 64, 64, 3]`, in `tensor_content` (what `tf.make_tensor_proto` sends;
/// sliced from the received message, read once) or the typed `int_val` / `float_val`.
fn images(tensor: &TensorProto, budget: &mut Budget) -> Result<Array2<f32>, InputError> {
    let dtype = DataType::try_from(tensor.dtype).unwrap_or(DataType::DtInvalid);
    if !matches!(dtype, DataType::DtUint8 | DataType::DtFloat) {
        return invalid(format!(
            "input `{INPUT}` has {}; send DT_UINT8 (0-255) or DT_FLOAT (0.0-1.0)",
            dtype_name(tensor.dtype)
        ));
    }
    let count = batch_size(tensor)?;
    let values = count
        .checked_mul(IMAGE_VALUES)
        .ok_or_else(|| InputError::new(format!("a batch of {count} images is too large")))?;
    charge_pixels(budget, count)?;
    let pixels = if !tensor.tensor_content.is_empty() {
        let datatype = if dtype == DataType::DtUint8 { Datatype::Uint8 } else { Datatype::Fp32 };
        raw_pixels(&tensor.tensor_content, datatype, values)?
    } else if dtype == DataType::DtUint8 {
        // TF Serving would repeat the last value to fill a short list; a batch is refused instead, so that a few
        // bytes can never ask for gigabytes.
        check_count(tensor.int_val.len(), values, "int_val")?;
        pixel_values(tensor.int_val.iter().map(|&v| i64::from(v)), values, "int_val")?
    } else {
        check_count(tensor.float_val.len(), values, "float_val")?;
        check_range(&tensor.float_val)?;
        tensor.float_val.clone()
    };
    Array2::from_shape_vec((count, IMAGE_VALUES), pixels)
        .map_err(|e| InputError::new(format!("cannot arrange the input as [{count}, {IMAGE_VALUES}]: {e}")))
}

/// `[N, 64, 64, 3]` with N ≥ 1.
fn batch_size(tensor: &TensorProto) -> Result<usize, InputError> {
    let dims: Vec<i64> =
        tensor.tensor_shape.as_ref().map(|s| s.dim.iter().map(|d| d.size).collect()).unwrap_or_default();
    match dims.as_slice() {
        [n, rest @ ..] if rest.iter().map(|&d| usize::try_from(d).ok()).eq(IMAGE_SHAPE.iter().map(|&d| Some(d))) => {
            match usize::try_from(*n) {
                Ok(n) if n > 0 => Ok(n),
                _ => invalid(format!("batch size {n} in shape {}: must be at least 1", echo::list(&dims))),
            }
        }
        _ => invalid(format!(
            "input `{INPUT}` has shape {}; expected [N, {}, {}, {}]",
            echo::list(&dims),
            IMAGE_SHAPE[0],
            IMAGE_SHAPE[1],
            IMAGE_SHAPE[2]
        )),
    }
}

/// `classify`'s input through Predict: DT_STRING `[N]` of serialized tf.Examples, each decoded (its cost charged
/// first) and turned into pixels one at a time.
fn examples_tensor(tensor: &TensorProto, budget: &mut Budget) -> Result<Array2<f32>, InputError> {
    if tensor.dtype != DataType::DtString as i32 {
        return invalid(format!(
            "input `{EXAMPLES}` has {}; send DT_STRING serialized tf.Examples",
            dtype_name(tensor.dtype)
        ));
    }
    let mut pixels = ExamplePixels::new(tensor.string_val.len(), None, budget)?;
    for (i, bytes) in tensor.string_val.iter().enumerate() {
        crate::wire_cost::charge::<Example>(bytes, budget)?;
        let example = Example::decode(bytes.clone())
            .map_err(|e| InputError::new(format!("example {i} is not a tf.Example: {e}")))?;
        pixels.add(i, &example)?;
    }
    pixels.finish()
}

/// A Classify request's examples; each allocation charged to `budget` before it is made.
pub fn decode_classify(input: Option<&input::Kind>, budget: &mut Budget) -> Result<Array2<f32>, InputError> {
    let (examples, context) = match input {
        Some(input::Kind::ExampleList(ExampleList { examples })) => (examples, None),
        Some(input::Kind::ExampleListWithContext(ExampleListWithContext { examples, context })) => {
            (examples, context.as_ref())
        }
        None => return invalid("Input is empty."),
    };
    let mut pixels = ExamplePixels::new(examples.len(), context, budget)?;
    for (i, example) in examples.iter().enumerate() {
        pixels.add(i, example)?;
    }
    pixels.finish()
}

/// The batch built from examples: each example's `images` feature (its own, else the context's), the 12288 pixel
/// values (height, width, channel) as one bytes value (uint8), an int64 list (0-255) or a float list (0-1).
///
/// The whole batch is charged up front: an empty example that takes the context's image is 2 bytes on the wire
/// and 48 KiB of pixels.
struct ExamplePixels<'a> {
    count: usize,
    context: Option<&'a Example>,
    pixels: Vec<f32>,
}

impl<'a> ExamplePixels<'a> {
    fn new(count: usize, context: Option<&'a Example>, budget: &mut Budget) -> Result<Self, InputError> {
        if count == 0 {
            return invalid("Input is empty.");
        }
        charge_pixels(budget, count)?;
        Ok(Self { count, context, pixels: Vec::with_capacity(count * IMAGE_VALUES) })
    }

    fn add(&mut self, i: usize, example: &Example) -> Result<(), InputError> {
        let feature = image_feature(example).or_else(|| self.context.and_then(image_feature)).ok_or_else(|| {
            InputError::new(format!(
                "example {i} has no `{INPUT}` feature (the 64x64x3 pixels, height, width, channel)"
            ))
        })?;
        match &feature.kind {
            Some(feature::Kind::BytesList(list)) => match list.value.as_slice() {
                [raw] => self.pixels.extend(raw_pixels(raw, Datatype::Uint8, IMAGE_VALUES)?),
                values => {
                    return invalid(format!("example {i}: `{INPUT}` as bytes holds {} values; send one", values.len()));
                }
            },
            Some(feature::Kind::Int64List(list)) => {
                check_count(list.value.len(), IMAGE_VALUES, "int64_list")?;
                self.pixels.extend(pixel_values(list.value.iter().copied(), IMAGE_VALUES, "int64_list")?);
            }
            Some(feature::Kind::FloatList(list)) => {
                check_count(list.value.len(), IMAGE_VALUES, "float_list")?;
                check_range(&list.value)?;
                self.pixels.extend_from_slice(&list.value);
            }
            None => return invalid(format!("example {i}: `{INPUT}` is an empty feature")),
        }
        Ok(())
    }

    fn finish(self) -> Result<Array2<f32>, InputError> {
        let count = self.count;
        Array2::from_shape_vec((count, IMAGE_VALUES), self.pixels)
            .map_err(|e| InputError::new(format!("cannot arrange the examples as [{count}, {IMAGE_VALUES}]: {e}")))
    }
}

fn image_feature(example: &Example) -> Option<&Feature> {
    example.features.as_ref()?.feature.get(INPUT)
}

/// The outputs a Predict on `serving_default` or `classify` answers, float values in `float_val` and labels in
/// `string_val` as TF Serving writes them by default.
pub fn encode_predict(probabilities: &[f32], outputs: &[&str], signature: Signature) -> HashMap<String, TensorProto> {
    let n = dim(probabilities.len());
    outputs
        .iter()
        .map(|&name| {
            let tensor = match (signature, name) {
                (Signature::Predict, PROBABILITIES) => TensorProto {
                    dtype: DataType::DtFloat as i32,
                    tensor_shape: Some(shape(&[n, 1])),
                    float_val: probabilities.to_vec(),
                    ..Default::default()
                },
                (Signature::Predict, _) => TensorProto {
                    dtype: DataType::DtString as i32,
                    tensor_shape: Some(shape(&[n, 1])),
                    string_val: probabilities.iter().map(|&p| Bytes::from_static(label(p).as_bytes())).collect(),
                    ..Default::default()
                },
                (Signature::Classify, SCORES) => TensorProto {
                    dtype: DataType::DtFloat as i32,
                    tensor_shape: Some(shape(&[n, 2])),
                    float_val: probabilities.iter().flat_map(|&p| [1.0 - p, p]).collect(),
                    ..Default::default()
                },
                (Signature::Classify, _) => TensorProto {
                    dtype: DataType::DtString as i32,
                    tensor_shape: Some(shape(&[n, 2])),
                    string_val: probabilities
                        .iter()
                        .flat_map(|_| LABELS.map(|l| Bytes::from_static(l.as_bytes())))
                        .collect(),
                    ..Default::default()
                },
            };
            (name.to_owned(), tensor)
        })
        .collect()
}

/// Classify's answer: per example, both classes with their scores (non-cat 1 - p, cat p).
pub fn encode_classify(probabilities: &[f32]) -> ClassificationResult {
    ClassificationResult {
        classifications: probabilities
            .iter()
            .map(|&p| Classifications {
                classes: vec![
                    Class { label: LABELS[0].to_owned(), score: 1.0 - p },
                    Class { label: LABELS[1].to_owned(), score: p },
                ],
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tensorflow::{BytesList, Features, FloatList, Int64List};
    use proptest::prelude::*;

    fn images_tensor(dtype: DataType, n: i64, fill: impl FnOnce(&mut TensorProto)) -> TensorProto {
        let mut tensor =
            TensorProto { dtype: dtype as i32, tensor_shape: Some(shape(&[n, 64, 64, 3])), ..Default::default() };
        fill(&mut tensor);
        tensor
    }

    fn predict(tensor: TensorProto, filter: &[&str]) -> Result<(Array2<f32>, Vec<&'static str>), InputError> {
        let inputs = HashMap::from([(INPUT.to_owned(), tensor)]);
        let filter: Vec<String> = filter.iter().map(|s| s.to_string()).collect();
        decode_predict(Signature::Predict, &inputs, &filter, &mut unlimited())
    }

    fn unlimited() -> Budget {
        Budget::fixed(u64::MAX)
    }

    fn error(result: Result<impl std::fmt::Debug, InputError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn uint8_tensor_content_is_scaled_and_every_output_answered() {
        let mut bytes = vec![0u8; 2 * IMAGE_VALUES];
        bytes[1] = 255;
        bytes[IMAGE_VALUES] = 51;
        let tensor = images_tensor(DataType::DtUint8, 2, |t| t.tensor_content = Bytes::from(bytes));
        let (pixels, outputs) = predict(tensor, &[]).unwrap();
        assert_eq!(pixels.dim(), (2, IMAGE_VALUES));
        assert_eq!((pixels[[0, 1]], pixels[[1, 0]]), (1.0, 0.2));
        assert_eq!(outputs, [PROBABILITIES, CLASSES]);
    }

    #[test]
    fn typed_values_give_the_same_pixels_as_tensor_content() {
        let values: Vec<u8> = (0..IMAGE_VALUES).map(|i| (i % 256) as u8).collect();
        let content = images_tensor(DataType::DtUint8, 1, |t| t.tensor_content = Bytes::from(values.clone()));
        let ints = images_tensor(DataType::DtUint8, 1, |t| t.int_val = values.iter().map(|&v| i32::from(v)).collect());
        let floats = images_tensor(DataType::DtFloat, 1, |t| {
            t.float_val = values.iter().map(|&v| f32::from(v) / 255.0).collect();
        });
        let expected = predict(content, &[]).unwrap().0;
        assert_eq!(predict(ints, &[]).unwrap().0, expected);
        assert_eq!(predict(floats, &[]).unwrap().0, expected);
    }

    #[test]
    fn bad_inputs_say_what_was_expected() {
        let wrong_shape = TensorProto {
            dtype: DataType::DtUint8 as i32,
            tensor_shape: Some(shape(&[1, 32, 32, 3])),
            ..Default::default()
        };
        assert!(error(predict(wrong_shape, &[])).contains("expected [N, 64, 64, 3]"));
        let no_shape = TensorProto { dtype: DataType::DtUint8 as i32, ..Default::default() };
        assert!(error(predict(no_shape, &[])).contains("has shape []"));
        let int32 = images_tensor(DataType::DtInt32, 1, |_| {});
        assert!(error(predict(int32, &[])).contains("DT_INT32; send DT_UINT8"));
        let unknown_dtype = TensorProto { dtype: 99, ..images_tensor(DataType::DtUint8, 1, |_| {}) };
        assert!(error(predict(unknown_dtype, &[])).contains("dtype 99"));
        let zero = images_tensor(DataType::DtUint8, 0, |_| {});
        assert!(error(predict(zero, &[])).contains("must be at least 1"));
        let short = images_tensor(DataType::DtUint8, 1, |t| t.tensor_content = Bytes::from(vec![0u8; 10]));
        assert!(error(predict(short, &[])).contains("need 12288"));
        let above = images_tensor(DataType::DtUint8, 1, |t| t.int_val = vec![256; IMAGE_VALUES]);
        assert!(error(predict(above, &[])).contains("256 is not a pixel value"));
        let unscaled = images_tensor(DataType::DtFloat, 1, |t| t.float_val = vec![3.0; IMAGE_VALUES]);
        assert!(error(predict(unscaled, &[])).contains("outside [0, 1]"));
        let two = HashMap::from([
            (INPUT.to_owned(), images_tensor(DataType::DtUint8, 1, |_| {})),
            ("extra".to_owned(), TensorProto::default()),
        ]);
        assert!(
            error(decode_predict(Signature::Predict, &two, &[], &mut unlimited())).contains("2!=1 len({extra,images})")
        );
    }

    /// A few bytes announcing a huge batch must be refused before anything of that size is allocated.
    #[test]
    fn a_huge_batch_with_little_data_is_refused_without_allocating_it() {
        let fill_one = images_tensor(DataType::DtUint8, 1 << 40, |t| t.int_val = vec![7]);
        assert!(error(predict(fill_one, &[])).contains("int_val has 1 values"));
        let overflow = images_tensor(DataType::DtFloat, i64::MAX, |t| t.tensor_content = Bytes::from_static(&[0; 4]));
        assert!(error(predict(overflow, &[])).contains("too large"));
    }

    #[test]
    fn output_filter_is_checked_as_tf_serving_does() {
        let tensor =
            || images_tensor(DataType::DtUint8, 1, |t| t.tensor_content = Bytes::from(vec![0u8; IMAGE_VALUES]));
        assert_eq!(predict(tensor(), &[CLASSES]).unwrap().1, [CLASSES]);
        assert!(
            error(predict(tensor(), &["logits"])).starts_with("output tensor alias not found in signature: logits")
        );
        assert_eq!(error(predict(tensor(), &[CLASSES, CLASSES])), "duplicate output tensor alias: classes");
    }

    fn image_example(feature: feature::Kind) -> Example {
        Example {
            features: Some(Features { feature: HashMap::from([(INPUT.to_owned(), Feature { kind: Some(feature) })]) }),
        }
    }

    #[test]
    fn examples_carry_an_image_as_bytes_ints_or_floats_or_take_it_from_the_context() {
        let raw: Vec<u8> = (0..IMAGE_VALUES).map(|i| (i % 200) as u8).collect();
        let bytes = image_example(feature::Kind::BytesList(BytesList { value: vec![Bytes::from(raw.clone())] }));
        let ints =
            image_example(feature::Kind::Int64List(Int64List { value: raw.iter().map(|&v| i64::from(v)).collect() }));
        let floats = image_example(feature::Kind::FloatList(FloatList {
            value: raw.iter().map(|&v| f32::from(v) / 255.0).collect(),
        }));
        let list = ExampleList { examples: vec![bytes.clone(), ints, floats] };
        let pixels = decode_classify(Some(&input::Kind::ExampleList(list)), &mut unlimited()).unwrap();
        assert_eq!(pixels.dim(), (3, IMAGE_VALUES));
        assert_eq!(pixels.row(0), pixels.row(1));
        assert_eq!(pixels.row(0), pixels.row(2));
        let with_context = ExampleListWithContext { examples: vec![Example::default()], context: Some(bytes) };
        let pixels =
            decode_classify(Some(&input::Kind::ExampleListWithContext(with_context)), &mut unlimited()).unwrap();
        assert_eq!(pixels.dim(), (1, IMAGE_VALUES));
    }

    #[test]
    fn bad_examples_get_clear_errors() {
        assert_eq!(error(decode_classify(None, &mut unlimited())), "Input is empty.");
        let empty = input::Kind::ExampleList(ExampleList { examples: vec![] });
        assert_eq!(error(decode_classify(Some(&empty), &mut unlimited())), "Input is empty.");
        let none = input::Kind::ExampleList(ExampleList { examples: vec![Example::default()] });
        assert!(error(decode_classify(Some(&none), &mut unlimited())).contains("example 0 has no `images` feature"));
        let two = image_example(feature::Kind::BytesList(BytesList { value: vec![Bytes::new(), Bytes::new()] }));
        let two = input::Kind::ExampleList(ExampleList { examples: vec![two] });
        assert!(error(decode_classify(Some(&two), &mut unlimited())).contains("holds 2 values"));
    }

    #[test]
    fn predict_on_the_classify_signature_takes_serialized_examples() {
        let example =
            image_example(feature::Kind::BytesList(BytesList { value: vec![Bytes::from(vec![9u8; IMAGE_VALUES])] }));
        let tensor = TensorProto {
            dtype: DataType::DtString as i32,
            string_val: vec![Bytes::from(example.encode_to_vec()), Bytes::from_static(b"\xff")],
            ..Default::default()
        };
        let inputs = HashMap::from([(EXAMPLES.to_owned(), tensor)]);
        assert!(
            error(decode_predict(Signature::Classify, &inputs, &[], &mut unlimited()))
                .contains("example 1 is not a tf.Example")
        );
    }

    #[test]
    fn answers_have_the_signature_shapes() {
        let outputs = encode_predict(&[0.25, 0.75], &[PROBABILITIES, CLASSES], Signature::Predict);
        let dims =
            |name: &str| outputs[name].tensor_shape.as_ref().unwrap().dim.iter().map(|d| d.size).collect::<Vec<_>>();
        assert_eq!(dims(PROBABILITIES), [2, 1]);
        assert_eq!(outputs[PROBABILITIES].float_val, [0.25, 0.75]);
        assert_eq!(outputs[CLASSES].string_val, [Bytes::from_static(b"non-cat"), Bytes::from_static(b"cat")]);
        let outputs = encode_predict(&[0.25], &[CLASSES, SCORES], Signature::Classify);
        assert_eq!(outputs[SCORES].float_val, [0.75, 0.25]);
        assert_eq!(outputs[CLASSES].string_val.len(), 2);
        let result = encode_classify(&[0.75]);
        assert_eq!(result.classifications[0].classes[1], Class { label: "cat".into(), score: 0.75 });
        let map = signatures();
        let serving = &map.signature_def[SERVING_DEFAULT];
        assert_eq!(serving.method_name, PREDICT_METHOD);
        assert_eq!(serving.inputs[INPUT].dtype, DataType::DtUint8 as i32);
        assert_eq!(map.signature_def[CLASSIFY_SIGNATURE].method_name, CLASSIFY_METHOD);
    }

    /// A 100 MB `tensor_content` must not be copied on its way in: prost's `Bytes` fields (see build.rs) slice
    /// the received message, which tonic hands over as one buffer.
    #[test]
    fn tensor_content_is_a_slice_of_the_received_message() {
        let tensor =
            images_tensor(DataType::DtUint8, 2, |t| t.tensor_content = Bytes::from(vec![7u8; 2 * IMAGE_VALUES]));
        let request = crate::proto::tensorflow::serving::PredictRequest {
            inputs: HashMap::from([(INPUT.to_owned(), tensor)]),
            ..Default::default()
        };
        let wire = Bytes::from(request.encode_to_vec());
        let decoded = crate::proto::tensorflow::serving::PredictRequest::decode(wire.clone()).unwrap();
        let content = &decoded.inputs[INPUT].tensor_content;
        assert_eq!(content.len(), 2 * IMAGE_VALUES);
        assert!(wire.as_ptr_range().contains(&content.as_ptr()), "tensor_content was copied out of the message");
    }

    proptest! {
        /// Whatever a client sends, decoding answers (an error or a batch), never panics.
        #[test]
        fn any_predict_request_decodes_or_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(request) = crate::proto::tensorflow::serving::PredictRequest::decode(bytes.as_slice()) {
                for signature in [Signature::Predict, Signature::Classify] {
                    let _ = decode_predict(signature, &request.inputs, &request.output_filter, &mut unlimited());
                }
            }
            if let Ok(request) = crate::proto::tensorflow::serving::ClassificationRequest::decode(bytes.as_slice()) {
                let _ = decode_classify(request.input.as_ref().and_then(|i| i.kind.as_ref()), &mut unlimited());
            }
        }
    }
}
