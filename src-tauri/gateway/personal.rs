//! Personal access tokens (see `oauth::personal`): minted by the person from the CLI or
//! the grants window for one upstream, shown once, stored as a hash, listed and revoked
//! as grants of their own. A token minted by another process (the CLI) is accepted by
//! the running broker at once: access-token lookups cache only tokens they found, so a
//! new one is simply read from the database; and the store moves the shared counter, so
//! the running broker's maintenance tick re-reads the grants and the window shows it.

use serde::Serialize;

use crate::clock::now;
use crate::oauth::personal::{self, Expiry};
use crate::oauth::{DEFAULT_SCOPE, GrantId, Scopes, TokenHash, UnixTime};
use crate::store::{GrantKind, NewPersonalGrant};

use super::{Gateway, GatewayError, GrantView};

/// A freshly minted personal access token. `token` is shown once and never again.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CreatedToken {
    pub grant_id: GrantId,
    pub token: String,
    pub upstream: String,
    /// `http://127.0.0.1:PORT/mcp/NAME`, the one place the token works.
    pub resource: String,
    pub label: String,
    pub expires_at: Option<UnixTime>,
}

impl Gateway {
    /// Mints a personal access token for `upstream`. `tools` is recorded for the per-tool
    /// policy; every tool is reachable until that policy enforces it.
    pub async fn create_personal_token(
        &self,
        upstream: &str,
        label: &str,
        expiry: Expiry,
        tools: &[String],
    ) -> Result<CreatedToken, GatewayError> {
        let resource = self
            .resource_for(upstream)
            .ok_or_else(|| GatewayError::UnknownUpstream(upstream.to_owned()))?;
        let t = now();
        let spec = personal::validate(label, expiry, tools, t)?;
        let token = self.inner.store.token_check().key.mint_personal();
        let scopes = Scopes::single(DEFAULT_SCOPE);
        let grant_id = self
            .inner
            .store
            .create_personal_grant(&NewPersonalGrant {
                upstream,
                resource: &resource,
                scopes: &scopes,
                label: &spec.label,
                expires_at: spec.expires_at,
                tools: &spec.tools,
                token: &TokenHash::of(&token),
                now: t,
            })
            .await?;
        tracing::info!(grant = %grant_id, upstream, "personal access token created");
        // Listeners hear of it from the maintenance tick, which sees the counter the store
        // moved (as for a token made by the CLI): one announcement either way.
        self.known_grant(grant_id, &spec.label, upstream);
        Ok(CreatedToken {
            grant_id,
            token,
            upstream: upstream.to_owned(),
            resource: resource.0,
            label: spec.label,
            expires_at: spec.expires_at,
        })
    }

    /// The active personal access tokens (their grants), oldest first.
    pub async fn personal_tokens(&self) -> Result<Vec<GrantView>, GatewayError> {
        let mut grants = self.list_grants().await?;
        grants.retain(|g| g.grant.kind == GrantKind::PersonalToken);
        Ok(grants)
    }
}
