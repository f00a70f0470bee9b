//! The bridge as an OAuth client of the broker: dynamic registration as a public client
//! (RFC 7591, `token_endpoint_auth_method=none`), authorization code + PKCE S256 with a
//! loopback redirect on a port chosen now (RFC 8252 §7.3; the broker matches loopback
//! redirects on any port), `state` and RFC 9207 `iss` checked on the way back, tokens
//! bound to `/mcp/NAME` (RFC 8707), refreshed before they expire and after a 401.
//!
//! Consent is asked at most once per failure: if the grant is revoked, the next 401
//! leads to one new consent; if that is denied or fails too, requests fail until the
//! next success (or the next launch) instead of opening the browser again and again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::clock::now;
use crate::oauth::mint_secret;
use crate::vault::{Secret, Vault, VaultError};

/// Refresh when less than this is left of the access token's life.
const REFRESH_MARGIN_SECS: i64 = 60;
/// The broker forgets an unanswered consent after five minutes.
const CONSENT_WAIT: Duration = Duration::from_secs(300);

/// What is kept in the keychain, as one JSON value under one entry.
#[derive(Clone, Serialize, Deserialize)]
struct Credentials {
    issuer: String,
    client_id: String,
    access_token: String,
    refresh_token: Option<String>,
    expires_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Keychain(#[from] VaultError),
    #[error("access was not granted: {0}")]
    Denied(String),
    #[error("no answer from the consent page within five minutes")]
    ConsentTimeout,
    #[error(
        "the broker refused this client's tokens and consent was already asked once; restart the client to ask again"
    )]
    ConsentAlreadyAsked,
    #[error("{0}")]
    Protocol(String),
}

struct State {
    creds: Option<Credentials>,
    /// Set when a consent was asked and no request has succeeded since.
    consent_asked: bool,
}

pub struct Auth {
    http: reqwest::Client,
    issuer: String,
    resource: String,
    client_name: String,
    keychain: Arc<Vault>,
    key: String,
    state: tokio::sync::Mutex<State>,
}

