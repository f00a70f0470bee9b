//! Which era a POST to `/mcp/NAME` belongs to, and the 2026-07-28 validation ladder for
//! the modern ones (MCP 2026-07-28 basic/transports/streamable-http §Server Validation,
//! §Protocol Version Header; basic/index §`_meta`; basic/versioning §Protocol Version
//! Negotiation). Plain data in, a decision out: no I/O.
//!
//! A request is modern iff `params._meta` carries `io.modelcontextprotocol/protocolVersion`
//! (the same test the reference SDKs use). Everything else stays on the 2025-11-25 path,
//! byte for byte as before.

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value, json};

pub const MODERN_VERSION: &str = "2026-07-28";
pub const VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
pub const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// The reserved `_meta` namespace (basic/index §`_meta`): never relayed to a legacy upstream.
pub const RESERVED_PREFIX: &str = "io.modelcontextprotocol/";

/// -32020: a routing header is missing, malformed or disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// -32021: the request needs a client capability it did not declare.
pub const MISSING_CAPABILITY: i64 = -32021;
/// -32022: the requested protocol version is not served.
pub const UNSUPPORTED_VERSION: i64 = -32022;
pub const INVALID_PARAMS: i64 = -32602;
pub const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_REQUEST: i64 = -32600;

/// Methods a modern client may call here (schema 2026-07-28, core; no extensions).
const SERVED: &[&str] = &[
    "server/discover",
    "subscriptions/listen",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "completion/complete",
];

/// Methods whose name or URI is mirrored in `Mcp-Name` (streamable-http §Standard Request Headers).
pub fn name_key(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// A JSON-RPC error the ladder answers with, and its HTTP status.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: StatusCode,
    pub id: Value,
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl Rejection {
    fn new(status: StatusCode, id: &Value, code: i64, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            id: id.clone(),
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            error["data"] = d.clone();
        }
        json!({"jsonrpc": "2.0", "id": self.id, "error": error})
    }
}

/// A modern request that passed the ladder.
#[derive(Debug)]
pub struct ModernRequest {
    pub id: Value,
    pub method: String,
    /// The whole message, as the client sent it.
    pub body: Value,
    /// `_meta["io.modelcontextprotocol/clientCapabilities"]`: what this request may be asked.
    pub capabilities: Value,
}

impl ModernRequest {
    pub fn params(&self) -> Option<&Map<String, Value>> {
        self.body.get("params")?.as_object()
    }
    /// `params.name` or `params.uri` of the three name-bearing methods.
    pub fn name(&self) -> Option<&str> {
        self.params()?.get(name_key(&self.method)?)?.as_str()
    }
}

#[derive(Debug)]
pub enum Era {
    /// Served by the 2025-11-25 path, unchanged.
    Legacy,
    Modern(ModernRequest),
    /// A modern notification: accepted, nothing to relay (no client notification exists
    /// over HTTP in 2026-07-28 core).
    ModernNotification,
    Reject(Rejection),
}

/// Cheap test run on every POST: could this be modern at all? Keeps the legacy path's
/// cost to one substring search.
pub fn may_be_modern(headers: &HeaderMap, body: &[u8]) -> bool {
    header(headers, "mcp-protocol-version") == Some(MODERN_VERSION)
        || memchr::memmem::find(body, VERSION_KEY.as_bytes()).is_some()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn claims_modern(v: &Value) -> bool {
    v.get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.as_object())
        .is_some_and(|m| m.contains_key(VERSION_KEY))
}

