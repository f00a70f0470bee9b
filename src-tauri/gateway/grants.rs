//! Grants: listing them for the person, revoking them (one, one client's, or all: every
//! path ends in [`Gateway::after_revocation`]), the token revocation endpoint (RFC 7009),
//! and noticing what another process changed.
//!
//! A revocation made here emits [`GatewayEvent::GrantRevoked`] once. A revocation made by
//! another process (`mcp-broker grants revoke`) moves the shared revocation counter;
//! the maintenance tick sees it move, re-reads the active grants, ends the sessions of
//! the ones that are gone and announces each once with [`RevokeReason::External`].

use std::collections::HashMap;

use serde::Serialize;

use crate::clock::now;
use crate::events::{GatewayEvent, RevokeReason};
use crate::oauth::token::{authenticate_client, client_credentials, single_params};
use crate::oauth::{GrantId, OAuthError, TokenHash};
use crate::store::{GrantSummary, RevokedGrant};

use super::{Gateway, GatewayError};

/// The active grants by id: (client display name, upstream).
pub(super) type KnownGrants = HashMap<GrantId, (String, String)>;

/// One active grant as every front end shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GrantView {
    #[serde(flatten)]
    pub grant: GrantSummary,
    /// Open MCP sessions (0 in a process that serves nothing, such as the CLI).
    pub sessions: usize,
    /// The accounts of the grant's upstream it could switch to (empty: the upstream
    /// has fewer than two).
    pub upstream_accounts: Vec<String>,
}

impl Gateway {
    /// One active grant, or `UnknownGrant` (revoked, expired or never issued).
    pub(super) async fn active_grant(&self, grant: GrantId) -> Result<GrantSummary, GatewayError> {
        self.inner
            .store
            .active_grants()
            .await?
            .into_iter()
            .find(|g| g.id == grant)
            .ok_or(GatewayError::UnknownGrant(grant))
    }

    pub async fn list_grants(&self) -> Result<Vec<GrantView>, GatewayError> {
        let grants = self.inner.store.active_grants().await?;
        Ok(grants
            .into_iter()
            .map(|grant| GrantView {
                sessions: self.inner.upstreams.sessions_of_grant(grant.id),
                upstream_accounts: self
                    .config()
                    .upstream(&grant.upstream)
                    .filter(|u| u.needs_account_choice())
                    .map(|u| u.account_names().into_iter().map(str::to_owned).collect())
                    .unwrap_or_default(),
                grant,
            })
            .collect())
    }

    /// Revokes a grant: its tokens and codes are gone in one transaction, then its MCP
    /// sessions end (children exit, streams close), and listeners hear it once.
    pub async fn revoke_grant(
        &self,
        id: GrantId,
        reason: RevokeReason,
    ) -> Result<RevokedGrant, GatewayError> {
        let revoked = {
            let _serial = self.inner.revocations.lock().await;
            let revoked = self.inner.store.revoke_grant(id, now()).await?;
            if let Some(g) = &revoked {
                self.forget_grant(g.id);
            }
            revoked
        };
        let Some(g) = revoked else {
            self.inner.upstreams.stop_for_grant(id).await;
            return Err(GatewayError::UnknownGrant(id));
        };
        self.after_revocation(&g, reason).await;
        Ok(g)
    }

    /// Revokes every active grant (`client: None`) or every active grant of one client,
    /// in one transaction, then ends their sessions and announces each once. Effective on
    /// the next request, in this process and in a running broker alike.
    pub async fn revoke_all(
        &self,
        client: Option<&str>,
        reason: RevokeReason,
    ) -> Result<Vec<RevokedGrant>, GatewayError> {
        let revoked = {
            let _serial = self.inner.revocations.lock().await;
            let revoked = self.inner.store.revoke_grants(client, now()).await?;
            for g in &revoked {
                self.forget_grant(g.id);
            }
            revoked
        };
        for g in &revoked {
            self.record_revoked(g, reason, true);
            self.announce_revocation(g, reason).await;
        }
        Ok(revoked)
    }

