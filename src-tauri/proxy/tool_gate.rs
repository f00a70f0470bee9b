//! The proxy's side of per-tool consent: before a `tools/call` is relayed the grant's
//! [`ToolGate`] decides it (a refused call never reaches the upstream), and every
//! `tools/list` answer passes the gate before the client sees it. The rules live in
//! `tool_policy`, the policies in the gateway; the proxy only knows this trait.
//!
//! Also here: listing an upstream's tools for a consent screen over a short-lived session
//! of its own, and telling a grant's open sessions that their tool list changed
//! (`notifications/tools/list_changed`, MCP 2025-11-25 "Tools": "List Changed
//! Notification").

use std::borrow::Cow;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::message::{Kind, Message, error_response, parse_one};
use super::session::EndReason;
use super::{Relay, Upstreams};
use crate::oauth::GrantId;

/// JSON-RPC error code of a call the grant's tool policy refused (the server-defined
/// range of JSON-RPC 2.0 §5.1).
pub const TOOL_REFUSED: i64 = -32003;

/// One `tools/call` the client made.
pub struct ToolCall<'a> {
    pub grant: GrantId,
    pub upstream: &'a str,
    pub tool: &'a str,
    /// `params.arguments`, as the client sent them.
    pub arguments: Option<&'a RawValue>,
    /// Told when the gate starts waiting for a person (`tool_wait` then keeps the
    /// client's request alive).
    pub asking: Option<&'a tokio::sync::Notify>,
}

pub trait ToolGate: Send + Sync {
    /// `Err(message)`: the call is refused with this message. May wait (the person is
    /// asked).
    fn check_call<'a>(&'a self, call: ToolCall<'a>) -> BoxFuture<'a, Result<(), String>>;

    /// Whether the call is relayed on what the gate already holds, deciding without
    /// waiting, reading or allocating (every call takes this; `check_call` then only
    /// sees the ones it cannot clear). `false` when in doubt.
    fn passes_now(&self, _grant: GrantId, _tool: &str) -> bool {
        false
    }

    /// A `tools/list` response for this grant; `Some` replaces it.
    fn screen_list<'a>(
        &'a self,
        grant: GrantId,
        upstream: &'a str,
        response: &'a [u8],
    ) -> BoxFuture<'a, Option<Bytes>>;
}

#[derive(Deserialize)]
struct CallEnvelope<'a> {
    #[serde(borrow)]
    params: Option<CallParams<'a>>,
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

/// Asks the gate about every `tools/call` in a POST. On a refusal nothing of the POST is
/// relayed: a single call is answered with its error; a batch with an error for each
/// request, the refused calls' saying why. Each refused request is recorded in the
/// activity log as refused by the broker, under the reference its error carries.
pub(super) async fn screen_calls(
    gate: &dyn ToolGate,
    msgs: &[Message],
    grant: GrantId,
    upstream: &str,
    activity: Option<&crate::activity::ActivityLog>,
    asking: Option<&tokio::sync::Notify>,
) -> Result<(), Response> {
    let started = std::time::Instant::now();
    let mut names: Vec<Option<String>> = vec![None; msgs.len()];
    let mut refusals: Vec<(usize, String)> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        if m.method() != Some("tools/call") {
            continue;
        }
        let env: Option<CallEnvelope> = serde_json::from_slice(&m.raw).ok();
        let params = env.and_then(|e| e.params);
        // No name: the upstream answers the malformed call itself.
        let Some(tool) = params.as_ref().and_then(|p| p.name.as_deref()) else {
            continue;
        };
        names[i] = Some(tool.to_owned());
        let call = ToolCall {
            grant,
            upstream,
            tool,
            arguments: params.as_ref().and_then(|p| p.arguments),
            asking,
        };
        if let Err(why) = gate.check_call(call).await {
            refusals.push((i, why));
        }
    }
    if refusals.is_empty() {
        return Ok(());
    }
    let answers: Vec<Bytes> = msgs
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let Kind::Request { id, .. } = &m.kind else {
                return None;
            };
            let why = refusals
                .iter()
                .find(|(j, _)| *j == i)
                .map(|(_, w)| w.as_str())
                .unwrap_or("not relayed: another call in this batch was refused");
            let reference = crate::activity::Reference::mint();
            tracing::info!(%reference, "tools/call refused by the grant's tool policy: {why}");
            let answer = error_response(Some(id), TOOL_REFUSED, why, &reference);
            if let Some(log) = activity {
                log.call(crate::activity::Call {
                    at_ms: crate::clock::now_ms(),
                    grant,
                    upstream: std::sync::Arc::from(upstream),
                    method: m.method().unwrap_or("").into(),
                    target: names[i].clone().map(Into::into),
                    outcome: crate::activity::Outcome::Refused(TOOL_REFUSED),
                    duration: started.elapsed(),
                    response_bytes: answer.len(),
                    reference: Some(reference),
                    arguments: None,
                });
            }
            Some(answer)
        })
        .collect();
    let body = if msgs.len() == 1 {
        answers.into_iter().next().unwrap_or_default()
    } else {
        super::streamable::json_array(&answers)
    };
    Err(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap_or_default())
}

/// A response from the upstream to a `tools/list`, passed through the gate.
pub(super) async fn screen_response(
    gate: &dyn ToolGate,
    relay_grant: GrantId,
    upstream: &str,
    m: Message,
) -> Message {
    match gate.screen_list(relay_grant, upstream, &m.raw).await {
        Some(b) => parse_one(b).unwrap_or(m),
        None => m,
    }
}

