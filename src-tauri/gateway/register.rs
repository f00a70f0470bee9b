//! Dynamic client registration (RFC 7591 §3). Anyone on this machine may register;
//! registering grants nothing, since every authorization still needs the person's consent.

use serde_json::Value;

use crate::clock::now;
use crate::oauth::register::{registration_response, validate_registration};
use crate::oauth::{ClientId, ErrorCode, OAuthError, TokenHash, mint_id, mint_secret};

use super::{Gateway, GatewayError};

impl Gateway {
    /// `POST /register` with its JSON body; returns the registration response (§3.2.1).
    pub async fn register(&self, body: &[u8]) -> Result<Value, GatewayError> {
        let json = serde_json::from_slice::<Value>(body).map_err(|_| {
            OAuthError::new(
                ErrorCode::InvalidClientMetadata,
                "body must be a JSON object",
            )
        })?;
        let reg = validate_registration(&json)?;
        self.limit(self.inner.limits.registration(&reg.client_name), None, None)?;
        let client_id = ClientId(format!("mcpb-{}", mint_id(16)));
        let secret = reg.auth_method.is_confidential().then(mint_secret);
        let t = now();
        self.inner
            .store
            .insert_client(
                &client_id,
                &reg,
                secret.as_deref().map(TokenHash::of).as_ref(),
                t,
            )
            .await?;
        tracing::info!(client_id = %client_id, client_name = %reg.client_name, method = reg.auth_method.as_str(), "client registered");
        self.record_registered(&client_id.0, &reg.client_name);
        Ok(registration_response(
            &reg,
            &client_id.0,
            secret.as_deref(),
            t,
        ))
    }
}
