//! Streamable HTTP, server side (MCP transport spec 2025-06-18 / 2025-11-25): POST
//! answered as JSON or SSE, GET for the standalone stream (or to resume one with
//! `Last-Event-ID`), DELETE to end the session. Called by `http::mcp` once the bearer
//! token checked out.
//!
//! A POST with a single request is answered as plain JSON when the upstream's first word
//! about it is the response itself; as soon as anything else comes first (progress, a
//! sampling request) the answer becomes an SSE stream, so nothing is held back.

// Early returns carry the finished response; the error path is cold.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::message::{
    INVALID_REQUEST, Kind, Message, PARSE_ERROR, ParseError, REQUEST_CANCELLED, SESSION_NOT_FOUND,
    TRANSPORT_ERROR, UPSTREAM_ERROR, error_response, parse_body,
};
use super::session::{EndReason, PostStream, Session, SseItem};
use super::tool_wait::Gated;
use super::{Relay, Upstreams};
use crate::activity::{ErrorNote, Reference};
use crate::oauth::bearer::Caller;

const SESSION_HEADER: &str = "mcp-session-id";

/// A JSON-RPC error the broker itself answers with: its reference goes in `error.data`,
/// to the log, and (through the [`ErrorNote`], which `http::mcp` attributes to the
/// grant) to the activity log.
fn jsonrpc_error(status: StatusCode, id: Option<&str>, code: i64, message: &str) -> Response {
    let reference = Reference::mint();
    tracing::info!(%reference, status = status.as_u16(), code, "{message}");
    let mut res = (status, error_response(id, code, message, &reference)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.extensions_mut().insert(ErrorNote {
        reference,
        status: status.as_u16(),
        summary: message.into(),
        grant: None,
        upstream: None,
    });
    res
}

struct Accept {
    json: bool,
    sse: bool,
}

fn accept(headers: &HeaderMap) -> Accept {
    let Some(v) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Accept {
            json: true,
            sse: true,
        };
    };
    let any = v.contains("*/*");
    Accept {
        json: any || v.contains("application/json"),
        sse: any || v.contains("text/event-stream"),
    }
}

/// `MCP-Protocol-Version` must look like a protocol revision (`YYYY-MM-DD`); which
/// revisions are supported is the upstream's business.
fn protocol_version(headers: &HeaderMap) -> Result<Option<&str>, Response> {
    let Some(v) = headers.get("mcp-protocol-version") else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("");
    let b = s.as_bytes();
    let ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if ok {
        Ok(Some(s))
    } else {
        Err(jsonrpc_error(
            StatusCode::BAD_REQUEST,
            None,
            INVALID_REQUEST,
            "Bad Request: unsupported MCP-Protocol-Version",
        ))
    }
}

fn session_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok())
}

fn find_session(
    up: &Upstreams,
    headers: &HeaderMap,
    upstream: &str,
    caller: &Caller,
) -> Result<Arc<Relay>, Response> {
    let Some(sid) = session_header(headers) else {
        // Without a 2025-11-25 session, GET and DELETE are 2026-07-28 requests, which have
        // neither (streamable-http §Earlier Streamable HTTP Revisions).
        let mut res = jsonrpc_error(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            TRANSPORT_ERROR,
            "Method Not Allowed: GET and DELETE need an Mcp-Session-Id (2025-11-25); 2026-07-28 uses POST only",
        );
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Err(res);
    };
    // A session belongs to the grant that opened it; another grant's token must not be
    // able to use it (nor learn that it exists).
    match up.get(sid, upstream) {
        Some(r) if r.session.grant == caller.grant_id => Ok(r),
        _ => Err(jsonrpc_error(
            StatusCode::NOT_FOUND,
            None,
            SESSION_NOT_FOUND,
            "Session not found",
        )),
    }
}

