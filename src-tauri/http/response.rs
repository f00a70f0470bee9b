//! Every error the broker's own routes return over HTTP is decided here, in one place:
//! OAuth errors as RFC 6749 §5.2 JSON, bearer failures as RFC 6750 §3 / RFC 9728 §5.1
//! challenges, pages for a person, and plumbing errors as an opaque `server_error`
//! (details go to the log). Handlers return `Result<Response, HttpError>`; which
//! rendering a core error gets depends only on who reads it: [`HttpError::oauth`] for an
//! OAuth client, [`HttpError::page`] for a browser, [`HttpError::local`] for the CLI.
//! A full disk is the one plumbing error a client hears about: 503 with `Retry-After` and
//! `temporarily_unavailable`, since it can retry once space is freed. (The MCP transport's
//! JSON-RPC errors are the proxy's; see `proxy::streamable`.)
//!
//! Every error rendered here carries a reference id (issue 12): in `error_description`
//! and a `reference` member of JSON bodies, in `error.data.reference` of JSON-RPC bodies,
//! on pages. It is logged here with the same id, and the response carries an
//! [`ErrorNote`] the HTTP front records in the activity log. A rate-limited request gets
//! 429 with `Retry-After` and the reference the limiter recorded it under.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use serde_json::value::RawValue;

use super::pages;
use crate::activity::{ErrorNote, Reference};
use crate::gateway::GatewayError;
use crate::gateway::limits::Limited;
use crate::oauth::bearer::BearerError;
use crate::oauth::{ErrorCode, OAuthError, Scopes};

#[derive(Debug)]
pub enum HttpError {
    /// For an OAuth client: JSON with `error` and `error_description`.
    OAuth(OAuthError),
    /// For a person in a browser.
    Page {
        status: StatusCode,
        title: &'static str,
        detail: String,
    },
    /// For a JSON client that is not an OAuth client (the local CLI): `{"error": ...}`.
    Json { status: StatusCode, message: String },
    /// A missing, invalid or insufficient bearer token at `/mcp/NAME`.
    Bearer(Box<BearerChallenge>),
    /// Plain text, for requests no client should make (unknown routes and servers).
    Text {
        status: StatusCode,
        message: &'static str,
    },
    /// Over a rate limit: 429, `Retry-After`, a body for who asked.
    Limited { limited: Limited, body: LimitedBody },
}

/// Who reads a 429.
#[derive(Debug)]
pub enum LimitedBody {
    OAuth,
    Page,
    /// A JSON-RPC error echoing the request id (its JSON text).
    JsonRpc(Option<Box<RawValue>>),
}

#[derive(Debug)]
pub struct BearerChallenge {
    pub error: BearerError,
    pub resource_metadata: String,
    /// The scopes a call needs (never `offline_access`), named on a 401 too so that the
    /// client asks for just those.
    pub scope: Scopes,
    /// The JSON-RPC request id (its JSON text), echoed so the client can pair the error.
    pub id: Option<Box<RawValue>>,
}

impl HttpError {
    pub fn text(status: StatusCode, message: &'static str) -> HttpError {
        HttpError::Text { status, message }
    }

    pub fn page_with(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        HttpError::Page {
            status,
            title,
            detail: detail.into(),
        }
    }

    /// A core error, as an OAuth endpoint answers it.
    pub fn oauth(e: GatewayError) -> HttpError {
        match e {
            GatewayError::OAuth(e) => HttpError::OAuth(e),
            GatewayError::RateLimited(limited) => HttpError::Limited {
                limited,
                body: LimitedBody::OAuth,
            },
            other => {
                tracing::error!("internal error: {other}");
                HttpError::OAuth(other.client_view())
            }
        }
    }

