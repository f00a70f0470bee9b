//! `Gateway`: the broker's core and its one API. The HTTP layer, the desktop shell and the
//! command line each parse their input, call one method here and render the outcome; none
//! of them touches the store, the keychain or the upstream sessions directly, so every
//! user-level operation exists once.
//!
//! The operations, one file per flow:
//! - [`authorize`]: `/authorize` and the consent decision (form or native window);
//! - [`token`]: the code exchange and refresh rotation with replay handling;
//! - [`register`]: dynamic client registration (RFC 7591);
//! - [`grants`]: listing and revoking grants (one, one client's, all), the token
//!   revocation endpoint (RFC 7009), and noticing what another process changed;
//! - [`personal`]: personal access tokens, minted by the person for one upstream;
//! - [`introspect`]: token introspection (RFC 7662) for authenticated callers;
//! - [`registrations`]: listing and deleting client registrations;
//! - [`mcp`]: authenticating a request to `/mcp/NAME` (RFC 6750, RFC 8707);
//! - [`upstreams`]: the upstream overview with sessions, credentials and last errors;
//! - [`secrets`]: the user's upstream secrets in the OS keychain;
//! - [`sign_in`]: the broker's own sign-in to remote upstreams;
//! - [`servers`]: adding, changing, removing and importing upstreams, and applying a new
//!   configuration (from the window or a hand edit of the file) while serving.
//! - [`tools`]: per-tool consent, pinned tool definitions and "ask each time".
//! - [`activity`]: the activity log's authorization events, and reading it back (the
//!   `activity` command, a grant's detail view); MCP calls are recorded by the proxy;
//! - [`limits`]: rate limits on registration, authorization, tokens and MCP requests.
//!
//! Every revocation (tray, window, CLI, `/revoke`, replay, revoke all, a deleted
//! registration) ends in `Gateway::after_revocation`; a revocation made by another
//! process is noticed by the one maintenance task ([`Gateway::spawn_maintenance`]), which
//! announces it the same way. So is a grant another process created (a personal token
//! made by the CLI): the store moves the same counter.

pub mod about;
mod accounts;
pub mod activity;
pub mod authorize;
mod error;
pub mod grants;
pub mod introspect;
pub mod limits;
pub mod mcp;
pub mod personal;
#[cfg(test)]
mod refusals;
pub mod register;
pub mod registrations;
pub mod secrets;
pub mod servers;
pub mod sign_in;
pub mod token;
pub mod tools;
#[cfg(test)]
mod ui_shapes;
pub mod upstreams;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::activity::{ActivityLog, Retention};
use crate::cimd_fetch::ClientMetadataDocuments;
use crate::clock::now;
use crate::config::Config;
use crate::consent::{ConsentMode, Consents};
use crate::events::GatewayEvent;
use crate::oauth::authorize::AuthorizeContext;
use crate::oauth::{DEFAULT_SCOPE, GrantId, Resource, Scopes, UnixTime};
use crate::proxy::Upstreams;
use crate::store::Store;
use crate::vault::Vault;

pub use error::GatewayError;
pub use grants::GrantView;

/// The broker's own address, `http://127.0.0.1:PORT`: the issuer in every metadata
/// document and redirect (RFC 8414 §2, RFC 9207), and the base of every resource URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(String);

