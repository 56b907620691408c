//! The catalogue against the tree, both ways: each image's crate, features, export list and wasm profile entry
//! exist, and each plugin crate and export list under `plugins/` belongs to an image. (The committed
//! `WasmPlugin`s are checked against `pins` by the CLI, which renders the chart: `cli/src/pin.rs`.)

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use toml::Table;
use wasmgate_catalogue::{Features, IMAGES, Image};

fn plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn toml_file(path: &Path) -> Result<Table, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.parse().map_err(|e| format!("{}: {e}", path.display()))
}

fn manifest(image: &Image) -> Result<Table, String> {
    let path = plugins_dir().join(image.crate_name).join("Cargo.toml");
    toml_file(&path).map_err(|e| format!("{}: its crate plugins/{}: {e}", image.name, image.crate_name))
}

fn is_cdylib(manifest: &Table) -> bool {
    manifest
        .get("lib")
        .and_then(|lib| lib.get("crate-type"))
        .and_then(|t| t.as_array())
        .is_some_and(|t| t.iter().any(|t| t.as_str() == Some("cdylib")))
}

#[test]
fn each_image_is_built_from_a_crate_that_has_what_the_line_names() {
    for image in IMAGES {
        let manifest = manifest(image).unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some(image.crate_name), "{}: the crate's name", image.name);
        assert!(is_cdylib(&manifest), "{}: plugins/{} is not a cdylib", image.name, image.crate_name);
        let exports = plugins_dir().join(image.crate_name).join(image.exports);
        assert!(exports.is_file(), "{}: no export list {}", image.name, exports.display());
        if let Features::Exactly(features) = image.features {
            let declared = manifest.get("features").and_then(|f| f.as_table());
            for feature in features {
                assert!(
                    declared.is_some_and(|d| d.contains_key(*feature)),
                    "{}: plugins/{} has no feature `{feature}`",
                    image.name,
                    image.crate_name
                );
            }
        }
    }
}

/// Without `[profile.wasm.package.<crate>] opt-level = 3` a plugin builds for size, and its request path runs
/// about half again as many instructions (the workspace Cargo.toml says why).
#[test]
fn each_images_crate_is_built_for_speed_in_the_wasm_profile() {
    let workspace = toml_file(&plugins_dir().join("../Cargo.toml")).unwrap();
    let packages = &workspace["profile"]["wasm"]["package"];
    for image in IMAGES {
        let level = packages.get(image.crate_name).and_then(|p| p.get("opt-level")).and_then(|l| l.as_integer());
        assert_eq!(
            level,
            Some(3),
            "{}: no [profile.wasm.package.{}] opt-level = 3 in Cargo.toml",
            image.name,
            image.crate_name
        );
    }
}

#[test]
fn names_are_unique_and_each_config_type_is_its_images() {
    let mut names = HashSet::new();
    let mut default_builds = HashSet::new();
    for image in IMAGES {
        assert!(names.insert(image.name), "{} is listed twice", image.name);
        assert_eq!(image.registered.image, image.name, "the config type's IMAGE names another image");
        // Two default images of one crate would be the same module in one target dir.
        if image.features == Features::Default {
            assert!(
                default_builds.insert(image.crate_name),
                "{}: a second default image of {}",
                image.name,
                image.crate_name
            );
        }
    }
}

/// A crate or export list no line names would be built by nothing, or be a plugin `wasmgate check` cannot read.
#[test]
fn every_plugin_crate_and_export_list_belongs_to_an_image() {
    let listed: BTreeSet<(String, String)> =
        IMAGES.iter().map(|i| (i.crate_name.to_string(), i.exports.to_string())).collect();
    let crates: BTreeSet<&str> = IMAGES.iter().map(|i| i.crate_name).collect();
    for entry in std::fs::read_dir(plugins_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let crate_dir = dir.file_name().unwrap().to_string_lossy().to_string();
        if !dir.join("Cargo.toml").exists() {
            continue;
        }
        let manifest = toml_file(&dir.join("Cargo.toml")).unwrap();
        let fixture =
            manifest["package"].get("metadata").and_then(|m| m.get("wasmgate")).and_then(|w| w.get("fixture"));
        if is_cdylib(&manifest) && fixture.is_none() {
            assert!(
                crates.contains(crate_dir.as_str()),
                "plugins/{crate_dir} is a cdylib no image is built from (add a line to images.txt, or mark a test module [package.metadata.wasmgate] fixture)"
            );
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let name = file.unwrap().file_name().to_string_lossy().to_string();
            if name.ends_with("exports.txt") {
                assert!(
                    listed.contains(&(crate_dir.clone(), name.clone())),
                    "plugins/{crate_dir}/{name} is no image's export list"
                );
            }
        }
    }
}

/// The suite's sections are the plugins the catalogue says it runs, under their metric names.
#[test]
fn the_suites_parts_are_its_sections() {
    let parts: Vec<&str> = IMAGES.iter().filter(|i| i.suite_part).map(|i| i.registered.name).collect();
    assert_eq!(parts, suite::section::KEYS);
}
