//! The MCP proxy: `/mcp/NAME` relays to the configured upstream, one upstream
//! connection (a child process, or a remote session) per MCP session, owned by the grant
//! whose token opened it.
//!
//! Messages are relayed, not reinterpreted (design §"Two choices"): the proxy reads only
//! `id`, `method` and progress tokens, so methods and protocol revisions it does not
//! know pass through unchanged. This module is the only one that knows the MCP
//! transports; `http::mcp` authenticates and then calls [`streamable`].

mod era_bridge;
mod link;
pub mod message;
mod modern;
mod remote;
pub mod session;
mod stdio;
pub mod streamable;
pub mod tool_gate;
mod tool_wait;
pub mod upstream_oauth;
mod warm;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Semaphore, broadcast, mpsc};

use crate::activity::ActivityLog;
use crate::config::{Config, Transport, UpstreamConfig, ValueSource};
use crate::events::GatewayEvent;
use crate::oauth::GrantId;
use crate::vault::{Secret, Vault};
use link::{Inbound, Link};
use session::{EndReason, Session};

/// One MCP session and the link to its upstream. The link reports to an inbox drained
/// into the session ([`drain_inbox`]); neither holds the other.
pub struct Relay {
    pub session: Arc<Session>,
    pub link: Link,
}

pub struct Upstreams {
    /// Replaced by [`Upstreams::reconfigure`] when the configuration changes live.
    configs: RwLock<HashMap<String, UpstreamConfig>>,
    log_dir: PathBuf,
    events: broadcast::Sender<GatewayEvent>,
    sessions: Mutex<HashMap<String, Arc<Relay>>>,
    /// Per remote upstream: the bound on exchanges open at once.
    exchanges: RwLock<HashMap<String, Arc<Semaphore>>>,
    idle_timeout: Duration,
    max_per_grant: usize,
    request_timeout: Duration,
    http: reqwest::Client,
    vault: Arc<Vault>,
    /// The broker's own sign-ins to remote upstreams.
    pub oauth: Arc<upstream_oauth::UpstreamOAuth>,
    /// Children started while their consent is asked (`warm`).
    warm: Mutex<Warm>,
    /// Per-tool consent: decides `tools/call` and screens `tools/list` (set once by the
    /// gateway; without one every tool passes).
    gate: OnceLock<Arc<dyn tool_gate::ToolGate>>,
    /// Where sessions report each request (set once by the gateway).
    activity: std::sync::OnceLock<ActivityLog>,
    /// Upstreams whose tool arguments are recorded (`[broker] log_arguments`).
    log_arguments: std::collections::HashSet<String>,
    /// The 2026-07-28 face of `/mcp/NAME`.
    modern: modern::Front,
    /// Itself, for a request that outlives its handler (a tool call waiting for a
    /// person answers with a stream at once: `tool_wait`).
    me: std::sync::Weak<Upstreams>,
}

type Warm = Vec<warm::WarmChild>;

/// Live counts for the desktop's upstream list.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    pub sessions: usize,
}

