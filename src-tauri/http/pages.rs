//! The HTML the broker shows a person: the headless consent form, the "waiting for your
//! approval" page and error pages. Every value is HTML-escaped; pages cannot be framed
//! (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`) and load nothing external.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::oauth::authorize::AuthorizeRequest;
use crate::oauth::redirect;

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f5f7;color:#1d1f23;margin:0}\
main{max-width:34rem;margin:3rem auto;background:#fff;border-radius:12px;box-shadow:0 2px 12px #0002;padding:2rem}\
h1{font-size:1.3rem;margin:0 0 1rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.4rem 1rem;margin:1rem 0}\
dt{color:#5b6170}dd{margin:0;word-break:break-all}.host{font-weight:700;font-size:1.1rem}\
.warn{background:#fff4d6;border:1px solid #e9c46a;border-radius:8px;padding:.6rem .8rem}\
.buttons{display:flex;gap:1rem;justify-content:flex-end;margin-top:1.5rem}\
button{font-size:1rem;padding:.6rem 1.4rem;border-radius:8px;border:1px solid #9aa1ad;background:#fff;cursor:pointer}\
button.approve{background:#1f6feb;border-color:#1f6feb;color:#fff}code{font-size:.9em}";

/// `form_action`: where a form on the page may submit, including where the broker
/// then redirects (browsers apply `form-action` to the redirect chain too).
fn page(status: StatusCode, title: &str, body: &str, form_action: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    );
    let mut res = (status, Html(html)).into_response();
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

/// The headless consent form: a plain POST that works without JavaScript.
pub fn consent(req: &AuthorizeRequest, consent_id: &str, csrf: &str) -> Response {
    let host = redirect::display_host(&req.redirect_uri);
    let warn = if redirect::is_loopback(&req.redirect_uri) {
        String::new()
    } else {
        format!(
            "<p class=\"warn\">After you approve, your browser goes to <b>{}</b>, which is not on this computer. \
             Approve only if you trust that site.</p>",
            escape(&host)
        )
    };
    let ignored = req.requested_scopes.difference(&req.scopes);
    let ignored = if ignored.is_empty() {
        String::new()
    } else {
        format!(
            " <small>(not offered, ignored: {})</small>",
            escape(&ignored.to_string())
        )
    };
    let body = format!(
        "<h1>Allow <b>{name}</b> to use <b>{upstream}</b>?</h1>\
         <p>An application asks for access to the MCP server <b>{upstream}</b> through mcp-broker. \
         It will never see the server's own credentials.</p>\
         <dl><dt>Application</dt><dd>{name}</dd>\
         {published}<dt>Client ID</dt><dd><code>{client_id}</code></dd>\
         <dt>Returns to</dt><dd class=\"host\">{host}</dd>\
         <dt>Server</dt><dd>{upstream}</dd>\
         <dt>Scope</dt><dd>{scope}{ignored}</dd></dl>{warn}\
         <form method=\"post\" action=\"/authorize/consent\">\
         <input type=\"hidden\" name=\"consent_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <div class=\"buttons\"><button type=\"submit\" name=\"decision\" value=\"deny\" autofocus>Deny</button>\
         <button type=\"submit\" name=\"decision\" value=\"approve\" class=\"approve\">Approve</button></div></form>",
        name = escape(&req.client_name),
        published = match &req.client_host {
            Some(h) => format!("<dt>Described by</dt><dd class=\"host\">{}</dd>", escape(h)),
            None => String::new(),
        },
        upstream = escape(&req.upstream),
        client_id = escape(&req.client_id.0),
        host = escape(&host),
        scope = escape(&req.requested_scopes.to_string()),
        id = escape(consent_id),
        csrf = escape(csrf),
    );
    let target = url::Url::parse(&req.redirect_uri)
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
        &body,
        &form_action,
    )
}

/// Shown in the browser while the desktop app asks natively. Refreshes itself (no
/// script) until the decision is made, then the server redirects.
pub fn waiting(req: &AuthorizeRequest, wait_url: &str) -> Response {
    let body = format!(
        "<h1>Waiting for your approval in mcp-broker</h1><p><b>{}</b> asks to use <b>{}</b>. \
         Answer in the mcp-broker window; this page continues by itself.</p>",
        escape(&req.client_name),
        escape(&req.upstream)
    );
    let mut res = page(
        StatusCode::OK,
        "Waiting for approval - mcp-broker",
        &body,
        "",
    );
    if let Ok(v) = HeaderValue::from_str(&format!("2; url={wait_url}")) {
        res.headers_mut().insert("refresh", v);
    }
    res
}

pub fn error(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p>{}</p><p>You can close this tab and try again from the application.</p>",
        escape(title),
        escape(detail)
    );
    page(status, title, &body, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
