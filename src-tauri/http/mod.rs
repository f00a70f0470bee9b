//! The HTTP front: routes, the Host/Origin guard against DNS rebinding and cross-site
//! use, and CORS for loopback browser clients. Each handler parses its request, calls
//! one [`Gateway`] method and renders the outcome; errors are rendered in
//! [`response`]. (The MCP transport's own streaming and JSON-RPC rendering is in
//! `proxy::streamable`.)
//!
//! Every route is served on 127.0.0.1 only. Every request passes [`guard`] first: a
//! `Host` that is not a loopback name with the broker's port, or an `Origin` that is not
//! a loopback origin, is refused (MCP transport spec, "Security Warning": servers MUST
//! validate `Origin`). CORS is granted to loopback origins on the metadata documents,
//! `/register`, `/token`, `/revoke`, `/introspect` and `/mcp/NAME`, never on `/authorize`
//! or the consent form, whose POST must come from the broker's own origin.

mod authorize;
mod consent;
mod introspect;
mod mcp;
mod metadata;
mod pages;
mod register;
pub mod response;
mod revoke;
mod token;
mod tool_approval;
mod upstream_login;

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::gateway::Gateway;

/// OAuth request bodies are small; MCP messages may carry larger tool arguments, up to
/// `[broker] max_request_bytes` (4 MiB by default, as in the official MCP SDKs).
const OAUTH_BODY_LIMIT: usize = 64 * 1024;

pub fn router(gateway: Gateway) -> Front {
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
        .route("/introspect", post(introspect::introspect))
        .layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT));

    let mcp = Router::new()
        .route(
            "/mcp/{name}",
            post(mcp::post).get(mcp::get).delete(mcp::delete),
        )
        .layer(DefaultBodyLimit::max(gateway.config().max_request_bytes()));

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
        .route("/tool-approval/{id}", get(tool_approval::show))
        .route("/tool-approval", post(tool_approval::answer))
        .layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT));

    let port = gateway.port();
    let recorder = gateway.clone();
    let router = Router::new()
        .merge(
            oauth_cors
                .merge(mcp)
                .layer(CorsIfOrigin(std::sync::Arc::new(cors))),
        )
        .merge(no_cors)
        .fallback(not_found)
        .with_state(gateway);
    Front {
        port,
        router,
        gateway: recorder,
    }
}

/// The router behind [`guard`]. A plain service around the router rather than a
/// `Router::layer`: a router layer boxes and clones the whole route stack on every
/// request, which showed as several percent of the broker's CPU per proxied call.
#[derive(Clone)]
pub struct Front {
    port: u16,
    router: Router,
    /// Records the errors rendered with a reference id in the activity log.
    gateway: Gateway,
}

type Guarded = futures_util::future::Either<
    std::future::Ready<Result<Response, Infallible>>,
    Recorded<
        futures_util::future::Map<
            axum::routing::future::RouteFuture<Infallible>,
            fn(Result<Response, Infallible>) -> Result<Response, Infallible>,
        >,
    >,
>;

/// The route's response, with an error it carries ([`crate::activity::ErrorNote`])
/// recorded in the activity log: where the gateway is at hand, so that the renderers stay
/// plain functions. The route future is polled in place (`Unpin` through its box).
pub struct Recorded<F> {
    inner: std::pin::Pin<Box<F>>,
    gateway: Gateway,
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Recorded<F> {
    type Output = Result<Response, Infallible>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Poll::Ready(Ok(mut res)) = self.inner.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        if let Some(note) = res.extensions_mut().remove::<crate::activity::ErrorNote>() {
            self.gateway.record_error(note);
        }
        Poll::Ready(Ok(res))
    }
}

