//! The activity log as the core records and shows it (issue 12). Recording: the
//! authorization events of every flow (registration, consent with what was shown, tokens
//! issued and refreshed, replays, revocations with who revoked), rate-limited requests and
//! errors rendered with a reference id; MCP calls are recorded by the proxy's sessions
//! (see `activity`). Reading: [`Gateway::activity`] for `mcp-broker activity`, and
//! [`Gateway::grant_activity`] for the grants window's detail view.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::json;

use crate::activity::ErrorNote;
use crate::clock::now_ms;
use crate::consent::ConsentView;
use crate::events::RevokeReason;
use crate::oauth::bearer::BearerError;
use crate::oauth::{GrantId, UnixTime};
use crate::store::RevokedGrant;
use crate::store::activity::{ActivityQuery, ActivityRow, TargetCount};

use super::limits::Limited;
use super::{Gateway, GatewayError};

/// Rows in one page of the detail view.
pub const PAGE: u32 = 50;

/// What `activity` reads: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub grant: Option<GrantId>,
    pub upstream: Option<String>,
    /// Unix seconds.
    pub since: Option<UnixTime>,
    /// Only rows after this id, oldest first (`--follow`).
    pub after_id: Option<i64>,
    pub limit: u32,
}

/// What the grants window shows for one grant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GrantActivity {
    pub grant_id: GrantId,
    /// Calls, newest first, after the filters (one page).
    pub calls: Vec<ActivityRow>,
    /// The id to ask for the next page with (`before`), if there may be one.
    pub next_before: Option<i64>,
    /// Calls and errors per tool (resource, prompt, or method without one).
    pub counts: Vec<TargetCount>,
    /// The most recent calls that did not end ok.
    pub errors: Vec<ActivityRow>,
    /// Unix milliseconds of the newest call.
    pub last_used_ms: Option<i64>,
    /// Registration, consent, tokens, replays, revocation: newest first.
    pub history: Vec<ActivityRow>,
}

/// Filters of the detail view.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct GrantActivityFilter {
    pub tool: Option<String>,
    pub outcome: Option<String>,
    /// The page after this row id.
    pub before: Option<i64>,
}

impl RevokeReason {
    /// Who revoked, as the activity log records it.
    pub fn by(self) -> &'static str {
        match self {
            RevokeReason::Window => "window",
            RevokeReason::Tray => "tray",
            RevokeReason::Cli => "cli",
            RevokeReason::Client => "client (/revoke)",
            RevokeReason::Replay => "replay",
            RevokeReason::External => "another process",
            RevokeReason::RegistrationDeleted => "registration deleted",
        }
    }
}

/// Requests to `/mcp/NAME` refused for a missing or unknown token: counted on the hot path
/// and recorded as one row a minute ([`Gateway::record_bearer_refusals`]), so that a flood
/// of made-up tokens neither costs a row each nor pushes real activity out of the log.
#[derive(Default)]
pub(super) struct BearerRefusals {
    missing: AtomicU64,
    invalid: AtomicU64,
}

impl BearerRefusals {
    pub(super) fn count(&self, error: &BearerError) {
        let n = match error {
            BearerError::Missing => &self.missing,
            BearerError::InvalidToken => &self.invalid,
            // A known grant without the scope: recorded as a refused call of that grant.
            BearerError::InsufficientScope(_) => return,
        };
        n.fetch_add(1, Ordering::Relaxed);
    }
}

/// An authorization event row.
fn event(event: &str, outcome: &str) -> ActivityRow {
    ActivityRow {
        at_ms: now_ms(),
        event: event.into(),
        outcome: outcome.into(),
        ..ActivityRow::default()
    }
}

impl Gateway {
    /// Waits until every row recorded so far is in the database (tests, shutdown).
    pub async fn flush_activity(&self) {
        self.inner.activity.flush().await;
    }

    pub(super) fn record_registered(&self, client_id: &str, client_name: &str) {
        let mut r = event("registered", "ok");
        r.client_id = Some(client_id.into());
        r.detail = Some(json!({ "client_name": client_name }).to_string());
        self.inner.activity.record(r);
    }

    /// A consent decision, with exactly what the person was shown.
    pub(super) fn record_consent(
        &self,
        view: &ConsentView,
        approved: Option<GrantId>,
        shown_in: &str,
    ) {
        let mut r = event(
            if approved.is_some() {
                "consent_approved"
            } else {
                "consent_denied"
            },
            "ok",
        );
        r.grant_id = approved;
        r.client_id = Some(view.client_id.clone());
        r.upstream = Some(view.upstream.clone());
        r.detail = Some(json!({ "shown": view, "shown_in": shown_in }).to_string());
        self.inner.activity.record(r);
    }

    pub(super) fn record_tokens(&self, grant: GrantId, client_id: &str, refreshed: bool) {
        let mut r = event(
            if refreshed {
                "tokens_refreshed"
            } else {
                "tokens_issued"
            },
            "ok",
        );
        r.grant_id = Some(grant);
        r.client_id = Some(client_id.into());
        self.inner.activity.record(r);
    }

    pub(super) fn record_replay(&self, grant: GrantId, what: &str) {
        let mut r = event("replay", "refused");
        r.grant_id = Some(grant);
        r.detail = Some(json!({ "replayed": what }).to_string());
        self.inner.activity.record(r);
    }

