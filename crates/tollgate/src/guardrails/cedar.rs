//! `type: cedar` — a policy over who calls what with which arguments,
//! written in Cedar and evaluated in-process. Above all for
//! `mcp_tool_pre`: "only the payments team may call `db/query`, and never
//! with `DROP`". Validate only; Cedar denies unless a `permit` applies, so
//! a policy set usually starts with `permit(principal, action, resource);`
//! and adds `forbid` rules.
//!
//! The request it sees:
//! - principal `Tollgate::Subject::"<subject id>"`,
//! - action `Tollgate::Action::"<hook>"` (`llm_input`, `mcp_tool_pre`, …),
//! - resource `Tollgate::Model::"<model>"`, `Tollgate::Tool::"<server>/<tool>"`
//!   or `Tollgate::Agent::"<agent>"`,
//! - context `{subject: {id, team, groups}, metadata: {…}, arguments: {…}}`
//!   (`arguments` on tool hooks: the call's arguments).
//!
//! ```yaml
//! - name: tool-policy
//!   type: cedar
//!   policies: |
//!     permit(principal, action, resource);
//!     forbid(principal, action == Tollgate::Action::"mcp_tool_pre", resource == Tollgate::Tool::"db/query")
//!       unless { context.subject.team == "payments" };
//! ```

use std::str::FromStr;

use cedar_policy::{Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicySet, Request};

use super::Reason;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    policies: String,
}

pub struct CedarCheck {
    policies: PolicySet,
}

impl std::fmt::Debug for CedarCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CedarCheck")
    }
}

/// What a policy decides on, gathered by the runner.
pub struct CedarInput<'a> {
    pub subject: &'a str,
    pub hook: &'a str,
    /// `Model`, `Tool` or `Agent`.
    pub resource_type: &'a str,
    pub resource: &'a str,
    pub context: serde_json::Value,
}

impl CedarCheck {
    pub fn build(opts: serde_json::Value) -> Result<CedarCheck, String> {
        let o: Options = super::options(opts)?;
        let policies = PolicySet::from_str(&o.policies).map_err(|e| format!("policies: {e}"))?;
        Ok(CedarCheck { policies })
    }

    pub fn check(&self, input: &CedarInput<'_>) -> Result<Result<(), Reason>, String> {
        let uid = |ty: &str, id: &str| -> Result<EntityUid, String> {
            let ty = EntityTypeName::from_str(&format!("Tollgate::{ty}")).map_err(|e| e.to_string())?;
            Ok(EntityUid::from_type_name_and_id(ty, EntityId::new(id)))
        };
        let request = Request::new(
            uid("Subject", input.subject)?,
            uid("Action", input.hook)?,
            uid(input.resource_type, input.resource)?,
            Context::from_json_value(input.context.clone(), None).map_err(|e| format!("context: {e}"))?,
            None,
        )
        .map_err(|e| e.to_string())?;
        let answer = Authorizer::new().is_authorized(&request, &self.policies, &Entities::empty());
        let errors: Vec<String> = answer.diagnostics().errors().map(|e| e.to_string()).collect();
        match answer.decision() {
            Decision::Allow => Ok(Ok(())),
            // A policy that failed to evaluate is the guardrail's error, not a verdict.
            Decision::Deny if !errors.is_empty() && answer.diagnostics().reason().next().is_none() => {
                Err(format!("policy evaluation failed: {}", errors.join("; ")))
            }
            Decision::Deny => {
                let ids: Vec<String> = answer.diagnostics().reason().map(ToString::to_string).collect();
                Ok(Err(if ids.is_empty() {
                    "no policy permits this call".to_string()
                } else {
                    format!("forbidden by policy {}", ids.join(", "))
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input<'a>(team: &str, tool: &'a str, sql: &str) -> CedarInput<'a> {
        CedarInput {
            subject: "key:ci",
            hook: "mcp_tool_pre",
            resource_type: "Tool",
            resource: tool,
            context: json!({"subject": {"id": "key:ci", "team": team, "groups": []}, "metadata": {}, "arguments": {"sql": sql}}),
        }
    }

    #[test]
    fn permits_forbids_and_reports_errors() {
        let c = CedarCheck::build(json!({"policies": r#"
            permit(principal, action, resource);
            forbid(principal, action == Tollgate::Action::"mcp_tool_pre", resource == Tollgate::Tool::"db/query")
              unless { context.subject.team == "payments" };
            forbid(principal, action, resource) when { context.arguments.sql like "*DROP*" };
        "#}))
        .expect("policies parse");
        assert_eq!(c.check(&input("payments", "db/query", "SELECT 1")), Ok(Ok(())));
        assert!(c.check(&input("web", "db/query", "SELECT 1")).expect("evaluates").is_err());
        assert!(c.check(&input("payments", "db/query", "DROP TABLE x")).expect("evaluates").is_err());
        assert_eq!(c.check(&input("web", "files/read", "x")), Ok(Ok(())));
        assert!(CedarCheck::build(json!({"policies": "permit(principal"})).is_err());
    }

    #[test]
    fn the_documented_guard_on_missing_arguments_evaluates() {
        let c = CedarCheck::build(json!({"policies": r#"
            permit(principal, action, resource);
            forbid(principal, action, resource) when { context has arguments && context.arguments has sql && context.arguments.sql like "*DROP*" };
        "#}))
        .expect("policies parse");
        let mut model_call = input("web", "m", "");
        model_call.resource_type = "Model";
        model_call.context = json!({"subject": {"id": "key:ci", "team": "web", "groups": []}, "metadata": {}});
        assert_eq!(c.check(&model_call), Ok(Ok(())));
        assert!(c.check(&input("web", "db/query", "DROP TABLE t")).expect("evaluates").is_err());
    }
}
