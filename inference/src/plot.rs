//! The training cost curve as a PNG.

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use std::path::Path;

pub fn cost_curve(costs: &[f64], learning_rate: f64, path: &Path) -> Result<()> {
    let plot_error = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let top = costs.iter().copied().fold(0.0_f64, f64::max) * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("training cost (learning rate {learning_rate})"), ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0..costs.len().max(1), 0.0..top.max(f64::EPSILON))
        .map_err(|e| plot_error(&e))?;
    chart.configure_mesh().x_desc("iteration").y_desc("cross-entropy cost").draw().map_err(|e| plot_error(&e))?;
    chart
        .draw_series(LineSeries::new(costs.iter().enumerate().map(|(i, &c)| (i, c)), BLUE.stroke_width(2)))
        .map_err(|e| plot_error(&e))?;
    root.present().map_err(|e| plot_error(&e))?;
    Ok(())
}
