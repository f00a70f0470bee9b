//! Which era a POST to `/mcp/NAME` belongs to, and the 2026-07-28 validation ladder for
//! the modern ones (MCP 2026-07-28 basic/transports/streamable-http §Server Validation,
//! §Protocol Version Header; basic/index §`_meta`; basic/versioning §Protocol Version
//! Negotiation). Plain data in, a decision out: no I/O.
//!
//! A request is modern iff `params._meta` carries `io.modelcontextprotocol/protocolVersion`
//! (the same test the reference SDKs use). Everything else stays on the 2025-11-25 path,
//! byte for byte as before.

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::proxy::message::{AnyValue, Members, Message, ObjectReader, write_member};

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

/// A modern request that passed the ladder: what serving it needs, read in the one pass
/// that validated it. The body itself stays the bytes that arrived.
#[derive(Debug)]
pub struct ModernRequest {
    pub id: Value,
    pub method: String,
    /// The whole message, as the client sent it.
    pub raw: Bytes,
    /// `params.name` or `params.uri` of the three name-bearing methods.
    pub name: Option<String>,
    /// `_meta["io.modelcontextprotocol/clientCapabilities"]` (an object, as JSON text):
    /// what this request may be asked. Read only when the upstream asks something.
    pub capabilities: Box<str>,
    /// `_meta.progressToken`.
    pub progress_token: Option<Value>,
    /// `params.requestState`: a retry of an `input_required` result.
    pub request_state: Option<String>,
    /// `params` as the legacy hop sends them, written in the ladder's pass when there is
    /// no progress token to replace.
    legacy_params: Option<Vec<u8>>,
}

impl ModernRequest {
    /// `params[key]`, read when a rarer request needs it (a listen's filter, a retry's
    /// answers).
    pub fn param(&self, key: &str) -> Option<Value> {
        let e: Envelope = serde_json::from_slice(&self.raw).ok()?;
        let raw = e.params?.members.get(key)?;
        serde_json::from_str(raw.get()).ok()
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The request as the client sent it, for the tool gate (whose refusal answers the
    /// client's id).
    pub fn client_message(&self) -> Message {
        Message::request(
            self.raw.clone(),
            self.id.to_string().into(),
            &self.method,
            self.progress_token.as_ref().map(|t| t.to_string().into()),
            self.name.as_deref().map(Box::from),
        )
    }

    /// The request for a 2025-11-25 session (basic/index §`_meta`): the broker's `id`, the
    /// progress token replaced by `token`, the reserved `_meta` keys and the retry's
    /// members gone; every other member copied as it arrived.
    pub fn legacy_message(&self, id: &str, token: Option<&str>) -> Message {
        let raw = match &self.legacy_params {
            Some(params) => {
                let mut out = Vec::with_capacity(params.len() + self.method.len() + 64);
                out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
                let _ = serde_json::to_writer(&mut out, id);
                out.extend_from_slice(b",\"method\":");
                let _ = serde_json::to_writer(&mut out, &self.method);
                out.extend_from_slice(b",\"params\":");
                out.extend_from_slice(params);
                out.push(b'}');
                Bytes::from(out)
            }
            None => legacy_request(&self.raw, id, token).unwrap_or_default(),
        };
        let quoted = |s: &str| Box::<str>::from(serde_json::to_string(s).unwrap_or_default());
        Message::request(
            raw,
            quoted(id),
            &self.method,
            token.filter(|_| self.progress_token.is_some()).map(quoted),
            self.name.as_deref().map(Box::from),
        )
    }
}

/// The members of a message the ladder reads, in one pass over the body: `params` as its
/// members and `_meta` among them as its own, each value the text that arrived. `null`
/// is kept as a value (`"id": null` is a malformed request, not a notification).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// `params`: its members but `_meta`, in order, and `_meta`'s members (when it is an
/// object) with the place it had. Params that are not an object carry nothing.
#[derive(Default)]
struct Params<'a> {
    object: bool,
    members: Members<'a>,
    meta: Option<Members<'a>>,
    meta_at: usize,
}

/// Reads an object's members whatever the value is; with `split_meta`, `_meta` apart.
struct ParamsReader {
    split_meta: bool,
}

impl<'a> ObjectReader<'a> for ParamsReader {
    type Value = Params<'a>;
    fn read<A: serde::de::MapAccess<'a>>(self, mut map: A) -> Result<Params<'a>, A::Error> {
        let mut p = Params {
            object: true,
            members: Members(Vec::with_capacity(map.size_hint().unwrap_or(4))),
            ..Params::default()
        };
        while let Some(k) = map.next_key::<Cow<'a, str>>()? {
            if self.split_meta && k == "_meta" {
                p.meta = map.next_value::<Meta>()?.0;
                p.meta_at = p.members.0.len();
            } else {
                p.members.0.push((k, map.next_value::<&'a RawValue>()?));
            }
        }
        Ok(p)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Params<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyValue(ParamsReader { split_meta: true }))
    }
}

/// `_meta`: its members when it is an object.
struct Meta<'a>(Option<Members<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Meta<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read as `params` are, in the same pass: an object's members, else nothing.
        let p = d.deserialize_any(AnyValue(ParamsReader { split_meta: false }))?;
        Ok(Meta(p.object.then_some(p.members)))
    }
}

