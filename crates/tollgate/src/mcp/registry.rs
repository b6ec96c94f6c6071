//! MCP servers and virtual servers as the config declares them, checked at
//! load: one transport each, credentials complete, names unique across
//! both (each is a `/mcp/<name>` endpoint), virtual members well formed.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::config::diag::Diags;
use crate::config::file::{
    McpAuthSection, McpAuthType, McpServerSection, McpTransport, PinOn, PrefixMode, ProcessMode, VirtualMcpServerSection,
};
use crate::glob::Glob;

pub struct ServerDef {
    pub name: String,
    pub transport: McpTransport,
    /// Static credential headers (never logged; `Debug` shows names only).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub pin_tools: bool,
    pub pin_on: PinOn,
    pub process: ProcessMode,
    /// Changes whenever anything that shapes the connection changes.
    pub fingerprint: String,
}

impl std::fmt::Debug for ServerDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerDef")
            .field("name", &self.name)
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("pin_tools", &self.pin_tools)
            .finish_non_exhaustive()
    }
}

impl ServerDef {
    /// `url`, `sse_url` or `stdio: <command>` — what the admin API shows.
    pub fn describe(&self) -> (&'static str, String) {
        match &self.transport {
            McpTransport::StreamableHttp(u) => ("streamable_http", u.clone()),
            McpTransport::Sse(u) => ("sse", u.clone()),
            McpTransport::Stdio { command, .. } => ("stdio", command.clone()),
        }
    }

    /// Whether downstream sessions get their own upstream connection.
    pub fn per_session(&self) -> bool {
        match self.transport {
            McpTransport::Stdio { .. } => self.process == ProcessMode::PerSession,
            _ => true,
        }
    }
}

#[derive(Debug)]
pub struct Override {
    pub rename: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug)]
pub struct VirtualDef {
    pub name: String,
    pub tools: Vec<Glob>,
    pub prefix: PrefixMode,
    /// Keyed by `<server>/<tool>`.
    pub overrides: BTreeMap<String, Override>,
    /// The servers the globs can reach.
    pub servers: Vec<String>,
}

/// What `/mcp/<name>` serves.
#[derive(Debug, Clone, Copy)]
pub enum Front<'a> {
    Server(&'a Arc<ServerDef>),
    Virtual(&'a VirtualDef),
}

#[derive(Debug, Default)]
pub struct Registry {
    pub servers: BTreeMap<String, Arc<ServerDef>>,
    pub virtuals: BTreeMap<String, VirtualDef>,
}

impl Registry {
    pub fn front(&self, name: &str) -> Option<Front<'_>> {
        match self.servers.get(name) {
            Some(s) => Some(Front::Server(s)),
            None => self.virtuals.get(name).map(Front::Virtual),
        }
    }
}

impl Front<'_> {
    pub fn name(&self) -> &str {
        match self {
            Front::Server(s) => &s.name,
            Front::Virtual(v) => &v.name,
        }
    }

    /// The upstream servers behind this endpoint.
    pub fn servers(&self) -> Vec<String> {
        match self {
            Front::Server(s) => vec![s.name.clone()],
            Front::Virtual(v) => v.servers.clone(),
        }
    }
}

/// The headers an upstream's `auth` sends, marked sensitive so they never
/// print; `None` (with the reason in `d`) when the section is unusable.
/// `what` names the upstream in messages (``MCP server `github` ``).
pub fn auth_headers(
    what: &str,
    at: &crate::config::loc::Loc<String>,
    a: &McpAuthSection,
    d: &mut Diags,
) -> Option<Vec<(HeaderName, HeaderValue)>> {
    match a.kind {
        McpAuthType::None => Some(Vec::new()),
        McpAuthType::StaticHeader => match (&a.header, &a.value) {
            (Some(h), Some(v)) => match (HeaderName::try_from(h.as_str()), HeaderValue::try_from(v.as_str())) {
                (Ok(h), Ok(mut v)) => {
                    v.set_sensitive(true);
                    Some(vec![(h, v)])
                }
                _ => {
                    d.at(at, format!("{what}: `{h}` and its value are not a valid HTTP header"), "");
                    None
                }
            },
            _ => {
                d.at(at, format!("{what}: static_header auth needs `header` and `value`"), "");
                None
            }
        },
        McpAuthType::OauthUser => {
            d.at(
                at,
                format!("{what}: `oauth_user` credentials are not available in this build"),
                "use `static_header` with the upstream's token, e.g. value: \"Bearer ${GITHUB_TOKEN}\"",
            );
            None
        }
    }
}

