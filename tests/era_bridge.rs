//! A 2025-11-25 client in front of a 2026-07-28-only remote upstream, end to end against
//! the real binary over real HTTP (issue 11, point 3). The upstream here is a small
//! 2026-07-28 server that refuses every legacy request and records what it is sent: the
//! broker answers `initialize` from its `server/discover`, sends each request stateless
//! with `_meta` and the routing headers and the broker's own credentials, turns its
//! `input_required` into an `elicitation/create` on the client's stream and retries with
//! the answer, relays progress, closes the upstream request when the client cancels, and
//! feeds the legacy GET stream from `subscriptions/listen`.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use support::*;
use tokio::sync::mpsc;

const V: &str = "2026-07-28";

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    body: Value,
    headers: HeaderMap,
}

#[derive(Clone, Default)]
struct Upstream {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// `hold` calls whose connection is still open.
    held: Arc<AtomicUsize>,
}

impl Upstream {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn methods(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| s.body["method"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// Decrements `held` when the response body is dropped: the broker closed the exchange.
struct Held(Arc<AtomicUsize>);
impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn json_answer(status: StatusCode, v: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn sse_answer(rx: mpsc::UnboundedReceiver<Value>, guard: Option<Held>) -> Response {
    let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(move |v| {
        let _keep = &guard;
        Ok::<_, Infallible>(Bytes::from(format!("event: message\ndata: {v}\n\n")))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn mcp(State(up): State<Upstream>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    up.seen.lock().unwrap().push(Seen {
        body: body.clone(),
        headers: headers.clone(),
    });
    let id = body["id"].clone();
    let meta = &body["params"]["_meta"];
    if meta["io.modelcontextprotocol/protocolVersion"] != V {
        // 2026-07-28 only: a legacy request is an unsupported version.
        return json_answer(
            StatusCode::BAD_REQUEST,
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32022, "message": "2026-07-28 only",
                   "data": {"supported": [V], "requested": body["params"]["protocolVersion"]}}}),
        );
    }
    let result = |r: Value| {
        json_answer(
            StatusCode::OK,
            json!({"jsonrpc": "2.0", "id": id, "result": r}),
        )
    };
    match body["method"].as_str().unwrap_or("") {
        "server/discover" => result(json!({
            "supportedVersions": [V], "capabilities": {"tools": {"listChanged": true}, "resources": {"subscribe": true}},
            "instructions": "modern only", "resultType": "complete", "ttlMs": 0, "cacheScope": "private",
            "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "rust-modern", "version": "9"}}})),
        "tools/list" => result(json!({"tools": [
            {"name": "geo", "inputSchema": {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}}},
            {"name": "ask", "inputSchema": {"type": "object"}},
            {"name": "both", "inputSchema": {"type": "object"}},
            {"name": "hold", "inputSchema": {"type": "object"}}],
            "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})),
        "tools/call" => match body["params"]["name"].as_str().unwrap_or("") {
            "geo" => {
                let Some(h) = headers
                    .get("mcp-param-region")
                    .and_then(|v| v.to_str().ok())
                else {
                    // streamable-http §Server Behavior for Custom Headers.
                    return json_answer(
                        StatusCode::BAD_REQUEST,
                        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32020, "message": "Mcp-Param-Region missing"}}),
                    );
                };
                result(
                    json!({"content": [{"type": "text", "text": format!("header {h}")}], "resultType": "complete"}),
                )
            }
            "both" => match body["params"].get("inputResponses") {
                None => result(
                    json!({"resultType": "input_required", "requestState": "state-2", "inputRequests": {
                    "roots": {"method": "roots/list", "params": {}},
                    "model": {"method": "sampling/createMessage", "params": {"messages": [], "maxTokens": 5}}}}),
                ),
                Some(a) => {
                    let text = format!(
                        "{} {}",
                        a["roots"]["roots"][0]["uri"], a["model"]["content"]["text"]
                    );
                    result(
                        json!({"content": [{"type": "text", "text": text}], "resultType": "complete"}),
                    )
                }
            },
            "ask" => match body["params"].get("inputResponses") {
                None => result(
                    json!({"resultType": "input_required", "requestState": "state-1",
                    "inputRequests": {"who": {"method": "elicitation/create", "params": {"mode": "form", "message": "Who?",
                        "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}}}}),
                ),
                Some(answers) => {
                    let name = answers["who"]["content"]["name"].as_str().unwrap_or("?");
                    let state = body["params"]["requestState"].as_str().unwrap_or("none");
                    result(
                        json!({"content": [{"type": "text", "text": format!("answered {name} with {state}")}], "resultType": "complete"}),
                    )
                }
            },
            "hold" => {
                up.held.fetch_add(1, Ordering::SeqCst);
                let (tx, rx) = mpsc::unbounded_channel();
                let token = meta["progressToken"].clone();
                tx.send(json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": token, "progress": 1}})).unwrap();
                // The sender lives as long as the stream: never answers.
                let guard = Held(up.held.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    drop(tx);
                });
                sse_answer(rx, Some(guard))
            }
            _ => result(json!({"content": [], "isError": true, "resultType": "complete"})),
        },
        "subscriptions/listen" => {
            let (tx, rx) = mpsc::unbounded_channel();
            let tag = json!({"io.modelcontextprotocol/subscriptionId": id});
            tx.send(json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                           "params": {"notifications": body["params"]["notifications"], "_meta": tag}})).unwrap();
            let uris = body["params"]["notifications"]["resourceSubscriptions"].clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                for uri in uris.as_array().into_iter().flatten() {
                    let _ = tx.send(json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": uri, "_meta": tag}}));
                }
                let _ = tx.send(json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {"_meta": tag}}));
                tokio::time::sleep(Duration::from_secs(600)).await;
            });
            sse_answer(rx, None)
        }
        _ => json_answer(
            StatusCode::NOT_FOUND,
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no"}}),
        ),
    }
}

async fn start_upstream() -> (String, Upstream) {
    let up = Upstream::default();
    let app = Router::new()
        .route(
            "/mcp",
            axum::routing::post(mcp).get(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        )
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, up)
}

/// The JSON-RPC messages of a response, JSON or SSE, as they arrive.
fn messages(res: reqwest::Response) -> mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = mpsc::unbounded_channel();
    let sse = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
    tokio::spawn(async move {
        if !sse {
            if let Ok(v) = res.json::<Value>().await {
                let _ = tx.send(v);
            }
            return;
        }
        let mut buf = String::new();
        let mut body = res.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                for line in event.lines() {
                    if let Some(data) = line.strip_prefix("data:")
                        && let Ok(v) = serde_json::from_str(data.trim())
                    {
                        let _ = tx.send(v);
                    }
                }
            }
        }
    });
    rx
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a message within 10 s")
        .expect("the stream ended")
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
    session: Option<String>,
}

impl Client {
    async fn post(&self, body: Value) -> reqwest::Response {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_string());
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        req.send().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_client_to_a_modern_only_upstream() {
    let (url, up) = start_upstream().await;
    let b = Broker::start(&format!(
        "[servers.m]\nurl = \"{url}\"\nheaders = {{ Authorization = \"Bearer upstream-secret\" }}\n"
    ));
    let c = http();
    let (_, tokens) = authorize(&c, &b.base, "m").await;
    let mut client = Client {
        http: c.clone(),
        url: b.mcp_url("m"),
        token: tokens.access.clone(),
        session: None,
    };

    // initialize: answered by the broker from the upstream's server/discover.
    let res = client
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}, "roots": {}, "sampling": {}, "experimental": {"x": {}}},
            "clientInfo": {"name": "rust-legacy", "version": "1"}}}))
        .await;
    client.session = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let init = next(&mut messages(res)).await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    assert_eq!(
        init["result"]["serverInfo"]["name"], "rust-modern",
        "{init}"
    );
    assert_eq!(init["result"]["instructions"], "modern only");
    assert_eq!(init["result"]["capabilities"]["tools"]["listChanged"], true);
    assert!(client.session.is_some());
    let res = client
        .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    assert_eq!(res.status(), 202);

    // The GET stream carries what the upstream's subscriptions/listen says, untagged.
    let get = c
        .get(&client.url)
        .bearer_auth(&client.token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", client.session.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let mut standalone = messages(get);
    let changed = next(&mut standalone).await;
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert!(changed["params"].get("_meta").is_none(), "{changed}");

    // resources/subscribe opens the listen again with the resource in it.
    let sub = next(&mut messages(
        client
            .post(
                json!({"jsonrpc": "2.0", "id": 20, "method": "resources/subscribe",
        "params": {"uri": "test://a"}}),
            )
            .await,
    ))
    .await;
    assert_eq!(sub["result"], json!({}), "{sub}");
    let updated = next(&mut standalone).await;
    assert_eq!(
        updated["method"], "notifications/resources/updated",
        "{updated}"
    );
    assert_eq!(updated["params"], json!({"uri": "test://a"}));
    let listens: Vec<Value> = up
        .seen()
        .into_iter()
        .filter(|s| s.body["method"] == "subscriptions/listen")
        .map(|s| s.body["params"]["notifications"].clone())
        .collect();
    assert_eq!(
        listens.last().unwrap()["resourceSubscriptions"],
        json!(["test://a"]),
        "{listens:?}"
    );

    // ping is answered here (2026-07-28 has none).
    let pong = next(&mut messages(
        client
            .post(json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}))
            .await,
    ))
    .await;
    assert_eq!(pong["result"], json!({}));

    let list = next(&mut messages(
        client
            .post(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}))
            .await,
    ))
    .await;
    assert_eq!(
        list["result"]["tools"].as_array().unwrap().len(),
        4,
        "{list}"
    );
    assert!(list["result"].get("resultType").is_none(), "{list}");

    // Mcp-Param-Region from the tool's schema, base64 for a value that is not ASCII.
    let geo = next(&mut messages(
        client
            .post(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "geo", "arguments": {"region": "Zürich"}}}))
            .await,
    ))
    .await;
    assert_eq!(
        geo["result"]["content"][0]["text"], "header =?base64?WsO8cmljaA==?=",
        "{geo}"
    );
    let seen = up.seen();
    let call = seen
        .iter()
        .find(|s| s.body["params"]["name"] == "geo")
        .unwrap();
    assert_eq!(call.headers["authorization"], "Bearer upstream-secret");
    assert_eq!(call.headers["mcp-protocol-version"], V);
    assert_eq!(call.headers["mcp-method"], "tools/call");
    assert_eq!(call.headers["mcp-name"], "geo");
    let meta = &call.body["params"]["_meta"];
    assert_eq!(
        meta["io.modelcontextprotocol/clientInfo"]["name"],
        "rust-legacy"
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientCapabilities"],
        json!({"elicitation": {}, "roots": {}, "sampling": {}}),
        "only what the broker can relay is declared"
    );
    assert!(
        seen.iter()
            .all(|s| !format!("{:?}", s.headers).contains(&tokens.access)),
        "the client's token never reaches the upstream"
    );

    // input_required -> the client's own elicitation/create, then the retry.
    let mut ask = messages(
        client
            .post(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "ask", "arguments": {}}}))
            .await,
    );
    let elicit = next(&mut ask).await;
    assert_eq!(elicit["method"], "elicitation/create", "{elicit}");
    assert_eq!(elicit["params"]["message"], "Who?");
    let res = client
        .post(json!({"jsonrpc": "2.0", "id": elicit["id"], "result": {"action": "accept", "content": {"name": "Ada"}}}))
        .await;
    assert_eq!(res.status(), 202);
    let done = next(&mut ask).await;
    assert_eq!(done["id"], 5, "{done}");
    assert_eq!(
        done["result"]["content"][0]["text"], "answered Ada with state-1",
        "{done}"
    );
    let rounds: Vec<Seen> = up
        .seen()
        .into_iter()
        .filter(|s| s.body["params"]["name"] == "ask")
        .collect();
    assert_eq!(rounds.len(), 2);
    assert_ne!(
        rounds[0].body["id"], rounds[1].body["id"],
        "a retry is a new request"
    );

    // Two input requests of other kinds in one round: both asked, both answered.
    let mut both = messages(
        client
            .post(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "both", "arguments": {}}}))
            .await,
    );
    for _ in 0..2 {
        let asked = next(&mut both).await;
        let answer = match asked["method"]
            .as_str()
            .unwrap_or_else(|| panic!("{asked}"))
        {
            "roots/list" => json!({"roots": [{"uri": "file:///work", "name": "work"}]}),
            "sampling/createMessage" => {
                json!({"role": "assistant", "model": "m", "content": {"type": "text", "text": "hi"}})
            }
            other => panic!("unexpected {other}: {asked}"),
        };
        let res = client
            .post(json!({"jsonrpc": "2.0", "id": asked["id"], "result": answer}))
            .await;
        assert_eq!(res.status(), 202);
    }
    let done = next(&mut both).await;
    assert_eq!(
        done["result"]["content"][0]["text"], "\"file:///work\" \"hi\"",
        "{done}"
    );

    // Progress relayed; the client's cancellation closes the upstream request.
    let mut hold = messages(
        client
            .post(json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
                         "params": {"name": "hold", "arguments": {}, "_meta": {"progressToken": "p6"}}}))
            .await,
    );
    let progress = next(&mut hold).await;
    assert_eq!(progress["params"]["progressToken"], "p6", "{progress}");
    assert_eq!(up.held.load(Ordering::SeqCst), 1);
    let res = client
        .post(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 6, "reason": "enough"}}))
        .await;
    assert_eq!(res.status(), 202);
    assert!(
        wait_until(|| up.held.load(Ordering::SeqCst) == 0, 5).await,
        "the upstream request was not closed"
    );

    // A new session calls geo before listing tools: the upstream's -32020 makes the
    // broker learn the tools' headers and try once more.
    let mut fresh = Client {
        session: None,
        ..client
    };
    let res = fresh
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "fresh", "version": "1"}}}))
        .await;
    fresh.session = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let before = up.methods().iter().filter(|m| *m == "tools/list").count();
    let geo = next(&mut messages(
        fresh
            .post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "geo", "arguments": {"region": "north"}}}))
            .await,
    ))
    .await;
    assert_eq!(geo["result"]["content"][0]["text"], "header north", "{geo}");
    let after = up.methods().iter().filter(|m| *m == "tools/list").count();
    assert_eq!(after, before + 1, "one tools/list to learn the headers");

    let methods = up.methods();
    assert!(
        !methods.iter().any(|m| m == "initialize" || m == "ping"),
        "{methods:?}"
    );
    assert!(b.log().contains("bridged to a 2026-07-28 upstream"));
}

#[tokio::test(flavor = "multi_thread")]
async fn era_legacy_skips_the_probe() {
    let (url, up) = start_upstream().await;
    let b = Broker::start(&format!("[servers.m]\nurl = \"{url}\"\nera = \"legacy\"\n"));
    let c = http();
    let (_, tokens) = authorize(&c, &b.base, "m").await;
    let client = Client {
        http: c,
        url: b.mcp_url("m"),
        token: tokens.access,
        session: None,
    };
    let init = next(&mut messages(
        client
            .post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}))
            .await,
    ))
    .await;
    // Relayed as 2025-11-25, which this upstream refuses: the setting was honoured.
    assert!(init.get("error").is_some(), "{init}");
    let methods = up.methods();
    assert!(
        !methods.is_empty() && methods.iter().all(|m| m == "initialize"),
        "no server/discover probe: {methods:?}"
    );
}

#[test]
fn a_bad_era_is_refused_with_file_key_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[servers.m]\nurl = \"https://m.example/mcp\"\nera = \"2026\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--headless", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("c.toml")
            && err.contains("servers.m.era")
            && err.contains("`auto`, `legacy`, `modern`"),
        "{err}"
    );
}
