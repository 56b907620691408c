//! `make bench [-- <section>]`: request rate, latency and Envoy CPU per request through a real Envoy for each
//! plugin against passthrough (and Envoy's native equivalent where there is one), instructions per request under
//! callgrind, a flood of wrong passwords, 100 MB messages on every path, and the model server. Variants run in
//! interleaved rounds and are reported as medians with ratios, since this machine is noisy. The sections are
//! `wasmgate_e2e::bench::sections::SECTIONS`.

use anyhow::Result;
use std::fmt::Write as _;
use wasmgate_e2e::bench::report_dir;
use wasmgate_e2e::bench::sections::{SECTIONS, Section, named};
use wasmgate_e2e::workspace;

#[tokio::main]
async fn main() -> Result<()> {
    let sections: Vec<&Section> = match std::env::args().nth(1) {
        Some(name) if name != "all" => vec![named(&name)?],
        _ => SECTIONS.iter().collect(),
    };
    let mut report = String::new();
    for section in sections {
        report.push_str(&(section.run)().await?);
    }
    report.push_str(&wasm_sizes()?);
    let header = "# wasmgate benchmark report\n\nMeasured in one run on this machine; ratios compare variants measured side \
                  by side in interleaved rounds.\n";
    std::fs::write(report_dir()?.join("report.md"), format!("{header}{report}"))?;
    println!("\nwritten to bench-report/report.md");
    Ok(())
}

/// The size of every module `make build` left in `dist/plugins`.
fn wasm_sizes() -> Result<String> {
    let mut report = String::from(
        "\n## Module sizes (`make build`: opt-level s, with the plugins, the SDK and the hot crypto and hashing crates \
         at 3, LTO, wasm-opt -O3, unused exports pruned)\n\n| module | bytes |\n|---|---:|\n",
    );
    let mut files: Vec<_> = std::fs::read_dir(workspace::root().join("dist/plugins"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    for file in files {
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(report, "| {name} | {} |", std::fs::metadata(&file)?.len());
    }
    Ok(report)
}
