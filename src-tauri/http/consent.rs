//! `POST /authorize/consent`: the headless form's decision. Only a same-origin POST of
//! the page this broker served counts (`Origin` and `Sec-Fetch-Site` checked), with the
//! question's single-use CSRF token; [`Gateway::decide_form`] does the rest.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::response::{HttpError, redirect};
use crate::consent::{ConsentAnswer, Decision};
use crate::gateway::Gateway;

pub async fn decide(
    State(g): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let form = super::own_page_form(&headers, &body, g.port(), "consent page")?;
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
            return Err(HttpError::page_with(
                StatusCode::BAD_REQUEST,
                "Request refused",
                "Choose Approve or Deny.",
            ));
        }
    };
    let answer = ConsentAnswer {
        decision,
        // `tool.NAME=allow|ask|block`; a tool left out keeps what the page proposed.
        tools: form
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("tool.")?;
                Some((name.to_owned(), crate::tool_policy::ToolChoice::parse(v)?))
            })
            .collect(),
        account: Some(get("account"))
            .filter(|a| !a.is_empty())
            .map(str::to_owned),
    };
    let to = g
        .decide_form(get("consent_id"), get("csrf_token"), &answer)
        .await
        .map_err(HttpError::page)?;
    Ok(redirect(&to))
}
