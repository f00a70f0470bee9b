//! Grants: created on approval or as a personal access token, listed for the user,
//! revoked (one, one client's, or all) in one transaction that also deletes their tokens
//! and codes.

use serde::Serialize;
use sqlx::Row;

use super::Store;
use crate::error::Result;
use crate::oauth::personal::{NEVER_EXPIRES, PERSONAL_CLIENT_ID, PERSONAL_CLIENT_NAME};
use crate::oauth::{ClientId, GrantId, Resource, Scopes, TokenHash, UnixTime};

/// One active grant. `client_name` is the client's name, or its id when it gave none;
/// for a personal access token, its label.
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
    pub kind: GrantKind,
    /// A personal access token's label.
    pub label: Option<String>,
    /// When a personal access token stops working (`None`: never, or an OAuth grant,
    /// whose tokens expire and are refreshed on their own).
    pub expires_at: Option<UnixTime>,
    /// The tools a personal access token is meant for (`None`: all). Enforced by the
    /// grant's tool policy, made from it when the token is.
    pub tools: Option<Vec<String>>,
    /// The upstream account the grant uses (`None`: the upstream has no named accounts).
    pub account: Option<String>,
}

/// How a grant came to be.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    /// Approved by the person through `/authorize`.
    Oauth,
    /// Minted by the person as a personal access token.
    PersonalToken,
}

impl GrantKind {
    fn parse(s: &str) -> GrantKind {
        match s {
            "personal_token" => GrantKind::PersonalToken,
            _ => GrantKind::Oauth,
        }
    }

    /// How a person reads it.
    pub fn describe(self) -> &'static str {
        match self {
            GrantKind::Oauth => "oauth",
            GrantKind::PersonalToken => "personal token",
        }
    }
}

