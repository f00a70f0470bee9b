//! The legacy session's standalone stream, fed from a `subscriptions/listen` on the
//! modern upstream (basic/patterns/subscriptions): opened once the client sent
//! `notifications/initialized`, for the list changes the upstream's capabilities
//! announce (the server must not send kinds not requested, §Requesting Notifications).
//! The client's `resources/subscribe` and `resources/unsubscribe` change the set of
//! `resourceSubscriptions`, and the listen is opened again with the new set (brief §3.4).
//! The acknowledgement stays here; every later notification reaches the client without
//! the `subscriptionId` tag, which no legacy client knows. A listen the upstream ends is
//! opened again, a few times at most when it keeps failing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::Inner;

/// Consecutive failed listens before the broker stops trying.
const MAX_FAILURES: u32 = 3;

/// What to listen for: each list whose changes the upstream announces, and the
/// resources the client subscribed to where the upstream takes subscriptions.
fn wanted(capabilities: &Value, uris: &BTreeSet<String>) -> Option<Value> {
    let mut n = Map::new();
    if capabilities["resources"]["subscribe"] == true && !uris.is_empty() {
        n.insert("resourceSubscriptions".into(), json!(uris));
    }
    for (cap, key) in [
        ("tools", "toolsListChanged"),
        ("prompts", "promptsListChanged"),
        ("resources", "resourcesListChanged"),
    ] {
        if capabilities[cap]["listChanged"] == true {
            n.insert(key.into(), json!(true));
        }
    }
    (!n.is_empty()).then_some(Value::Object(n))
}

/// A notification from the listen, as a legacy client expects it (no subscription tag).
fn untagged(mut note: Value) -> Option<Value> {
    if note["method"] == "notifications/subscriptions/acknowledged" {
        return None;
    }
    if let Some(meta) = note["params"]["_meta"].as_object_mut() {
        meta.remove("io.modelcontextprotocol/subscriptionId");
        if meta.is_empty()
            && let Some(p) = note["params"].as_object_mut()
        {
            p.remove("_meta");
        }
    }
    Some(note)
}

/// The client subscribed to, or unsubscribed from, `uri`: the listen starts over with
/// the new set. Whether the upstream takes subscriptions at all.
pub(super) fn subscribe(link: &Arc<Inner>, uri: &str, on: bool) -> bool {
    if link.capabilities()["resources"]["subscribe"] != true {
        return false;
    }
    {
        let mut uris = link.subscribed.lock().unwrap_or_else(|e| e.into_inner());
        if on {
            uris.insert(uri.to_owned());
        } else {
            uris.remove(uri);
        }
    }
    if let Some(old) = link.tasks().listen.take() {
        old.abort();
    }
    open(link.clone());
    true
}

pub(super) fn open(link: Arc<Inner>) {
    let uris = link
        .subscribed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(notifications) = wanted(&link.capabilities(), &uris) else {
        return;
    };
    let mut tasks = link.tasks();
    if tasks.closed || tasks.listen.is_some() {
        return;
    }
    let me = link.clone();
    let task = tokio::spawn(async move {
        let mut failures = 0;
        while failures < MAX_FAILURES {
            let body = json!({
                "jsonrpc": "2.0",
                "id": me.upstream_id(),
                "method": "subscriptions/listen",
                "params": me.enveloped(json!({"notifications": notifications})),
            });
            let mut acknowledged = false;
            let _ = me
                .wire
                .exchange(&body, &[], true, |note| {
                    acknowledged |= note["method"] == "notifications/subscriptions/acknowledged";
                    if let Some(n) = untagged(note) {
                        me.report(Bytes::from(n.to_string()));
                    }
                })
                .await;
            failures = if acknowledged { 0 } else { failures + 1 };
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tracing::warn!(upstream = %me.upstream, "the upstream's subscriptions/listen keeps failing; list changes are not relayed");
    });
    tasks.listen = Some(task.abort_handle());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_for_announced_lists_only() {
        let none = BTreeSet::new();
        let caps = json!({"tools": {"listChanged": true}, "prompts": {}, "resources": {"listChanged": true}});
        assert_eq!(
            wanted(&caps, &none),
            Some(json!({"toolsListChanged": true, "resourcesListChanged": true}))
        );
        assert_eq!(wanted(&json!({"tools": {}}), &none), None);
        let uris = BTreeSet::from(["a://1".to_owned()]);
        assert_eq!(wanted(&json!({"resources": {}}), &uris), None);
        assert_eq!(
            wanted(&json!({"resources": {"subscribe": true}}), &uris),
            Some(json!({"resourceSubscriptions": ["a://1"]}))
        );
    }

    #[test]
    fn notifications_lose_the_subscription_tag() {
        let ack = json!({"method": "notifications/subscriptions/acknowledged", "params": {}});
        assert_eq!(untagged(ack), None);
        let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                             "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": 7}}});
        assert_eq!(
            untagged(changed),
            Some(
                json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {}})
            )
        );
    }
}
