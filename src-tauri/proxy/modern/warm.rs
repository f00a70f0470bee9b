//! The legacy upstream session that serves modern clients (MCP 2026-07-28
//! basic/versioning §Backward Compatibility: a broker holds the 2025-11-25 session the
//! stateless client does not have). One per (grant, upstream), opened with one
//! `initialize` on first use and kept: requests share it with broker-minted ids and
//! progress tokens. It is an ordinary session of [`Upstreams`], so revocation, idle
//! expiry, timeouts and the per-grant cap apply to it as to any other; when it has
//! ended, the next modern request opens a new one.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::super::message::{Kind, Message, parse_one};
use super::super::session::EndReason;
use super::super::{Relay, Upstreams};
use crate::oauth::GrantId;

/// The revision the broker offers a legacy upstream.
const LEGACY_VERSION: &str = "2025-11-25";

pub struct Warm {
    pub relay: Arc<Relay>,
    pub upstream: String,
    /// The upstream's `InitializeResult`.
    pub init: Value,
    /// Its `serverInfo` as JSON text, which every result carries in `_meta`.
    pub server_info: Bytes,
    next: AtomicU64,
    /// Upstream notifications outside any call (list changes, resource updates), for
    /// `subscriptions/listen`. Taken when the session ends, which ends every listen.
    notes: Mutex<Option<broadcast::Sender<Bytes>>>,
    subscribed: Mutex<HashSet<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("{0}")]
    Start(String),
    #[error("the upstream refused initialize: {0}")]
    Refused(String),
    #[error("the upstream did not answer initialize")]
    Silent,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Warm>>>>;

#[derive(Default)]
pub struct WarmSessions {
    slots: Mutex<HashMap<GrantId, HashMap<String, Slot>>>,
}

impl WarmSessions {
    /// The warm session of this grant for this upstream, opened if there is none (or the
    /// last one ended). Concurrent first requests wait for one `initialize`.
    pub async fn get(
        &self,
        up: &Upstreams,
        upstream: &str,
        grant: GrantId,
        account: Option<&str>,
    ) -> Result<Arc<Warm>, WarmError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let of_grant = slots.entry(grant).or_default();
            match of_grant.get(upstream) {
                Some(s) => s.clone(),
                None => of_grant.entry(upstream.to_owned()).or_default().clone(),
            }
        };
        let mut held = slot.lock().await;
        if let Some(w) = held.as_ref()
            && !w.relay.session.is_closed()
        {
            return Ok(w.clone());
        }
        self.forget_ended();
        let w = Warm::open(up, upstream, grant, account).await?;
        *held = Some(w.clone());
        Ok(w)
    }
}

impl WarmSessions {
    /// Drops the slots of sessions that ended (revoked grants, idle expiry), so that
    /// neither they nor their ended sessions stay in memory for the broker's lifetime.
    /// Run when a session is opened, which is rare; a slot in use is kept.
    fn forget_ended(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|_, of_grant| {
            // Clones are made under this lock only: a count of one means no `get` holds it.
            of_grant.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot.try_lock().map_or(true, |held| {
                        held.as_ref().is_some_and(|w| !w.relay.session.is_closed())
                    })
            });
            !of_grant.is_empty()
        });
    }
}

impl Warm {
    async fn open(
        up: &Upstreams,
        upstream: &str,
        grant: GrantId,
        account: Option<&str>,
    ) -> Result<Arc<Warm>, WarmError> {
        let relay = up
            .create(upstream, grant, account)
            .await
            .map_err(WarmError::Start)?;
        let init = json!({
            "jsonrpc": "2.0",
            "id": "mcp-broker-initialize",
            "method": "initialize",
            "params": {
                "protocolVersion": LEGACY_VERSION,
                // What the broker can turn into `input_required` for a modern client.
                "capabilities": {"elicitation": {}, "sampling": {}},
                "clientInfo": {"name": "mcp-broker", "version": env!("CARGO_PKG_VERSION")},
            },
        });
        let msg = to_message(&init);
        let mut post = relay
            .session
            .open_post_stream(std::slice::from_ref(&msg), Instant::now());
        relay.link.set_protocol_version(LEGACY_VERSION);
        relay.link.send(&msg).await;
        let answer = loop {
            match post.rx.recv().await {
                Some(item) if item.response => break Some(item.data),
                Some(_) => continue,
                None => break None,
            }
        };
        relay.session.drop_stream(post.id);
        let fail = |e: WarmError| async {
            up.end(&relay.session.id, EndReason::Closed).await;
            Err(e)
        };
        let Some(answer) = answer else {
            return fail(WarmError::Silent).await;
        };
        let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let Some(mut result) = v.get("result").filter(|r| r.is_object()).cloned() else {
            let why = v["error"]["message"]
                .as_str()
                .unwrap_or("no result")
                .to_owned();
            return fail(WarmError::Refused(why)).await;
        };
        // The grant's tool policy changes the tool list too (per-tool consent): a modern
        // client may listen for that whatever the upstream declares.
        if let Some(tools) = result
            .pointer_mut("/capabilities/tools")
            .and_then(Value::as_object_mut)
        {
            tools.insert("listChanged".into(), Value::Bool(true));
        }
        if let Some(version) = result["protocolVersion"].as_str() {
            relay.link.set_protocol_version(version);
        }
        relay
            .link
            .send(&to_message(
                &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            ))
            .await;
        let (notes, _) = broadcast::channel(256);
        let warm = Arc::new(Warm {
            relay,
            upstream: upstream.to_owned(),
            server_info: Bytes::from(result["serverInfo"].to_string()),
            init: result,
            next: AtomicU64::new(1),
            notes: Mutex::new(Some(notes)),
            subscribed: Mutex::new(HashSet::new()),
        });
        if let Some(rx) = warm.relay.session.attach_standalone() {
            tokio::spawn(pump(warm.clone(), rx));
        }
        tracing::info!(upstream, grant = %grant, session = %warm.relay.session.id, "warm legacy session open for modern clients");
        Ok(warm)
    }

