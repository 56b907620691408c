//! Weights on disk: safetensors, f32, with the layer sizes and the model's provenance in the header metadata.
//!
//! Tensors are `layers.<i>.weight` (`[outputs, inputs]`) and `layers.<i>.bias` (`[outputs]`), `i` from 1. Loading
//! checks every tensor's dtype and shape against the sizes in the metadata and against what the caller expects.

use super::network::{Dense, Network, ShapeError, validate_sizes};
use ndarray::{Array1, Array2};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, SafeTensorError, TensorView};
use std::collections::HashMap;
use std::path::Path;

pub const SIZES_KEY: &str = "layer_sizes";

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("not a safetensors file: {0}")]
    Format(#[from] SafeTensorError),
    #[error(
        "the metadata has no `{SIZES_KEY}` entry (expected e.g. \"[12288,20,7,5,1]\"); was this file written by `train`?"
    )]
    MissingSizes,
    #[error("`{SIZES_KEY}` is not a list of sizes: {0}")]
    BadSizes(String),
    #[error("tensor `{0}` is missing")]
    MissingTensor(String),
    #[error("tensor `{name}` is {dtype:?}, expected F32")]
    Dtype { name: String, dtype: Dtype },
    #[error("tensor `{name}` has shape {found:?}, but the layer sizes say {expected:?}")]
    Shape { name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("the file holds a network of sizes {found:?}, but {expected:?} was expected")]
    Sizes { found: Vec<usize>, expected: Vec<usize> },
    #[error(transparent)]
    Network(#[from] ShapeError),
}

/// A trained network and the metadata it was saved with.
pub struct Saved {
    pub network: Network<f32>,
    pub metadata: HashMap<String, String>,
}

pub fn save(network: &Network<f32>, metadata: &HashMap<String, String>, path: &Path) -> Result<(), WeightsError> {
    let bytes = to_bytes(network, metadata)?;
    std::fs::write(path, bytes).map_err(|source| WeightsError::Write { path: path.display().to_string(), source })
}

pub fn to_bytes(network: &Network<f32>, metadata: &HashMap<String, String>) -> Result<Vec<u8>, WeightsError> {
    let mut metadata = metadata.clone();
    metadata.insert(SIZES_KEY.to_owned(), serde_json::to_string(&network.sizes()).unwrap_or_default());
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = network
        .layers()
        .iter()
        .enumerate()
        .flat_map(|(i, layer)| {
            [
                (format!("layers.{}.weight", i + 1), layer.weights.shape().to_vec(), le_bytes(layer.weights.iter())),
                (format!("layers.{}.bias", i + 1), layer.bias.shape().to_vec(), le_bytes(layer.bias.iter())),
            ]
        })
        .collect();
    let views = buffers
        .iter()
        .map(|(name, shape, data)| Ok((name.clone(), TensorView::new(Dtype::F32, shape.clone(), data)?)))
        .collect::<Result<Vec<_>, SafeTensorError>>()?;
    canonical(safetensors::serialize(views, Some(metadata))?)
}

/// The same file with its JSON header's keys sorted: safetensors writes them in hash order, and the same weights
/// should give the same bytes (reproducible builds, digests in reviews).
fn canonical(file: Vec<u8>) -> Result<Vec<u8>, WeightsError> {
    let header_len = file
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .and_then(|b| usize::try_from(u64::from_le_bytes(b)).ok())
        .ok_or(WeightsError::MissingSizes)?;
    let header = file.get(8..8 + header_len).ok_or(WeightsError::MissingSizes)?;
    let value: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| WeightsError::BadSizes(format!("header: {e}")))?;
    let mut sorted = serde_json::to_vec(&Sorted(&value)).map_err(|e| WeightsError::BadSizes(e.to_string()))?;
    // safetensors pads the header with spaces so that the data starts 8-byte aligned.
    sorted.resize(sorted.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + sorted.len() + file.len() - 8 - header_len);
    out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    out.extend_from_slice(&sorted);
    out.extend_from_slice(&file[8 + header_len..]);
    Ok(out)
}

/// Serialises JSON with every object's keys in sorted order, whatever map type serde_json was built with.
struct Sorted<'a>(&'a serde_json::Value);

