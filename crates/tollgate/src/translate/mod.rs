//! Translation between the OpenAI chat shape — the gateway's hub format —
//! and every other provider's wire format, in both directions.
//!
//! A request on `/v1/chat/completions` is already in the hub shape; for a
//! provider with another wire format, its module turns the hub request into
//! the provider's, and the provider's answer (whole or streamed, event by
//! event) back into the hub shape. A request on `/v1/messages` is turned
//! into the hub shape once (`messages`), and the hub answer back into
//! Anthropic's — unless the model resolves to an Anthropic provider, which
//! takes the client's request as it came.
//!
//! Translation works on `serde_json::Value`: these paths already pay for a
//! provider round trip and a re-encoding, and a tree keeps every rule in
//! SPEC §3 readable. The OpenAI pass-through path never comes here.

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod gemini;
pub mod hub;
pub mod messages;
pub mod responses;
pub mod tokens;

#[cfg(test)]
mod props;

use serde_json::{Map, Value};

/// How a provider with a narrower temperature range treats a larger value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemperaturePolicy {
    /// Lower it to the provider's maximum (documented; the default).
    #[default]
    Clamp,
    /// Refuse the request with a 400 naming the range.
    Reject,
}

/// Settings a translation needs from the provider's config.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Applied when the client gives no max_tokens and the provider requires one.
    pub default_max_tokens: u64,
    pub temperature: TemperaturePolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { default_max_tokens: 4096, temperature: TemperaturePolicy::Clamp }
    }
}

/// Why a request cannot be expressed in a provider's format: a 400 for the
/// caller, never sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslatable(pub String);

pub type Result<T> = std::result::Result<T, Untranslatable>;

pub(crate) fn refuse<T>(message: impl Into<String>) -> Result<T> {
    Err(Untranslatable(message.into()))
}

/// A stream failure the translator saw: an error the provider reported in
/// the stream (with the status it stands for) or a malformed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFail {
    Status { status: u16, message: String },
    Broken(String),
}

/// One upstream stream event, as its framing delivers it.
pub enum UpEvent<'a> {
    /// A server-sent event: its `event:` name (if any) and its data.
    Sse { event: Option<&'a str>, data: &'a [u8] },
    /// An AWS event-stream message: `:message-type`, `:event-type` or
    /// `:exception-type`, and the payload.
    Aws { message_type: &'a str, kind: &'a str, payload: &'a [u8] },
}

/// Turns one provider's stream into OpenAI chat-completion chunks.
pub trait ToOpenAiStream: Send {
    /// Appends the SSE bytes (zero or more `data:` events) this event becomes.
    fn event(&mut self, ev: UpEvent<'_>, out: &mut Vec<u8>) -> std::result::Result<(), StreamFail>;
    /// The upstream body ended: appends the closing events (`[DONE]`) if the
    /// provider's stream was complete, or fails if it was cut short.
    fn end(&mut self, out: &mut Vec<u8>) -> std::result::Result<(), StreamFail>;
}

/// An SSE event written again as it came (its `event:` name, if any, and data).
pub(crate) fn reemit(event: Option<&str>, data: &[u8], out: &mut Vec<u8>) {
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// A tool call's arguments as the object providers other than OpenAI want.
/// OpenAI carries them as a JSON string, possibly empty.
pub(crate) fn arguments_object(args: Option<&Value>) -> Result<Value> {
    match args {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Value::Object(Map::new())),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => refuse("a tool call's `arguments` must encode a JSON object"),
            Err(e) => {
                refuse(format!("a tool call's `arguments` is not valid JSON ({e}); send the arguments as returned"))
            }
        },
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => refuse("a tool call's `arguments` must be a JSON string"),
    }
}

/// `data:<media type>;base64,<data>` split into its parts.
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((if media.is_empty() { "application/octet-stream" } else { media }, data))
}

/// The text of an OpenAI `content` (a string or an array of parts); other
/// part types are left out.
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Applies a temperature policy for a provider whose range ends at `max`.
pub(crate) fn temperature(
    v: Option<&Value>,
    max: f64,
    policy: TemperaturePolicy,
    provider: &str,
) -> Result<Option<Value>> {
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(None) };
    let Some(t) = v.as_f64() else { return refuse("`temperature` must be a number") };
    if t < 0.0 {
        return refuse("`temperature` must not be negative");
    }
    if t <= max {
        return Ok(Some(v.clone()));
    }
    match policy {
        TemperaturePolicy::Clamp => Ok(Some(Value::from(max))),
        TemperaturePolicy::Reject => refuse(format!(
            "`temperature` {t} is above {provider}'s maximum of {max}; send a value in 0–{max} \
             (or set `temperature_policy: clamp` on the provider)"
        )),
    }
}

/// `stop` (a string or an array) as a list.
pub(crate) fn stop_list(v: Option<&Value>) -> Result<Option<Vec<Value>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![Value::String(s.clone())])),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(Some(a.clone())),
        Some(_) => refuse("`stop` must be a string or an array of strings"),
    }
}

/// Requests the hub cannot carry to any provider but OpenAI's own family.
pub(crate) fn refuse_n(req: &Value, provider: &str) -> Result<()> {
    match req.get("n").and_then(Value::as_u64) {
        Some(n) if n > 1 => refuse(format!("`n` > 1 is not supported by {provider}; send n: 1 and repeat the request")),
        _ => Ok(()),
    }
}

/// The max output tokens a hub request asks for.
pub(crate) fn max_tokens(req: &Value) -> Option<u64> {
    req.get("max_completion_tokens").and_then(Value::as_u64).or_else(|| req.get("max_tokens").and_then(Value::as_u64))
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn temperature_is_clamped_or_refused_never_rescaled() {
        let t = |v: Value, p| temperature(Some(&v), 1.0, p, "anthropic");
        assert_eq!(t(json!(0.7), TemperaturePolicy::Reject), Ok(Some(json!(0.7))));
        assert_eq!(t(json!(1.5), TemperaturePolicy::Clamp), Ok(Some(json!(1.0))));
        assert!(t(json!(1.5), TemperaturePolicy::Reject).unwrap_err().0.contains("0–1"));
        assert!(t(json!("hot"), TemperaturePolicy::Clamp).is_err());
    }

    #[test]
    fn arguments_and_data_urls() {
        assert_eq!(arguments_object(Some(&json!(""))), Ok(json!({})));
        assert_eq!(arguments_object(Some(&json!("{\"a\":1}"))), Ok(json!({"a":1})));
        assert!(arguments_object(Some(&json!("{oops"))).is_err());
        assert_eq!(data_url("data:image/png;base64,AAA"), Some(("image/png", "AAA")));
        assert_eq!(data_url("https://x/y.png"), None);
    }
}