    /// A fresh id for a message the broker sends upstream (`"mb-N"`).
    pub fn mint(&self) -> String {
        format!("mb-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    pub fn capabilities(&self) -> &Value {
        &self.init["capabilities"]
    }

    /// Hands an upstream notification to the listeners, when it is one they may want.
    pub fn publish(&self, m: &Message) {
        let wanted = m.method().is_some_and(|method| {
            method.ends_with("/list_changed") || method == "notifications/resources/updated"
        });
        let notes = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        if let (true, Some(n)) = (wanted, notes.as_ref()) {
            let _ = n.send(m.raw.clone());
        }
    }

    /// Answers an upstream request the broker handles itself (`ping`) or cannot relay.
    pub async fn reply(&self, id: &str, result: Result<Value, (i64, &str)>) {
        let body = match result {
            Ok(r) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{r}}}"#),
            Err((code, why)) => {
                let reference = crate::activity::Reference::mint();
                tracing::info!(%reference, "answered an upstream request itself: {why}");
                String::from_utf8_lossy(&super::super::message::error_response(
                    Some(id),
                    code,
                    why,
                    &reference,
                ))
                .into_owned()
            }
        };
        if let Ok(m) = parse_one(Bytes::from(body)) {
            self.relay.link.send(&m).await;
        }
    }

    /// The listeners' feed; `None` once the session has ended.
    pub fn listen(&self) -> Option<broadcast::Receiver<Bytes>> {
        let n = self.notes.lock().unwrap_or_else(|e| e.into_inner());
        n.as_ref().map(|n| n.subscribe())
    }

    /// `resources/subscribe` upstream for URIs no listener asked for before.
    pub async fn subscribe(&self, uris: &[String]) {
        let fresh: Vec<String> = {
            let mut s = self.subscribed.lock().unwrap_or_else(|e| e.into_inner());
            uris.iter()
                .filter(|u| s.insert((*u).clone()))
                .cloned()
                .collect()
        };
        for uri in fresh {
            let m = json!({"jsonrpc": "2.0", "id": self.mint(), "method": "resources/subscribe", "params": {"uri": uri}});
            self.relay.link.send(&to_message(&m)).await;
        }
    }
}

pub fn to_message(v: &Value) -> Message {
    let raw = Bytes::from(serde_json::to_vec(v).unwrap_or_default());
    parse_one(raw).unwrap_or_else(|_| unreachable!("the broker builds JSON-RPC messages"))
}

/// The standalone stream of the warm session: notifications go to the listeners;
/// requests outside any call cannot reach a stateless client and are refused (a `ping`
/// is answered).
async fn pump(
    warm: Arc<Warm>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<super::super::session::SseItem>,
) {
    while let Some(item) = rx.recv().await {
        let Ok(m) = parse_one(item.data) else {
            continue;
        };
        match &m.kind {
            Kind::Request { id, method } if method == "ping" => warm.reply(id, Ok(json!({}))).await,
            Kind::Request { id, .. } => {
                warm.reply(
                    id,
                    Err((
                        -32601,
                        "the broker's 2026-07-28 clients cannot be asked outside a call",
                    )),
                )
                .await
            }
            Kind::Notification { .. } => warm.publish(&m),
            Kind::Response { .. } => {}
        }
    }
    // The session ended: listens end too (the client listens again, on a new session).
    warm.notes.lock().unwrap_or_else(|e| e.into_inner()).take();
}
