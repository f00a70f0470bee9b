//! `POST /revoke`: RFC 7009 token revocation, through [`Gateway::revoke_token`] (which
//! revokes the whole grant, so its MCP sessions end too).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::response::{HttpError, no_store};
use crate::gateway::Gateway;

pub async fn revoke(
    State(g): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let (form, authorization) = super::oauth_form(&headers, &body)?;
    g.revoke_token(&form, authorization)
        .await
        .map_err(HttpError::oauth)?;
    Ok(no_store(StatusCode::OK.into_response()))
}
