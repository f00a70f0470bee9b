//! A 2025-11-25 remote upstream seen through the broker as it is (issue 11 point 6),
//! against the real binary over real HTTP, with a fake upstream served in-process that
//! really does what the transport allows (basic/transports):
//! - SSE polling: it answers a `tools/call` with a priming event (an id and a `retry`)
//!   and closes the connection; the response comes only on the GET that resumes with
//!   `Last-Event-ID`, after more closes. It polls its standalone GET stream the same way.
//! - HTTP 4xx with a JSON-RPC error body about the client's message: relayed with its
//!   status, code and message; a 403 (the broker's own sign-in) is not.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use support::*;

/// The upstream's `retry`, in milliseconds.
const RETRY_MS: u64 = 150;

/// What the fake upstream saw: every GET's `Last-Event-ID` (none for a fresh stream),
/// with when it came.
#[derive(Default)]
struct Seen {
    gets: Vec<(Option<String>, Instant)>,
    closes: Vec<(String, Instant)>,
}

type Shared = Arc<Mutex<Seen>>;

fn sse(body: String) -> Response {
    (
        StatusCode::OK,
        [
            ("content-type", "text/event-stream"),
            ("mcp-session-id", "up-1"),
        ],
        body,
    )
        .into_response()
}

fn json_reply(v: Value) -> Response {
    (
        StatusCode::OK,
        [
            ("content-type", "application/json"),
            ("mcp-session-id", "up-1"),
        ],
        v.to_string(),
    )
        .into_response()
}

fn event(id: &str, data: &Value) -> String {
    format!("id: {id}\ndata: {data}\n\n")
}

/// A priming event as sse-starlette writes it (no `data` line at all) or as the
/// TypeScript SDK does (an empty one); both must count.
fn priming(id: &str, with_data: bool) -> String {
    let data = if with_data { "data: \n" } else { "" };
    format!("id: {id}\nretry: {RETRY_MS}\n{data}\n")
}

fn result_text(id: &Value, text: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":text}]}})
}

async fn on_post(seen: Shared, body: String) -> Response {
    let msg: Value = serde_json::from_str(&body).unwrap();
    let id = msg["id"].clone();
    let tool = msg["params"]["name"].as_str().unwrap_or("");
    match msg["method"].as_str().unwrap_or("") {
        "initialize" => json_reply(
            json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"polling","version":"1"}}}),
        ),
        "tools/list" => {
            let tools: Vec<Value> = [
                "poll",
                "forever",
                "vanish",
                "refuse",
                "forbidden",
                "unreadable",
            ]
            .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
            .into();
            json_reply(json!({"jsonrpc":"2.0","id":id,"result":{"tools":tools}}))
        }
        "tools/call" => {
            // The request id goes into the event ids, so that the resuming GET says
            // which call it resumes.
            let key = id.to_string();
            match tool {
                "poll" | "forever" | "vanish" => {
                    seen.lock()
                        .unwrap()
                        .closes
                        .push((format!("{tool}:{key}:0"), Instant::now()));
                    sse(priming(&format!("{tool}:{key}:0"), tool != "vanish"))
                }
                "refuse" => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    [("content-type", "application/json")],
                    json!({"jsonrpc":"2.0","id":null,"error":{"code":-32602,"message":"text must not be empty","data":{"field":"text"}}}).to_string(),
                )
                    .into_response(),
                "forbidden" => (
                    StatusCode::FORBIDDEN,
                    [("content-type", "application/json")],
                    json!({"jsonrpc":"2.0","id":id,"error":{"code":-32001,"message":"upstream token lacks scope"}}).to_string(),
                )
                    .into_response(),
                _ => (StatusCode::BAD_REQUEST, "Bad Request").into_response(),
            }
        }
        _ if id.is_null() => (StatusCode::ACCEPTED, [("mcp-session-id", "up-1")]).into_response(),
        _ => json_reply(json!({"jsonrpc":"2.0","id":id,"result":{}})),
    }
}

async fn on_get(seen: Shared, standalone: bool, headers: HeaderMap) -> Response {
    let last = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap().to_owned());
    seen.lock()
        .unwrap()
        .gets
        .push((last.clone(), Instant::now()));
    let close = |id: &str| {
        seen.lock()
            .unwrap()
            .closes
            .push((id.to_owned(), Instant::now()))
    };
    let Some(last) = last else {
        if !standalone {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        // The standalone stream: a notification, then a polling close.
        close("standalone:1");
        return sse(format!(
            "retry: {RETRY_MS}\n{}",
            event(
                "standalone:1",
                &json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"})
            )
        ));
    };
    if last == "standalone:1" {
        close("standalone:2");
        return sse(event(
            "standalone:2",
            &json!({"jsonrpc":"2.0","method":"notifications/resources/list_changed"}),
        ));
    }
    if last == "standalone:2" {
        // Held open with nothing more to say, until the session ends.
        let body = futures_util::stream::pending::<Result<String, std::io::Error>>();
        return (
            StatusCode::OK,
            [("content-type", "text/event-stream")],
            axum::body::Body::from_stream(body),
        )
            .into_response();
    }
    let mut parts = last.splitn(3, ':');
    let (tool, key, n) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().parse::<u32>().unwrap(),
    );
    let id: Value = serde_json::from_str(&key).unwrap();
    let next = format!("{tool}:{key}:{}", n + 1);
    match (tool.as_str(), n) {
        // Progress on the first resume, then another close; the answer on the second.
        ("poll", 0) => {
            close(&next);
            sse(event(
                &next,
                &json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p1","progress":1,"total":2}}),
            ))
        }
        ("poll", _) => sse(event(&next, &result_text(&id, "polled"))),
        // Always another priming event, never an answer: only the deadline ends it.
        ("forever", _) => {
            close(&next);
            sse(priming(&next, true))
        }
        // Resumable, but silent: each connection closes with nothing in it.
        _ => sse(String::new()),
    }
}

