//! The HTTP front: the only code that knows axum. Routes, the Host/Origin guard against
//! DNS rebinding and cross-site use, and CORS for loopback browser clients.
//!
//! Every route is served on 127.0.0.1 only. Every request passes [`guard`] first: a
//! `Host` that is not a loopback name with the broker's port, or an `Origin` that is not
//! a loopback origin, is refused (MCP transport spec, "Security Warning": servers MUST
//! validate `Origin`). CORS is granted to loopback origins on the metadata documents,
//! `/register`, `/token`, `/revoke` and `/mcp/NAME`, never on `/authorize` or the consent
//! form, whose POST must come from the broker's own origin.

mod authorize;
mod consent;
mod mcp;
mod metadata;
mod pages;
mod register;
pub mod response;
mod revoke;
mod token;
mod upstream_login;

use std::future::Future;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::gateway::Gateway;

/// OAuth request bodies are small; MCP messages may carry larger tool arguments.
const OAUTH_BODY_LIMIT: usize = 64 * 1024;
const MCP_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub fn router(gateway: Gateway) -> Router {
    let cors = CorsLayer::new()
        // The guard has already refused every non-loopback Origin.
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .max_age(std::time::Duration::from_secs(600));

    let oauth_cors = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::authorization_server),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp/{name}",
            get(metadata::protected_resource),
        )
        .route("/register", post(register::register))
        .route("/token", post(token::token))
        .route("/revoke", post(revoke::revoke))
        .layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT));

    let mcp = Router::new()
        .route(
            "/mcp/{name}",
            post(mcp::post).get(mcp::get).delete(mcp::delete),
        )
        .layer(DefaultBodyLimit::max(MCP_BODY_LIMIT));

    let no_cors = Router::new()
        .route("/authorize", get(authorize::authorize))
        .route("/authorize/consent", post(consent::decide))
        .route("/authorize/wait", get(authorize::wait))
        .route(
            "/upstream-login/{name}",
            post(upstream_login::start).get(upstream_login::status),
        )
        .route("/upstream-logout/{name}", post(upstream_login::logout))
        .route("/upstream-callback/{name}", get(upstream_login::callback))
        .layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT));

    Router::new()
        .merge(oauth_cors.merge(mcp).layer(cors))
        .merge(no_cors)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(gateway.clone(), guard))
        .with_state(gateway)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    gateway: Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = router(gateway);
    // Answers and SSE events go out as soon as they are written, not after the
    // client's delayed ACK (Nagle).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]"
}

/// Splits `host[:port]`, with IPv6 literals in brackets.
fn split_host_port(s: &str) -> Option<(&str, Option<&str>)> {
    if s.starts_with('[') {
        let end = s.find(']')?;
        let (h, rest) = s.split_at(end + 1);
        match rest {
            "" => Some((h, None)),
            r => Some((h, Some(r.strip_prefix(':')?))),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => Some((h, Some(p))),
            None => Some((s, None)),
        }
    }
}

/// Whether an `Origin` is a loopback web origin (`http://localhost:*`,
/// `http://127.0.0.1:*`, `http://[::1]:*`).
pub fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    match split_host_port(rest) {
        Some((h, port)) => {
            is_loopback_name(h)
                && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        }
        None => false,
    }
}

/// DNS-rebinding and cross-origin guard for every route.
async fn guard(State(g): State<Gateway>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let host_ok = host
        .as_deref()
        .and_then(split_host_port)
        .is_some_and(|(h, p)| {
            is_loopback_name(h) && p.and_then(|p| p.parse::<u16>().ok()) == Some(g.port)
        });
    if !host_ok {
        return forbidden("the Host header must name this broker on a loopback address");
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin.to_str().map(is_loopback_origin).unwrap_or(false);
        if !ok {
            return forbidden("cross-origin requests are only accepted from loopback origins");
        }
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    res
}

fn forbidden(msg: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(format!("{msg}\n")))
        .unwrap_or_default()
}

/// Parses an `application/x-www-form-urlencoded` body into ordered pairs.
fn form_pairs(headers: &axum::http::HeaderMap, body: &[u8]) -> Option<Vec<(String, String)>> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = ct.split(';').next()?.trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return None;
    }
    Some(url::form_urlencoded::parse(body).into_owned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins() {
        for ok in [
            "http://localhost:6274",
            "http://127.0.0.1:1",
            "http://[::1]:80",
            "http://localhost",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "https://localhost:1",
            "http://evil.example",
            "http://localhost.evil.example:1",
            "http://127.0.0.1.nip.io:1",
            "null",
            "http://127.0.0.1:",
            "http://[::2]:1",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }
}
