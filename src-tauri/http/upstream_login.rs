//! The broker's own sign-in to a remote upstream (see `proxy::upstream_oauth`):
//! `POST /upstream-login/NAME` starts it and answers the URL to open, `GET
//! /upstream-login/NAME` tells how it stands, `GET /upstream-callback/NAME` is the
//! redirect URI the upstream's authorization server sends the browser back to, and
//! `POST /upstream-logout/NAME` revokes and deletes the tokens.
//!
//! Starting and ending a sign-in is for the `mcp-broker upstream` command only: a
//! request that carries an `Origin` (any web page, even a loopback one) is refused, so a
//! page cannot log the broker in to someone else's account.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::pages;
use crate::gateway::Gateway;
use crate::upstream_sign_in::SignInError;

fn refuse_browsers(headers: &HeaderMap) -> Result<(), Response> {
    if headers.contains_key(header::ORIGIN) {
        return Err((
            StatusCode::FORBIDDEN,
            "upstream sign-in is started by `mcp-broker upstream login`, not by a web page\n",
        )
            .into_response());
    }
    Ok(())
}

fn json_error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "error": msg }))).into_response()
}

fn sign_in_error(name: &str, e: SignInError, status: StatusCode) -> Response {
    match e {
        SignInError::NotRemote => json_error(
            StatusCode::NOT_FOUND,
            &format!("no remote upstream named {name}"),
        ),
        SignInError::Failed(e) => json_error(status, &e),
    }
}

pub async fn start(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = refuse_browsers(&headers) {
        return r;
    }
    match g.start_upstream_sign_in(&name).await {
        Ok(authorize_url) => axum::Json(json!({ "authorize_url": authorize_url })).into_response(),
        Err(e) => sign_in_error(&name, e, StatusCode::BAD_GATEWAY),
    }
}

pub async fn status(State(g): State<Gateway>, Path(name): Path<String>) -> Response {
    match g.upstreams.oauth.login_state(&name) {
        Some(s) => axum::Json(s).into_response(),
        None => json_error(StatusCode::NOT_FOUND, "no sign-in in progress"),
    }
}

pub async fn callback(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match g.finish_upstream_sign_in(&name, &params).await {
        Ok(()) => pages::error(
            StatusCode::OK,
            &format!("Signed in to {name}"),
            "mcp-broker now holds this sign-in in the OS keychain.",
        ),
        Err(e) => pages::error(StatusCode::BAD_REQUEST, "Sign-in failed", &e),
    }
}

pub async fn logout(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = refuse_browsers(&headers) {
        return r;
    }
    match g.upstream_sign_out(&name).await {
        Ok(was) => axum::Json(json!({ "signed_out": was })).into_response(),
        Err(e) => sign_in_error(&name, e, StatusCode::INTERNAL_SERVER_ERROR),
    }
}
