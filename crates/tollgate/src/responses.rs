//! Responses the gateway keeps for `previous_response_id` and
//! `GET /v1/responses/{id}`: in memory, per tenant, bounded by count, bytes
//! and age. Each entry holds only its own turn (input and answer, as hub
//! messages) and the id before it, so a long conversation costs its length
//! once, not once per turn; `history` walks the chain back.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Bounds on what is kept (`responses:` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How long a response stays retrievable.
    pub retention: Duration,
    pub max_stored: usize,
    pub max_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { retention: Duration::from_secs(3600), max_stored: 10_000, max_bytes: 256 << 20 }
    }
}

impl Settings {
    pub fn from_config(sec: &crate::config::file::ResponsesSection) -> Settings {
        let d = Settings::default();
        Settings {
            retention: sec.retention.as_ref().map_or(d.retention, |r| r.0),
            max_stored: sec.max_stored.unwrap_or(d.max_stored),
            max_bytes: sec.max_bytes.map_or(d.max_bytes, |b| usize::try_from(b.0).unwrap_or(usize::MAX)),
        }
    }
}

/// A conversation longer than this many stored turns is refused rather
/// than walked: the bound keeps one lookup's cost fixed.
const MAX_CHAIN: usize = 1_000;

pub struct Entry {
    /// Who may read or continue it: the principal's id.
    pub tenant: String,
    /// The response object as the client got it.
    pub response: Value,
    /// The request as the client sent it (for its input items).
    pub request: Value,
    /// This turn as hub messages: the input, then the assistant's answer.
    pub turn: Vec<Value>,
    /// This turn as Responses items (the input, references resolved, then
    /// the output), for a later turn sent to OpenAI's own Responses API.
    pub items: Vec<Value>,
    /// Answered by OpenAI's Responses API itself: its items (reasoning,
    /// ids) mean something to OpenAI; a translated answer's do not.
    pub native: bool,
    pub previous: Option<String>,
    size: usize,
    at: Instant,
}

impl Entry {
    pub fn new(tenant: String, response: Value, request: Value, turn: Vec<Value>, previous: Option<String>) -> Entry {
        // Counted as encoded: close to what the tree holds, cheap to know.
        let size = response.to_string().len()
            + request.to_string().len()
            + turn.iter().map(|m| m.to_string().len()).sum::<usize>();
        Entry { tenant, response, request, turn, items: Vec::new(), native: false, previous, size, at: Instant::now() }
    }

    /// With this turn's Responses items.
    pub fn with_items(mut self, items: Vec<Value>, native: bool) -> Entry {
        self.size += items.iter().map(|i| i.to_string().len()).sum::<usize>();
        self.items = items;
        self.native = native;
        self
    }
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, std::sync::Arc<Entry>>,
    /// Output item id → the response that holds it, for `item_reference`.
    items: HashMap<String, String>,
    /// Ids oldest first, for eviction by age, count and bytes.
    order: VecDeque<String>,
    bytes: usize,
}

/// Why a stored conversation cannot be continued: a 400 for the caller.
#[derive(Debug, PartialEq, Eq)]
pub struct Missing(pub String);

#[derive(Default)]
pub struct Stored(Mutex<Inner>);

impl Stored {
    pub fn put(&self, id: String, entry: Entry, limits: Settings) {
        if entry.size > limits.max_bytes || limits.max_stored == 0 {
            return;
        }
        let Ok(mut g) = self.0.lock() else { return };
        g.bytes += entry.size;
        for item in item_ids(&entry.response) {
            g.items.insert(item.to_string(), id.clone());
        }
        if let Some(old) = g.by_id.insert(id.clone(), std::sync::Arc::new(entry)) {
            g.bytes -= old.size;
        } else {
            g.order.push_back(id);
        }
        evict(&mut g, limits);
    }

    /// The entry, if `tenant` owns it and it has not expired.
    pub fn get(&self, tenant: &str, id: &str, limits: Settings) -> Option<std::sync::Arc<Entry>> {
        let mut g = self.0.lock().ok()?;
        evict(&mut g, limits);
        g.by_id.get(id).filter(|e| e.tenant == tenant).cloned()
    }

    pub fn delete(&self, tenant: &str, id: &str) -> bool {
        let Ok(mut g) = self.0.lock() else { return false };
        if !g.by_id.get(id).is_some_and(|e| e.tenant == tenant) {
            return false;
        }
        if let Some(e) = g.by_id.remove(id) {
            forget(&mut g, &e);
            g.order.retain(|x| x != id);
        }
        true
    }

    /// An output item of a stored response, by its id (`item_reference`).
    pub fn item(&self, tenant: &str, item: &str, limits: Settings) -> Option<Value> {
        let response = self.0.lock().ok()?.items.get(item).cloned()?;
        let e = self.get(tenant, &response, limits)?;
        e.response.get("output")?.as_array()?.iter().find(|i| i.get("id").and_then(Value::as_str) == Some(item)).cloned()
    }

    /// The conversation up to and including `id`, oldest turn first, as
    /// hub messages.
    pub fn history(&self, tenant: &str, id: &str, limits: Settings) -> Result<Vec<Value>, Missing> {
        Ok(self.chain(tenant, id, limits)?.iter().flat_map(|e| e.turn.iter().cloned()).collect())
    }

