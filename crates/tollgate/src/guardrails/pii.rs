//! `type: pii` — personal data. Validate blocks a call carrying it; mutate
//! replaces each value with a typed, numbered placeholder (`<EMAIL_1>`),
//! the same value getting the same placeholder throughout the request.
//! With `restore: true` the originals go back into the answer (also on a
//! stream), so the user sees their own data while the model never did.
//!
//! ```yaml
//! - name: pii-redaction
//!   type: pii
//!   action: mutate
//!   entities: [EMAIL, PHONE, CREDIT_CARD]   # default: all
//!   restore: true
//! ```

use detectors::pii::Pii;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    entities: Vec<String>,
    #[serde(default)]
    restore: bool,
}

pub struct PiiCheck {
    pub pii: Pii,
    pub restore: bool,
}

impl std::fmt::Debug for PiiCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiiCheck").field("restore", &self.restore).finish_non_exhaustive()
    }
}

impl PiiCheck {
    pub fn build(opts: serde_json::Value) -> Result<PiiCheck, String> {
        let o: Options = super::options(opts)?;
        Ok(PiiCheck { pii: Pii::new(&o.entities)?, restore: o.restore })
    }
}
