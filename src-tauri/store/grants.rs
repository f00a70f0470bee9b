//! Grants: created on approval, listed for the user, revoked in one transaction that
//! also deletes their tokens and codes.

use serde::Serialize;
use sqlx::Row;

use super::Store;
use crate::error::Result;
use crate::oauth::{ClientId, GrantId, Resource, Scopes, UnixTime};

/// One active grant. `client_name` is the client's name, or its id when it gave none.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GrantSummary {
    pub id: GrantId,
    pub client_id: String,
    pub client_name: String,
    pub upstream: String,
    pub resource: String,
    pub scope: String,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RevokedGrant {
    pub id: GrantId,
    pub client_name: String,
    pub upstream: String,
}

/// An approval to record: the grant it belongs to and its single-use code.
#[derive(Debug, Clone, Copy)]
pub struct NewCode<'a> {
    pub client_id: &'a ClientId,
    pub upstream: &'a str,
    pub resource: &'a Resource,
    pub scopes: &'a Scopes,
    pub code: &'a crate::oauth::TokenHash,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub expires_at: UnixTime,
    pub now: UnixTime,
}

impl Store {
    /// Records an approval: reuses the client's active grant for this resource (or
    /// creates one) and stores the authorization code, in one transaction.
    pub async fn approve(&self, c: &NewCode<'_>) -> Result<GrantId> {
        let NewCode {
            client_id,
            upstream,
            resource,
            scopes,
            code,
            redirect_uri,
            code_challenge,
            expires_at: code_expires_at,
            now,
        } = *c;
        let mut tx = self.write_tx().await?;
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM grants WHERE client_id = ? AND resource = ? AND revoked_at IS NULL",
        )
        .bind(&client_id.0)
        .bind(&resource.0)
        .fetch_optional(&mut *tx)
        .await?;
        let scope = scopes.to_string();
        let grant = match existing {
            Some(id) => {
                sqlx::query("UPDATE grants SET scope = ? WHERE id = ?").bind(&scope).bind(id).execute(&mut *tx).await?;
                id
            }
            None => {
                sqlx::query_scalar(
                    "INSERT INTO grants (client_id, upstream, resource, scope, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(&client_id.0)
                .bind(upstream)
                .bind(&resource.0)
                .bind(&scope)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        sqlx::query(
            "INSERT INTO codes (hash, grant_id, client_id, redirect_uri, code_challenge, resource, scope, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(code.0.as_slice())
        .bind(grant)
        .bind(&client_id.0)
        .bind(redirect_uri)
        .bind(code_challenge)
        .bind(&resource.0)
        .bind(&scope)
        .bind(code_expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(GrantId(grant))
    }

    /// Marks the grant revoked and deletes its tokens and unused codes, atomically.
    /// Returns `None` when there is no such active grant.
    pub async fn revoke_grant(&self, id: GrantId, now: UnixTime) -> Result<Option<RevokedGrant>> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL
             RETURNING upstream, (SELECT name FROM clients WHERE clients.id = grants.client_id) AS client_name,
                       client_id",
        )
        .bind(now)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM tokens WHERE grant_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM codes WHERE grant_id = ? AND used_at IS NULL")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // After the commit, so that whoever sees the new counter reads the revocation.
        self.tokens.revoked()?;
        let name: Option<String> = row.get("client_name");
        let client_id: String = row.get("client_id");
        Ok(Some(RevokedGrant {
            id,
            client_name: name.filter(|n| !n.is_empty()).unwrap_or(client_id),
            upstream: row.get("upstream"),
        }))
    }

    pub async fn active_grants(&self) -> Result<Vec<GrantSummary>> {
        let rows = sqlx::query(
            "SELECT g.id, g.client_id, COALESCE(NULLIF(trim(c.name), ''), g.client_id) AS name, g.upstream, g.resource, g.scope, g.created_at, g.last_used_at
             FROM grants g JOIN clients c ON c.id = g.client_id
             WHERE g.revoked_at IS NULL ORDER BY g.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| GrantSummary {
                id: GrantId(r.get("id")),
                client_id: r.get("client_id"),
                client_name: r.get("name"),
                upstream: r.get("upstream"),
                resource: r.get("resource"),
                scope: r.get("scope"),
                created_at: r.get("created_at"),
                last_used_at: r.get("last_used_at"),
            })
            .collect())
    }

    /// Which of `ids` are no longer active (revoked here or by another process).
    pub async fn inactive_among(&self, ids: &[GrantId]) -> Result<Vec<GrantId>> {
        let mut gone = Vec::new();
        for id in ids {
            let active: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM grants WHERE id = ? AND revoked_at IS NULL")
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
            if active.is_none() {
                gone.push(*id);
            }
        }
        Ok(gone)
    }

    /// SQLite's `data_version`: changes when another connection commits, so the server
    /// notices revocations made by the CLI without re-reading every grant.
    pub async fn data_version(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Grows by one with every grant created and every grant revoked, by any process:
    /// how the running broker notices what the CLI changed.
    pub async fn grants_generation(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) + count(revoked_at) FROM grants")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn touch_grant(&self, id: GrantId, now: UnixTime) -> Result<()> {
        sqlx::query("UPDATE grants SET last_used_at = ? WHERE id = ?")
            .bind(now)
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
