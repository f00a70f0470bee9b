//! Modern client → modern remote upstream (MCP 2026-07-28; brief §3.3): the POST goes on
//! nearly as it came, with the broker's own credentials for the upstream (never the
//! client's token: basic/authorization §Token Handling), the routing headers
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) and every `Mcp-Param-*` header
//! forwarded (streamable-http §Server Behavior for Custom Headers: intermediaries forward
//! the ones they do not recognise), and the answer, JSON or SSE, streamed back with the
//! upstream's status, so its 400/404 protocol errors reach the client as they are.
//! Closing the client's response closes the upstream exchange: that is cancellation.
//!
//! Which era a remote upstream speaks is the `era` setting or a cached
//! `server/discover` probe (`proxy::era_bridge::probe`).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::ladder::MODERN_VERSION;
use crate::config::Transport;
use crate::proxy::Upstreams;
use crate::proxy::era_bridge::UpstreamEra;

impl Upstreams {
    /// The URL of `upstream` if it is a remote upstream that speaks 2026-07-28 (as
    /// configured now: the configuration can change live).
    pub(super) async fn modern_remote(&self, upstream: &str) -> Option<url::Url> {
        let url = {
            let configs = self.configs.read().unwrap_or_else(|e| e.into_inner());
            match &configs.get(upstream)?.transport {
                Transport::Http { url, .. } => url.clone(),
                Transport::Stdio { .. } => return None,
            }
        };
        (self.upstream_era(upstream).await? == UpstreamEra::Modern).then_some(url)
    }

    /// A POST to the upstream with the headers and the broker's sign-in of `account`
    /// (`None`: the implicit or only one).
    pub(in crate::proxy) async fn signed(
        &self,
        upstream: &str,
        account: Option<&str>,
        url: &url::Url,
        routing: &HeaderMap,
    ) -> Result<reqwest::RequestBuilder, String> {
        let (headers, sign_in) = {
            let configs = self.configs.read().unwrap_or_else(|e| e.into_inner());
            let cfg = configs
                .get(upstream)
                .filter(|c| matches!(c.transport, Transport::Http { .. }))
                .ok_or_else(|| format!("no remote upstream named {upstream}"))?;
            let headers = cfg.values_for(account).map_err(|e| e.to_string())?;
            let sign_in = crate::config::sign_in_id(upstream, account.or(cfg.default_account()));
            (headers, sign_in)
        };
        let mut req = self
            .http
            .post(url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", MODERN_VERSION);
        for (k, v) in self.resolve(upstream, &headers).await? {
            req = req.header(k, v.expose());
        }
        if let Some(t) = self
            .oauth
            .bearer(&sign_in)
            .await
            .map_err(|e| e.to_string())?
        {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
                .map_err(|_| "the upstream token is not a valid header value".to_owned())?;
            v.set_sensitive(true);
            req = req.header(header::AUTHORIZATION, v);
        }
        for (k, v) in routing {
            req = req.header(k, v);
        }
        Ok(req)
    }

    /// Relays one modern POST to a modern remote upstream.
    pub(super) async fn pass_through(
        &self,
        upstream: &str,
        account: Option<&str>,
        url: &url::Url,
        client: &HeaderMap,
        id: &Value,
        body: &Bytes,
    ) -> Response {
        let routing: HeaderMap = client
            .iter()
            .filter(|(k, _)| {
                let k = k.as_str();
                k == "mcp-method" || k == "mcp-name" || k.starts_with("mcp-param-")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let fail = |why: String| {
            let body =
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": why}});
            plain(
                StatusCode::OK,
                "application/json",
                Body::from(body.to_string()),
            )
        };
        let req = match self.signed(upstream, account, url, &routing).await {
            Ok(r) => r,
            Err(why) => return fail(why),
        };
        let res =
            match tokio::time::timeout(self.request_timeout, req.body(body.clone()).send()).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => return fail("the upstream MCP server is unreachable".into()),
                Err(_) => return fail("the upstream MCP server did not answer in time".into()),
            };
        let status = res.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            // The client's own token is fine: the broker's sign-in to the upstream is not.
            return fail(format!(
                "the upstream MCP server refused the broker's credentials (HTTP {status}); sign in with `mcp-broker upstream login {upstream}`"
            ));
        }
        if status.is_server_error() {
            // A probing client must never take an upstream outage for a broker one.
            self.modern.eras.forget(upstream);
        }
        let content_type = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_owned();
        let mut out = plain(
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            &content_type,
            Body::from_stream(res.bytes_stream()),
        );
        if content_type.starts_with("text/event-stream") {
            out.headers_mut()
                .insert("x-accel-buffering", HeaderValue::from_static("no"));
        }
        out
    }
}

fn plain(status: StatusCode, content_type: &str, body: Body) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .unwrap_or_default()
}
