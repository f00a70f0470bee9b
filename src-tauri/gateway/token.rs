//! The token endpoint's flows (RFC 6749 §3.2, §4.1.3, §6; OAuth 2.1 §4.3): the
//! authorization-code exchange and refresh-token rotation. The decisions come from
//! `oauth::token`; this file fetches the records, mints tokens and stores only their
//! hashes. A replayed code or refresh token revokes the grant (announced once, as a
//! revocation for [`RevokeReason::Replay`]).

use serde::Serialize;

use crate::clock::now;
use crate::events::RevokeReason;
use crate::oauth::cimd::is_metadata_client_id;
use crate::oauth::token::{
    RefreshRejection, TokenRequest, authenticate_client, check_code_exchange, check_refresh,
    parse_token_request,
};
use crate::oauth::{GrantId, OAuthError, Scopes, TokenHash, mint_secret};
use crate::store::{IssuedTokens, Redeemed, Rotation};

use super::{Gateway, GatewayError};

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct Issued {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    /// Seconds the refresh token stays usable if unused (not in RFC 6749; the name other
    /// authorization servers use), so a client knows when it must authorize again.
    pub refresh_token_expires_in: i64,
    pub scope: String,
}

impl Gateway {
    /// `POST /token`: the form's pairs and the `Authorization` header, if any.
    pub async fn exchange(
        &self,
        form: &[(String, String)],
        authorization: Option<&str>,
    ) -> Result<Issued, GatewayError> {
        let (req, creds) = parse_token_request(form, authorization)?;
        let client = self.inner.store.client(&creds.client_id).await?;
        let client_id = authenticate_client(client.as_ref(), &creds)?;
        // A metadata document's client_id is shared by every installation: limited per
        // grant below, once the grant is known.
        let shared = is_metadata_client_id(&client_id.0);
        if !shared {
            self.limit(
                self.inner.limits.token(client_id.0.clone()),
                None,
                Some(&client_id.0),
            )?;
        }
        let t = now();
        match req {
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
                resource,
            } => {
                let rec = match self
                    .inner
                    .store
                    .redeem_code(&TokenHash::of(&code), t)
                    .await?
                {
                    Redeemed::Fresh(rec) => {
                        self.limit_shared(shared, rec.grant_id, &client_id.0)?;
                        rec
                    }
                    Redeemed::AlreadyUsed(grant) => {
                        // RFC 6749 §4.1.2: "If an authorization code is used more than once,
                        // the authorization server MUST deny the request and SHOULD revoke
                        // (when possible) all tokens previously issued based on that
                        // authorization code."
                        tracing::warn!(grant = %grant, "authorization code replayed; revoking the grant");
                        self.record_replay(grant, "authorization code");
                        return Err(self
                            .replayed(grant, "authorization code already used")
                            .await);
                    }
                    Redeemed::Unknown => {
                        return Err(OAuthError::invalid_grant("unknown authorization code").into());
                    }
                };
                check_code_exchange(
                    &rec,
                    &client_id,
                    redirect_uri.as_deref(),
                    code_verifier.as_deref(),
                    resource.as_deref(),
                    t,
                )?;
                let (issued, stored) = self.mint(&rec.scopes, t);
                self.inner
                    .store
                    .insert_tokens(rec.grant_id, &stored)
                    .await?;
                tracing::info!(grant = %rec.grant_id, client_id = %client_id, "tokens issued");
                self.record_tokens(rec.grant_id, &client_id.0, false);
                Ok(issued)
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
                resource,
            } => {
                let old = TokenHash::of(&refresh_token);
                let Some(rec) = self.inner.store.refresh_token(&old).await? else {
                    return Err(OAuthError::invalid_grant(
                        "unknown, expired or revoked refresh token",
                    )
                    .into());
                };
                self.limit_shared(shared, rec.grant_id, &client_id.0)?;
                let scopes = match check_refresh(
                    &rec,
                    &client_id,
                    scope.as_deref(),
                    resource.as_deref(),
                    &self.served_resources(),
                    t,
                ) {
                    Ok(s) => s,
                    Err(RefreshRejection::Invalid(e)) => return Err(e.into()),
                    Err(RefreshRejection::Replayed(grant)) => {
                        return Err(self.refresh_replayed(grant).await);
                    }
                };
                let (issued, stored) = self.mint(&scopes, t);
                match self
                    .inner
                    .store
                    .rotate_refresh(&old, rec.grant_id, &stored, t)
                    .await?
                {
                    Rotation::Rotated => {
                        self.record_tokens(rec.grant_id, &client_id.0, true);
                        Ok(issued)
                    }
                    Rotation::Lost => Err(self.refresh_replayed(rec.grant_id).await),
                }
            }
        }
    }

    /// OAuth 2.1 §4.3.1: a rotated-out refresh token used again means one of the two
    /// parties holding it is not the client; revoke the grant.
    async fn refresh_replayed(&self, grant: GrantId) -> GatewayError {
        tracing::warn!(grant = %grant, "refresh token replayed; revoking the grant");
        self.record_replay(grant, "refresh token");
        self.replayed(
            grant,
            "refresh token already used; the grant has been revoked",
        )
        .await
    }

    async fn replayed(&self, grant: GrantId, why: &'static str) -> GatewayError {
        match self.revoke_grant(grant, RevokeReason::Replay).await {
            // Already revoked (a second replay): nothing more to announce.
            Ok(_) | Err(GatewayError::UnknownGrant(_)) => OAuthError::invalid_grant(why).into(),
            Err(e) => e,
        }
    }

    fn limit_shared(
        &self,
        shared: bool,
        grant: GrantId,
        client_id: &str,
    ) -> Result<(), GatewayError> {
        if !shared {
            return Ok(());
        }
        self.limit(
            self.inner.limits.token(format!("grant {grant}")),
            Some(grant),
            Some(client_id),
        )
    }

    fn mint(&self, scopes: &Scopes, t: i64) -> (Issued, IssuedTokens) {
        let access = self.inner.store.token_check().key.mint_access();
        let refresh = mint_secret();
        let config = self.config();
        let stored = IssuedTokens {
            access: TokenHash::of(&access),
            access_expires_at: t + config.access_token_ttl(),
            refresh: TokenHash::of(&refresh),
            refresh_expires_at: t + config.refresh_token_ttl(),
            scopes: scopes.clone(),
            issued_at: t,
        };
        let issued = Issued {
            access_token: access,
            token_type: "Bearer",
            expires_in: config.access_token_ttl(),
            refresh_token: refresh,
            refresh_token_expires_in: config.refresh_token_ttl(),
            scope: scopes.to_string(),
        };
        (issued, stored)
    }
}
