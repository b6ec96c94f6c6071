//! Stage 4: resolve what is called and check the principal may call it.
//! A virtual model is authorized by its own name; a physical model by its
//! canonical `<provider>/<model>` name, so a key scoped to `openai-main/*`
//! reaches the same models whether it writes the canonical or a bare alias,
//! and nothing else. A tool is authorized as `<server>/<tool>`, an agent by
//! its name, against the same allowlists (key, token issuer, team, groups).

use super::{Admission, Requested, Resource};
use crate::error::{AuthError, GatewayError, RequestError};

pub fn run(adm: &Admission, what: Requested<'_>) -> Result<Resource, GatewayError> {
    let resource = match what {
        Requested::Model(name) => Resource::Model(
            adm.snapshot.models.resolve_ref(name).ok_or_else(|| RequestError::UnknownModel(name.to_string()))?,
        ),
        Requested::Tool { server, tool } => Resource::Tool(format!("{server}/{tool}")),
        Requested::Agent(name) => Resource::Agent(name.to_string()),
    };
    let principal = adm.principal.as_deref().ok_or(AuthError::Missing)?;
    if !adm.snapshot.auth.allows(principal, resource.called(&adm.requested)) {
        return Err(match resource {
            Resource::Model(_) => AuthError::ModelNotAllowed(adm.requested.clone()),
            Resource::Tool(name) => AuthError::ToolNotAllowed(name),
            Resource::Agent(name) => AuthError::AgentNotAllowed(name),
        }
        .into());
    }
    Ok(resource)
}