    /// A core error, as a page a person reads.
    pub fn page(e: GatewayError) -> HttpError {
        match e {
            GatewayError::RateLimited(limited) => HttpError::Limited {
                limited,
                body: LimitedBody::Page,
            },
            GatewayError::ConsentGone => HttpError::page_with(
                StatusCode::BAD_REQUEST,
                "This request has expired",
                "It was already answered, or it is more than five minutes old.",
            ),
            GatewayError::ConsentForged => HttpError::page_with(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The form's security token did not match.",
            ),
            GatewayError::OAuth(e) => HttpError::page_with(
                StatusCode::BAD_REQUEST,
                "This sign-in request is not valid",
                e.description,
            ),
            GatewayError::SignIn { reason, .. } => HttpError::page_with(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                reason.to_string(),
            ),
            e @ (GatewayError::AccountRequired { .. } | GatewayError::UnknownAccount(_)) => {
                HttpError::page_with(
                    StatusCode::BAD_REQUEST,
                    "Choose an account",
                    format!("{e}. Go back, choose one and approve again."),
                )
            }
            GatewayError::NotRemote(name) | GatewayError::UnknownUpstream(name) => {
                HttpError::page_with(
                    StatusCode::NOT_FOUND,
                    "Unknown server",
                    format!("mcp-broker has no upstream named {name}."),
                )
            }
            GatewayError::Internal(e) if e.is_disk_full() => {
                tracing::error!("internal error: {e}");
                HttpError::page_with(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The disk is full",
                    "The disk holding mcp-broker's data is full. Free some space and try again.",
                )
            }
            other => {
                tracing::error!("internal error: {other}");
                HttpError::page_with(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The broker could not complete this step; its log says why.",
                )
            }
        }
    }

