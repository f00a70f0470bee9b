//! The HTML the broker shows a person: the headless consent form, the "waiting for your
//! approval" page and message pages. Built with maud, so every value is escaped by
//! construction; pages cannot be framed (`X-Frame-Options: DENY`, CSP
//! `frame-ancestors 'none'`) and load nothing external. The consent form shows the same
//! [`ConsentView`] as the desktop's native window.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::consent::ConsentView;

const STYLE: &str = "body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f5f7;color:#1d1f23;margin:0}\
main{max-width:34rem;margin:3rem auto;background:#fff;border-radius:12px;box-shadow:0 2px 12px #0002;padding:2rem}\
h1{font-size:1.3rem;margin:0 0 1rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.4rem 1rem;margin:1rem 0}\
dt{color:#5b6170}dd{margin:0;word-break:break-all}.host{font-weight:700;font-size:1.1rem}\
.warn{background:#fff4d6;border:1px solid #e9c46a;border-radius:8px;padding:.6rem .8rem}\
.buttons{display:flex;gap:1rem;justify-content:flex-end;margin-top:1.5rem}\
button{font-size:1rem;padding:.6rem 1.4rem;border-radius:8px;border:1px solid #9aa1ad;background:#fff;cursor:pointer}\
button.approve{background:#1f6feb;border-color:#1f6feb;color:#fff}code{font-size:.9em}\
table.tools{width:100%;border-collapse:collapse;margin:1rem 0}table.tools td{border-top:1px solid #e3e5e8;padding:.5rem .3rem;vertical-align:top}\
.tool-name{font-weight:600}.tool-desc{color:#5b6170;font-size:.9rem}.tag{font-size:.75rem;border-radius:4px;padding:0 .3rem;margin-left:.3rem;background:#e8eaee}\
.tag.destructive{background:#fde2e1;color:#9b1c1c}select{font-size:.9rem}";

/// `form_action`: where a form on the page may submit, including where the broker
/// then redirects (browsers apply `form-action` to the redirect chain too).
pub(super) fn page(status: StatusCode, title: &str, body: Markup, form_action: &str) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    };
    let mut res = (status, Html(doc.into_string())).into_response();
    let h = res.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'{form_action}"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// What both consent screens list about a request.
fn facts(v: &ConsentView) -> Markup {
    html! {
        dl {
            dt { "Application" } dd { (v.client_name) }
            @if let Some(host) = &v.described_by {
                dt { "Described by" } dd.host { (host) }
            }
            dt { "Client ID" } dd { code { (v.client_id) } }
            dt { "Returns to" } dd.host { (v.redirect_host) }
            dt { "Server" } dd { (v.upstream) }
            dt { "Scope" } dd {
                (v.scope)
                @if let Some(ignored) = &v.ignored_scopes {
                    " " small { "(not offered, ignored: " (ignored) ")" }
                }
            }
        }
        p.warn { (v.access_warning) }
        @if !v.redirect_is_loopback {
            p.warn {
                "After you approve, your browser goes to " b { (v.redirect_host) }
                ", which is not on this computer. Approve only if you trust that site."
            }
        }
    }
}

