//! 2026-07-28 stdio clients through the bridge. Over stdio such a client sends no
//! `initialize`: every request names its protocol version in `params._meta` (MCP
//! 2026-07-28 basic/index §`_meta`, basic/transports/stdio). The bridge serves it
//! statelessly: each request becomes one POST to `/mcp/NAME` with the routing headers the
//! body implies (basic/transports/streamable-http §Standard Request Headers, §Value
//! Encoding) and no session; the answer (JSON, or an SSE stream with progress, an
//! `input_required` result or a `subscriptions/listen` stream) goes back as it came.
//! Closing that POST is its cancellation (streamable-http §Cancellation), so a stdio
//! `notifications/cancelled` drops the POST instead of being sent.
//!
//! Plain data in, decisions out; the relay does the I/O.

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// Where the protocol version of a 2026-07-28 request is (basic/index §`_meta`).
const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// The protocol version a request names in its `_meta`: present only on 2026-07-28 (and
/// later) requests. A legacy client's messages have none, and go the session's way.
pub fn protocol_version(msg: &Value) -> Option<&str> {
    msg.get("id")?;
    msg.pointer("/params/_meta")?.get(VERSION_KEY)?.as_str()
}

/// The field of `params` that `Mcp-Name` mirrors, for the methods that have one.
fn name_key(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// `MCP-Protocol-Version`, `Mcp-Method` and (where the method has one) `Mcp-Name`, as the
/// broker's validation ladder checks them against the body.
pub fn routing_headers(msg: &Value, version: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(&header_value(value)) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put("mcp-protocol-version", version);
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    put("mcp-method", method);
    if let Some(v) = name_key(method).and_then(|k| msg.pointer(&format!("/params/{k}"))) {
        match v {
            Value::String(s) => put("mcp-name", s),
            Value::Number(n) => put("mcp-name", &n.to_string()),
            Value::Bool(b) => put("mcp-name", if *b { "true" } else { "false" }),
            _ => {}
        }
    }
    h
}

/// A value as a header carries it (streamable-http §Value Encoding): as it is when it is
/// visible ASCII and spaces without leading or trailing whitespace, else the Base64 of
/// its UTF-8 in `=?base64?…?=`.
fn header_value(v: &str) -> String {
    let plain = v.bytes().all(|b| b == b' ' || (0x21..=0x7e).contains(&b))
        && v.trim() == v
        && !v.starts_with("=?base64?");
    if plain {
        v.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v)
        )
    }
}

/// The request a `notifications/cancelled` names (its `requestId`, as JSON text, the
/// form the relay keys its POSTs by).
pub fn cancelled_request(msg: &Value) -> Option<String> {
    if msg.get("method").and_then(Value::as_str) != Some("notifications/cancelled") {
        return None;
    }
    msg.pointer("/params/requestId").map(Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(method: &str, params: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    }

    #[test]
    fn only_requests_naming_a_version_in_meta_are_modern() {
        let meta = json!({"_meta": {VERSION_KEY: "2026-07-28"}});
        assert_eq!(
            protocol_version(&req("server/discover", meta.clone())),
            Some("2026-07-28")
        );
        let init = req("initialize", json!({"protocolVersion": "2025-11-25"}));
        assert_eq!(protocol_version(&init), None);
        assert_eq!(
            protocol_version(&req("tools/list", json!({"_meta": {"progressToken": 1}}))),
            None
        );
        let note = json!({"jsonrpc": "2.0", "method": "notifications/x", "params": meta});
        assert_eq!(
            protocol_version(&note),
            None,
            "a notification is no request"
        );
    }

    #[test]
    fn routing_headers_mirror_the_body() {
        let h = routing_headers(
            &req("tools/call", json!({"name": "echo", "arguments": {}})),
            "2026-07-28",
        );
        assert_eq!(h["mcp-protocol-version"], "2026-07-28");
        assert_eq!(h["mcp-method"], "tools/call");
        assert_eq!(h["mcp-name"], "echo");
        let h = routing_headers(&req("tools/list", json!({})), "2026-07-28");
        assert!(h.get("mcp-name").is_none());
        let h = routing_headers(
            &req("resources/read", json!({"uri": "file:///ünïcode.txt"})),
            "2026-07-28",
        );
        assert_eq!(h["mcp-name"], "=?base64?ZmlsZTovLy/DvG7Dr2NvZGUudHh0?=");
        assert_eq!(header_value(" padded"), "=?base64?IHBhZGRlZA==?=");
        assert_eq!(
            header_value("a\r\nX-Evil: 1"),
            "=?base64?YQ0KWC1FdmlsOiAx?="
        );
        assert_eq!(header_value("get weather"), "get weather");
    }

    #[test]
    fn a_cancellation_names_its_request() {
        let c = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "r-1"}});
        assert_eq!(cancelled_request(&c).as_deref(), Some("\"r-1\""));
        let c = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}});
        assert_eq!(cancelled_request(&c).as_deref(), Some("7"));
        assert_eq!(cancelled_request(&req("ping", json!({}))), None);
    }
}
