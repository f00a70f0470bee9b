//! A 2025-11-25 (legacy) client in front of a 2026-07-28 (modern) upstream (brief §3.4;
//! basic/versioning §Backward Compatibility: a legacy client cannot talk to a
//! modern-only server, so the broker holds the legacy session itself).
//!
//! [`ModernLink`] is a session's upstream link (`proxy::link`) that speaks 2026-07-28
//! upstream and behaves like a 2025-11-25 server to the session:
//!
//! - `initialize` is answered here from the upstream's `server/discover` result
//!   (server/discover: capabilities, `serverInfo` from `_meta`, instructions), in the
//!   legacy revision the client asked for; the client's capabilities and `clientInfo` are
//!   kept for the session. `ping` and `logging/setLevel` are answered here too (both
//!   removed in 2026-07-28; the level goes on each later request as `logLevel`).
//! - Every other request becomes a stateless modern request ([`rounds`]): `_meta` with
//!   the protocol version and the client's info and capabilities as it declared them at
//!   `initialize` (basic §`_meta`), the routing headers recomputed ([`wire`]), progress
//!   relayed, and an `input_required` result (basic/patterns/mrtr) turned back into the
//!   legacy client's own `elicitation/create`, `sampling/createMessage` or `roots/list`
//!   requests on its stream, then retried upstream with the answers and the
//!   `requestState` until the result is final.
//! - `notifications/cancelled` closes that request's upstream exchange
//!   (streamable-http §Cancellation: closing the stream is cancellation).
//! - The legacy standalone GET stream becomes a `subscriptions/listen`
//!   (basic/patterns/subscriptions) for the list changes the upstream announces and the
//!   resources the client subscribed to ([`listen`]).
//!
//! Which upstreams get this link is decided by their era ([`probe`]). The upstream is
//! reached over HTTP or stdio ([`wire`], [`stdio_wire`]); a 2026-07-28 client's warm
//! session to a 2026-07-28 stdio upstream (`proxy::modern::warm`) runs over this link
//! too.

mod listen;
mod probe;
mod rounds;
mod stdio_wire;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::Upstreams;
use super::link::{Inbound, Inbox, Link};
use super::message::{IdKey, Kind, Message, parse_one};
use super::modern::ladder::{CAPABILITIES_KEY, MODERN_VERSION, VERSION_KEY};
use crate::config::{Transport, UpstreamConfig, ValueSource};
pub use probe::{Eras, UpstreamEra};
use stdio_wire::StdioWire;
use wire::{HttpWire, Wire};

/// The legacy revisions a client may ask for; the newest is offered otherwise.
const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

pub struct ModernLink {
    inner: Arc<Inner>,
}

struct Inner {
    upstream: String,
    wire: Wire,
    inbox: Inbox,
    /// What the client declared at `initialize`, and its log level.
    client: Mutex<ClientView>,
    /// The upstream's capabilities, from `server/discover` at `initialize`.
    capabilities: Mutex<Value>,
    /// The resources the client subscribed to (`resources/subscribe`).
    subscribed: Mutex<std::collections::BTreeSet<String>>,
    /// Per tool, its `Mcp-Param-*` arguments (from the last `tools/list`).
    params_headers: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// Upstream exchanges in flight, by the client's request id (the listen: `None`).
    tasks: Mutex<Tasks>,
    /// Requests the broker sent the client for an `input_required`, by their id.
    asks: Mutex<HashMap<IdKey, oneshot::Sender<Value>>>,
    next: AtomicU64,
    eras: Arc<Eras>,
}

#[derive(Default)]
struct ClientView {
    capabilities: Value,
    info: Option<Value>,
    log_level: Option<String>,
}

#[derive(Default)]
struct Tasks {
    closed: bool,
    by_id: HashMap<IdKey, AbortHandle>,
    listen: Option<AbortHandle>,
}

impl ModernLink {
    pub fn new(upstream: &str, wire: Wire, inbox: Inbox, eras: Arc<Eras>) -> ModernLink {
        ModernLink {
            inner: Arc::new(Inner {
                upstream: upstream.to_owned(),
                wire,
                inbox,
                client: Mutex::new(ClientView::default()),
                capabilities: Mutex::new(json!({})),
                params_headers: Mutex::new(HashMap::new()),
                subscribed: Mutex::default(),
                tasks: Mutex::new(Tasks::default()),
                asks: Mutex::new(HashMap::new()),
                next: AtomicU64::new(1),
                eras,
            }),
        }
    }

    /// Takes one message from the legacy client.
    pub fn send(&self, msg: &Message) {
        let inner = &self.inner;
        match &msg.kind {
            Kind::Response { id } => {
                let waiting = inner
                    .asks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
                if let (Some(tx), Ok(v)) = (waiting, serde_json::from_slice::<Value>(&msg.raw)) {
                    let _ = tx.send(v);
                }
            }
            Kind::Notification { method } => match method.as_str() {
                "notifications/initialized" => listen::open(inner.clone()),
                "notifications/cancelled" => {
                    if let Some(id) = &msg.cancelled_id {
                        self.cancel(id, None);
                    }
                }
                // Roots changes have no modern form: each request asks again
                // (2026-07-28 removed `notifications/roots/list_changed`).
                _ => {}
            },
            Kind::Request { id, method } => {
                let Ok(v) = serde_json::from_slice::<Value>(&msg.raw) else {
                    return;
                };
                let params = v.get("params").cloned().unwrap_or(json!({}));
                match method.as_str() {
                    "initialize" => {
                        inner.spawn(id, rounds::initialize(inner.clone(), id.clone(), params))
                    }
                    "ping" => inner.answer(id, json!({})),
                    "resources/subscribe" | "resources/unsubscribe" => {
                        let uri = params["uri"].as_str().unwrap_or_default();
                        if listen::subscribe(inner, uri, method == "resources/subscribe") {
                            inner.answer(id, json!({}));
                        } else {
                            let no = json!({"code": -32601, "message": "the upstream MCP server takes no resource subscriptions"});
                            inner.fail(id, &no);
                        }
                    }
                    "logging/setLevel" => {
                        inner.client().log_level = params["level"].as_str().map(str::to_owned);
                        inner.answer(id, json!({}));
                    }
                    _ => inner.spawn(
                        id,
                        rounds::relay(inner.clone(), id.clone(), method.clone(), params),
                    ),
                }
            }
        }
    }

