//! The cat / non-cat network: its layers, numpy-compatible initialisation, training and weight files.

mod network;
mod numpy_random;
mod training;
pub mod weights;

pub use network::{Dense, Network, ShapeError, validate_sizes};
pub use numpy_random::NumpyRandom;
pub use training::{GradientDescent, Solver, cross_entropy};

/// Images are 64×64 RGB, flattened row-major (height, width, channel) as the reference does.
pub const IMAGE_SHAPE: [usize; 3] = [64, 64, 3];
pub const IMAGE_VALUES: usize = 64 * 64 * 3;
/// The reference network: 12288 inputs, hidden layers of 20, 7 and 5 ReLU units, one sigmoid output.
pub const DEFAULT_SIZES: [usize; 5] = [IMAGE_VALUES, 20, 7, 5, 1];
pub const LABELS: [&str; 2] = ["non-cat", "cat"];

/// The label for a sigmoid output: cat above 0.5, as the reference's `predict`.
pub fn label(probability: f32) -> &'static str {
    LABELS[usize::from(probability > 0.5)]
}