    /// What follows every committed revocation: the grant's sessions end (children exit,
    /// streams close) and listeners hear it once.
    pub(super) async fn after_revocation(&self, g: &RevokedGrant, reason: RevokeReason) {
        self.record_revoked(g, reason, false);
        self.announce_revocation(g, reason).await;
    }

    async fn announce_revocation(&self, g: &RevokedGrant, reason: RevokeReason) {
        self.inner.upstreams.stop_for_grant(g.id).await;
        tracing::info!(grant = %g.id, upstream = %g.upstream, ?reason, "grant revoked");
        self.forget_grant(g.id);
        self.emit(GatewayEvent::GrantRevoked {
            grant_id: g.id,
            client_name: g.client_name.clone(),
            upstream: g.upstream.clone(),
            reason,
        });
    }

    /// `POST /revoke` (RFC 7009 §2.1). Revoking either token of a grant revokes the grant
    /// (the client is signing out), so its sessions end too. An unknown token, or one of
    /// another client, is not an error (§2.2), so this cannot probe other clients' tokens.
    pub async fn revoke_token(
        &self,
        form: &[(String, String)],
        authorization: Option<&str>,
    ) -> Result<(), GatewayError> {
        let params = single_params(form)?;
        let creds = client_credentials(&params, authorization)?;
        let client = self.inner.store.client(&creds.client_id).await?;
        let client_id = authenticate_client(client.as_ref(), &creds)?;
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        if let Some((grant, owner)) = self.inner.store.token_owner(&TokenHash::of(token)).await?
            && owner == client_id
        {
            match self.revoke_grant(grant, RevokeReason::Client).await {
                Ok(_) | Err(GatewayError::UnknownGrant(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Records use of a grant, at most once a minute per grant (a write per request
    /// would cost an fsync on the hot path).
    pub(super) fn touch_grant(&self, id: GrantId) {
        let t = now();
        {
            let mut m = self.inner.touched.lock().unwrap_or_else(|e| e.into_inner());
            match m.get(&id) {
                Some(last) if t - *last < 60 => return,
                _ => {
                    m.insert(id, t);
                }
            }
        }
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_grant(id, t).await {
                tracing::warn!(grant = %id, "could not record last use: {e}");
            }
        });
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Option<KnownGrants>> {
        self.inner
            .known_grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn known_grant(&self, id: GrantId, client_name: &str, upstream: &str) {
        if let Some(k) = self.known().as_mut() {
            k.insert(id, (client_name.to_owned(), upstream.to_owned()));
        }
    }

    pub(super) fn forget_grant(&self, id: GrantId) {
        if let Some(k) = self.known().as_mut() {
            k.remove(&id);
        }
    }

    /// One maintenance tick's look for changes made by another process. `last_seen` is
    /// the revocation counter (or, without one, SQLite's `data_version`) at the last look.
    pub(super) async fn notice_changes(&self, last_seen: &mut Option<i64>) {
        let seen = match self.inner.store.revocation_epoch() {
            Some(epoch) => epoch as i64,
            None => match self.inner.store.data_version().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("reading data_version failed: {e}");
                    return;
                }
            },
        };
        let first = last_seen.is_none();
        if *last_seen == Some(seen) {
            return;
        }
        let serial = self.inner.revocations.lock().await;
        let active = match self.inner.store.active_grants().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("reading the grants failed: {e}");
                return;
            }
        };
        *last_seen = Some(seen);
        let now: KnownGrants = active
            .into_iter()
            .map(|g| (g.id, (g.client_name, g.upstream)))
            .collect();
        let before = self.known().replace(now.clone()).unwrap_or_default();
        let with_sessions = self.inner.upstreams.grants_with_sessions();
        let ask = unseen(&before, &now, &with_sessions);
        let inactive = if ask.is_empty() {
            Vec::new()
        } else {
            match self.inner.store.inactive_among(&ask).await {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!("reading the grants failed: {e}");
                    Vec::new()
                }
            }
        };
        let Settled {
            end,
            mut gone,
            keep,
        } = settle(before, &now, with_sessions, &inactive);
        if let Some(k) = self.known().as_mut() {
            k.extend(keep);
        }
        if first {
            gone.clear();
        }
        drop(serial);
        if !first {
            self.notice_tool_changes().await;
        }
        for id in end {
            tracing::info!(grant = %id, "grant revoked elsewhere; ending its sessions");
            self.inner.upstreams.stop_for_grant(id).await;
        }
        for (grant_id, (client_name, upstream)) in gone {
            // The process that revoked it (the CLI) recorded who did; this broker only
            // announces it.
            self.emit(GatewayEvent::GrantRevoked {
                grant_id,
                client_name,
                upstream,
                reason: RevokeReason::External,
            });
        }
        if !first {
            self.emit(GatewayEvent::GrantsChanged);
        }
    }
}

/// The grants a tick must ask the store about: known before, or holding sessions, and
/// missing from the grants it just read. The read is a moment old by then: a grant
/// approved since is missing from it too, and only the store can tell the two apart.
fn unseen(before: &KnownGrants, now: &KnownGrants, with_sessions: &[GrantId]) -> Vec<GrantId> {
    let mut ask: Vec<GrantId> = before
        .keys()
        .chain(with_sessions)
        .filter(|id| !now.contains_key(id))
        .copied()
        .collect();
    ask.sort();
    ask.dedup();
    ask
}

/// What a tick does once the store said which of [`unseen`] are `inactive`.
#[derive(Debug, PartialEq)]
struct Settled {
    /// Grants whose sessions end.
    end: Vec<GrantId>,
    /// Grants announced as revoked by another process.
    gone: Vec<(GrantId, (String, String))>,
    /// Grants missing from the read that are still active: known again.
    keep: Vec<(GrantId, (String, String))>,
}

fn settle(
    before: KnownGrants,
    now: &KnownGrants,
    with_sessions: Vec<GrantId>,
    inactive: &[GrantId],
) -> Settled {
    let mut gone = Vec::new();
    let mut keep = Vec::new();
    for (id, names) in before {
        if now.contains_key(&id) {
            continue;
        }
        if inactive.contains(&id) {
            gone.push((id, names));
        } else {
            keep.push((id, names));
        }
    }
    gone.sort_by_key(|(id, _)| *id);
    keep.sort_by_key(|(id, _)| *id);
    let end = with_sessions
        .into_iter()
        .filter(|id| !now.contains_key(id) && inactive.contains(id))
        .collect();
    Settled { end, gone, keep }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(ids: &[i64]) -> KnownGrants {
        ids.iter()
            .map(|i| (GrantId(*i), (format!("client {i}"), "notes".to_owned())))
            .collect()
    }

    #[test]
    fn a_grant_approved_after_the_read_keeps_its_session() {
        // Known: 1 and 2. Read: only 1 (2 was revoked by the CLI). Grant 3 was approved
        // after the read and already has a session; the store says only 2 is inactive.
        let before = grants(&[1, 2]);
        let now = grants(&[1]);
        let sessions = vec![GrantId(1), GrantId(2), GrantId(3)];
        assert_eq!(
            unseen(&before, &now, &sessions),
            vec![GrantId(2), GrantId(3)]
        );
        let s = settle(before, &now, sessions, &[GrantId(2)]);
        assert_eq!(s.end, vec![GrantId(2)]);
        assert_eq!(
            s.gone,
            vec![(GrantId(2), ("client 2".into(), "notes".into()))]
        );
        assert!(s.keep.is_empty());
    }

    #[test]
    fn a_known_grant_missing_from_a_stale_read_is_kept_not_announced() {
        let before = grants(&[1, 4]);
        let now = grants(&[1]);
        let s = settle(before, &now, vec![GrantId(4)], &[]);
        assert!(s.end.is_empty() && s.gone.is_empty());
        assert_eq!(
            s.keep,
            vec![(GrantId(4), ("client 4".into(), "notes".into()))]
        );
    }
}
