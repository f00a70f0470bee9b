//! The user's decision: `POST /authorize/consent` from the headless form, or a native
//! window's answer collected through `/authorize/wait`. Approve stores the grant and a
//! single-use code and redirects with `code`, `state` and `iss`; Deny redirects with
//! `error=access_denied` and stores nothing.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::authorize::redirect;
use super::pages;
use crate::consent::{ConsentLookupError, Decision};
use crate::events::GatewayEvent;
use crate::gateway::{Gateway, now};
use crate::oauth::authorize::{AuthorizeRequest, code_redirect, error_redirect};
use crate::oauth::{ErrorCode, OAuthError, TokenHash, mint_secret};

/// RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is
/// RECOMMENDED"; the exchange follows the redirect at once, so two minutes is plenty.
const CODE_TTL_SECS: i64 = 120;

pub async fn decide(State(g): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    // The form must be posted by the page this broker served: same origin only.
    if let Some(o) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let own = [
            format!("http://127.0.0.1:{}", g.port),
            format!("http://localhost:{}", g.port),
            format!("http://[::1]:{}", g.port),
        ];
        if !own.iter().any(|x| x == o) {
            return pages::error(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The decision must come from the consent page.",
            );
        }
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
    {
        return pages::error(
            StatusCode::FORBIDDEN,
            "Request refused",
            "The decision must come from the consent page.",
        );
    }
    let Some(form) = super::form_pairs(&headers, &body) else {
        return pages::error(
            StatusCode::BAD_REQUEST,
            "Request refused",
            "Expected a form submission.",
        );
    };
    let get = |k: &str| {
        form.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let decision = match get("decision") {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        _ => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "Request refused",
                "Choose Approve or Deny.",
            );
        }
    };
    let req = match g.consent.take(get("consent_id"), get("csrf_token")) {
        Ok(r) => r,
        Err(ConsentLookupError::Gone) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "This request has expired",
                "It was already answered, or it is more than five minutes old.",
            );
        }
        Err(ConsentLookupError::BadCsrf) => {
            return pages::error(
                StatusCode::FORBIDDEN,
                "Request refused",
                "The form's security token did not match.",
            );
        }
    };
    match finish(&g, &req, decision).await {
        Ok(to) => redirect(&to),
        // RFC 6749 §4.1.2.1: the client hears `temporarily_unavailable` and can retry.
        Err(e) if e.is_disk_full() => {
            tracing::error!("recording the decision failed: {e}");
            let e = super::response::internal_oauth_error(&e);
            redirect(&error_redirect(
                &req.redirect_uri,
                req.state.as_deref(),
                &e,
                &g.issuer,
            ))
        }
        Err(e) => {
            tracing::error!("recording the decision failed: {e}");
            pages::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The broker could not save the decision.",
            )
        }
    }
}

/// Applies a decision and returns where to send the browser.
pub async fn finish(
    g: &Gateway,
    req: &AuthorizeRequest,
    decision: Decision,
) -> crate::error::Result<String> {
    match decision {
        Decision::Deny => {
            tracing::info!(client_id = %req.client_id, upstream = %req.upstream, "consent denied");
            let e = OAuthError::new(ErrorCode::AccessDenied, "the user denied access");
            Ok(error_redirect(
                &req.redirect_uri,
                req.state.as_deref(),
                &e,
                &g.issuer,
            ))
        }
        Decision::Approve => {
            let code = mint_secret();
            let t = now();
            let grant = g
                .store
                .approve(
                    &req.client_id,
                    &req.upstream,
                    &req.resource,
                    &req.scopes,
                    &TokenHash::of(&code),
                    &req.redirect_uri,
                    &req.code_challenge,
                    t + CODE_TTL_SECS,
                    t,
                )
                .await?;
            tracing::info!(grant = %grant, client_id = %req.client_id, upstream = %req.upstream, "consent approved");
            g.emit(GatewayEvent::GrantApproved {
                grant_id: grant,
                client_name: req.client_name.clone(),
                upstream: req.upstream.clone(),
            });
            Ok(code_redirect(req, &code, &g.issuer))
        }
    }
}

/// Native consent: ask the desktop shell in the background; the browser polls.
pub fn start_native(g: &Gateway, req: AuthorizeRequest) -> (String, ()) {
    let wait_id = mint_secret();
    g.consent.set_outcome(&wait_id, None);
    let g2 = g.clone();
    let id2 = wait_id.clone();
    tokio::spawn(async move {
        let decision = g2.consent.ask_native(req.clone()).await;
        let to = match finish(&g2, &req, decision).await {
            Ok(to) => to,
            Err(e) => {
                tracing::error!("recording the decision failed: {e}");
                let e = super::response::internal_oauth_error(&e);
                error_redirect(&req.redirect_uri, req.state.as_deref(), &e, &g2.issuer)
            }
        };
        g2.consent.set_outcome(&id2, Some(to));
    });
    (wait_id, ())
}

pub async fn poll_native(g: &Gateway, wait_id: &str) -> Response {
    match g.consent.outcome(wait_id) {
        Some(Some(to)) => {
            g.consent.clear_outcome(wait_id);
            redirect(&to)
        }
        Some(None) => {
            let mut res = pages::error(
                StatusCode::OK,
                "Waiting for your approval in mcp-broker",
                "Answer in the mcp-broker window; this page continues by itself.",
            );
            if let Ok(v) =
                axum::http::HeaderValue::from_str(&format!("2; url=/authorize/wait?id={wait_id}"))
            {
                res.headers_mut().insert("refresh", v);
            }
            res
        }
        None => pages::error(
            StatusCode::BAD_REQUEST,
            "This request has expired",
            "Start again from the application.",
        ),
    }
}