impl Upstreams {
    pub fn new(
        config: &Config,
        data_dir: &std::path::Path,
        events: broadcast::Sender<GatewayEvent>,
        vault: Arc<Vault>,
    ) -> Arc<Upstreams> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(remote::MAX_EXCHANGES)
            // Redirects could carry a request to another host; MCP endpoints do not move.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcp-broker/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Arc::new_cyclic(|me| Upstreams {
            me: me.clone(),
            configs: RwLock::new(configs_of(config)),
            log_dir: data_dir.join("logs"),
            exchanges: RwLock::new(exchanges_of(config, &HashMap::new())),
            events,
            sessions: Mutex::new(HashMap::new()),
            idle_timeout: config.session_idle_timeout(),
            max_per_grant: config.max_sessions_per_grant().max(1),
            request_timeout: config.request_timeout(),
            modern: modern::Front::new(config.request_timeout()),
            oauth: Arc::new(upstream_oauth::UpstreamOAuth::new(
                vault.clone(),
                http.clone(),
            )),
            http,
            vault,
            warm: Mutex::new(Vec::new()),
            gate: OnceLock::new(),
            activity: std::sync::OnceLock::new(),
            log_arguments: config
                .settings
                .log_arguments
                .iter()
                .flatten()
                .cloned()
                .collect(),
        })
    }

    pub(crate) fn gate(&self) -> Option<&dyn tool_gate::ToolGate> {
        self.gate.get().map(|g| &**g)
    }

    /// The activity log every new session reports to.
    pub fn set_activity(&self, log: ActivityLog) {
        let _ = self.activity.set(log);
    }

    /// The activity log, for refusals made before a session exists.
    pub fn activity(&self) -> Option<&ActivityLog> {
        self.activity.get()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Relay>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the upstreams of `config` for sessions started from now on. Open sessions
    /// keep what they started with: the caller ends those whose upstream changed or went
    /// ([`Upstreams::end_upstream`]). The broker's own settings (timeouts, limits) stay
    /// as they were at start.
    pub fn reconfigure(&self, config: &Config) {
        let exchanges = {
            let old = self.exchanges.read().unwrap_or_else(|e| e.into_inner());
            exchanges_of(config, &old)
        };
        *self.exchanges.write().unwrap_or_else(|e| e.into_inner()) = exchanges;
        *self.configs.write().unwrap_or_else(|e| e.into_inner()) = configs_of(config);
    }

    /// Ends every session of `upstream` (its settings changed, or it was removed); the
    /// grants stay, and a client's next request starts a session with the new settings.
    pub async fn end_upstream(&self, upstream: &str) {
        self.end_where(|s| s.upstream == upstream, EndReason::Closed)
            .await;
    }

    /// Ends every session `which` picks, all at once.
    async fn end_where(&self, which: impl Fn(&Session) -> bool, reason: EndReason) {
        let ids: Vec<String> = self
            .sessions()
            .values()
            .filter(|r| which(&r.session))
            .map(|r| r.session.id.clone())
            .collect();
        let tasks: Vec<_> = ids.iter().map(|id| self.end(id, reason.clone())).collect();
        futures_util::future::join_all(tasks).await;
    }

    /// The open session with this id, if it belongs to `upstream`.
    pub fn get(&self, id: &str, upstream: &str) -> Option<Arc<Relay>> {
        self.sessions()
            .get(id)
            .filter(|r| !r.session.is_closed() && r.session.upstream == upstream)
            .cloned()
    }

    /// Starts a new session: its child process or its remote connection.
    /// `account` is the grant's (`None`: the upstream's implicit or only one): the child's
    /// environment or the remote's headers are that account's values over the server's.
    pub async fn create(
        &self,
        upstream: &str,
        grant: GrantId,
        account: Option<&str>,
    ) -> Result<Arc<Relay>, String> {
        if !self
            .configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(upstream)
        {
            return Err(format!("no upstream named {upstream}"));
        }
        // Cap sessions per grant: a client that never sends DELETE must not be able to
        // pile up children. The least recently used session makes room.
        let evict = {
            let now = Instant::now();
            let map = self.sessions();
            let mut mine: Vec<&Session> = map
                .values()
                .map(|r| &*r.session)
                .filter(|s| s.grant == grant && !s.is_closed())
                .collect();
            if mine.len() >= self.max_per_grant {
                mine.sort_by_key(|s| std::cmp::Reverse(s.idle_for(now)));
                mine.first().map(|s| s.id.clone())
            } else {
                None
            }
        };
        if let Some(id) = evict {
            tracing::info!(grant = %grant, session = %id, "session cap reached; closing the least recently used session");
            self.end(&id, EndReason::Closed).await;
        }
        let relay = self.connect(upstream, grant, account, true).await?;
        self.sessions()
            .insert(relay.session.id.clone(), relay.clone());
        let _ = self.events.send(GatewayEvent::SessionsChanged {
            upstream: upstream.to_owned(),
        });
        Ok(relay)
    }

    /// A session and its upstream connection, not yet listed among the open sessions.
    /// `screened`: its `tools/list` answers pass the tool gate (and it may take the child
    /// started while its consent was shown).
    async fn connect(
        &self,
        upstream: &str,
        grant: GrantId,
        account: Option<&str>,
        screened: bool,
    ) -> Result<Arc<Relay>, String> {
        let cfg = self
            .configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(upstream)
            .cloned()
            .ok_or_else(|| format!("no upstream named {upstream}"))?;
        // Decided before a working child starts: a dual-era child locks to the era of
        // its first request (`era_bridge::probe`).
        let modern = self.upstream_era(upstream).await == Some(era_bridge::UpstreamEra::Modern);
        let values = cfg.values_for(account).map_err(|e| e.to_string())?;
        // A child warmed for a consent is started for 2025-11-25 sessions.
        let warm = if screened && !modern {
            self.take_warm(upstream, account.or(cfg.default_account()))
        } else {
            None
        };
        // A child started while this client's consent was shown, if there is one.
        let (id, link, inbound) = match warm {
            Some(w) => (w.session_id, Link::Stdio(w.link), w.inbound),
            None => {
                let id = crate::oauth::mint_secret();
                let (inbox, inbound) = mpsc::unbounded_channel();
                let link = match &cfg.transport {
                    _ if modern => {
                        self.modern_link(upstream, &cfg, &values, account, &id, inbox)
                            .await?
                    }
                    Transport::Stdio { .. } => Link::Stdio(
                        self.spawn_stdio(upstream, &cfg, &values, &id, inbox)
                            .await?,
                    ),
                    Transport::Http { url, .. } => {
                        let map = self.header_map(upstream, &values).await?;
                        let exchanges = self
                            .exchanges
                            .read()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(upstream)
                            .cloned()
                            .unwrap_or_else(|| Arc::new(Semaphore::new(remote::MAX_EXCHANGES)));
                        let remote = remote::Remote {
                            client: self.http.clone(),
                            url: url.clone(),
                            headers: map,
                            events: self.events.clone(),
                            oauth: self.oauth.clone(),
                            sign_in: crate::config::sign_in_id(
                                upstream,
                                account.or(cfg.default_account()),
                            ),
                            upstream: upstream.to_owned(),
                            exchanges,
                            timeout: self.request_timeout,
                        };
                        Link::Http(remote::HttpLink::new(remote, inbox))
                    }
                };
                (id, link, inbound)
            }
        };
        let mut session = Session::new(
            id.clone(),
            upstream.to_owned(),
            grant,
            self.request_timeout,
            Instant::now(),
        );
        if screened && let Some(log) = self.activity.get() {
            session = session.with_activity(session::CallSink {
                log: log.clone(),
                upstream: Arc::from(upstream),
                arguments: self.log_arguments.contains(upstream),
            });
        }
        let session = Arc::new(session);
        let gate = self.gate.get().filter(|_| screened).cloned();
        tokio::spawn(drain_inbox(session.clone(), inbound, gate));
        Ok(Arc::new(Relay { session, link }))
    }

    /// Ends one session and stops its upstream.
    pub async fn end(&self, id: &str, reason: EndReason) {
        let r = self.sessions().remove(id);
        if let Some(r) = r {
            r.session.end(&reason);
            r.link.shutdown().await;
            let _ = self.events.send(GatewayEvent::SessionsChanged {
                upstream: r.session.upstream.clone(),
            });
        }
    }

    /// Ends every session of a revoked grant: streams close and children exit.
    pub async fn stop_for_grant(&self, grant: GrantId) {
        self.end_where(|s| s.grant == grant, EndReason::Revoked)
            .await;
        self.modern.passed_listens.revoked(grant);
    }

    /// Grants with an open session or a listen passed through to a modern upstream.
    pub fn grants_with_sessions(&self) -> Vec<GrantId> {
        let mut v: Vec<GrantId> = self.sessions().values().map(|r| r.session.grant).collect();
        v.extend(self.modern.passed_listens.grants());
        v.sort();
        v.dedup();
        v
    }

    pub fn status(&self) -> Vec<UpstreamStatus> {
        let configs = self.configs.read().unwrap_or_else(|e| e.into_inner());
        let map = self.sessions();
        let mut counts: BTreeMap<&str, usize> = configs.keys().map(|k| (k.as_str(), 0)).collect();
        for s in map.values().map(|r| &r.session).filter(|s| !s.is_closed()) {
            *counts.entry(s.upstream.as_str()).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(name, sessions)| UpstreamStatus {
                name: name.to_owned(),
                sessions,
            })
            .collect()
    }

    /// A remote upstream's URL and configured OAuth client id, for sign-in. `upstream`
    /// may be a `NAME:ACCOUNT` sign-in id (`config::sign_in_id`) of one of its accounts.
    pub fn remote(&self, upstream: &str) -> Option<(url::Url, Option<String>)> {
        let (name, account) = crate::config::split_sign_in_id(upstream);
        let configs = self.configs.read().unwrap_or_else(|e| e.into_inner());
        let cfg = configs.get(name)?;
        if account.is_some_and(|a| !cfg.accounts.contains_key(a)) {
            return None;
        }
        match &cfg.transport {
            Transport::Http { url, client_id, .. } => Some((url.clone(), client_id.clone())),
            Transport::Stdio { .. } => None,
        }
    }

    pub fn sessions_of_grant(&self, grant: GrantId) -> usize {
        self.sessions()
            .values()
            .filter(|r| r.session.grant == grant && !r.session.is_closed())
            .count()
    }

    /// Periodic upkeep: requests past their deadline fail (the upstream is told, or a
    /// hung child's session ends); idle sessions and sessions whose upstream died are
    /// removed.
    pub async fn housekeeping(&self) {
        let now = Instant::now();
        self.expire_warm(now);
        let all: Vec<Arc<Relay>> = self.sessions().values().cloned().collect();
        for r in all {
            let s = &r.session;
            let late = s.expire(now);
            if !late.is_empty() {
                let _ = self.events.send(GatewayEvent::UpstreamFailed {
                    upstream: s.upstream.clone(),
                    reason: "did not answer in time".into(),
                });
            }
            if !late.is_empty() && r.link.ends_on_timeout() {
                tracing::warn!(upstream = %s.upstream, session = %s.id, "upstream did not answer in time; ending the session");
                self.end(
                    &s.id,
                    EndReason::Failed("the upstream MCP server did not answer in time".into()),
                )
                .await;
            } else if !late.is_empty() {
                tracing::warn!(upstream = %s.upstream, session = %s.id, requests = late.len(), "upstream did not answer in time; cancelled the requests");
                for id in &late {
                    r.link
                        .cancel(id, Some("the broker's request timeout passed"));
                }
            } else if s.is_closed() {
                self.end(&s.id, EndReason::Closed).await;
            } else if s.idle_for(now) >= self.idle_timeout && s.pending_count() == 0 {
                tracing::info!(upstream = %s.upstream, session = %s.id, "closing an idle session");
                self.end(&s.id, EndReason::Closed).await;
            }
        }
        // For leak checks: every session's tasks end with it.
        tracing::debug!(
            sessions = self.sessions().len(),
            tasks = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            "upkeep"
        );
    }

    /// Ends every session and waits for the children to exit.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.sessions().keys().cloned().collect();
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| self.end(id, EndReason::Closed))
            .collect();
        futures_util::future::join_all(tasks).await;
    }
}

