//! Modern client → modern remote upstream (MCP 2026-07-28; brief §3.3): the POST goes on
//! nearly as it came, with the broker's own credentials for the upstream (never the
//! client's token: basic/authorization §Token Handling), the routing headers
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) and every `Mcp-Param-*` header
//! forwarded (streamable-http §Server Behavior for Custom Headers: intermediaries forward
//! the ones they do not recognise), and the answer, JSON or SSE, streamed back with the
//! upstream's status, so its 400/404 protocol errors reach the client as they are.
//! Closing the client's response closes the upstream exchange: that is cancellation.
//!
//! Which era a remote upstream speaks is found out once per process by a
//! `server/discover` probe (basic/versioning §Backward Compatibility): a discover result
//! naming 2026-07-28, or a modern ladder error, means modern; any other answer means
//! legacy. Auth failures, 5xx and network errors are not verdicts and are not cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::ladder::{CAPABILITIES_KEY, MODERN_VERSION, VERSION_KEY};
use crate::config::Transport;
use crate::proxy::Upstreams;

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamEra {
    Legacy,
    Modern,
}

#[derive(Default)]
pub struct Eras {
    known: Mutex<HashMap<String, UpstreamEra>>,
}

/// What a probe answer says, if it says anything (pure; tested below).
pub fn verdict(status: u16, body: &[u8]) -> Option<UpstreamEra> {
    if status == 401 || status == 403 || status >= 500 {
        return None;
    }
    let v = json_of(body).unwrap_or(Value::Null);
    let modern = v["result"]["supportedVersions"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == MODERN_VERSION))
        || matches!(v["error"]["code"].as_i64(), Some(-32022..=-32020));
    Some(if modern {
        UpstreamEra::Modern
    } else {
        UpstreamEra::Legacy
    })
}

/// The body as JSON, or the first `data:` event of an SSE body.
fn json_of(body: &[u8]) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice(body) {
        return Some(v);
    }
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .find_map(|d| serde_json::from_str(d.trim()).ok())
}

impl Upstreams {
    /// How `upstream` is reached, as configured now (the configuration can change live).
    fn transport(&self, upstream: &str) -> Option<Transport> {
        self.configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(upstream)
            .map(|c| c.transport.clone())
    }

    /// The URL of `upstream` if it is a remote upstream that speaks 2026-07-28.
    pub(super) async fn modern_remote(&self, upstream: &str) -> Option<url::Url> {
        let transport = self.transport(upstream)?;
        let Transport::Http { url, .. } = &transport else {
            return None;
        };
        let cached = self
            .modern
            .eras
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(upstream)
            .copied();
        let era = match cached {
            Some(e) => e,
            None => {
                let e = self.probe(upstream, url).await?;
                tracing::info!(upstream, era = ?e, "upstream era found by a server/discover probe");
                self.modern
                    .eras
                    .known
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(upstream.to_owned(), e);
                e
            }
        };
        (era == UpstreamEra::Modern).then(|| url.clone())
    }

    async fn probe(&self, upstream: &str, url: &url::Url) -> Option<UpstreamEra> {
        let body = json!({
            "jsonrpc": "2.0",
            "id": "mcp-broker-probe",
            "method": "server/discover",
            "params": {"_meta": {
                VERSION_KEY: MODERN_VERSION,
                CAPABILITIES_KEY: {},
                "io.modelcontextprotocol/clientInfo": {"name": "mcp-broker", "version": env!("CARGO_PKG_VERSION")},
            }},
        });
        let mut headers = HeaderMap::new();
        headers.insert("mcp-method", HeaderValue::from_static("server/discover"));
        let req = self.signed(upstream, None, url, &headers).await.ok()?;
        let res = tokio::time::timeout(PROBE_TIMEOUT, req.body(body.to_string()).send())
            .await
            .ok()?
            .ok()?;
        let status = res.status().as_u16();
        let bytes = tokio::time::timeout(PROBE_TIMEOUT, res.bytes())
            .await
            .ok()?
            .ok()?;
        verdict(status, &bytes)
    }

    /// A POST to the upstream with the headers and the broker's sign-in of `account`
    /// (`None`: the implicit or only one).
    async fn signed(
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
            self.modern
                .eras
                .known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(upstream);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_verdicts() {
        let discover = br#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28"],"capabilities":{}}}"#;
        assert_eq!(verdict(200, discover), Some(UpstreamEra::Modern));
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"supportedVersions\":[\"2026-07-28\"]}}\n\n";
        assert_eq!(verdict(200, sse), Some(UpstreamEra::Modern));
        let unsupported = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["2026-07-28"]}}}"#;
        assert_eq!(verdict(400, unsupported), Some(UpstreamEra::Modern));
        let no_session = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#;
        assert_eq!(verdict(400, no_session), Some(UpstreamEra::Legacy));
        assert_eq!(verdict(404, b""), Some(UpstreamEra::Legacy));
        assert_eq!(verdict(401, b""), None);
        assert_eq!(verdict(503, discover), None);
    }
}