/// The fake upstream; with `standalone`, it offers (and polls) a standalone stream.
async fn polling_upstream(standalone: bool) -> (String, Shared) {
    let seen = Shared::default();
    let (p, g) = (seen.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |body: String| on_post(p.clone(), body))
            .get(move |headers: HeaderMap| on_get(g.clone(), standalone, headers))
            .delete(|| async { StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/mcp",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

struct Client {
    c: reqwest::Client,
    url: String,
    token: String,
    session: String,
}

impl Client {
    async fn start(b: &Broker) -> Client {
        let c = http();
        let (_, t) = authorize(&c, &b.base, "polling").await;
        let mut me = Client {
            c,
            url: b.mcp_url("polling"),
            token: t.access,
            session: String::new(),
        };
        let res = me
            .post(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
            .await;
        me.session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        let ack = me
            .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        assert_eq!(ack.status(), 202);
        me
    }

    async fn post(&self, body: Value) -> reqwest::Response {
        let mut r = self
            .c
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("mcp-protocol-version", "2025-11-25")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if !self.session.is_empty() {
            r = r.header("mcp-session-id", &self.session);
        }
        r.body(body.to_string()).send().await.unwrap()
    }

    /// Calls `tool`; the HTTP status and every message of the answer, in order.
    async fn call(&self, id: i64, tool: &str) -> (u16, Vec<Value>) {
        let res = self
            .post(json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{},"_meta":{"progressToken":"p1"}}}))
            .await;
        let status = res.status().as_u16();
        let sse = res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream");
        if !sse {
            return (status, vec![res.json().await.unwrap()]);
        }
        let mut out = Vec::new();
        let mut events = res.bytes_stream().eventsource();
        while let Some(Ok(ev)) = events.next().await {
            if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                let done = v["id"] == json!(id);
                out.push(v);
                if done {
                    break;
                }
            }
        }
        (status, out)
    }
}

fn config(url: &str, timeout_secs: u64) -> String {
    format!("[broker]\nrequest_timeout_secs = {timeout_secs}\n\n[servers.polling]\nurl = {url:?}\n")
}

