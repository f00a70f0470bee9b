//! A `subscriptions/listen` passed through to a 2026-07-28 remote upstream
//! ([`super::passthrough`]) also carries the broker's own tool list changes: the grant's
//! tool policy is the broker's, so when it changes (a choice edited, a pin suspended)
//! the listens of that grant that asked for `toolsListChanged` get a
//! `notifications/tools/list_changed` tagged with their subscription id, after the
//! upstream's acknowledgement (MCP 2026-07-28 basic/patterns/subscriptions
//! §Acknowledgment, §Receiving Notifications). A listen that did not ask hears nothing
//! of it ("MUST NOT send notification types the client has not explicitly requested").
//!
//! The acknowledgement says what is honoured: the broker honours `toolsListChanged`
//! itself, so it is added when the upstream left it out. The upstream's events go on as
//! they came (data, event type, id, retry); the stream ends when the upstream's does or
//! when the grant is revoked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::header;
use axum::response::Response;
use axum::response::sse::Event;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sse_stream::SseByteStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::listen::Filter;
use crate::oauth::GrantId;
use crate::proxy::Upstreams;

/// What an open passed-through listen is told.
#[derive(Debug, Clone, Copy)]
enum Tell {
    ToolsChanged,
    Revoked,
}

/// The open passed-through listens that asked for tool list changes, by grant. A listen
/// whose client went away is dropped at the next look.
#[derive(Default)]
pub struct PassedListens {
    open: Mutex<HashMap<GrantId, Vec<mpsc::UnboundedSender<Tell>>>>,
}

