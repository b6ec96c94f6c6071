//! Every shipped example config loads, and the checked-in JSON Schema
//! matches the config types.

use std::collections::HashMap;
use std::path::PathBuf;

use tollgate::config::load::{embedded_defaults, load_text};
use tollgate::state::Shared;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Dummy values for every `${NAME}` an example references.
fn props_for(text: &str) -> HashMap<String, String> {
    let mut props = HashMap::new();
    for part in text.split("${").skip(1) {
        let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let value = format!("example-secret-{name}");
        props.insert(name, value);
    }
    props
}

#[test]
fn every_example_config_loads() {
    let dir = repo_root().join("examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = load_text(&text, &path.display().to_string(), 1, &Shared::default(), props_for(&text)) {
            panic!("{e}");
        }
        count += 1;
    }
    assert!(count >= 3, "expected the example configs, found {count}");
}

#[test]
fn embedded_defaults_load() {
    for keys in [&[][..], &tollgate::config::load::DEFAULT_PROVIDER_KEYS[..]] {
        let text = embedded_defaults(keys);
        load_text(&text, "embedded", 1, &Shared::default(), props_for(&text)).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn checked_in_schema_matches_the_types() {
    let path = repo_root().join("config.schema.json");
    let generated = tollgate::config::json_schema();
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    match std::env::var("UPDATE_SCHEMA") {
        Ok(v) if v == "rewrite" => {
            std::fs::write(&path, &generated).unwrap();
            // Never passes: a run with it set must not bless the file unseen.
            panic!("config.schema.json rewritten: review the diff, then run again without UPDATE_SCHEMA");
        }
        Ok(v) => panic!("UPDATE_SCHEMA={v:?}: set UPDATE_SCHEMA=rewrite to rewrite config.schema.json, or unset it"),
        Err(_) => {}
    }
    assert!(
        checked_in == generated,
        "config.schema.json is out of date; regenerate it with `cargo run -q -- schema > config.schema.json`"
    );
}
