//! The message relay (MCP transports spec, "stdio" and "Streamable HTTP"): every line on
//! stdin is one JSON-RPC message and is POSTed to `/mcp/NAME`; every message the broker
//! sends back (a JSON body, each event of an SSE body, each event of the GET stream) is
//! written to stdout as one line. Messages are relayed as they came; the relay looks only
//! at `method` and `id` to know what needs an answer.
//!
//! Requests are sent concurrently (a `tools/call` may wait on a server-to-client request
//! that the client answers with another POST); notifications and responses are sent in
//! order. A 401 refreshes the token (or asks for consent once) and retries; a 404 for the
//! session (the broker ended it, for example after a revocation) replays the client's
//! `initialize` and retries, so the client does not notice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::auth::Auth;

const SESSION: &str = "mcp-session-id";
const VERSION: &str = "mcp-protocol-version";

pub struct Relay {
    http: reqwest::Client,
    endpoint: String,
    auth: Auth,
    session: Mutex<Option<String>>,
    protocol_version: Mutex<Option<String>>,
    /// The client's `initialize`, replayed when the broker ends the session.
    initialize: Mutex<Option<String>>,
    reinit: tokio::sync::Mutex<()>,
    out: mpsc::UnboundedSender<String>,
}

enum Outcome {
    Done,
    Failed(String),
}