/// Classifies a POST body (already known to be JSON) and runs the ladder, in the order
/// of streamable-http §Server Validation and versioning §Protocol Version Negotiation:
/// version header vs body (-32020), served version (-32022), required `_meta` (-32602),
/// method (404/-32601), `Mcp-Method`/`Mcp-Name` (-32020).
pub fn classify(headers: &HeaderMap, body: Value) -> Era {
    let null = Value::Null;
    if let Value::Array(items) = &body {
        if items.iter().any(claims_modern) {
            return Era::Reject(Rejection::new(
                StatusCode::BAD_REQUEST,
                &null,
                INVALID_REQUEST,
                "Invalid Request: 2026-07-28 messages are sent one per POST, never in a batch",
            ));
        }
        return Era::Legacy;
    }
    let id = body.get("id").cloned().unwrap_or(Value::Null);
    let header_version = header(headers, "mcp-protocol-version");
    if !claims_modern(&body) {
        if header_version == Some(MODERN_VERSION) && body.get("method").is_some() {
            return Era::Reject(Rejection::new(
                StatusCode::BAD_REQUEST,
                &id,
                INVALID_PARAMS,
                format!(
                    "Invalid params: MCP-Protocol-Version is {MODERN_VERSION} but params._meta lacks \"{VERSION_KEY}\""
                ),
            ));
        }
        return Era::Legacy;
    }
    let Some(method) = body
        .get("method")
        .and_then(|m| m.as_str())
        .map(str::to_owned)
    else {
        return Era::Reject(Rejection::new(
            StatusCode::BAD_REQUEST,
            &id,
            INVALID_REQUEST,
            "Invalid Request: a client sends requests and notifications only",
        ));
    };
    if body.get("id").is_none() {
        return Era::ModernNotification;
    }
    let meta = &body["params"]["_meta"];
    let version = &meta[VERSION_KEY];
    if header_version.is_none() || version.as_str() != header_version {
        return Era::Reject(Rejection::new(
            StatusCode::BAD_REQUEST,
            &id,
            HEADER_MISMATCH,
            "Header mismatch: MCP-Protocol-Version must be present and equal params._meta protocolVersion",
        ));
    }
    let requested = version.as_str().unwrap_or_default();
    if requested != MODERN_VERSION {
        let mut r = Rejection::new(
            StatusCode::BAD_REQUEST,
            &id,
            UNSUPPORTED_VERSION,
            "Unsupported protocol version",
        );
        r.data = Some(json!({"supported": [MODERN_VERSION], "requested": requested}));
        return Era::Reject(r);
    }
    let capabilities = meta.get(CAPABILITIES_KEY).cloned();
    let Some(capabilities) = capabilities.filter(Value::is_object) else {
        return Era::Reject(Rejection::new(
            StatusCode::BAD_REQUEST,
            &id,
            INVALID_PARAMS,
            format!("Invalid params: params._meta must carry \"{CAPABILITIES_KEY}\" (an object)"),
        ));
    };
    if !SERVED.contains(&method.as_str()) {
        return Era::Reject(Rejection::new(
            StatusCode::NOT_FOUND,
            &id,
            METHOD_NOT_FOUND,
            format!("Method not found: {method} (not part of MCP {MODERN_VERSION})"),
        ));
    }
    if header(headers, "mcp-method") != Some(method.as_str()) {
        return Era::Reject(Rejection::new(
            StatusCode::BAD_REQUEST,
            &id,
            HEADER_MISMATCH,
            "Header mismatch: Mcp-Method must be present and equal the request's method",
        ));
    }
    if let Some(key) = name_key(&method)
        && let Some(want) = body["params"].get(key).and_then(|v| v.as_str())
        && header(headers, "mcp-name")
            .and_then(decode_header_value)
            .as_deref()
            != Some(want)
    {
        return Era::Reject(Rejection::new(
            StatusCode::BAD_REQUEST,
            &id,
            HEADER_MISMATCH,
            format!("Header mismatch: Mcp-Name must be present and equal params.{key}"),
        ));
    }
    Era::Modern(ModernRequest {
        id,
        method,
        body,
        capabilities,
    })
}