pub async fn post(
    up: &Upstreams,
    upstream: &str,
    caller: &Caller,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(res) = super::modern::post(up, upstream, caller, headers, &body).await {
        return res;
    }
    let (acc, version) = match negotiate(headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let msgs = match parse(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (relay, new_session) =
        match session_for(up, upstream, caller, headers, &msgs, first_request(&msgs)).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let msgs = match super::tool_wait::gate(up, msgs, caller.grant_id, upstream, acc.sse).await {
        Gated::Pass(msgs) => msgs,
        Gated::Answered(refused) => return refused,
        // A call waits for a person: the answer is a stream from now on. (Never a new
        // session: that is a lone `initialize`.)
        Gated::Waiting(w) => {
            let version = version.map(str::to_owned);
            return w.respond(move |msgs| async move {
                relay_post(&relay, &msgs, &acc, version.as_deref(), false).await
            });
        }
    };
    let mut res = relay_post(&relay, &msgs, &acc, version, new_session).await;
    let session = &relay.session;
    if new_session {
        if session.is_closed() {
            up.end(&session.id, EndReason::Closed).await;
        } else if let Ok(v) = HeaderValue::from_str(&session.id) {
            res.headers_mut().insert(SESSION_HEADER, v);
        }
    }
    res
}

fn first_request(msgs: &[Message]) -> Option<&str> {
    msgs.iter().find_map(|m| match &m.kind {
        Kind::Request { id, .. } => Some(&**id),
        _ => None,
    })
}

/// The POST's messages, past the tool gate, to the upstream; the answer.
async fn relay_post(
    relay: &Relay,
    msgs: &[Message],
    acc: &Accept,
    version: Option<&str>,
    new_session: bool,
) -> Response {
    let first_id = first_request(msgs);
    let now = Instant::now();
    let session = &relay.session;
    session.touch(now);
    if let Some(v) = version {
        relay.link.set_protocol_version(v);
    } else if new_session {
        // Remember what the client asked for, so the remote upstream sees it too.
        if let Some(v) = init_protocol_version(&msgs[0]) {
            relay.link.set_protocol_version(&v);
        }
    }
    for m in msgs {
        if m.method() == Some("notifications/cancelled")
            && let Some(id) = &m.cancelled_id
            && session.cancel(id, now)
        {
            // The client's own notification goes upstream with the rest.
            relay.link.cancel(id, None);
        }
    }
    forward(relay, msgs, acc, new_session, first_id, now).await
}

/// Content-Type, Accept and `MCP-Protocol-Version`, checked before the body is read.
fn negotiate(headers: &HeaderMap) -> Result<(Accept, Option<&str>), Response> {
    let ct_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !ct_ok {
        return Err(jsonrpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            TRANSPORT_ERROR,
            "Content-Type must be application/json",
        ));
    }
    let acc = accept(headers);
    if !acc.json && !acc.sse {
        return Err(jsonrpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            TRANSPORT_ERROR,
            "Accept must include application/json or text/event-stream",
        ));
    }
    Ok((acc, protocol_version(headers)?))
}

/// The POST's messages; anything that is not JSON-RPC 2.0 is answered here, never
/// relayed (an upstream might take a `"jsonrpc": "1.0"` message for JSON-RPC 1.0).
fn parse(body: &Bytes) -> Result<Vec<Message>, Response> {
    let msgs = match parse_body(body) {
        Ok(m) => m,
        Err(ParseError::Json) => {
            return Err(jsonrpc_error(
                StatusCode::BAD_REQUEST,
                None,
                PARSE_ERROR,
                "Parse error",
            ));
        }
        Err(ParseError::NotJsonRpc) => {
            return Err(jsonrpc_error(
                StatusCode::BAD_REQUEST,
                None,
                INVALID_REQUEST,
                "Invalid Request",
            ));
        }
    };
    if let Some(bad) = msgs.iter().find(|m| !m.jsonrpc_ok) {
        let id = match &bad.kind {
            Kind::Request { id, .. } if msgs.len() == 1 => Some(&**id),
            _ => None,
        };
        return Err(jsonrpc_error(
            StatusCode::BAD_REQUEST,
            id,
            INVALID_REQUEST,
            "Invalid Request: \"jsonrpc\" must be exactly \"2.0\"",
        ));
    }
    Ok(msgs)
}

