//! `server/discover` (MCP 2026-07-28 server/discover; basic/versioning §Protocol Version
//! Negotiation), answered by the broker for a legacy upstream: the capabilities,
//! instructions and server info the upstream gave the warm session's `initialize`, and
//! the one modern revision the broker serves. Cache hints say "private to this grant,
//! do not reuse" (caching §Cacheable Results): the upstream may change when it restarts.

use serde_json::{Value, json};

use super::ladder::MODERN_VERSION;

/// The `DiscoverResult` for an upstream that answered `initialize` with `init`.
pub fn discover_result(init: &Value) -> Value {
    let mut capabilities = init.get("capabilities").cloned().unwrap_or(json!({}));
    if let Some(c) = capabilities.as_object_mut() {
        // A legacy server logs per session; a modern client would have to opt in per
        // request, which the broker cannot honour over a shared session.
        c.remove("logging");
        // 2025-11-25 tasks became the `io.modelcontextprotocol/tasks` extension, which the
        // broker does not bridge.
        c.remove("tasks");
    }
    let mut result = json!({
        "supportedVersions": [MODERN_VERSION],
        "capabilities": capabilities,
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
    });
    if let Some(i) = init.get("instructions").filter(|i| i.is_string()) {
        result["instructions"] = i.clone();
    }
    if let Some(s) = init.get("serverInfo").filter(|s| s.is_object()) {
        result["_meta"] = json!({"io.modelcontextprotocol/serverInfo": s});
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discover_reflects_the_upstream() {
        let init = json!({"protocolVersion":"2025-11-25","capabilities":{"tools":{"listChanged":true},"logging":{},"tasks":{"list":{}}},
                          "serverInfo":{"name":"every","version":"2"},"instructions":"be nice"});
        let d = discover_result(&init);
        assert_eq!(d["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(d["capabilities"], json!({"tools":{"listChanged":true}}));
        assert_eq!(d["instructions"], json!("be nice"));
        assert_eq!(
            d["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            json!("every")
        );
        assert_eq!(
            (d["ttlMs"].clone(), d["cacheScope"].clone()),
            (json!(0), json!("private"))
        );
    }
}
