//! Full-batch gradient descent on the cross-entropy loss, the same algorithm as the numpy reference.
//!
//! Each iteration is a forward pass, the cost, and a backward pass whose weight updates are fused into the gradient
//! products (`W -= lr/m · dZᵀ·A_prev` as one GEMM). The reference also computes `dA_0 = W_1ᵀ·dZ_1`, a 12288×209
//! product nothing uses; it is skipped here.
//!
//! The first layer dominates the work: its two products stream the whole `[m, 12288]` input every iteration. Every
//! update of `W_1` is a combination of the input rows (`dZ_1ᵀ·X`), so `W_1 = W_1⁰ + Cᵀ·X` for an `[m, n_1]`
//! matrix `C`, and `X·W_1ᵀ = X·W_1⁰ᵀ + (X·Xᵀ)·C`. The [`Solver::Dual`] form keeps `C` and the `m×m` Gram matrix
//! instead of `W_1`: the same iterates in exact arithmetic, at a per-iteration cost that no longer depends on the
//! input width. It pays while there are fewer examples than input features (209 against 12288 here).

use super::network::{Network, affine, relu, sigmoid};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1, ArrayView2, Axis, Zip};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Solver {
    /// Dual when the batch has fewer examples than input features, primal otherwise.
    #[default]
    Auto,
    /// Updates `W_1` directly, as the reference does.
    Primal,
    /// Keeps `W_1 = W_1⁰ + Cᵀ·X` and updates `C` (see the module documentation).
    Dual,
}

#[derive(Clone, Copy, Debug)]
pub struct GradientDescent {
    pub learning_rate: f64,
    pub iterations: usize,
    pub solver: Solver,
}

impl Default for GradientDescent {
    fn default() -> Self {
        Self { learning_rate: 0.0075, iterations: 2500, solver: Solver::Auto }
    }
}

impl GradientDescent {
    /// Trains `network` on `inputs` (`[m, features]` in [0, 1]) and `labels` (0 or 1, length m); calls `progress`
    /// after every iteration with the cost before that iteration's update, and returns all costs.
    pub fn train(
        &self,
        network: &mut Network<f64>,
        inputs: ArrayView2<f64>,
        labels: ArrayView1<f64>,
        mut progress: impl FnMut(usize, f64),
    ) -> Vec<f64> {
        let mut first = FirstLayer::new(self.solver, network, inputs);
        let mut costs = Vec::with_capacity(self.iterations);
        for iteration in 0..self.iterations {
            let cost = step(network, &mut first, inputs, labels, self.learning_rate);
            progress(iteration, cost);
            costs.push(cost);
        }
        first.finish(network, inputs);
        costs
    }
}

/// How the first layer's product with the input is computed and its weights updated.
enum FirstLayer {
    Primal,
    Dual {
        /// `X·Xᵀ`, `[m, m]`.
        gram: Array2<f64>,
        /// `X·W_1⁰ᵀ`, `[m, n_1]`.
        initial: Array2<f64>,
        /// `C`, with `W_1 = W_1⁰ + Cᵀ·X`.
        coefficients: Array2<f64>,
    },
}

impl FirstLayer {
    fn new(solver: Solver, network: &Network<f64>, inputs: ArrayView2<f64>) -> Self {
        let dual = match solver {
            Solver::Auto => inputs.nrows() < inputs.ncols(),
            Solver::Primal => false,
            Solver::Dual => true,
        };
        let Some(layer) = network.layers().first().filter(|_| dual) else {
            return Self::Primal;
        };
        Self::Dual {
            gram: inputs.dot(&inputs.t()),
            initial: inputs.dot(&layer.weights.t()),
            coefficients: Array2::zeros((inputs.nrows(), layer.weights.nrows())),
        }
    }

    /// Writes the trained `W_1` back into the network.
    fn finish(self, network: &mut Network<f64>, inputs: ArrayView2<f64>) {
        if let (Self::Dual { coefficients, .. }, Some(layer)) = (self, network.layers_mut().first_mut()) {
            general_mat_mul(1.0, &coefficients.t(), &inputs, 1.0, &mut layer.weights);
        }
    }
}