/// See [`ModernRequest::legacy_message`]; `None` when `body` is not a JSON object.
pub fn legacy_request(body: &[u8], id: &str, token: Option<&str>) -> Option<Bytes> {
    let e: Envelope = serde_json::from_slice(body).ok()?;
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    serde_json::to_writer(&mut out, id).ok()?;
    if let Some(m) = e.method {
        out.extend_from_slice(b",\"method\":");
        out.extend_from_slice(m.get().as_bytes());
    }
    match e.params {
        Some(p) if p.object => {
            out.extend_from_slice(b",\"params\":");
            legacy_params(&mut out, &p, token);
        }
        Some(_) => {
            // By-position or garbage params: the upstream judges them as they are.
            #[derive(Deserialize)]
            struct Raw<'a> {
                #[serde(borrow)]
                params: &'a RawValue,
            }
            let raw: Raw = serde_json::from_slice(body).ok()?;
            out.extend_from_slice(b",\"params\":");
            out.extend_from_slice(raw.params.get().as_bytes());
        }
        None => {}
    }
    out.push(b'}');
    Some(Bytes::from(out))
}

fn legacy_params(out: &mut Vec<u8>, params: &Params, token: Option<&str>) {
    out.push(b'{');
    let mut first = true;
    let meta = |out: &mut Vec<u8>, first: &mut bool| {
        let Some(meta) = &params.meta else { return };
        let mut kept = Vec::with_capacity(64);
        kept.push(b'{');
        let mut none = true;
        for (mk, mv) in &meta.0 {
            if mk.starts_with(RESERVED_PREFIX) {
                continue;
            }
            match (mk.as_ref(), token) {
                ("progressToken", Some(t)) => {
                    let t = serde_json::to_string(t).unwrap_or_default();
                    write_member(&mut kept, &mut none, mk, t.as_bytes());
                }
                _ => write_member(&mut kept, &mut none, mk, mv.get().as_bytes()),
            }
        }
        kept.push(b'}');
        if !none {
            write_member(out, first, "_meta", &kept);
        }
    };
    for (i, (k, v)) in params.members.0.iter().enumerate() {
        if i == params.meta_at {
            meta(out, &mut first);
        }
        if !matches!(k.as_ref(), "inputResponses" | "requestState") {
            write_member(out, &mut first, k, v.get().as_bytes());
        }
    }
    if params.meta_at >= params.members.0.len() {
        meta(out, &mut first);
    }
    out.push(b'}');
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
    // Built once: a searcher costs more to build than to run over a message.
    static FINDER: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(VERSION_KEY.as_bytes()));
    header(headers, "mcp-protocol-version") == Some(MODERN_VERSION) || FINDER.find(body).is_some()
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

fn batch(body: &[u8]) -> Era {
    let items: Vec<Value> = serde_json::from_slice(body).unwrap_or_default();
    if items.iter().any(claims_modern) {
        return Era::Reject(Rejection::new(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            INVALID_REQUEST,
            "Invalid Request: 2026-07-28 messages are sent one per POST, never in a batch",
        ));
    }
    Era::Legacy
}

