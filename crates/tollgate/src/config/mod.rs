//! Configuration: what users write (`file`), how it is read (`load`),
//! checked (`validate`) and served (`runtime`), and how it is swapped while
//! running (`reload`).

pub mod diag;
pub mod file;
pub mod file_distributed;
pub mod file_prompts;
pub mod load;
pub mod loc;
pub mod overlay;
pub mod reload;
pub mod snapshot;
pub mod validate;

/// The JSON Schema of the config file, generated from the types.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(file::ConfigFile);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
