//! Bar charts for the benchmark report.

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use std::path::Path;

/// Horizontal bars, one per `(label, value)`, with the value printed at the end of each bar.
pub fn bars(title: &str, unit: &str, rows: &[(String, f64)], path: &Path) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("plotting {}: {e}", path.display());
    let height = 90 + 44 * rows.len() as u32;
    let root = BitMapBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let top = rows.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max).max(f64::EPSILON) * 1.2;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(300)
        .build_cartesian_2d(0.0..top, (0..rows.len()).into_segmented())
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(unit)
        .y_labels(rows.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => rows.get(*i).map(|(l, _)| l.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
            let mut bar = Rectangle::new(
                [(0.0, SegmentValue::Exact(i)), (*v, SegmentValue::Exact(i + 1))],
                BLUE.mix(0.6).filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            bar
        }))
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, v))| {
            Text::new(format!("{v:.1}"), (*v, SegmentValue::CenterOf(i)), ("sans-serif", 16).into_font())
        }))
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
