//! `POST /register`: RFC 7591 dynamic client registration, through
//! [`Gateway::register`].

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::response::{HttpError, json_no_store};
use crate::gateway::Gateway;

pub async fn register(State(g): State<Gateway>, body: Bytes) -> Result<Response, HttpError> {
    let registered = g.register(&body).await.map_err(HttpError::oauth)?;
    Ok(json_no_store(StatusCode::CREATED, registered))
}
