//! Runtime overlays: rate-limit rules, budgets and team allowlists added
//! through the admin API on top of the config file. They are kept in the
//! store, merged into every snapshot by id (an overlay replaces a config
//! entry with the same id), and validated exactly like the file: a change
//! that would not load is refused and nothing is applied.

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::diag::Diagnostic;
use super::file::{AccessSection, BudgetSection, ConfigFile, RateLimitSection, UserSection};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    RateLimits,
    Budgets,
    Teams,
    Users,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "rate_limits" => Some(Kind::RateLimits),
            "budgets" => Some(Kind::Budgets),
            "teams" => Some(Kind::Teams),
            "users" => Some(Kind::Users),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RateLimits => "rate_limits",
            Kind::Budgets => "budgets",
            Kind::Teams => "teams",
            Kind::Users => "users",
        }
    }
}

/// One overlay entry as stored: its kind, id and body (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub id: String,
    pub body: String,
}

/// The current overlays, swapped whole on change.
#[derive(Debug, Clone, Default)]
pub struct Overlays {
    current: Arc<ArcSwap<Vec<Entry>>>,
}

impl Overlays {
    pub fn get(&self) -> Arc<Vec<Entry>> {
        self.current.load_full()
    }

    pub fn set(&self, entries: Vec<Entry>) {
        self.current.store(Arc::new(entries));
    }
}

/// Parses a body (JSON is YAML, so the config's own parser reads it, with
/// the same unknown-key errors).
pub fn parse<T: for<'de> Deserialize<'de>>(body: &str) -> Result<T, String> {
    serde_saphyr::from_str::<T>(body).map_err(|e| e.without_snippet().to_string())
}

/// Merges overlays into the parsed file; errors name the overlay.
pub fn apply(file: &mut ConfigFile, entries: &[Entry]) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let fail = |e: &Entry, msg: String| Diagnostic {
        line: 0,
        column: 0,
        message: format!("admin overlay {} `{}`: {msg}", e.kind.as_str(), e.id),
        hint: None,
    };
    for e in entries {
        match e.kind {
            Kind::RateLimits => match parse::<RateLimitSection>(&e.body) {
                Ok(r) => {
                    file.rate_limits.retain(|x| x.id.value != r.id.value);
                    file.rate_limits.push(r);
                }
                Err(m) => errors.push(fail(e, m)),
            },
            Kind::Budgets => match parse::<BudgetSection>(&e.body) {
                Ok(b) => {
                    file.budgets.retain(|x| x.id.value != b.id.value);
                    file.budgets.push(b);
                }
                Err(m) => errors.push(fail(e, m)),
            },
            Kind::Teams => match parse::<AccessSection>(&e.body) {
                Ok(t) => {
                    file.auth.teams.insert(e.id.clone(), t);
                }
                Err(m) => errors.push(fail(e, m)),
            },
            Kind::Users => match parse::<UserSection>(&e.body) {
                Ok(u) => {
                    file.auth.users.insert(e.id.clone(), u);
                }
                Err(m) => errors.push(fail(e, m)),
            },
        }
    }
    errors
}
