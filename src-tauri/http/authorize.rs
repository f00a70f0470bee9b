//! `GET /authorize`: validates the request (`oauth::authorize`), then asks the user,
//! through the HTML form (headless) or the desktop's native window.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::pages;
use crate::gateway::Gateway;
use crate::oauth::authorize::{AuthorizeError, error_redirect, validate_authorize};

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
