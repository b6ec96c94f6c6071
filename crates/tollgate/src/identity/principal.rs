//! Who is calling: the principal a credential resolves to, and what the
//! config says about identities — the master key, static keys, JWT issuers,
//! team and group allowlists, the users directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::config::diag::Diags;
use crate::config::file::{AccessSection, AuthSection, Role, StaticKeySection, UserSection};
use crate::config::loc::Loc;
use crate::digest::sha256;
use crate::glob::Glob;
use crate::resource::{Called, Kind};

/// Who the gateway recognises. Secrets are held only as SHA-256 digests.
#[derive(Debug, Default)]
pub struct AuthSettings {
    pub master: Option<[u8; 32]>,
    pub keys: HashMap<[u8; 32], Arc<Principal>>,
    /// The principal every master-key request runs as.
    pub master_principal: Arc<Principal>,
    /// Trusted JWT issuers.
    pub jwt: Vec<Arc<crate::identity::jwt::Issuer>>,
    /// Team allowlists (config `auth.teams`, admin-API overlays).
    pub teams: HashMap<String, Allowlist>,
    /// Group allowlists (`auth.groups`), for JWT subjects' groups.
    pub groups: HashMap<String, Allowlist>,
    /// People by id: team, role and metadata for credentials that lack them.
    pub users: HashMap<String, UserSection>,
}

impl AuthSettings {
    /// Fills in what the users directory knows about the person behind a
    /// verified JWT (its subject): team, role and metadata the token does
    /// not set itself. Never applied to keys, whose `owner` is free text.
    pub fn enrich(&self, p: Arc<Principal>) -> Arc<Principal> {
        let Some(user) = p.owner.as_ref().and_then(|o| self.users.get(o)) else { return p };
        let mut q = (*p).clone();
        if q.team.is_none() {
            q.team = user.team.clone();
        }
        if q.role.is_none() {
            q.role = user.role;
        }
        for (k, v) in &user.metadata {
            q.metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if let Some(t) = &q.team {
            q.metadata.entry("team".into()).or_insert_with(|| t.clone());
        }
        Arc::new(q)
    }

    /// May this principal call this model, tool or agent? Its own
    /// allowlist, its team's, and — when any of its groups lists that kind
    /// of call — at least one of those groups must all allow it. Models are
    /// checked by their canonical or virtual name, tools as
    /// `<server>/<tool>`, agents by name.
    pub fn allows(&self, p: &Principal, called: Called<'_>) -> bool {
        let (kind, name) = (called.kind(), called.name());
        if !p.allow.allows(kind, name) {
            return false;
        }
        let team = p.team.as_ref().or_else(|| p.metadata.get("team"));
        if let Some(a) = team.and_then(|t| self.teams.get(t))
            && !a.allows(kind, name)
        {
            return false;
        }
        let mut listed = p.groups.iter().filter_map(|g| self.groups.get(g)?.list(kind)).peekable();
        if listed.peek().is_none() {
            return true;
        }
        listed.any(|globs| globs.iter().any(|g| g.matches(name)))
    }
}

/// What a key, token issuer, team or group may call, one list per kind of
/// call; a list left out (`None`) does not restrict that kind.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    pub models: Option<Vec<Glob>>,
    /// `<server>/<tool>` globs.
    pub tools: Option<Vec<Glob>>,
    pub agents: Option<Vec<Glob>>,
}

impl Allowlist {
    pub fn from_globs(models: Option<&[String]>, tools: Option<&[String]>, agents: Option<&[String]>) -> Allowlist {
        let globs = |l: Option<&[String]>| l.map(|l| l.iter().map(|g| Glob::new(g)).collect());
        Allowlist { models: globs(models), tools: globs(tools), agents: globs(agents) }
    }

    /// From the `models`, `tools` and `agents` lists of a config section.
    pub fn build(
        models: &Option<Vec<Loc<String>>>,
        tools: &Option<Vec<Loc<String>>>,
        agents: &Option<Vec<Loc<String>>>,
        d: &mut Diags,
    ) -> Allowlist {
        let mut globs = |list: &Option<Vec<Loc<String>>>, what: &str, example: &str| {
            list.as_ref().map(|l| {
                for g in l.iter().filter(|g| g.value.trim().is_empty()) {
                    d.at(g, format!("empty {what} glob"), format!("write a name or a glob like `{example}`"));
                }
                l.iter().map(|g| Glob::new(&g.value)).collect()
            })
        };
        Allowlist {
            models: globs(models, "model", "prod/*"),
            tools: globs(tools, "tool", "github/*"),
            agents: globs(agents, "agent", "research-*"),
        }
    }

