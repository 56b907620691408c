//! The `train` command: fits the network on the catvnoncat set, shows progress, plots the cost, saves the weights.

use crate::data::{self, Split};
use crate::model::{GradientDescent, Network, weights};
use crate::plot;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct TrainOptions {
    pub data_dir: PathBuf,
    pub sizes: Vec<usize>,
    pub descent: GradientDescent,
    pub seed: u32,
    pub output: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    /// A progress bar and the cost every 100 iterations.
    pub progress: bool,
}

pub struct TrainReport {
    pub network: Network<f64>,
    pub costs: Vec<f64>,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub elapsed: Duration,
}

pub fn run(options: &TrainOptions) -> Result<TrainReport> {
    let train = data::load_split(&options.data_dir, "train")?;
    let test = data::load_split(&options.data_dir, "test")?;
    let x = train.features::<f64>();
    let y = train.label_values::<f64>();
    let mut network = Network::numpy_init(&options.sizes, options.seed)?;

    let bar =
        if options.progress { ProgressBar::new(options.descent.iterations as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} iterations  {msg}  [{elapsed} < {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let costs = options.descent.train(&mut network, x.view(), y.view(), |iteration, cost| {
        if iteration % 10 == 0 {
            bar.set_position(iteration as u64);
            bar.set_message(format!("cost {cost:.6}"));
        }
        if options.progress && iteration % 100 == 0 {
            bar.suspend(|| println!("cost after iteration {iteration}: {cost:.6}"));
        }
    });
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    let report = TrainReport {
        train_accuracy: accuracy(&network, &train),
        test_accuracy: accuracy(&network, &test),
        network,
        costs,
        elapsed,
    };
    if let Some(path) = &options.plot {
        plot::cost_curve(&report.costs, options.descent.learning_rate, path)?;
    }
    if let Some(path) = &options.output {
        let metadata = provenance(options, &report)?;
        weights::save(&report.network.cast(), &metadata, path)?;
    }
    Ok(report)
}

pub fn accuracy(network: &Network<f64>, split: &Split) -> f64 {
    let probabilities = network.predict(split.features::<f64>().view());
    data::accuracy(probabilities.as_slice().unwrap_or_default(), split.labels.as_slice().unwrap_or_default())
}

/// What a reader of the weights file needs to reproduce it.
fn provenance(options: &TrainOptions, report: &TrainReport) -> Result<HashMap<String, String>> {
    let digest = |name: &str| -> Result<String> {
        let path = options.data_dir.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(hex::encode(Sha256::digest(bytes)))
    };
    Ok(HashMap::from([
        ("model".to_owned(), "catnet: cat / non-cat, 64x64 RGB, pixels scaled to [0, 1]".to_owned()),
        ("labels".to_owned(), "0 non-cat, 1 cat (sigmoid output > 0.5)".to_owned()),
        ("trained_with".to_owned(), "wasmgate-inference train (full-batch gradient descent, cross-entropy)".to_owned()),
        ("seed".to_owned(), options.seed.to_string()),
        ("learning_rate".to_owned(), options.descent.learning_rate.to_string()),
        ("iterations".to_owned(), options.descent.iterations.to_string()),
        ("final_cost".to_owned(), format!("{:.6}", report.costs.last().copied().unwrap_or(f64::NAN))),
        ("train_accuracy".to_owned(), format!("{:.6}", report.train_accuracy)),
        ("test_accuracy".to_owned(), format!("{:.6}", report.test_accuracy)),
        ("train_x_sha256".to_owned(), digest("train_x.npy")?),
        ("train_y_sha256".to_owned(), digest("train_y.npy")?),
    ]))
}

/// Prints the end-of-training summary.
pub fn print_summary(report: &TrainReport, output: Option<&Path>, plot: Option<&Path>) {
    let iterations = report.costs.len().max(1);
    println!(
        "trained {} iterations in {:.2} s ({:.2} ms/iteration); final cost {:.6}",
        report.costs.len(),
        report.elapsed.as_secs_f64(),
        report.elapsed.as_secs_f64() * 1e3 / iterations as f64,
        report.costs.last().copied().unwrap_or(f64::NAN)
    );
    println!("train accuracy: {:.4}", report.train_accuracy);
    println!("test accuracy:  {:.4}", report.test_accuracy);
    if let Some(path) = output {
        println!("weights: {}", path.display());
    }
    if let Some(path) = plot {
        println!("cost curve: {}", path.display());
    }
}
