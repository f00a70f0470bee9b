//! One stateless 2026-07-28 request to a modern remote upstream, as the bridge sends it
//! (basic/transports/streamable-http §Sending Messages, §Request Metadata): one POST per
//! message, both `Accept` types, `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` (name
//! or URI of `tools/call`, `prompts/get`, `resources/read`) and `Mcp-Param-*` for tool
//! arguments whose schema carries `x-mcp-header` (§Custom Headers from Tool Parameters),
//! values that are not plain visible ASCII sent as `=?base64?…?=` (§Value Encoding). The
//! broker's own credentials for the upstream go with it: its configured headers and its
//! sign-in, never the client's token (basic/authorization §Token Handling).
//!
//! The answer is JSON or an SSE stream scoped to the request; each notification on it is
//! handed over as it arrives, the response ends the exchange. Dropping the exchange
//! closes the connection, which is how a request is cancelled over HTTP
//! (streamable-http §Cancellation).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::stdio_wire::StdioWire;
use crate::proxy::modern::ladder::{MODERN_VERSION, name_key};
use crate::proxy::upstream_oauth::UpstreamOAuth;

/// How the bridge reaches a 2026-07-28 upstream.
pub enum Wire {
    Http(HttpWire),
    Stdio(StdioWire),
}

impl Wire {
    /// Sends one request and waits for its response; `on_note` gets each notification
    /// about it as it comes. `idle`: the answer may stay quiet for longer than the
    /// timeout (a `subscriptions/listen`).
    pub async fn exchange(
        &self,
        body: &Value,
        params_headers: &[(String, String)],
        idle: bool,
        on_note: impl FnMut(Value),
    ) -> Result<Answer, WireError> {
        match self {
            Wire::Http(w) => w.exchange(body, params_headers, idle, on_note).await,
            // Headers are an HTTP matter: over stdio the metadata is only in `_meta`
            // (stdio §Receiving Messages).
            Wire::Stdio(w) => w.exchange(body, idle, on_note).await,
        }
    }

    pub async fn shutdown(&self) {
        if let Wire::Stdio(w) = self {
            w.shutdown().await;
        }
    }
}

/// What a modern remote upstream needs to be reached.
pub struct HttpWire {
    pub http: reqwest::Client,
    pub url: url::Url,
    /// The configured headers, resolved (secrets marked sensitive).
    pub headers: HeaderMap,
    pub oauth: Arc<UpstreamOAuth>,
    /// The sign-in whose token goes with each request (the grant's account's).
    pub sign_in: String,
    /// How long the upstream may take to send headers, and then each part of its answer.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(
        "the upstream MCP server refused the broker's credentials (HTTP {0}); sign in with `mcp-broker upstream login UPSTREAM`"
    )]
    Refused(u16),
    #[error("the upstream MCP server is unreachable")]
    Unreachable,
    #[error("the upstream MCP server did not answer in time")]
    Timeout,
    #[error("the upstream MCP server answered HTTP {0} without a JSON-RPC message")]
    Status(u16),
    #[error("the upstream MCP server ended its answer without a response")]
    Ended,
    #[error("{0}")]
    Gone(String),
    /// The sign-in is needed or failed; the message says which and what to do.
    #[error("{0}")]
    SignIn(String),
}

/// The answer's end: the HTTP status and the JSON-RPC response.
pub struct Answer {
    pub status: u16,
    pub message: Value,
}

impl HttpWire {
    /// POSTs `body` (a request whose `params._meta` is complete).
    pub async fn exchange(
        &self,
        body: &Value,
        params_headers: &[(String, String)],
        idle: bool,
        mut on_note: impl FnMut(Value),
    ) -> Result<Answer, WireError> {
        let mut bearer = self
            .oauth
            .bearer(&self.sign_in)
            .await
            .map_err(|e| WireError::SignIn(e.to_string()))?;
        let mut refreshed = false;
        let res = loop {
            let mut req = self
                .http
                .post(self.url.clone())
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json, text/event-stream")
                .headers(routing(body, params_headers));
            if let Some(t) = &bearer {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                        WireError::SignIn(
                            "the broker's token for the upstream is not a valid header value"
                                .into(),
                        )
                    })?;
                v.set_sensitive(true);
                req = req.header(AUTHORIZATION, v);
            }
            let res = tokio::time::timeout(self.timeout, req.body(body.to_string()).send())
                .await
                .map_err(|_| WireError::Timeout)?
                .map_err(|_| WireError::Unreachable)?;
            let status = res.status().as_u16();
            if status == 401 && !refreshed {
                // As the 2025-11-25 link does: refresh the sign-in once, or say that it
                // is needed (for which account, and the command).
                refreshed = true;
                match self
                    .oauth
                    .after_unauthorized(&self.sign_in, bearer.as_ref())
                    .await
                {
                    Ok(fresh) => {
                        bearer = Some(fresh);
                        continue;
                    }
                    Err(e) => return Err(WireError::SignIn(e.to_string())),
                }
            }
            if status == 401 || status == 403 {
                return Err(WireError::Refused(status));
            }
            break res;
        };
        let status = res.status().as_u16();
        let sse = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !sse {
            let bytes = tokio::time::timeout(self.timeout, res.bytes())
                .await
                .map_err(|_| WireError::Timeout)?
                .map_err(|_| WireError::Unreachable)?;
            return match serde_json::from_slice::<Value>(&bytes) {
                Ok(message) if message.get("id").is_some() => Ok(Answer { status, message }),
                _ => Err(WireError::Status(status)),
            };
        }
        let mut events = res.bytes_stream().eventsource();
        loop {
            let next = if idle {
                events.next().await
            } else {
                tokio::time::timeout(self.timeout, events.next())
                    .await
                    .map_err(|_| WireError::Timeout)?
            };
            let Some(Ok(ev)) = next else {
                return Err(WireError::Ended);
            };
            let Ok(message) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            if message.get("method").is_some() && message.get("id").is_none() {
                on_note(message);
            } else if message.get("result").is_some() || message.get("error").is_some() {
                return Ok(Answer { status, message });
            }
            // A request on a response stream is forbidden in 2026-07-28
            // (streamable-http §Receiving Messages): it is ignored.
        }
    }
}

