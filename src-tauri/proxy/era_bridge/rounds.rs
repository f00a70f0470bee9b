//! One legacy request, carried to the modern upstream in as many rounds as it takes
//! (basic/patterns/mrtr): each round is a fresh stateless request; an `input_required`
//! result's `inputRequests` go to the legacy client as its own server-to-client requests
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`), and the next round
//! carries their answers as `inputResponses` with the `requestState` echoed exactly
//! (mrtr §Client Requirements). Progress and log notifications on a round's stream go to
//! the client as they come (basic/patterns/progress).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::wire::{Answer, WireError, param_headers};
use super::{Inner, LEGACY_VERSIONS, relayable};
use crate::proxy::message::{IdKey, UPSTREAM_ERROR};
use crate::proxy::modern::ladder::HEADER_MISMATCH;

/// Rounds before the broker gives up on an upstream that keeps asking (the TypeScript
/// SDK's legacy shim stops at the same number).
const MAX_ROUNDS: usize = 8;

/// Answers `initialize` from the upstream's `server/discover` result.
pub(super) async fn initialize(link: Arc<Inner>, id: IdKey, params: Value) {
    {
        let mut c = link.client();
        c.capabilities = relayable(&params["capabilities"]);
        c.info = params.get("clientInfo").filter(|v| v.is_object()).cloned();
    }
    let asked = params["protocolVersion"].as_str().unwrap_or_default();
    let version = LEGACY_VERSIONS
        .iter()
        .find(|v| **v == asked)
        .unwrap_or(&LEGACY_VERSIONS[0]);
    let body = json!({
        "jsonrpc": "2.0",
        "id": link.upstream_id(),
        "method": "server/discover",
        "params": link.enveloped(json!({})),
    });
    let discover = match link.wire.exchange(&body, &[], false, |_| {}).await {
        Ok(Answer { message, .. }) if message.get("result").is_some() => message["result"].clone(),
        Ok(Answer { status, message }) => {
            link.eras.forget(&link.upstream);
            let why = format!(
                "the upstream MCP server did not answer server/discover (HTTP {status}: {}); it may no longer speak 2026-07-28",
                message["error"]["message"].as_str().unwrap_or("no message")
            );
            return link.fail(&id, &json!({"code": UPSTREAM_ERROR, "message": why}));
        }
        Err(e) => return link.fail(&id, &wire_error(&link, e)),
    };
    let mut capabilities = discover["capabilities"].clone();
    if let Some(c) = capabilities.as_object_mut() {
        // Extensions are a 2026-07-28 notion. `resources.subscribe` keeps its legacy
        // meaning: the broker maps `resources/subscribe` onto the listen (resources
        // §Capabilities).
        c.remove("extensions");
    }
    *link.capabilities.lock().unwrap_or_else(|e| e.into_inner()) = capabilities.clone();
    let server_info = discover["_meta"]["io.modelcontextprotocol/serverInfo"]
        .as_object()
        .map(|m| Value::Object(m.clone()))
        .unwrap_or_else(|| json!({"name": link.upstream, "version": "unknown"}));
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": server_info,
    });
    if let Some(i) = discover.get("instructions").filter(|i| i.is_string()) {
        result["instructions"] = i.clone();
    }
    tracing::info!(upstream = %link.upstream, "a 2025-11-25 session bridged to a 2026-07-28 upstream");
    link.answer(&id, result);
}

/// Carries one request to the upstream until its result is final.
pub(super) async fn relay(link: Arc<Inner>, id: IdKey, method: String, params: Value) {
    let mut params = link.enveloped(params);
    let mut relisted = false;
    for _ in 0..MAX_ROUNDS {
        let body =
            json!({"jsonrpc": "2.0", "id": link.upstream_id(), "method": method, "params": params});
        let headers = if method == "tools/call" {
            let tool = params["name"].as_str().unwrap_or_default();
            link.params_headers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(tool)
                .cloned()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let answer = link
            .wire
            .exchange(&body, &headers, false, |note| {
                link.report(Bytes::from(note.to_string()))
            })
            .await;
        let Answer { status, message } = match answer {
            Ok(a) => a,
            Err(e) => return link.fail(&id, &wire_error(&link, e)),
        };
        if let Some(error) = message.get("error") {
            // The tool asks for `Mcp-Param-*` headers the broker did not know of: list
            // the tools and try once more (streamable-http §Client Behavior).
            if error["code"].as_i64() == Some(HEADER_MISMATCH)
                && method == "tools/call"
                && !relisted
            {
                relisted = true;
                learn_tools(&link).await;
                continue;
            }
            if matches!(status, 400 | 404 | 405) && !is_modern_error(error) {
                // A legacy refusal: the upstream's era changed under the broker.
                link.eras.forget(&link.upstream);
            }
            return link.fail(&id, &legacy_error(&method, error));
        }
        let mut result = message["result"].clone();
        if result["resultType"] == "input_required" {
            let Some(answers) = ask_client(&link, &result["inputRequests"]).await else {
                return link.fail(
                    &id,
                    &json!({"code": UPSTREAM_ERROR, "message": "the upstream MCP server asked for input the client could not give"}),
                );
            };
            let p = params
                .as_object_mut()
                .expect("enveloped params are an object");
            p.insert("inputResponses".into(), Value::Object(answers));
            match result.get("requestState") {
                Some(s) => p.insert("requestState".into(), s.clone()),
                None => p.remove("requestState"),
            };
            continue;
        }
        if method == "tools/list"
            && let Some(tools) = result["tools"].as_array()
        {
            remember_tools(&link, tools);
        }
        if let Some(r) = result.as_object_mut() {
            // Modern-only fields a legacy client has no use for.
            r.remove("resultType");
            r.remove("ttlMs");
            r.remove("cacheScope");
        }
        return link.answer(&id, result);
    }
    link.fail(
        &id,
        &json!({"code": UPSTREAM_ERROR, "message": format!("the upstream MCP server asked for input more than {MAX_ROUNDS} times")}),
    );
}

/// The modern codes an upstream of the right era answers with (basic §Error Codes).
fn is_modern_error(error: &Value) -> bool {
    matches!(
        error["code"].as_i64(),
        Some(-32022..=-32020 | -32601 | -32602 | -32600)
    )
}

/// The error as a 2025-11-25 client knows it: a resource that is not found is -32002
/// there (2025-11-25 server/resources §Error Handling), -32602 with its `uri` in 2026-07-28.
fn legacy_error(method: &str, error: &Value) -> Value {
    let not_found = method == "resources/read"
        && error["code"].as_i64() == Some(-32602)
        && error["data"].get("uri").is_some();
    let mut error = error.clone();
    if not_found {
        error["code"] = json!(-32002);
    }
    error
}

fn wire_error(link: &Inner, e: WireError) -> Value {
    if matches!(e, WireError::Status(_)) {
        link.eras.forget(&link.upstream);
    }
    let why = e.to_string().replace("UPSTREAM", &link.upstream);
    tracing::warn!(upstream = %link.upstream, "bridged request failed: {why}");
    json!({"code": UPSTREAM_ERROR, "message": why})
}

fn remember_tools(link: &Inner, tools: &[Value]) {
    let mut map = link
        .params_headers
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    for (tool, pairs) in param_headers(tools) {
        map.insert(tool, pairs);
    }
}

/// Lists the upstream's tools (every page) to learn their `Mcp-Param-*` arguments.
async fn learn_tools(link: &Inner) {
    let mut cursor: Option<Value> = None;
    for _ in 0..20 {
        let mut params = json!({});
        if let Some(c) = &cursor {
            params["cursor"] = c.clone();
        }
        let body = json!({"jsonrpc": "2.0", "id": link.upstream_id(), "method": "tools/list", "params": link.enveloped(params)});
        let Ok(Answer { message, .. }) = link.wire.exchange(&body, &[], false, |_| {}).await else {
            return;
        };
        if let Some(tools) = message["result"]["tools"].as_array() {
            remember_tools(link, tools);
        }
        cursor = message["result"]
            .get("nextCursor")
            .filter(|c| c.is_string())
            .cloned();
        if cursor.is_none() {
            return;
        }
    }
}

/// Sends each input request to the legacy client and waits for all answers; `None` when
/// one cannot be asked (a kind the client did not declare) or the client refused.
async fn ask_client(link: &Arc<Inner>, requests: &Value) -> Option<Map<String, Value>> {
    let requests = requests.as_object().cloned().unwrap_or_default();
    let declared = link.client().capabilities.clone();
    let mut asked = Asked(Vec::new(), link);
    let mut waits = Vec::new();
    for (key, req) in requests {
        let method = req["method"].as_str()?.to_owned();
        let kind = match method.as_str() {
            "elicitation/create" => "elicitation",
            "sampling/createMessage" => "sampling",
            "roots/list" => "roots",
            _ => return None,
        };
        declared.get(kind)?;
        let ask_id: crate::proxy::message::IdKey =
            format!("\"mcp-broker-input-{}\"", link.upstream_id()).into();
        let (tx, rx) = oneshot::channel();
        link.asks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ask_id.clone(), tx);
        asked.0.push(ask_id.clone());
        let params = req.get("params").cloned().unwrap_or(json!({}));
        link.report(Bytes::from(
            json!({"jsonrpc": "2.0", "id": serde_json::from_str::<Value>(&ask_id).ok()?, "method": method, "params": params})
                .to_string(),
        ));
        waits.push(async move { (key, rx.await.ok()) });
    }
    let mut answers = Map::new();
    for (key, reply) in join_all(waits).await {
        let reply = reply?;
        answers.insert(key, reply.get("result")?.clone());
    }
    Some(answers)
}

/// The broker's requests to the client still waiting: forgotten when the round ends,
/// also when it is cancelled while a person is answering.
struct Asked<'a>(Vec<IdKey>, &'a Inner);

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        let mut asks = self.1.asks.lock().unwrap_or_else(|e| e.into_inner());
        for id in &self.0 {
            asks.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_errors_are_told_from_legacy_refusals() {
        assert!(is_modern_error(&json!({"code": -32020})));
        assert!(is_modern_error(&json!({"code": -32601})));
        assert!(!is_modern_error(
            &json!({"code": -32000, "message": "Bad Request: No valid session ID provided"})
        ));
    }

    #[test]
    fn a_missing_resource_is_told_in_the_legacy_clients_code() {
        let gone =
            json!({"code": -32602, "message": "Resource not found", "data": {"uri": "a://x"}});
        assert_eq!(
            legacy_error("resources/read", &gone),
            json!({"code": -32002, "message": "Resource not found", "data": {"uri": "a://x"}})
        );
        // Other invalid params, and other methods, keep their code.
        let bad = json!({"code": -32602, "message": "uri is required"});
        assert_eq!(legacy_error("resources/read", &bad), bad);
        assert_eq!(legacy_error("tools/call", &gone), gone);
    }
}
