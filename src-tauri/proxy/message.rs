//! Just enough of JSON-RPC 2.0 to route messages: `id`, `method`, and a progress
//! token. Everything else passes through as the bytes that arrived.
//!
//! Also the error codes the broker itself answers with (JSON-RPC 2.0 §5.1, and the
//! implementation-defined range the MCP SDKs use).

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::activity::Reference;

/// A request id as it appeared on the wire (`1`, `"abc"`), used as a map key. The
/// upstream echoes ids verbatim, so the raw text is a faithful key.
pub type IdKey = Box<str>;

/// JSON-RPC 2.0 §5.1: the body is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0 §5.1: JSON, but not a valid Request object (or a repeated id).
pub const INVALID_REQUEST: i64 = -32600;
/// A transport-level refusal (no session, wrong headers), as the MCP SDKs answer it.
pub const TRANSPORT_ERROR: i64 = -32000;
/// The MCP SDKs' "session not found".
pub const SESSION_NOT_FOUND: i64 = -32001;
/// The MCP SDKs' "request timed out" (the same number, in answer to a request).
pub const REQUEST_TIMEOUT: i64 = -32001;
/// JSON-RPC 2.0 §5.1 "Internal error": the upstream failed, or could not be reached.
pub const UPSTREAM_ERROR: i64 = -32603;
/// The client cancelled the request (the code LSP uses; MCP names none).
pub const REQUEST_CANCELLED: i64 = -32800;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// What routing needs from `params`, read in the same pass as the envelope. Params
/// that are not an object (by-position, or garbage) simply carry none of it.
#[derive(Default)]
struct Params<'a> {
    /// `params._meta.progressToken`
    meta_progress_token: Option<&'a RawValue>,
    /// `params.progressToken`
    progress_token: Option<&'a RawValue>,
    /// `params.requestId`
    request_id: Option<&'a RawValue>,
    /// `params.name` (tools/call, prompts/get), for the activity log.
    name: Option<&'a RawValue>,
    /// `params.uri` (resources/read), for the activity log.
    uri: Option<&'a RawValue>,
}

#[derive(Deserialize)]
enum ParamsKey {
    #[serde(rename = "_meta")]
    Meta,
    #[serde(rename = "progressToken")]
    ProgressToken,
    #[serde(rename = "requestId")]
    RequestId,
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "uri")]
    Uri,
    #[serde(other)]
    Other,
}

/// What to read from a JSON object that may not be one (`params` may be by-position,
/// or garbage): [`AnyValue`] hands an object to [`ObjectReader::read`] and yields the
/// default for every other value, which it skips.
pub trait ObjectReader<'a> {
    type Value: Default;
    fn read<A: serde::de::MapAccess<'a>>(self, map: A) -> Result<Self::Value, A::Error>;
}

/// A visitor for any JSON value around an [`ObjectReader`].
pub struct AnyValue<R>(pub R);