/// The session this POST belongs to: a new one for a lone `initialize`, else the one
/// its `Mcp-Session-Id` names. Whether it is new.
async fn session_for(
    up: &Upstreams,
    upstream: &str,
    caller: &Caller,
    headers: &HeaderMap,
    msgs: &[Message],
    first_id: Option<&str>,
) -> Result<(Arc<Relay>, bool), Response> {
    let is_init = msgs.iter().any(|m| m.method() == Some("initialize"));
    match session_header(headers) {
        None if is_init && msgs.len() == 1 => match up
            .create(upstream, caller.grant_id, caller.account.as_deref())
            .await
        {
            Ok(r) => Ok((r, true)),
            Err(why) => {
                tracing::warn!(upstream, "cannot start a session: {why}");
                Err(jsonrpc_error(
                    StatusCode::OK,
                    first_id,
                    UPSTREAM_ERROR,
                    &why,
                ))
            }
        },
        // Includes the 2026-07-28 `server/discover` probe: an error the SDKs take as
        // "fall back to initialize" (acceptance README item 17).
        None => Err(jsonrpc_error(
            StatusCode::BAD_REQUEST,
            first_id,
            TRANSPORT_ERROR,
            "Bad Request: No valid session ID provided",
        )),
        Some(_) => match find_session(up, headers, upstream, caller)? {
            _ if is_init => Err(jsonrpc_error(
                StatusCode::BAD_REQUEST,
                first_id,
                INVALID_REQUEST,
                "Session already initialized",
            )),
            r => Ok((r, false)),
        },
    }
}

/// Sends the messages upstream and answers the POST: 202 without requests; else plain
/// JSON or an SSE stream, whichever the client accepts and the upstream's first word
/// allows.
async fn forward(
    relay: &Relay,
    msgs: &[Message],
    acc: &Accept,
    new_session: bool,
    first_id: Option<&str>,
    now: Instant,
) -> Response {
    let session = &relay.session;
    let requests = msgs.iter().filter(|m| m.is_request()).count();
    if requests == 0 {
        for m in msgs {
            relay.link.send(m).await;
        }
        return StatusCode::ACCEPTED.into_response();
    }
    let PostStream {
        id: sid,
        mut rx,
        refused,
    } = session.open_post_stream(msgs, now);
    for (i, m) in msgs.iter().enumerate() {
        if !refused.contains(&i) {
            relay.link.send(m).await;
        }
    }
    if refused.len() == requests {
        // Nothing that could be answered went upstream: the refusals are the answer.
        session.drop_stream(sid);
        let mut errors = Vec::with_capacity(refused.len());
        while let Ok(item) = rx.try_recv() {
            errors.push(item.data);
        }
        let mut res = json_body(if msgs.len() == 1 {
            errors.pop().unwrap_or_default()
        } else {
            json_array(&errors)
        });
        *res.status_mut() = StatusCode::BAD_REQUEST;
        return res;
    }
    let single = requests == 1 && msgs.len() == 1;
    if !acc.json || (acc.sse && !single) {
        return sse(None, rx);
    }
    // Until the answer is out, a client that goes away abandons its requests: an answer
    // meant for a plain JSON body cannot be resumed.
    let mut waiting = Abandon {
        relay,
        msgs,
        refused: &refused,
        new_session,
        armed: true,
    };
    let res = if single {
        // Wait for the first thing the upstream says about this request.
        match rx.recv().await {
            Some(item) if item.response => {
                session.drop_stream(sid);
                let mut res = json_body(item.data);
                // The upstream's own refusal keeps its status (remote.rs `relayed_status`).
                if let Some(status) = item.status.and_then(|s| StatusCode::from_u16(s).ok()) {
                    *res.status_mut() = status;
                }
                res
            }
            Some(item) if acc.sse => sse(Some(item), rx),
            Some(_) => json_only(session, sid, rx).await,
            None => unanswered(session, first_id),
        }
    } else {
        json_only(session, sid, rx).await
    };
    waiting.armed = false;
    res
}

/// Armed while a POST waits to answer as plain JSON. If the client goes away first (the
/// handler is dropped), its requests are cancelled: the upstream is told and stops, and
/// a session whose id the client never learnt ends.
struct Abandon<'a> {
    relay: &'a Relay,
    msgs: &'a [Message],
    refused: &'a [usize],
    new_session: bool,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let now = Instant::now();
        for (i, m) in self.msgs.iter().enumerate() {
            if let Kind::Request { id, .. } = &m.kind
                && !self.refused.contains(&i)
                && self.relay.session.cancel(id, now)
            {
                self.relay.link.cancel(id, Some("the client went away"));
            }
        }
        if self.new_session {
            // Housekeeping stops its upstream within a second.
            self.relay.session.end(&EndReason::Closed);
        }
    }
}

