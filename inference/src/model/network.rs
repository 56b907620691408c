//! The L-layer fully connected network: ReLU hidden layers and one sigmoid output unit.
//!
//! Activations are laid out one example per row (`[batch, features]`), so a served batch `[N, 64, 64, 3]` is used
//! as it arrives, and every layer is one matrix product (BLAS) plus a broadcast bias.

use super::numpy_random::NumpyRandom;
use ndarray::{Array1, Array2, ArrayView2, Axis, NdFloat};

/// One fully connected layer: `weights` is `[outputs, inputs]`, as in the numpy reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<F> {
    pub weights: Array2<F>,
    pub bias: Array1<F>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Network<F> {
    layers: Vec<Dense<F>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("a network needs at least an input and an output size, got {0:?}")]
    TooFewLayers(Vec<usize>),
    #[error("layer sizes must be positive, got {0:?}")]
    ZeroSize(Vec<usize>),
    #[error("the output layer must have exactly one unit (sigmoid), got {0}")]
    OutputNotScalar(usize),
    #[error("layer {layer}: weights are {weights:?} and bias is {bias}, but the previous layer has {inputs} units")]
    Mismatch { layer: usize, weights: (usize, usize), bias: usize, inputs: usize },
}

impl<F: NdFloat> Network<F> {
    /// Builds a network from its layers, checking that consecutive shapes agree.
    pub fn from_layers(layers: Vec<Dense<F>>) -> Result<Self, ShapeError> {
        let Some(first) = layers.first() else {
            return Err(ShapeError::TooFewLayers(Vec::new()));
        };
        let mut inputs = first.weights.ncols();
        for (index, layer) in layers.iter().enumerate() {
            let (rows, cols) = layer.weights.dim();
            if cols != inputs || layer.bias.len() != rows || rows == 0 {
                return Err(ShapeError::Mismatch {
                    layer: index + 1,
                    weights: (rows, cols),
                    bias: layer.bias.len(),
                    inputs,
                });
            }
            inputs = rows;
        }
        if inputs != 1 {
            return Err(ShapeError::OutputNotScalar(inputs));
        }
        Ok(Self { layers })
    }

    /// numpy's initialisation: `W_l = randn(n_l, n_{l-1}) / sqrt(n_{l-1})` drawn in layer order, zero biases.
    pub fn numpy_init(sizes: &[usize], seed: u32) -> Result<Self, ShapeError> {
        validate_sizes(sizes)?;
        let mut rng = NumpyRandom::new(seed);
        let layers = sizes
            .windows(2)
            .map(|pair| {
                let (inputs, outputs) = (pair[0], pair[1]);
                let scale = (inputs as f64).sqrt();
                let weights = Array2::from_shape_simple_fn((outputs, inputs), || {
                    F::from(rng.standard_normal() / scale).unwrap_or_else(F::zero)
                });
                Dense { weights, bias: Array1::zeros(outputs) }
            })
            .collect();
        Self::from_layers(layers)
    }

    /// Layer sizes, input first: `[12288, 20, 7, 5, 1]` for the default network.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.input_size()];
        sizes.extend(self.layers.iter().map(|layer| layer.weights.nrows()));
        sizes
    }

    pub fn input_size(&self) -> usize {
        self.layers.first().map_or(0, |layer| layer.weights.ncols())
    }

    pub fn layers(&self) -> &[Dense<F>] {
        &self.layers
    }

    pub(crate) fn layers_mut(&mut self) -> &mut [Dense<F>] {
        &mut self.layers
    }

    /// Sigmoid outputs, one per row of `inputs` (`[batch, input_size]`, values in [0, 1]).
    pub fn predict(&self, inputs: ArrayView2<F>) -> Array1<F> {
        let mut activations: Option<Array2<F>> = None;
        let last = self.layers.len() - 1;
        for (index, layer) in self.layers.iter().enumerate() {
            let input = activations.as_ref().map_or(inputs.view(), |a| a.view());
            let mut z = affine(input, layer);
            if index == last {
                z.mapv_inplace(sigmoid);
            } else {
                z.mapv_inplace(relu);
            }
            activations = Some(z);
        }
        activations.map_or_else(|| Array1::zeros(inputs.nrows()), |a| a.index_axis_move(Axis(1), 0))
    }

    /// The same network with its parameters converted (train in f64, serve in f32).
    pub fn cast<G: NdFloat>(&self) -> Network<G> {
        let convert = |v: F| G::from(v).unwrap_or_else(G::zero);
        Network {
            layers: self
                .layers
                .iter()
                .map(|layer| Dense { weights: layer.weights.mapv(convert), bias: layer.bias.mapv(convert) })
                .collect(),
        }
    }
}