impl<'a, R: ObjectReader<'a>> serde::de::Visitor<'a> for AnyValue<R> {
    type Value = R::Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'a>>(self, map: A) -> Result<R::Value, A::Error> {
        self.0.read(map)
    }
    fn visit_seq<A: serde::de::SeqAccess<'a>>(self, mut seq: A) -> Result<R::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(R::Value::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<R::Value, E> {
        Ok(R::Value::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<R::Value, E> {
        Ok(R::Value::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<R::Value, E> {
        Ok(R::Value::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<R::Value, E> {
        Ok(R::Value::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<R::Value, E> {
        Ok(R::Value::default())
    }
    fn visit_unit<E>(self) -> Result<R::Value, E> {
        Ok(R::Value::default())
    }
}

/// Reads `params` (and, with the same reader, `params._meta`, whose `progressToken`
/// lands in `progress_token`) whatever its shape: an object yields its wanted fields,
/// every other value is skipped and yields nothing.
struct ParamsReader;

impl<'a> ObjectReader<'a> for ParamsReader {
    type Value = Params<'a>;
    fn read<A: serde::de::MapAccess<'a>>(self, mut map: A) -> Result<Params<'a>, A::Error> {
        let mut out = Params::default();
        while let Some(key) = map.next_key::<ParamsKey>()? {
            match key {
                ParamsKey::Meta => {
                    out.meta_progress_token = map.next_value::<Params>()?.progress_token
                }
                ParamsKey::ProgressToken => out.progress_token = Some(map.next_value()?),
                ParamsKey::RequestId => out.request_id = Some(map.next_value()?),
                ParamsKey::Name => out.name = Some(map.next_value()?),
                ParamsKey::Uri => out.uri = Some(map.next_value()?),
                ParamsKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Params<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p: Params<'de> = d.deserialize_any(AnyValue(ParamsReader))?;
        Ok(p)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Request { id: IdKey, method: String },
    Notification { method: String },
    Response { id: IdKey },
}

/// One JSON-RPC message: its bytes, untouched, and what routing needs.
#[derive(Debug, Clone)]
pub struct Message {
    pub raw: Bytes,
    pub kind: Kind,
    /// `params._meta.progressToken` of a request, or `params.progressToken` of a
    /// progress notification.
    pub progress_token: Option<Box<str>>,
    /// `params.requestId` of `notifications/cancelled`.
    pub cancelled_id: Option<IdKey>,
    /// What a request acts on, for the activity log: `params.name` of a tools/call or a
    /// prompts/get, `params.uri` of a resources/read (other methods: none).
    pub target: Option<Box<str>>,
    /// `error.code` of an error response.
    pub error_code: Option<i64>,
    /// `jsonrpc` is exactly `"2.0"` (JSON-RPC 2.0 §4: it "MUST be exactly "2.0""). The
    /// broker refuses client messages without it and tolerates upstreams that are sloppy.
    pub jsonrpc_ok: bool,
}

impl Message {
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            Kind::Request { method, .. } | Kind::Notification { method } => Some(method),
            Kind::Response { .. } => None,
        }
    }
    pub fn is_request(&self) -> bool {
        matches!(self.kind, Kind::Request { .. })
    }
    /// A request the broker wrote itself, whose parts it already knows (no parse):
    /// `id`, `progress_token` and `target` as [`parse_one`] would have read them.
    pub fn request(
        raw: Bytes,
        id: IdKey,
        method: &str,
        progress_token: Option<Box<str>>,
        target: Option<Box<str>>,
    ) -> Message {
        Message {
            raw,
            kind: Kind::Request {
                id,
                method: method.to_owned(),
            },
            progress_token,
            cancelled_id: None,
            target,
            error_code: None,
            jsonrpc_ok: true,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all (JSON-RPC -32700).
    Json,
    /// JSON, but not a JSON-RPC message (-32600).
    NotJsonRpc,
}

/// The members of a JSON object in their order, each value as the text that arrived:
/// enough to check a few of them and copy the rest through untouched, without building
/// a tree.
#[derive(Debug, Default)]
pub struct Members<'a>(pub Vec<(std::borrow::Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    /// The members of `raw` if it is an object.
    pub fn of(raw: &'a RawValue) -> Option<Members<'a>> {
        raw.get()
            .starts_with('{')
            .then(|| serde_json::from_str(raw.get()).ok())
            .flatten()
    }
    /// The last member named `key` (as a parser building a map would keep it).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
    /// The member `key` if it is a string.
    pub fn str(&self, key: &str) -> Option<String> {
        self.get(key)
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'a> serde::de::Visitor<'a> for Visitor {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'a>>(
                self,
                mut map: A,
            ) -> Result<Members<'a>, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(k) = map.next_key::<std::borrow::Cow<'a, str>>()? {
                    out.push((k, map.next_value::<&'a RawValue>()?));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Writes `"key":value` pairs as the members of an object being written to `out`.
pub fn write_member(out: &mut Vec<u8>, first: &mut bool, key: &str, value: &[u8]) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    out.extend_from_slice(value);
}

/// Parses one message from `raw` (a JSON object).
pub fn parse_one(raw: Bytes) -> Result<Message, ParseError> {
    let env: Envelope = serde_json::from_slice(&raw).map_err(|e| {
        if e.is_data() {
            ParseError::NotJsonRpc
        } else {
            ParseError::Json
        }
    })?;
    let id = env.id.map(|r| Box::<str>::from(r.get()));
    let kind = match (env.method, id) {
        (Some(m), Some(id)) => Kind::Request {
            id,
            method: m.into_owned(),
        },
        (Some(m), None) => Kind::Notification {
            method: m.into_owned(),
        },
        (None, Some(id)) if env.result.is_some() || env.error.is_some() => Kind::Response { id },
        // An error response to an unparseable request has `id: null`.
        (None, None) if env.error.is_some() => Kind::Response { id: "null".into() },
        _ => return Err(ParseError::NotJsonRpc),
    };
    let p = env.params.unwrap_or_default();
    let progress_token = match &kind {
        Kind::Request { .. } => p.meta_progress_token,
        _ => p.progress_token,
    }
    .map(|r| Box::<str>::from(r.get()));
    let cancelled_id = p.request_id.map(|r| Box::<str>::from(r.get()));
    let jsonrpc_ok = env.jsonrpc.is_some_and(|v| v.get() == "\"2.0\"");
    let target = match &kind {
        Kind::Request { method, .. } => match method.as_str() {
            "tools/call" | "prompts/get" => p.name,
            "resources/read" => p.uri,
            _ => None,
        }
        .and_then(|r| serde_json::from_str::<String>(r.get()).ok())
        .map(Box::from),
        _ => None,
    };
    let error_code = match (&kind, env.error) {
        (Kind::Response { .. }, Some(e)) => error_code(e),
        _ => None,
    };
    Ok(Message {
        raw,
        kind,
        progress_token,
        cancelled_id,
        target,
        error_code,
        jsonrpc_ok,
    })
}

/// `code` of a JSON-RPC error object; error responses are rare, so a second small parse.
fn error_code(e: &RawValue) -> Option<i64> {
    #[derive(Deserialize)]
    struct ErrorObject {
        code: Option<i64>,
    }
    serde_json::from_str::<ErrorObject>(e.get()).ok()?.code
}

/// Parses a POST body: one message, or a batch (JSON array, protocol 2025-03-26).
pub fn parse_body(body: &Bytes) -> Result<Vec<Message>, ParseError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        Some(b'{') => Ok(vec![parse_one(body.clone())?]),
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_slice(body).map_err(|_| ParseError::Json)?;
            if items.is_empty() {
                return Err(ParseError::NotJsonRpc);
            }
            items
                .into_iter()
                .map(|r| parse_one(Bytes::copy_from_slice(r.get().as_bytes())))
                .collect()
        }
        Some(_) => {
            // Valid JSON that is not an object is a JSON-RPC "Invalid Request".
            match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => Err(ParseError::NotJsonRpc),
                Err(_) => Err(ParseError::Json),
            }
        }
        None => Err(ParseError::Json),
    }
}

/// A JSON-RPC error response the broker itself produces, for `id` (raw JSON text, or
/// `null`). Its `data.reference` is the id the log and the activity log record it under.
pub fn error_response(id: Option<&str>, code: i64, message: &str, reference: &Reference) -> Bytes {
    let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":{msg},"data":{{"reference":"{reference}"}}}}}}"#,
        id.unwrap_or("null")
    ))
}

/// `notifications/cancelled` for a request the broker gave up on (MCP "Cancellation"):
/// the upstream may stop working on it, and must not answer it.
pub fn cancelled_notification(id: &str, reason: &str) -> Bytes {
    let reason = serde_json::to_string(reason).unwrap_or_else(|_| "\"\"".into());
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":{reason}}}}}"#
    ))
}

/// JSON forbids raw control characters inside strings, so a raw CR or LF byte can only
/// be insignificant whitespace; replacing it keeps one message on one line (the stdio
/// transport's framing) without re-serialising anything.
pub fn to_single_line(raw: &Bytes) -> Bytes {
    if !raw.iter().any(|b| *b == b'\n' || *b == b'\r') {
        return raw.clone();
    }
    Bytes::from(
        raw.iter()
            .map(|b| if *b == b'\n' || *b == b'\r' { b' ' } else { *b })
            .collect::<Vec<u8>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Message {
        parse_one(Bytes::from(s.to_owned())).unwrap()
    }

    #[test]
    fn kinds() {
        assert_eq!(
            p(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).kind,
            Kind::Request {
                id: "1".into(),
                method: "tools/list".into()
            }
        );
        assert_eq!(
            p(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).kind,
            Kind::Response { id: "\"a\"".into() }
        );
        assert_eq!(
            p(r#"{"jsonrpc":"2.0","method":"x/unknown"}"#).kind,
            Kind::Notification {
                method: "x/unknown".into()
            }
        );
        assert!(parse_one(Bytes::from_static(b"{\"jsonrpc\":\"2.0\"}")).is_err());
        assert_eq!(
            parse_one(Bytes::from_static(b"{nope")).unwrap_err(),
            ParseError::Json
        );
    }

    #[test]
    fn targets_and_error_codes_for_the_activity_log() {
        let t = p(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"name":"no"},"name":"get\"x"}}"#,
        );
        assert_eq!(t.target.as_deref(), Some("get\"x"));
        let r =
            p(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#);
        assert_eq!(r.target.as_deref(), Some("file:///a"));
        let l = p(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"x"}}"#);
        assert_eq!(l.target, None);
        let e = p(r#"{"jsonrpc":"2.0","id":1,"error":{"message":"m","code":-32602}}"#);
        assert_eq!(e.error_code, Some(-32602));
        assert_eq!(
            p(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).error_code,
            None
        );
        let mine = p(std::str::from_utf8(&error_response(
            Some("3"),
            -32001,
            "late",
            &Reference::mint(),
        ))
        .unwrap());
        assert_eq!(mine.error_code, Some(-32001));
    }

    #[test]
    fn progress_tokens_and_cancel_ids() {
        let r = p(
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":"t1"}}}"#,
        );
        assert_eq!(r.progress_token.as_deref(), Some("\"t1\""));
        let n = p(
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t1","progress":1}}"#,
        );
        assert_eq!(n.progress_token.as_deref(), Some("\"t1\""));
        let c =
            p(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}"#);
        assert_eq!(c.cancelled_id.as_deref(), Some("2"));
    }

    #[test]
    fn params_of_any_shape_pass_through() {
        for params in [
            r#"[1,{"progressToken":"t"}]"#,
            r#""text""#,
            "null",
            "3.5",
            r#"{"_meta":[1,2],"x":{"progressToken":"deep"}}"#,
            r#"{"_meta":"m","requestId":{"nested":[1]}}"#,
        ] {
            let raw = format!(r#"{{"jsonrpc":"2.0","id":7,"method":"x/y","params":{params}}}"#);
            let m = p(&raw);
            assert_eq!(m.method(), Some("x/y"), "{params}");
            assert_eq!(m.progress_token, None, "{params}");
            assert_eq!(&m.raw[..], raw.as_bytes());
        }
        let c = p(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"reason":"x","requestId":"a\"b"}}"#,
        );
        assert_eq!(c.cancelled_id.as_deref(), Some(r#""a\"b""#));
        let r = p(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"x":[{}],"progressToken":42},"name":"n"}}"#,
        );
        assert_eq!(r.progress_token.as_deref(), Some("42"));
        // Broken JSON inside params is still a parse error.
        assert_eq!(
            parse_one(Bytes::from_static(
                b"{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":[1,}"
            ))
            .unwrap_err(),
            ParseError::Json
        );
    }

    #[test]
    fn jsonrpc_must_be_exactly_2_0() {
        for (raw, ok) in [
            (r#"{"jsonrpc":"2.0","id":1,"method":"a"}"#, true),
            (r#"{"id":1,"method":"a","jsonrpc":"2.0"}"#, true),
            (r#"{"jsonrpc":"1.0","id":1,"method":"a"}"#, false),
            (r#"{"jsonrpc":"2.0 ","id":1,"method":"a"}"#, false),
            (r#"{"id":1,"method":"a"}"#, false),
            (r#"{"jsonrpc":null,"id":1,"method":"a"}"#, false),
            (r#"{"jsonrpc":2.0,"id":1,"method":"a"}"#, false),
        ] {
            assert_eq!(p(raw).jsonrpc_ok, ok, "{raw}");
        }
    }

    #[test]
    fn cancellation_names_the_request() {
        let m = p(std::str::from_utf8(&cancelled_notification("\"a\"", "timed \"out\"")).unwrap());
        assert_eq!(m.method(), Some("notifications/cancelled"));
        assert_eq!(m.cancelled_id.as_deref(), Some("\"a\""));
        assert!(m.jsonrpc_ok);
    }

    #[test]
    fn raw_bytes_are_kept() {
        let s = r#"{ "jsonrpc" : "2.0", "id" : 1, "method" : "a", "params": {"x": 1.50} }"#;
        assert_eq!(&p(s).raw[..], s.as_bytes());
    }

    #[test]
    fn batches_and_garbage() {
        let b = Bytes::from_static(
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#,
        );
        assert_eq!(parse_body(&b).unwrap().len(), 2);
        assert_eq!(
            parse_body(&Bytes::from_static(b"[]")).unwrap_err(),
            ParseError::NotJsonRpc
        );
        assert_eq!(
            parse_body(&Bytes::from_static(b"42")).unwrap_err(),
            ParseError::NotJsonRpc
        );
        assert_eq!(
            parse_body(&Bytes::from_static(b"")).unwrap_err(),
            ParseError::Json
        );
    }

    #[test]
    fn single_line() {
        let raw = Bytes::from_static(b"{\"a\":\n \"b\\nc\"\r\n}");
        assert_eq!(&to_single_line(&raw)[..], b"{\"a\":  \"b\\nc\"  }");
    }
}
