//! The broker as an OAuth client of a remote upstream (MCP authorization spec; RFC 9728
//! and RFC 8414 discovery, RFC 7591 registration, PKCE S256 per RFC 7636, `resource` per
//! RFC 8707, `iss` per RFC 9207, revocation per RFC 7009) through [`crate::oauth_client`],
//! the OAuth client the stdio bridge uses too. Revocation is a plain reqwest call (see
//! [`UpstreamOAuth::logout`]).
//!
//! Sign-in is started by `mcp-broker upstream login NAME` (through the running broker,
//! because the redirect comes back to the broker itself: `/upstream-callback/NAME`). The
//! tokens live in the keychain under `oauth:NAME`, never in SQLite, logs or a client's
//! view. Each upstream has one async lock around its tokens: a refresh (before expiry, or
//! once after a 401) happens under it, so concurrent sessions never race two refreshes
//! with a rotating refresh token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::clock::now;
use crate::oauth::discovery::{check_url, resource_metadata_param};
use crate::oauth_client::{PendingAuthorization, Registration, discover, refresh, register};
use crate::vault::{Secret, Vault};

/// When to refresh a token that lives `secs`: 30 s before it expires, or after three
/// quarters of its life for short-lived tokens.
fn refresh_at(secs: Option<Duration>) -> Option<i64> {
    let secs = secs?.as_secs() as i64;
    Some(now() + (secs - 30).max(secs * 3 / 4))
}
/// A sign-in not finished within this time is dropped.
const LOGIN_TTL: Duration = Duration::from_secs(600);

/// What the keychain entry `oauth:NAME` holds (as JSON).
#[derive(Clone, Serialize, Deserialize)]
struct Tokens {
    access_token: String,
    refresh_token: Option<String>,
    /// Unix time after which the access token is refreshed before use.
    refresh_at: Option<i64>,
    client_id: String,
    token_endpoint: String,
    revocation_endpoint: Option<String>,
    resource: String,
}

struct Pending {
    upstream: String,
    authorization: PendingAuthorization,
    started: Instant,
}

/// Where a sign-in stands, for `upstream login` to poll.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum LoginState {
    Pending,
    Done,
    Failed(String),
}

#[derive(Default)]
struct Slot {
    loaded: bool,
    tokens: Option<Tokens>,
}