fn configs_of(config: &Config) -> HashMap<String, UpstreamConfig> {
    config
        .upstreams
        .iter()
        .map(|u| (u.name.clone(), u.clone()))
        .collect()
}

/// Per remote upstream, the bound on exchanges open at once; an upstream that stays
/// keeps its bound (its open exchanges count against it).
fn exchanges_of(
    config: &Config,
    old: &HashMap<String, Arc<Semaphore>>,
) -> HashMap<String, Arc<Semaphore>> {
    config
        .upstreams
        .iter()
        .filter(|u| matches!(u.transport, Transport::Http { .. }))
        .map(|u| {
            let bound = old
                .get(&u.name)
                .cloned()
                .unwrap_or_else(|| Arc::new(Semaphore::new(remote::MAX_EXCHANGES)));
            (u.name.clone(), bound)
        })
        .collect()
}

/// Feeds what the upstream says to its session, until the link is gone. Session state
/// takes the time from here: the only clock in the routing path.
async fn drain_inbox(
    session: Arc<Session>,
    mut inbox: mpsc::UnboundedReceiver<Inbound>,
    gate: Option<Arc<dyn tool_gate::ToolGate>>,
) {
    while let Some(m) = inbox.recv().await {
        match m {
            Inbound::Message(m) => {
                let m = match (&gate, &m.kind) {
                    (Some(g), message::Kind::Response { id }) if session.answers_tools_list(id) => {
                        tool_gate::screen_response(&**g, session.grant, &session.upstream, m).await
                    }
                    _ => m,
                };
                session.route(m, Instant::now())
            }
            Inbound::Refused { message, status } => {
                session.route_with_status(message, Some(status), Instant::now())
            }
            Inbound::Failed(why) => session.end(&EndReason::Failed(why)),
        }
    }
}

