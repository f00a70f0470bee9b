//! Children started while the person still reads the consent for their upstream, so that
//! the first call after Approve does not wait for the server to start (`npx` fetching and
//! booting a package takes seconds). Only stdio upstreams: a remote one has nothing to
//! start. A warm child has been sent nothing; it becomes the first new session's child
//! on its upstream once its consent was approved, and is stopped when it is denied, when
//! the consent expires, or when nobody takes it within [`WARM_TTL`] after approval.
//! At most [`MAX_WARM`] wait at once, so a flood of authorization requests cannot start
//! an unbounded number of processes. An upstream with several accounts is not started
//! before the person chose one (its environment depends on the choice), and a warm child
//! only serves a session of the account it was started with.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::link::{Inbound, Link};
use super::stdio;
use super::stdio::StdioLink;
use super::{Upstreams, Warm};
use crate::config::{Transport, UpstreamConfig, ValueSource};
use crate::consent::CONSENT_TTL;
use crate::events::GatewayEvent;

/// Children waiting at once, across upstreams.
pub const MAX_WARM: usize = 4;
/// How long an approved child waits for its client's first session.
pub const WARM_TTL: Duration = Duration::from_secs(60);

/// A warm child and what its session will need.
pub struct WarmChild {
    pub upstream: String,
    /// The authorization request it was started for (its PKCE challenge: unique per
    /// request, and known to both the consent and its decision).
    pub key: String,
    /// The account whose values its environment holds (`None`: the implicit one).
    pub account: Option<String>,
    pub session_id: String,
    pub link: StdioLink,
    pub inbound: mpsc::UnboundedReceiver<Inbound>,
    pub approved: bool,
    pub until: Instant,
}

impl Upstreams {
    fn warm(&self) -> std::sync::MutexGuard<'_, Warm> {
        self.warm.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a child for `upstream` while consent `key` is asked, if it is a stdio
    /// upstream and fewer than [`MAX_WARM`] wait. Failing to start is not an error here:
    /// the session will try again, and report it.
    pub async fn prewarm(&self, upstream: &str, key: &str) {
        let Some(cfg) = self
            .configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(upstream)
            .cloned()
        else {
            return;
        };
        if !matches!(cfg.transport, Transport::Stdio { .. })
            || cfg.needs_account_choice()
            || self.warm().len() >= MAX_WARM
        {
            return;
        }
        let account = cfg.default_account().map(str::to_owned);
        let Ok(values) = cfg.values_for(None) else {
            return;
        };
        let session_id = crate::oauth::mint_secret();
        let (inbox, inbound) = mpsc::unbounded_channel();
        let Ok(link) = self
            .spawn_stdio(upstream, &cfg, &values, &session_id, inbox)
            .await
        else {
            return;
        };
        let child = WarmChild {
            upstream: upstream.to_owned(),
            key: key.to_owned(),
            account,
            session_id,
            link,
            inbound,
            approved: false,
            until: Instant::now() + CONSENT_TTL,
        };
        let mut warm = self.warm();
        if warm.len() >= MAX_WARM {
            drop(warm);
            tokio::spawn(async move { child.link.shutdown().await });
            return;
        }
        warm.push(child);
    }

    /// The consent `key` was decided: an approved child waits for its session; a denied
    /// one stops.
    pub fn consent_decided(&self, key: &str, approved: bool) {
        let mut stop = Vec::new();
        {
            let mut warm = self.warm();
            for w in warm.iter_mut().filter(|w| w.key == key) {
                w.approved = approved;
                w.until = Instant::now() + WARM_TTL;
            }
            if !approved {
                let (gone, kept) = std::mem::take(&mut *warm)
                    .into_iter()
                    .partition(|w| w.key == key);
                *warm = kept;
                stop = gone;
            }
        }
        stop_all(stop);
    }

    /// An approved warm child of `upstream` started with `account`'s values, for a new
    /// session of that account.
    pub(super) fn take_warm(&self, upstream: &str, account: Option<&str>) -> Option<WarmChild> {
        let mut warm = self.warm();
        let i = warm.iter().position(|w| {
            w.approved && w.upstream == upstream && w.account.as_deref() == account
        })?;
        Some(warm.swap_remove(i))
    }

    /// Stops warm children past their time (the maintenance tick calls it).
    pub fn expire_warm(&self, now: Instant) {
        let stop = {
            let mut warm = self.warm();
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *warm)
                .into_iter()
                .partition(|w| w.until <= now);
            *warm = kept;
            gone
        };
        stop_all(stop);
    }

    /// Starts the child of a stdio upstream for session `id` with `values` as its
    /// environment (an account's over the server's), its stderr appended to the
    /// upstream's log.
    pub(super) async fn spawn_stdio(
        &self,
        upstream: &str,
        cfg: &UpstreamConfig,
        values: &BTreeMap<String, ValueSource>,
        id: &str,
        inbox: super::link::Inbox,
    ) -> Result<StdioLink, String> {
        let Transport::Stdio {
            command, args, cwd, ..
        } = &cfg.transport
        else {
            return Err(format!("{upstream} is not a stdio upstream"));
        };

        let env = self.resolve(upstream, values).await?;
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
            session: id,
        };
        let link = stdio::StdioLink::spawn(spec, inbox).map_err(|e| {
            let why = format!("could not start `{command}`: {e}");
            let _ = self.events.send(GatewayEvent::UpstreamFailed {
                upstream: upstream.to_owned(),
                reason: why.clone(),
            });
            why
        })?;
        Ok(link)
    }

    /// Warm children waiting, for tests.
    pub fn warm_count(&self) -> usize {
        self.warm().len()
    }
}

fn stop_all(children: Vec<WarmChild>) {
    for w in children {
        tracing::debug!(upstream = %w.upstream, "stopping a child started for a consent");
        tokio::spawn(async move { Link::Stdio(w.link).shutdown().await });
    }
}