/// Mean binary cross-entropy of `outputs` against `labels`.
pub fn cross_entropy(outputs: ArrayView1<f64>, labels: ArrayView1<f64>) -> f64 {
    let m = labels.len() as f64;
    let total = Zip::from(outputs).and(labels).fold(0.0, |acc, &a, &y| acc + y * a.ln() + (1.0 - y) * (1.0 - a).ln());
    -total / m
}

/// One gradient-descent iteration; returns the cost of the parameters it started from.
fn step(
    network: &mut Network<f64>,
    first: &mut FirstLayer,
    inputs: ArrayView2<f64>,
    labels: ArrayView1<f64>,
    learning_rate: f64,
) -> f64 {
    let m = inputs.nrows() as f64;
    let layers = network.layers_mut();
    let last = layers.len() - 1;

    // Forward: keep each layer's pre-activation z and activation a.
    let mut pre_activations: Vec<Array2<f64>> = Vec::with_capacity(layers.len());
    let mut activations: Vec<Array2<f64>> = Vec::with_capacity(layers.len());
    for (index, layer) in layers.iter().enumerate() {
        let z = match (index, &*first) {
            (0, FirstLayer::Dual { gram, initial, coefficients }) => {
                let mut z = initial + &layer.bias;
                general_mat_mul(1.0, gram, coefficients, 1.0, &mut z);
                z
            }
            (0, FirstLayer::Primal) => affine(inputs, layer),
            _ => affine(activations[index - 1].view(), layer),
        };
        let a = if index == last { z.mapv(sigmoid) } else { z.mapv(relu) };
        pre_activations.push(z);
        activations.push(a);
    }
    let output = activations[last].column(0).to_owned();
    let cost = cross_entropy(output.view(), labels);

    // Output layer: dZ = dA · σ'(z) with dA = -(y/a - (1-y)/(1-a)), exactly as the reference writes it.
    let mut dz = Array2::zeros((inputs.nrows(), 1));
    Zip::from(dz.column_mut(0)).and(&output).and(labels).for_each(|d, &a, &y| {
        let da = -(y / a - (1.0 - y) / (1.0 - a));
        *d = da * a * (1.0 - a);
    });

    let scale = learning_rate / m;
    for index in (0..layers.len()).rev() {
        // The gradient flowing to the layer below uses this layer's weights before they are updated.
        let next_dz = (index > 0).then(|| {
            let mut da = dz.dot(&layers[index].weights);
            Zip::from(&mut da).and(&pre_activations[index - 1]).for_each(|d, &z| {
                if z <= 0.0 {
                    *d = 0.0;
                }
            });
            da
        });
        let layer = &mut layers[index];
        layer.bias.scaled_add(-scale, &dz.sum_axis(Axis(0)));
        match (index, &mut *first) {
            (0, FirstLayer::Dual { coefficients, .. }) => coefficients.scaled_add(-scale, &dz),
            (0, FirstLayer::Primal) => general_mat_mul(-scale, &dz.t(), &inputs, 1.0, &mut layer.weights),
            _ => general_mat_mul(-scale, &dz.t(), &activations[index - 1], 1.0, &mut layer.weights),
        }
        if let Some(next) = next_dz {
            dz = next;
        }
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::Dense;
    use ndarray::{Array1, array};

    /// Cost of a network on a fixed batch, for finite differences.
    fn cost_of(net: &Network<f64>, x: ArrayView2<f64>, y: ArrayView1<f64>) -> f64 {
        cross_entropy(net.predict(x).view(), y)
    }

    #[test]
    fn one_step_moves_every_parameter_against_its_numerical_gradient() {
        let x = array![[0.1, 0.9, 0.3], [0.8, 0.2, 0.5], [0.4, 0.4, 0.9], [0.7, 0.1, 0.2]];
        let y = array![1.0, 0.0, 1.0, 0.0];
        let start = Network::from_layers(vec![
            Dense { weights: array![[0.3, -0.2, 0.5], [-0.4, 0.6, 0.1]], bias: array![0.05, 0.1] },
            Dense { weights: array![[0.7, -0.5]], bias: array![0.02] },
        ])
        .unwrap();
        let lr = 0.1;
        let mut trained = start.clone();
        let cost = step(&mut trained, &mut FirstLayer::Primal, x.view(), y.view(), lr);
        assert!((cost - cost_of(&start, x.view(), y.view())).abs() < 1e-12);

        let eps = 1e-6;
        for (l, (before, after)) in start.layers().iter().zip(trained.layers()).enumerate() {
            for ((i, j), w) in before.weights.indexed_iter() {
                let mut plus = start.clone();
                plus.layers_mut()[l].weights[[i, j]] = w + eps;
                let mut minus = start.clone();
                minus.layers_mut()[l].weights[[i, j]] = w - eps;
                let gradient = (cost_of(&plus, x.view(), y.view()) - cost_of(&minus, x.view(), y.view())) / (2.0 * eps);
                let expected = w - lr * gradient;
                assert!((after.weights[[i, j]] - expected).abs() < 1e-8, "layer {l} w[{i},{j}]");
            }
            for (i, b) in before.bias.iter().enumerate() {
                let mut plus = start.clone();
                plus.layers_mut()[l].bias[i] = b + eps;
                let mut minus = start.clone();
                minus.layers_mut()[l].bias[i] = b - eps;
                let gradient = (cost_of(&plus, x.view(), y.view()) - cost_of(&minus, x.view(), y.view())) / (2.0 * eps);
                assert!((after.bias[i] - (b - lr * gradient)).abs() < 1e-8, "layer {l} b[{i}]");
            }
        }
    }

    #[test]
    fn training_lowers_the_cost_on_a_separable_set() {
        let x = Array2::from_shape_fn((40, 6), |(i, j)| ((i * 7 + j * 3) % 10) as f64 / 10.0);
        let y: Array1<f64> = x.rows().into_iter().map(|r| f64::from(r[0] + r[1] > 0.9)).collect();
        let mut net = Network::numpy_init(&[6, 5, 1], 3).unwrap();
        let descent = GradientDescent { learning_rate: 0.5, iterations: 300, solver: Solver::Primal };
        let costs = descent.train(&mut net, x.view(), y.view(), |_, _| {});
        assert_eq!(costs.len(), 300);
        assert!(costs[299] < costs[0] * 0.6, "cost went from {} to {}", costs[0], costs[299]);
    }

    #[test]
    fn dual_and_primal_solvers_take_the_same_steps() {
        // Fewer examples (12) than features (30): the case the dual form is for.
        let x = Array2::from_shape_fn((12, 30), |(i, j)| ((i * 13 + j * 7) % 17) as f64 / 17.0);
        let y: Array1<f64> = (0..12).map(|i| f64::from(i % 3 == 0)).collect();
        let start = Network::numpy_init(&[30, 6, 4, 1], 5).unwrap();
        let run = |solver| {
            let mut net = start.clone();
            let costs = GradientDescent { learning_rate: 0.3, iterations: 200, solver }.train(
                &mut net,
                x.view(),
                y.view(),
                |_, _| {},
            );
            (net, costs)
        };
        let (primal, primal_costs) = run(Solver::Primal);
        let (dual, dual_costs) = run(Solver::Dual);
        for (p, d) in primal_costs.iter().zip(&dual_costs) {
            assert!((p - d).abs() < 1e-10, "costs diverge: {p} vs {d}");
        }
        for (p, d) in primal.layers().iter().zip(dual.layers()) {
            let close = |a: f64, b: f64| (a - b).abs() < 1e-10;
            assert!(p.weights.iter().zip(&d.weights).all(|(&a, &b)| close(a, b)));
            assert!(p.bias.iter().zip(&d.bias).all(|(&a, &b)| close(a, b)));
        }
        assert!(primal_costs[199] < primal_costs[0]);
    }
}
