//! `subscriptions/listen` over the warm legacy session (MCP 2026-07-28
//! basic/patterns/subscriptions): the honoured filter is what the client asked for and
//! the upstream declared; the acknowledgement goes first; every later notification
//! carries the listen request's id as `subscriptionId`. Resource subscriptions become
//! `resources/subscribe` upstream (kept until the warm session ends: no reference
//! counting of unsubscribes yet). The stream ends when the client closes it, or with the
//! listen result when the warm session ends.

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_stream::wrappers::BroadcastStream;

use super::warm::Warm;

const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// What the listener asked for, cut down to what the upstream can deliver.
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    pub tools: bool,
    pub prompts: bool,
    pub resources: bool,
    pub uris: Vec<String>,
}

impl Filter {
    pub fn honoured(requested: &Value, capabilities: &Value) -> Filter {
        let asked = |k: &str| requested.get(k).and_then(Value::as_bool).unwrap_or(false);
        let has = |cap: &str, flag: &str| capabilities[cap][flag].as_bool().unwrap_or(false);
        let uris = if has("resources", "subscribe") {
            requested
                .get("resourceSubscriptions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Filter {
            tools: asked("toolsListChanged") && has("tools", "listChanged"),
            prompts: asked("promptsListChanged") && has("prompts", "listChanged"),
            resources: asked("resourcesListChanged") && has("resources", "listChanged"),
            uris,
        }
    }

    fn as_json(&self) -> Value {
        let mut n = serde_json::Map::new();
        for (k, on) in [
            ("toolsListChanged", self.tools),
            ("promptsListChanged", self.prompts),
            ("resourcesListChanged", self.resources),
        ] {
            if on {
                n.insert(k.into(), json!(true));
            }
        }
        if !self.uris.is_empty() {
            n.insert("resourceSubscriptions".into(), json!(self.uris));
        }
        Value::Object(n)
    }

    /// The notification for the listener, tagged, if it passes the filter.
    pub fn pass(&self, raw: &[u8], id: &Value) -> Option<Bytes> {
        let mut v: Value = serde_json::from_slice(raw).ok()?;
        let wanted = match v["method"].as_str()? {
            "notifications/tools/list_changed" => self.tools,
            "notifications/prompts/list_changed" => self.prompts,
            "notifications/resources/list_changed" => self.resources,
            "notifications/resources/updated" => v["params"]["uri"]
                .as_str()
                .is_some_and(|u| self.uris.iter().any(|x| x == u)),
            _ => false,
        };
        if !wanted {
            return None;
        }
        if !v["params"].is_object() {
            v["params"] = json!({});
        }
        v["params"]["_meta"][SUBSCRIPTION_ID] = id.clone();
        Some(Bytes::from(v.to_string()))
    }
}

/// The events of one listen: the acknowledgement, then the upstream's notifications.
pub async fn listen(
    warm: std::sync::Arc<Warm>,
    id: Value,
    requested: &Value,
) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    let filter = Filter::honoured(requested, warm.capabilities());
    // Subscribe to the broadcast before anything upstream can change.
    let rx = warm.listen().map(BroadcastStream::new);
    warm.subscribe(&filter.uris).await;
    let ack = json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": filter.as_json(), "_meta": {SUBSCRIPTION_ID: id}},
    });
    let first = Bytes::from(ack.to_string());
    // subscriptions §Graceful Closure: when the broker ends the subscription (the upstream
    // session ended), the listen result goes last.
    let last = json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {"resultType": "complete", "_meta": {SUBSCRIPTION_ID: id}},
    });
    let last = Bytes::from(last.to_string());
    let notes = futures_util::stream::iter(rx)
        .flatten()
        .filter_map(move |n| {
            let out = n.ok().and_then(|raw| filter.pass(&raw, &id));
            async move { out }
        });
    futures_util::stream::iter([first])
        .chain(notes)
        .chain(futures_util::stream::iter([last]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_is_the_intersection_and_tags() {
        let caps = json!({"tools":{"listChanged":true},"resources":{"subscribe":true}});
        let f = Filter::honoured(
            &json!({"toolsListChanged":true,"promptsListChanged":true,"resourcesListChanged":true,"resourceSubscriptions":["a://1"]}),
            &caps,
        );
        assert_eq!(
            f.as_json(),
            json!({"toolsListChanged":true,"resourceSubscriptions":["a://1"]})
        );
        let id = json!(5);
        let t = f
            .pass(
                br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
                &id,
            )
            .unwrap();
        let v: Value = serde_json::from_slice(&t).unwrap();
        assert_eq!(v["params"]["_meta"][SUBSCRIPTION_ID], json!(5));
        assert!(
            f.pass(
                br#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}"#,
                &id
            )
            .is_none()
        );
        assert!(f.pass(br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://1"}}"#, &id).is_some());
        assert!(f.pass(br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://2"}}"#, &id).is_none());
        assert!(
            f.pass(
                br#"{"jsonrpc":"2.0","method":"notifications/message","params":{}}"#,
                &id
            )
            .is_none()
        );
    }
}
