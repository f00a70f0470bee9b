//! Just enough of JSON-RPC 2.0 to route messages: `id`, `method`, and a progress
//! token. Everything else passes through as the bytes that arrived.

use bytes::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

/// A request id as it appeared on the wire (`1`, `"abc"`), used as a map key. The
/// upstream echoes ids verbatim, so the raw text is a faithful key.
pub type IdKey = Box<str>;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<Meta<'a>>,
    #[serde(rename = "progressToken", borrow, default)]
    progress_token: Option<&'a RawValue>,
    #[serde(rename = "requestId", borrow, default)]
    request_id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(rename = "progressToken", borrow, default)]
    progress_token: Option<&'a RawValue>,
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
}

#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not JSON at all (JSON-RPC -32700).
    Json,
    /// JSON, but not a JSON-RPC message (-32600).
    NotJsonRpc,
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
    let mut progress_token = None;
    let mut cancelled_id = None;
    if let Some(p) = env.params
        && let Ok(p) = serde_json::from_str::<Params>(p.get())
    {
        progress_token = match &kind {
            Kind::Request { .. } => p.meta.and_then(|m| m.progress_token),
            _ => p.progress_token,
        }
        .map(|r| Box::<str>::from(r.get()));
        cancelled_id = p.request_id.map(|r| Box::<str>::from(r.get()));
    }
    Ok(Message {
        raw,
        kind,
        progress_token,
        cancelled_id,
    })
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

/// A JSON-RPC error response for `id` (raw JSON text, or `null`).
pub fn error_response(id: Option<&str>, code: i64, message: &str) -> Bytes {
    let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":{code},"message":{msg}}}}}"#,
        id.unwrap_or("null")
    ))
}

/// `notifications/cancelled` for a request the broker gave up on.
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
