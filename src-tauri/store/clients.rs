//! Registered clients: recorded at registration (RFC 7591) or from a Client ID Metadata
//! Document, listed and deleted by the person, and purged when stale. A deleted client
//! is never returned by [`Store::client`], so its next request answers `invalid_client`.
//! The reserved client of personal access tokens is not a registration and is never
//! returned either.

use serde::Serialize;
use sqlx::Row;

use super::Store;
use super::grants::{RevokedGrant, revoke_all_in};
use crate::error::Result;
use crate::oauth::cimd::is_metadata_client_id;
use crate::oauth::{AuthMethod, Client, ClientId, TokenHash, UnixTime, register::Registration};

/// One client registration, as the person sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RegisteredClient {
    pub client_id: String,
    pub client_name: String,
    /// `dynamic` (RFC 7591) or `metadata_document` (its id is its document's URL).
    pub kind: &'static str,
    pub auth_method: String,
    pub redirect_uris: Vec<String>,
    pub created_at: UnixTime,
    pub active_grants: i64,
    /// The last use of any of its grants.
    pub last_used_at: Option<UnixTime>,
}

/// A deleted registration: its name and the grants that went with it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedClient {
    pub client_name: String,
    pub revoked: Vec<RevokedGrant>,
}

// Every query of registrations has `auth_method != 'personal_token' AND deleted_at IS
// NULL`: the personal tokens' reserved client is not a registration, and a deleted one
// is gone.

