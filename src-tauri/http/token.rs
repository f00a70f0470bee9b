//! `POST /token` (RFC 6749 §3.2): the authorization-code exchange and refresh-token
//! rotation. Decisions come from `oauth::token`; this file fetches records, mints
//! tokens, and stores only their hashes.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::response::json_no_store;
use crate::events::{GatewayEvent, RevokeReason};
use crate::gateway::{Gateway, now};
use crate::oauth::token::{
    RefreshRejection, TokenRequest, authenticate_client, check_code_exchange, check_refresh,
    parse_token_request,
};
use crate::oauth::{GrantId, OAuthError, Scopes, TokenHash, mint_secret};
use crate::store::{IssuedTokens, Redeemed, Rotation};

pub async fn token(State(g): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    match exchange(&g, &headers, &body).await {
        Ok(r) => r,
        Err(Failure::OAuth(e)) => e.into_response(),
        Err(Failure::Internal(e)) => e.into_response(),
    }
}

enum Failure {
    OAuth(OAuthError),
    Internal(crate::error::Error),
}

impl From<OAuthError> for Failure {
    fn from(e: OAuthError) -> Self {
        Failure::OAuth(e)
    }
}
impl From<crate::error::Error> for Failure {
    fn from(e: crate::error::Error) -> Self {
        Failure::Internal(e)
    }
}

async fn exchange(g: &Gateway, headers: &HeaderMap, body: &[u8]) -> Result<Response, Failure> {
    let form = super::form_pairs(headers, body).ok_or_else(|| {
        OAuthError::invalid_request("the body must be application/x-www-form-urlencoded")
    })?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (req, creds) = parse_token_request(&form, authorization)?;
    let client = g.store.client(&creds.client_id).await?;
    let client_id = authenticate_client(client.as_ref(), &creds)?;
    let t = now();

    match req {
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
            resource,
        } => {
            let rec = match g.store.redeem_code(&TokenHash::of(&code), t).await? {
                Redeemed::Fresh(rec) => rec,
                Redeemed::AlreadyUsed(grant) => {
                    // RFC 6749 §4.1.2: "If an authorization code is used more than once, the
                    // authorization server MUST deny the request and SHOULD revoke (when
                    // possible) all tokens previously issued based on that authorization code."
                    tracing::warn!(grant = %grant, "authorization code replayed; revoking the grant");
                    g.revoke_grant(grant, RevokeReason::Replay).await?;
                    return Err(OAuthError::invalid_grant("authorization code already used").into());
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
            let (access, refresh, issued) = mint(g, &rec.scopes, t);
            g.store.insert_tokens(rec.grant_id, &issued).await?;
            tracing::info!(grant = %rec.grant_id, client_id = %client_id, "tokens issued");
            Ok(token_response(g, &access, &refresh, &rec.scopes))
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
            resource,
        } => {
            let old = TokenHash::of(&refresh_token);
            let Some(rec) = g.store.refresh_token(&old).await? else {
                return Err(
                    OAuthError::invalid_grant("unknown, expired or revoked refresh token").into(),
                );
            };
            let scopes =
                match check_refresh(&rec, &client_id, scope.as_deref(), resource.as_deref(), t) {
                    Ok(s) => s,
                    Err(RefreshRejection::Invalid(e)) => return Err(e.into()),
                    Err(RefreshRejection::Replayed(grant)) => return Err(replayed(g, grant).await),
                };
            let (access, refresh, issued) = mint(g, &scopes, t);
            match g
                .store
                .rotate_refresh(&old, rec.grant_id, &issued, t)
                .await?
            {
                Rotation::Rotated => {}
                Rotation::Lost => return Err(replayed(g, rec.grant_id).await),
            }
            Ok(token_response(g, &access, &refresh, &scopes))
        }
    }
}

/// OAuth 2.1 §4.3.1: a rotated-out refresh token used again means one of the two
/// parties holding it is not the client; revoke the grant.
async fn replayed(g: &Gateway, grant: GrantId) -> Failure {
    tracing::warn!(grant = %grant, "refresh token replayed; revoking the grant");
    let summary = g
        .active_grants()
        .await
        .ok()
        .and_then(|v| v.into_iter().find(|s| s.id == grant));
    if let Err(e) = g.revoke_grant(grant, RevokeReason::Replay).await {
        return Failure::Internal(e);
    }
    if let Some(s) = summary {
        let client_name = if s.client_name.is_empty() {
            s.client_id
        } else {
            s.client_name
        };
        g.emit(GatewayEvent::RefreshReplayed {
            grant_id: grant,
            client_name,
            upstream: s.upstream,
        });
    }
    Failure::OAuth(OAuthError::invalid_grant(
        "refresh token already used; the grant has been revoked",
    ))
}

fn mint(g: &Gateway, scopes: &Scopes, t: i64) -> (String, String, IssuedTokens) {
    let access = mint_secret();
    let refresh = mint_secret();
    let issued = IssuedTokens {
        access: TokenHash::of(&access),
        access_expires_at: t + g.config.access_token_ttl(),
        refresh: TokenHash::of(&refresh),
        refresh_expires_at: t + g.config.refresh_token_ttl(),
        scopes: scopes.clone(),
    };
    (access, refresh, issued)
}

fn token_response(g: &Gateway, access: &str, refresh: &str, scopes: &Scopes) -> Response {
    json_no_store(
        StatusCode::OK,
        json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": g.config.access_token_ttl(),
            "refresh_token": refresh,
            "scope": scopes.to_string(),
        }),
    )
}