    pub fn list(&self, kind: Kind) -> Option<&[Glob]> {
        match kind {
            Kind::Model => self.models.as_deref(),
            Kind::Mcp => self.tools.as_deref(),
            Kind::A2a => self.agents.as_deref(),
        }
    }

    pub fn allows(&self, kind: Kind, name: &str) -> bool {
        self.list(kind).is_none_or(|globs| globs.iter().any(|g| g.matches(name)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    Master,
    StaticKey,
    VirtualKey,
    Jwt,
}

/// The identity a credential resolves to: the `Subject` of SPEC §1 stage 2.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stable id used in logs and limit keys, e.g. `key:payments-ci`.
    pub id: String,
    pub kind: PrincipalKind,
    /// What it may call (its own lists; team and group lists apply on top).
    pub allow: Allowlist,
    /// Groups the principal belongs to (from an identity provider).
    pub groups: Vec<String>,
    /// Defaults merged under request metadata; these keys are pinned.
    pub metadata: BTreeMap<String, String>,
    /// Admin role, if any (the master key is always an admin).
    pub role: Option<Role>,
    pub team: Option<String>,
    pub owner: Option<String>,
}

impl Default for Principal {
    fn default() -> Self {
        Principal {
            id: "master".into(),
            kind: PrincipalKind::Master,
            allow: Allowlist::default(),
            groups: Vec::new(),
            metadata: BTreeMap::new(),
            role: Some(Role::Admin),
            team: None,
            owner: None,
        }
    }
}

/// The identity part of a snapshot (JWT issuers are added by `jwt::build`).
pub fn build(a: &AuthSection, d: &mut Diags, warnings: &mut Vec<String>) -> AuthSettings {
    let mut out = AuthSettings::default();
    if let Some(mk) = &a.master_key {
        if mk.value.trim().is_empty() {
            d.at(mk, "auth.master_key is empty", "set it to a long random secret, e.g. \"${TOLLGATE_MASTER_KEY}\"");
        } else {
            out.master = Some(sha256(mk.value.as_bytes()));
        }
    }
    let mut names = HashSet::new();
    for k in &a.keys {
        if !names.insert(k.name.value.as_str()) {
            d.at(&k.name, format!("duplicate key name `{}`", k.name.value), "give every key its own name");
        }
        let Some(hash) = key_hash(k, d) else { continue };
        if Some(hash) == out.master {
            d.at(
                &k.name,
                format!("key `{}` is the same secret as the master key", k.name.value),
                "use a separate secret",
            );
            continue;
        }
        let principal = Principal {
            id: format!("key:{}", k.name.value),
            kind: PrincipalKind::StaticKey,
            allow: Allowlist::build(&k.models, &k.tools, &k.agents, d),
            groups: Vec::new(),
            role: None,
            team: k.metadata.get("team").cloned(),
            owner: None,
            metadata: k.metadata.clone(),
        };
        if out.keys.insert(hash, Arc::new(principal)).is_some() {
            d.at(
                &k.name,
                format!("key `{}` repeats the secret of another key", k.name.value),
                "use a distinct secret per key",
            );
        }
    }
    let access = |s: &AccessSection, d: &mut Diags| Allowlist::build(&s.models, &s.tools, &s.agents, d);
    out.teams = a.teams.iter().map(|(t, s)| (t.clone(), access(s, d))).collect();
    out.groups = a.groups.iter().map(|(g, s)| (g.clone(), access(s, d))).collect();
    out.users = a
        .users
        .iter()
        .map(|(id, u)| (id.clone(), UserSection { team: u.team.clone(), role: u.role, metadata: u.metadata.clone() }))
        .collect();
    if out.master.is_none() && out.keys.is_empty() && a.jwt.is_empty() {
        warnings.push("no auth.master_key and no auth.keys: every request will be refused with 401".into());
    }
    out
}

fn key_hash(k: &StaticKeySection, d: &mut Diags) -> Option<[u8; 32]> {
    match (&k.key, &k.key_sha256) {
        (Some(plain), None) => {
            if plain.value.len() < 8 {
                d.at(plain, format!("key `{}` is shorter than 8 characters", k.name.value), "use a long random secret");
                return None;
            }
            Some(sha256(plain.value.as_bytes()))
        }
        (None, Some(hex_digest)) => {
            let mut out = [0u8; 32];
            match hex::decode_to_slice(hex_digest.value.trim(), &mut out) {
                Ok(()) => Some(out),
                Err(_) => {
                    d.at(
                        hex_digest,
                        "key_sha256 must be 64 hex characters",
                        "compute it with: printf %s \"$KEY\" | sha256sum",
                    );
                    None
                }
            }
        }
        _ => {
            d.at(&k.name, format!("key `{}` needs exactly one of `key` or `key_sha256`", k.name.value), "");
            None
        }
    }
}
