//! One modern request relayed over the warm legacy session (MCP 2026-07-28 modern client
//! to 2025-11-25 upstream): the id and progress token are replaced by broker-minted ones
//! and the reserved `_meta` keys stripped before the hop (basic/index §`_meta`); on the
//! way back the id and token are restored and the result gains `resultType` and, for the
//! cacheable methods, `ttlMs`/`cacheScope` describing the broker's view
//! (server/utilities/caching §Cacheable Results: not cached, private to this grant). A
//! remote upstream's 4xx refusal keeps its HTTP status, code and message, as for a legacy
//! client (basic/transports; see proxy/remote.rs).
//! Progress goes out on the request's own response (basic/patterns/progress); dropping
//! the call (the client went away) cancels it upstream (basic/patterns/cancellation
//! §Transport-Specific Cancellation).
//!
//! A request from the upstream in the middle of the call (elicitation, sampling, roots)
//! parks the call and answers the client `input_required` with a sealed `requestState`
//! (basic/patterns/mrtr); the client's retry answers the upstream and resumes the call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::ladder::{METHOD_NOT_FOUND, MISSING_CAPABILITY, ModernRequest, Rejection};
use super::request_state::{Sealed, Sealer, StateError, digest};
use super::warm::Warm;
use crate::oauth::GrantId;
use crate::proxy::message::{IdKey, Kind, Members, parse_one, write_member};
use crate::proxy::session::SseItem;

/// Results that carry cache hints (caching §Cacheable Results).
const CACHEABLE: &[&str] = &[
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];
/// The methods that may answer `input_required` (mrtr §Supported Requests).
const MRTR: &[&str] = &["tools/call", "prompts/get", "resources/read"];

/// One thing to send the client.
pub struct Out {
    pub data: Bytes,
    pub status: StatusCode,
    /// The final response: nothing follows.
    pub last: bool,
}

/// Calls waiting for the client's `input_required` retry.
pub struct Parking {
    table: Mutex<HashMap<u64, Parked>>,
    next: AtomicU64,
    sealer: Sealer,
    /// How long a parked call waits for the retry.
    pub ttl: Duration,
}

struct Parked {
    call: Relayed,
    /// The upstream's pending request and the key it has in `inputRequests`.
    asked: IdKey,
    key: String,
    input_request: Value,
}

/// The upstream side of a call, which survives parking.
struct Relayed {
    warm: Arc<Warm>,
    grant: GrantId,
    method: String,
    /// `params.name` or `params.uri`.
    name: Option<String>,
    upstream_id: IdKey,
    upstream_token: Option<Box<str>>,
    sid: u64,
    rx: mpsc::UnboundedReceiver<SseItem>,
}

pub struct Call {
    relayed: Option<Relayed>,
    parking: Arc<Parking>,
    client_id: Value,
    client_token: Option<Value>,
    /// The client's declared capabilities (JSON text of an object).
    capabilities: Box<str>,
    /// Something already went out on an SSE stream: later errors are in-band.
    streaming: bool,
    done: bool,
    /// A retry that lacked the answer: ask again.
    pending_input: Option<(IdKey, String, Value)>,
}

