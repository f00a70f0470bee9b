//! `GET /authorize` (RFC 6749 §4.1.1) and `GET /authorize/wait`: parse the query, call
//! [`Gateway::authorize`], render its outcome (the consent form, the waiting page for a
//! native window, a redirect, or an error page that never redirects).

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::pages;
use super::response::{HttpError, redirect};
use crate::consent::WaitState;
use crate::gateway::Gateway;
use crate::gateway::authorize::AuthorizeOutcome;

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub async fn authorize(
    State(g): State<Gateway>,
    RawQuery(q): RawQuery,
) -> Result<Response, HttpError> {
    let outcome = g
        .authorize(&query_pairs(q.as_deref()))
        .await
        .map_err(HttpError::page)?;
    Ok(match outcome {
        AuthorizeOutcome::Form {
            view,
            consent_id,
            csrf,
            redirect_uri,
        } => pages::consent(
            &view,
            &consent_id,
            &csrf,
            &redirect_uri,
            g.asks_can_be_answered(),
        ),
        AuthorizeOutcome::Wait { view, wait_id } => {
            pages::waiting(&view, &format!("/authorize/wait?id={wait_id}"))
        }
        AuthorizeOutcome::Redirect(to) => redirect(&to),
        AuthorizeOutcome::Refused(e) => {
            return Err(HttpError::page_with(
                StatusCode::BAD_REQUEST,
                "This sign-in request is not valid",
                e.description,
            ));
        }
    })
}

/// Polled by the waiting page while a native consent window is open.
pub async fn wait(State(g): State<Gateway>, RawQuery(q): RawQuery) -> Result<Response, HttpError> {
    let id = query_pairs(q.as_deref())
        .into_iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v)
        .unwrap_or_default();
    match g.consent_wait(&id) {
        WaitState::Decided(to) => Ok(redirect(&to)),
        WaitState::Undecided => Ok(pages::still_waiting(&format!("/authorize/wait?id={id}"))),
        WaitState::Gone => Err(HttpError::page_with(
            StatusCode::BAD_REQUEST,
            "This request has expired",
            "Start again from the application.",
        )),
    }
}
