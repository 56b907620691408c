//! Each plugin's README (`plugins/<name>/README.md`) is the one reference for its `pluginConfig`: every example in
//! it loads with the plugin's own parser (which refuses unknown fields, so every key it shows exists), and every
//! field the config takes is named in it. The fields come from the parser itself: a config with an unknown key
//! at each level is refused with the list of the keys that level takes.

use std::collections::BTreeSet;
use std::path::Path;

/// A plugin's image, and configs with an unknown key (`_probe`) at each level of its config.
struct Reference {
    image: &'static str,
    levels: &'static [&'static str],
}

const REFERENCES: [Reference; 3] = [
    Reference {
        image: "basic-auth",
        levels: &[
            r#"{"_probe": 1}"#,
            r#"{"basic_auth_rules": [{"_probe": 1}]}"#,
            r#"{"basic_auth_rules": [{"exempt_paths": [{"_probe": 1}]}]}"#,
            r#"{"lockout": {"_probe": 1}}"#,
            r#"{"bcrypt_budget": {"_probe": 1}}"#,
        ],
    },
    Reference {
        image: "grpc-limits",
        levels: &[r#"{"_probe": 1}"#, r#"{"default": {"_probe": 1}}"#, r#"{"rules": [{"_probe": 1}]}"#],
    },
    Reference {
        image: "host-router",
        levels: &[
            r#"{"_probe": 1}"#,
            r#"{"hosts": [{"_probe": 1}]}"#,
            r#"{"hosts": [{"host": "a", "rules": [{"_probe": 1}]}]}"#,
            r#"{"hosts": [{"host": "a", "rules": [{"match": {"_probe": 1}}]}]}"#,
            r#"{"hosts": [{"host": "a", "rules": [{"match": {"headers": [{"_probe": 1}]}}]}]}"#,
            r#"{"hosts": [{"host": "a", "rules": [{"rewrite": {"_probe": 1}}]}]}"#,
            r#"{"hosts": [{"host": "a", "rules": [{"redirect": {"_probe": 1}}]}]}"#,
            r#"{"hosts": [{"host": "a", "rules": [{"direct_response": {"_probe": 1}}]}]}"#,
            r#"{"hosts": [{"host": "a", "rules": [{"deny": {"_probe": 1}}]}]}"#,
        ],
    },
];

fn check(image: &str, config: &[u8]) -> Result<String, String> {
    let image = wasmgate_catalogue::image(image).expect("an image in the catalogue");
    image.check(config).map_err(|e| e.to_string())
}

fn readme(image: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins").join(image).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `pluginConfig` of every ```yaml block that shows one.
fn examples(markdown: &str) -> Vec<serde_json::Value> {
    markdown
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
        .filter(|block| block.starts_with("pluginConfig:"))
        .map(|block| {
            let yaml: serde_json::Value = serde_yaml_ng::from_str(block).unwrap_or_else(|e| panic!("{e}:\n{block}"));
            yaml["pluginConfig"].clone()
        })
        .collect()
}

/// The keys serde says a level takes: "unknown field `_probe`, expected one of `a`, `b`" (or "expected `a`").
fn expected_keys(error: &str) -> Vec<String> {
    let (_, expected) = error.split_once("expected ").unwrap_or_else(|| panic!("no key list in: {error}"));
    expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[test]
fn every_example_in_a_plugins_readme_loads() {
    for reference in &REFERENCES {
        let examples = examples(&readme(reference.image));
        assert!(!examples.is_empty(), "{}: no ```yaml block with a pluginConfig", reference.image);
        for example in examples {
            let bytes = serde_json::to_vec(&example).unwrap();
            if let Err(e) = check(reference.image, &bytes) {
                panic!("{}'s README example is refused: {e}\n{example:#}", reference.image);
            }
        }
    }
}

#[test]
fn every_config_field_is_named_in_the_plugins_readme() {
    for reference in &REFERENCES {
        let readme = readme(reference.image);
        let mut missing = BTreeSet::new();
        for level in reference.levels {
            let error = check(reference.image, level.as_bytes()).expect_err(level);
            assert!(error.contains("_probe"), "{level} was refused for another reason: {error}");
            for key in expected_keys(&error) {
                if !readme.contains(&format!("`{key}`")) && !readme.contains(&format!("{key}:")) {
                    missing.insert(key);
                }
            }
        }
        assert!(missing.is_empty(), "plugins/{}/README.md names no {missing:?}", reference.image);
    }
}

#[test]
fn reads_the_key_lists_serde_writes() {
    assert_eq!(expected_keys("unknown field `x`, expected one of `a`, `b_c`"), ["a", "b_c"]);
    assert_eq!(expected_keys("unknown field `x`, expected `a`"), ["a"]);
}
