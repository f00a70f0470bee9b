//! The message relay (MCP transports spec, "stdio" and "Streamable HTTP"): every line on
//! stdin is one JSON-RPC message and is POSTed to `/mcp/NAME`; every message the broker
//! sends back (a JSON body, each event of an SSE body, each event of the GET stream) is
//! written to stdout as one line. Messages are relayed as they came; the relay looks only
//! at `method` and `id` to know what needs an answer. The HTTP side is
//! [`crate::mcp_client::StreamableHttp`].
//!
//! Requests are sent concurrently (a `tools/call` may wait on a server-to-client request
//! that the client answers with another POST); notifications and responses are sent in
//! order. A 401 refreshes the token (or asks for consent once) and retries; a 404 for the
//! session (the broker ended it, for example after a revocation) replays the client's
//! `initialize` and retries, so the client does not notice.
//!
//! A 2026-07-28 client's requests (their `_meta` names the version) are served
//! statelessly instead, each on its own POST with its routing headers ([`super::modern`]);
//! the era is a property of each request, as on the broker's own endpoint, so a client
//! that probes with `server/discover` and falls back to `initialize` works either way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use reqwest::header::HeaderMap;
use tokio::task::AbortHandle;

use super::auth::Auth;
use super::modern;
use crate::mcp_client::{Answer, Listen, Messages, StreamableHttp};

