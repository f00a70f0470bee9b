//! `POST /introspect`: RFC 7662 token introspection, through [`Gateway::introspect`].
//! An unauthenticated caller gets `401 invalid_client`; an authenticated one always gets
//! `200` with at least `active`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::response::{HttpError, json_no_store};
use crate::gateway::Gateway;

pub async fn introspect(
    State(g): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let (form, authorization) = super::oauth_form(&headers, &body)?;
    let answer = g
        .introspect(&form, authorization)
        .await
        .map_err(HttpError::oauth)?;
    Ok(json_no_store(StatusCode::OK, answer))
}
