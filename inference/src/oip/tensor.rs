//! Decoding a `ModelInferRequest` into a batch of images, and encoding the answer, following the protocol's
//! conventions: data either in typed `contents` or in `raw_input_contents` (little-endian, row-major), answered in
//! the same form it came in.
//!
//! Everything here runs on untrusted input: sizes are checked with overflow in mind before anything is allocated.

use crate::budget::Budget;
use crate::input_error::{InputError, invalid};
use crate::model::{IMAGE_SHAPE, IMAGE_VALUES, label};
use crate::proto::model_infer_request::InferInputTensor;
use crate::proto::model_infer_response::InferOutputTensor;
use crate::proto::{InferTensorContents, ModelInferRequest};
use crate::{echo, encoded};
use bytes::{Bytes, BytesMut};
use ndarray::Array2;

pub const INPUT: &str = "images";
/// The same images as PNG or JPEG files, one BYTES element each, decoded and resized by the server (the web page
/// sends photos this way).
pub const ENCODED_INPUT: &str = "encoded_images";
pub const PROBABILITIES: &str = "probabilities";
pub const LABELS: &str = "labels";
pub const OUTPUTS: [&str; 2] = [PROBABILITIES, LABELS];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datatype {
    /// Raw pixels 0..=255, scaled by 1/255 here.
    Uint8,
    /// Pixels already scaled to [0, 1].
    Fp32,
}

impl Datatype {
    fn parse(text: &str) -> Result<Self, InputError> {
        match text {
            "UINT8" => Ok(Self::Uint8),
            "FP32" => Ok(Self::Fp32),
            other => invalid(format!(
                "input `{INPUT}` has datatype `{}`; send UINT8 (0-255) or FP32 (0.0-1.0)",
                echo::text(other)
            )),
        }
    }

    fn width(self) -> usize {
        match self {
            Self::Uint8 => 1,
            Self::Fp32 => 4,
        }
    }
}

/// A decoded request: the images scaled to [0, 1], one per row, and how to answer.
#[derive(Debug)]
pub struct Batch {
    pub pixels: Array2<f32>,
    pub raw_output: bool,
    pub outputs: Vec<&'static str>,
}

/// The request's images, each allocation charged to `budget` before it is made.
pub fn decode(request: &ModelInferRequest, budget: &mut Budget) -> Result<Batch, InputError> {
    let input = match request.inputs.as_slice() {
        [only] if only.name == INPUT || only.name == ENCODED_INPUT => only,
        [only] => {
            return invalid(format!(
                "unknown input `{}`; this model takes `{INPUT}` (UINT8 or FP32 [N, 64, 64, 3]) or `{ENCODED_INPUT}` \
                 (BYTES [N], PNG or JPEG files)",
                echo::text(&only.name)
            ));
        }
        inputs => return invalid(format!("this model takes exactly one input (`{INPUT}`), got {}", inputs.len())),
    };
    if input.name == ENCODED_INPUT {
        let outputs = requested_outputs(request)?;
        let (count, pixels) = encoded_pixels(input, &request.raw_input_contents, budget)?;
        let pixels = Array2::from_shape_vec((count, IMAGE_VALUES), pixels)
            .map_err(|e| InputError::new(format!("cannot arrange the input as [{count}, {IMAGE_VALUES}]: {e}")))?;
        return Ok(Batch { pixels, raw_output: !request.raw_input_contents.is_empty(), outputs });
    }
    let datatype = Datatype::parse(&input.datatype)?;
    let count = batch_size(input)?;
    let values = count
        .checked_mul(IMAGE_VALUES)
        .ok_or_else(|| InputError::new(format!("a batch of {count} images is too large")))?;
    let outputs = requested_outputs(request)?;
    charge_pixels(budget, count)?;
    let pixels = match request.raw_input_contents.as_slice() {
        [] => typed(input, datatype, values)?,
        [raw] => {
            if input.contents.as_ref().is_some_and(|c| *c != InferTensorContents::default()) {
                return invalid(format!("input `{INPUT}` has both typed contents and raw_input_contents; send one"));
            }
            raw_pixels(raw, datatype, values)?
        }
        many => return invalid(format!("raw_input_contents has {} entries for 1 input", many.len())),
    };
    let pixels = Array2::from_shape_vec((count, IMAGE_VALUES), pixels)
        .map_err(|e| InputError::new(format!("cannot arrange the input as [{count}, {IMAGE_VALUES}]: {e}")))?;
    Ok(Batch { pixels, raw_output: !request.raw_input_contents.is_empty(), outputs })
}

