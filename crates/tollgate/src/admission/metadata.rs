//! Stage 3: request metadata (`x-tollgate-metadata`, alias `x-tfy-metadata`)
//! merged over the key's defaults, then checked against the contract.
//! Keys the credential sets are pinned: a request cannot override them.

use std::collections::BTreeMap;

use http::HeaderMap;

use crate::config::snapshot::MetadataContract;

use crate::error::RequestError;
use crate::identity::Principal;

const MAX_HEADER_BYTES: usize = 8 << 10;

pub fn run(
    contract: &MetadataContract,
    principal: Option<&Principal>,
    headers: &HeaderMap,
) -> Result<BTreeMap<String, String>, RequestError> {
    let mut out = match headers.get("x-tollgate-metadata").or_else(|| headers.get("x-tfy-metadata")) {
        None => BTreeMap::new(),
        Some(v) => parse(v.as_bytes())?,
    };
    if let Some(p) = principal {
        for (k, v) in &p.metadata {
            out.insert(k.clone(), v.clone());
        }
    }
    for key in &contract.required {
        if !out.contains_key(key) {
            return Err(RequestError::Metadata {
                message: format!(
                    "metadata key `{key}` is required; send it in the x-tollgate-metadata header, e.g. {{\"{key}\":\"…\"}}"
                ),
                param: Some(key.clone()),
            });
        }
    }
    for (key, allowed) in &contract.allowed_values {
        if let Some(v) = out.get(key)
            && !allowed.contains(v)
        {
            return Err(RequestError::Metadata {
                message: format!("metadata `{key}` = `{v}` is not allowed; use one of: {}", allowed.join(", ")),
                param: Some(key.clone()),
            });
        }
    }
    Ok(out)
}

fn parse(raw: &[u8]) -> Result<BTreeMap<String, String>, RequestError> {
    let bad = |why: String| RequestError::Metadata {
        message: format!("x-tollgate-metadata must be a JSON object of string values: {why}"),
        param: None,
    };
    if raw.len() > MAX_HEADER_BYTES {
        return Err(bad(format!("the header is longer than {MAX_HEADER_BYTES} bytes")));
    }
    let v: serde_json::Value = serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
    let serde_json::Value::Object(map) = v else { return Err(bad("got something other than an object".into())) };
    map.into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) if s.chars().chain(k.chars()).any(char::is_control) => Err(bad(format!(
                "`{}` contains control characters; metadata keys and values are plain text",
                k.escape_debug()
            ))),
            serde_json::Value::String(s) => Ok((k, s)),
            other => Err(bad(format!("`{k}` is {other}, not a string"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PrincipalKind;
    use http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-tollgate-metadata", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn merges_contract_and_pins() {
        let contract = MetadataContract { required: vec!["team".into(), "project_id".into()], ..Default::default() };
        let p = Principal {
            id: "k".into(),
            kind: PrincipalKind::StaticKey,
            allow: Default::default(),
            groups: vec![],
            role: None,
            team: None,
            owner: None,
            metadata: [("team".to_string(), "payments".to_string())].into(),
        };
        let m = run(&contract, Some(&p), &headers(r#"{"project_id":"p1","team":"evil"}"#)).unwrap();
        assert_eq!(m["team"], "payments");
        assert_eq!(m["project_id"], "p1");
        let e = run(&contract, Some(&p), &headers("{}")).unwrap_err();
        assert!(e.to_string().contains("`project_id` is required"));
        assert!(run(&contract, None, &headers("[1]")).unwrap_err().to_string().contains("JSON object"));
        assert!(run(&contract, None, &headers(r#"{"a":1}"#)).unwrap_err().to_string().contains("`a` is 1"));
        assert!(run(&contract, None, &headers("{bad")).is_err());
    }
}
