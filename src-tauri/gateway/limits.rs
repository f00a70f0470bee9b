//! Rate limits (issue 12): a brake on a runaway client or agent, not a security
//! boundary (everything here comes from this machine). GCRA through `governor`, one keyed
//! limiter per kind, each configured under `[broker]` (see `config::Rate`; `0` turns one
//! off):
//! - registrations per client name (`registration_rate`, default 20/hour): a client that
//!   re-registers in a loop is stopped, other apps on the machine are not;
//! - authorization requests per client (`authorization_rate`, 20/hour);
//! - token requests per client (`token_rate`, 10/minute), per grant for a Client ID
//!   Metadata Document client, whose one `client_id` every installation shares;
//! - MCP requests per grant (`mcp_rate`, 600/minute).
//!
//! A limited request gets 429 with `Retry-After`, an OAuth or JSON-RPC error body and a
//! reference id, and is recorded in the activity log.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::activity::Reference;
use crate::config::{Config, Rate};
use crate::oauth::GrantId;

/// What was limited, for the log and the error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Registration,
    Authorization,
    Token,
    Mcp,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Registration => "registration",
            LimitKind::Authorization => "authorization",
            LimitKind::Token => "token",
            LimitKind::Mcp => "mcp",
        }
    }
    /// The `[broker]` key that sets it.
    pub fn setting(self) -> &'static str {
        match self {
            LimitKind::Registration => "registration_rate",
            LimitKind::Authorization => "authorization_rate",
            LimitKind::Token => "token_rate",
            LimitKind::Mcp => "mcp_rate",
        }
    }
}

/// A request over its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub kind: LimitKind,
    /// Whole seconds until one more request is allowed (at least 1).
    pub retry_after: u64,
    pub reference: Reference,
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too many {} requests; retry in {} s (reference {})",
            self.kind.as_str(),
            self.retry_after,
            self.reference
        )
    }
}

struct Limit<K: Hash + Eq + Clone> {
    kind: LimitKind,
    limiter: Option<RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>>,
}

impl<K: Hash + Eq + Clone> Limit<K> {
    fn new(kind: LimitKind, rate: Rate) -> Limit<K> {
        let limiter = match rate {
            Rate::Off => None,
            Rate::Limit { count, per } => NonZeroU32::new(count).and_then(|n| {
                // `count` at once, then one every `per / count`: `count` per `per`.
                Quota::with_period(per / count).map(|q| RateLimiter::keyed(q.allow_burst(n)))
            }),
        };
        Limit { kind, limiter }
    }

    fn check(&self, key: &K) -> Result<(), Limited> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        l.check_key(key).map_err(|not_until| {
            let wait: Duration = not_until.wait_time_from(l.clock().now());
            Limited {
                kind: self.kind,
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                reference: Reference::mint(),
            }
        })
    }

    fn shrink(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Every limiter of one broker.
pub struct RateLimits {
    registration: Limit<String>,
    authorization: Limit<String>,
    token: Limit<String>,
    mcp: Limit<GrantId>,
}

impl RateLimits {
    pub fn new(config: &Config) -> RateLimits {
        RateLimits {
            registration: Limit::new(LimitKind::Registration, config.registration_rate()),
            authorization: Limit::new(LimitKind::Authorization, config.authorization_rate()),
            token: Limit::new(LimitKind::Token, config.token_rate()),
            mcp: Limit::new(LimitKind::Mcp, config.mcp_rate()),
        }
    }

    pub fn registration(&self, client_name: &str) -> Result<(), Limited> {
        self.registration.check(&client_name.to_owned())
    }
    pub fn authorization(&self, client_id: &str) -> Result<(), Limited> {
        self.authorization.check(&client_id.to_owned())
    }
    /// `key`: the client id, or the grant for a shared (metadata document) client id.
    pub fn token(&self, key: String) -> Result<(), Limited> {
        self.token.check(&key)
    }
    pub fn mcp(&self, grant: GrantId) -> Result<(), Limited> {
        self.mcp.check(&grant)
    }

    /// Forgets keys whose limits have fully recovered (maintenance, hourly).
    pub fn shrink(&self) {
        self.registration.shrink();
        self.authorization.shrink();
        self.token.shrink();
        self.mcp.shrink();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_retry_after_then_allowed_again() {
        let l: Limit<String> = Limit::new(
            LimitKind::Token,
            Rate::Limit {
                count: 2,
                per: Duration::from_millis(400),
            },
        );
        let k = "c".to_string();
        assert!(l.check(&k).is_ok());
        assert!(l.check(&k).is_ok());
        let refused = l.check(&k).unwrap_err();
        assert_eq!(refused.retry_after, 1);
        // Another key is not affected.
        assert!(l.check(&"other".to_string()).is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.check(&k).is_ok());
    }

    #[test]
    fn off_never_limits() {
        let l: Limit<GrantId> = Limit::new(LimitKind::Mcp, Rate::Off);
        for _ in 0..1000 {
            assert!(l.check(&GrantId(1)).is_ok());
        }
    }
}