impl Relay {
    /// Runs until stdin closes; returns the exit status.
    pub async fn run(http: reqwest::Client, auth: Auth) -> i32 {
        let (out, mut rx) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            let mut stdout = tokio::io::stdout();
            while let Some(line) = rx.recv().await {
                let one_line = line.replace(['\n', '\r'], " ");
                if stdout.write_all(one_line.as_bytes()).await.is_err()
                    || stdout.write_all(b"\n").await.is_err()
                    || stdout.flush().await.is_err()
                {
                    break;
                }
            }
        });
        let relay = Arc::new(Relay {
            http,
            endpoint: auth.resource().to_owned(),
            auth,
            session: Mutex::new(None),
            protocol_version: Mutex::new(None),
            initialize: Mutex::new(None),
            reinit: tokio::sync::Mutex::new(()),
            out,
        });

        // Get a token before the client's first message, so consent happens at launch.
        if let Err(e) = relay.auth.access_token().await {
            eprintln!("mcp-broker connect: {e}");
        }

        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut tasks = tokio::task::JoinSet::new();
        let mut stream_started = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim().is_empty() {
                continue;
            }
            let msg: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => {
                    relay.emit(json!({"jsonrpc": "2.0", "id": null,
                        "error": {"code": -32700, "message": format!("parse error: {e}")}}));
                    continue;
                }
            };
            let is_request = msg.get("method").is_some() && msg.get("id").is_some();
            if msg.get("method").and_then(Value::as_str) == Some("initialize") {
                *relay.initialize.lock().unwrap_or_else(|e| e.into_inner()) = Some(line.clone());
                // Everything after initialize needs its session id: wait for it.
                relay.deliver(line, &msg).await;
                if !stream_started && relay.session_id().is_some() {
                    stream_started = true;
                    let r = relay.clone();
                    tasks.spawn(async move { r.listen().await });
                }
            } else if is_request {
                let r = relay.clone();
                tasks.spawn(async move { r.deliver(line, &msg).await });
            } else {
                relay.deliver(line, &msg).await;
            }
            while tasks.try_join_next().is_some() {}
        }
        // stdin closed: the client is done. End the session politely.
        tasks.abort_all();
        relay.end_session().await;
        drop(relay);
        let _ = writer.await;
        0
    }

    fn emit(&self, v: Value) {
        let _ = self.out.send(v.to_string());
    }

    fn session_id(&self) -> Option<String> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn request(&self, method: reqwest::Method, token: &str) -> reqwest::RequestBuilder {
        let mut b = self
            .http
            .request(method, &self.endpoint)
            .bearer_auth(token)
            .header(
                reqwest::header::ACCEPT,
                "application/json, text/event-stream",
            );
        if let Some(s) = self.session_id() {
            b = b.header(SESSION, s);
        }
        if let Some(v) = self
            .protocol_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            b = b.header(VERSION, v);
        }
        b
    }

    /// Sends one message and relays the answer; on failure, answers a request with a
    /// JSON-RPC error so the client is never left waiting.
    async fn deliver(&self, body: String, msg: &Value) {
        if let Outcome::Failed(why) = self.send(&body, msg, true).await {
            tracing::warn!("relaying failed: {why}");
            if let (Some(id), Some(_)) = (msg.get("id"), msg.get("method")) {
                self.emit(json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32603, "message": format!("mcp-broker connect: {why}")}}));
            }
        }
    }

    async fn send(&self, body: &str, msg: &Value, forward: bool) -> Outcome {
        let is_init = msg.get("method").and_then(Value::as_str) == Some("initialize");
        let mut token = match self.auth.access_token().await {
            Ok(t) => t,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let mut renewed = false;
        let mut reinitialized = false;
        loop {
            let sent_session = self.session_id();
            let res = match self
                .request(reqwest::Method::POST, &token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_owned())
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => return Outcome::Failed(format!("the broker did not answer: {e}")),
            };
            match res.status() {
                StatusCode::UNAUTHORIZED if !renewed => {
                    renewed = true;
                    match self.auth.recover(&token).await {
                        Ok(t) => token = t,
                        Err(e) => return Outcome::Failed(e.to_string()),
                    }
                    continue;
                }
                StatusCode::NOT_FOUND if !is_init && sent_session.is_some() && !reinitialized => {
                    reinitialized = true;
                    if let Err(e) = self.reinitialize(sent_session.as_deref()).await {
                        return Outcome::Failed(e);
                    }
                    continue;
                }
                s if s.is_success() => {
                    self.auth.succeeded().await;
                    if let Some(sid) = res.headers().get(SESSION).and_then(|v| v.to_str().ok()) {
                        *self.session.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(sid.to_owned());
                    }
                    if s == StatusCode::ACCEPTED || !forward && !is_init {
                        return Outcome::Done;
                    }
                    self.relay_body(res, is_init, forward).await;
                    return Outcome::Done;
                }
                s => {
                    let text = res.text().await.unwrap_or_default();
                    // A JSON-RPC error body from the broker is an answer: pass it on.
                    if forward
                        && serde_json::from_str::<Value>(&text).is_ok_and(|v| {
                            v.get("jsonrpc").is_some() && v.get("id").is_some_and(|i| !i.is_null())
                        })
                    {
                        let _ = self.out.send(text);
                        return Outcome::Done;
                    }
                    return Outcome::Failed(format!("the broker answered HTTP {s}"));
                }
            }
        }
    }

    /// Relays a JSON body or each event of an SSE body; notes the negotiated protocol
    /// version from an `initialize` result.
    async fn relay_body(&self, res: reqwest::Response, is_init: bool, forward: bool) {
        let sse = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let handle = |data: String| {
            if is_init
                && let Ok(v) = serde_json::from_str::<Value>(&data)
                && let Some(pv) = v.pointer("/result/protocolVersion").and_then(Value::as_str)
            {
                *self
                    .protocol_version
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(pv.to_owned());
            }
            if forward {
                let _ = self.out.send(data);
            }
        };
        if sse {
            let mut events = res.bytes_stream().eventsource();
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(ev) if !ev.data.trim().is_empty() => handle(ev.data),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("event stream ended: {e}");
                        break;
                    }
                }
            }
        } else if let Ok(text) = res.text().await
            && !text.trim().is_empty()
        {
            handle(text);
        }
    }

    /// The broker ended the session: replay the client's `initialize` (its answer is
    /// not forwarded, the client already has one) and `notifications/initialized`.
    async fn reinitialize(&self, stale: Option<&str>) -> Result<(), String> {
        let _guard = self.reinit.lock().await;
        if self.session_id().as_deref() != stale {
            return Ok(()); // another request already did it
        }
        let Some(init) = self
            .initialize
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return Err("the session ended before it was initialized".into());
        };
        tracing::info!("the broker ended the MCP session; starting a new one");
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let msg: Value = serde_json::from_str(&init).map_err(|e| e.to_string())?;
        if let Outcome::Failed(e) = Box::pin(self.send(&init, &msg, false)).await {
            return Err(e);
        }
        let n = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        if let Outcome::Failed(e) = Box::pin(self.send(&n.to_string(), &n, false)).await {
            return Err(e);
        }
        Ok(())
    }

    /// The GET stream: server-to-client requests and notifications outside any POST.
    async fn listen(self: Arc<Self>) {
        let mut delay = Duration::from_millis(200);
        loop {
            let token = match self.auth.access_token().await {
                Ok(t) => t,
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            };
            let res = self
                .request(reqwest::Method::GET, &token)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .send()
                .await;
            match res {
                Ok(r) if r.status() == StatusCode::METHOD_NOT_ALLOWED => return,
                Ok(r) if r.status().is_success() => {
                    delay = Duration::from_millis(200);
                    let mut events = r.bytes_stream().eventsource();
                    while let Some(Ok(ev)) = events.next().await {
                        if !ev.data.trim().is_empty() {
                            let _ = self.out.send(ev.data);
                        }
                    }
                }
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                    // Renewal is left to the next POST, which may ask for consent.
                }
                _ => {}
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn end_session(&self) {
        if self.session_id().is_none() {
            return;
        }
        let Ok(token) = self.auth.access_token().await else {
            return;
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.request(reqwest::Method::DELETE, &token).send(),
        )
        .await;
    }
}
