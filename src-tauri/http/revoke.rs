//! `POST /revoke`: RFC 7009 token revocation. Revoking either token of a grant revokes
//! the grant (the client is signing out), through the same `Gateway::revoke_grant` the
//! user's revoke uses, so its MCP sessions end too.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::events::RevokeReason;
use crate::gateway::Gateway;
use crate::oauth::token::{authenticate_client, client_credentials, single_params};
use crate::oauth::{OAuthError, TokenHash};

pub async fn revoke(State(g): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(form) = super::form_pairs(&headers, &body) else {
        return OAuthError::invalid_request("the body must be application/x-www-form-urlencoded")
            .into_response();
    };
    let params = match single_params(&form) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let creds = match client_credentials(&params, authorization) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let client = match g.store.client(&creds.client_id).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let client_id = match authenticate_client(client.as_ref(), &creds) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let Some(token) = params.get("token") else {
        return OAuthError::invalid_request("token is required").into_response();
    };
    match g.store.token_owner(&TokenHash::of(token)).await {
        // RFC 7009 §2.2: an invalid or unknown token is not an error. A token of another
        // client is treated the same, so this endpoint cannot probe other clients' tokens.
        Ok(Some((grant, owner))) if owner == client_id => {
            if let Err(e) = g.revoke_grant(grant, RevokeReason::Client).await {
                return e.into_response();
            }
        }
        Ok(_) => {}
        Err(e) => return e.into_response(),
    }
    super::response::no_store(StatusCode::OK.into_response())
}