/// Classifies a POST body and runs the ladder, in the order of streamable-http §Server
/// Validation and versioning §Protocol Version Negotiation: version header vs body
/// (-32020), served version (-32022), required `_meta` (-32602), method (404/-32601),
/// `Mcp-Method`/`Mcp-Name` (-32020). Reads the body once, without building a tree: this
/// is every modern call's path.
pub fn classify(headers: &HeaderMap, body: &Bytes) -> Era {
    if body.trim_ascii_start().first() == Some(&b'[') {
        return batch(body);
    }
    // Not a JSON object: the 2025-11-25 path says what is wrong with it.
    let Ok(w) = serde_json::from_slice::<Envelope>(body) else {
        return Era::Legacy;
    };
    let params = w.params.unwrap_or_default();
    let meta = params.meta.as_ref();
    let version = meta.and_then(|m| m.get(VERSION_KEY));
    let id =
        w.id.and_then(|i| serde_json::from_str(i.get()).ok())
            .unwrap_or(Value::Null);
    let header_version = header(headers, "mcp-protocol-version");
    let (Some(version), Some(meta)) = (version, meta) else {
        if header_version == Some(MODERN_VERSION) && w.method.is_some() {
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
    };
    let Some(method) = w
        .method
        .and_then(|m| serde_json::from_str::<String>(m.get()).ok())
    else {
        return Era::Reject(Rejection::new(
            StatusCode::BAD_REQUEST,
            &id,
            INVALID_REQUEST,
            "Invalid Request: a client sends requests and notifications only",
        ));
    };
    if w.id.is_none() {
        return Era::ModernNotification;
    }
    let requested = serde_json::from_str::<String>(version.get()).ok();
    if header_version.is_none() || requested.as_deref() != header_version {
        return Era::Reject(Rejection::new(
            StatusCode::BAD_REQUEST,
            &id,
            HEADER_MISMATCH,
            "Header mismatch: MCP-Protocol-Version must be present and equal params._meta protocolVersion",
        ));
    }
    let requested = requested.unwrap_or_default();
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
    let capabilities = meta
        .get(CAPABILITIES_KEY)
        .filter(|c| c.get().starts_with('{'))
        .map(|c| Box::<str>::from(c.get()));
    let Some(capabilities) = capabilities else {
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
    let name = name_key(&method).and_then(|key| params.members.str(key));
    if let (Some(key), Some(want)) = (name_key(&method), &name)
        && header(headers, "mcp-name")
            .and_then(decode_header_value)
            .as_deref()
            != Some(want.as_str())
    {
        return Era::Reject(Rejection::new(
            StatusCode::BAD_REQUEST,
            &id,
            HEADER_MISMATCH,
            format!("Header mismatch: Mcp-Name must be present and equal params.{key}"),
        ));
    }
    let progress_token: Option<Value> = meta
        .get("progressToken")
        .and_then(|t| serde_json::from_str(t.get()).ok());
    let legacy_params = progress_token.is_none().then(|| {
        let mut out = Vec::with_capacity(body.len());
        legacy_params(&mut out, &params, None);
        out
    });
    Era::Modern(ModernRequest {
        id,
        method,
        raw: body.clone(),
        name,
        capabilities,
        progress_token,
        request_state: params.members.str("requestState"),
        legacy_params,
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

    /// The ladder on a body written from `v`.
    fn classify(h: &HeaderMap, v: Value) -> Era {
        super::classify(h, &Bytes::from(v.to_string()))
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
    fn the_legacy_hop_is_the_same_written_in_the_ladder_or_after_it() {
        let h = headers(&[
            ("mcp-protocol-version", V),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ]);
        let call = req(
            "tools/call",
            V,
            json!({"name": "echo", "arguments": {"m": "x"}, "requestState": "s"}),
        );
        let Era::Modern(r) = classify(&h, call.clone()) else {
            panic!("a valid call")
        };
        let written = r.legacy_message("mb-1", None);
        let after = legacy_request(call.to_string().as_bytes(), "mb-1", None).unwrap();
        let parsed = |b: &[u8]| serde_json::from_slice::<Value>(b).unwrap();
        assert_eq!(parsed(&written.raw), parsed(&after));
        assert_eq!(
            parsed(&written.raw),
            json!({"jsonrpc": "2.0", "id": "mb-1", "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"m": "x"}}})
        );
        assert_eq!(written.target.as_deref(), Some("echo"));
        // With a progress token, the broker's replaces the client's.
        let mut call = call;
        call["params"]["_meta"]["progressToken"] = json!(5);
        let Era::Modern(r) = classify(&h, call) else {
            panic!("a valid call")
        };
        let m = r.legacy_message("mb-2", Some("mb-2-progress"));
        assert_eq!(
            parsed(&m.raw)["params"]["_meta"],
            json!({"progressToken": "mb-2-progress"})
        );
        assert_eq!(m.progress_token.as_deref(), Some("\"mb-2-progress\""));
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