/// Resumes after `RETRY_MS`: every GET that resumes a close comes no sooner than that.
fn assert_retry_respected(seen: &Seen, prefix: &str) {
    for (last, at) in &seen.gets {
        let Some(last) = last.as_deref().filter(|l| l.starts_with(prefix)) else {
            continue;
        };
        let (_, closed) = seen
            .closes
            .iter()
            .find(|(id, _)| id == last)
            .unwrap_or_else(|| panic!("a GET resumed {last}, which never closed"));
        assert!(
            at.duration_since(*closed) >= Duration::from_millis(RETRY_MS - 20),
            "resumed {last} after {:?}, before the upstream's retry of {RETRY_MS} ms",
            at.duration_since(*closed)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_upstream_s_call_completes_through_resumes_with_its_progress() {
    let (url, seen) = polling_upstream(false).await;
    let b = Broker::start(&config(&url, 30));
    let client = Client::start(&b).await;
    let (status, msgs) = client.call(7, "poll").await;
    assert_eq!(status, 200);
    let last = msgs.last().cloned().unwrap_or_default();
    assert_eq!(
        last["result"]["content"][0]["text"], "polled",
        "the response after two closes: {msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m["method"] == "notifications/progress" && m["params"]["progress"] == 1),
        "the progress sent between the closes reached the client: {msgs:?}"
    );
    let s = seen.lock().unwrap();
    let resumes: Vec<_> = s
        .gets
        .iter()
        .filter_map(|(l, _)| l.clone())
        .filter(|l| l.starts_with("poll:"))
        .collect();
    assert_eq!(
        resumes,
        ["poll:7:0", "poll:7:1"],
        "each close resumed once, from its last event id"
    );
    assert_retry_respected(&s, "poll:");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_stream_is_polled_too() {
    let (url, seen) = polling_upstream(true).await;
    let b = Broker::start(&config(&url, 30));
    let client = Client::start(&b).await;
    let res = client
        .c
        .get(&client.url)
        .bearer_auth(&client.token)
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", &client.session)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut events = res.bytes_stream().eventsource();
    let mut methods = Vec::new();
    let read = async {
        while let Some(Ok(ev)) = events.next().await {
            if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
                methods.push(v["method"].as_str().unwrap_or("").to_owned());
                if methods.len() == 2 {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("both notifications within 10 s");
    assert_eq!(
        methods,
        [
            "notifications/tools/list_changed",
            "notifications/resources/list_changed"
        ]
    );
    // The consent page's own look at the tools may have opened a session (and a
    // standalone stream) of its own: every fresh stream counts, each resumed in turn.
    let resumed_both = || {
        let s = seen.lock().unwrap();
        let has = |id: &str| s.gets.iter().any(|(l, _)| l.as_deref() == Some(id));
        has("standalone:1") && has("standalone:2")
    };
    assert!(
        wait_until(resumed_both, 5).await,
        "resumed from each close: {:?}",
        seen.lock().unwrap().gets
    );
    let s = seen.lock().unwrap();
    let fresh = s.gets.iter().filter(|(l, _)| l.is_none()).count();
    let resumes = |id: &str| {
        s.gets
            .iter()
            .filter(|(l, _)| l.as_deref() == Some(id))
            .count()
    };
    assert!(
        resumes("standalone:1") <= fresh && resumes("standalone:2") <= fresh,
        "each close resumed once: {:?}",
        s.gets
    );
    assert_retry_respected(&s, "standalone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_polling_ends_at_the_deadline_and_silent_resumes_end_sooner() {
    let (url, seen) = polling_upstream(false).await;
    let b = Broker::start(&config(&url, 3));
    let client = Client::start(&b).await;

    let started = Instant::now();
    let (status, msgs) = client.call(1, "forever").await;
    let took = started.elapsed();
    let answer = msgs.last().cloned().unwrap_or_default();
    assert_eq!(status, 200);
    assert_eq!(
        answer["error"]["code"], -32001,
        "the request timeout: {answer}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(8),
        "ended by the 3 s request timeout, after {took:?}"
    );
    let resumed = seen
        .lock()
        .unwrap()
        .gets
        .iter()
        .filter(|(l, _)| l.as_deref().is_some_and(|l| l.starts_with("forever:")))
        .count();
    assert!(
        resumed >= 5,
        "kept resuming while the upstream kept priming: {resumed}"
    );

    let started = Instant::now();
    let (status, msgs) = client.call(2, "vanish").await;
    let answer = msgs.last().cloned().unwrap_or_default();
    assert_eq!(status, 200);
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("kept closing its answer without sending anything"),
        "a clear reason: {message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up before the deadline: {:?}",
        started.elapsed()
    );
    let silent = seen
        .lock()
        .unwrap()
        .gets
        .iter()
        .filter(|(l, _)| l.as_deref().is_some_and(|l| l.starts_with("vanish:")))
        .count();
    assert_eq!(silent, 5, "resumed until five quiet connections in a row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_s_4xx_json_rpc_error_keeps_its_status_code_and_message() {
    let (url, _) = polling_upstream(false).await;
    let b = Broker::start(&config(&url, 30));
    let client = Client::start(&b).await;

    let (status, msgs) = client.call(3, "refuse").await;
    assert_eq!(status, 422, "the upstream's status: {msgs:?}");
    assert_eq!(
        msgs,
        [
            json!({"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"text must not be empty","data":{"field":"text"}}})
        ],
        "the upstream's code, message and data, with the client's id"
    );

    // A 403 is about the broker's own credentials for the upstream: the client's
    // token is fine, so the client does not get the upstream's 403. A 4xx without a
    // JSON-RPC body: the broker says what happened.
    for (id, tool, says) in [(4, "forbidden", "HTTP 403"), (5, "unreadable", "HTTP 400")] {
        let (status, msgs) = client.call(id, tool).await;
        let error = &msgs[0]["error"];
        assert_eq!((status, &msgs[0]["id"]), (200, &json!(id)), "{msgs:?}");
        assert_eq!(error["code"], -32603, "{msgs:?}");
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{msgs:?}"
        );
    }

    // The session still works.
    let (status, msgs) = client.call(6, "poll").await;
    assert_eq!(status, 200);
    assert_eq!(
        msgs.last().unwrap()["result"]["content"][0]["text"],
        "polled"
    );
}

/// The same refusal seen by a 2026-07-28 client (the broker relays over its warm legacy
/// session): the upstream's status, code, message and data, with the client's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modern_client_gets_the_upstream_s_4xx_status_code_and_message_too() {
    let (url, _) = polling_upstream(false).await;
    let b = Broker::start(&config(&url, 30));
    let c = http();
    let (_, t) = authorize(&c, &b.base, "polling").await;
    let call = |id: i64, tool: &str| {
        c.post(b.mcp_url("polling"))
            .bearer_auth(&t.access)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(
                json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":{},
                    "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}})
                .to_string(),
            )
            .send()
    };
    let res = call(7, "refuse").await.unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 422, "the upstream's status: {body}");
    assert_eq!(
        body,
        json!({"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"text must not be empty","data":{"field":"text"}}}),
        "the upstream's code, message and data, with the client's id"
    );
    // A 403 stays the broker's business, as for a legacy client.
    let res = call(8, "forbidden").await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(8), json!(-32603)),
        "{body}"
    );
}
