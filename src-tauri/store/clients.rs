//! Registered clients.

use sqlx::Row;

use super::Store;
use crate::error::Result;
use crate::oauth::{AuthMethod, Client, ClientId, TokenHash, UnixTime, register::Registration};

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
               secret_hash = NULL, redirect_uris = excluded.redirect_uris, metadata = excluded.metadata",
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
            "SELECT id, name, auth_method, secret_hash, redirect_uris FROM clients WHERE id = ?",
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
}