/// The largest `tools/list` answer from a modern upstream the gate reads.
const MAX_LIST_BYTES: usize = 16 * 1024 * 1024;

/// A `tools/list` answer a 2026-07-28 upstream gave (passed through: plain JSON or an
/// event stream), through the gate like any other: the grant's client sees only the tools
/// it may use. An answer that cannot be read is an error, never the unscreened list.
pub(super) async fn screen_passed_list(
    up: &Upstreams,
    grant: GrantId,
    upstream: &str,
    id: &Value,
    res: Response,
) -> Response {
    let Some(gate) = up.gate() else { return res };
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_LIST_BYTES).await else {
        let e = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": "the upstream's tools/list answer could not be read"}});
        parts.headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        parts.headers.remove(axum::http::header::CONTENT_LENGTH);
        return Response::from_parts(parts, axum::body::Body::from(e.to_string()));
    };
    let sse = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let screened = if sse {
        screen_events(gate, grant, upstream, &bytes).await
    } else {
        gate.screen_list(grant, upstream, &bytes).await
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(screened.unwrap_or(bytes)))
}

/// An event stream's events, each response among them screened; `None`: nothing changed.
async fn screen_events(
    gate: &dyn ToolGate,
    grant: GrantId,
    upstream: &str,
    stream: &[u8],
) -> Option<Bytes> {
    let text = std::str::from_utf8(stream).ok()?.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    for event in text.split_inclusive("\n\n") {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        let joined = data.join("\n");
        let screened = if joined.contains("\"result\"") {
            gate.screen_list(grant, upstream, joined.as_bytes()).await
        } else {
            None
        };
        let Some(new) = screened else {
            out.push_str(event);
            continue;
        };
        changed = true;
        for l in event
            .lines()
            .filter(|l| !l.starts_with("data:") && !l.is_empty())
        {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&String::from_utf8_lossy(&new));
        out.push_str("\n\n");
    }
    changed.then(|| Bytes::from(out))
}

/// Pages of `tools/list` read for a consent screen at most.
const MAX_PAGES: usize = 20;

impl Upstreams {
    pub fn set_tool_gate(&self, gate: std::sync::Arc<dyn ToolGate>) {
        let _ = self.gate.set(gate);
    }

    /// The upstream's tools (`tools/list`, every page), from a session of its own that
    /// ends at once, within `bound`. `Err` says why, in one line. No account is chosen
    /// yet: an upstream with several lists its tools with the server's own values only.
    pub async fn list_tools(&self, upstream: &str, bound: Duration) -> Result<Vec<Value>, String> {
        let relay = self.connect(upstream, GrantId(0), None, false).await?;
        let listed = tokio::time::timeout(bound, list_over(&relay)).await;
        relay.session.end(&EndReason::Closed);
        relay.link.shutdown().await;
        match listed {
            Ok(r) => r,
            Err(_) => Err(format!(
                "the server did not list its tools within {} seconds",
                bound.as_secs()
            )),
        }
    }

    /// Tells every open session of `grant` on `upstream` that its tool list changed.
    pub fn tools_changed_for(&self, grant: GrantId) {
        let raw =
            Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#);
        let Ok(msg) = parse_one(raw) else { return };
        let now = Instant::now();
        for r in self.sessions().values() {
            if r.session.grant == grant && !r.session.is_closed() {
                r.session.route(msg.clone(), now);
            }
        }
        self.modern.passed_listens.tools_changed(grant);
    }
}

async fn list_over(relay: &Relay) -> Result<Vec<Value>, String> {
    request(
        relay,
        0,
        "initialize",
        serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "mcp-broker (consent)", "version": env!("CARGO_PKG_VERSION")}}),
    )
    .await?;
    if let Ok(m) = parse_one(Bytes::from_static(
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )) {
        relay.link.send(&m).await;
    }
    let mut tools = Vec::new();
    let mut cursor: Option<Value> = None;
    for page in 1..=MAX_PAGES {
        let params = match &cursor {
            Some(c) => serde_json::json!({"cursor": c}),
            None => serde_json::json!({}),
        };
        let mut r = request(relay, page as i64, "tools/list", params).await?;
        match r.get_mut("tools").map(Value::take) {
            Some(Value::Array(t)) => tools.extend(t),
            // Not a tool list: the consent cannot offer a choice per tool.
            _ => return Err("the server's tools/list answer lists no tools".into()),
        }
        cursor = r.get("nextCursor").filter(|c| !c.is_null()).cloned();
        if cursor.is_none() {
            break;
        }
    }
    Ok(tools)
}

async fn request(relay: &Relay, id: i64, method: &str, params: Value) -> Result<Value, String> {
    let raw = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let m = parse_one(Bytes::from(raw.to_string())).map_err(|_| "bad request".to_owned())?;
    let mut post = relay
        .session
        .open_post_stream(std::slice::from_ref(&m), Instant::now());
    relay.link.send(&m).await;
    while let Some(item) = post.rx.recv().await {
        if !item.response {
            continue;
        }
        relay.session.drop_stream(post.id);
        let mut v: Value = serde_json::from_slice(&item.data).map_err(|e| e.to_string())?;
        if let Some(e) = v.get("error") {
            return Err(format!(
                "the server refused {method}: {}",
                e.get("message").and_then(Value::as_str).unwrap_or("error")
            ));
        }
        return Ok(v.get_mut("result").map(Value::take).unwrap_or(Value::Null));
    }
    Err("the server ended before it answered".into())
}
