//! A2A agents as the config declares them, checked at load: a usable name
//! (it is a URL path segment and what allowlists match), an http(s) base
//! URL, complete credentials, guardrails that exist.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};

use crate::config::diag::Diags;
use crate::config::file::A2aAgentSection;
use crate::guardrails::{Guardrail, Guardrails};

/// How long a non-streamed answer may take unless the agent says otherwise:
/// agents run whole tasks, so longer than a model call.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

pub struct AgentDef {
    pub name: String,
    /// The base URL, without a trailing slash.
    pub url: String,
    /// Static credential headers (never logged; `Debug` shows names only).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Guardrails on messages to the agent and on what it sends back.
    pub input: Vec<Arc<Guardrail>>,
    pub output: Vec<Arc<Guardrail>>,
    pub timeout: Duration,
    /// Changes whenever the URL or the credentials change: a cached card
    /// read under another fingerprint is read again.
    pub fingerprint: String,
}

impl std::fmt::Debug for AgentDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentDef")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    pub agents: BTreeMap<String, Arc<AgentDef>>,
}

pub fn build(agents: &[A2aAgentSection], guardrails: &Guardrails, d: &mut Diags) -> Registry {
    let mut reg = Registry::default();
    for a in agents {
        let name = &a.name.value;
        if !crate::mcp::registry::valid_name(name) {
            d.at(&a.name, format!("A2A agent name `{name}` is not usable in a URL path"), "use letters, digits, `-` and `_`");
            continue;
        }
        let url = a.url.value.trim_end_matches('/').to_string();
        let parsed = url.parse::<Uri>();
        if !(url.starts_with("http://") || url.starts_with("https://")) || parsed.is_err() {
            d.at(&a.url, format!("A2A agent `{name}`: `{}` is not an http(s) URL", a.url.value), "e.g. https://agents.example.com/triage");
            continue;
        }
        if parsed.is_ok_and(|u| u.query().is_some()) {
            d.at(&a.url, format!("A2A agent `{name}`: the base URL may not carry a query"), "");
            continue;
        }
        let what = format!("A2A agent `{name}`");
        let Some(headers) = crate::mcp::registry::auth_headers(&what, &a.name, &a.auth, d) else { continue };
        let mut resolve = |list: &[crate::config::loc::Loc<String>]| -> Vec<Arc<Guardrail>> {
            list.iter()
                .filter_map(|g| match guardrails.by_name.get(&g.value) {
                    Some(x) => Some(x.clone()),
                    None => {
                        d.at(g, format!("{what}: no guardrail named `{}` is defined", g.value), "define it under guardrails.definitions");
                        None
                    }
                })
                .collect()
        };
        let input = resolve(&a.guardrails.input);
        let output = resolve(&a.guardrails.output);
        let fingerprint = hex::encode(crate::digest::sha256(
            format!("{url}|{:?}", headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect::<Vec<_>>()).as_bytes(),
        ));
        let def = AgentDef {
            name: name.clone(),
            url,
            headers,
            input,
            output,
            timeout: a.timeout.as_ref().map_or(DEFAULT_TIMEOUT, |t| t.0),
            fingerprint,
        };
        if reg.agents.insert(name.clone(), Arc::new(def)).is_some() {
            d.at(&a.name, format!("A2A agent `{name}` is defined twice"), "");
        }
    }
    reg
}
