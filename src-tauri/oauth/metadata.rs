//! Discovery documents: RFC 8414 authorization server metadata (with the RFC 7662
//! introspection endpoint) and RFC 9728 protected resource metadata. One issuer string
//! is used everywhere, byte for byte (RFC 8414 §3.3, RFC 9207 §2.4), without a trailing
//! slash.

use serde_json::{Value, json};

use super::{Resource, Scopes};

/// RFC 8414 §2.
/// `client_id_metadata_document_supported` is advertised only when the broker can fetch
/// documents (MCP 2025-11-25, "Client ID Metadata Documents").
pub fn authorization_server(issuer: &str, scopes: &Scopes, cimd_supported: bool) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "scopes_supported": scopes.iter().collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        // RFC 7662 §2.1: callers authenticate. A personal access token as a bearer is
        // accepted too; it has no name in the registry these values come from.
        "introspection_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": cimd_supported,
    })
}

/// RFC 9728 §2, for one upstream's MCP endpoint. Never lists `offline_access`: refresh is
/// the authorization server's business, not a scope of the resource (MCP 2026-07-28
/// basic/authorization §Refresh Tokens, SEP-2207).
pub fn protected_resource(resource: &Resource, issuer: &str, scopes: &Scopes, name: &str) -> Value {
    json!({
        "resource": resource.0,
        "authorization_servers": [issuer],
        "scopes_supported": scopes.of_resource().iter().collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
        "resource_name": format!("{name} (via mcp-broker)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_is_identical_in_both_documents() {
        let issuer = "http://127.0.0.1:4242";
        let s = Scopes::single("mcp");
        let asm = authorization_server(issuer, &s, true);
        assert_eq!(asm["client_id_metadata_document_supported"], true);
        let prm = protected_resource(&Resource(format!("{issuer}/mcp/x")), issuer, &s, "x");
        assert_eq!(asm["issuer"], prm["authorization_servers"][0]);
        assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(prm["resource"], "http://127.0.0.1:4242/mcp/x");
        assert_eq!(asm["token_endpoint"], "http://127.0.0.1:4242/token");
        assert_eq!(
            asm["introspection_endpoint"],
            "http://127.0.0.1:4242/introspect"
        );
    }

    #[test]
    fn the_resource_never_lists_offline_access() {
        let s = Scopes::parse("mcp offline_access").unwrap();
        let prm = protected_resource(
            &Resource("http://127.0.0.1:1/mcp/x".into()),
            "http://127.0.0.1:1",
            &s,
            "x",
        );
        assert_eq!(prm["scopes_supported"], json!(["mcp"]));
    }
}