impl Upstreams {
    /// Resolves configured `env` or `headers` values when a session starts, so a secret
    /// set or changed while the broker runs is picked up by the next session. `Err` is
    /// one line naming the missing variable or secret and how to provide it; it never
    /// contains a value.
    async fn resolve(
        &self,
        upstream: &str,
        values: &BTreeMap<String, ValueSource>,
    ) -> Result<BTreeMap<String, Secret<String>>, String> {
        let mut out = BTreeMap::new();
        for (k, v) in values {
            let value = match v {
                ValueSource::Literal(s) => s.clone(),
                ValueSource::Env { env } => std::env::var(env).map_err(|_| {
                    format!("upstream {upstream}: environment variable {env} is not set")
                })?,
                ValueSource::Secret { secret, prefix } => {
                    let got = self.read_secret(secret).await.map_err(|e| {
                        format!("upstream {upstream} needs the secret \"{secret}\": {e}")
                    })?;
                    let Some(got) = got else {
                        let why = format!(
                            "upstream {upstream} needs the secret \"{secret}\", which is not in the OS keychain; set it with `mcp-broker secrets set {secret}`"
                        );
                        let _ = self.events.send(GatewayEvent::UpstreamFailed {
                            upstream: upstream.to_owned(),
                            reason: why.clone(),
                        });
                        return Err(why);
                    };
                    format!("{}{}", prefix.as_deref().unwrap_or(""), got.expose())
                }
            };
            out.insert(k.clone(), Secret::new(value));
        }
        Ok(out)
    }

    /// A remote upstream's configured headers, resolved; secrets marked sensitive.
    async fn header_map(
        &self,
        upstream: &str,
        headers: &BTreeMap<String, ValueSource>,
    ) -> Result<HeaderMap, String> {
        let mut map = HeaderMap::new();
        for (k, v) in self.resolve(upstream, headers).await? {
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("bad header name {k}"))?;
            let mut value = HeaderValue::from_str(v.expose())
                .map_err(|_| format!("bad value for header {k}"))?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        Ok(map)
    }

    /// Keychain calls block (D-Bus on Linux), so they run off the async workers, with a
    /// deadline in case the keychain daemon hangs.
    async fn read_secret(&self, name: &str) -> Result<Option<Secret<String>>, String> {
        let vault = self.vault.clone();
        let name = name.to_owned();
        let task = tokio::task::spawn_blocking(move || vault.get(&name));
        match tokio::time::timeout(Duration::from_secs(20), task).await {
            Ok(Ok(r)) => r.map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(format!("reading the OS keychain failed: {e}")),
            Err(_) => Err("the OS keychain did not answer within 20 seconds".into()),
        }
    }
}