impl tower::Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Guarded;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Guarded {
        use futures_util::FutureExt;
        use futures_util::future::Either;
        if let Err(msg) = guard(self.port, &req) {
            return Either::Left(std::future::ready(Ok(forbidden(msg))));
        }
        Either::Right(Recorded {
            inner: Box::pin(
                tower::Service::call(&mut self.router, req)
                    .map(with_security_headers as fn(_) -> _),
            ),
            gateway: self.gateway.clone(),
        })
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    gateway: Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::ServiceExt;
    use axum::serve::ListenerExt;
    let app = router(gateway).into_make_service();
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

/// Whether an `Origin` is this broker's own origin (its consent page's).
fn is_own_origin(origin: &str, port: u16) -> bool {
    origin
        .strip_prefix("http://")
        .and_then(split_host_port)
        .is_some_and(|(h, p)| {
            is_loopback_name(h) && p.and_then(|p| p.parse::<u16>().ok()) == Some(port)
        })
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

/// CORS (tower-http) for requests that carry an `Origin`, the only ones a browser's
/// CORS check looks at. Others (every non-browser MCP client) skip it: building the
/// CORS layer and its headers per request showed as several percent of the broker's
/// CPU per proxied call. They still get the `Vary` that tower-http would add, so that
/// no cache hands such a response to a cross-origin request.
#[derive(Clone)]
struct CorsIfOrigin(std::sync::Arc<CorsLayer>);

impl<S> tower::Layer<S> for CorsIfOrigin {
    type Service = CorsIfOriginService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CorsIfOriginService {
            cors: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
struct CorsIfOriginService<S> {
    cors: std::sync::Arc<CorsLayer>,
    inner: S,
}

const CORS_VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

fn with_cors_vary(res: Result<Response, Infallible>) -> Result<Response, Infallible> {
    let Ok(mut res) = res;
    res.headers_mut().append(header::VARY, CORS_VARY);
    Ok(res)
}

impl<S> tower::Service<Request> for CorsIfOriginService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures_util::future::Either<
        tower_http::cors::ResponseFuture<S::Future>,
        futures_util::future::Map<
            S::Future,
            fn(Result<Response, Infallible>) -> Result<Response, Infallible>,
        >,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use futures_util::FutureExt;
        use futures_util::future::Either;
        if req.headers().contains_key(header::ORIGIN) {
            // The service that was polled ready handles the request; its clone waits
            // for the next poll_ready.
            let clone = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, clone);
            let mut cors = tower::Layer::layer(&*self.cors, ready);
            Either::Left(cors.call(req))
        } else {
            Either::Right(self.inner.call(req).map(with_cors_vary as fn(_) -> _))
        }
    }
}

/// DNS-rebinding and cross-origin guard for every route: `Err` says why a request is
/// refused.
fn guard(port: u16, req: &Request) -> Result<(), &'static str> {
    let host = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok(),
        None => req.uri().authority().map(|a| a.as_str()),
    };
    let host_ok = host.and_then(split_host_port).is_some_and(|(h, p)| {
        is_loopback_name(h) && p.and_then(|p| p.parse::<u16>().ok()) == Some(port)
    });
    if !host_ok {
        return Err("the Host header must name this broker on a loopback address");
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin.to_str().map(is_loopback_origin).unwrap_or(false);
        if !ok {
            return Err("cross-origin requests are only accepted from loopback origins");
        }
    }
    Ok(())
}

fn with_security_headers(res: Result<Response, Infallible>) -> Result<Response, Infallible> {
    let Ok(mut res) = res;
    let h = res.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    Ok(res)
}

fn forbidden(msg: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(format!("{msg}\n")))
        .unwrap_or_default()
}

/// A form's fields in order, repeated ones kept (the OAuth checks refuse repeats).
type FormPairs = Vec<(String, String)>;

/// The form and `Authorization` header of a request to an OAuth endpoint (`/token`,
/// `/revoke`): RFC 6749 §3.2 requires `application/x-www-form-urlencoded`.
fn oauth_form<'h>(
    headers: &'h axum::http::HeaderMap,
    body: &[u8],
) -> Result<(FormPairs, Option<&'h str>), response::HttpError> {
    let form = form_pairs(headers, body).ok_or_else(|| {
        response::HttpError::OAuth(crate::oauth::OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))
    })?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    Ok((form, authorization))
}

/// The fields of a form a person submitted on one of this broker's own pages: only a
/// same-origin POST counts (`Origin` and `Sec-Fetch-Site` checked); `page` names the page
/// in the refusal. The CSRF token among the fields is for the caller to check.
fn own_page_form(
    headers: &axum::http::HeaderMap,
    body: &[u8],
    port: u16,
    page: &str,
) -> Result<FormPairs, response::HttpError> {
    let refused = || {
        response::HttpError::page_with(
            StatusCode::FORBIDDEN,
            "Request refused",
            format!("The decision must come from the {page}."),
        )
    };
    if let Some(o) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
        && !is_own_origin(o, port)
    {
        return Err(refused());
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
    {
        return Err(refused());
    }
    form_pairs(headers, body).ok_or_else(|| {
        response::HttpError::page_with(
            StatusCode::BAD_REQUEST,
            "Request refused",
            "Expected a form submission.",
        )
    })
}

/// Parses an `application/x-www-form-urlencoded` body into ordered pairs.
fn form_pairs(headers: &axum::http::HeaderMap, body: &[u8]) -> Option<FormPairs> {
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

    #[test]
    fn own_origin_is_a_loopback_name_with_this_port() {
        assert!(is_own_origin("http://127.0.0.1:7391", 7391));
        assert!(is_own_origin("http://localhost:7391", 7391));
        assert!(is_own_origin("http://[::1]:7391", 7391));
        assert!(!is_own_origin("http://127.0.0.1:7392", 7391));
        assert!(!is_own_origin("http://127.0.0.1", 7391));
        assert!(!is_own_origin("https://127.0.0.1:7391", 7391));
    }
}
