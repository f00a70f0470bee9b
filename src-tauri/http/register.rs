//! `POST /register`: RFC 7591 dynamic client registration. Anyone on this machine may
//! register; registering grants nothing, since every authorization still needs the
//! user's consent.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::response::json_no_store;
use crate::events::GatewayEvent;
use crate::gateway::{Gateway, now};
use crate::oauth::register::{registration_response, validate_registration};
use crate::oauth::{ClientId, ErrorCode, OAuthError, TokenHash, mint_id, mint_secret};

pub async fn register(State(g): State<Gateway>, body: Bytes) -> Response {
    let Ok(json) = serde_json::from_slice::<Value>(&body) else {
        return OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "body must be a JSON object",
        )
        .into_response();
    };
    let reg = match validate_registration(&json) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let client_id = ClientId(format!("mcpb-{}", mint_id(16)));
    let secret = reg.auth_method.is_confidential().then(mint_secret);
    let t = now();
    if let Err(e) = g
        .store
        .insert_client(
            &client_id,
            &reg,
            secret.as_deref().map(TokenHash::of).as_ref(),
            t,
        )
        .await
    {
        return e.into_response();
    }
    tracing::info!(client_id = %client_id, client_name = %reg.client_name, method = reg.auth_method.as_str(), "client registered");
    g.emit(GatewayEvent::ClientRegistered {
        client_id: client_id.0.clone(),
        client_name: reg.client_name.clone(),
    });
    json_no_store(
        StatusCode::CREATED,
        registration_response(&reg, &client_id.0, secret.as_deref(), t),
    )
}
