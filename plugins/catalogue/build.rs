//! Turns images.txt into the `IMAGES` table (`$OUT_DIR/images.rs`), so the catalogue is one file the Makefile
//! reads as it is and Rust reads typed, each line's config type checked by the compiler.

use std::fmt::Write as _;

const COLUMNS: [&str; 7] = ["image", "crate", "features", "exports", "pins", "suite", "config"];

fn optional(value: &str) -> String {
    if value == "-" { "None".into() } else { format!("Some({value:?})") }
}

fn entry(line: &str) -> Result<String, String> {
    let cols: Vec<&str> = line.split_whitespace().collect();
    let [image, krate, features, exports, pins, suite, config] = cols[..] else {
        return Err(format!("{} columns ({}), not {}", COLUMNS.len(), COLUMNS.join(" "), cols.len()));
    };
    let features = match features {
        "default" => "Features::Default".to_string(),
        "-" => "Features::Exactly(&[])".to_string(),
        list => format!("Features::Exactly(&{:?})", list.split(',').collect::<Vec<_>>()),
    };
    let suite_part = match suite {
        "part" => true,
        "-" => false,
        other => return Err(format!("suite is `part` or `-`, not `{other}`")),
    };
    Ok(format!(
        "    Image {{ name: {image:?}, crate_name: {krate:?}, features: {features}, exports: {exports:?}, \
         pins: {}, suite_part: {suite_part}, registered: Registered::of::<{config}>() }},\n",
        optional(pins)
    ))
}

fn main() -> Result<(), String> {
    println!("cargo::rerun-if-changed=images.txt");
    let text = std::fs::read_to_string("images.txt").map_err(|e| format!("images.txt: {e}"))?;
    let mut out = String::from("/// Every image, in the catalogue's order.\npub static IMAGES: &[Image] = &[\n");
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out += &entry(line).map_err(|e| format!("images.txt:{}: {e}", number + 1))?;
    }
    let _ = writeln!(out, "];");
    let dir = std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?;
    std::fs::write(std::path::Path::new(&dir).join("images.rs"), out).map_err(|e| format!("writing images.rs: {e}"))
}
