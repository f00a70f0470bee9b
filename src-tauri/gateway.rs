//! `Gateway`: the one handle the HTTP layer, the CLI and the desktop shell hold. It owns
//! the configuration, the store, pending consents, the upstream sessions and the event
//! channel, and it implements the user-level operations (list grants, revoke a grant).
//!
//! There is one revocation path: the tray, the grants window, `grants revoke`, `/revoke`
//! and replay detection all end in [`Gateway::revoke_grant`] (or, for a revocation made
//! by another process, in the watcher that notices it).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::client_metadata::ClientMetadataDocuments;
use crate::config::Config;
use crate::consent::{ConsentBroker, ConsentMode};
use crate::error::Result;
use crate::events::{GatewayEvent, RevokeReason};
use crate::oauth::authorize::AuthorizeContext;
use crate::oauth::{DEFAULT_SCOPE, GrantId, Resource, Scopes, UnixTime};
use crate::proxy::Upstreams;
use crate::store::{GrantSummary, Store};
use crate::vault::Vault;

/// Seconds since the epoch: the one place the broker reads the wall clock.
pub fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub config: Config,
    pub port: u16,
    /// `http://127.0.0.1:PORT`, spelled the same in every document and redirect.
    pub issuer: String,
    pub data_dir: PathBuf,
    pub store: Store,
    pub consent: ConsentBroker,
    pub upstreams: Arc<Upstreams>,
    /// The OS keychain (upstream secrets and upstream OAuth tokens).
    pub vault: Arc<Vault>,
    pub events: broadcast::Sender<GatewayEvent>,
    pub authorize_ctx: AuthorizeContext,
    pub scopes: Scopes,
    /// Client ID Metadata Documents (`client_id` URLs), fetched and cached.
    pub client_metadata: ClientMetadataDocuments,
    /// When `last_used_at` was last written per grant: written at most once a minute.
    touched: Mutex<HashMap<GrantId, UnixTime>>,
}

impl std::ops::Deref for Gateway {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl Gateway {
    /// Opens the store and binds `127.0.0.1:port` (only loopback: the broker is for this
    /// machine). Port 0 picks a free port. Serve the returned listener with
    /// [`crate::http::serve`].
    pub async fn bind(
        config: Config,
        data_dir: &Path,
        port: u16,
        consent: ConsentMode,
    ) -> Result<(Gateway, TcpListener)> {
        Gateway::bind_with_vault(config, data_dir, port, consent, Arc::new(Vault::system())).await
    }

    /// [`Gateway::bind`] with a chosen vault (tests use [`Vault::memory`]).
    pub async fn bind_with_vault(
        config: Config,
        data_dir: &Path,
        port: u16,
        consent: ConsentMode,
        vault: Arc<Vault>,
    ) -> Result<(Gateway, TcpListener)> {
        let store = Store::open(data_dir).await?;
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        let port = listener.local_addr()?.port();
        let gateway = Gateway::new(config, data_dir, port, store, consent, vault);
        Ok((gateway, listener))
    }

    pub fn new(
        config: Config,
        data_dir: &Path,
        port: u16,
        store: Store,
        consent: ConsentMode,
        vault: Arc<Vault>,
    ) -> Gateway {
        let issuer = format!("http://127.0.0.1:{port}");
        let scopes = Scopes::single(DEFAULT_SCOPE);
        let resources = config
            .upstreams
            .iter()
            .map(|u| (u.name.clone(), Resource(format!("{issuer}/mcp/{}", u.name))))
            .collect();
        let (events, _) = broadcast::channel(256);
        let upstreams = Upstreams::new(&config, data_dir, events.clone(), vault.clone());
        upstreams.oauth.set_base(&issuer);
        let client_metadata =
            ClientMetadataDocuments::new(config.settings.test_client_metadata.as_ref());
        let inner = Inner {
            client_metadata,
            authorize_ctx: AuthorizeContext {
                resources,
                supported_scopes: scopes.clone(),
                default_scopes: scopes.clone(),
            },
            scopes,
            config,
            port,
            issuer,
            data_dir: data_dir.to_owned(),
            store,
            consent: ConsentBroker::new(consent),
            upstreams,
            vault,
            events,
            touched: Mutex::new(HashMap::new()),
        };
        Gateway {
            inner: Arc::new(inner),
        }
    }