/// streamable-http §Value Encoding: `=?base64?…?=` carries UTF-8 that is not plain
/// visible ASCII.
pub fn decode_header_value(v: &str) -> Option<String> {
    use base64::Engine;
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(v.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn req(method: &str, version: &str, extra: Value) -> Value {
        let mut params = json!({"_meta": {VERSION_KEY: version, CAPABILITIES_KEY: {}}});
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    }

    fn code(e: Era) -> (u16, i64) {
        match e {
            Era::Reject(r) => {
                assert_eq!(r.id, json!(7), "the error keeps the request id");
                (r.status.as_u16(), r.code)
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    const V: &str = MODERN_VERSION;

    #[test]
    fn legacy_requests_stay_legacy() {
        let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}});
        assert!(matches!(classify(&headers(&[]), init.clone()), Era::Legacy));
        let h = headers(&[("mcp-protocol-version", "2025-11-25")]);
        assert!(!may_be_modern(&h, init.to_string().as_bytes()));
        assert!(matches!(classify(&h, init), Era::Legacy));
    }

    #[test]
    fn the_ladder_in_spec_order() {
        let ok = [("mcp-protocol-version", V), ("mcp-method", "tools/list")];
        assert!(matches!(
            classify(&headers(&ok), req("tools/list", V, json!({}))),
            Era::Modern(_)
        ));
        // Header and body disagree: -32020 before the version is judged.
        let h = headers(&[("mcp-protocol-version", V), ("mcp-method", "tools/list")]);
        assert_eq!(
            code(classify(&h, req("tools/list", "v999.0.0", json!({})))),
            (400, HEADER_MISMATCH)
        );
        // Both name an unknown version: -32022 with supported and requested.
        let h = headers(&[
            ("mcp-protocol-version", "v999.0.0"),
            ("mcp-method", "tools/list"),
        ]);
        match classify(&h, req("tools/list", "v999.0.0", json!({}))) {
            Era::Reject(r) => {
                assert_eq!((r.status.as_u16(), r.code), (400, UNSUPPORTED_VERSION));
                assert_eq!(
                    r.data,
                    Some(json!({"supported": [V], "requested": "v999.0.0"}))
                );
            }
            other => panic!("{other:?}"),
        }
        // No `_meta` at all, modern header: -32602.
        let bare = json!({"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}});
        assert_eq!(code(classify(&headers(&ok), bare)), (400, INVALID_PARAMS));
        // Capabilities missing: -32602.
        let mut no_caps = req("tools/list", V, json!({}));
        no_caps["params"]["_meta"]
            .as_object_mut()
            .unwrap()
            .remove(CAPABILITIES_KEY);
        assert_eq!(
            code(classify(&headers(&ok), no_caps)),
            (400, INVALID_PARAMS)
        );
        // Removed and unknown methods: 404/-32601.
        for m in [
            "initialize",
            "ping",
            "logging/setLevel",
            "resources/subscribe",
            "resources/unsubscribe",
            "x/y",
        ] {
            let h = headers(&[("mcp-protocol-version", V), ("mcp-method", m)]);
            assert_eq!(
                code(classify(&h, req(m, V, json!({})))),
                (404, METHOD_NOT_FOUND),
                "{m}"
            );
        }
        // Mcp-Method missing or wrong, Mcp-Name missing or wrong: -32020.
        let h = headers(&[("mcp-protocol-version", V)]);
        assert_eq!(
            code(classify(&h, req("tools/list", V, json!({})))),
            (400, HEADER_MISMATCH)
        );
        let h = headers(&[("mcp-protocol-version", V), ("mcp-method", "tools/call")]);
        let call = req("tools/call", V, json!({"name": "echo"}));
        assert_eq!(code(classify(&h, call.clone())), (400, HEADER_MISMATCH));
        let h = headers(&[
            ("mcp-protocol-version", V),
            ("mcp-method", "tools/call"),
            ("mcp-name", "other"),
        ]);
        assert_eq!(code(classify(&h, call.clone())), (400, HEADER_MISMATCH));
        let h = headers(&[
            ("mcp-protocol-version", V),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ]);
        assert!(matches!(classify(&h, call), Era::Modern(_)));
    }

    #[test]
    fn encoded_names_and_batches() {
        let uri = "file:///ünïcode.txt";
        let h = headers(&[
            ("mcp-protocol-version", V),
            ("mcp-method", "resources/read"),
            ("mcp-name", "=?base64?ZmlsZTovLy/DvG7Dr2NvZGUudHh0?="),
        ]);
        assert!(matches!(
            classify(&h, req("resources/read", V, json!({"uri": uri}))),
            Era::Modern(_)
        ));
        let batch = Value::Array(vec![req("tools/list", V, json!({}))]);
        match classify(&headers(&[]), batch) {
            Era::Reject(r) => assert_eq!((r.status.as_u16(), r.code), (400, -32600)),
            other => panic!("{other:?}"),
        }
        let note =
            json!({"jsonrpc":"2.0","method":"notifications/x","params":{"_meta":{VERSION_KEY: V}}});
        assert!(matches!(
            classify(&headers(&[]), note),
            Era::ModernNotification
        ));
    }
}