impl Auth {
    /// Loads stored tokens for this broker and upstream from the keychain.
    pub async fn load(
        http: reqwest::Client,
        issuer: &str,
        port: u16,
        upstream: &str,
        client_name: &str,
    ) -> Result<Auth, AuthError> {
        let keychain = Arc::new(Vault::system());
        // One entry per broker port and upstream: tokens are bound to that URL.
        let key = format!("connect.{port}.{upstream}");
        let k = keychain.clone();
        let k2 = key.clone();
        let stored = blocking(move || k.get(&k2).map(|o| o.map(|s| s.expose().clone()))).await?;
        let creds = stored
            .and_then(|s| serde_json::from_str::<Credentials>(&s).ok())
            .filter(|c| c.issuer == issuer);
        Ok(Auth {
            http,
            issuer: issuer.to_owned(),
            resource: format!("{issuer}/mcp/{upstream}"),
            client_name: client_name.to_owned(),
            keychain,
            key,
            state: tokio::sync::Mutex::new(State {
                creds,
                consent_asked: false,
            }),
        })
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// A usable access token: the stored one, refreshed when it is about to expire, or
    /// a new one after consent when there is none.
    pub async fn access_token(&self) -> Result<String, AuthError> {
        let mut st = self.state.lock().await;
        match &st.creds {
            Some(c) if c.expires_at - now() > REFRESH_MARGIN_SECS => {
                return Ok(c.access_token.clone());
            }
            Some(_) => {
                if let Ok(t) = self.refresh(&mut st).await {
                    return Ok(t);
                }
            }
            None => {}
        }
        self.consent(&mut st).await
    }

    /// After a 401 for `failed`: refresh, or (once) ask for consent again.
    pub async fn recover(&self, failed: &str) -> Result<String, AuthError> {
        let mut st = self.state.lock().await;
        if let Some(c) = &st.creds
            && c.access_token != failed
        {
            // Another request already renewed it.
            return Ok(c.access_token.clone());
        }
        match self.refresh(&mut st).await {
            Ok(t) => Ok(t),
            Err(e) => {
                tracing::info!("refreshing failed ({e}); asking for consent again");
                self.consent(&mut st).await
            }
        }
    }

    /// A request went through: a later failure may ask for consent again.
    pub async fn succeeded(&self) {
        let mut st = self.state.lock().await;
        st.consent_asked = false;
    }

    async fn refresh(&self, st: &mut State) -> Result<String, AuthError> {
        let Some(c) = st.creds.clone() else {
            return Err(AuthError::Protocol("no tokens".into()));
        };
        let Some(rt) = &c.refresh_token else {
            return Err(AuthError::Protocol("no refresh token".into()));
        };
        let tok = self
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", &c.client_id),
                ("resource", &self.resource),
            ])
            .await?;
        self.store(st, c.client_id, tok).await
    }

    async fn consent(&self, st: &mut State) -> Result<String, AuthError> {
        if st.consent_asked {
            return Err(AuthError::ConsentAlreadyAsked);
        }
        st.consent_asked = true;
        // A fresh registration each time: a stored client id may belong to a broker
        // data dir that no longer exists, and registering grants nothing by itself.
        let client_id = self.register().await?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| AuthError::Protocol(format!("cannot listen on 127.0.0.1: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| AuthError::Protocol(e.to_string()))?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}/callback");
        let verifier = mint_secret();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = mint_secret();
        let mut url = url::Url::parse(&format!("{}/authorize", self.issuer))
            .map_err(|e| AuthError::Protocol(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", &self.resource);
        eprintln!(
            "mcp-broker connect: approve access in your browser; if it did not open, visit:\n  {url}"
        );
        if let Err(e) = crate::browser::open(url.as_str()) {
            eprintln!("mcp-broker connect: could not open a browser: {e}");
        }
        let code =
            tokio::time::timeout(CONSENT_WAIT, wait_for_code(&listener, &state, &self.issuer))
                .await
                .map_err(|_| AuthError::ConsentTimeout)??;
        let tok = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", &verifier),
                ("client_id", &client_id),
                ("resource", &self.resource),
            ])
            .await?;
        tracing::info!("access approved; tokens stored in the OS keychain");
        self.store(st, client_id, tok).await
    }

    async fn register(&self) -> Result<String, AuthError> {
        let body = serde_json::json!({
            "client_name": self.client_name,
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "application_type": "native",
        });
        let r = self
            .http
            .post(format!("{}/register", self.issuer))
            .json(&body)
            .send()
            .await
            .map_err(|e| AuthError::Protocol(format!("registering with the broker failed: {e}")))?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        match v.get("client_id").and_then(Value::as_str) {
            Some(id) if status.is_success() => Ok(id.to_owned()),
            _ => Err(AuthError::Protocol(format!(
                "registering with the broker failed: HTTP {status} {}",
                v.get("error_description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ))),
        }
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Value, AuthError> {
        let r = self
            .http
            .post(format!("{}/token", self.issuer))
            .form(form)
            .send()
            .await
            .map_err(|e| AuthError::Protocol(format!("token request failed: {e}")))?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() && v.get("access_token").and_then(Value::as_str).is_some() {
            Ok(v)
        } else {
            Err(AuthError::Protocol(format!(
                "token request refused: {} {}",
                v.get("error").and_then(Value::as_str).unwrap_or("?"),
                v.get("error_description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )))
        }
    }

    async fn store(
        &self,
        st: &mut State,
        client_id: String,
        tok: Value,
    ) -> Result<String, AuthError> {
        let c = Credentials {
            issuer: self.issuer.clone(),
            client_id,
            access_token: tok["access_token"].as_str().unwrap_or_default().to_owned(),
            refresh_token: tok["refresh_token"].as_str().map(str::to_owned),
            expires_at: now() + tok["expires_in"].as_i64().unwrap_or(3600),
        };
        let json = serde_json::to_string(&c).unwrap_or_default();
        let k = self.keychain.clone();
        let key = self.key.clone();
        blocking(move || k.set(&key, &Secret::new(json))).await?;
        let t = c.access_token.clone();
        st.creds = Some(c);
        Ok(t)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuthError::Protocol(e.to_string()))?
        .map_err(AuthError::from)
}

/// Serves the loopback redirect until the right `state` comes back with a code or an
/// error. Other requests (favicon, a stale tab) get a 404 or 400 and are ignored.
async fn wait_for_code(
    listener: &TcpListener,
    state: &str,
    issuer: &str,
) -> Result<String, AuthError> {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let mut req = Vec::new();
        let mut buf = [0u8; 2048];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
            match tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => req.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let head = String::from_utf8_lossy(&req);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("/");
        let url = url::Url::parse(&format!("http://127.0.0.1{target}")).ok();
        let q: HashMap<String, String> = url
            .as_ref()
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default();
        let reply = |status: &str, text: &str| {
            let body = format!(
                "<!doctype html><meta charset=utf-8><title>mcp-broker</title><p style=\"font:16px system-ui;margin:3rem\">{text}</p>"
            );
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        if url.as_ref().map(|u| u.path()) != Some("/callback") {
            let _ = sock
                .write_all(reply("404 Not Found", "Not found.").as_bytes())
                .await;
            continue;
        }
        if q.get("state").map(String::as_str) != Some(state) {
            let _ = sock
                .write_all(
                    reply(
                        "400 Bad Request",
                        "This answer is not for the current request.",
                    )
                    .as_bytes(),
                )
                .await;
            continue;
        }
        // RFC 9207 §2.4: the issuer must be the one the request went to.
        if let Some(iss) = q.get("iss")
            && iss != issuer
        {
            let _ = sock
                .write_all(
                    reply("400 Bad Request", "The answer came from another issuer.").as_bytes(),
                )
                .await;
            return Err(AuthError::Protocol(
                "authorization response from another issuer".into(),
            ));
        }
        if let Some(err) = q.get("error") {
            let _ = sock
                .write_all(
                    reply("200 OK", "Access was not granted. You can close this tab.").as_bytes(),
                )
                .await;
            return Err(AuthError::Denied(err.clone()));
        }
        if let Some(code) = q.get("code") {
            let _ = sock
                .write_all(
                    reply(
                        "200 OK",
                        "Access approved. You can close this tab and return to your application.",
                    )
                    .as_bytes(),
                )
                .await;
            return Ok(code.clone());
        }
        let _ = sock
            .write_all(reply("400 Bad Request", "Missing code.").as_bytes())
            .await;
    }
}