impl serde::Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &Sorted(value))?;
                }
                out.end()
            }
            serde_json::Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Sorted(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// Loads weights; with `expected` set, refuses a file whose layer sizes differ.
pub fn load(path: &Path, expected: Option<&[usize]>) -> Result<Saved, WeightsError> {
    let bytes =
        std::fs::read(path).map_err(|source| WeightsError::Read { path: path.display().to_string(), source })?;
    from_bytes(&bytes, expected)
}

pub fn from_bytes(bytes: &[u8], expected: Option<&[usize]>) -> Result<Saved, WeightsError> {
    let (_, header) = SafeTensors::read_metadata(bytes)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let sizes_text = metadata.get(SIZES_KEY).ok_or(WeightsError::MissingSizes)?;
    let sizes: Vec<usize> =
        serde_json::from_str(sizes_text).map_err(|e| WeightsError::BadSizes(format!("{sizes_text:?}: {e}")))?;
    validate_sizes(&sizes)?;
    if let Some(expected) = expected
        && expected != sizes.as_slice()
    {
        return Err(WeightsError::Sizes { found: sizes, expected: expected.to_vec() });
    }
    let tensors = SafeTensors::deserialize(bytes)?;
    let layers = sizes
        .windows(2)
        .enumerate()
        .map(|(i, pair)| {
            let weight = read_f32(&tensors, &format!("layers.{}.weight", i + 1), &[pair[1], pair[0]])?;
            let bias = read_f32(&tensors, &format!("layers.{}.bias", i + 1), &[pair[1]])?;
            Ok(Dense {
                weights: Array2::from_shape_vec((pair[1], pair[0]), weight).map_err(|_| WeightsError::MissingSizes)?,
                bias: Array1::from(bias),
            })
        })
        .collect::<Result<Vec<_>, WeightsError>>()?;
    Ok(Saved { network: Network::from_layers(layers)?, metadata })
}

fn read_f32(tensors: &SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
    let view = tensors.tensor(name).map_err(|_| WeightsError::MissingTensor(name.to_owned()))?;
    if view.dtype() != Dtype::F32 {
        return Err(WeightsError::Dtype { name: name.to_owned(), dtype: view.dtype() });
    }
    if view.shape() != shape {
        return Err(WeightsError::Shape {
            name: name.to_owned(),
            found: view.shape().to_vec(),
            expected: shape.to_vec(),
        });
    }
    Ok(view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

fn le_bytes<'a>(values: impl Iterator<Item = &'a f32>) -> Vec<u8> {
    values.flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Network<f32> {
        Network::<f64>::numpy_init(&[6, 4, 1], 1).unwrap().cast()
    }

    #[test]
    fn round_trip_keeps_weights_sizes_and_metadata() {
        let net = small();
        let meta = HashMap::from([("seed".to_owned(), "1".to_owned())]);
        let saved = from_bytes(&to_bytes(&net, &meta).unwrap(), Some(&[6, 4, 1])).unwrap();
        assert_eq!(saved.network, net);
        assert_eq!(saved.metadata["seed"], "1");
        assert_eq!(saved.metadata[SIZES_KEY], "[6,4,1]");
    }

    #[test]
    fn the_same_weights_give_the_same_bytes() {
        let net = small();
        let meta: HashMap<String, String> = (0..20).map(|i| (format!("key{i}"), i.to_string())).collect();
        let first = to_bytes(&net, &meta).unwrap();
        for _ in 0..5 {
            let shuffled: HashMap<String, String> = meta.clone().into_iter().collect();
            assert!(to_bytes(&net, &shuffled).unwrap() == first);
        }
        assert_eq!(from_bytes(&first, None).unwrap().network, net);
    }

    #[test]
    fn other_sizes_are_refused_with_both_shapes_named() {
        let bytes = to_bytes(&small(), &HashMap::new()).unwrap();
        let err = from_bytes(&bytes, Some(&[12288, 20, 7, 5, 1])).err().unwrap();
        assert_eq!(
            err.to_string(),
            "the file holds a network of sizes [6, 4, 1], but [12288, 20, 7, 5, 1] was expected"
        );
    }

    #[test]
    fn metadata_that_lies_about_the_shapes_is_refused() {
        let mut bytes = to_bytes(&small(), &HashMap::new()).unwrap();
        // Same length, so the header stays valid JSON: claim 5 hidden units instead of 4.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let at = text.find("[6,4,1]").unwrap();
        bytes[at + 3] = b'5';
        let err = from_bytes(&bytes, None).err().unwrap();
        assert!(err.to_string().contains("layers.1.weight` has shape [4, 6], but the layer sizes say [5, 6]"), "{err}");
    }

    #[test]
    fn files_without_sizes_or_not_safetensors_are_refused() {
        assert!(matches!(from_bytes(b"not a model", None), Err(WeightsError::Format(_))));
        let views: Vec<(String, TensorView)> = Vec::new();
        let bytes = safetensors::serialize(views, None).unwrap();
        assert!(matches!(from_bytes(&bytes, None), Err(WeightsError::MissingSizes)));
    }
}
