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

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::Upstreams;
use super::message::{Kind, Message, ParseError, error_response, parse_body};
use super::session::{EndReason, Session, SseItem};
use crate::oauth::bearer::Caller;

const SESSION_HEADER: &str = "mcp-session-id";

fn jsonrpc_error(status: StatusCode, id: Option<&str>, code: i64, message: &str) -> Response {
    let mut res = (status, error_response(id, code, message)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
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
fn protocol_version(headers: &HeaderMap) -> Result<Option<String>, Response> {
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
        Ok(Some(s.to_owned()))
    } else {
        Err(jsonrpc_error(
            StatusCode::BAD_REQUEST,
            None,
            -32600,
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
) -> Result<Arc<Session>, Response> {
    let Some(sid) = session_header(headers) else {
        return Err(jsonrpc_error(
            StatusCode::BAD_REQUEST,
            None,
            -32000,
            "Bad Request: Mcp-Session-Id header is required",
        ));
    };
    // A session belongs to the grant that opened it; another grant's token must not be
    // able to use it (nor learn that it exists).
    match up.get(sid, upstream) {
        Some(s) if s.grant == caller.grant_id => Ok(s),
        _ => Err(jsonrpc_error(
            StatusCode::NOT_FOUND,
            None,
            -32001,
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
    let ct_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !ct_ok {
        return jsonrpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            -32000,
            "Content-Type must be application/json",
        );
    }
    let acc = accept(headers);
    if !acc.json && !acc.sse {
        return jsonrpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            -32000,
            "Accept must include application/json or text/event-stream",
        );
    }
    let version = match protocol_version(headers) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let msgs = match parse_body(&body) {
        Ok(m) => m,
        Err(ParseError::Json) => {
            return jsonrpc_error(StatusCode::BAD_REQUEST, None, -32700, "Parse error");
        }
        Err(ParseError::NotJsonRpc) => {
            return jsonrpc_error(StatusCode::BAD_REQUEST, None, -32600, "Invalid Request");
        }
    };
    let first_id = msgs.iter().find_map(|m| match &m.kind {
        Kind::Request { id, .. } => Some(id.clone()),
        _ => None,
    });
    let is_init = msgs.iter().any(|m| m.method() == Some("initialize"));

    let (session, new_session) = match session_header(headers) {
        None if is_init && msgs.len() == 1 => match up.create(upstream, caller.grant_id).await {
            Ok(s) => (s, true),
            Err(why) => {
                tracing::warn!(upstream, "cannot start a session: {why}");
                return jsonrpc_error(StatusCode::OK, first_id.as_deref(), -32603, &why);
            }
        },
        // Includes the 2026-07-28 `server/discover` probe: an error the SDKs take as
        // "fall back to initialize" (acceptance README item 17).
        None => {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                first_id.as_deref(),
                -32000,
                "Bad Request: No valid session ID provided",
            );
        }
        Some(_) => match find_session(up, headers, upstream, caller) {
            Ok(s) if is_init => {
                drop(s);
                return jsonrpc_error(
                    StatusCode::BAD_REQUEST,
                    first_id.as_deref(),
                    -32600,
                    "Session already initialized",
                );
            }
            Ok(s) => (s, false),
            Err(r) => return r,
        },
    };
    session.touch();
    if let Some(v) = version {
        *session
            .protocol_version
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(v);
    } else if new_session {
        // Remember what the client asked for, so the remote upstream sees it too.
        if let Some(v) = init_protocol_version(&msgs[0]) {
            *session
                .protocol_version
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(v);
        }
    }
    for m in &msgs {
        if m.method() == Some("notifications/cancelled")
            && let Some(id) = &m.cancelled_id
        {
            session.cancel(id);
        }
    }

    let requests: Vec<&Message> = msgs.iter().filter(|m| m.is_request()).collect();
    let Some(link) = session.link.get() else {
        return jsonrpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            first_id.as_deref(),
            -32603,
            "session has no upstream",
        );
    };
    if requests.is_empty() {
        for m in &msgs {
            link.send(&session, m).await;
        }
        return StatusCode::ACCEPTED.into_response();
    }
    let (sid, mut rx) = match session.open_post_stream(&requests) {
        Ok(x) => x,
        Err(id) => {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                Some(&id),
                -32600,
                "a request with this id is already in flight",
            );
        }
    };
    for m in &msgs {
        link.send(&session, m).await;
    }

    let single = requests.len() == 1 && msgs.len() == 1;
    let mut res = if single && acc.json {
        // Wait for the first thing the upstream says about this request.
        match rx.recv().await {
            Some(item) if item.response => {
                session.drop_stream(sid);
                json_body(item.data)
            }
            Some(item) if acc.sse => sse(Some(item), rx),
            Some(_) => json_only(&session, sid, rx).await,
            None => session_gone(&session),
        }
    } else if acc.sse {
        sse(None, rx)
    } else {
        json_only(&session, sid, rx).await
    };
    if new_session {
        if session.is_closed() {
            up.end(&session.id, EndReason::Closed).await;
        } else if let Ok(v) = HeaderValue::from_str(&session.id) {
            res.headers_mut().insert(SESSION_HEADER, v);
        }
    }
    res
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
        0 => session_gone(session),
        1 => json_body(responses.pop().unwrap_or_default()),
        _ => {
            let mut v = Vec::from(&b"["[..]);
            for (i, r) in responses.iter().enumerate() {
                if i > 0 {
                    v.push(b',');
                }
                v.extend_from_slice(r);
            }
            v.push(b']');
            json_body(Bytes::from(v))
        }
    }
}

fn session_gone(_session: &Session) -> Response {
    jsonrpc_error(
        StatusCode::NOT_FOUND,
        None,
        -32001,
        "Session not found (it was closed)",
    )
}

fn json_body(data: Bytes) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(data))
        .unwrap_or_default()
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
            -32000,
            "Accept must include text/event-stream",
        );
    }
    let session = match find_session(up, headers, upstream, caller) {
        Ok(s) => s,
        Err(r) => return r,
    };
    session.touch();
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
                        -32000,
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
                    -32000,
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
    let session = match find_session(up, headers, upstream, caller) {
        Ok(s) => s,
        Err(r) => return r,
    };
    up.end(&session.id, EndReason::Closed).await;
    StatusCode::OK.into_response()
}
