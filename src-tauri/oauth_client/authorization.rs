//! One authorization: the request URL with PKCE S256 (RFC 7636 §4.2), `state` and
//! `resource` (RFC 8707 §2.1); the checks on the redirect's query (RFC 6749 §4.1.2, `iss`
//! per RFC 9207 §2.4); the code exchange (RFC 6749 §4.1.3 with the PKCE verifier and
//! `resource`), and refresh (RFC 6749 §6, `resource` again so the token stays bound).

use std::collections::HashMap;
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponse, BasicTokenResponse};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, HttpClientError, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use url::Url;

use super::OAuthClientError;
use crate::oauth::discovery::{ServerMetadata, check_iss};

/// What a token endpoint answered.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: Option<Duration>,
}

/// An authorization request that was sent to the browser and waits for its answer.
#[derive(Clone)]
pub struct PendingAuthorization {
    pub state: String,
    verifier: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub resource: String,
    pub server: ServerMetadata,
}

impl PendingAuthorization {
    /// The URL to open in the browser, and what is needed to check and redeem the answer.
    pub fn start(
        server: &ServerMetadata,
        client_id: &str,
        redirect_uri: &str,
        resource: &str,
        scopes: &[String],
    ) -> Result<(Url, PendingAuthorization), OAuthClientError> {
        let client = BasicClient::new(ClientId::new(client_id.to_owned()))
            .set_auth_uri(
                AuthUrl::new(server.authorization_endpoint.clone())
                    .map_err(|_| OAuthClientError::BadUrl(server.authorization_endpoint.clone()))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(redirect_uri.to_owned())
                    .map_err(|_| OAuthClientError::BadUrl(redirect_uri.to_owned()))?,
            );
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(CsrfToken::new_random)
            .set_pkce_challenge(challenge)
            .add_extra_param("resource", resource.to_owned());
        for s in scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state) = req.url();
        Ok((
            url,
            PendingAuthorization {
                state: state.secret().clone(),
                verifier: verifier.secret().clone(),
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                resource: resource.to_owned(),
                server: server.clone(),
            },
        ))
    }

    /// The code from the redirect's query, after the checks: `state` is this request's,
    /// `iss` is the server's (RFC 9207: checked before the answer is looked at further),
    /// and the server granted access.
    pub fn code_from(&self, params: &HashMap<String, String>) -> Result<String, OAuthClientError> {
        if params.get("state") != Some(&self.state) {
            return Err(OAuthClientError::WrongState);
        }
        if !check_iss(params.get("iss").map(String::as_str), &self.server) {
            return Err(OAuthClientError::WrongIssuer);
        }
        if let Some(e) = params.get("error") {
            return Err(OAuthClientError::Denied(e.clone()));
        }
        params.get("code").cloned().ok_or(OAuthClientError::NoCode)
    }

    /// Redeems the code (with the PKCE verifier and the same `resource`).
    pub async fn exchange(
        &self,
        http: &reqwest::Client,
        code: &str,
    ) -> Result<TokenSet, OAuthClientError> {
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_token_uri(token_url(&self.server.token_endpoint)?)
            .set_redirect_uri(
                RedirectUrl::new(self.redirect_uri.clone())
                    .map_err(|_| OAuthClientError::BadUrl(self.redirect_uri.clone()))?,
            );
        let res = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(self.verifier.clone()))
            .add_extra_param("resource", self.resource.clone())
            .request_async(http)
            .await;
        token_set(res)
    }
}

/// RFC 6749 §6. A server that does not rotate refresh tokens answers without one: the
/// caller keeps the old one.
pub async fn refresh(
    http: &reqwest::Client,
    token_endpoint: &str,
    client_id: &str,
    refresh_token: &str,
    resource: &str,
) -> Result<TokenSet, OAuthClientError> {
    let client = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_token_uri(token_url(token_endpoint)?);
    let res = client
        .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
        .add_extra_param("resource", resource.to_owned())
        .request_async(http)
        .await;
    token_set(res)
}

fn token_url(endpoint: &str) -> Result<TokenUrl, OAuthClientError> {
    TokenUrl::new(endpoint.to_owned()).map_err(|_| OAuthClientError::BadUrl(endpoint.to_owned()))
}

