//! Second validation phase: the parsed file becomes a runtime `Snapshot`.
//! Every problem is collected (not just the first) with its position and a
//! hint, so `tollgate check` can print them all at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::file::{ConfigFile, StaticKeySection};
use super::loc::Loc;
use super::runtime::{
    AuthSettings, MetadataContract, ModelCatalog, Principal, PrincipalKind, ServerSettings, Shared, Snapshot, Target,
};
use crate::glob::Glob;
use crate::providers::Provider;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Debug, Default)]
pub struct Diags(pub Vec<Diagnostic>);

impl Diags {
    pub fn at<T>(&mut self, loc: &Loc<T>, message: impl Into<String>, hint: impl Into<String>) {
        let hint = hint.into();
        self.0.push(Diagnostic {
            line: loc.line,
            column: loc.column,
            message: message.into(),
            hint: (!hint.is_empty()).then_some(hint),
        });
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn build_snapshot(
    mut file: ConfigFile,
    origin: &str,
    digest: String,
    version: u64,
    shared: &Shared,
) -> Result<Snapshot, Vec<Diagnostic>> {
    let mut d = Diags::default();
    let mut warnings = Vec::new();
    d.0.extend(super::overlay::apply(&mut file, &shared.overlays.get()));

    let server = server(&file, &mut d);
    let mut auth = auth(&file, &mut d, &mut warnings);
    auth.jwt = crate::jwt::build(&file.auth.jwt, &shared.upstreams, &shared.jwks, &mut d);
    let mut models = catalog(&file, shared, &mut d);
    models.virtual_models = crate::routing::build::build(&file, &models, &shared.health, &mut d);
    let mut virtual_names: Vec<&String> = models.virtual_models.keys().collect();
    virtual_names.sort();
    let virtual_names: Vec<String> = virtual_names.into_iter().cloned().collect();
    models.listed.extend(virtual_names);
    let rate_limits = crate::limits::build(&file.rate_limits, &mut d);
    let budgets = crate::budgets::build(&file.budgets, &mut d);
    let webhooks = crate::events::build(&file.events.webhooks, &mut d);
    let otlp = file.telemetry.otlp_endpoint.as_ref().and_then(|e| match e.value.parse::<http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() => {
            Some((u, file.telemetry.service_name.clone().unwrap_or_else(|| "tollgate".into())))
        }
        _ => {
            d.at(e, format!("otlp_endpoint `{}` is not an http(s) URL", e.value), "e.g. http://127.0.0.1:4318");
            None
        }
    });
    let metadata = MetadataContract {
        required: file.metadata.required.clone(),
        allowed_values: file.metadata.allowed_values.clone(),
    };

    for (section, present) in [
        ("guardrails", !file.guardrails.definitions.is_empty()),
        ("mcp_servers", !file.mcp_servers.is_empty()),
        ("virtual_mcp_servers", !file.virtual_mcp_servers.is_empty()),
    ] {
        if present {
            warnings.push(format!("`{section}` is checked but not enforced by this build yet"));
        }
    }

    match (server, d.0.is_empty()) {
        (Some(server), true) => {
            Ok(Snapshot {
                version,
                digest,
                origin: origin.to_string(),
                server,
                auth,
                metadata,
                models,
                rate_limits,
                budgets,
                webhooks,
                log_retention: file.logging.retention.map(|d| d.0),
                log_enabled: file.logging.enabled.unwrap_or(true),
                log_bodies: file.logging.bodies.unwrap_or(false).then(|| {
                    file.logging.max_body_size.map_or(64 << 10, |b| usize::try_from(b.0).unwrap_or(usize::MAX))
                }),
                otlp,
                warnings,
            })
        }
        _ => Err(d.0),
    }
}

fn addr(loc: &Loc<String>, what: &str, d: &mut Diags) -> Option<SocketAddr> {
    match loc.value.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            d.at(
                loc,
                format!("{what} `{}` is not an address", loc.value),
                "write host:port with an IP, e.g. 127.0.0.1:4000",
            );
            None
        }
    }
}

fn server(file: &ConfigFile, d: &mut Diags) -> Option<ServerSettings> {
    let s = &file.server;
    let listen = addr(&s.listen, "server.listen", d);
    let admin = addr(&s.admin_listen, "server.admin_listen", d);
    if let (Some(l), Some(a)) = (listen, admin)
        && l == a
        && l.port() != 0
    {
        d.at(&s.admin_listen, "server.admin_listen must differ from server.listen", "use another port, e.g. 4001");
    }
    if s.max_body_size.0 < 1024 {
        d.at(&s.listen, "server.max_body_size is below 1KiB", "use at least 1KiB");
    }
    let store = match crate::store::StoreUrl::parse(&file.store.url.value) {
        Ok(s) => Some(s),
        Err(e) => {
            d.at(&file.store.url, e, "");
            None
        }
    };
    Some(ServerSettings {
        store: store?,
        listen: listen?,
        admin_listen: admin?,
        max_body_size: usize::try_from(s.max_body_size.0).unwrap_or(usize::MAX),
        max_response_size: usize::try_from(s.max_response_size.0).unwrap_or(usize::MAX),
    })
}