/// The upstream's tools with a choice each (`tool.NAME`), or why they could not be
/// listed.
fn tools(v: &ConsentView, asks_answered: bool) -> Markup {
    use crate::tool_policy::ToolChoice;
    html! {
        @if let Some(why) = &v.tools_error {
            p.warn {
                "The tools of " b { (v.upstream) } " could not be listed (" (why) "). "
                "Approving allows all of its tools; you can narrow them later once it answers."
            }
        } @else if v.tools.is_empty() {
            p { (v.upstream) " lists no tools." }
        } @else {
            h2 style="font-size:1.05rem;margin:1.2rem 0 0" { "Tools" }
            @if !asks_answered {
                p.warn {
                    "Nobody can answer \"Ask each time\" here: without the desktop app, or "
                    code { "ask_headless = \"browser\"" } " in the broker's configuration, "
                    "such a tool is refused when called."
                }
            }
            table.tools {
                @for t in &v.tools {
                    tr {
                        td {
                            span.tool-name { (t.tool.title.as_deref().unwrap_or(&t.tool.name)) }
                            @if t.tool.title.is_some() { " " code { (t.tool.name) } }
                            @if t.tool.destructive { span.tag.destructive { "destructive" } }
                            @if t.tool.read_only { span.tag { "read-only" } }
                            @if t.tool.open_world { span.tag { "open world" } }
                            @if let Some(d) = &t.tool.description { div.tool-desc { (d) } }
                        }
                        td {
                            select name={ "tool." (t.tool.name) } aria-label={ "Access to " (t.tool.name) } {
                                @for c in [ToolChoice::Allow, ToolChoice::Ask, ToolChoice::Block] {
                                    option value=(c.as_str()) selected[c == t.choice] {
                                        (match c { ToolChoice::Allow => "Allow", ToolChoice::Ask => "Ask each time", ToolChoice::Block => "Block" })
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The headless consent form: a plain POST that works without JavaScript.
pub fn consent(
    v: &ConsentView,
    consent_id: &str,
    csrf: &str,
    redirect_uri: &str,
    asks_answered: bool,
) -> Response {
    let body = html! {
        h1 { "Allow " b { (v.client_name) } " to use " b { (v.upstream) } "?" }
        p {
            "An application asks for access to the MCP server " b { (v.upstream) }
            " through mcp-broker. It will never see the server's own credentials."
        }
        (facts(v))
        form method="post" action="/authorize/consent" {
            input type="hidden" name="consent_id" value=(consent_id);
            input type="hidden" name="csrf_token" value=(csrf);
            (account_choice(v))
            (tools(v, asks_answered))
            div.buttons {
                button type="submit" name="decision" value="deny" formnovalidate[!v.accounts.is_empty()] autofocus { "Deny" }
                button.approve type="submit" name="decision" value="approve" { "Approve" }
            }
        }
    };
    let target = url::Url::parse(redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    // Only an origin is safe to put in the policy (no spaces, quotes or semicolons).
    let form_action = if target.starts_with("http") && !target.contains([' ', ';', '\'', ',']) {
        format!(" {target}")
    } else {
        String::new()
    };
    page(
        StatusCode::OK,
        "Allow access? - mcp-broker",
        body,
        &form_action,
    )
}

/// Which account of the upstream the grant uses, when it has several: radio buttons with
/// none checked (the last choice is named, not pre-selected). Nothing for an upstream
/// with one account or none, so those pages are as before.
fn account_choice(v: &ConsentView) -> Markup {
    html! {
        @if !v.accounts.is_empty() {
            fieldset.accounts {
                legend { "Which account of " b { (v.upstream) } " may it use?" }
                @for a in &v.accounts {
                    label {
                        input type="radio" name="account" value=(a) required;
                        " " (a)
                        @if v.suggested_account.as_ref() == Some(a) {
                            " " small { "(chosen last time)" }
                        }
                    }
                    br;
                }
            }
        }
    }
}

/// Shown in the browser while the desktop app asks natively. Refreshes itself (no
/// script) until the decision is made, then the server redirects.
pub fn waiting(v: &ConsentView, wait_url: &str) -> Response {
    let body = html! {
        h1 { "Waiting for your approval in mcp-broker" }
        p {
            b { (v.client_name) } " asks to use " b { (v.upstream) }
            ". Answer in the mcp-broker window; this page continues by itself."
        }
    };
    refreshing(
        page(
            StatusCode::OK,
            "Waiting for approval - mcp-broker",
            body,
            "",
        ),
        wait_url,
    )
}

/// The waiting page's later refreshes, while the window is still open.
pub fn still_waiting(wait_url: &str) -> Response {
    refreshing(
        message(
            StatusCode::OK,
            "Waiting for your approval in mcp-broker",
            "Answer in the mcp-broker window; this page continues by itself.",
        ),
        wait_url,
    )
}

fn refreshing(mut res: Response, url: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("2; url={url}")) {
        res.headers_mut().insert("refresh", v);
    }
    res
}

/// A page that tells the person one thing: an error, or that a step is done.
/// [`message`] for an error, with the reference id the log records it under.
pub fn error(status: StatusCode, title: &str, detail: &str, reference: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p { (detail) }
        p { "Reference: " code.reference { (reference) } " (the broker's log and activity log record this error under it)." }
        p { "You can close this tab and continue in the application." }
    };
    page(status, title, body, "")
}

pub fn message(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p { (detail) }
        p { "You can close this tab and continue in the application." }
    };
    page(status, title, body, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> ConsentView {
        ConsentView {
            client_name: "<script>alert(1)</script>".into(),
            client_id: "c\"1".into(),
            described_by: Some("apps.example".into()),
            redirect_host: "evil.example".into(),
            redirect_is_loopback: false,
            upstream: "demo".into(),
            scope: "mcp email".into(),
            ignored_scopes: Some("email".into()),
            access_warning: crate::consent::access_warning("<script>alert(1)</script>", "demo"),
            tools: vec![crate::consent::ConsentTool {
                tool: crate::tool_policy::ToolDefinition::of(&serde_json::json!({
                    "name": "rm<x>", "description": "Deletes <b>files</b>",
                    "annotations": {"destructiveHint": true}
                }))
                .unwrap(),
                choice: crate::tool_policy::ToolChoice::Allow,
            }],
            tools_error: None,
            accounts: Vec::new(),
            suggested_account: None,
        }
    }

    #[tokio::test]
    async fn an_upstream_with_accounts_asks_which_none_checked_the_last_named() {
        let plain = text(consent(&view(), "id", "c", "http://127.0.0.1/cb", true)).await;
        assert!(
            !plain.contains("name=\"account\""),
            "no choice without accounts"
        );
        assert!(!plain.contains("formnovalidate"));
        let mut v = view();
        v.accounts = vec!["personal".into(), "work".into()];
        v.suggested_account = Some("work".into());
        let html = text(consent(&v, "id", "c", "http://127.0.0.1/cb", true)).await;
        assert_eq!(html.matches("type=\"radio\" name=\"account\"").count(), 2);
        assert!(html.contains("value=\"personal\""));
        assert!(!html.contains("checked"), "nothing pre-selected");
        assert!(
            html.contains("work <small>(chosen last time)</small>"),
            "{html}"
        );
        assert!(html.contains("formnovalidate"), "Deny needs no choice");
    }

    async fn text(res: Response) -> String {
        let b = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_form_escapes_what_the_client_chose_and_shows_every_fact() {
        let res = consent(&view(), "id", "csrf\"><x", "https://evil.example/cb", true);
        assert_eq!(res.headers()[header::X_FRAME_OPTIONS], "DENY");
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.ends_with("form-action 'self' https://evil.example"),
            "{csp}"
        );
        let html = text(res).await;
        assert!(!html.contains("<script>alert"), "names are escaped");
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("csrf\"><x"), "attributes are escaped");
        assert!(html.contains("Described by"));
        assert!(html.contains("not offered, ignored: email"));
        assert!(html.contains("which is not on this computer"));
        assert!(html.contains("access to the tools of demo as you"));
        assert!(html.contains(r#"name="tool.rm&lt;x&gt;""#), "{html}");
        assert!(html.contains("Deletes &lt;b&gt;files&lt;/b&gt;"));
        assert!(html.contains(r#"class="tag destructive""#));
        assert!(
            html.contains(r#"<option value="allow" selected>"#),
            "{html}"
        );
    }

    #[tokio::test]
    async fn an_unlisted_server_is_all_or_nothing() {
        let mut v = view();
        v.tools.clear();
        v.tools_error = Some("the server did not list its tools within 5 seconds".into());
        let html = text(consent(&v, "id", "c", "http://127.0.0.1/cb", true)).await;
        assert!(html.contains("could not be listed") && html.contains("allows all of its tools"));
        assert!(!html.contains("<select"));
    }
}
