//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3) and
//! `GET /.well-known/oauth-protected-resource/mcp/NAME` (RFC 9728 §3.1, path insertion).
//! No root protected-resource document: with several upstreams no single `resource`
//! would be right for it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::response::HttpError;
use crate::gateway::Gateway;

pub async fn authorization_server(State(g): State<Gateway>) -> Response {
    Json(g.authorization_server_metadata()).into_response()
}

pub async fn protected_resource(
    State(g): State<Gateway>,
    Path(name): Path<String>,
) -> Result<Response, HttpError> {
    g.protected_resource_metadata(&name)
        .map(|m| Json(m).into_response())
        .ok_or(HttpError::Json {
            status: StatusCode::NOT_FOUND,
            message: "no such MCP server".into(),
        })
}
