//! Virtual keys: created through the admin API (or `tollgate keys`), shown
//! once, stored only as a keyed hash (HMAC-SHA256 with a secret the store
//! keeps), compared by that hash, revocable and rotatable at run time.
//!
//! The live set is an immutable map swapped atomically on every change
//! (`ArcSwap`): authentication reads it without a lock, and a revocation is
//! in force for the very next request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::{Allowlist, Principal, PrincipalKind, Role};
use crate::digest::{hmac_sha256, os_random};
use crate::glob::Glob;

/// A key's record, as stored and as listed (never with the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to recognise it in lists.
    pub prefix: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    /// Model globs; `None` = every model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// MCP tool globs (`<server>/<tool>`); `None` = every tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// A2A agent globs; `None` = every agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub role: Option<Role>,
    pub created_at: u64,
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub revoked_at: Option<u64>,
    /// The key this one replaced, when created by rotation.
    #[serde(default)]
    pub rotated_from: Option<String>,
}

fn globs(list: &Option<Vec<String>>) -> Option<Vec<Glob>> {
    list.as_ref().map(|l| l.iter().map(|g| Glob::new(g)).collect())
}

impl KeyRecord {
    pub fn active(&self, now: u64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }

    /// The principal requests with this key run as. The key's team is
    /// pinned into its metadata so requests cannot claim another team.
    pub fn principal(&self) -> Principal {
        let mut metadata = self.metadata.clone();
        if let Some(t) = &self.team {
            metadata.insert("team".into(), t.clone());
        }
        Principal {
            id: format!("key:{}", self.name),
            kind: PrincipalKind::VirtualKey,
            allow: Allowlist { models: globs(&self.models), tools: globs(&self.tools), agents: globs(&self.agents) },
            groups: Vec::new(),
            metadata,
            role: self.role,
            team: self.team.clone(),
            owner: self.owner.clone(),
        }
    }
}

pub struct LiveKey {
    pub record: KeyRecord,
    pub principal: Arc<Principal>,
}

/// The keyed hashes of the live keys, swapped whole on change.
#[derive(Default)]
pub struct KeyRegistry {
    secret: ArcSwap<[u8; 32]>,
    by_hash: ArcSwap<HashMap<[u8; 32], Arc<LiveKey>>>,
}

impl std::fmt::Debug for KeyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRegistry({} keys)", self.by_hash.load().len())
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl KeyRegistry {
    pub fn set_secret(&self, secret: [u8; 32]) {
        self.secret.store(Arc::new(secret));
    }

    pub fn hash(&self, key: &[u8]) -> [u8; 32] {
        hmac_sha256(&**self.secret.load(), key)
    }

    /// Replaces the live set (at start-up and after every change).
    pub fn install(&self, keys: Vec<(Vec<u8>, KeyRecord)>) {
        let map = keys
            .into_iter()
            .filter_map(|(hash, record)| {
                let hash: [u8; 32] = hash.try_into().ok()?;
                let principal = Arc::new(record.principal());
                Some((hash, Arc::new(LiveKey { record, principal })))
            })
            .collect();
        self.by_hash.store(Arc::new(map));
    }

    /// The principal of a live, unexpired, unrevoked key.
    pub fn lookup(&self, presented: &[u8]) -> Option<Arc<Principal>> {
        let map = self.by_hash.load();
        if map.is_empty() {
            return None;
        }
        let hash = self.hash(presented);
        let live = map.get(&hash)?;
        live.record.active(now_secs()).then(|| live.principal.clone())
    }

    pub fn len(&self) -> usize {
        self.by_hash.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A new secret key (`tg-` + 48 hex digits) from the operating system.
pub fn generate_secret() -> String {
    format!("tg-{}", hex::encode(os_random::<24>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_and_expired_keys_do_not_authenticate() {
        let reg = KeyRegistry::default();
        reg.set_secret([7; 32]);
        let rec = |name: &str, revoked: Option<u64>, expires: Option<u64>| KeyRecord {
            id: name.into(),
            name: name.into(),
            prefix: "tg-x".into(),
            owner: None,
            team: Some("t".into()),
            models: None,
            tools: None,
            agents: None,
            metadata: BTreeMap::new(),
            role: None,
            created_at: 0,
            expires_at: expires,
            revoked_at: revoked,
            rotated_from: None,
        };
        reg.install(vec![
            (reg.hash(b"live").to_vec(), rec("live", None, None)),
            (reg.hash(b"gone").to_vec(), rec("gone", Some(1), None)),
            (reg.hash(b"old").to_vec(), rec("old", None, Some(1))),
        ]);
        let p = reg.lookup(b"live").unwrap();
        assert_eq!(p.id, "key:live");
        assert_eq!(p.metadata.get("team").map(String::as_str), Some("t"));
        assert!(reg.lookup(b"gone").is_none());
        assert!(reg.lookup(b"old").is_none());
        assert!(reg.lookup(b"nope").is_none());
    }
}
