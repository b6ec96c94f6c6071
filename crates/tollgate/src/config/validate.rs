//! Second validation phase: the parsed file becomes a runtime `Snapshot`.
//! Every problem is collected (not just the first) with its position and a
//! hint, so `tollgate check` can print them all at once.

use std::net::SocketAddr;
use std::sync::Arc;

use super::diag::{Diagnostic, Diags};
use super::file::ConfigFile;
use super::loc::Loc;
use super::snapshot::{MetadataContract, ServerSettings, Snapshot};
use crate::state::Shared;

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

    let server = server(&file, &mut d).map(|mut s| {
        s.listen = shared.listen.data.unwrap_or(s.listen);
        s.admin_listen = shared.listen.admin.unwrap_or(s.admin_listen);
        s
    });
    let mut auth = crate::identity::principal::build(&file.auth, &mut d, &mut warnings);
    auth.jwt = crate::identity::jwt::build(&file.auth.jwt, &shared.upstreams, &shared.jwks, &mut d);
    let mut models = crate::routing::catalog::build(&file, &shared.upstreams, &mut d);
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

    let mcp = crate::mcp::registry::build(&file.mcp_servers, &file.virtual_mcp_servers, &mut d);

    let guardrails = crate::guardrails::build(&file.guardrails, &mut d);
    let a2a = crate::a2a::registry::build(&file.a2a_agents, &guardrails, &mut d);
    let agent = crate::agent::trust::build(&file.agent, &mut d);
    let cache = crate::cache::build(&file.cache, &mut d);
    let prompt_providers: Vec<(&str, &str)> =
        models.providers.iter().map(|p| (p.name.as_str(), p.type_label())).collect();
    let prompts =
        crate::prompts::build::build(&file.prompts, &shared.prompts.get(), &prompt_providers, &mut d, &mut warnings);
    let batches = crate::batches::settings::build(&file.batches, &mut d);
    let distributed = file.distributed.as_ref().and_then(|s| crate::distributed::settings::build(s, &mut d)).map(Arc::new);
    if let Some(q) = &agent.quarantine
        && models.resolve_ref(&q.model).is_none()
    {
        d.at(
            &Loc::unplaced(()),
            format!("agent.quarantine.model `{}` is not a configured model", q.model),
            "name a `<provider>/<model>` or a virtual model",
        );
    }

    if let Some(m) = cache.semantic.model.as_deref()
        && models.resolve_ref(m).is_none()
    {
        d.at(
            &Loc::unplaced(()),
            format!("cache.semantic.embedding_model `{m}` is not a configured model"),
            "name `builtin`, a `<provider>/<model>` that serves embeddings, or a virtual model",
        );
    }

    match (server, d.0.is_empty()) {
        (Some(server), true) => {
            let log_spool = log_spool(&file.logging, &server.store);
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
                guardrails,
                mcp: Arc::new(mcp),
                a2a: Arc::new(a2a),
                agent: Arc::new(agent),
                cache,
                prompts: Arc::new(prompts),
                batches,
                responses: crate::responses::Settings::from_config(&file.responses),
                distributed,
                webhooks,
                log_retention: file.logging.retention.map(|d| d.0),
                log_spool,
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

/// Where the request log's disk spool lives: `logging.spool_dir`, else
/// beside the SQLite file, else the working directory; none for a store
/// that lives in memory (it cannot be down).
fn log_spool(l: &crate::config::file::LoggingSection, store: &crate::store::StoreUrl) -> Option<crate::reqlog::spool::DiskSpool> {
    use crate::store::StoreUrl;
    let max = l.spool_max_size.as_ref().map_or(1 << 30, |b| b.0);
    let dir = match (&l.spool_dir, store) {
        (_, StoreUrl::Memory) => return None,
        (Some(d), _) => std::path::PathBuf::from(d),
        (None, StoreUrl::Sqlite(p)) => p.parent().map(std::path::Path::to_path_buf).unwrap_or_default(),
        (None, StoreUrl::Postgres(_)) => std::path::PathBuf::new(),
    };
    let dir = if dir.as_os_str().is_empty() { std::path::PathBuf::from(".") } else { dir };
    Some(crate::reqlog::spool::DiskSpool::new(dir, max))
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
        max_concurrent_requests: match s.max_concurrent_requests {
            0 => usize::MAX,
            n => n as usize,
        },
        header_read_timeout: s.header_read_timeout.as_ref().map_or(std::time::Duration::from_secs(10), |d| d.0),
        body_read_timeout: s.body_read_timeout.as_ref().map_or(std::time::Duration::from_secs(30), |d| d.0),
        allowed_origins: s.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect(),
    })
}