pub struct Relay {
    broker: StreamableHttp,
    auth: Auth,
    /// The client's `initialize`, replayed when the broker ends the session.
    initialize: Mutex<Option<String>>,
    reinit: tokio::sync::Mutex<()>,
    out: mpsc::UnboundedSender<String>,
    /// The 2026-07-28 requests on their way, by id (JSON text): dropping one's POST
    /// cancels it.
    stateless: Mutex<HashMap<String, AbortHandle>>,
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
            broker: StreamableHttp::new(http, auth.resource().clone(), Default::default()),
            auth,
            initialize: Mutex::new(None),
            reinit: tokio::sync::Mutex::new(()),
            out,
            stateless: Mutex::new(HashMap::new()),
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
            if let Some(version) = modern::protocol_version(&msg) {
                let route = modern::routing_headers(&msg, version);
                let key = msg["id"].to_string();
                let r = relay.clone();
                // Registered before the task can finish (and unregister itself).
                let mut stateless = relay.lock_stateless();
                let k = key.clone();
                let task = tasks.spawn(async move {
                    r.deliver(line, &msg, Some(route)).await;
                    r.lock_stateless().remove(&k);
                });
                stateless.insert(key, task);
            } else if let Some(id) = modern::cancelled_request(&msg)
                && let Some(task) = relay.lock_stateless().remove(&id)
            {
                task.abort();
            } else if !is_request && relay.lock_initialize().is_none() {
                // Without a session there is nowhere to send it: a 2026-07-28 client's
                // notifications (its cancellations are handled above) have no HTTP form.
                tracing::debug!("dropping a notification sent outside any session");
            } else if msg.get("method").and_then(Value::as_str) == Some("initialize") {
                *relay.lock_initialize() = Some(line.clone());
                // Everything after initialize needs its session id: wait for it.
                relay.deliver(line, &msg, None).await;
                if !stream_started && relay.broker.session_id().is_some() {
                    stream_started = true;
                    let r = relay.clone();
                    tasks.spawn(async move { r.listen().await });
                }
            } else if is_request {
                let r = relay.clone();
                tasks.spawn(async move { r.deliver(line, &msg, None).await });
            } else {
                relay.deliver(line, &msg, None).await;
            }
            while tasks.try_join_next().is_some() {}
        }
        // stdin closed: the client is done. End the session politely.
        tasks.abort_all();
        if let Ok(token) = relay.auth.access_token().await {
            relay.broker.end_session(Some(&token)).await;
        }
        drop(relay);
        let _ = writer.await;
        0
    }

    fn lock_stateless(&self) -> std::sync::MutexGuard<'_, HashMap<String, AbortHandle>> {
        self.stateless.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_initialize(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.initialize.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, v: Value) {
        let _ = self.out.send(v.to_string());
    }

    /// Sends one message and relays the answer; on failure, answers a request with a
    /// JSON-RPC error so the client is never left waiting. With `stateless` routing
    /// headers it is a 2026-07-28 request, sent outside the session.
    async fn deliver(&self, body: String, msg: &Value, stateless: Option<HeaderMap>) {
        if let Outcome::Failed(why) = self.send(&body, msg, true, stateless.as_ref()).await {
            tracing::warn!("relaying failed: {why}");
            if let (Some(id), Some(_)) = (msg.get("id"), msg.get("method")) {
                self.emit(json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32603, "message": format!("mcp-broker connect: {why}")}}));
            }
        }
    }

    async fn send(
        &self,
        body: &str,
        msg: &Value,
        forward: bool,
        stateless: Option<&HeaderMap>,
    ) -> Outcome {
        let is_init = msg.get("method").and_then(Value::as_str) == Some("initialize");
        let mut token = match self.auth.access_token().await {
            Ok(t) => t,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let mut renewed = false;
        let mut reinitialized = false;
        loop {
            let sent_session = self.broker.session_id();
            let sent = match stateless {
                Some(route) => {
                    self.broker
                        .post_stateless(body.to_owned(), Some(&token), route.clone())
                        .await
                }
                None => self.broker.post(body.to_owned(), Some(&token)).await,
            };
            let answer = match sent {
                Ok(a) => a,
                Err(e) => return Outcome::Failed(e.to_string()),
            };
            match answer {
                Answer::Unauthorized if !renewed => {
                    renewed = true;
                    match self.auth.recover(&token).await {
                        Ok(t) => token = t,
                        Err(e) => return Outcome::Failed(e.to_string()),
                    }
                }
                Answer::SessionEnded if !is_init && !reinitialized => {
                    reinitialized = true;
                    if let Err(e) = self.reinitialize(sent_session.as_deref()).await {
                        return Outcome::Failed(e);
                    }
                }
                Answer::Accepted => {
                    self.auth.succeeded().await;
                    return Outcome::Done;
                }
                Answer::Messages(messages) => {
                    self.auth.succeeded().await;
                    if forward || is_init {
                        self.relay_messages(messages, is_init, forward).await;
                    }
                    return Outcome::Done;
                }
                Answer::Unauthorized => {
                    return Outcome::Failed("the broker answered HTTP 401 Unauthorized".into());
                }
                Answer::SessionEnded => {
                    return Outcome::Failed("the broker answered HTTP 404 Not Found".into());
                }
                Answer::Refused { status, body } => {
                    // A JSON-RPC error body from the broker is an answer: pass it on.
                    if forward
                        && serde_json::from_str::<Value>(&body).is_ok_and(|v| {
                            v.get("jsonrpc").is_some() && v.get("id").is_some_and(|i| !i.is_null())
                        })
                    {
                        let _ = self.out.send(body);
                        return Outcome::Done;
                    }
                    return Outcome::Failed(format!("the broker answered HTTP {status}"));
                }
            }
        }
    }

    /// Relays every message of an answer; notes the negotiated protocol version from an
    /// `initialize` result.
    async fn relay_messages(&self, mut messages: Messages, is_init: bool, forward: bool) {
        while let Some(m) = messages.next().await {
            match m {
                Ok(data) => {
                    if is_init
                        && let Ok(v) = serde_json::from_str::<Value>(&data)
                        && let Some(pv) =
                            v.pointer("/result/protocolVersion").and_then(Value::as_str)
                    {
                        self.broker.set_protocol_version(pv);
                    }
                    if forward {
                        let _ = self.out.send(data);
                    }
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    break;
                }
            }
        }
    }

    /// The broker ended the session: replay the client's `initialize` (its answer is
    /// not forwarded, the client already has one) and `notifications/initialized`.
    async fn reinitialize(&self, stale: Option<&str>) -> Result<(), String> {
        let _guard = self.reinit.lock().await;
        if self.broker.session_id().as_deref() != stale {
            return Ok(()); // another request already did it
        }
        let Some(init) = self.lock_initialize().clone() else {
            return Err("the session ended before it was initialized".into());
        };
        tracing::info!("the broker ended the MCP session; starting a new one");
        self.broker.forget_session();
        let msg: Value = serde_json::from_str(&init).map_err(|e| e.to_string())?;
        if let Outcome::Failed(e) = Box::pin(self.send(&init, &msg, false, None)).await {
            return Err(e);
        }
        let n = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        if let Outcome::Failed(e) = Box::pin(self.send(&n.to_string(), &n, false, None)).await {
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
            match self.broker.listen(Some(&token), None).await {
                Ok(Listen::NotOffered) => return,
                Ok(Listen::Stream(mut messages)) => {
                    delay = Duration::from_millis(200);
                    while let Some(Ok(data)) = messages.next().await {
                        let _ = self.out.send(data);
                    }
                }
                // 401: renewal is left to the next POST, which may ask for consent.
                Ok(Listen::Unauthorized | Listen::Refused(_)) | Err(_) => {}
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}
