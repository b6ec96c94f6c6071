//! The agent card: v1.0 with the v0.3 fields merged in, as the SDK serves
//! it to old and new clients alike, or the plain v0.3 card of an older agent.

use serde_json::{Value, json};

fn skills(extended: bool) -> Value {
    let mut skills = vec![json!({
        "id": "echo", "name": "Echo", "description": "Answers with the text it was sent.",
        "tags": ["echo"], "examples": ["hello", "direct hi", "stream it", "slow one"],
    })];
    // The extended card (for authenticated callers) shows one more skill.
    if extended {
        skills.push(json!({
            "id": "extended", "name": "Extended", "description": "Only on the extended card.", "tags": ["extended"],
        }));
    }
    Value::Array(skills)
}

pub(crate) fn card(base: &str, legacy_only: bool, extended: bool) -> Value {
    let description = "A mock A2A agent that echoes what it is sent (tollgate tests).";
    if legacy_only {
        return json!({
            "name": "mock-agent", "description": description,
            "url": format!("{base}/rpc"), "preferredTransport": "JSONRPC", "protocolVersion": "0.3.0",
            "version": "1.0.0", "capabilities": { "streaming": true }, "skills": skills(extended),
            "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
        });
    }
    json!({
        "name": "mock-agent",
        "description": description,
        "supportedInterfaces": [
            { "url": format!("{base}/rpc"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0" },
            { "url": format!("{base}/rest"), "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0" },
            { "url": format!("{base}/rpc"), "protocolBinding": "JSONRPC", "protocolVersion": "0.3" },
            // Advertised but never listened on, like an agent whose gRPC port is not reachable.
            { "url": "127.0.0.1:1", "protocolBinding": "GRPC", "protocolVersion": "1.0" },
        ],
        "provider": { "organization": "tollgate tests", "url": "https://tollgate.test" },
        "version": "1.0.0",
        "documentationUrl": format!("{base}/docs"),
        "iconUrl": format!("{base}/icon.png"),
        "capabilities": { "streaming": true, "pushNotifications": false, "extendedAgentCard": true },
        "securitySchemes": {
            "bearer": { "httpAuthSecurityScheme": { "scheme": "bearer" }, "type": "http", "scheme": "bearer" },
        },
        "securityRequirements": [{ "schemes": { "bearer": {} } }],
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": skills(extended),
        // A JWS over the card; nobody here verifies it, but a proxy must pass it on.
        "signatures": [{ "protected": "eyJhbGciOiJFUzI1NiJ9", "signature": "abc" }],
        // The v0.3 view of the same agent, for v0.3 clients.
        "url": format!("{base}/rpc"),
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3",
        "additionalInterfaces": [{ "transport": "HTTP+JSON", "url": format!("{base}/rest") }],
        "security": [{ "bearer": [] }],
        "supportsAuthenticatedExtendedCard": true,
    })
}
