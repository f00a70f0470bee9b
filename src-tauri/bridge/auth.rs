//! The bridge as an OAuth client of the broker, through [`crate::oauth_client`]:
//! discovery of `/mcp/NAME` (RFC 9728, RFC 8414), dynamic registration as a public client
//! (RFC 7591), authorization code + PKCE S256 with a loopback redirect on a port chosen
//! now (RFC 8252 §7.3; the broker matches loopback redirects on any port), `state` and
//! RFC 9207 `iss` checked on the way back, tokens bound to `/mcp/NAME` (RFC 8707),
//! refreshed before they expire and after a 401. The tokens live in the OS keychain.
//!
//! Consent is asked at most once per failure: if the grant is revoked, the next 401
//! leads to one new consent; if that is denied or fails too, requests fail until the
//! next success (or the next launch) instead of opening the browser again and again.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::clock::now;
use crate::oauth::discovery::ServerMetadata;
use crate::oauth_client::loopback::LoopbackRedirect;
use crate::oauth_client::{
    OAuthClientError, PendingAuthorization, Registration, TokenSet, discover, refresh, register,
};
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
    #[error(transparent)]
    OAuth(#[from] OAuthClientError),
    #[error(
        "the broker refused this client's tokens and consent was already asked once; restart the client to ask again"
    )]
    ConsentAlreadyAsked,
    #[error("no tokens to refresh")]
    NothingToRefresh,
    #[error("the keychain task failed: {0}")]
    Task(String),
}

struct State {
    creds: Option<Credentials>,
    /// Set when a consent was asked and no request has succeeded since.
    consent_asked: bool,
}

pub struct Auth {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/mcp/NAME`, the `resource` of every request.
    resource: Url,
    server: ServerMetadata,
    client_name: String,
    keychain: Arc<Vault>,
    key: String,
    state: tokio::sync::Mutex<State>,
}

impl Auth {
    /// Discovers the broker's authorization server for `upstream` and loads the stored
    /// tokens for this broker and upstream from the keychain.
    pub async fn load(
        http: reqwest::Client,
        issuer: &str,
        port: u16,
        upstream: &str,
        client_name: &str,
    ) -> Result<Auth, AuthError> {
        let resource = format!("{issuer}/mcp/{upstream}");
        let resource =
            Url::parse(&resource).map_err(|_| OAuthClientError::BadUrl(resource.clone()))?;
        let found = discover(&http, &resource, None).await?;
        let keychain = Arc::new(Vault::system());
        // One entry per broker port and upstream: tokens are bound to that URL.
        let key = format!("connect.{port}.{upstream}");
        let k = keychain.clone();
        let k2 = key.clone();
        let stored = blocking(move || k.get(&k2).map(|o| o.map(|s| s.expose().clone()))).await?;
        let creds = stored
            .and_then(|s| serde_json::from_str::<Credentials>(&s).ok())
            .filter(|c| c.issuer == found.server.issuer);
        Ok(Auth {
            http,
            resource,
            server: found.server,
            client_name: client_name.to_owned(),
            keychain,
            key,
            state: tokio::sync::Mutex::new(State {
                creds,
                consent_asked: false,
            }),
        })
    }

    pub fn resource(&self) -> &Url {
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
            return Err(AuthError::NothingToRefresh);
        };
        let Some(rt) = &c.refresh_token else {
            return Err(AuthError::NothingToRefresh);
        };
        let mut tok = refresh(
            &self.http,
            &self.server.token_endpoint,
            &c.client_id,
            rt,
            self.resource.as_str(),
        )
        .await?;
        tok.refresh_token = tok.refresh_token.or(c.refresh_token);
        self.store(st, c.client_id, tok).await
    }

    async fn consent(&self, st: &mut State) -> Result<String, AuthError> {
        if st.consent_asked {
            return Err(AuthError::ConsentAlreadyAsked);
        }
        st.consent_asked = true;
        // A fresh registration each time: a stored client id may belong to a broker
        // data dir that no longer exists, and registering grants nothing by itself.
        let client_id = register(
            &self.http,
            &self.server,
            &Registration {
                client_name: &self.client_name,
                redirect_uris: vec!["http://127.0.0.1/callback".into()],
                application_type: Some("native"),
            },
        )
        .await?;
        let loopback = LoopbackRedirect::bind().await?;
        let (url, pending) = PendingAuthorization::start(
            &self.server,
            &client_id,
            loopback.redirect_uri(),
            self.resource.as_str(),
            &[],
        )?;
        eprintln!(
            "mcp-broker connect: approve access in your browser; if it did not open, visit:\n  {url}"
        );
        if let Err(e) = crate::browser::open(url.as_str()) {
            eprintln!("mcp-broker connect: could not open a browser: {e}");
        }
        let code = loopback.code(&pending, CONSENT_WAIT).await?;
        let tok = pending.exchange(&self.http, &code).await?;
        tracing::info!("access approved; tokens stored in the OS keychain");
        self.store(st, client_id, tok).await
    }

    async fn store(
        &self,
        st: &mut State,
        client_id: String,
        tok: TokenSet,
    ) -> Result<String, AuthError> {
        let c = Credentials {
            issuer: self.server.issuer.clone(),
            client_id,
            access_token: tok.access_token,
            refresh_token: tok.refresh_token,
            expires_at: now() + tok.expires_in.map_or(3600, |d| d.as_secs() as i64),
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
        .map_err(|e| AuthError::Task(e.to_string()))?
        .map_err(AuthError::from)
}
