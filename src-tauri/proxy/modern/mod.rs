//! MCP 2026-07-28 on `/mcp/NAME`, next to 2025-11-25 on the same URL (basic/versioning
//! §Backward Compatibility: a dual-era server serves both eras concurrently). Each POST
//! is classified ([`ladder`]); modern requests are validated and served here, statelessly
//! for the client, over a warm legacy session per grant and upstream ([`warm`]);
//! a modern remote upstream gets them passed through ([`passthrough`]); everything else
//! returns to `streamable` untouched.
//!
//! One file per concern: [`ladder`] (classification, validation), [`warm`] (the shared
//! legacy session), [`call`] (relaying a request, progress, cancellation, parking for
//! `input_required`), [`request_state`] (the sealed retry handle), [`discover`],
//! [`listen`], [`passthrough`] (modern upstreams), [`passed_listen`] (the broker's tool
//! list changes on a listen passed through).

mod call;
mod discover;
pub mod ladder;
mod listen;
mod passed_listen;
mod passthrough;
mod request_state;
mod warm;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde_json::json;

use super::Upstreams;
use super::streamable::json_response;
use super::tool_wait::Gated;
use crate::oauth::bearer::Caller;
use call::{Call, Parking};
use ladder::{Era, ModernRequest, Rejection};

/// The modern face's state inside [`Upstreams`].
pub struct Front {
    warm: warm::WarmSessions,
    parking: Arc<Parking>,
    /// Upstream eras found by probes (`proxy::era_bridge`).
    pub(in crate::proxy) eras: Arc<crate::proxy::era_bridge::Eras>,
    /// Listens passed through to modern upstreams, told of tool policy changes.
    pub(in crate::proxy) passed_listens: passed_listen::PassedListens,
}

impl Front {
    pub fn new(request_timeout: Duration) -> Front {
        Front {
            warm: warm::WarmSessions::default(),
            // A parked call waits for a person: as long as a request may take.
            parking: Parking::new(request_timeout),
            eras: Arc::default(),
            passed_listens: Default::default(),
        }
    }
}

/// Serves the POST if it is a 2026-07-28 one; `None` hands it to the legacy path.
pub async fn post(
    up: &Upstreams,
    upstream: &str,
    caller: &Caller,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    if !ladder::may_be_modern(headers, body) {
        return None;
    }
    match ladder::classify(headers, body) {
        Era::Legacy => None,
        Era::ModernNotification => Some(StatusCode::ACCEPTED.into_response()),
        Era::Reject(r) => Some(rejection(&r)),
        Era::Modern(req) => {
            // The grant's tool policy holds in this era too: a blocked, unknown or
            // suspended tool never reaches the upstream, and an Ask one waits on a stream
            // that carries progress (`tool_wait`).
            // A call the grant's cached policy relays needs nothing more from the gate.
            let cleared = |g: &dyn super::tool_gate::ToolGate| {
                req.name().is_some_and(|t| g.passes_now(caller.grant_id, t))
            };
            if req.method == "tools/call" && !up.gate().is_none_or(cleared) {
                let sse_ok = accepts_sse(headers);
                let m = req.client_message();
                match super::tool_wait::gate(up, vec![m], caller.grant_id, upstream, sse_ok).await {
                    Gated::Pass(_) => {}
                    Gated::Answered(refused) => return Some(refused),
                    Gated::Waiting(w) => {
                        let up = up.me.upgrade()?;
                        let (upstream, caller) = (upstream.to_owned(), caller.clone());
                        let (headers, body) = (headers.clone(), body.clone());
                        return Some(w.respond(move |_| async move {
                            relay(&up, &upstream, &caller, &headers, &body, req).await
                        }));
                    }
                }
            }
            Some(relay(up, upstream, caller, headers, body, req).await)
        }
    }
}

