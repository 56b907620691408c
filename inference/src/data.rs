//! The catvnoncat image set, read from its `.npy` exports. The data is not part of the repository: it is found
//! through `WASMGATE_CATVNONCAT_DIR` or at `../shared/data/catvnoncat` beside the checkout.

use crate::model::{IMAGE_SHAPE, IMAGE_VALUES};
use anyhow::{Context, Result, bail};
use ndarray::{Array1, Array2, Array4, ArrayView2};
use ndarray_npy::read_npy;
use std::path::{Path, PathBuf};

pub const DATA_DIR_ENV: &str = "WASMGATE_CATVNONCAT_DIR";

/// One split: `images` is `[n, 12288]` raw pixels (row-major HWC per image), `labels` 0 (non-cat) or 1 (cat).
pub struct Split {
    pub images: Array2<u8>,
    pub labels: Array1<u8>,
}

impl Split {
    /// Pixels scaled to [0, 1], one example per row.
    pub fn features<F: ndarray::NdFloat>(&self) -> Array2<F> {
        scale(self.images.view())
    }

    pub fn label_values<F: ndarray::NdFloat>(&self) -> Array1<F> {
        self.labels.mapv(|v| if v == 0 { F::zero() } else { F::one() })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// `pixel / 255`, the reference's input scaling.
pub fn scale<F: ndarray::NdFloat>(pixels: ArrayView2<u8>) -> Array2<F> {
    let max = F::from(255.0).unwrap_or_else(F::one);
    pixels.mapv(|v| F::from(v).unwrap_or_else(F::zero) / max)
}

/// Where the data is: the environment override, else `../shared/data/catvnoncat` from the workspace root.
pub fn default_dir() -> PathBuf {
    std::env::var_os(DATA_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/catvnoncat"))
}

/// Whether `dir` holds the four `.npy` files.
pub fn available(dir: &Path) -> bool {
    ["train_x", "train_y", "test_x", "test_y"].iter().all(|name| dir.join(format!("{name}.npy")).is_file())
}

pub fn load_split(dir: &Path, name: &str) -> Result<Split> {
    let x_path = dir.join(format!("{name}_x.npy"));
    let y_path = dir.join(format!("{name}_y.npy"));
    let images: Array4<u8> = read_npy(&x_path).with_context(|| {
        format!("reading {} (uint8 [n,64,64,3]; set {DATA_DIR_ENV} to the data folder)", x_path.display())
    })?;
    let labels: Array1<u8> = read_npy(&y_path).with_context(|| format!("reading {} (uint8 [n])", y_path.display()))?;
    let (n, h, w, c) = images.dim();
    if [h, w, c] != IMAGE_SHAPE {
        bail!("{}: images are {h}x{w}x{c}, expected 64x64x3", x_path.display());
    }
    if labels.len() != n {
        bail!("{} has {} labels for {n} images", y_path.display(), labels.len());
    }
    if let Some(bad) = labels.iter().find(|&&v| v > 1) {
        bail!("{}: label {bad} is neither 0 (non-cat) nor 1 (cat)", y_path.display());
    }
    let images = images.into_shape_with_order((n, IMAGE_VALUES)).context("flattening images")?;
    Ok(Split { images, labels })
}

/// Fraction of `probabilities` on the right side of 0.5.
pub fn accuracy(probabilities: &[f64], labels: &[u8]) -> f64 {
    let right = probabilities.iter().zip(labels).filter(|&(&p, &y)| (p > 0.5) == (y == 1)).count();
    right as f64 / labels.len().max(1) as f64
}
