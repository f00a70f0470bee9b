//! `/mcp/NAME`: checks the bearer token on every request (RFC 6750, RFC 8707 audience),
//! then hands the request to the proxy. Without a valid token: 401 with
//! `WWW-Authenticate: Bearer resource_metadata="..."` (RFC 9728 §5.1), for POST, GET and
//! DELETE alike. Lookups come from a cache that every revocation, from any process, empties
//! (`store::token_cache`), so a revocation takes effect on the next request.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::response::bearer_challenge;
use crate::gateway::{Gateway, now};
use crate::oauth::bearer::{Caller, check_bearer, parse_bearer};
use crate::oauth::{Resource, TokenHash};
use crate::proxy::streamable;

async fn authenticate(
    g: &Gateway,
    name: &str,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Result<Caller, Response> {
    let Some(resource) = g.resource_for(name) else {
        return Err((StatusCode::NOT_FOUND, "no such MCP server\n").into_response());
    };
    let challenge = |e| {
        // Echo the request id so a JSON-RPC client can pair the error with its call.
        let id = body
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|v| v.get("id").cloned());
        bearer_challenge(&e, &prm_url(g, resource), id.as_ref())
    };
    let header_value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = parse_bearer(header_value).map_err(challenge)?;
    let rec = g
        .store
        .access_token(&TokenHash::of(token))
        .await
        .map_err(|e| e.into_response())?;
    let caller = check_bearer(rec.as_deref(), resource, &g.scopes, now()).map_err(challenge)?;
    g.touch_grant(caller.grant_id);
    Ok(caller)
}

fn prm_url(g: &Gateway, resource: &Resource) -> String {
    let path = resource.0.strip_prefix(&g.issuer).unwrap_or("");
    format!("{}/.well-known/oauth-protected-resource{path}", g.issuer)
}

pub async fn post(State(g): State<Gateway>, Path(name): Path<String>, req: Request) -> Response {
    // The headers are moved out rather than cloned (the `HeaderMap` extractor clones):
    // this is the path every proxied call takes.
    let (mut parts, body) = req.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    let body = match Bytes::from_request(Request::from_parts(parts, body), &g).await {
        Ok(b) => b,
        Err(rejection) => return streamable::unreadable_body(rejection.status()),
    };
    match authenticate(&g, &name, &headers, Some(&body)).await {
        Ok(caller) => streamable::post(&g.upstreams, &name, &caller, &headers, body).await,
        Err(r) => r,
    }
}

pub async fn get(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    match authenticate(&g, &name, &headers, None).await {
        Ok(caller) => streamable::get(&g.upstreams, &name, &caller, &headers).await,
        Err(r) => r,
    }
}

pub async fn delete(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    match authenticate(&g, &name, &headers, None).await {
        Ok(caller) => streamable::delete(&g.upstreams, &name, &caller, &headers).await,
        Err(r) => r,
    }
}
