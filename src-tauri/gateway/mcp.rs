//! Authenticating a request to `/mcp/NAME` (RFC 6750 §2.1, RFC 8707 audience, RFC 9728
//! §5.1 challenge). A token of a shape this server never issued (no valid check, see
//! `oauth::token_format`) is refused before any lookup. Lookups come from a cache that every revocation, from any process,
//! empties (`store::token_cache`), so a revocation takes effect on the next request.

use crate::clock::now;
use crate::oauth::TokenHash;
use crate::oauth::bearer::{BearerError, Caller, check_bearer, parse_bearer};
use crate::oauth::token_format::{self, Shape};

use super::Gateway;

/// Why a request to `/mcp/NAME` is refused.
#[derive(Debug)]
pub enum McpRefusal {
    /// No upstream has this name.
    UnknownUpstream,
    /// The upstream was removed from the configuration while the broker ran. Its grants
    /// stay (they work again if it comes back); its requests are refused.
    RemovedUpstream,
    /// A missing, invalid or insufficient token: challenge with the protected resource
    /// metadata URL.
    Bearer {
        error: BearerError,
        resource_metadata: String,
        /// The scopes a call needs, for the challenge's `scope` (MCP 2026-07-28
        /// basic/authorization §Scope Selection Strategy).
        scope: crate::oauth::Scopes,
    },
    /// Over `[broker] mcp_rate` for this grant.
    RateLimited(super::limits::Limited),
    Internal(crate::Error),
}

impl Gateway {
    /// Checks the `Authorization` header of a request to `/mcp/NAME`; on success the
    /// caller's grant is recorded as used.
    pub async fn authenticate(
        &self,
        upstream: &str,
        authorization: Option<&str>,
    ) -> Result<Caller, McpRefusal> {
        let Some(resource) = self.resource_for(upstream) else {
            return Err(if self.was_removed(upstream) {
                McpRefusal::RemovedUpstream
            } else {
                McpRefusal::UnknownUpstream
            });
        };
        let refuse = |error| {
            self.inner.bearer_refusals.count(&error);
            McpRefusal::Bearer {
                error,
                resource_metadata: self.protected_resource_metadata_url(upstream),
                scope: self.authorize_ctx().supported_scopes.of_resource(),
            }
        };
        let token = parse_bearer(authorization).map_err(refuse)?;
        let t = now();
        let hash = TokenHash::of(token);
        // A token the cache holds was issued here, so its check would pass: every call
        // after the first skips it. Anything else is checked before any lookup.
        let rec = match self.inner.store.cached_access_token(&hash) {
            Some(r) => Some(r),
            None => {
                let check = self.inner.store.token_check();
                if token_format::shape(token, &check.key, check.legacy, t) == Shape::Foreign {
                    return Err(refuse(BearerError::InvalidToken));
                }
                self.inner
                    .store
                    .access_token(&hash)
                    .await
                    .map_err(McpRefusal::Internal)?
            }
        };
        let caller = check_bearer(
            rec.as_deref(),
            &resource,
            &self.authorize_ctx().supported_scopes,
            t,
        )
        .map_err(refuse)?;
        if let Err(l) = self.inner.limits.mcp(caller.grant_id) {
            self.record_limited(&l, Some(caller.grant_id), None, Some(upstream));
            return Err(McpRefusal::RateLimited(l));
        }
        self.touch_grant(caller.grant_id);
        Ok(caller)
    }

    /// RFC 9728 §3.1: the metadata URL with the resource's path inserted.
    pub fn protected_resource_metadata_url(&self, upstream: &str) -> String {
        format!(
            "{}/.well-known/oauth-protected-resource/mcp/{upstream}",
            self.issuer()
        )
    }

    /// RFC 8414 §3 metadata of this authorization server.
    pub fn authorization_server_metadata(&self) -> serde_json::Value {
        crate::oauth::metadata::authorization_server(
            self.issuer().as_str(),
            &self.authorize_ctx().supported_scopes,
            self.inner.client_metadata.supported(),
        )
    }

    /// RFC 9728 §3.2 metadata of `/mcp/NAME`, or `None` for an unknown upstream.
    pub fn protected_resource_metadata(&self, upstream: &str) -> Option<serde_json::Value> {
        let r = self.resource_for(upstream)?;
        Some(crate::oauth::metadata::protected_resource(
            &r,
            self.issuer().as_str(),
            &self.authorize_ctx().supported_scopes,
            upstream,
        ))
    }
}
