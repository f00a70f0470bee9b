//! A 2026-07-28 stdio child as the bridge's upstream (basic/transports/stdio): the same
//! stateless requests as over HTTP, newline-delimited on one pipe, so the answers are
//! told apart here: a response by its id (the bridge mints every id it sends), a
//! progress notification by its token (basic/patterns/progress), a listen's
//! notifications by their `subscriptionId`, which is the listen request's id
//! (basic/patterns/subscriptions §Receiving Notifications). Anything else cannot be
//! attributed to a request and is dropped. A request given up (cancelled, timed out,
//! or its client gone) is cancelled with `notifications/cancelled` (stdio
//! §Cancellation), a listen included.
//!
//! The child is started as any stdio upstream is (`proxy::stdio`), once its era is
//! known ([`super::probe`]): a working child is never probed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::wire::{Answer, WireError};
use crate::proxy::link::{Inbound, Inbox};
use crate::proxy::message::{Kind, parse_one};
use crate::proxy::stdio::StdioLink;

pub struct StdioWire {
    link: StdioLink,
    routes: Arc<Mutex<Routes>>,
    timeout: Duration,
}

/// Where the child's messages go: per request id (its raw JSON text), the exchange
/// waiting for it; per progress token, the request it belongs to.
#[derive(Default)]
struct Routes {
    by_id: HashMap<String, mpsc::UnboundedSender<Value>>,
    by_token: HashMap<String, String>,
    /// Why the child is gone, once it is.
    gone: Option<String>,
}

impl Routes {
    /// The exchange a message from the child belongs to.
    fn target(&self, kind: &Kind, v: &Value) -> Option<&mpsc::UnboundedSender<Value>> {
        let id = match kind {
            Kind::Response { id } => id.to_string(),
            Kind::Notification { method } if method == "notifications/progress" => self
                .by_token
                .get(&v["params"]["progressToken"].to_string())?
                .clone(),
            Kind::Notification { .. } => {
                let sub = &v["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"];
                if sub.is_null() {
                    return None;
                }
                sub.to_string()
            }
            // A 2026-07-28 server never sends requests (stdio §Receiving Messages).
            Kind::Request { .. } => return None,
        };
        self.by_id.get(&id)
    }
}

impl StdioWire {
    /// Takes over a started child: `heard` is its inbox; its failure ends the session
    /// (`session`).
    pub fn new(
        link: StdioLink,
        mut heard: mpsc::UnboundedReceiver<Inbound>,
        session: Inbox,
        timeout: Duration,
    ) -> StdioWire {
        let routes = Arc::new(Mutex::new(Routes::default()));
        let r = routes.clone();
        tokio::spawn(async move {
            while let Some(m) = heard.recv().await {
                match m {
                    // Only an HTTP link reports a refusal with a status; over stdio both
                    // are just the upstream's answer.
                    Inbound::Message(m) | Inbound::Refused { message: m, .. } => {
                        let Ok(v) = serde_json::from_slice::<Value>(&m.raw) else {
                            continue;
                        };
                        let routes = r.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(tx) = routes.target(&m.kind, &v) {
                            let _ = tx.send(v);
                        }
                    }
                    Inbound::Failed(why) => {
                        {
                            let mut routes = r.lock().unwrap_or_else(|e| e.into_inner());
                            routes.gone = Some(why.clone());
                            // Every exchange waiting hears that its answer will not come.
                            routes.by_id.clear();
                        }
                        let _ = session.send(Inbound::Failed(why));
                    }
                }
            }
        });
        StdioWire {
            link,
            routes,
            timeout,
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn exchange(
        &self,
        body: &Value,
        idle: bool,
        mut on_note: impl FnMut(Value),
    ) -> Result<Answer, WireError> {
        let id = body["id"].to_string();
        let token = &body["params"]["_meta"]["progressToken"];
        let token = (!token.is_null()).then(|| token.to_string());
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut routes = self.routes();
            if let Some(why) = &routes.gone {
                return Err(WireError::Gone(why.clone()));
            }
            routes.by_id.insert(id.clone(), tx);
            if let Some(t) = &token {
                routes.by_token.insert(t.clone(), id.clone());
            }
        }
        let mut pending = Pending {
            wire: self,
            id: &id,
            token: token.as_deref(),
            answered: false,
        };
        let msg = parse_one(Bytes::from(body.to_string())).map_err(|_| WireError::Ended)?;
        self.link.send(&msg).await;
        loop {
            let next = if idle {
                rx.recv().await
            } else {
                tokio::time::timeout(self.timeout, rx.recv())
                    .await
                    .map_err(|_| WireError::Timeout)?
            };
            let Some(v) = next else {
                let why = self.routes().gone.clone();
                return Err(why.map_or(WireError::Ended, WireError::Gone));
            };
            if v.get("method").is_some() {
                on_note(v);
            } else {
                pending.answered = true;
                return Ok(Answer {
                    status: 200,
                    message: v,
                });
            }
        }
    }

    pub async fn shutdown(&self) {
        self.link.shutdown().await;
    }
}

/// One request in flight: forgotten when it ends; cancelled upstream when it ends
/// without its response (dropped: the client cancelled or went away).
struct Pending<'a> {
    wire: &'a StdioWire,
    id: &'a str,
    token: Option<&'a str>,
    answered: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        {
            let mut routes = self.wire.routes();
            routes.by_id.remove(self.id);
            if let Some(t) = self.token {
                routes.by_token.remove(t);
            }
        }
        if !self.answered {
            self.wire
                .link
                .notify_cancelled(self.id, "the client cancelled the request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_find_their_request() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut r = Routes::default();
        r.by_id.insert("7".into(), tx.clone());
        r.by_id.insert("9".into(), tx);
        r.by_token.insert("\"p1\"".into(), "9".into());
        let response = Kind::Response { id: "7".into() };
        assert!(r.target(&response, &json!({"id": 7})).is_some());
        let progress = Kind::Notification {
            method: "notifications/progress".into(),
        };
        let p = json!({"params": {"progressToken": "p1", "progress": 1}});
        assert!(r.target(&progress, &p).is_some());
        let stray = json!({"params": {"progressToken": "p2"}});
        assert!(r.target(&progress, &stray).is_none());
        let changed = Kind::Notification {
            method: "notifications/tools/list_changed".into(),
        };
        let tagged = json!({"params": {"_meta": {"io.modelcontextprotocol/subscriptionId": 9}}});
        assert!(r.target(&changed, &tagged).is_some());
        assert!(r.target(&changed, &json!({"params": {}})).is_none());
        let unknown = Kind::Response { id: "8".into() };
        assert!(r.target(&unknown, &json!({"id": 8})).is_none());
    }
}
