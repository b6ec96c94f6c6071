//! The tools an endpoint shows, and to whom. A real server's endpoint shows
//! its tools under their own names; a virtual server's shows the tools its
//! globs select from several servers, named by its `prefix` mode
//! (`<server>__<tool>` always, on a name conflict, or never) with optional
//! renames and descriptions. `visible` is the one decision `tools/list`
//! filters with and `tools/call` authorises with, so the two cannot
//! disagree.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::Hub;
use super::inventory::Standing;
use super::registry::{Front, ServerDef};
use crate::config::file::PrefixMode;
use crate::config::snapshot::Snapshot;
use crate::identity::Principal;
use crate::resource::Called;
use crate::state::Shared;

/// A tool as one endpoint exposes it.
#[derive(Debug, Clone)]
pub struct Exposed {
    /// The name the client sees and calls.
    pub name: String,
    pub server: Arc<ServerDef>,
    /// The tool's name on its server.
    pub tool: String,
    /// The definition the client sees (name and description as exposed).
    pub definition: Value,
    pub standing: Standing,
}

impl Exposed {
    /// `<server>/<tool>`: what allowlists, limits and logs name.
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.server.name, self.tool)
    }
}

/// Whether `principal` may see and call `e`.
pub fn visible(snap: &Snapshot, principal: &Principal, e: &Exposed) -> bool {
    e.standing == Standing::Approved && allowed(snap, principal, e)
}

/// The allowlist half of `visible` (a quarantined tool is still "allowed").
pub fn allowed(snap: &Snapshot, principal: &Principal, e: &Exposed) -> bool {
    snap.auth.allows(principal, Called::Tool(&e.qualified()))
}

/// A tool a real server did not list, which the caller's allowlist would
/// let it call (`github/*`): the call goes to the server, which answers in
/// its own way — the tool may have appeared since the last read, or the
/// server reports it unknown as it always does. Never on a pinned server
/// (an unlisted tool has no pin) nor on a virtual one (its names are the
/// gateway's). A name the allowlist refuses gets the gateway's unknown-tool
/// error, whether or not the tool exists, so nothing about forbidden tools
/// can be learned this way.
pub fn unlisted(snap: &Snapshot, principal: &Principal, front: Front<'_>, name: &str) -> Option<Exposed> {
    let Front::Server(def) = front else { return None };
    let e = Exposed {
        name: name.to_string(),
        server: def.clone(),
        tool: name.to_string(),
        definition: Value::Null,
        standing: Standing::Approved,
    };
    (!def.pin_tools && allowed(snap, principal, &e)).then_some(e)
}

/// Every tool of the endpoint, read fresh from the servers when `fresh`.
pub async fn tools(
    hub: &Arc<Hub>,
    shared: &Arc<Shared>,
    snap: &Snapshot,
    front: Front<'_>,
    fresh: bool,
) -> Vec<Exposed> {
    let mut all = Vec::new();
    for name in front.servers() {
        let Some(def) = snap.mcp.servers.get(&name) else { continue };
        let inv = if fresh { hub.refresh(shared, def).await } else { hub.inventory(shared, def).await };
        for t in &inv.tools {
            let standing = hub.standing(def, t);
            all.push((def.clone(), t.name.clone(), t.definition.clone(), standing));
        }
    }
    match front {
        Front::Server(_) => all
            .into_iter()
            .map(|(server, tool, definition, standing)| Exposed {
                name: tool.clone(),
                server,
                tool,
                definition,
                standing,
            })
            .collect(),
        Front::Virtual(v) => {
            let chosen: Vec<_> = all
                .into_iter()
                .filter(|(s, t, _, _)| {
                    let q = format!("{}/{t}", s.name);
                    v.tools.iter().any(|g| g.matches(&q))
                })
                .collect();
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (_, t, _, _) in &chosen {
                *seen.entry(t.as_str()).or_default() += 1;
            }
            let prefixed = |tool: &str| match v.prefix {
                PrefixMode::Always => true,
                PrefixMode::OnConflict => seen.get(tool).copied().unwrap_or(0) > 1,
                PrefixMode::Never => false,
            };
            let names: Vec<String> = chosen
                .iter()
                .map(|(s, t, _, _)| {
                    let q = format!("{}/{t}", s.name);
                    match v.overrides.get(&q).and_then(|o| o.rename.clone()) {
                        Some(r) => r,
                        None if prefixed(t) => format!("{}__{t}", s.name),
                        None => t.clone(),
                    }
                })
                .collect();
            let mut out: Vec<Exposed> = Vec::new();
            for ((server, tool, mut definition, standing), name) in chosen.into_iter().zip(names) {
                if out.iter().any(|e| e.name == name) {
                    // `prefix: never` with two tools of one name: the first wins.
                    tracing::warn!(endpoint = %v.name, tool = %name, "two tools share a name; the later one is hidden");
                    continue;
                }
                let q = format!("{}/{tool}", server.name);
                if let Some(d) = v.overrides.get(&q).and_then(|o| o.description.clone()) {
                    definition["description"] = Value::String(d);
                }
                definition["name"] = Value::String(name.clone());
                out.push(Exposed { name, server, tool, definition, standing });
            }
            out
        }
    }
}
