//! Personal access tokens (see `oauth::personal`): minted by the person from the CLI or
//! the grants window for one upstream, shown once, stored as a hash, listed and revoked
//! as grants of their own. A token minted by another process (the CLI) is accepted by
//! the running broker at once: access-token lookups cache only tokens they found, so a
//! new one is simply read from the database; and the store moves the shared counter, so
//! the running broker's maintenance tick re-reads the grants and the window shows it.
//!
//! A token made with a list of tools gets that list as its per-tool policy, like the
//! choices at consent: the named tools allowed, pinned to the definitions the upstream
//! serves now, every other tool blocked (hidden from `tools/list` and refused).

use serde::Serialize;

use crate::clock::now;
use crate::oauth::personal::{self, Expiry};
use crate::oauth::{DEFAULT_SCOPE, GrantId, Scopes, TokenHash, UnixTime};
use crate::store::{GrantKind, NewPersonalGrant};
use crate::tool_policy::{ToolChoice, ToolDefinition};

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
    /// Mints a personal access token for `upstream`. With `tools`, the token may see and
    /// call those tools only (the upstream is asked for its tools first: no token is made
    /// when it cannot answer or does not serve one of them).
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
        let policy = if spec.tools.is_empty() {
            None
        } else {
            Some(self.personal_tool_policy(upstream, &spec.tools).await?)
        };
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
        if let Some(policy) = policy
            && let Err(e) = self
                .save_consent_tools(grant_id, upstream, Some(policy))
                .await
        {
            // Without its policy the token would reach every tool: it must not stay.
            let _ = self.inner.store.revoke_grant(grant_id, now()).await;
            return Err(e.into());
        }
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

    /// The upstream's tools now, the named ones allowed and the rest blocked.
    async fn personal_tool_policy(
        &self,
        upstream: &str,
        named: &[String],
    ) -> Result<Vec<(ToolDefinition, ToolChoice)>, GatewayError> {
        let listed = self
            .inner
            .upstreams
            .list_tools(upstream, super::tools::LIST_TOOLS_BOUND)
            .await
            .map_err(|why| personal::PersonalTokenError::ToolsUnlisted {
                upstream: upstream.to_owned(),
                why,
            })?;
        let mut defs: Vec<ToolDefinition> = Vec::new();
        for d in listed.iter().filter_map(ToolDefinition::of) {
            if !defs.iter().any(|e| e.name == d.name) {
                defs.push(d);
            }
        }
        let served: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
        let allowed: Vec<bool> = personal::tool_choices(upstream, named, &served)?
            .into_iter()
            .map(|(_, allow)| allow)
            .collect();
        Ok(defs
            .into_iter()
            .zip(allowed)
            .map(|(d, allow)| {
                let choice = if allow {
                    ToolChoice::Allow
                } else {
                    ToolChoice::Block
                };
                (d, choice)
            })
            .collect())
    }
}
