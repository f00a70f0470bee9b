//! RFC 7591 dynamic client registration as a public client
//! (`token_endpoint_auth_method=none`), as the MCP authorization spec asks of clients
//! that have no pre-registered id.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{OAuthClientError, without_url};
use crate::oauth::discovery::ServerMetadata;

/// The metadata sent (RFC 7591 §2).
pub struct Registration<'a> {
    pub client_name: &'a str,
    pub redirect_uris: Vec<String>,
    /// `native` for a loopback redirect (OpenID Connect Registration §2; the broker
    /// shows it), `None` for a web redirect.
    pub application_type: Option<&'a str>,
}

/// Registers and returns the `client_id`.
pub async fn register(
    http: &reqwest::Client,
    server: &ServerMetadata,
    client: &Registration<'_>,
) -> Result<String, OAuthClientError> {
    let endpoint = server
        .registration_endpoint
        .as_deref()
        .ok_or(OAuthClientError::NoRegistration)?;
    let mut body = json!({
        "client_name": client.client_name,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    if let Some(t) = client.application_type {
        body["application_type"] = Value::from(t);
    }
    let res = http
        .post(endpoint)
        .json(&body)
        .send()
        .await
        .map_err(|e| OAuthClientError::RegistrationRefused(without_url(&e)))?;
    let status = res.status();
    if !status.is_success() {
        let v: Value = res.json().await.unwrap_or(Value::Null);
        let why = v
            .get("error_description")
            .or_else(|| v.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(OAuthClientError::RegistrationRefused(
            format!("HTTP {status} {why}").trim_end().to_owned(),
        ));
    }
    #[derive(Deserialize)]
    struct Registered {
        client_id: String,
    }
    res.json::<Registered>()
        .await
        .map(|r| r.client_id)
        .map_err(|e| OAuthClientError::RegistrationRefused(format!("unusable answer: {e}")))
}