    /// A core error, as the local command line reads it.
    pub fn local(e: GatewayError) -> HttpError {
        let status = match &e {
            GatewayError::NotRemote(_) | GatewayError::UnknownUpstream(_) => StatusCode::NOT_FOUND,
            GatewayError::AccountRequired { .. } | GatewayError::UnknownAccount(_) => {
                StatusCode::BAD_REQUEST
            }
            GatewayError::SignIn { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::Internal(e) if e.is_disk_full() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError::Json {
            status,
            message: e.to_string(),
        }
    }
}

/// RFC 6749 §5.1: "Cache-Control: no-store" on every response carrying tokens or errors.
pub fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

pub fn json_no_store(status: StatusCode, body: impl serde::Serialize) -> Response {
    no_store((status, Json(body)).into_response())
}

/// A `302 Found` to `to`, never cached.
pub fn redirect(to: &str) -> Response {
    let mut res = (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if let HttpError::Limited { limited, body } = self {
            // Logged and recorded by the limiter, under this reference.
            return too_many(&limited, body);
        }
        if let HttpError::Bearer(c) = &self
            && !matches!(c.error, BearerError::InsufficientScope(_))
        {
            // A 401 is every MCP client's first step (discovery), and a flood of made-up
            // tokens is the cheapest load on the broker: no reference, no log line, no
            // activity row each; the gateway counts them and records one row a minute.
            tracing::debug!("{}", self.summary());
            let HttpError::Bearer(c) = self else {
                unreachable!()
            };
            return bearer_challenge(&c.error, &c.resource_metadata, &c.scope, c.id, None);
        }
        let reference = Reference::mint();
        let summary = self.summary();
        let mut res = match self {
            HttpError::OAuth(e) => oauth_error(e, &reference),
            HttpError::Page {
                status,
                title,
                detail,
            } => pages::error(status, title, &detail, reference.as_str()),
            HttpError::Json { status, message } => (
                status,
                Json(json!({ "error": message, "reference": reference })),
            )
                .into_response(),
            HttpError::Bearer(c) => bearer_challenge(
                &c.error,
                &c.resource_metadata,
                &c.scope,
                c.id,
                Some(&reference),
            ),
            HttpError::Text { status, message } => {
                (status, format!("{message} (reference {reference})\n")).into_response()
            }
            HttpError::Limited { .. } => unreachable!("handled above"),
        };
        let status = res.status().as_u16();
        tracing::info!(%reference, status, "{summary}");
        res.extensions_mut().insert(ErrorNote {
            reference,
            status,
            summary: summary.into(),
            grant: None,
            upstream: None,
        });
        res
    }
}

const MISSING_TOKEN: &str = "authorization required";

impl HttpError {
    /// One line for the log and the activity log: never a token (none is ever in an
    /// error), and for plumbing failures only the opaque text the client saw.
    fn summary(&self) -> String {
        match self {
            HttpError::OAuth(e) => format!("{}: {}", e.code.as_str(), e.description),
            HttpError::Page { title, detail, .. } => format!("{title}: {detail}"),
            HttpError::Json { message, .. } => message.clone(),
            HttpError::Bearer(c) => bearer_text(&c.error).2.to_owned(),
            HttpError::Text { message, .. } => (*message).to_owned(),
            HttpError::Limited { limited, .. } => limited.to_string(),
        }
    }
}

/// 429 with `Retry-After` (RFC 6585 §4) and a body for who asked.
fn too_many(l: &Limited, body: LimitedBody) -> Response {
    let status = StatusCode::TOO_MANY_REQUESTS;
    let text = format!(
        "too many {} requests; try again in {} s (reference {}; [broker] {})",
        l.kind.as_str(),
        l.retry_after,
        l.reference,
        l.kind.setting()
    );
    let mut res = match body {
        LimitedBody::OAuth => json_no_store(
            status,
            json!({"error": "temporarily_unavailable", "error_description": text, "reference": l.reference}),
        ),
        LimitedBody::Page => pages::error(
            status,
            "Too many sign-in requests",
            &format!("Try again in {} seconds.", l.retry_after),
            l.reference.as_str(),
        ),
        LimitedBody::JsonRpc(id) => (
            status,
            Json(json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {"code": -32000, "message": text, "data": {"reference": l.reference, "retry_after": l.retry_after}},
            })),
        )
            .into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&l.retry_after.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// When a client may try again after a write failed on a full disk.
const RETRY_AFTER_SECS: &str = "30";

fn oauth_error(e: OAuthError, reference: &Reference) -> Response {
    let status = match e.code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut res = json_no_store(
        status,
        json!({
            "error": e.code.as_str(),
            "error_description": format!("{} (reference {reference})", e.description),
            "reference": reference,
        }),
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

/// A 401/403 from the MCP endpoint, pointing at the protected resource metadata.
fn bearer_text(err: &BearerError) -> (StatusCode, Option<&'static str>, &'static str) {
    match err {
        BearerError::Missing => (StatusCode::UNAUTHORIZED, None, MISSING_TOKEN),
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
    }
}

/// Written directly rather than through a JSON tree: this is the answer to every
/// made-up token, which must cost next to nothing.
fn bearer_challenge(
    err: &BearerError,
    resource_metadata: &str,
    needed: &Scopes,
    id: Option<Box<RawValue>>,
    reference: Option<&Reference>,
) -> Response {
    use std::fmt::Write;
    let (status, code, desc) = bearer_text(err);
    let mut v = String::with_capacity(resource_metadata.len() + 160);
    let _ = write!(v, "Bearer resource_metadata=\"{resource_metadata}\"");
    if let Some(c) = code {
        let _ = write!(v, ", error=\"{c}\", error_description=\"{desc}\"");
    }
    // A 403 names what this operation needs, a 401 what any call needs (MCP 2026-07-28
    // basic/authorization §Scope Selection Strategy, §Runtime Insufficient Scope Errors).
    let scope = match err {
        BearerError::InsufficientScope(s) => s,
        _ => needed,
    };
    if !scope.is_empty() {
        let _ = write!(v, ", scope=\"{scope}\"");
    }
    let mut body = Vec::with_capacity(160);
    body.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    body.extend_from_slice(id.as_deref().map_or("null", RawValue::get).as_bytes());
    body.extend_from_slice(br#","error":{"code":-32001,"message":"#);
    let _ = serde_json::to_writer(&mut body, desc);
    if let Some(reference) = reference {
        body.extend_from_slice(br#","data":{"reference":"#);
        let _ = serde_json::to_writer(&mut body, reference.as_str());
        body.push(b'}');
    }
    body.extend_from_slice(b"}}");
    let mut res = Response::new(axum::body::Body::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(hv) = HeaderValue::from_str(&v) {
        h.insert(header::WWW_AUTHENTICATE, hv);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_never_shows_its_cause_to_an_oauth_client() {
        let e = GatewayError::Internal(crate::Error::Io(std::io::Error::other(
            "/secret/path is full",
        )));
        let HttpError::OAuth(o) = HttpError::oauth(e) else {
            panic!("an OAuth client gets OAuth JSON");
        };
        assert_eq!(o.code, ErrorCode::ServerError);
        assert!(!o.description.contains("/secret/path"));
    }

    #[test]
    fn oauth_errors_are_not_cached_and_invalid_client_is_401() {
        let res = HttpError::OAuth(OAuthError::new(ErrorCode::InvalidClient, "x")).into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn a_bearer_challenge_points_at_the_metadata_and_echoes_the_id() {
        let res = HttpError::Bearer(Box::new(BearerChallenge {
            error: BearerError::InvalidToken,
            resource_metadata: "http://127.0.0.1:1/.well-known/oauth-protected-resource/mcp/x"
                .into(),
            scope: Scopes::single("mcp"),
            id: RawValue::from_string("7".into()).ok(),
        }))
        .into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let h = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(h.starts_with("Bearer resource_metadata=\"http://127.0.0.1:1/"));
        assert!(h.contains("error=\"invalid_token\""));
        assert!(h.contains("scope=\"mcp\""), "{h}");
    }
}
