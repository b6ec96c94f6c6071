//! `type: json_schema` — an answer (or a tool's arguments or result) must
//! be JSON matching a schema: the contract a program reading a model's
//! structured output relies on. Validate only. The reason names where the
//! document breaks the schema (a JSON pointer), never the value found there.
//!
//! ```yaml
//! - name: ticket-shape
//!   type: json_schema
//!   schema: { type: object, required: [priority], properties: { priority: { enum: [low, high] } } }
//! ```

use serde_json::Value;

use super::{Reason, Shape, Source};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    schema: Value,
}

pub struct SchemaCheck {
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for SchemaCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SchemaCheck")
    }
}

impl SchemaCheck {
    pub fn build(opts: serde_json::Value) -> Result<SchemaCheck, String> {
        let o: Options = super::options(opts)?;
        let validator = jsonschema::validator_for(&o.schema).map_err(|e| format!("schema: {e}"))?;
        Ok(SchemaCheck { validator })
    }

    /// Tool arguments are the document itself; a tool result's structured
    /// content, else its text; an answer's text.
    pub fn check(&self, doc: &mut Value, shape: Shape) -> Result<(), Reason> {
        let instance: Value = match shape {
            Shape::ToolArgs => doc.clone(),
            Shape::ToolResult if doc.get("structuredContent").is_some() => doc["structuredContent"].clone(),
            _ => {
                let texts = super::content::texts(doc, shape);
                let answer: String = texts
                    .iter()
                    .filter(|(s, _)| matches!(s, Source::Assistant | Source::Tool))
                    .map(|(_, t)| t.as_str())
                    .collect();
                serde_json::from_str(strip_fence(&answer)).map_err(|_| "the answer is not JSON".to_string())?
            }
        };
        match self.validator.iter_errors(&instance).next() {
            None => Ok(()),
            Some(e) => {
                let at = e.instance_path().to_string();
                Err(format!(
                    "does not match the schema at `{}` ({})",
                    if at.is_empty() { "/" } else { &at },
                    e.schema_path()
                ))
            }
        }
    }
}

/// Models often wrap JSON in a Markdown fence; the fence is not the answer.
fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else { return t };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_parsed_and_checked_without_quoting_values() {
        let c = SchemaCheck::build(
            json!({"schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}}),
        )
        .expect("schema");
        let answer = |text: &str| json!({"choices": [{"message": {"role": "assistant", "content": text}}]});
        assert!(c.check(&mut answer("{\"n\": 3}"), Shape::ChatResponse).is_ok());
        assert!(c.check(&mut answer("```json\n{\"n\": 3}\n```"), Shape::ChatResponse).is_ok());
        let e = c.check(&mut answer("{\"n\": \"secret-value\"}"), Shape::ChatResponse).expect_err("wrong type");
        assert!(e.contains("/n") && !e.contains("secret-value"), "{e}");
        assert_eq!(c.check(&mut answer("not json"), Shape::ChatResponse).expect_err("text"), "the answer is not JSON");
        assert!(c.check(&mut json!({"n": 1}), Shape::ToolArgs).is_ok());
        assert!(SchemaCheck::build(json!({"schema": {"type": 12}})).is_err());
    }
}
