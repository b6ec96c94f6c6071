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
use super::inventory::{Inventory, Standing};
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

/// One tool of an inventory, named as the endpoint shows it; the
/// definition is cloned only for tools that are returned.
struct Entry {
    name: String,
    server: Arc<ServerDef>,
    inv: Arc<Inventory>,
    index: usize,
    standing: Standing,
}

impl Entry {
    fn expose(self, front: Front<'_>) -> Exposed {
        let t = &self.inv.tools[self.index];
        let mut definition = t.definition.clone();
        if let Front::Virtual(v) = front {
            let q = format!("{}/{}", self.server.name, t.name);
            if let Some(d) = v.overrides.get(&q).and_then(|o| o.description.clone()) {
                definition["description"] = Value::String(d);
            }
            definition["name"] = Value::String(self.name.clone());
        }
        Exposed { name: self.name, tool: t.name.clone(), server: self.server, definition, standing: self.standing }
    }
}

/// Every tool of the endpoint, read fresh from the servers when `fresh`.
pub async fn tools(
    hub: &Arc<Hub>,
    shared: &Arc<Shared>,
    snap: &Snapshot,
    front: Front<'_>,
    fresh: bool,
) -> Vec<Exposed> {
    let (entries, hidden) = entries(hub, shared, snap, front, fresh).await;
    for name in hidden {
        // `prefix: never` with two tools of one name: the first wins.
        tracing::warn!(endpoint = %front.name(), tool = %name, "two tools share a name; the later one is hidden");
    }
    entries.into_iter().map(|e| e.expose(front)).collect()
}

/// The tool the endpoint shows under `name`, from the last read (the
/// `tools/call` path: one definition cloned, not all).
pub async fn find(
    hub: &Arc<Hub>,
    shared: &Arc<Shared>,
    snap: &Snapshot,
    front: Front<'_>,
    name: &str,
) -> Option<Exposed> {
    let (entries, _) = entries(hub, shared, snap, front, false).await;
    entries.into_iter().find(|e| e.name == name).map(|e| e.expose(front))
}

/// The endpoint's tools with their names, and the names hidden as duplicates.
async fn entries(
    hub: &Arc<Hub>,
    shared: &Arc<Shared>,
    snap: &Snapshot,
    front: Front<'_>,
    fresh: bool,
) -> (Vec<Entry>, Vec<String>) {
    let mut all = Vec::new();
    for name in front.servers() {
        let Some(def) = snap.mcp.servers.get(&name) else { continue };
        let inv = if fresh { hub.refresh(shared, def).await } else { hub.inventory(shared, def).await };
        for (index, t) in inv.tools.iter().enumerate() {
            let standing = hub.standing(def, t);
            all.push(Entry { name: String::new(), server: def.clone(), inv: inv.clone(), index, standing });
        }
    }
    let Front::Virtual(v) = front else {
        for e in &mut all {
            e.name = e.inv.tools[e.index].name.clone();
        }
        return (all, Vec::new());
    };
    let qualified = |e: &Entry| format!("{}/{}", e.server.name, e.inv.tools[e.index].name);
    all.retain(|e| {
        let q = qualified(e);
        v.tools.iter().any(|g| g.matches(&q))
    });
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in &all {
        *seen.entry(e.inv.tools[e.index].name.clone()).or_default() += 1;
    }
    for e in &mut all {
        let tool = &e.inv.tools[e.index].name;
        let prefixed = match v.prefix {
            PrefixMode::Always => true,
            PrefixMode::OnConflict => seen.get(tool).copied().unwrap_or(0) > 1,
            PrefixMode::Never => false,
        };
        e.name = match v.overrides.get(&qualified(e)).and_then(|o| o.rename.clone()) {
            Some(r) => r,
            None if prefixed => format!("{}__{tool}", e.server.name),
            None => tool.clone(),
        };
    }
    let mut out: Vec<Entry> = Vec::with_capacity(all.len());
    let mut hidden = Vec::new();
    for e in all {
        if out.iter().any(|o| o.name == e.name) {
            hidden.push(e.name);
        } else {
            out.push(e);
        }
    }
    (out, hidden)
}