impl Store {
    pub async fn insert_client(
        &self,
        id: &ClientId,
        reg: &Registration,
        secret_hash: Option<&TokenHash>,
        now: UnixTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO clients (id, name, auth_method, secret_hash, redirect_uris, metadata, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id.0)
        .bind(&reg.client_name)
        .bind(reg.auth_method.as_str())
        .bind(secret_hash.map(|h| h.0.to_vec()))
        .bind(serde_json::to_string(&reg.redirect_uris).unwrap_or_default())
        .bind(serde_json::Value::Object(reg.metadata.clone()).to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records (or refreshes) a client described by a Client ID Metadata Document; its
    /// id is the document URL and it is always public.
    pub async fn upsert_metadata_client(&self, c: &Client, now: UnixTime) -> Result<()> {
        let metadata = serde_json::json!({
            "client_id": c.id.0,
            "client_name": c.name,
            "redirect_uris": c.redirect_uris,
            "token_endpoint_auth_method": "none",
            "client_id_metadata_document": true,
        });
        sqlx::query(
            "INSERT INTO clients (id, name, auth_method, secret_hash, redirect_uris, metadata, created_at)
             VALUES (?, ?, 'none', NULL, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, auth_method = 'none',
               secret_hash = NULL, redirect_uris = excluded.redirect_uris, metadata = excluded.metadata,
               deleted_at = NULL",
        )
        .bind(&c.id.0)
        .bind(&c.name)
        .bind(serde_json::to_string(&c.redirect_uris).unwrap_or_default())
        .bind(metadata.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn client(&self, id: &str) -> Result<Option<Client>> {
        let row = sqlx::query(
            "SELECT id, name, auth_method, secret_hash, redirect_uris FROM clients WHERE id = ? AND auth_method != 'personal_token' AND deleted_at IS NULL"
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Client {
            id: ClientId(r.get("id")),
            name: r.get("name"),
            auth_method: AuthMethod::parse(r.get::<&str, _>("auth_method"))
                .unwrap_or(AuthMethod::ClientSecretBasic),
            secret_hash: r
                .get::<Option<Vec<u8>>, _>("secret_hash")
                .and_then(|b| TokenHash::from_slice(&b)),
            redirect_uris: serde_json::from_str(r.get::<&str, _>("redirect_uris"))
                .unwrap_or_default(),
        }))
    }

    /// Every registration, in the order they registered.
    pub async fn registrations(&self) -> Result<Vec<RegisteredClient>> {
        let rows = sqlx::query(
            "SELECT c.id, c.name, c.auth_method, c.redirect_uris, c.created_at,
                    (SELECT count(*) FROM grants g WHERE g.client_id = c.id AND g.revoked_at IS NULL) AS active,
                    (SELECT max(g.last_used_at) FROM grants g WHERE g.client_id = c.id) AS last_used
             FROM clients c WHERE auth_method != 'personal_token' AND deleted_at IS NULL ORDER BY c.rowid"
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let id: String = r.get("id");
                RegisteredClient {
                    kind: if is_metadata_client_id(&id) {
                        "metadata_document"
                    } else {
                        "dynamic"
                    },
                    client_name: r.get("name"),
                    auth_method: r.get("auth_method"),
                    redirect_uris: serde_json::from_str(r.get::<&str, _>("redirect_uris"))
                        .unwrap_or_default(),
                    created_at: r.get("created_at"),
                    active_grants: r.get("active"),
                    last_used_at: r.get("last_used"),
                    client_id: id,
                }
            })
            .collect())
    }

    /// Deletes a registration and revokes its grants, in one transaction. The row stays
    /// (marked deleted) while revoked grants still name it. `None`: no such registration.
    pub async fn delete_client(&self, id: &str, now: UnixTime) -> Result<Option<DeletedClient>> {
        let mut tx = self.write_tx().await?;
        let name: Option<String> = sqlx::query_scalar(
            "SELECT name FROM clients WHERE id = ? AND auth_method != 'personal_token' AND deleted_at IS NULL"
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(name) = name else {
            return Ok(None);
        };
        let revoked = revoke_all_in(&mut tx, Some(id), now).await?;
        sqlx::query("UPDATE clients SET deleted_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM clients WHERE id = ? AND id NOT IN (SELECT client_id FROM grants)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if !revoked.is_empty() {
            self.tokens.revoked()?;
        }
        Ok(Some(DeletedClient {
            client_name: if name.trim().is_empty() {
                id.to_owned()
            } else {
                name
            },
            revoked,
        }))
    }

    /// Registration is open to every local process, so registrations that hold no active
    /// grant and saw no activity since `cutoff` go: removed when no grant ever named
    /// them, marked deleted otherwise (revoked grants keep naming them). Deleted ones are
    /// removed once nothing names them.
    pub async fn purge_stale_registrations(&self, cutoff: UnixTime, now: UnixTime) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let marked = sqlx::query(
            "UPDATE clients SET deleted_at = ?1 WHERE auth_method != 'personal_token' AND deleted_at IS NULL AND created_at < ?2
               AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = clients.id
                 AND (g.revoked_at IS NULL
                      OR max(g.created_at, coalesce(g.last_used_at, 0), g.revoked_at) >= ?2))"
        )
        .bind(now)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM clients WHERE deleted_at IS NOT NULL AND id NOT IN (SELECT client_id FROM grants)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(marked.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{IssuedTokens, NewCode, NewPersonalGrant};
    use super::*;
    use crate::oauth::register::validate_registration;
    use crate::oauth::{GrantId, Resource, Scopes};

    const NOW: UnixTime = 1_800_000_000;
    const DAY: UnixTime = 86_400;

    async fn client(store: &Store, id: &str, at: UnixTime) -> ClientId {
        let reg =
            validate_registration(&serde_json::json!({"redirect_uris": ["http://127.0.0.1/cb"]}))
                .unwrap();
        let id = ClientId(id.into());
        store.insert_client(&id, &reg, None, at).await.unwrap();
        id
    }

    async fn grant(store: &Store, client: &ClientId, at: UnixTime) -> GrantId {
        let scopes = Scopes::single("mcp");
        let resource = Resource("http://127.0.0.1:1/mcp/up".into());
        let code = TokenHash::of(&format!("code-{client}-{at}"));
        store
            .approve(&NewCode {
                client_id: client,
                upstream: "up",
                resource: &resource,
                scopes: &scopes,
                code: &code,
                redirect_uri: "http://127.0.0.1/cb",
                code_challenge: "ch",
                expires_at: at + 60,
                now: at,
                account: None,
            })
            .await
            .unwrap()
    }

    fn ids(regs: &[RegisteredClient]) -> Vec<&str> {
        regs.iter().map(|r| r.client_id.as_str()).collect()
    }

    #[tokio::test]
    async fn stale_registrations_go_and_granted_or_recent_ones_stay() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        client(&store, "never-granted", NOW - 2 * DAY).await;
        let revoked_long_ago = client(&store, "revoked-long-ago", NOW - 3 * DAY).await;
        let g = grant(&store, &revoked_long_ago, NOW - 3 * DAY).await;
        store.revoke_grant(g, NOW - 2 * DAY).await.unwrap();
        let revoked_recently = client(&store, "revoked-recently", NOW - 3 * DAY).await;
        let g = grant(&store, &revoked_recently, NOW - 3 * DAY).await;
        store.revoke_grant(g, NOW - 60).await.unwrap();
        let active = client(&store, "active", NOW - 3 * DAY).await;
        grant(&store, &active, NOW - 3 * DAY).await;
        client(&store, "new", NOW - 60).await;

        store
            .purge_stale_registrations(NOW - DAY, NOW)
            .await
            .unwrap();
        let regs = store.registrations().await.unwrap();
        assert_eq!(ids(&regs), vec!["revoked-recently", "active", "new"]);
        assert!(store.client("never-granted").await.unwrap().is_none());
        assert!(
            store.client("revoked-long-ago").await.unwrap().is_none(),
            "marked deleted: its id is never valid again"
        );
        assert_eq!(regs[1].active_grants, 1);
    }

    #[tokio::test]
    async fn deleting_revokes_every_grant_and_hides_the_client() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        let c = client(&store, "c", NOW).await;
        let g = grant(&store, &c, NOW).await;
        store
            .insert_tokens(
                g,
                &IssuedTokens {
                    access: TokenHash::of("a"),
                    access_expires_at: NOW + 60,
                    refresh: TokenHash::of("r"),
                    refresh_expires_at: NOW + 600,
                    scopes: Scopes::single("mcp"),
                    issued_at: NOW,
                },
            )
            .await
            .unwrap();
        let deleted = store.delete_client("c", NOW).await.unwrap().unwrap();
        assert_eq!(deleted.revoked.len(), 1);
        assert!(store.client("c").await.unwrap().is_none());
        assert!(
            store
                .access_token(&TokenHash::of("a"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.delete_client("c", NOW).await.unwrap().is_none());
        assert!(store.registrations().await.unwrap().is_empty());
        // A purge keeps the row (its revoked grant still names it); it stays hidden.
        store.purge_stale_registrations(NOW, NOW).await.unwrap();
        assert!(store.client("c").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_personal_tokens_client_is_not_a_registration() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        let scopes = Scopes::single("mcp");
        let resource = Resource("http://127.0.0.1:1/mcp/up".into());
        store
            .create_personal_grant(&NewPersonalGrant {
                upstream: "up",
                resource: &resource,
                scopes: &scopes,
                label: "script",
                expires_at: None,
                tools: &[],
                token: &TokenHash::of("mcpb_pat_x"),
                now: NOW - 3 * DAY,
            })
            .await
            .unwrap();
        let id = crate::oauth::personal::PERSONAL_CLIENT_ID;
        assert!(store.client(id).await.unwrap().is_none());
        assert!(store.registrations().await.unwrap().is_empty());
        assert!(store.delete_client(id, NOW).await.unwrap().is_none());
        store.purge_stale_registrations(NOW, NOW).await.unwrap();
        let grants = store.active_grants().await.unwrap();
        assert_eq!(grants.len(), 1, "a purge leaves personal tokens alone");
        assert_eq!(grants[0].client_name, "script");
        let rec = store
            .access_token(&TokenHash::of("mcpb_pat_x"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.expires_at, crate::oauth::personal::NEVER_EXPIRES);
    }
}