/// A personal access token to record (see [`Store::create_personal_grant`]).
#[derive(Debug, Clone, Copy)]
pub struct NewPersonalGrant<'a> {
    pub upstream: &'a str,
    pub resource: &'a Resource,
    pub scopes: &'a Scopes,
    pub label: &'a str,
    pub expires_at: Option<UnixTime>,
    pub tools: &'a [String],
    pub token: &'a TokenHash,
    pub now: UnixTime,
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
    /// The upstream account chosen at consent (`None`: the implicit one).
    pub account: Option<&'a str>,
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
            account,
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
                sqlx::query("UPDATE grants SET scope = ?, account = ? WHERE id = ?")
                    .bind(&scope)
                    .bind(account)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => {
                sqlx::query_scalar(
                    "INSERT INTO grants (client_id, upstream, resource, scope, created_at, account) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(&client_id.0)
                .bind(upstream)
                .bind(&resource.0)
                .bind(&scope)
                .bind(now)
                .bind(account)
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
        let Some(revoked) = revoke_in(&mut tx, id, now).await? else {
            return Ok(None);
        };
        tx.commit().await?;
        // After the commit, so that whoever sees the new counter reads the revocation.
        self.tokens.revoked()?;
        Ok(Some(revoked))
    }

    /// Revokes every active grant, or every active grant of one client, in one
    /// transaction: "revoke all" is all or nothing.
    pub async fn revoke_grants(
        &self,
        client: Option<&str>,
        now: UnixTime,
    ) -> Result<Vec<RevokedGrant>> {
        let mut tx = self.write_tx().await?;
        let revoked = revoke_all_in(&mut tx, client, now).await?;
        tx.commit().await?;
        if !revoked.is_empty() {
            self.tokens.revoked()?;
        }
        Ok(revoked)
    }

    /// Records a personal access token: its grant (under the reserved client, created
    /// here if a purge removed it) and its token hash, in one transaction. The revocation
    /// counter moves too, so that a running broker notices a grant made by another
    /// process (the CLI) on its next maintenance tick.
    pub async fn create_personal_grant(&self, p: &NewPersonalGrant<'_>) -> Result<GrantId> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO clients (id, name, auth_method, secret_hash, redirect_uris, metadata, created_at)
             VALUES (?, ?, 'personal_token', NULL, '[]', '{}', ?) ON CONFLICT(id) DO NOTHING",
        )
        .bind(PERSONAL_CLIENT_ID)
        .bind(PERSONAL_CLIENT_NAME)
        .bind(p.now)
        .execute(&mut *tx)
        .await?;
        let tools =
            (!p.tools.is_empty()).then(|| serde_json::to_string(p.tools).unwrap_or_default());
        let grant: i64 = sqlx::query_scalar(
            "INSERT INTO grants (client_id, upstream, resource, scope, created_at, kind, label, expires_at, tools)
             VALUES (?, ?, ?, ?, ?, 'personal_token', ?, ?, ?) RETURNING id",
        )
        .bind(PERSONAL_CLIENT_ID)
        .bind(p.upstream)
        .bind(&p.resource.0)
        .bind(p.scopes.to_string())
        .bind(p.now)
        .bind(p.label)
        .bind(p.expires_at)
        .bind(tools)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO tokens (hash, kind, grant_id, scope, expires_at, issued_at) VALUES (?, 'access', ?, ?, ?, ?)",
        )
        .bind(p.token.0.as_slice())
        .bind(grant)
        .bind(p.scopes.to_string())
        .bind(p.expires_at.unwrap_or(NEVER_EXPIRES))
        .bind(p.now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // The token exists now and must be shown: a running broker without the counter
        // still notices through `data_version`, so a failure here is only logged.
        if let Err(e) = self.tokens.revoked() {
            tracing::warn!("cannot move the revocation counter for a new grant: {e}");
        }
        Ok(GrantId(grant))
    }

    pub async fn active_grants(&self) -> Result<Vec<GrantSummary>> {
        let rows = sqlx::query(
            "SELECT g.id, g.client_id, COALESCE(NULLIF(trim(g.label), ''), NULLIF(trim(c.name), ''), g.client_id) AS name,
                    g.upstream, g.resource, g.scope, g.created_at, g.last_used_at, g.kind, g.label, g.expires_at, g.tools, g.account
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
                kind: GrantKind::parse(r.get("kind")),
                label: r.get("label"),
                expires_at: r.get("expires_at"),
                tools: r
                    .get::<Option<String>, _>("tools")
                    .and_then(|t| serde_json::from_str(&t).ok()),
                account: r.get("account"),
            })
            .collect())
    }

    /// The account this client chose last for this upstream, offered as the suggestion
    /// the next time consent asks (never pre-selected).
    pub async fn last_account(&self, client_id: &str, upstream: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT account FROM grants WHERE client_id = ? AND upstream = ? AND account IS NOT NULL
             ORDER BY id DESC LIMIT 1",
        )
        .bind(client_id)
        .bind(upstream)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Moves an active grant to another account of its upstream. Its access tokens stay
    /// valid; the token cache is emptied so the next request carries the new account.
    /// Returns false when there is no such active grant.
    pub async fn set_grant_account(&self, id: GrantId, account: Option<&str>) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("UPDATE grants SET account = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(account)
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        if let Err(e) = self.tokens.revoked() {
            tracing::warn!("cannot move the revocation counter after an account switch: {e}");
        }
        Ok(n == 1)
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

/// Revokes one active grant inside `tx`: marks it, deletes its tokens and unused codes.
async fn revoke_in(
    tx: &mut sqlx::SqliteConnection,
    id: GrantId,
    now: UnixTime,
) -> Result<Option<RevokedGrant>> {
    let row = sqlx::query(
        "UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL
         RETURNING upstream, label, (SELECT name FROM clients WHERE clients.id = grants.client_id) AS client_name,
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
    let label: Option<String> = row.get("label");
    let name: Option<String> = row.get("client_name");
    let client_id: String = row.get("client_id");
    Ok(Some(RevokedGrant {
        id,
        client_name: [label, name]
            .into_iter()
            .flatten()
            .find(|n| !n.trim().is_empty())
            .unwrap_or(client_id),
        upstream: row.get("upstream"),
    }))
}

/// Revokes every active grant (of one client, if given) inside `tx`.
pub(super) async fn revoke_all_in(
    tx: &mut sqlx::SqliteConnection,
    client: Option<&str>,
    now: UnixTime,
) -> Result<Vec<RevokedGrant>> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM grants WHERE revoked_at IS NULL AND (?1 IS NULL OR client_id = ?1) ORDER BY id",
    )
    .bind(client)
    .fetch_all(&mut *tx)
    .await?;
    let mut revoked = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = revoke_in(tx, GrantId(id), now).await? {
            revoked.push(r);
        }
    }
    Ok(revoked)
}