pub fn validate_sizes(sizes: &[usize]) -> Result<(), ShapeError> {
    if sizes.len() < 2 {
        return Err(ShapeError::TooFewLayers(sizes.to_vec()));
    }
    if sizes.contains(&0) {
        return Err(ShapeError::ZeroSize(sizes.to_vec()));
    }
    match sizes.last() {
        Some(&1) => Ok(()),
        Some(&other) => Err(ShapeError::OutputNotScalar(other)),
        None => Err(ShapeError::TooFewLayers(Vec::new())),
    }
}

/// `inputs · Wᵀ + b` for a batch laid out one example per row.
pub(crate) fn affine<F: NdFloat>(inputs: ArrayView2<F>, layer: &Dense<F>) -> Array2<F> {
    inputs.dot(&layer.weights.t()) + &layer.bias
}

pub(crate) fn relu<F: NdFloat>(z: F) -> F {
    if z > F::zero() { z } else { F::zero() }
}

pub(crate) fn sigmoid<F: NdFloat>(z: F) -> F {
    F::one() / (F::one() + (-z).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn init_follows_numpy_shapes_and_scale() {
        let net = Network::<f64>::numpy_init(&[4, 3, 1], 1).unwrap();
        assert_eq!(net.sizes(), vec![4, 3, 1]);
        // The first weight is numpy's first draw divided by sqrt(4).
        assert!((net.layers()[0].weights[[0, 0]] - 1.624_345_36 / 2.0).abs() < 1e-8);
        assert!(net.layers().iter().all(|l| l.bias.iter().all(|b| *b == 0.0)));
    }

    #[test]
    fn predict_computes_relu_then_sigmoid() {
        let net = Network::from_layers(vec![
            Dense { weights: array![[1.0, -1.0], [0.5, 0.5]], bias: array![0.0, -1.0] },
            Dense { weights: array![[2.0, 3.0]], bias: array![0.25] },
        ])
        .unwrap();
        // row 1: hidden = relu([1-2, 0.5+1-1]) = [0, 0.5]; out = sigmoid(1.5+0.25)
        let out = net.predict(array![[1.0, 2.0], [0.0, 0.0]].view());
        assert!((out[0] - 1.0 / (1.0 + (-1.75f64).exp())).abs() < 1e-12);
        assert!((out[1] - 1.0 / (1.0 + (-0.25f64).exp())).abs() < 1e-12);
    }

    #[test]
    fn mismatched_layers_are_refused() {
        let err = Network::from_layers(vec![
            Dense { weights: Array2::<f32>::zeros((3, 4)), bias: Array1::zeros(3) },
            Dense { weights: Array2::zeros((1, 2)), bias: Array1::zeros(1) },
        ])
        .unwrap_err();
        assert_eq!(err, ShapeError::Mismatch { layer: 2, weights: (1, 2), bias: 1, inputs: 3 });
        assert_eq!(validate_sizes(&[12288, 20, 2]), Err(ShapeError::OutputNotScalar(2)));
        assert!(matches!(validate_sizes(&[5]), Err(ShapeError::TooFewLayers(_))));
    }
}