impl PassedListens {
    fn open(&self, grant: GrantId) -> mpsc::UnboundedReceiver<Tell> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock().entry(grant).or_default().push(tx);
        rx
    }

    /// The grant's tool list changed: its listens are told.
    pub fn tools_changed(&self, grant: GrantId) {
        self.tell(grant, Tell::ToolsChanged);
    }

    /// The grant is revoked: its listens end.
    pub fn revoked(&self, grant: GrantId) {
        self.tell(grant, Tell::Revoked);
        self.lock().remove(&grant);
    }

    /// Grants with a listen still open.
    pub fn grants(&self) -> Vec<GrantId> {
        let mut open = self.lock();
        open.retain(|_, v| {
            v.retain(|tx| !tx.is_closed());
            !v.is_empty()
        });
        open.keys().copied().collect()
    }

    fn tell(&self, grant: GrantId, what: Tell) {
        if let Some(v) = self.lock().get_mut(&grant) {
            v.retain(|tx| tx.send(what).is_ok());
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<GrantId, Vec<mpsc::UnboundedSender<Tell>>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Step {
    Upstream(Result<sse_stream::Sse, sse_stream::Error>),
    Told(Tell),
    UpstreamEnded,
}

/// The upstream's answer to a passed-through listen, carrying the grant's tool list
/// changes if the client asked for them; any other answer (an error, JSON) as it came.
pub(super) fn carry_policy_changes(
    up: &Upstreams,
    grant: GrantId,
    id: &Value,
    requested: &Value,
    res: Response,
) -> Response {
    let asked = requested.get("toolsListChanged") == Some(&Value::Bool(true));
    let sse = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !asked || up.gate().is_none() || !res.status().is_success() || !sse {
        return res;
    }
    let told = UnboundedReceiverStream::new(up.modern.passed_listens.open(grant)).map(Step::Told);
    let upstream = SseByteStream::new(res.into_body().into_data_stream())
        .map(Step::Upstream)
        .chain(futures_util::stream::iter([Step::UpstreamEnded]));
    let filter = Filter {
        tools: true,
        ..Filter::default()
    };
    let changed = filter
        .pass(
            br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
            id,
        )
        .unwrap_or_default();
    let mut acknowledged = false;
    // A change before the acknowledgement waits for it.
    let mut pending = false;
    let events = futures_util::stream::select(upstream, told)
        .scan((), move |_, step| {
            let out: Option<Vec<Event>> = match step {
                Step::Upstream(Ok(e)) => {
                    let mut out = Vec::with_capacity(2);
                    let (e, ack) = honour_tools(e);
                    out.extend(event(e));
                    if ack && !acknowledged {
                        acknowledged = true;
                        if std::mem::take(&mut pending) {
                            out.push(data(&changed));
                        }
                    }
                    Some(out)
                }
                Step::Told(Tell::ToolsChanged) if acknowledged => Some(vec![data(&changed)]),
                Step::Told(Tell::ToolsChanged) => {
                    pending = true;
                    Some(Vec::new())
                }
                Step::Upstream(Err(_)) | Step::UpstreamEnded | Step::Told(Tell::Revoked) => None,
            };
            std::future::ready(out)
        })
        .flat_map(futures_util::stream::iter);
    super::sse_events(events)
}

/// The event, with `toolsListChanged` honoured if it is the acknowledgement (`true`).
fn honour_tools(mut e: sse_stream::Sse) -> (sse_stream::Sse, bool) {
    let Some(mut v) = e
        .data
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
    else {
        return (e, false);
    };
    if v["method"] != "notifications/subscriptions/acknowledged" {
        return (e, false);
    }
    if !v["params"]["notifications"].is_object() {
        v["params"]["notifications"] = json!({});
    }
    if v["params"]["notifications"]["toolsListChanged"] != true {
        v["params"]["notifications"]["toolsListChanged"] = json!(true);
        e.data = Some(v.to_string());
    }
    (e, true)
}

/// The upstream's event as it came; `None` for a block with nothing to send.
fn event(e: sse_stream::Sse) -> Option<Event> {
    if e.data.is_none() && e.event.is_none() && e.id.is_none() && e.retry.is_none() {
        return None;
    }
    let mut out = Event::default();
    if let Some(d) = e.data {
        out = out.data(d);
    }
    if let Some(t) = e.event {
        out = out.event(t);
    }
    // axum refuses ids with line breaks or NUL; the parser never yields line breaks.
    if let Some(i) = e.id.filter(|i| !i.contains('\0')) {
        out = out.id(i);
    }
    if let Some(r) = e.retry {
        out = out.retry(Duration::from_millis(r));
    }
    Some(out)
}

fn data(b: &Bytes) -> Event {
    Event::default().data(String::from_utf8_lossy(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acknowledgement_honours_tool_list_changes() {
        let ack = sse_stream::Sse::default().data(
            r#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"notifications":{"promptsListChanged":true},"_meta":{"io.modelcontextprotocol/subscriptionId":7}}}"#,
        );
        let (e, is_ack) = honour_tools(ack);
        assert!(is_ack);
        let v: Value = serde_json::from_str(e.data.as_deref().unwrap()).unwrap();
        assert_eq!(
            v["params"]["notifications"],
            json!({"promptsListChanged": true, "toolsListChanged": true})
        );
        let other = sse_stream::Sse::default()
            .data(r#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}"#);
        assert!(!honour_tools(other.clone()).1);
        assert_eq!(honour_tools(other.clone()).0, other);
    }

    #[test]
    fn listens_are_told_by_grant_and_forgotten_when_gone() {
        let l = PassedListens::default();
        let mut a = l.open(GrantId(1));
        let b = l.open(GrantId(2));
        l.tools_changed(GrantId(1));
        assert!(matches!(a.try_recv(), Ok(Tell::ToolsChanged)));
        assert_eq!(
            {
                let mut g = l.grants();
                g.sort();
                g
            },
            [GrantId(1), GrantId(2)]
        );
        drop(b);
        assert_eq!(l.grants(), [GrantId(1)]);
        l.revoked(GrantId(1));
        assert!(matches!(a.try_recv(), Ok(Tell::Revoked)));
        assert!(l.grants().is_empty());
    }
}
