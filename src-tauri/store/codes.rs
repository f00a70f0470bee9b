//! Authorization codes: stored hashed, redeemed at most once.

use sqlx::Row;

use super::Store;
use crate::error::Result;
use crate::oauth::token::CodeRecord;
use crate::oauth::{ClientId, GrantId, Resource, Scopes, TokenHash, UnixTime};

#[derive(Debug)]
pub enum Redeemed {
    Fresh(CodeRecord),
    /// The code was already exchanged: RFC 6749 §4.1.2 says to revoke what it issued.
    AlreadyUsed(GrantId),
    Unknown,
}

impl Store {
    /// Marks the code used; exactly one caller can win this, even under a race.
    pub async fn redeem_code(&self, hash: &TokenHash, now: UnixTime) -> Result<Redeemed> {
        let row = sqlx::query(
            "UPDATE codes SET used_at = ? WHERE hash = ? AND used_at IS NULL
             RETURNING grant_id, client_id, redirect_uri, code_challenge, resource, scope, expires_at",
        )
        .bind(now)
        .bind(hash.0.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = row {
            return Ok(Redeemed::Fresh(CodeRecord {
                grant_id: GrantId(r.get("grant_id")),
                client_id: ClientId(r.get("client_id")),
                redirect_uri: r.get("redirect_uri"),
                code_challenge: r.get("code_challenge"),
                resource: Resource(r.get("resource")),
                scopes: Scopes::parse(r.get::<&str, _>("scope")).unwrap_or_default(),
                expires_at: r.get("expires_at"),
            }));
        }
        let used: Option<i64> = sqlx::query_scalar("SELECT grant_id FROM codes WHERE hash = ?")
            .bind(hash.0.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match used {
            Some(g) => Redeemed::AlreadyUsed(GrantId(g)),
            None => Redeemed::Unknown,
        })
    }
}
