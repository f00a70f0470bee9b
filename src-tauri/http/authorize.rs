//! `GET /authorize`: validates the request (`oauth::authorize`), then asks the user,
//! through the HTML form (headless) or the desktop's native window.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::pages;
use crate::gateway::Gateway;
use crate::gateway::now;
use crate::oauth::Client;
use crate::oauth::authorize::{AuthorizeError, error_redirect, validate_authorize};
use crate::oauth::client_metadata::is_metadata_client_id;

pub async fn authorize(State(g): State<Gateway>, RawQuery(q): RawQuery) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let client_id = pairs
        .iter()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.as_str());
    let client = match client_id {
        Some(id) if is_metadata_client_id(id) => match metadata_client(&g, id).await {
            Ok(c) => Some(c),
            Err(page) => return page,
        },
        Some(id) => match g.store.client(id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("loading client failed: {e}");
                return pages::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The broker could not read its database.",
                );
            }
        },
        None => None,
    };
    let req = match validate_authorize(&pairs, client.as_ref(), &g.authorize_ctx) {
        Ok(r) => r,
        Err(AuthorizeError::DoNotRedirect(e)) => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "This sign-in request is not valid",
                &e.description,
            );
        }
        Err(AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
        }) => {
            return redirect(&error_redirect(
                &redirect_uri,
                state.as_deref(),
                &error,
                &g.issuer,
            ));
        }
    };
    if g.consent.is_native() {
        let (id, _) = super::consent::start_native(&g, req.clone());
        return pages::waiting(&req, &format!("/authorize/wait?id={id}"));
    }
    let (id, csrf) = g.consent.open(req.clone());
    pages::consent(&req, &id, &csrf)
}

/// A `client_id` that is an `https` URL: fetch its Client ID Metadata Document, and
/// record the client so that grants, tokens and `grants list` can name it. A document
/// that cannot be used is an error page, never a redirect (RFC 6749 §4.1.2.1: the
/// client is not known, so neither is a safe place to send the browser).
async fn metadata_client(g: &Gateway, client_id: &str) -> Result<Client, Response> {
    let client = match g.client_metadata.client(client_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(client_id, "client metadata document refused: {e}");
            return Err(pages::error(
                StatusCode::BAD_REQUEST,
                "This sign-in request is not valid",
                &e.to_string(),
            ));
        }
    };
    if let Err(e) = g.store.upsert_metadata_client(&client, now()).await {
        tracing::error!("recording the client failed: {e}");
        return Err(pages::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The broker could not write its database.",
        ));
    }
    Ok(client)
}

/// Polled by the waiting page while a native consent window is open.
pub async fn wait(State(g): State<Gateway>, RawQuery(q): RawQuery) -> Response {
    let id = url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    super::consent::poll_native(&g, &id).await
}

pub fn redirect(to: &str) -> Response {
    let mut res = (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}
