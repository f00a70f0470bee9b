//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3) and
//! `GET /.well-known/oauth-protected-resource/mcp/NAME` (RFC 9728 §3.1, path insertion).
//! No root protected-resource document: with several upstreams no single `resource`
//! would be right for it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::gateway::Gateway;
use crate::oauth::metadata;

pub async fn authorization_server(State(g): State<Gateway>) -> Response {
    Json(metadata::authorization_server(
        &g.issuer,
        &g.scopes,
        g.client_metadata.supported(),
    ))
    .into_response()
}

pub async fn protected_resource(State(g): State<Gateway>, Path(name): Path<String>) -> Response {
    match g.resource_for(&name) {
        Some(r) => {
            Json(metadata::protected_resource(r, &g.issuer, &g.scopes, &name)).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "no such MCP server"})),
        )
            .into_response(),
    }
}