pub struct UpstreamOAuth {
    vault: Arc<Vault>,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`, known once the gateway has bound its port.
    base: OnceLock<String>,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
    pending: Mutex<HashMap<String, Pending>>,
    logins: Mutex<HashMap<String, LoginState>>,
}

/// Why the broker has no usable sign-in to a remote upstream, by kind: the desktop
/// window offers "Sign in" on exactly `NeedsSignIn`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamAuthError {
    #[error("upstream {} needs sign-in: run `mcp-broker upstream login {}`", shown(.0), login_args(.0))]
    NeedsSignIn(String),
    /// The OS keychain refused or did not answer (the message says what to do).
    #[error("{0}")]
    Keychain(String),
    /// The upstream or its authorization server was unreachable or refused.
    #[error("{0}")]
    Refused(String),
}

/// A sign-in id as a person reads it: `gh (account work)`.
fn shown(id: &str) -> String {
    match crate::config::split_sign_in_id(id) {
        (u, Some(a)) => format!("{u} (account {a})"),
        (u, None) => u.to_owned(),
    }
}

/// The arguments of `mcp-broker upstream login` for a sign-in id.
fn login_args(id: &str) -> String {
    match crate::config::split_sign_in_id(id) {
        (u, Some(a)) => format!("{u} --account {a}"),
        (u, None) => u.to_owned(),
    }
}

/// The answer of [`UpstreamOAuth::bearer`] when there is no usable token.
pub fn sign_in_needed(upstream: &str) -> UpstreamAuthError {
    UpstreamAuthError::NeedsSignIn(upstream.to_owned())
}

fn refused(e: impl std::fmt::Display) -> UpstreamAuthError {
    UpstreamAuthError::Refused(e.to_string())
}

fn key(upstream: &str) -> String {
    format!("oauth:{upstream}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl UpstreamOAuth {
    pub fn new(vault: Arc<Vault>, http: reqwest::Client) -> UpstreamOAuth {
        UpstreamOAuth {
            vault,
            http,
            base: OnceLock::new(),
            slots: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_base(&self, base: &str) {
        let _ = self.base.set(base.to_owned());
    }

    fn slot(&self, upstream: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = lock(&self.slots);
        // Every proxied message asks: no key copy once the slot exists.
        if let Some(s) = slots.get(upstream) {
            return s.clone();
        }
        slots.entry(upstream.to_owned()).or_default().clone()
    }

    async fn vault_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Vault) -> Result<T, crate::vault::VaultError> + Send + 'static,
    ) -> Result<T, UpstreamAuthError> {
        let vault = self.vault.clone();
        match tokio::time::timeout(
            Duration::from_secs(20),
            tokio::task::spawn_blocking(move || f(&vault)),
        )
        .await
        {
            Ok(Ok(r)) => r.map_err(|e| UpstreamAuthError::Keychain(e.to_string())),
            Ok(Err(e)) => Err(UpstreamAuthError::Keychain(format!(
                "the keychain task failed: {e}"
            ))),
            Err(_) => Err(UpstreamAuthError::Keychain(
                "the OS keychain did not answer within 20 seconds".into(),
            )),
        }
    }

    async fn load(&self, upstream: &str, slot: &mut Slot) -> Result<(), UpstreamAuthError> {
        if slot.loaded {
            return Ok(());
        }
        let k = key(upstream);
        let raw = self.vault_call(move |v| v.get(&k)).await?;
        slot.tokens = raw.and_then(|s| serde_json::from_str(s.expose()).ok());
        slot.loaded = true;
        Ok(())
    }

    async fn save(&self, upstream: &str, tokens: &Tokens) -> Result<(), UpstreamAuthError> {
        let k = key(upstream);
        let json = Secret::new(serde_json::to_string(tokens).map_err(refused)?);
        self.vault_call(move |v| v.set(&k, &json)).await
    }

    /// The access token to send, refreshed first when it is about to expire. `Ok(None)`:
    /// no sign-in known yet (the upstream may not need one; if it does, its 401 loads the
    /// stored tokens through [`UpstreamOAuth::after_unauthorized`]).
    pub async fn bearer(
        &self,
        upstream: &str,
    ) -> Result<Option<Secret<String>>, UpstreamAuthError> {
        let slot = self.slot(upstream);
        let mut slot = slot.lock().await;
        // The keychain is read only once this upstream has asked for sign-in (a 401, see
        // `after_unauthorized`) or a sign-in happened here: upstreams without OAuth must
        // work on a machine with no keychain at all.
        if !slot.loaded {
            return Ok(None);
        }
        let Some(t) = slot.tokens.clone() else {
            return Ok(None);
        };
        if t.refresh_at.is_some_and(|r| r <= now()) && t.refresh_token.is_some() {
            let fresh = self.refresh(upstream, &t).await?;
            let access = fresh.access_token.clone();
            slot.tokens = Some(fresh);
            return Ok(Some(Secret::new(access)));
        }
        Ok(Some(Secret::new(t.access_token)))
    }

    /// After a 401 to `used`: refresh once, unless another session already did. `Err`
    /// when sign-in is needed.
    pub async fn after_unauthorized(
        &self,
        upstream: &str,
        used: Option<&Secret<String>>,
    ) -> Result<Secret<String>, UpstreamAuthError> {
        let slot = self.slot(upstream);
        let mut slot = slot.lock().await;
        self.load(upstream, &mut slot).await?;
        let Some(t) = slot.tokens.clone() else {
            return Err(sign_in_needed(upstream));
        };
        if used.is_none_or(|u| u.expose() != &t.access_token) {
            return Ok(Secret::new(t.access_token));
        }
        if t.refresh_token.is_none() {
            return Err(sign_in_needed(upstream));
        }
        let fresh = self.refresh(upstream, &t).await.map_err(|e| {
            tracing::warn!(upstream, "refreshing the upstream token failed: {e}");
            sign_in_needed(upstream)
        })?;
        let access = fresh.access_token.clone();
        slot.tokens = Some(fresh);
        Ok(Secret::new(access))
    }

    async fn refresh(&self, upstream: &str, t: &Tokens) -> Result<Tokens, UpstreamAuthError> {
        let Some(rt) = &t.refresh_token else {
            return Err(sign_in_needed(upstream));
        };
        let res = refresh(&self.http, &t.token_endpoint, &t.client_id, rt, &t.resource)
            .await
            .map_err(|e| refused(format!("the upstream refused to refresh the sign-in: {e}")))?;
        let fresh = Tokens {
            access_token: res.access_token,
            // RFC 6749 §6: a server that does not rotate keeps the old refresh token valid.
            refresh_token: res.refresh_token.or_else(|| t.refresh_token.clone()),
            refresh_at: refresh_at(res.expires_in),
            ..t.clone()
        };
        self.save(upstream, &fresh).await?;
        tracing::info!(upstream, "refreshed the upstream sign-in");
        Ok(fresh)
    }

    /// Whether the keychain holds tokens for this upstream (read once, then cached like
    /// every other use).
    pub async fn signed_in(&self, upstream: &str) -> Result<bool, UpstreamAuthError> {
        let slot = self.slot(upstream);
        let mut slot = slot.lock().await;
        self.load(upstream, &mut slot).await?;
        Ok(slot.tokens.is_some())
    }

    pub fn login_state(&self, upstream: &str) -> Option<LoginState> {
        lock(&self.logins).get(upstream).cloned()
    }

    /// Discovers the upstream's authorization server from its 401, registers if needed,
    /// and returns the URL to open in the browser.
    pub async fn start_login(
        &self,
        upstream: &str,
        url: &Url,
        client_id: Option<&str>,
    ) -> Result<String, UpstreamAuthError> {
        let base = self
            .base
            .get()
            .ok_or_else(|| refused("the broker is not serving yet"))?;
        let probe = self
            .http
            .post(url.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)
            .send()
            .await
            .map_err(|e| refused(format!("the upstream is unreachable: {e}")))?;
        if probe.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Err(refused(format!(
                "the upstream did not ask for sign-in (HTTP {})",
                probe.status()
            )));
        }
        let hint = probe
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(resource_metadata_param)
            .map(|s| check_url("the resource_metadata URL", &s).map_err(refused))
            .transpose()?;
        let found = discover(&self.http, url, hint).await.map_err(refused)?;

        let redirect_uri = format!("{base}/upstream-callback/{upstream}");
        let client_id = match client_id {
            Some(c) => c.to_owned(),
            None => register(
                &self.http,
                &found.server,
                &Registration {
                    client_name: "mcp-broker",
                    redirect_uris: vec![redirect_uri.clone()],
                    application_type: None,
                },
            )
            .await
            .map_err(refused)?,
        };
        let (auth_url, authorization) = PendingAuthorization::start(
            &found.server,
            &client_id,
            &redirect_uri,
            &found.resource.resource,
            &found.resource.scopes_supported,
        )
        .map_err(refused)?;
        {
            let mut p = lock(&self.pending);
            p.retain(|_, v| v.started.elapsed() < LOGIN_TTL);
            p.insert(
                authorization.state.clone(),
                Pending {
                    upstream: upstream.to_owned(),
                    authorization,
                    started: Instant::now(),
                },
            );
        }
        lock(&self.logins).insert(upstream.to_owned(), LoginState::Pending);
        tracing::info!(upstream, "upstream sign-in started");
        Ok(auth_url.to_string())
    }

    /// The browser's return to `/upstream-callback/NAME`: checks `state` and `iss`,
    /// exchanges the code, stores the tokens.
    pub async fn finish_login(
        &self,
        upstream: &str,
        params: &HashMap<String, String>,
    ) -> Result<(), UpstreamAuthError> {
        let state = params.get("state").map(String::as_str).unwrap_or("");
        let pending = {
            let mut p = lock(&self.pending);
            match p.get(state) {
                Some(v) if v.upstream == upstream && v.started.elapsed() < LOGIN_TTL => {
                    p.remove(state)
                }
                _ => None,
            }
        };
        let Some(pending) = pending else {
            return Err(refused(
                "this sign-in is unknown or expired; start again with `mcp-broker upstream login`",
            ));
        };
        let result = self.exchange(upstream, &pending, params).await;
        let st = match &result {
            Ok(()) => LoginState::Done,
            Err(e) => LoginState::Failed(e.to_string()),
        };
        lock(&self.logins).insert(upstream.to_owned(), st);
        result
    }

    async fn exchange(
        &self,
        upstream: &str,
        p: &Pending,
        params: &HashMap<String, String>,
    ) -> Result<(), UpstreamAuthError> {
        let p = &p.authorization;
        let code = p.code_from(params).map_err(refused)?;
        let res = p
            .exchange(&self.http, &code)
            .await
            .map_err(|e| refused(format!("the code exchange failed: {e}")))?;
        let tokens = Tokens {
            access_token: res.access_token,
            refresh_token: res.refresh_token,
            refresh_at: refresh_at(res.expires_in),
            client_id: p.client_id.clone(),
            token_endpoint: p.server.token_endpoint.clone(),
            revocation_endpoint: p.server.revocation_endpoint.clone(),
            resource: p.resource.clone(),
        };
        let slot = self.slot(upstream);
        let mut slot = slot.lock().await;
        self.save(upstream, &tokens).await?;
        slot.tokens = Some(tokens);
        slot.loaded = true;
        tracing::info!(upstream, "signed in to the upstream");
        Ok(())
    }

    /// Revokes the tokens where the server offers RFC 7009, then deletes them. Returns
    /// whether there was a sign-in.
    pub async fn logout(&self, upstream: &str) -> Result<bool, UpstreamAuthError> {
        let slot = self.slot(upstream);
        let mut slot = slot.lock().await;
        slot.loaded = false;
        self.load(upstream, &mut slot).await?;
        let Some(t) = slot.tokens.take() else {
            return Ok(false);
        };
        if let Some(rev) = &t.revocation_endpoint {
            // RFC 7009 §2.1 by hand: oauth2's `revoke_token` refuses http URLs, and a
            // loopback upstream (allowed by the config) is http.
            let (token, hint) = match &t.refresh_token {
                Some(r) => (r.as_str(), "refresh_token"),
                None => (t.access_token.as_str(), "access_token"),
            };
            let res = self
                .http
                .post(rev)
                .form(&[
                    ("token", token),
                    ("token_type_hint", hint),
                    ("client_id", t.client_id.as_str()),
                ])
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(upstream, status = %r.status(), "the upstream did not accept the revocation")
                }
                Err(e) => tracing::warn!(
                    upstream,
                    "the revocation request failed: {}",
                    e.without_url()
                ),
            }
        }
        let k = key(upstream);
        self.vault_call(move |v| v.delete(&k)).await?;
        lock(&self.logins).remove(upstream);
        tracing::info!(upstream, "signed out of the upstream");
        Ok(true)
    }
}

#[cfg(test)]
mod account_tests {
    use super::*;

    #[test]
    fn each_account_signs_in_under_its_own_keychain_entry_and_says_which() {
        assert_eq!(
            key("notion"),
            "oauth:notion",
            "the implicit account keeps its entry"
        );
        assert_eq!(key("notion:acme"), "oauth:notion:acme");
        assert_eq!(
            sign_in_needed("notion:acme").to_string(),
            "upstream notion (account acme) needs sign-in: run `mcp-broker upstream login notion --account acme`"
        );
        assert_eq!(
            sign_in_needed("notion").to_string(),
            "upstream notion needs sign-in: run `mcp-broker upstream login notion`"
        );
    }
}
