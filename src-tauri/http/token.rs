//! `POST /token` (RFC 6749 §3.2): parses the form and calls [`Gateway::exchange`]
//! (the code exchange and refresh rotation live there).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::response::{HttpError, json_no_store};
use crate::gateway::Gateway;

pub async fn token(
    State(g): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let (form, authorization) = super::oauth_form(&headers, &body)?;
    let issued = g
        .exchange(&form, authorization)
        .await
        .map_err(HttpError::oauth)?;
    Ok(json_no_store(StatusCode::OK, issued))
}