impl Parking {
    pub fn new(ttl: Duration) -> Arc<Parking> {
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut key);
        Arc::new(Parking {
            table: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            sealer: Sealer::new(key),
            ttl,
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Parked>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unix_now() -> i64 {
    crate::clock::now()
}

impl Call {
    /// Sends the request upstream over the warm session.
    pub async fn start(
        warm: Arc<Warm>,
        parking: Arc<Parking>,
        grant: GrantId,
        req: ModernRequest,
    ) -> Call {
        let upstream_id = warm.mint();
        let client_token = req.progress_token.clone();
        let upstream_token = client_token
            .as_ref()
            .map(|_| format!("{upstream_id}-progress"));
        let msg = req.legacy_message(&upstream_id, upstream_token.as_deref());
        let post = warm
            .relay
            .session
            .open_post_stream(std::slice::from_ref(&msg), Instant::now());
        warm.relay.session.touch(Instant::now());
        warm.relay.link.send(&msg).await;
        Call {
            relayed: Some(Relayed {
                grant,
                method: req.method,
                name: req.name,
                upstream_id: match &msg.kind {
                    Kind::Request { id, .. } => id.clone(),
                    _ => json_text(&Value::String(upstream_id)),
                },
                upstream_token: msg.progress_token.clone(),
                sid: post.id,
                rx: post.rx,
                warm,
            }),
            parking,
            client_id: req.id,
            client_token,
            capabilities: req.capabilities,
            streaming: false,
            done: false,
            pending_input: None,
        }
    }

    /// A retry carrying `requestState`: answers the parked upstream request and resumes
    /// the call, or asks again when the answer is missing.
    pub async fn resume(
        parking: Arc<Parking>,
        grant: GrantId,
        upstream: &str,
        req: &ModernRequest,
        state: &str,
    ) -> Result<Call, Rejection> {
        let refuse = |e: StateError| Rejection {
            status: StatusCode::BAD_REQUEST,
            id: req.id.clone(),
            code: super::ladder::INVALID_PARAMS,
            message: format!("Invalid params: {e}"),
            data: None,
        };
        let sealed = parking
            .sealer
            .open(
                state,
                grant,
                upstream,
                &digest(&req.method, req.name()),
                unix_now(),
            )
            .map_err(refuse)?;
        let parked = parking
            .table()
            .remove(&sealed.handle)
            .ok_or(refuse(StateError::Expired))?;
        let answer = req
            .param("inputResponses")
            .and_then(|r| r.get(&parked.key).cloned());
        let client_token = req.progress_token.clone();
        let mut call = Call {
            relayed: None,
            parking: parking.clone(),
            client_id: req.id.clone(),
            client_token,
            capabilities: req.capabilities.clone(),
            streaming: false,
            done: false,
            pending_input: None,
        };
        let Some(answer) = answer else {
            // mrtr §Error Handling: a missing answer is asked for again, not an error.
            call.relayed = Some(parked.call);
            call.pending_input = Some((parked.asked, parked.key, parked.input_request));
            return Ok(call);
        };
        let r = &parked.call;
        r.warm.relay.session.extend(&r.upstream_id, Instant::now());
        r.warm.reply(&parked.asked, Ok(answer)).await;
        call.relayed = Some(parked.call);
        Ok(call)
    }

    /// The next thing for the client; `None` after the last.
    pub async fn next(&mut self) -> Option<Out> {
        if self.done {
            return None;
        }
        if let Some((asked, key, input_request)) = self.pending_input.take() {
            return Some(self.park(asked, key, input_request));
        }
        loop {
            let r = self.relayed.as_mut()?;
            let Some(item) = r.rx.recv().await else {
                return Some(self.finish_error(
                    StatusCode::OK,
                    -32603,
                    "the upstream session ended before answering",
                ));
            };
            // The 4xx a remote upstream refused the request with (remote.rs relays it).
            let refused = item.status.and_then(|s| StatusCode::from_u16(s).ok());
            // This stream carries one request, so a response on it answers that request:
            // no need to read its id again.
            if item.response {
                let (status, data) = client_response(
                    &item.data,
                    &self.client_id,
                    (&r.method, r.name.as_deref()),
                    &r.warm.server_info,
                );
                let status = match refused {
                    // Once progress went out the status line is sent: 200.
                    _ if self.streaming => StatusCode::OK,
                    Some(refused) => refused,
                    None => status,
                };
                self.finish();
                return Some(Out {
                    data,
                    status,
                    last: true,
                });
            }
            let Ok(m) = parse_one(item.data) else {
                continue;
            };
            match &m.kind {
                Kind::Response { .. } => {}
                Kind::Notification { method } if method == "notifications/progress" => {
                    if m.progress_token.is_some()
                        && m.progress_token == r.upstream_token
                        && let Some(t) = &self.client_token
                    {
                        let mut v: Value = serde_json::from_slice(&m.raw).unwrap_or(Value::Null);
                        v["params"]["progressToken"] = t.clone();
                        self.streaming = true;
                        return Some(Out {
                            data: Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
                            status: StatusCode::OK,
                            last: false,
                        });
                    }
                }
                // Logs are per session upstream and cannot be told apart per request:
                // a modern client gets none (logging §Per-request log level).
                Kind::Notification { .. } => r.warm.publish(&m),
                Kind::Request { id, method } => {
                    let (id, method) = (id.clone(), method.clone());
                    if let Some(out) = self.asked(id, method, &m.raw).await {
                        return Some(out);
                    }
                }
            }
        }
    }

    /// A request from the upstream during the call.
    async fn asked(&mut self, id: IdKey, method: String, raw: &Bytes) -> Option<Out> {
        let r = self.relayed.as_ref()?;
        let capability = match method.as_str() {
            "ping" => {
                r.warm.reply(&id, Ok(json!({}))).await;
                return None;
            }
            "elicitation/create" => "elicitation",
            "sampling/createMessage" => "sampling",
            "roots/list" => "roots",
            _ => {
                r.warm
                    .reply(
                        &id,
                        Err((
                            METHOD_NOT_FOUND,
                            "the broker cannot relay this request to a 2026-07-28 client",
                        )),
                    )
                    .await;
                return None;
            }
        };
        if !MRTR.contains(&r.method.as_str()) {
            r.warm.reply(&id, Err((-32603, "the client cannot be asked during this request (2026-07-28 input_required covers tools/call, prompts/get and resources/read)"))).await;
            return None;
        }
        let declared: Value = serde_json::from_str(&self.capabilities).unwrap_or(Value::Null);
        if declared.get(capability).is_none_or(Value::is_null) {
            r.warm
                .reply(
                    &id,
                    Err((-32603, "the client did not declare this capability")),
                )
                .await;
            let mut data = serde_json::Map::new();
            data.insert(capability.to_owned(), json!({}));
            let rej = Rejection {
                status: StatusCode::BAD_REQUEST,
                id: self.client_id.clone(),
                code: MISSING_CAPABILITY,
                message: format!(
                    "Missing required client capability: {capability} (the upstream asked for {method} during the call)"
                ),
                data: Some(json!({"requiredCapabilities": data})),
            };
            self.cancel_upstream("the client lacks a capability the call needs");
            let status = if self.streaming {
                StatusCode::OK
            } else {
                rej.status
            };
            self.done = true;
            return Some(Out {
                data: Bytes::from(rej.body().to_string()),
                status,
                last: true,
            });
        }
        let v: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        let mut params = v.get("params").cloned().unwrap_or(json!({}));
        if let Some(p) = params.as_object_mut() {
            // URL-mode ids belong to 2025-11-25 only (changelog minor 11).
            p.remove("elicitationId");
        }
        let input_request = json!({"method": method, "params": params});
        Some(self.park(id, "input".into(), input_request))
    }

    /// Parks the call and answers `input_required`.
    fn park(&mut self, asked: IdKey, key: String, input_request: Value) -> Out {
        let Some(call) = self.relayed.take() else {
            return self.finish_error(StatusCode::OK, -32603, "nothing to park");
        };
        let handle = self.parking.next.fetch_add(1, Ordering::Relaxed);
        let sealed = Sealed {
            grant: call.grant,
            upstream: call.warm.upstream.clone(),
            handle,
            expires: unix_now() + self.parking.ttl.as_secs() as i64,
            digest: digest(&call.method, call.name.as_deref()),
        };
        let state = self.parking.sealer.seal(&sealed);
        call.warm
            .relay
            .session
            .extend(&call.upstream_id, Instant::now());
        self.parking.table().insert(
            handle,
            Parked {
                call,
                asked,
                key: key.clone(),
                input_request: input_request.clone(),
            },
        );
        let parking = self.parking.clone();
        tokio::spawn(async move {
            tokio::time::sleep(parking.ttl).await;
            let gone = parking.table().remove(&handle);
            if let Some(p) = gone {
                tracing::info!(upstream = %p.call.warm.upstream, "no retry for an input_required result; cancelling the upstream call");
                p.call
                    .cancel("the client did not answer the input request in time");
            }
        });
        self.done = true;
        let body = json!({
            "jsonrpc": "2.0",
            "id": self.client_id,
            "result": {
                "resultType": "input_required",
                "inputRequests": {key: input_request},
                "requestState": state,
            },
        });
        Out {
            data: Bytes::from(body.to_string()),
            status: StatusCode::OK,
            last: true,
        }
    }

    fn finish(&mut self) {
        self.done = true;
        if let Some(r) = self.relayed.take() {
            r.warm.relay.session.drop_stream(r.sid);
        }
    }

    fn finish_error(&mut self, status: StatusCode, code: i64, why: &str) -> Out {
        self.finish();
        let body = json!({"jsonrpc": "2.0", "id": self.client_id, "error": {"code": code, "message": why}});
        Out {
            data: Bytes::from(body.to_string()),
            status,
            last: true,
        }
    }

    fn cancel_upstream(&mut self, why: &str) {
        if let Some(r) = self.relayed.take() {
            r.cancel(why);
        }
    }
}

impl Relayed {
    fn cancel(self, why: &str) {
        let s = &self.warm.relay.session;
        if s.cancel(&self.upstream_id, Instant::now()) {
            self.warm.relay.link.cancel(&self.upstream_id, Some(why));
        }
        s.drop_stream(self.sid);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        // Closing the response is cancellation over HTTP (cancellation §Transport-Specific).
        if let Some(r) = self.relayed.take() {
            tracing::info!(upstream = %r.warm.upstream, method = %r.method, "the client went away; cancelled the upstream call");
            r.cancel("the client went away");
        }
    }
}

fn json_text(v: &Value) -> IdKey {
    v.to_string().into()
}

/// The upstream's response as the modern client gets it, and its HTTP status.
pub fn client_response(
    raw: &[u8],
    client_id: &Value,
    (method, name): (&str, Option<&str>),
    server_info: &[u8],
) -> (StatusCode, Bytes) {
    // The common case, a result, is rewritten around its members' raw text: a tool's
    // content is copied, not parsed into a tree and printed again.
    if let Ok(r) = serde_json::from_slice::<ResultMembers>(raw) {
        return (
            StatusCode::OK,
            modern_result(&r.result, client_id, method, server_info),
        );
    }
    let mut v: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let mut status = StatusCode::OK;
    v["id"] = client_id.clone();
    if let Some(result) = v.get_mut("result").and_then(|r| r.as_object_mut()) {
        result.entry("resultType").or_insert(json!("complete"));
        if CACHEABLE.contains(&method) {
            result.insert("ttlMs".into(), json!(0));
            result.insert("cacheScope".into(), json!("private"));
        }
        let meta = result.entry("_meta").or_insert(json!({}));
        if let Some(meta) = meta.as_object_mut()
            && let Ok(info) = serde_json::from_slice::<Value>(server_info)
            && !info.is_null()
        {
            meta.insert(SERVER_INFO_KEY.into(), info);
        }
    } else if let Some(err) = v.get_mut("error").and_then(|e| e.as_object_mut()) {
        match err.get("code").and_then(|c| c.as_i64()) {
            // resources §Error Handling: not found is -32602 in 2026-07-28, with the
            // URI in `data` as its example shows. A 2025-11-25 upstream says -32002,
            // or already -32602 (the TypeScript SDK) but without the URI.
            Some(-32002 | -32602) if method == "resources/read" => {
                err.insert("code".into(), json!(-32602));
                if !err.contains_key("data")
                    && let Some(uri) = name
                {
                    err.insert("data".into(), json!({"uri": uri}));
                }
            }
            Some(METHOD_NOT_FOUND) => status = StatusCode::NOT_FOUND,
            _ => {}
        }
    }
    (
        status,
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
    )
}

/// A response's `result` members, each as the upstream wrote it.
#[derive(serde::Deserialize)]
struct ResultMembers<'a> {
    #[serde(borrow)]
    result: Members<'a>,
}

const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";

/// The result with what a 2026-07-28 client expects of it: `resultType`, the cache hints
/// of a list or read, and the server's info in `_meta`.
fn modern_result(
    result: &Members<'_>,
    client_id: &Value,
    method: &str,
    server_info: &[u8],
) -> Bytes {
    let cacheable = CACHEABLE.contains(&method);
    let size: usize = result.0.iter().map(|(_, v)| v.get().len() + 16).sum();
    let mut out = Vec::with_capacity(size + server_info.len() + 192);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    let _ = serde_json::to_writer(&mut out, client_id);
    out.extend_from_slice(b",\"result\":{");
    let mut first = true;
    for (k, v) in &result.0 {
        let ours = k == "_meta" || (cacheable && (k == "ttlMs" || k == "cacheScope"));
        if !ours {
            write_member(&mut out, &mut first, k, v.get().as_bytes());
        }
    }
    if result.get("resultType").is_none() {
        write_member(&mut out, &mut first, "resultType", b"\"complete\"");
    }
    if cacheable {
        write_member(&mut out, &mut first, "ttlMs", b"0");
        write_member(&mut out, &mut first, "cacheScope", b"\"private\"");
    }
    // The upstream's own `_meta` members, then the server's identity (basic/index §`_meta`).
    let mut meta = Vec::with_capacity(server_info.len() + 64);
    meta.push(b'{');
    let mut none = true;
    let theirs = result.get("_meta").and_then(Members::of);
    for (k, v) in theirs.iter().flat_map(|m| m.0.iter()) {
        if k != SERVER_INFO_KEY {
            write_member(&mut meta, &mut none, k, v.get().as_bytes());
        }
    }
    if !server_info.is_empty() && server_info != b"null" {
        write_member(&mut meta, &mut none, SERVER_INFO_KEY, server_info);
    }
    meta.push(b'}');
    write_member(&mut out, &mut first, "_meta", &meta);
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_hop_loses_reserved_meta_and_client_ids() {
        use super::super::ladder::legacy_request;
        let hop = |v: &Value, id, token| -> Value {
            let raw = legacy_request(v.to_string().as_bytes(), id, token).unwrap();
            serde_json::from_slice(&raw).unwrap()
        };
        let body = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{
            "name":"echo","arguments":{"m":"x"},
            "requestState":"s","inputResponses":{"a":{}},
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},
                     "progressToken":"p1","traceparent":"00-aa-bb-01"}}});
        let out = hop(&body, "mb-3", Some("mb-3-progress"));
        assert_eq!(out["id"], json!("mb-3"));
        assert_eq!(out["method"], json!("tools/call"));
        assert_eq!(out["params"]["arguments"], json!({"m":"x"}));
        assert_eq!(
            out["params"]["_meta"],
            json!({"progressToken":"mb-3-progress","traceparent":"00-aa-bb-01"})
        );
        assert!(
            out["params"].get("requestState").is_none()
                && out["params"].get("inputResponses").is_none()
        );
        let bare = json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}});
        let out = hop(&bare, "mb-1", None);
        assert_eq!(out["params"], json!({}));
        // By-position params and no params pass as they are.
        let odd = json!({"jsonrpc":"2.0","id":1,"method":"x","params":[1,2]});
        assert_eq!(hop(&odd, "mb-2", None)["params"], json!([1, 2]));
        let none = json!({"jsonrpc":"2.0","id":1,"method":"x"});
        assert!(hop(&none, "mb-2", None).get("params").is_none());
    }

    #[test]
    fn results_gain_the_modern_fields() {
        let info = json!({"name":"up","version":"1"});
        let (s, b) = client_response(
            br#"{"jsonrpc":"2.0","id":"mb-1","result":{"tools":[]}}"#,
            &json!(7),
            ("tools/list", None),
            info.to_string().as_bytes(),
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["id"], json!(7));
        assert_eq!(v["result"]["resultType"], json!("complete"));
        assert_eq!(
            (
                v["result"]["ttlMs"].clone(),
                v["result"]["cacheScope"].clone()
            ),
            (json!(0), json!("private"))
        );
        assert_eq!(
            v["result"]["_meta"]["io.modelcontextprotocol/serverInfo"],
            info
        );
        let (_, b) = client_response(
            br#"{"jsonrpc":"2.0","id":"mb-1","result":{"content":[]}}"#,
            &json!("a"),
            ("tools/call", None),
            info.to_string().as_bytes(),
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert!(v["result"].get("ttlMs").is_none());
        let (_, b) = client_response(
            br#"{"jsonrpc":"2.0","id":"mb-1","error":{"code":-32002,"message":"nf"}}"#,
            &json!(1),
            ("resources/read", Some("a://gone")),
            info.to_string().as_bytes(),
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            (
                v["error"]["code"].clone(),
                v["error"]["data"]["uri"].clone()
            ),
            (json!(-32602), json!("a://gone"))
        );
        let (_, b) = client_response(
            br#"{"jsonrpc":"2.0","id":"mb-1","error":{"code":-32602,"message":"Resource a://gone not found"}}"#,
            &json!(1),
            ("resources/read", Some("a://gone")),
            info.to_string().as_bytes(),
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["data"], json!({"uri": "a://gone"}));
        let (s, _) = client_response(
            br#"{"jsonrpc":"2.0","id":"mb-1","error":{"code":-32601,"message":"no"}}"#,
            &json!(1),
            ("prompts/list", None),
            info.to_string().as_bytes(),
        );
        assert_eq!(s, StatusCode::NOT_FOUND);
        // The upstream's own `_meta` stays; a server identity it made up does not.
        let (_, b) = client_response(
            br#"{"jsonrpc":"2.0","id":"mb-1","result":{"content":[],"_meta":{"trace":"t","io.modelcontextprotocol/serverInfo":{"name":"fake"}}}}"#,
            &json!(1),
            ("tools/call", None),
            info.to_string().as_bytes(),
        );
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v["result"]["_meta"],
            json!({"trace": "t", SERVER_INFO_KEY: info})
        );
    }
}
