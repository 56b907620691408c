//! `wasmgate check [PATH...]`: checks the WasmPlugin resources under each path (default `manifests`).

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: wasmgate check [PATH...]   (files or directories of YAML; default: manifests)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("check") => check(args.map(PathBuf::from).collect()),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn check(mut paths: Vec<PathBuf>) -> ExitCode {
    if paths.is_empty() {
        paths.push(PathBuf::from("manifests"));
    }
    let mut failed = false;
    for path in paths {
        match wasmgate::check::check_path(&path) {
            Ok(findings) => {
                for finding in findings {
                    match finding.result {
                        Ok(summary) => println!("ok      {}: {summary}", finding.plugin),
                        Err(error) => {
                            failed = true;
                            println!("FAILED  {}: {error}", finding.plugin);
                        }
                    }
                }
            }
            Err(error) => {
                failed = true;
                println!("FAILED  {}: {error:#}", path.display());
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
