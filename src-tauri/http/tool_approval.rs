//! The approval page for a call to an "Ask each time" tool, when the headless broker asks
//! in the browser (`[broker] ask_headless = "browser"`, issue 14 point 3).
//! `GET /tool-approval/{id}` shows the waiting call, the same [`ToolApprovalView`] the
//! desktop's approval window shows (client, server, tool, the whole arguments indented
//! with secret-looking values masked), with Deny (focused), Allow once, Allow for 1 hour
//! and Always allow. `POST /tool-approval` takes the answer: only a same-origin POST of
//! this page (`Origin` and `Sec-Fetch-Site` checked), with the question's single-use CSRF
//! token, counts, as on the consent form. No answer before the timeout denies the call.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::pages;
use super::response::HttpError;
use crate::gateway::tools::{ApprovalAnswer, ToolApprovalView};
use crate::gateway::{Gateway, GatewayError};

fn gone() -> HttpError {
    HttpError::page_with(
        StatusCode::GONE,
        "This call is no longer waiting",
        "It was already answered, or no answer came in time and it was denied.",
    )
}

fn page_error(e: GatewayError) -> HttpError {
    match e {
        GatewayError::ConsentGone => gone(),
        e => HttpError::page(e),
    }
}

pub async fn show(State(g): State<Gateway>, Path(id): Path<String>) -> Result<Response, HttpError> {
    let (view, csrf) = g.tool_approval_form(&id).map_err(page_error)?;
    Ok(render(&view, &id, &csrf))
}

pub async fn answer(
    State(g): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let form = super::own_page_form(&headers, &body, g.port(), "approval page")?;
    let get = |k: &str| {
        form.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let (answer, title, detail) = match get("answer") {
        "once" => (
            ApprovalAnswer::Once,
            "Allowed once",
            "The call goes through.",
        ),
        "hour" => (
            ApprovalAnswer::Hour,
            "Allowed for 1 hour",
            "The call goes through, and so do this tool's calls by this client for the next hour.",
        ),
        "always" => (
            ApprovalAnswer::Always,
            "Always allowed",
            "The call goes through; this client no longer asks for this tool (change it with `mcp-broker grants tools`).",
        ),
        "deny" => (
            ApprovalAnswer::Deny,
            "Denied",
            "The call was refused; the client was told you denied it.",
        ),
        _ => {
            return Err(HttpError::page_with(
                StatusCode::BAD_REQUEST,
                "Request refused",
                "Choose Allow once, Allow for 1 hour, Always allow or Deny.",
            ));
        }
    };
    g.answer_tool_approval_form(get("approval_id"), get("csrf_token"), answer)
        .map_err(page_error)?;
    Ok(pages::message(StatusCode::OK, title, detail))
}

/// A plain POST form that works without JavaScript; Deny comes first and has the focus,
/// so Enter denies.
fn render(v: &ToolApprovalView, id: &str, csrf: &str) -> Response {
    let body = html! {
        h1 { "Allow " b { (v.client_name) } " to call " b { (v.tool) } "?" }
        p {
            b { (v.client_name) } " is calling a tool of " b { (v.upstream) }
            " that you set to \"Ask each time\". The call waits for your answer; no answer within "
            (v.timeout_secs) " seconds of the call denies it."
        }
        dl {
            dt { "Application" } dd { (v.client_name) }
            dt { "Server" } dd { (v.upstream) }
            dt { "Tool" } dd { code { (v.tool) } }
        }
        h2 style="font-size:1.05rem;margin:1.2rem 0 .4rem" { "Arguments" }
        pre style="white-space:pre-wrap;word-break:break-word;background:#f4f5f7;border-radius:8px;padding:.6rem .8rem;max-height:50vh;overflow:auto;font-size:.9rem" {
            (v.arguments)
        }
        form method="post" action="/tool-approval" {
            input type="hidden" name="approval_id" value=(id);
            input type="hidden" name="csrf_token" value=(csrf);
            div.buttons style="flex-wrap:wrap" {
                button type="submit" name="answer" value="deny" autofocus { "Deny" }
                button type="submit" name="answer" value="once" { "Allow once" }
                button type="submit" name="answer" value="hour" { "Allow for 1 hour" }
                button.approve type="submit" name="answer" value="always" { "Always allow" }
            }
        }
    };
    pages::page(
        StatusCode::OK,
        "Allow this tool call? - mcp-broker",
        body,
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[tokio::test]
    async fn the_page_escapes_the_call_and_focuses_deny() {
        let v = ToolApprovalView {
            grant_id: crate::oauth::GrantId(3),
            client_name: "<script>x</script>".into(),
            upstream: "notes".into(),
            tool: "wipe\"><b>".into(),
            arguments: "{\n  \"path\": \"</pre><script>\",\n  \"token\": \"********\"\n}".into(),
            timeout_secs: 50,
        };
        let res = render(&v, "id1", "tok\"en");
        assert_eq!(res.headers()[header::X_FRAME_OPTIONS], "DENY");
        let b = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(b.to_vec()).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;/pre&gt;&lt;script&gt;"), "{html}");
        assert!(html.contains("********"), "{html}");
        let deny = html
            .find(r#"value="deny" autofocus"#)
            .expect("deny is focused");
        let once = html.find(r#"value="once""#).unwrap();
        assert!(deny < once, "Deny comes first");
        assert!(html.contains("within 50 seconds"));
        assert!(!html.contains("tok\"en"), "attributes are escaped");
    }
}
