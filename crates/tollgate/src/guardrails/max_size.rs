//! `type: max_size` — a cap on the text of a call, in bytes: a prompt
//! stuffed with a whole document, a tool result that would flood a model's
//! context. Validate only.
//!
//! ```yaml
//! - name: small-tool-results
//!   type: max_size
//!   max_bytes: 65536
//! ```

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    max_bytes: u64,
}

#[derive(Debug)]
pub struct MaxSize {
    pub max_bytes: usize,
}

impl MaxSize {
    pub fn build(opts: serde_json::Value) -> Result<MaxSize, String> {
        let o: Options = super::options(opts)?;
        if o.max_bytes == 0 {
            return Err("`max_bytes` must be above 0".into());
        }
        Ok(MaxSize { max_bytes: usize::try_from(o.max_bytes).unwrap_or(usize::MAX) })
    }

    pub fn check(&self, len: usize) -> Result<(), super::Reason> {
        if len > self.max_bytes {
            Err(format!("{len} bytes of text, over the limit of {}", self.max_bytes))
        } else {
            Ok(())
        }
    }
}