/// A client that accepts only JSON: wait for the responses, drop the rest.
async fn json_only(
    session: &Session,
    sid: u64,
    mut rx: mpsc::UnboundedReceiver<SseItem>,
) -> Response {
    let mut responses = Vec::new();
    while let Some(item) = rx.recv().await {
        if item.response {
            responses.push(item.data);
        }
    }
    session.drop_stream(sid);
    match responses.len() {
        0 => unanswered(session, None),
        1 => json_body(responses.pop().unwrap_or_default()),
        _ => json_body(json_array(&responses)),
    }
}

pub(super) fn json_array(items: &[Bytes]) -> Bytes {
    let mut v = Vec::from(&b"["[..]);
    for (i, r) in items.iter().enumerate() {
        if i > 0 {
            v.push(b',');
        }
        v.extend_from_slice(r);
    }
    v.push(b']');
    Bytes::from(v)
}

/// The stream closed without an answer: the session ended, or the client cancelled the
/// request in another POST (MCP "Cancellation": no response follows).
fn unanswered(session: &Session, id: Option<&str>) -> Response {
    if session.is_closed() {
        jsonrpc_error(
            StatusCode::NOT_FOUND,
            None,
            SESSION_NOT_FOUND,
            "Session not found (it was closed)",
        )
    } else {
        jsonrpc_error(
            StatusCode::OK,
            id,
            REQUEST_CANCELLED,
            "the request was cancelled",
        )
    }
}

/// The body could not be read: above `[broker] max_request_bytes` (413), or broken.
pub fn unreadable_body(status: StatusCode) -> Response {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        jsonrpc_error(
            status,
            None,
            INVALID_REQUEST,
            "the request body is larger than the broker accepts ([broker] max_request_bytes)",
        )
    } else {
        jsonrpc_error(
            status,
            None,
            PARSE_ERROR,
            "the request body could not be read",
        )
    }
}

fn json_body(data: Bytes) -> Response {
    json_response(StatusCode::OK, data)
}

/// A JSON body with `status`, built without parsing any header (every call's answer).
pub(super) fn json_response(status: StatusCode, data: Bytes) -> Response {
    let mut res = Response::new(Body::from(data));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn sse(first: Option<SseItem>, rx: mpsc::UnboundedReceiver<SseItem>) -> Response {
    let stream = futures_util::stream::iter(first)
        .chain(UnboundedReceiverStream::new(rx))
        .map(|item| {
            Ok::<_, Infallible>(
                Event::default()
                    .id(format!("{}-{}", item.stream, item.seq))
                    .data(String::from_utf8_lossy(&item.data)),
            )
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn init_protocol_version(m: &Message) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Init {
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "protocolVersion")]
        protocol_version: Option<String>,
    }
    serde_json::from_slice::<Init>(&m.raw)
        .ok()?
        .params?
        .protocol_version
}

pub async fn get(up: &Upstreams, upstream: &str, caller: &Caller, headers: &HeaderMap) -> Response {
    if !accept(headers).sse || headers.get(header::ACCEPT).is_none() {
        return jsonrpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            TRANSPORT_ERROR,
            "Accept must include text/event-stream",
        );
    }
    let relay = match find_session(up, headers, upstream, caller) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let session = &relay.session;
    session.touch(Instant::now());
    let rx = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(last) => {
            let parsed = last
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
            match parsed.and_then(|(sid, seq)| session.resume(sid, seq)) {
                Some(rx) => rx,
                None => {
                    return jsonrpc_error(
                        StatusCode::NOT_FOUND,
                        None,
                        TRANSPORT_ERROR,
                        "cannot resume that stream",
                    );
                }
            }
        }
        None => match session.attach_standalone() {
            Some(rx) => rx,
            None => {
                return jsonrpc_error(
                    StatusCode::CONFLICT,
                    None,
                    TRANSPORT_ERROR,
                    "Conflict: only one standalone SSE stream is allowed per session",
                );
            }
        },
    };
    sse(None, rx)
}

pub async fn delete(
    up: &Upstreams,
    upstream: &str,
    caller: &Caller,
    headers: &HeaderMap,
) -> Response {
    let relay = match find_session(up, headers, upstream, caller) {
        Ok(r) => r,
        Err(r) => return r,
    };
    up.end(&relay.session.id, EndReason::Closed).await;
    StatusCode::OK.into_response()
}