    /// Request `id` will not be answered any more: its exchange is dropped, which closes
    /// the upstream connection (that is the cancellation, streamable-http §Cancellation).
    pub fn cancel(&self, id: &str, _notify: Option<&str>) {
        let task = self.inner.tasks().by_id.remove(id);
        if let Some(t) = task {
            t.abort();
        }
    }

    pub async fn shutdown(&self) {
        let (tasks, listen) = {
            let mut t = self.inner.tasks();
            t.closed = true;
            (std::mem::take(&mut t.by_id), t.listen.take())
        };
        for (_, t) in tasks {
            t.abort();
        }
        if let Some(l) = listen {
            l.abort();
        }
        self.inner
            .asks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.inner.wire.shutdown().await;
    }
}

impl Upstreams {
    /// The link of a 2025-11-25 session to a 2026-07-28 upstream: its stdio child is
    /// started here, in that era.
    pub(in crate::proxy) async fn modern_link(
        &self,
        upstream: &str,
        cfg: &UpstreamConfig,
        values: &BTreeMap<String, ValueSource>,
        account: Option<&str>,
        session: &str,
        inbox: Inbox,
    ) -> Result<Link, String> {
        let wire = match &cfg.transport {
            Transport::Stdio { .. } => {
                let (to_wire, heard) = tokio::sync::mpsc::unbounded_channel();
                let child = self
                    .spawn_stdio(upstream, cfg, values, session, to_wire)
                    .await?;
                Wire::Stdio(StdioWire::new(
                    child,
                    heard,
                    inbox.clone(),
                    self.request_timeout,
                ))
            }
            Transport::Http { url, .. } => Wire::Http(HttpWire {
                http: self.http.clone(),
                url: url.clone(),
                headers: self.header_map(upstream, values).await?,
                oauth: self.oauth.clone(),
                sign_in: crate::config::sign_in_id(upstream, account.or(cfg.default_account())),
                timeout: self.request_timeout,
            }),
        };
        let eras = self.modern.eras.clone();
        Ok(Link::Modern(ModernLink::new(upstream, wire, inbox, eras)))
    }
}

impl Inner {
    fn client(&self) -> std::sync::MutexGuard<'_, ClientView> {
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn capabilities(&self) -> Value {
        self.capabilities
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one request's exchanges; it is forgotten when done.
    fn spawn(
        self: &Arc<Self>,
        id: &IdKey,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let mut tasks = self.tasks();
        if tasks.closed {
            return;
        }
        let me = self.clone();
        let key = id.clone();
        let handle = tokio::spawn(async move {
            work.await;
            me.tasks().by_id.remove(&key);
        });
        tasks.by_id.insert(id.clone(), handle.abort_handle());
    }

    /// Tells the session what the "upstream" said.
    fn report(&self, raw: Bytes) {
        if let Ok(m) = parse_one(raw) {
            let _ = self.inbox.send(Inbound::Message(m));
        }
    }

    fn answer(&self, id: &str, result: Value) {
        self.report(Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#
        )));
    }

    fn fail(&self, id: &str, error: &Value) {
        self.report(Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#
        )));
    }

    /// `params` with the modern `_meta` (basic §`_meta`): the client's reserved keys are
    /// replaced, its own ones (`progressToken`, trace context) kept.
    fn enveloped(&self, params: Value) -> Value {
        let mut params = match params {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut meta = match params.remove("_meta") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        meta.retain(|k, _| !k.starts_with(super::modern::ladder::RESERVED_PREFIX));
        let client = self.client();
        meta.insert(VERSION_KEY.into(), json!(MODERN_VERSION));
        meta.insert(CAPABILITIES_KEY.into(), client.capabilities.clone());
        if let Some(info) = &client.info {
            meta.insert("io.modelcontextprotocol/clientInfo".into(), info.clone());
        }
        if let Some(level) = &client.log_level {
            meta.insert("io.modelcontextprotocol/logLevel".into(), json!(level));
        }
        params.insert("_meta".into(), Value::Object(meta));
        Value::Object(params)
    }

    /// A fresh upstream request id: retries are new requests (mrtr §Client Requirements).
    fn upstream_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

/// The capabilities a legacy client declared that the broker can relay: the three
/// kinds of server-to-client request an `input_required` may carry (mrtr §Supported
/// Requests). Nothing else is declared upstream on its behalf.
fn relayable(declared: &Value) -> Value {
    let mut out = Map::new();
    for k in ["elicitation", "sampling", "roots"] {
        if let Some(v) = declared.get(k).filter(|v| v.is_object()) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relayable_capabilities_go_upstream() {
        let declared = json!({"elicitation": {"form": {}}, "roots": {"listChanged": true}, "experimental": {"x": {}}, "tasks": {}});
        assert_eq!(
            relayable(&declared),
            json!({"elicitation": {"form": {}}, "roots": {"listChanged": true}})
        );
        assert_eq!(relayable(&json!(null)), json!({}));
    }
}