fn token_set(
    res: Result<
        BasicTokenResponse,
        RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
    >,
) -> Result<TokenSet, OAuthClientError> {
    match res {
        Ok(t) => Ok(TokenSet {
            access_token: t.access_token().secret().clone(),
            refresh_token: t.refresh_token().map(|r| r.secret().clone()),
            expires_in: t.expires_in(),
        }),
        Err(RequestTokenError::ServerResponse(r)) => Err(OAuthClientError::TokenRefused(
            match r.error_description() {
                Some(d) => format!("{}: {d}", r.error()),
                None => r.error().to_string(),
            },
        )),
        Err(RequestTokenError::Request(e)) => Err(OAuthClientError::TokenRequest(e.to_string())),
        Err(RequestTokenError::Parse(e, _)) => Err(OAuthClientError::TokenRequest(format!(
            "unusable answer: {e}"
        ))),
        Err(RequestTokenError::Other(s)) => Err(OAuthClientError::TokenRequest(s)),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::oauth::discovery::sample_server;

    /// A request from client `c1` for `http://127.0.0.1:9/mcp/demo`.
    fn start(iss_supported: bool) -> (Url, PendingAuthorization) {
        PendingAuthorization::start(
            &sample_server(iss_supported, &["S256"]),
            "c1",
            "http://127.0.0.1:5000/callback",
            "http://127.0.0.1:9/mcp/demo",
            &[],
        )
        .unwrap()
    }

    #[test]
    fn the_request_carries_pkce_s256_state_and_resource() {
        let (url, p) = start(true);
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(url.path(), "/authorize");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "c1");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:5000/callback");
        assert_eq!(q["resource"], "http://127.0.0.1:9/mcp/demo");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], p.state);
        assert_eq!(
            q["code_challenge"],
            URL_SAFE_NO_PAD.encode(Sha256::digest(p.verifier.as_bytes()))
        );
        assert!(!q.contains_key("scope"));
        let (_, again) = start(true);
        assert_ne!(p.state, again.state);
        assert_ne!(p.verifier, again.verifier);
    }

    #[test]
    fn the_answer_is_checked_state_then_iss_then_error() {
        let outcome = |p: &PendingAuthorization, pairs: &[(&str, &str)]| {
            let q: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.replace("STATE", &p.state), v.replace("STATE", &p.state)))
                .collect();
            match p.code_from(&q) {
                Ok(code) => format!("code {code}"),
                Err(OAuthClientError::WrongState) => "wrong state".into(),
                Err(OAuthClientError::WrongIssuer) => "wrong issuer".into(),
                Err(OAuthClientError::Denied(e)) => format!("denied {e}"),
                Err(OAuthClientError::NoCode) => "no code".into(),
                Err(e) => format!("{e}"),
            }
        };
        let (iss, evil) = ("http://127.0.0.1:9", "http://evil");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("state", "STATE"), ("iss", iss), ("code", "abc")],
                "code abc",
            ),
            (
                &[("state", "other"), ("iss", iss), ("code", "abc")],
                "wrong state",
            ),
            (&[("iss", iss), ("code", "abc")], "wrong state"),
            (
                &[("state", "STATE"), ("iss", evil), ("code", "abc")],
                "wrong issuer",
            ),
            // The server promised `iss`: an answer without it is not trusted.
            (&[("state", "STATE"), ("code", "abc")], "wrong issuer"),
            (
                &[
                    ("state", "STATE"),
                    ("iss", evil),
                    ("error", "access_denied"),
                ],
                "wrong issuer",
            ),
            (
                &[("state", "STATE"), ("iss", iss), ("error", "access_denied")],
                "denied access_denied",
            ),
            (&[("state", "STATE"), ("iss", iss)], "no code"),
        ];
        let (_, p) = start(true);
        for (pairs, want) in cases {
            assert_eq!(outcome(&p, pairs), *want, "{pairs:?}");
        }
        // A server that did not promise `iss` may leave it out.
        let (_, no_iss) = start(false);
        assert_eq!(
            outcome(&no_iss, &[("state", "STATE"), ("code", "x")]),
            "code x"
        );
    }
}