/// A modern request past the tool gate: passed through to a modern upstream, or served
/// over the warm legacy session.
async fn relay(
    up: &Upstreams,
    upstream: &str,
    caller: &Caller,
    headers: &HeaderMap,
    body: &Bytes,
    req: ModernRequest,
) -> Response {
    if let Some(url) = up.modern_remote(upstream).await {
        let res = up
            .pass_through(
                upstream,
                caller.account.as_deref(),
                &url,
                headers,
                &req.id,
                body,
            )
            .await;
        if req.method == "tools/list" {
            return super::tool_gate::screen_passed_list(
                up,
                caller.grant_id,
                upstream,
                &req.id,
                res,
            )
            .await;
        }
        if req.method == "subscriptions/listen" {
            let requested = req.param("notifications").unwrap_or(json!({}));
            return passed_listen::carry_policy_changes(
                up,
                caller.grant_id,
                &req.id,
                &requested,
                res,
            );
        }
        return res;
    }
    serve(up, upstream, caller, headers, req).await
}

async fn serve(
    up: &Upstreams,
    upstream: &str,
    caller: &Caller,
    headers: &HeaderMap,
    req: ModernRequest,
) -> Response {
    let front = &up.modern;
    let warm = match front
        .warm
        .get(up, upstream, caller.grant_id, caller.account.as_deref())
        .await
    {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(upstream, "cannot serve a 2026-07-28 request: {e}");
            // In-band, never 5xx: a probing client reads this as "fall back".
            let body = json!({"jsonrpc": "2.0", "id": req.id, "error": {"code": -32603, "message": e.to_string()}});
            return json_response(StatusCode::OK, Bytes::from(body.to_string()));
        }
    };
    match req.method.as_str() {
        "server/discover" => {
            let body = json!({"jsonrpc": "2.0", "id": req.id, "result": discover::discover_result(&warm.init)});
            json_response(StatusCode::OK, Bytes::from(body.to_string()))
        }
        "subscriptions/listen" => {
            let requested = req.param("notifications").unwrap_or(json!({}));
            sse(listen::listen(warm, req.id.clone(), &requested).await)
        }
        _ => {
            let call = match &req.request_state {
                Some(s) => {
                    match Call::resume(front.parking.clone(), caller.grant_id, upstream, &req, s)
                        .await
                    {
                        Ok(c) => c,
                        Err(r) => return rejection(&r),
                    }
                }
                None => Call::start(warm, front.parking.clone(), caller.grant_id, req).await,
            };
            answer(call, accepts_sse(headers)).await
        }
    }
}

/// Plain JSON when the first thing to say is the answer; else an SSE stream scoped to
/// this request (streamable-http §Sending Messages 6).
async fn answer(mut call: Call, sse_ok: bool) -> Response {
    let Some(first) = call.next().await else {
        return json_response(StatusCode::OK, Bytes::new());
    };
    if first.last {
        return json_response(first.status, first.data);
    }
    if !sse_ok {
        while let Some(o) = call.next().await {
            if o.last {
                return json_response(o.status, o.data);
            }
        }
        return json_response(StatusCode::OK, Bytes::new());
    }
    let rest =
        futures_util::stream::unfold(
            call,
            |mut c| async move { c.next().await.map(|o| (o.data, c)) },
        );
    sse(futures_util::stream::iter([first.data]).chain(rest))
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.contains("text/event-stream") || v.contains("*/*"))
}

fn rejection(r: &Rejection) -> Response {
    json_response(r.status, Bytes::from(r.body().to_string()))
}

/// No event ids: 2026-07-28 streams are not resumable (streamable-http §Receiving Messages).
fn sse(events: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    sse_events(events.map(|b| Event::default().data(String::from_utf8_lossy(&b))))
}

/// An event stream with keep-alives, unbuffered by proxies.
fn sse_events(events: impl Stream<Item = Event> + Send + 'static) -> Response {
    let stream = events.map(Ok::<_, Infallible>);
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}