impl Issuer {
    pub fn loopback(port: u16) -> Issuer {
        Issuer(format!("http://127.0.0.1:{port}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The resource URL of an upstream (RFC 8707): `ISSUER/mcp/NAME`.
    pub fn resource(&self, upstream: &str) -> Resource {
        Resource(format!("{}/mcp/{upstream}", self.0))
    }
}

impl std::fmt::Display for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    /// The configuration in force; replaced as a whole when a new one is applied
    /// ([`servers`]), so a request sees one version from start to end.
    config: RwLock<Arc<Config>>,
    /// Upstreams removed from the configuration while this process ran: their requests
    /// are refused with a message saying so, not as an unknown name.
    removed: Mutex<BTreeSet<String>>,
    /// One configuration change applied at a time (the window and the file watch).
    applying: tokio::sync::Mutex<()>,
    port: u16,
    issuer: Issuer,
    data_dir: PathBuf,
    store: Store,
    consents: Consents,
    upstreams: Arc<Upstreams>,
    /// The OS keychain (upstream secrets and upstream OAuth tokens).
    vault: Arc<Vault>,
    events: broadcast::Sender<GatewayEvent>,
    authorize_ctx: RwLock<Arc<AuthorizeContext>>,
    /// Client ID Metadata Documents (`client_id` URLs), fetched and cached.
    client_metadata: ClientMetadataDocuments,
    /// When `last_used_at` was last written per grant: written at most once a minute.
    touched: Mutex<HashMap<GrantId, UnixTime>>,
    /// The active grants as this process last saw them: what a change is measured against.
    known_grants: Mutex<Option<grants::KnownGrants>>,
    /// Held from a revocation's commit until this process has forgotten the grants, and
    /// while the maintenance tick compares the active grants with the known ones: a
    /// revocation made here is never also taken for one made elsewhere (announced twice).
    revocations: tokio::sync::Mutex<()>,
    /// The last failure of each upstream, until it is settled (a sign-in, a secret set).
    last_errors: Mutex<HashMap<String, String>>,
    /// The grants' tool policies; also the proxy's tool gate.
    tools: Arc<tools::ToolPolicies>,
    /// What each grant did (issue 12); written off the hot path.
    activity: ActivityLog,
    /// Missing and unknown tokens at `/mcp/NAME`, until the next row about them.
    bearer_refusals: activity::BearerRefusals,
    limits: limits::RateLimits,
}

impl Gateway {
    /// The core over an opened store, serving at `port`. The caller binds (see
    /// [`crate::app::start`]); the CLI uses a gateway without a server for its operations.
    pub fn new(
        config: Config,
        data_dir: &Path,
        port: u16,
        store: Store,
        consent: ConsentMode,
        vault: Arc<Vault>,
    ) -> Gateway {
        let issuer = Issuer::loopback(port);
        let scopes = Scopes::single(DEFAULT_SCOPE);
        let resources = resources(&issuer, &config);
        let (events, _) = broadcast::channel(256);
        let (max_age, max_rows) = config.activity_retention();
        let activity = ActivityLog::start(
            store.clone(),
            Retention { max_age, max_rows },
            config.activity_log(),
        );
        let upstreams = Upstreams::new(&config, data_dir, events.clone(), vault.clone());
        upstreams.set_activity(activity.clone());
        upstreams.oauth.set_base(issuer.as_str());
        let approval_page = (config.ask_headless() == crate::config::AskHeadless::Browser)
            .then(|| issuer.as_str().to_owned());
        let tools = Arc::new(tools::ToolPolicies::new(
            store.clone(),
            events.clone(),
            activity.clone(),
            approval_page,
            config.ask_timeout(),
        ));
        upstreams.set_tool_gate(tools.clone());
        let client_metadata =
            ClientMetadataDocuments::new(config.settings.test_client_metadata.as_ref());
        let inner = Inner {
            limits: limits::RateLimits::new(&config),
            activity,
            bearer_refusals: Default::default(),
            client_metadata,
            authorize_ctx: RwLock::new(Arc::new(AuthorizeContext {
                resources,
                supported_scopes: scopes.clone(),
                default_scopes: scopes,
            })),
            config: RwLock::new(Arc::new(config)),
            removed: Mutex::new(BTreeSet::new()),
            applying: tokio::sync::Mutex::new(()),
            port,
            issuer,
            data_dir: data_dir.to_owned(),
            store,
            consents: Consents::new(consent),
            upstreams,
            vault,
            events,
            touched: Mutex::new(HashMap::new()),
            known_grants: Mutex::new(None),
            revocations: tokio::sync::Mutex::new(()),
            last_errors: Mutex::new(HashMap::new()),
            tools,
        };
        Gateway {
            inner: Arc::new(inner),
        }
    }

    /// A gateway for a one-off command next to (or without) a running server: the same
    /// operations, no server. `grants revoke` revokes through it, and the running server
    /// notices through the revocation counter.
    pub async fn offline(config: Config, data_dir: &Path) -> crate::Result<Gateway> {
        let port = config.port();
        Gateway::offline_on(config, data_dir, port).await
    }

    /// [`offline`](Self::offline) for a broker serving on `port`: what the resources of
    /// tokens minted here are bound to (RFC 8707), so they work on that broker.
    pub async fn offline_on(config: Config, data_dir: &Path, port: u16) -> crate::Result<Gateway> {
        let store = Store::open(data_dir).await?;
        Ok(Gateway::new(
            config,
            data_dir,
            port,
            store,
            ConsentMode::Page,
            Arc::new(Vault::system()),
        ))
    }

    pub fn port(&self) -> u16 {
        self.inner.port
    }

    pub fn issuer(&self) -> &Issuer {
        &self.inner.issuer
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The configuration in force now (a later change replaces it, never this copy).
    pub fn config(&self) -> Arc<Config> {
        self.inner
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What `/authorize` checks requests against: the resources served now.
    fn authorize_ctx(&self) -> Arc<AuthorizeContext> {
        self.inner
            .authorize_ctx
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The upstream sessions, for the MCP transport in `http/`.
    pub(crate) fn upstreams(&self) -> &Upstreams {
        &self.inner.upstreams
    }

    pub fn resource_for(&self, upstream: &str) -> Option<Resource> {
        self.authorize_ctx()
            .resources
            .iter()
            .find(|(n, _)| n == upstream)
            .map(|(_, r)| r.clone())
    }

    /// The resources this broker serves now; tokens for any other (an old port) are dead.
    fn served_resources(&self) -> Vec<Resource> {
        self.authorize_ctx()
            .resources
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, ev: GatewayEvent) {
        let _ = self.inner.events.send(ev);
    }

    fn last_errors(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.inner
            .last_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Background upkeep, one task: notices what other processes changed (revocations by
    /// the CLI end their sessions and are announced), closes idle sessions, and purges
    /// expired codes and tokens.
    pub fn spawn_maintenance(&self) {
        let g = self.clone();
        // Failures arrive as events (the proxy's sessions send them too): remember the
        // last one per upstream for the overview until a sign-in settles it.
        let mut events = self.subscribe();
        let g2 = self.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(GatewayEvent::UpstreamFailed { upstream, reason }) => {
                        g2.last_errors().insert(upstream, reason);
                    }
                    Ok(GatewayEvent::UpstreamSignIn {
                        upstream,
                        signed_in: true,
                    }) => {
                        g2.last_errors().remove(&upstream);
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        tokio::spawn(async move {
            const TICK: Duration = Duration::from_millis(250);
            const PURGE_EVERY: Duration = Duration::from_secs(3600);
            const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);
            const REFUSALS_EVERY: Duration = Duration::from_secs(60);
            // A registration TTL shorter than the purge period is honoured to the second.
            let registration_ttl = g.config().registration_ttl();
            let purge_every = PURGE_EVERY.min(registration_ttl);
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_purge: Option<tokio::time::Instant> = None;
            let mut last_housekeeping = tokio::time::Instant::now();
            let mut last_refusals = last_housekeeping;
            let mut last_seen = None;
            loop {
                let at = tick.tick().await;
                g.inner.store.recheck_revocation_counter();
                if last_purge.is_none_or(|t| at - t >= purge_every) {
                    last_purge = Some(at);
                    let t = now();
                    if let Err(e) = g.inner.store.purge_expired(t).await {
                        tracing::warn!("purging expired tokens failed: {e}");
                    }
                    g.inner.limits.shrink();
                    let cutoff = t - registration_ttl.as_secs() as i64;
                    match g.inner.store.purge_stale_registrations(cutoff, t).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(count = n, "stale client registrations purged"),
                        Err(e) => tracing::warn!("purging stale registrations failed: {e}"),
                    }
                }
                if at - last_housekeeping >= HOUSEKEEPING_EVERY {
                    last_housekeeping = at;
                    g.inner.upstreams.housekeeping().await;
                }
                if at - last_refusals >= REFUSALS_EVERY {
                    last_refusals = at;
                    g.record_bearer_refusals();
                }
                g.notice_changes(&mut last_seen).await;
            }
        });
    }

    /// Ends every session, then writes what the activity log still holds, then closes
    /// the store: nothing recorded is lost on a clean shutdown.
    pub async fn shutdown(&self) {
        self.inner.upstreams.shutdown().await;
        self.record_bearer_refusals();
        self.inner.activity.flush().await;
        self.inner.store.close().await;
    }
}

/// The resource URL of each configured upstream (RFC 8707).
fn resources(issuer: &Issuer, config: &Config) -> Vec<(String, Resource)> {
    config
        .upstreams
        .iter()
        .map(|u| (u.name.clone(), issuer.resource(&u.name)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_and_resources_are_spelled_one_way() {
        let i = Issuer::loopback(7391);
        assert_eq!(i.as_str(), "http://127.0.0.1:7391");
        assert_eq!(i.resource("demo").0, "http://127.0.0.1:7391/mcp/demo");
    }
}