    /// The same conversation as Responses items for OpenAI's own API: a
    /// translated turn's reasoning (sealed for other providers) is left out,
    /// and so are the ids the gateway gave its items.
    pub fn history_items(&self, tenant: &str, id: &str, limits: Settings) -> Result<Vec<Value>, Missing> {
        let mut out = Vec::new();
        for e in self.chain(tenant, id, limits)? {
            for item in &e.items {
                if e.native {
                    out.push(item.clone());
                } else if item.get("type").and_then(Value::as_str) != Some("reasoning") {
                    let mut item = item.clone();
                    if let Some(o) = item.as_object_mut() {
                        o.remove("id");
                    }
                    out.push(item);
                }
            }
        }
        Ok(out)
    }

    fn chain(&self, tenant: &str, id: &str, limits: Settings) -> Result<Vec<std::sync::Arc<Entry>>, Missing> {
        let mut turns = Vec::new();
        let mut next = Some(id.to_string());
        while let Some(at) = next {
            if turns.len() >= MAX_CHAIN {
                return Err(Missing(format!(
                    "the conversation behind `previous_response_id` is longer than {MAX_CHAIN} turns; \
                     send the history as `input` instead"
                )));
            }
            let Some(e) = self.get(tenant, &at, limits) else {
                let which = if at == id { "it" } else { "an earlier response in its conversation" };
                return Err(Missing(format!(
                    "previous response `{at}` was not found: {which} was never stored here, has expired \
                     (responses are kept {}s), or belongs to another caller; send the history as `input` instead",
                    limits.retention.as_secs()
                )));
            };
            next = e.previous.clone();
            turns.push(e);
        }
        turns.reverse();
        Ok(turns)
    }

    pub fn len(&self) -> usize {
        self.0.lock().map(|g| g.by_id.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict(g: &mut Inner, limits: Settings) {
    let now = Instant::now();
    while let Some(id) = g.order.front() {
        let stale = g.by_id.get(id).is_none_or(|e| now.duration_since(e.at) > limits.retention);
        if !stale && g.by_id.len() <= limits.max_stored && g.bytes <= limits.max_bytes {
            break;
        }
        if let Some(id) = g.order.pop_front()
            && let Some(e) = g.by_id.remove(&id)
        {
            forget(g, &e);
        }
    }
}

fn item_ids(response: &Value) -> impl Iterator<Item = &str> {
    response.get("output").and_then(Value::as_array).into_iter().flatten().filter_map(|i| i.get("id")?.as_str())
}

fn forget(g: &mut Inner, e: &Entry) {
    g.bytes -= e.size;
    for item in item_ids(&e.response) {
        g.items.remove(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn turn(n: u32) -> Vec<Value> {
        vec![json!({"role": "user", "content": format!("q{n}")}), json!({"role": "assistant", "content": format!("a{n}")})]
    }

    #[test]
    fn history_walks_the_chain_oldest_first_and_is_tenant_isolated() {
        let s = Stored::default();
        let l = Settings::default();
        s.put("r1".into(), Entry::new("key:a".into(), json!({}), json!({}), turn(1), None), l);
        s.put("r2".into(), Entry::new("key:a".into(), json!({}), json!({}), turn(2), Some("r1".into())), l);
        let h = s.history("key:a", "r2", l).unwrap();
        let texts: Vec<_> = h.iter().map(|m| m["content"].as_str().unwrap().to_string()).collect();
        assert_eq!(texts, ["q1", "a1", "q2", "a2"]);
        assert!(s.history("key:b", "r2", l).unwrap_err().0.contains("another caller"));
        assert!(s.get("key:b", "r1", l).is_none());
        assert!(!s.delete("key:b", "r1"));
        assert!(s.delete("key:a", "r1"));
        assert!(s.history("key:a", "r2", l).unwrap_err().0.contains("an earlier response"));
        let out = json!({"output": [{"type": "function_call", "id": "fc_1", "call_id": "c"}]});
        s.put("r3".into(), Entry::new("key:a".into(), out, json!({}), turn(3), None), l);
        assert_eq!(s.item("key:a", "fc_1", l).unwrap()["call_id"], "c");
        assert!(s.item("key:b", "fc_1", l).is_none());
        assert!(s.delete("key:a", "r3") && s.item("key:a", "fc_1", l).is_none());
    }

    #[test]
    fn bounded_by_count_bytes_and_age() {
        let s = Stored::default();
        let l = Settings { max_stored: 3, ..Settings::default() };
        for i in 0..10 {
            s.put(format!("r{i}"), Entry::new("t".into(), json!({}), json!({}), turn(i), None), l);
        }
        assert_eq!(s.len(), 3);
        assert!(s.get("t", "r9", l).is_some() && s.get("t", "r6", l).is_none());
        let small = Settings { max_bytes: 200, ..Settings::default() };
        let s = Stored::default();
        for i in 0..10 {
            s.put(format!("r{i}"), Entry::new("t".into(), json!({}), json!({}), turn(i), None), small);
        }
        assert!(s.0.lock().unwrap().bytes <= 200 && s.len() >= 1);
        let gone = Settings { retention: Duration::ZERO, ..Settings::default() };
        s.put("old".into(), Entry::new("t".into(), json!({}), json!({}), turn(0), None), l);
        std::thread::sleep(Duration::from_millis(2));
        assert!(s.get("t", "old", gone).is_none());
    }
}
