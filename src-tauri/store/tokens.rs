//! Access and refresh tokens, by hash. Rotation marks the old refresh token instead of
//! deleting it, so that its replay can be detected.

use sqlx::Row;

use super::Store;
use super::token_cache::Cached;
use crate::error::Result;
use crate::oauth::bearer::AccessRecord;
use crate::oauth::introspect::{TokenFacts, TokenKind};
use crate::oauth::token::RefreshRecord;
use crate::oauth::{ClientId, GrantId, Resource, Scopes, TokenHash, UnixTime};

/// Hashes and lifetimes of a freshly minted token pair.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access: TokenHash,
    pub access_expires_at: UnixTime,
    pub refresh: TokenHash,
    pub refresh_expires_at: UnixTime,
    pub scopes: Scopes,
    pub issued_at: UnixTime,
}

/// Outcome of rotating a refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// Someone else rotated it first (a concurrent replay): treat as reuse.
    Lost,
}

impl Store {
    pub async fn insert_tokens(&self, grant: GrantId, t: &IssuedTokens) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_pair(&mut tx, grant, t).await?;
        tx.commit().await?;
        self.tokens.minted(&t.access);
        Ok(())
    }

    /// Marks `old` as rotated out and stores the new pair, in one transaction.
    pub async fn rotate_refresh(
        &self,
        old: &TokenHash,
        grant: GrantId,
        t: &IssuedTokens,
        now: UnixTime,
    ) -> Result<Rotation> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE tokens SET rotated_at = ? WHERE hash = ? AND kind = 'refresh' AND rotated_at IS NULL
             AND grant_id IN (SELECT id FROM grants WHERE revoked_at IS NULL)",
        )
        .bind(now)
        .bind(old.0.as_slice())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(Rotation::Lost);
        }
        insert_pair(&mut tx, grant, t).await?;
        tx.commit().await?;
        self.tokens.minted(&t.access);
        Ok(Rotation::Rotated)
    }

    /// The access token and its grant, if the grant is still active. Served from a cache
    /// that every revocation (from any process) invalidates; see `token_cache`.
    /// The record of an access token the cache holds (no database read): a token this
    /// broker issued and nobody revoked since the cache last saw the revocation counter.
    pub fn cached_access_token(&self, hash: &TokenHash) -> Option<std::sync::Arc<AccessRecord>> {
        match self.tokens.get(hash).0 {
            Cached::Record(r) => Some(r),
            _ => None,
        }
    }

    pub async fn access_token(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<std::sync::Arc<AccessRecord>>> {
        let epoch = match self.tokens.get(hash) {
            (Cached::Record(r), _) => return Ok(Some(r)),
            (Cached::Unknown, _) => return Ok(None),
            (Cached::Miss, epoch) => epoch,
        };
        let rec = self
            .access_token_uncached(hash)
            .await?
            .map(std::sync::Arc::new);
        match &rec {
            Some(r) => self.tokens.insert(hash.clone(), r.clone(), epoch),
            None => self.tokens.insert_unknown(hash.clone(), epoch),
        }
        Ok(rec)
    }

    async fn access_token_uncached(&self, hash: &TokenHash) -> Result<Option<AccessRecord>> {
        let row = sqlx::query(
            "SELECT t.grant_id, t.scope, t.expires_at, g.client_id, g.resource, g.account
             FROM tokens t JOIN grants g ON g.id = t.grant_id
             WHERE t.hash = ? AND t.kind = 'access' AND g.revoked_at IS NULL",
        )
        .bind(hash.0.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| AccessRecord {
            grant_id: GrantId(r.get("grant_id")),
            client_id: ClientId(r.get("client_id")),
            resource: Resource(r.get("resource")),
            scopes: Scopes::parse(r.get::<&str, _>("scope")).unwrap_or_default(),
            expires_at: r.get("expires_at"),
            account: r.get("account"),
        }))
    }

    pub async fn refresh_token(&self, hash: &TokenHash) -> Result<Option<RefreshRecord>> {
        let row = sqlx::query(
            "SELECT t.grant_id, t.scope, t.expires_at, t.rotated_at, g.client_id, g.resource
             FROM tokens t JOIN grants g ON g.id = t.grant_id
             WHERE t.hash = ? AND t.kind = 'refresh' AND g.revoked_at IS NULL",
        )
        .bind(hash.0.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| RefreshRecord {
            grant_id: GrantId(r.get("grant_id")),
            client_id: ClientId(r.get("client_id")),
            resource: Resource(r.get("resource")),
            scopes: Scopes::parse(r.get::<&str, _>("scope")).unwrap_or_default(),
            expires_at: r.get("expires_at"),
            rotated: r.get::<Option<i64>, _>("rotated_at").is_some(),
        }))
    }

    /// A token of either kind with its grant, if the grant is active: what
    /// introspection (RFC 7662) needs to decide. Never cached: introspection is rare.
    pub async fn token_facts(&self, hash: &TokenHash) -> Result<Option<TokenFacts>> {
        let row = sqlx::query(
            "SELECT t.grant_id, t.kind, t.scope, t.expires_at, t.issued_at, t.rotated_at, g.client_id, g.resource
             FROM tokens t JOIN grants g ON g.id = t.grant_id
             WHERE t.hash = ? AND g.revoked_at IS NULL",
        )
        .bind(hash.0.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| TokenFacts {
            grant_id: GrantId(r.get("grant_id")),
            client_id: ClientId(r.get("client_id")),
            kind: match r.get::<&str, _>("kind") {
                "refresh" => TokenKind::Refresh,
                _ => TokenKind::Access,
            },
            resource: Resource(r.get("resource")),
            scopes: Scopes::parse(r.get::<&str, _>("scope")).unwrap_or_default(),
            expires_at: r.get("expires_at"),
            issued_at: r.get("issued_at"),
            rotated: r.get::<Option<i64>, _>("rotated_at").is_some(),
        }))
    }

    /// The grant a token (of either kind) belongs to, and the client it was issued to.
    pub async fn token_owner(&self, hash: &TokenHash) -> Result<Option<(GrantId, ClientId)>> {
        let row = sqlx::query(
            "SELECT t.grant_id, g.client_id FROM tokens t JOIN grants g ON g.id = t.grant_id
             WHERE t.hash = ? AND g.revoked_at IS NULL",
        )
        .bind(hash.0.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (GrantId(r.get("grant_id")), ClientId(r.get("client_id")))))
    }
}

async fn insert_pair(
    tx: &mut sqlx::SqliteConnection,
    grant: GrantId,
    t: &IssuedTokens,
) -> Result<()> {
    let scope = t.scopes.to_string();
    sqlx::query("INSERT INTO tokens (hash, kind, grant_id, scope, expires_at, issued_at) VALUES (?, 'access', ?, ?, ?, ?), (?, 'refresh', ?, ?, ?, ?)")
        .bind(t.access.0.as_slice())
        .bind(grant.0)
        .bind(&scope)
        .bind(t.access_expires_at)
        .bind(t.issued_at)
        .bind(t.refresh.0.as_slice())
        .bind(grant.0)
        .bind(&scope)
        .bind(t.refresh_expires_at)
        .bind(t.issued_at)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
