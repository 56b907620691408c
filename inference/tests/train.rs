//! `train` on the real catvnoncat data: the numpy reference's cost curve and accuracy, deterministic output, and
//! committed weights that are what training makes. Skips with a message where the data set is absent.

use anyhow::Result;
use ndarray::Array1;
use std::path::Path;
use std::process::Command;
use wasmgate_inference::data;
use wasmgate_inference::model::{DEFAULT_SIZES, weights};

fn data_dir() -> Option<std::path::PathBuf> {
    let dir = data::default_dir();
    if data::available(&dir) {
        Some(dir)
    } else {
        eprintln!("skipped: no catvnoncat data in {} (set {})", dir.display(), data::DATA_DIR_ENV);
        None
    }
}

fn train(dir: &Path, out: &Path, extra: &[&str]) -> Result<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmgate-inference"))
        .args(["train", "--data"])
        .arg(dir)
        .arg("--output")
        .arg(out.join("model.safetensors"))
        .arg("--plot")
        .arg(out.join("cost.png"))
        .args(extra)
        .output()?;
    let stdout = String::from_utf8(output.stdout)?;
    anyhow::ensure!(output.status.success(), "train failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    Ok(stdout)
}

#[test]
fn training_follows_the_numpy_reference_and_is_deterministic() -> Result<()> {
    let Some(dir) = data_dir() else { return Ok(()) };
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let stdout = train(&dir, a.path(), &[])?;
    // The reference's printed costs (reference.py, seed 1, learning rate 0.0075).
    for line in [
        "cost after iteration 0: 0.771749",
        "cost after iteration 100: 0.672053",
        "cost after iteration 2400: 0.092878",
        "final cost 0.088440",
        "train accuracy: 0.9856",
        "test accuracy:  0.8000",
    ] {
        assert!(stdout.contains(line), "missing `{line}` in:\n{stdout}");
    }
    let png = std::fs::read(a.path().join("cost.png"))?;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);

    train(&dir, b.path(), &[])?;
    let first = std::fs::read(a.path().join("model.safetensors"))?;
    assert!(first == std::fs::read(b.path().join("model.safetensors"))?, "same seed, same bytes");
    let saved = weights::from_bytes(&first, Some(&DEFAULT_SIZES))?;
    assert_eq!(saved.metadata["test_accuracy"], "0.800000");
    Ok(())
}

#[test]
fn the_primal_solver_takes_the_reference_steps_too() -> Result<()> {
    let Some(dir) = data_dir() else { return Ok(()) };
    let out = tempfile::tempdir()?;
    let stdout = train(&dir, out.path(), &["--solver", "primal", "--iterations", "101"])?;
    assert!(stdout.contains("cost after iteration 100: 0.672053"), "{stdout}");
    Ok(())
}

#[test]
fn committed_weights_reproduce_the_reference_probabilities() -> Result<()> {
    let Some(dir) = data_dir() else { return Ok(()) };
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("model/catnet.safetensors");
    let saved = weights::load(&model, Some(&DEFAULT_SIZES))?;
    let test = data::load_split(&dir, "test")?;
    let probabilities = saved.network.predict(test.features::<f32>().view());
    let reference: Array1<f64> = ndarray_npy::read_npy(dir.join("reference_test_probs_2500.npy"))?;
    let worst = probabilities.iter().zip(&reference).map(|(&p, &r)| (f64::from(p) - r).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-5, "committed weights differ from the reference by {worst}");
    assert_eq!(saved.metadata["iterations"], "2500");
    Ok(())
}

#[test]
fn missing_data_and_bad_sizes_get_clear_errors() -> Result<()> {
    let empty = tempfile::tempdir()?;
    let output =
        Command::new(env!("CARGO_BIN_EXE_wasmgate-inference")).args(["train", "--data"]).arg(empty.path()).output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("no catvnoncat data in") && stderr.contains("WASMGATE_CATVNONCAT_DIR"), "{stderr}");

    let Some(dir) = data_dir() else { return Ok(()) };
    let output = Command::new(env!("CARGO_BIN_EXE_wasmgate-inference"))
        .args(["train", "--layers", "12288,20,3", "--data"])
        .arg(dir)
        .output()?;
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("the output layer must have exactly one unit (sigmoid), got 3"), "{stderr}");
    Ok(())
}