fn auth(file: &ConfigFile, d: &mut Diags, warnings: &mut Vec<String>) -> AuthSettings {
    let a = &file.auth;
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
        let models = k.models.as_ref().map(|globs| {
            for g in globs.iter().filter(|g| g.value.trim().is_empty()) {
                d.at(g, "empty model glob", "write a model name or a glob like `prod/*`");
            }
            globs.iter().map(|g| Glob::new(&g.value)).collect()
        });
        let principal = Principal {
            id: format!("key:{}", k.name.value),
            kind: PrincipalKind::StaticKey,
            models,
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
    let globs = |m: &[Loc<String>]| m.iter().map(|g| Glob::new(&g.value)).collect::<Vec<_>>();
    out.team_models = a.teams.iter().map(|(t, s)| (t.clone(), globs(&s.models))).collect();
    out.group_models = a.groups.iter().map(|(g, s)| (g.clone(), globs(&s.models))).collect();
    out.users = a
        .users
        .iter()
        .map(|(id, u)| {
            (id.clone(), super::file::UserSection { team: u.team.clone(), role: u.role, metadata: u.metadata.clone() })
        })
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

fn catalog(file: &ConfigFile, shared: &Shared, d: &mut Diags) -> ModelCatalog {
    let mut cat = ModelCatalog::default();
    let mut bare: HashMap<String, Option<Target>> = HashMap::new();
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    for sec in &file.providers {
        let name = &sec.name.value;
        if name.is_empty() || name.contains('/') || name.contains(char::is_whitespace) {
            d.at(
                &sec.name,
                format!("provider name `{name}` must be non-empty, without `/` or spaces"),
                "e.g. openai-main",
            );
            continue;
        }
        if seen.insert(name, ()).is_some() {
            d.at(&sec.name, format!("duplicate provider name `{name}`"), "give every provider its own name");
            continue;
        }
        let Some(provider) = Provider::build(sec, &shared.upstreams, d) else { continue };
        let provider = Arc::new(provider);
        let mut model_names = HashSet::new();
        for m in &sec.models {
            if m.name.value.is_empty() || !model_names.insert(m.name.value.as_str()) {
                d.at(&m.name, format!("model `{}` is empty or listed twice in provider `{name}`", m.name.value), "");
                continue;
            }
            for (field, v) in
                [("input_cost_per_mtok", m.input_cost_per_mtok), ("output_cost_per_mtok", m.output_cost_per_mtok)]
            {
                if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                    d.at(&m.name, format!("{field} of `{}` must be a non-negative number", m.name.value), "");
                }
            }
            let canonical = format!("{name}/{}", m.name.value);
            let target = Target {
                canonical: canonical.as_str().into(),
                upstream_model: m.name.value.as_str().into(),
                provider: provider.clone(),
                price: price(m.input_cost_per_mtok, m.output_cost_per_mtok, &m.name.value),
            };
            bare.entry(m.name.value.clone()).and_modify(|t| *t = None).or_insert_with(|| Some(target.clone()));
            cat.listed.push(canonical.clone());
            cat.by_name.insert(canonical, target);
        }
        cat.providers.push(provider);
    }
    // A bare name resolves only when one provider offers it and it does not
    // collide with a provider-qualified name.
    cat.by_bare_name =
        bare.into_iter().filter_map(|(k, t)| Some((k, t?))).filter(|(k, _)| !cat.by_name.contains_key(k)).collect();
    cat
}

/// A model's price: the config's numbers where given, the built-in
/// catalog's for the rest.
fn price(input: Option<f64>, output: Option<f64>, model: &str) -> Option<crate::pricing::Price> {
    let builtin = crate::pricing::builtin(model);
    if input.is_none() && output.is_none() {
        return builtin;
    }
    let configured = crate::pricing::Price::from_usd_per_mtok(input.unwrap_or(0.0), output.unwrap_or(0.0));
    let b = builtin.unwrap_or_default();
    Some(crate::pricing::Price {
        input: if input.is_some() { configured.input } else { b.input },
        output: if output.is_some() { configured.output } else { b.output },
        cached_read: if input.is_some() { configured.input } else { b.cached_read },
        cached_write: if input.is_some() { configured.input } else { b.cached_write },
    })
}
