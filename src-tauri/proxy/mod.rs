//! The MCP proxy: `/mcp/NAME` relays to the configured upstream, one upstream
//! connection (a child process, or a remote session) per MCP session, owned by the grant
//! whose token opened it.
//!
//! Messages are relayed, not reinterpreted (design §"Two choices"): the proxy reads only
//! `id`, `method` and progress tokens, so methods and protocol revisions it does not
//! know pass through unchanged. This module is the only one that knows the MCP
//! transports; `http::mcp` authenticates and then calls [`streamable`].

mod link;
pub mod message;
mod remote;
pub mod session;
mod stdio;
pub mod streamable;
pub mod upstream_oauth;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Semaphore, broadcast, mpsc};

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
    configs: HashMap<String, UpstreamConfig>,
    log_dir: PathBuf,
    events: broadcast::Sender<GatewayEvent>,
    sessions: Mutex<HashMap<String, Arc<Relay>>>,
    /// Per remote upstream: the bound on exchanges open at once.
    exchanges: HashMap<String, Arc<Semaphore>>,
    idle_timeout: Duration,
    max_per_grant: usize,
    request_timeout: Duration,
    http: reqwest::Client,
    vault: Arc<Vault>,
    /// The broker's own sign-ins to remote upstreams.
    pub oauth: Arc<upstream_oauth::UpstreamOAuth>,
}

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
        Arc::new(Upstreams {
            configs: config
                .upstreams
                .iter()
                .map(|u| (u.name.clone(), u.clone()))
                .collect(),
            log_dir: data_dir.join("logs"),
            exchanges: config
                .upstreams
                .iter()
                .filter(|u| matches!(u.transport, Transport::Http { .. }))
                .map(|u| {
                    let bound = Arc::new(Semaphore::new(remote::MAX_EXCHANGES));
                    (u.name.clone(), bound)
                })
                .collect(),
            events,
            sessions: Mutex::new(HashMap::new()),
            idle_timeout: config.session_idle_timeout(),
            max_per_grant: config.max_sessions_per_grant().max(1),
            request_timeout: config.request_timeout(),
            oauth: Arc::new(upstream_oauth::UpstreamOAuth::new(
                vault.clone(),
                http.clone(),
            )),
            http,
            vault,
        })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Relay>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
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
        let cfg = self
            .configs
            .get(upstream)
            .ok_or_else(|| format!("no upstream named {upstream}"))?;
        let values = cfg.values_for(account).map_err(|e| e.to_string())?;
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

        let id = crate::oauth::mint_secret();
        let session = Arc::new(Session::new(
            id.clone(),
            upstream.to_owned(),
            grant,
            self.request_timeout,
            Instant::now(),
        ));
        let (inbox, inbound) = mpsc::unbounded_channel();
        let link = match &cfg.transport {
            Transport::Stdio {
                command, args, cwd, ..
            } => {
                let env = self.resolve(upstream, &values).await?;
                // Without a log (a full or read-only disk) the server still runs.
                let log_file = std::fs::create_dir_all(&self.log_dir)
                    .and_then(|()| {
                        std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(self.log_dir.join(format!("{upstream}.log")))
                    })
                    .inspect_err(|e| {
                        tracing::warn!(
                            upstream,
                            "cannot open the upstream log, its stderr is dropped: {e}"
                        )
                    })
                    .ok();
                let spec = stdio::Spawn {
                    command,
                    args,
                    env,
                    cwd: cwd.as_deref(),
                    log_file,
                    events: self.events.clone(),
                    upstream,
                    session: &id,
                };
                let link = stdio::StdioLink::spawn(spec, inbox).map_err(|e| {
                    let why = format!("could not start `{command}`: {e}");
                    let _ = self.events.send(GatewayEvent::UpstreamFailed {
                        upstream: upstream.to_owned(),
                        reason: why.clone(),
                    });
                    why
                })?;
                Link::Stdio(link)
            }
            Transport::Http { url, .. } => {
                let values = self.resolve(upstream, &values).await?;
                let mut map = HeaderMap::new();
                for (k, v) in values {
                    let name = HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| format!("bad header name {k}"))?;
                    let mut value = HeaderValue::from_str(v.expose())
                        .map_err(|_| format!("bad value for header {k}"))?;
                    value.set_sensitive(true);
                    map.insert(name, value);
                }
                let exchanges = self
                    .exchanges
                    .get(upstream)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Semaphore::new(remote::MAX_EXCHANGES)));
                let remote = remote::Remote {
                    client: self.http.clone(),
                    url: url.clone(),
                    headers: map,
                    events: self.events.clone(),
                    oauth: self.oauth.clone(),
                    sign_in: crate::config::sign_in_id(upstream, account.or(cfg.default_account())),
                    upstream: upstream.to_owned(),
                    exchanges,
                    timeout: self.request_timeout,
                };
                Link::Http(remote::HttpLink::new(remote, inbox))
            }
        };
        tokio::spawn(drain_inbox(session.clone(), inbound));
        let relay = Arc::new(Relay { session, link });
        self.sessions().insert(id, relay.clone());
        let _ = self.events.send(GatewayEvent::SessionsChanged {
            upstream: upstream.to_owned(),
        });
        Ok(relay)
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
        let ids: Vec<String> = self
            .sessions()
            .values()
            .filter(|r| r.session.grant == grant)
            .map(|r| r.session.id.clone())
            .collect();
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| self.end(id, EndReason::Revoked))
            .collect();
        futures_util::future::join_all(tasks).await;
    }

    pub fn grants_with_sessions(&self) -> Vec<GrantId> {
        let mut v: Vec<GrantId> = self.sessions().values().map(|r| r.session.grant).collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn status(&self) -> Vec<UpstreamStatus> {
        let map = self.sessions();
        let mut counts: BTreeMap<&str, usize> =
            self.configs.keys().map(|k| (k.as_str(), 0)).collect();
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
    pub fn remote(&self, upstream: &str) -> Option<(&url::Url, Option<&str>)> {
        let (name, account) = crate::config::split_sign_in_id(upstream);
        let cfg = self.configs.get(name)?;
        if account.is_some_and(|a| !cfg.accounts.contains_key(a)) {
            return None;
        }
        match &cfg.transport {
            Transport::Http { url, client_id, .. } => Some((url, client_id.as_deref())),
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

/// Feeds what the upstream says to its session, until the link is gone. Session state
/// takes the time from here: the only clock in the routing path.
async fn drain_inbox(session: Arc<Session>, mut inbox: mpsc::UnboundedReceiver<Inbound>) {
    while let Some(m) = inbox.recv().await {
        match m {
            Inbound::Message(m) => session.route(m, Instant::now()),
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
