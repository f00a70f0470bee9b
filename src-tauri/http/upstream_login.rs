//! The broker's own sign-in to a remote upstream (see `gateway::sign_in`):
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
use super::response::HttpError;
use crate::gateway::Gateway;

fn refuse_browsers(headers: &HeaderMap) -> Result<(), HttpError> {
    if headers.contains_key(header::ORIGIN) {
        return Err(HttpError::text(
            StatusCode::FORBIDDEN,
            "upstream sign-in is started by `mcp-broker upstream login`, not by a web page",
        ));
    }
    Ok(())
}

pub async fn start(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    refuse_browsers(&headers)?;
    let authorize_url = g
        .start_upstream_sign_in(&name)
        .await
        .map_err(HttpError::local)?;
    Ok(axum::Json(json!({ "authorize_url": authorize_url })).into_response())
}

pub async fn status(
    State(g): State<Gateway>,
    Path(name): Path<String>,
) -> Result<Response, HttpError> {
    match g.upstream_sign_in_state(&name) {
        Some(s) => Ok(axum::Json(s).into_response()),
        None => Err(HttpError::Json {
            status: StatusCode::NOT_FOUND,
            message: "no sign-in in progress".into(),
        }),
    }
}

pub async fn callback(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, HttpError> {
    g.finish_upstream_sign_in(&name, &params)
        .await
        .map_err(HttpError::page)?;
    Ok(pages::message(
        StatusCode::OK,
        &format!("Signed in to {name}"),
        "mcp-broker now holds this sign-in in the OS keychain.",
    ))
}

pub async fn logout(
    State(g): State<Gateway>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    refuse_browsers(&headers)?;
    let was = g.upstream_sign_out(&name).await.map_err(HttpError::local)?;
    Ok(axum::Json(json!({ "signed_out": was })).into_response())
}