/// `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` for `body`.
fn routing(body: &Value, params_headers: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "mcp-protocol-version",
        HeaderValue::from_static(MODERN_VERSION),
    );
    let method = body["method"].as_str().unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(method) {
        h.insert("mcp-method", v);
    }
    let params = body["params"].as_object();
    if let Some(name) = name_key(method)
        .and_then(|k| params?.get(k))
        .and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(&encode(name))
    {
        h.insert("mcp-name", v);
    }
    let arguments = params
        .and_then(|p| p.get("arguments"))
        .and_then(Value::as_object);
    for (arg, header) in params_headers {
        let Some(value) = arguments.and_then(|a| a.get(arg)).and_then(header_text) else {
            continue;
        };
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(format!("mcp-param-{header}").as_bytes()),
            HeaderValue::from_str(&encode(&value)),
        ) {
            h.insert(k, v);
        }
    }
    h
}

/// A tool argument as a header value: strings, integers and booleans (tools
/// §x-mcp-header); anything else, or null, sends no header.
fn header_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// streamable-http §Value Encoding: plain visible ASCII as it is; anything else (and a
/// value that looks like the sentinel itself) as `=?base64?…?=`.
pub fn encode(v: &str) -> String {
    let sentinel = v.starts_with("=?base64?") && v.ends_with("?=");
    let plain = v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !sentinel;
    if plain {
        v.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v)
        )
    }
}

/// Per tool, the arguments mirrored into `Mcp-Param-*` headers: `(argument, header)`
/// from each top-level property's `x-mcp-header` (tools §x-mcp-header).
pub fn param_headers(tools: &[Value]) -> Vec<(String, Vec<(String, String)>)> {
    tools
        .iter()
        .filter_map(|t| {
            let name = t["name"].as_str()?;
            let props: &Map<String, Value> = t["inputSchema"]["properties"].as_object()?;
            let pairs: Vec<(String, String)> = props
                .iter()
                .filter_map(|(arg, schema)| {
                    Some((arg.clone(), schema["x-mcp-header"].as_str()?.to_owned()))
                })
                .collect();
            Some((name.to_owned(), pairs))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routing_headers_from_the_body() {
        let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"wetter","arguments":{"region":"Zürich","n":3,"x":null}}});
        let h = routing(
            &body,
            &[
                ("region".into(), "Region".into()),
                ("n".into(), "N".into()),
                ("x".into(), "X".into()),
            ],
        );
        assert_eq!(h["mcp-protocol-version"], "2026-07-28");
        assert_eq!(h["mcp-method"], "tools/call");
        assert_eq!(h["mcp-name"], "wetter");
        assert_eq!(h["mcp-param-region"], "=?base64?WsO8cmljaA==?=");
        assert_eq!(h["mcp-param-n"], "3");
        assert!(h.get("mcp-param-x").is_none());
        let read = json!({"method":"resources/read","params":{"uri":"file:///a b"}});
        assert_eq!(routing(&read, &[])["mcp-name"], "file:///a b");
        assert!(
            routing(&json!({"method":"tools/list"}), &[])
                .get("mcp-name")
                .is_none()
        );
    }

    #[test]
    fn value_encoding() {
        assert_eq!(encode("plain"), "plain");
        assert_eq!(encode(" lead"), "=?base64?IGxlYWQ=?=");
        assert_eq!(encode("=?base64?x?="), "=?base64?PT9iYXNlNjQ/eD89?=");
        assert_eq!(encode("a\nb"), "=?base64?YQpi?=");
    }

    #[test]
    fn param_headers_from_schemas() {
        let tools = [
            json!({"name":"w","inputSchema":{"properties":{"region":{"type":"string","x-mcp-header":"Region"},"q":{"type":"string"}}}}),
            json!({"name":"plain","inputSchema":{"type":"object"}}),
        ];
        let got = param_headers(&tools);
        assert_eq!(
            got[0],
            ("w".into(), vec![("region".into(), "Region".into())])
        );
        assert_eq!(got.len(), 1);
    }
}