/// `[N, 64, 64, 3]` with N ≥ 1.
fn batch_size(input: &InferInputTensor) -> Result<usize, InputError> {
    let expected = || format!("[N, {}, {}, {}]", IMAGE_SHAPE[0], IMAGE_SHAPE[1], IMAGE_SHAPE[2]);
    match input.shape.as_slice() {
        [n, rest @ ..] if rest.iter().map(|&d| usize::try_from(d).ok()).eq(IMAGE_SHAPE.iter().map(|&d| Some(d))) => {
            match usize::try_from(*n) {
                Ok(n) if n > 0 => Ok(n),
                _ => invalid(format!("batch size {n} in shape {}: must be at least 1", echo::list(&input.shape))),
            }
        }
        other => invalid(format!("input `{INPUT}` has shape {}; expected {}", echo::list(other), expected())),
    }
}

/// `encoded_images`: BYTES `[N]`, 1 ≤ N ≤ [`encoded::MAX_BATCH`], each element a PNG or JPEG, in `bytes_contents`
/// or in raw form (each element a 4-byte little-endian length, then its bytes).
///
/// Every image's header is read first, and the whole batch's decoding charged to `budget`, before any is decoded.
fn encoded_pixels(
    input: &InferInputTensor,
    raw: &[Bytes],
    budget: &mut Budget,
) -> Result<(usize, Vec<f32>), InputError> {
    if input.datatype != "BYTES" {
        return invalid(format!("input `{ENCODED_INPUT}` has datatype `{}`; send BYTES", echo::text(&input.datatype)));
    }
    let count = match input.shape.as_slice() {
        [n] => usize::try_from(*n).ok().filter(|n| (1..=encoded::MAX_BATCH).contains(n)),
        _ => None,
    }
    .ok_or_else(|| {
        InputError::new(format!(
            "input `{ENCODED_INPUT}` has shape {}; expected [N] with 1 <= N <= {}",
            echo::list(&input.shape),
            encoded::MAX_BATCH
        ))
    })?;
    let files: Vec<&[u8]> = match raw {
        [] => input.contents.as_ref().map(|c| c.bytes_contents.iter().map(|b| &b[..]).collect()).unwrap_or_default(),
        [raw] => split_raw_bytes(raw)?,
        many => return invalid(format!("raw_input_contents has {} entries for 1 input", many.len())),
    };
    check_count(files.len(), count, ENCODED_INPUT)?;
    let images = files
        .iter()
        .enumerate()
        .map(|(i, file)| encoded::inspect(file, format!("{ENCODED_INPUT}[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    for image in &images {
        budget.spend(image.decode_bytes(), || {
            format!("decoding {} ({} pixels declared by its header)", image.name(), image.pixels())
        })?;
    }
    charge_pixels(budget, count)?;
    let mut pixels = Vec::with_capacity(count * IMAGE_VALUES);
    for image in &images {
        pixels.extend(image.decode()?.into_iter().map(scale_u8));
    }
    Ok((count, pixels))
}

/// The raw form of a BYTES tensor: elements as a 4-byte little-endian length, then that many bytes.
fn split_raw_bytes(mut raw: &[u8]) -> Result<Vec<&[u8]>, InputError> {
    let mut elements = Vec::new();
    while !raw.is_empty() {
        let Some((length, rest)) = raw.split_first_chunk::<4>() else {
            return invalid("raw BYTES input ends inside an element's 4-byte length");
        };
        let length = u32::from_le_bytes(*length) as usize;
        if rest.len() < length {
            return invalid(format!("raw BYTES element of {length} bytes runs past the end of the input"));
        }
        elements.push(&rest[..length]);
        raw = &rest[length..];
    }
    Ok(elements)
}

/// Charges the model's input for `count` images: 12288 f32 each.
pub(crate) fn charge_pixels(budget: &mut Budget, count: usize) -> Result<(), InputError> {
    let bytes = (count as u64).saturating_mul((IMAGE_VALUES * size_of::<f32>()) as u64);
    budget.spend(bytes, || format!("a batch of {count} images as the model's input"))
}

fn requested_outputs(request: &ModelInferRequest) -> Result<Vec<&'static str>, InputError> {
    if request.outputs.is_empty() {
        return Ok(OUTPUTS.to_vec());
    }
    let mut outputs = Vec::with_capacity(OUTPUTS.len());
    for wanted in &request.outputs {
        let Some(&name) = OUTPUTS.iter().find(|&&name| name == wanted.name) else {
            return invalid(format!(
                "unknown output `{}`; this model has `{PROBABILITIES}` and `{LABELS}`",
                echo::text(&wanted.name)
            ));
        };
        if !outputs.contains(&name) {
            outputs.push(name);
        }
    }
    Ok(outputs)
}

fn typed(input: &InferInputTensor, datatype: Datatype, values: usize) -> Result<Vec<f32>, InputError> {
    let contents = input.contents.as_ref();
    let pixels = match datatype {
        Datatype::Uint8 => {
            let data = contents.map_or(&[][..], |c| c.uint_contents.as_slice());
            check_count(data.len(), values, "uint_contents")?;
            pixel_values(data.iter().map(|&v| i64::from(v)), values, "uint_contents")?
        }
        Datatype::Fp32 => {
            let data = contents.map_or(&[][..], |c| c.fp32_contents.as_slice());
            check_count(data.len(), values, "fp32_contents")?;
            data.to_vec()
        }
    };
    check_range(&pixels)?;
    Ok(pixels)
}

pub(crate) fn raw_pixels(raw: &Bytes, datatype: Datatype, values: usize) -> Result<Vec<f32>, InputError> {
    let expected =
        values.checked_mul(datatype.width()).ok_or_else(|| InputError::new(format!("{values} values are too many")))?;
    if raw.len() != expected {
        return invalid(format!(
            "raw input has {} bytes; the shape and datatype need {expected} ({values} values of {} byte(s))",
            raw.len(),
            datatype.width()
        ));
    }
    let pixels: Vec<f32> = match datatype {
        Datatype::Uint8 => raw.iter().copied().map(scale_u8).collect(),
        Datatype::Fp32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
    };
    if datatype == Datatype::Fp32 {
        check_range(&pixels)?;
    }
    Ok(pixels)
}

/// Integer pixel values (0-255) scaled to [0, 1], into exactly `count` f32s (the charge made for them).
pub(crate) fn pixel_values(
    values: impl Iterator<Item = i64>,
    count: usize,
    field: &str,
) -> Result<Vec<f32>, InputError> {
    let mut pixels = Vec::with_capacity(count);
    for v in values {
        let pixel =
            u8::try_from(v).map_err(|_| InputError::new(format!("{field}: {v} is not a pixel value (0-255)")))?;
        pixels.push(scale_u8(pixel));
    }
    Ok(pixels)
}

pub(crate) fn scale_u8(v: u8) -> f32 {
    f32::from(v) / 255.0
}

pub(crate) fn check_count(found: usize, expected: usize, field: &str) -> Result<(), InputError> {
    if found == expected { Ok(()) } else { invalid(format!("{field} has {found} values; the shape needs {expected}")) }
}

/// FP32 pixels must already be scaled; a 0-255 float image would otherwise be classified silently wrong.
pub(crate) fn check_range(pixels: &[f32]) -> Result<(), InputError> {
    match pixels.iter().position(|v| !(0.0..=1.0).contains(v)) {
        None => Ok(()),
        Some(at) => invalid(format!(
            "FP32 value {} at index {at} is outside [0, 1]; scale pixels by 1/255 or send UINT8",
            pixels[at]
        )),
    }
}

/// The answer for `probabilities` (one sigmoid output per image), as the request asked for it.
pub fn encode(probabilities: &[f32], outputs: &[&str], raw: bool) -> (Vec<InferOutputTensor>, Vec<Bytes>) {
    let shape = vec![i64::try_from(probabilities.len()).unwrap_or(i64::MAX), 1];
    let labels: Vec<&str> = probabilities.iter().map(|&p| label(p)).collect();
    let mut tensors = Vec::with_capacity(outputs.len());
    let mut raw_contents = Vec::new();
    for &name in outputs {
        let (datatype, contents, bytes) = if name == PROBABILITIES {
            let bytes: Vec<u8> = probabilities.iter().flat_map(|p| p.to_le_bytes()).collect();
            let contents = InferTensorContents { fp32_contents: probabilities.to_vec(), ..Default::default() };
            ("FP32", contents, Bytes::from(bytes))
        } else {
            // BYTES elements in raw form: a 4-byte little-endian length, then the bytes.
            let mut bytes = BytesMut::new();
            for text in &labels {
                bytes.extend_from_slice(&u32::try_from(text.len()).unwrap_or(0).to_le_bytes());
                bytes.extend_from_slice(text.as_bytes());
            }
            let contents = InferTensorContents {
                bytes_contents: labels.iter().map(|t| Bytes::copy_from_slice(t.as_bytes())).collect(),
                ..Default::default()
            };
            ("BYTES", contents, bytes.freeze())
        };
        tensors.push(InferOutputTensor {
            name: name.to_owned(),
            datatype: datatype.to_owned(),
            shape: shape.clone(),
            parameters: Default::default(),
            contents: (!raw).then_some(contents),
        });
        if raw {
            raw_contents.push(bytes);
        }
    }
    (tensors, raw_contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::model_infer_request::InferRequestedOutputTensor;
    use proptest::prelude::*;

    fn input(datatype: &str, shape: Vec<i64>, contents: Option<InferTensorContents>) -> InferInputTensor {
        InferInputTensor {
            name: INPUT.to_owned(),
            datatype: datatype.to_owned(),
            shape,
            parameters: Default::default(),
            contents,
        }
    }

    fn raw_request(datatype: &str, n: i64, bytes: Vec<u8>) -> ModelInferRequest {
        ModelInferRequest {
            model_name: "catnet".into(),
            inputs: vec![input(datatype, vec![n, 64, 64, 3], None)],
            raw_input_contents: vec![Bytes::from(bytes)],
            ..Default::default()
        }
    }

    fn unlimited() -> Budget {
        Budget::fixed(u64::MAX)
    }

    fn error(request: &ModelInferRequest) -> String {
        decode(request, &mut unlimited()).unwrap_err().to_string()
    }

    fn png_64(pixel: [u8; 3]) -> Bytes {
        let image = image::RgbImage::from_pixel(64, 64, image::Rgb(pixel));
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner().into()
    }

    fn encoded_request(shape: Vec<i64>, files: Vec<Bytes>) -> ModelInferRequest {
        ModelInferRequest {
            inputs: vec![InferInputTensor {
                name: ENCODED_INPUT.into(),
                datatype: "BYTES".into(),
                shape,
                contents: Some(InferTensorContents { bytes_contents: files, ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn encoded_images_are_decoded_in_both_forms() {
        let files = vec![png_64([255, 0, 0]), png_64([0, 51, 0])];
        let batch = decode(&encoded_request(vec![2], files.clone()), &mut unlimited()).unwrap();
        assert_eq!(batch.pixels.dim(), (2, IMAGE_VALUES));
        assert_eq!((batch.pixels[[0, 0]], batch.pixels[[0, 1]], batch.pixels[[1, 1]]), (1.0, 0.0, 0.2));
        assert!(!batch.raw_output);
        let mut raw = Vec::new();
        for file in &files {
            raw.extend_from_slice(&(file.len() as u32).to_le_bytes());
            raw.extend_from_slice(file);
        }
        let mut request = encoded_request(vec![2], vec![]);
        request.inputs[0].contents = None;
        request.raw_input_contents = vec![raw.into()];
        let from_raw = decode(&request, &mut unlimited()).unwrap();
        assert_eq!(from_raw.pixels, batch.pixels);
        assert!(from_raw.raw_output);
    }

    #[test]
    fn encoded_images_say_what_is_wrong() {
        let one = || vec![png_64([0, 0, 0])];
        let mut wrong_type = encoded_request(vec![1], one());
        wrong_type.inputs[0].datatype = "UINT8".into();
        assert_eq!(error(&wrong_type), "input `encoded_images` has datatype `UINT8`; send BYTES");
        assert_eq!(error(&encoded_request(vec![2], one())), "encoded_images has 1 values; the shape needs 2");
        assert_eq!(
            error(&encoded_request(vec![65], one())),
            "input `encoded_images` has shape [65]; expected [N] with 1 <= N <= 64"
        );
        assert_eq!(
            error(&encoded_request(vec![1], vec![Bytes::from_static(b"GIF89a")])),
            "encoded_images[0] is neither PNG nor JPEG"
        );
        let mut truncated = encoded_request(vec![1], vec![]);
        truncated.raw_input_contents = vec![Bytes::from_static(&[9, 0, 0, 0, 1])];
        assert_eq!(error(&truncated), "raw BYTES element of 9 bytes runs past the end of the input");
    }

    #[test]
    fn raw_uint8_batch_is_scaled_to_unit_range() {
        let mut bytes = vec![0u8; 2 * IMAGE_VALUES];
        bytes[1] = 255;
        bytes[IMAGE_VALUES] = 51;
        let batch = decode(&raw_request("UINT8", 2, bytes), &mut unlimited()).unwrap();
        assert_eq!(batch.pixels.dim(), (2, IMAGE_VALUES));
        assert_eq!(batch.pixels[[0, 1]], 1.0);
        assert_eq!(batch.pixels[[1, 0]], 0.2);
        assert!(batch.raw_output);
        assert_eq!(batch.outputs, OUTPUTS);
    }

    #[test]
    fn raw_fp32_is_little_endian_and_range_checked() {
        let mut values = vec![0.5f32; IMAGE_VALUES];
        values[7] = 0.25;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let batch = decode(&raw_request("FP32", 1, bytes.clone()), &mut unlimited()).unwrap();
        assert_eq!(batch.pixels[[0, 7]], 0.25);

        let mut scaled_wrong = bytes;
        scaled_wrong[..4].copy_from_slice(&200.0f32.to_le_bytes());
        assert_eq!(
            error(&raw_request("FP32", 1, scaled_wrong)),
            "FP32 value 200 at index 0 is outside [0, 1]; scale pixels by 1/255 or send UINT8"
        );
        let mut nan = vec![0u8; 4 * IMAGE_VALUES];
        nan[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(error(&raw_request("FP32", 1, nan)).contains("NaN at index 1 is outside [0, 1]"));
    }

    #[test]
    fn typed_contents_work_for_both_datatypes() {
        let uint = InferTensorContents { uint_contents: vec![255; IMAGE_VALUES], ..Default::default() };
        let request =
            ModelInferRequest { inputs: vec![input("UINT8", vec![1, 64, 64, 3], Some(uint))], ..Default::default() };
        let batch = decode(&request, &mut unlimited()).unwrap();
        assert!(batch.pixels.iter().all(|&v| v == 1.0));
        assert!(!batch.raw_output);

        let fp = InferTensorContents { fp32_contents: vec![0.0; 2 * IMAGE_VALUES], ..Default::default() };
        let request =
            ModelInferRequest { inputs: vec![input("FP32", vec![2, 64, 64, 3], Some(fp))], ..Default::default() };
        assert_eq!(decode(&request, &mut unlimited()).unwrap().pixels.nrows(), 2);

        let big = InferTensorContents { uint_contents: vec![256; IMAGE_VALUES], ..Default::default() };
        let request =
            ModelInferRequest { inputs: vec![input("UINT8", vec![1, 64, 64, 3], Some(big))], ..Default::default() };
        assert_eq!(error(&request), "uint_contents: 256 is not a pixel value (0-255)");
    }

    #[test]
    fn mismatches_name_what_was_expected() {
        assert_eq!(
            error(&raw_request("UINT8", 2, vec![0; IMAGE_VALUES])),
            "raw input has 12288 bytes; the shape and datatype need 24576 (24576 values of 1 byte(s))"
        );
        assert_eq!(
            error(&raw_request("INT64", 1, vec![])),
            "input `images` has datatype `INT64`; send UINT8 (0-255) or FP32 (0.0-1.0)"
        );
        assert_eq!(error(&raw_request("UINT8", 0, vec![])), "batch size 0 in shape [0, 64, 64, 3]: must be at least 1");
        let mut request = raw_request("UINT8", 1, vec![0; IMAGE_VALUES]);
        request.inputs[0].shape = vec![1, 32, 32, 3];
        assert_eq!(error(&request), "input `images` has shape [1, 32, 32, 3]; expected [N, 64, 64, 3]");
        request.inputs[0].shape = vec![1, 64, 64, 3];
        request.inputs[0].name = "x".into();
        assert_eq!(
            error(&request),
            "unknown input `x`; this model takes `images` (UINT8 or FP32 [N, 64, 64, 3]) or `encoded_images` \
             (BYTES [N], PNG or JPEG files)"
        );
        request.inputs.clear();
        assert_eq!(error(&request), "this model takes exactly one input (`images`), got 0");
        let mut request = raw_request("UINT8", 1, vec![0; IMAGE_VALUES]);
        request.outputs = vec![InferRequestedOutputTensor { name: "logits".into(), parameters: Default::default() }];
        assert_eq!(error(&request), "unknown output `logits`; this model has `probabilities` and `labels`");
    }

    #[test]
    fn a_huge_announced_batch_is_refused_before_any_allocation() {
        assert!(error(&raw_request("FP32", i64::MAX, vec![0; 16])).contains("too"));
        assert!(error(&raw_request("UINT8", 1 << 40, vec![0; 16])).contains("raw input has 16 bytes"));
    }

    #[test]
    fn outputs_follow_the_request_form() {
        let (tensors, raw) = encode(&[0.9, 0.1], &[LABELS, PROBABILITIES], true);
        assert_eq!(tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), [LABELS, PROBABILITIES]);
        assert!(tensors.iter().all(|t| t.contents.is_none() && t.shape == [2, 1]));
        assert_eq!(&raw[0][..], b"\x03\x00\x00\x00cat\x07\x00\x00\x00non-cat");
        assert_eq!(&raw[1][..4], 0.9f32.to_le_bytes());

        let (tensors, raw) = encode(&[0.7], &[PROBABILITIES], false);
        assert!(raw.is_empty());
        assert_eq!(tensors[0].contents.as_ref().unwrap().fp32_contents, [0.7]);
    }

    proptest! {
        #[test]
        fn decode_never_panics(
            datatype in prop::sample::select(vec!["UINT8", "FP32", "BYTES", ""]),
            shape in prop::collection::vec(any::<i64>(), 0..6),
            raw in prop::collection::vec(any::<u8>(), 0..64),
            typed_values in prop::collection::vec(any::<u32>(), 0..8),
        ) {
            let contents = InferTensorContents { uint_contents: typed_values, ..Default::default() };
            let mut request = ModelInferRequest { inputs: vec![input(datatype, shape, Some(contents))], ..Default::default() };
            let _ = decode(&request, &mut unlimited());
            request.raw_input_contents = vec![Bytes::from(raw)];
            let _ = decode(&request, &mut unlimited());
        }
    }
}