    pub(super) fn record_revoked(&self, g: &RevokedGrant, reason: RevokeReason, all: bool) {
        let mut r = event("revoked", "ok");
        r.grant_id = Some(g.id);
        r.upstream = Some(g.upstream.clone());
        r.detail = Some(json!({ "by": reason.by(), "revoke_all": all }).to_string());
        self.inner.activity.record(r);
    }

    /// What [`BearerRefusals`] counted since the last call, as one row (none if nothing).
    pub(super) fn record_bearer_refusals(&self) {
        let c = &self.inner.bearer_refusals;
        let missing = c.missing.swap(0, Ordering::Relaxed);
        let invalid = c.invalid.swap(0, Ordering::Relaxed);
        if missing + invalid == 0 {
            return;
        }
        // A missing token alone is clients discovering the authorization server.
        if invalid > 0 {
            tracing::info!(
                invalid,
                missing,
                "MCP requests refused for an unknown token"
            );
        }
        let mut r = event("error", "refused");
        r.error_code = Some(401);
        r.detail = Some(
            json!({
                "error": "MCP requests without a valid access token",
                "without_token": missing,
                "unknown_token": invalid,
            })
            .to_string(),
        );
        self.inner.activity.record(r);
    }

    /// A request over its rate limit: logged and recorded with its reference id.
    pub(crate) fn record_limited(
        &self,
        l: &Limited,
        grant: Option<GrantId>,
        client_id: Option<&str>,
        upstream: Option<&str>,
    ) {
        tracing::warn!(
            reference = %l.reference,
            limit = l.kind.setting(),
            grant = ?grant.map(|g| g.0),
            client_id,
            retry_after = l.retry_after,
            "rate limited"
        );
        let mut r = event("rate_limited", "rate_limited");
        r.grant_id = grant;
        r.client_id = client_id.map(Into::into);
        r.upstream = upstream.map(Into::into);
        r.method = Some(l.kind.as_str().into());
        r.reference = Some(l.reference.to_string());
        self.inner.activity.record(r);
    }

    /// An error the HTTP front or the proxy rendered with a reference id (it was logged
    /// there). At `/mcp/NAME`, once the caller is known, it is a refused call of its grant.
    pub fn record_error(&self, note: ErrorNote) {
        let mut r = match note.grant {
            Some(_) => event("call", "refused"),
            None => event("error", "refused"),
        };
        r.grant_id = note.grant;
        r.upstream = note.upstream.map(Into::into);
        r.error_code = Some(i64::from(note.status));
        r.reference = Some(note.reference.to_string());
        r.detail = Some(json!({ "error": &*note.summary }).to_string());
        self.inner.activity.record(r);
    }

    /// A limit check: `Ok`, or the refusal recorded and returned.
    pub(super) fn limit(
        &self,
        check: Result<(), Limited>,
        grant: Option<GrantId>,
        client_id: Option<&str>,
    ) -> Result<(), GatewayError> {
        check.map_err(|l| {
            self.record_limited(&l, grant, client_id, None);
            GatewayError::RateLimited(l)
        })
    }

    /// `mcp-broker activity`: rows newest first (oldest first after `after_id`).
    pub async fn activity(&self, f: &ActivityFilter) -> Result<Vec<ActivityRow>, GatewayError> {
        Ok(self
            .inner
            .store
            .activity(&ActivityQuery {
                grant: f.grant,
                upstream: f.upstream.clone(),
                since_ms: f.since.map(|s| s * 1000),
                after_id: f.after_id,
                limit: f.limit,
                ..ActivityQuery::default()
            })
            .await?)
    }

    /// The grants window's detail view of one grant.
    pub async fn grant_activity(
        &self,
        grant: GrantId,
        f: &GrantActivityFilter,
    ) -> Result<GrantActivity, GatewayError> {
        let store = &self.inner.store;
        let calls_of = |q: ActivityQuery| ActivityQuery {
            grant: Some(grant),
            event: Some("call".into()),
            ..q
        };
        let mut calls = store
            .activity(&calls_of(ActivityQuery {
                target: f.tool.clone().filter(|t| !t.is_empty()),
                outcome: f.outcome.clone().filter(|o| !o.is_empty()),
                before_id: f.before,
                limit: PAGE + 1,
                ..ActivityQuery::default()
            }))
            .await?;
        let next_before = (calls.len() > PAGE as usize).then(|| {
            calls.truncate(PAGE as usize);
            calls.last().map(|c| c.id)
        });
        let errors = store
            .activity(&calls_of(ActivityQuery {
                errors_only: true,
                limit: 20,
                ..ActivityQuery::default()
            }))
            .await?;
        let last_used_ms = store
            .activity(&calls_of(ActivityQuery {
                limit: 1,
                ..ActivityQuery::default()
            }))
            .await?
            .first()
            .map(|c| c.at_ms);
        let mut history = store
            .activity(&ActivityQuery {
                grant: Some(grant),
                exclude_calls: true,
                limit: 200,
                ..ActivityQuery::default()
            })
            .await?;
        // The client's registration came before the grant and names no grant.
        if let Some(client) = history.iter().find_map(|r| r.client_id.clone()) {
            history.extend(
                store
                    .activity(&ActivityQuery {
                        client_id: Some(client),
                        event: Some("registered".into()),
                        limit: 1,
                        ..ActivityQuery::default()
                    })
                    .await?,
            );
        }
        Ok(GrantActivity {
            grant_id: grant,
            calls,
            next_before: next_before.flatten(),
            counts: store.activity_counts(grant).await?,
            errors,
            last_used_ms,
            history,
        })
    }
}
