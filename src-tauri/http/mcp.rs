//! `/mcp/NAME`: every request is authenticated by [`Gateway::authenticate`] (RFC 6750,
//! RFC 8707 audience), then handed to the proxy's Streamable HTTP transport. Without a
//! valid token: 401 with `WWW-Authenticate: Bearer resource_metadata="..."` (RFC 9728
//! §5.1), for POST, GET and DELETE alike.

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::value::RawValue;

use super::response::{BearerChallenge, HttpError, LimitedBody};
use crate::activity::ErrorNote;
use crate::gateway::Gateway;
use crate::gateway::mcp::McpRefusal;
use crate::oauth::bearer::Caller;
use crate::proxy::streamable;

/// The `id` of a JSON-RPC request body as its JSON text, read without building the rest
/// of it: this is on the refusal path, which a flood of made-up tokens exercises.
fn request_id(body: &Bytes) -> Option<Box<RawValue>> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    // serde reads a struct from an array too; a batch has no one id.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<Id>(body)
        .ok()?
        .id
        .map(ToOwned::to_owned)
}

async fn authenticate(
    g: &Gateway,
    name: &str,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Result<Caller, HttpError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    g.authenticate(name, authorization)
        .await
        .map_err(|refusal| match refusal {
            McpRefusal::UnknownUpstream => {
                HttpError::text(StatusCode::NOT_FOUND, "no such MCP server")
            }
            McpRefusal::RemovedUpstream => HttpError::text(
                StatusCode::NOT_FOUND,
                "this MCP server was removed from the broker's configuration; add it again to use it",
            ),
            McpRefusal::Bearer {
                error,
                resource_metadata,
                scope,
            } => HttpError::Bearer(Box::new(BearerChallenge {
                error,
                resource_metadata,
                scope,
                // Echo the request id so a JSON-RPC client can pair the error with its call.
                id: body.and_then(request_id),
            })),
            McpRefusal::RateLimited(limited) => HttpError::Limited {
                limited,
                body: LimitedBody::JsonRpc(body.and_then(request_id)),
            },
            McpRefusal::Internal(e) => HttpError::oauth(e.into()),
        })
}

/// A refusal the proxy rendered is a refused call of this grant in the activity log.
fn attribute(mut res: Response, caller: &Caller, upstream: &str) -> Response {
    if let Some(note) = res.extensions_mut().get_mut::<ErrorNote>() {
        note.grant = Some(caller.grant_id);
        note.upstream = Some(upstream.into());
    }
    res
}

pub async fn post(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, HttpError> {
    // The headers are moved out rather than cloned (the `HeaderMap` extractor clones):
    // this is the path every proxied call takes.
    let (mut parts, body) = req.into_parts();
    let headers = std::mem::take(&mut parts.headers);
    let body = match Bytes::from_request(Request::from_parts(parts, body), &g).await {
        Ok(b) => b,
        Err(rejection) => return Ok(streamable::unreadable_body(rejection.status())),
    };
    let caller = authenticate(&g, &name, &headers, Some(&body)).await?;
    let res = streamable::post(g.upstreams(), &name, &caller, &headers, body).await;
    Ok(attribute(res, &caller, &name))
}

pub async fn get(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let caller = authenticate(&g, &name, &headers, None).await?;
    let res = streamable::get(g.upstreams(), &name, &caller, &headers).await;
    Ok(attribute(res, &caller, &name))
}

pub async fn delete(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let caller = authenticate(&g, &name, &headers, None).await?;
    let res = streamable::delete(g.upstreams(), &name, &caller, &headers).await;
    Ok(attribute(res, &caller, &name))
}