    pub fn resource_for(&self, upstream: &str) -> Option<&Resource> {
        self.authorize_ctx
            .resources
            .iter()
            .find(|(n, _)| n == upstream)
            .map(|(_, r)| r)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.events.subscribe()
    }

    pub fn emit(&self, ev: GatewayEvent) {
        let _ = self.events.send(ev);
    }

    pub async fn active_grants(&self) -> Result<Vec<GrantSummary>> {
        self.store.active_grants().await
    }

    /// Revokes a grant: its tokens and codes are gone in one transaction, then its MCP
    /// sessions end (children exit, streams close). Returns false for an unknown or
    /// already revoked grant.
    pub async fn revoke_grant(&self, id: GrantId, reason: RevokeReason) -> Result<bool> {
        let revoked = self.store.revoke_grant(id, now()).await?;
        self.upstreams.stop_for_grant(id).await;
        match revoked {
            Some(g) => {
                tracing::info!(grant = %id, upstream = %g.upstream, ?reason, "grant revoked");
                self.emit(GatewayEvent::GrantRevoked {
                    grant_id: id,
                    client_name: g.client_name,
                    upstream: g.upstream,
                    reason,
                });
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Records use of a grant, at most once a minute per grant (a write per request
    /// would cost an fsync on the hot path).
    pub fn touch_grant(&self, id: GrantId) {
        let t = now();
        {
            let mut m = self.touched.lock().unwrap_or_else(|e| e.into_inner());
            match m.get(&id) {
                Some(last) if t - *last < 60 => return,
                _ => {
                    m.insert(id, t);
                }
            }
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_grant(id, t).await {
                tracing::warn!(grant = %id, "could not record last use: {e}");
            }
        });
    }

    /// Background upkeep: notices grants revoked by another process (the CLI) and ends
    /// their sessions; purges expired codes and tokens.
    pub fn spawn_maintenance(&self) {
        let g = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_version = None;
            let mut last_grants = None;
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                g.store.recheck_revocation_counter();
                if n % (4 * 3600) == 1
                    && let Err(e) = g.store.purge_expired(now()).await
                {
                    tracing::warn!("purging expired tokens failed: {e}");
                }
                if n.is_multiple_of(4) && g.events.receiver_count() > 0 {
                    g.notice_grant_changes(&mut last_grants).await;
                }
                if n.is_multiple_of(4) {
                    g.upstreams.housekeeping().await;
                }
                let ids = g.upstreams.grants_with_sessions();
                if ids.is_empty() {
                    continue;
                }
                let version = match g.store.data_version().await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!("reading data_version failed: {e}");
                        continue;
                    }
                };
                if last_version == Some(version) {
                    continue;
                }
                last_version = Some(version);
                match g.store.inactive_among(&ids).await {
                    Ok(gone) => {
                        for id in gone {
                            tracing::info!(grant = %id, "grant revoked elsewhere; ending its sessions");
                            g.upstreams.stop_for_grant(id).await;
                        }
                    }
                    Err(e) => tracing::warn!("checking grants failed: {e}"),
                }
            }
        });
    }

    /// Emits [`GatewayEvent::GrantsChanged`] when grants were created or revoked since
    /// the last look, which catches changes made by another process (the CLI), including
    /// grants without sessions, which the session check above never sees. The counter
    /// only grows, so an approval and a revocation between two looks still count.
    async fn notice_grant_changes(&self, last: &mut Option<i64>) {
        let generation = match self.store.grants_generation().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("counting grants failed: {e}");
                return;
            }
        };
        if last.is_some_and(|l| l != generation) {
            self.emit(GatewayEvent::GrantsChanged);
        }
        *last = Some(generation);
    }

    pub async fn shutdown(&self) {
        self.upstreams.shutdown().await;
        self.store.close().await;
    }
}