pub fn build(servers: &[McpServerSection], virtuals: &[VirtualMcpServerSection], d: &mut Diags) -> Registry {
    let mut reg = Registry::default();
    for s in servers {
        let name = &s.name.value;
        if !valid_name(name) {
            d.at(
                &s.name,
                format!("MCP server name `{name}` is not usable in a URL path"),
                "use letters, digits, `-` and `_`",
            );
            continue;
        }
        let transport = match s.transport() {
            Ok(t) => t,
            Err(e) => {
                d.at(&s.name, e, "set exactly one: url (Streamable HTTP), sse_url (legacy SSE) or command (stdio)");
                continue;
            }
        };
        if let McpTransport::StreamableHttp(u) | McpTransport::Sse(u) = &transport
            && (!(u.starts_with("http://") || u.starts_with("https://")) || u.parse::<http::Uri>().is_err())
        {
            d.at(&s.name, format!("MCP server `{name}`: `{u}` is not an http(s) URL"), "");
            continue;
        }
        let Some(headers) = auth_headers(&format!("MCP server `{name}`"), &s.name, &s.auth, d) else { continue };
        let fingerprint = hex::encode(crate::digest::sha256(
            format!(
                "{transport:?}|{:?}|{}",
                headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect::<Vec<_>>(),
                s.process == ProcessMode::PerSession
            )
            .as_bytes(),
        ));
        let def = ServerDef {
            name: name.clone(),
            transport,
            headers,
            pin_tools: s.pin_tools,
            pin_on: s.pin_on,
            process: s.process,
            fingerprint,
        };
        if reg.servers.insert(name.clone(), Arc::new(def)).is_some() {
            d.at(&s.name, format!("MCP server `{name}` is defined twice"), "");
        }
    }
    for v in virtuals {
        let name = &v.name.value;
        if !valid_name(name) {
            d.at(&v.name, format!("virtual MCP server name `{name}` is not usable in a URL path"), "");
            continue;
        }
        if reg.servers.contains_key(name) || reg.virtuals.contains_key(name) {
            d.at(&v.name, format!("`{name}` is already an MCP server name"), "each name is one /mcp/<name> endpoint");
            continue;
        }
        let mut servers = Vec::new();
        for t in &v.tools {
            let Some((server, _)) = t.split_once('/') else {
                d.at(
                    &v.name,
                    format!("virtual MCP server `{name}`: `{t}` is not `<server>/<tool>`"),
                    "e.g. github/search_*",
                );
                continue;
            };
            let matched: Vec<&String> = reg.servers.keys().filter(|s| Glob::new(server).matches(s)).collect();
            if matched.is_empty() {
                d.at(&v.name, format!("virtual MCP server `{name}`: no MCP server matches `{server}` in `{t}`"), "");
            }
            for s in matched {
                if !servers.contains(s) {
                    servers.push(s.clone());
                }
            }
        }
        let overrides = v
            .overrides
            .iter()
            .map(|(k, o)| (k.clone(), Override { rename: o.rename.clone(), description: o.description.clone() }))
            .collect();
        reg.virtuals.insert(
            name.clone(),
            VirtualDef {
                name: name.clone(),
                tools: v.tools.iter().map(|t| Glob::new(t)).collect(),
                prefix: v.prefix,
                overrides,
                servers,
            },
        );
    }
    reg
}

pub(crate) fn valid_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}
