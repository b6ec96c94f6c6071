//! A JSON object kept as borrowed raw slices of the request body.
//!
//! The gateway reads only the fields it needs (model, stream, messages…) and
//! must pass every other field through untouched. Parsing the top level into
//! `(key, raw value)` pairs validates the whole body once, lets stages read
//! single fields on demand, and rebuilds an upstream body by concatenating
//! slices: nested values are never re-serialised.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

pub struct RawObject<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawObject<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<RawObject<'a>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The raw value of a top-level field; with duplicate keys the last wins,
    /// as in most JSON parsers upstream.
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// Deserialises one field; `Ok(None)` when it is absent or `null`.
    pub fn field<T: Deserialize<'a>>(&self, key: &str) -> Result<Option<T>, serde_json::Error> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str(raw.get()).map(Some),
        }
    }

    /// Writes the object back with some fields replaced (by raw JSON text)
    /// and others removed; every other field is copied byte for byte.
    pub fn rebuild(&self, replace: &[(&str, &str)], remove: &[&str]) -> Vec<u8> {
        let cap = self.fields.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>() + 64;
        let mut out = Vec::with_capacity(cap);
        out.push(b'{');
        let mut first = true;
        let mut push = |out: &mut Vec<u8>, k: &str, v: &str| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_json_string(out, k);
            out.push(b':');
            out.extend_from_slice(v.as_bytes());
        };
        for (k, v) in &self.fields {
            if remove.contains(&k.as_ref()) || replace.iter().any(|(rk, _)| rk == k) {
                continue;
            }
            push(&mut out, k, v.get());
        }
        for (k, v) in replace {
            push(&mut out, k, v);
        }
        out.push(b'}');
        out
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[start..i]);
        match esc {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
    out.push(b'"');
}

pub fn json_string(s: &str) -> String {
    let mut v = Vec::with_capacity(s.len() + 2);
    write_json_string(&mut v, s);
    // Only ASCII escapes were added to valid UTF-8 input.
    String::from_utf8(v).unwrap_or_default()
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(16);
                while let Some(key) = map.next_key::<Key<'a>>()? {
                    let value: &'a RawValue = map.next_value()?;
                    fields.push((key.0, value));
                }
                Ok(RawObject { fields })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A key borrowed from the input when it has no escapes, owned otherwise.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuild_replaces_model_and_keeps_everything_else_byte_for_byte() {
        let body = br#"{"model":"openai-main/gpt-4o","messages":[{"role":"user","content":"hi \u00e9"}],"x_vendor":{"a":[1,2.50]},"stream":true}"#;
        let obj = RawObject::parse(body).unwrap();
        assert_eq!(obj.field::<&str>("model").unwrap(), Some("openai-main/gpt-4o"));
        let out = obj.rebuild(&[("model", "\"gpt-4o\"")], &[]);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            r#"{"messages":[{"role":"user","content":"hi \u00e9"}],"x_vendor":{"a":[1,2.50]},"stream":true,"model":"gpt-4o"}"#
        );
    }

    #[test]
    fn escaped_keys_and_non_objects() {
        let obj = RawObject::parse(br#"{"mo\u0064el":"x"}"#).unwrap();
        assert_eq!(obj.field::<String>("model").unwrap().as_deref(), Some("x"));
        assert!(RawObject::parse(b"[1,2]").is_err());
        assert!(RawObject::parse(b"{\"a\":").is_err());
        assert!(RawObject::parse(b"{\"a\":\"\xff\"}").is_err());
    }

    #[test]
    fn json_string_escapes_controls() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
    }
}
