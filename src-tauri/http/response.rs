//! Every error the broker returns over HTTP is rendered here, in one place:
//! OAuth errors as RFC 6749 §5.2 JSON, bearer failures as RFC 6750 §3 / RFC 9728 §5.1
//! challenges, and plumbing errors as an opaque `server_error` (details go to the log),
//! except a full disk: 503 with `Retry-After` and `temporarily_unavailable`, saying so.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::oauth::bearer::BearerError;
use crate::oauth::{ErrorCode, OAuthError};

/// RFC 6749 §5.1: "Cache-Control: no-store" on every response carrying tokens or errors.
pub fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

pub fn json_no_store(status: StatusCode, body: Value) -> Response {
    no_store((status, Json(body)).into_response())
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self.code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut res = json_no_store(
            status,
            json!({"error": self.code.as_str(), "error_description": self.description}),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mcp-broker\""),
            );
        }
        res
    }
}

/// When a client may try again after a write failed on a full disk.
const RETRY_AFTER_SECS: &str = "30";

impl IntoResponse for crate::error::Error {
    fn into_response(self) -> Response {
        tracing::error!("internal error: {self}");
        internal_oauth_error(&self).into_response()
    }
}

/// What an OAuth client is told about a plumbing error: `temporarily_unavailable` for a
/// full disk (it can retry once space is freed), an opaque `server_error` otherwise.
pub fn internal_oauth_error(e: &crate::error::Error) -> OAuthError {
    if e.is_disk_full() {
        OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "the disk holding the broker's data is full; free some space and try again",
        )
    } else {
        OAuthError::new(
            ErrorCode::ServerError,
            "internal error; see the broker's log",
        )
    }
}

/// A 401/403 from the MCP endpoint, pointing at the protected resource metadata.
pub fn bearer_challenge(
    err: &BearerError,
    resource_metadata: &str,
    id: Option<&Value>,
) -> Response {
    let (status, code, desc) = match err {
        BearerError::Missing => (StatusCode::UNAUTHORIZED, None, "authorization required"),
        BearerError::InvalidToken => (
            StatusCode::UNAUTHORIZED,
            Some("invalid_token"),
            "the access token is invalid, expired, revoked or for another resource",
        ),
        BearerError::InsufficientScope(_) => (
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "insufficient scope",
        ),
    };
    let mut v = format!("Bearer resource_metadata=\"{resource_metadata}\"");
    if let Some(c) = code {
        v.push_str(&format!(", error=\"{c}\", error_description=\"{desc}\""));
    }
    if let BearerError::InsufficientScope(s) = err {
        v.push_str(&format!(", scope=\"{s}\""));
    }
    let body = json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": -32001, "message": desc},
    });
    let mut res = (status, Json(body)).into_response();
    if let Ok(hv) = HeaderValue::from_str(&v) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, hv);
    }
    res
}
