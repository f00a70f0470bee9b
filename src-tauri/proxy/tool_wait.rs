//! A POST whose `tools/call` waits for a person (an "Ask each time" tool, issue 14 point
//! 3: "the call waits (progress keeps the client's request alive)"). Until the tool gate
//! says it asks a person (every call but an Ask one is decided without), nothing
//! changes: the caller relays or answers as before, without a timer or a task. When it
//! asks and the client accepts an event stream, the POST is answered at once with one:
//! every [`PROGRESS_EVERY`] it carries `notifications/progress` for each waiting request that
//! has a `_meta.progressToken` (MCP 2025-11-25 basic/utilities/progress; a client with
//! `resetTimeoutOnProgress`, as the TypeScript SDK offers, restarts its timeout on each)
//! and otherwise an SSE comment, so the stream never idles out. Once the gate has
//! decided, the refusal or the relayed call's own answer follows on the same stream: a
//! JSON answer as one event, an event stream as it comes. The same holds for a
//! 2026-07-28 request, whose progress goes on its own response stream
//! (basic/patterns/progress).
//!
//! The client going away ends the wait: the question is withdrawn (the approval page or
//! window then finds nothing to answer) and nothing reaches the upstream; once the call
//! is relayed, it cancels it as usual.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc};

use super::Upstreams;
use super::message::Message;
use crate::oauth::GrantId;

/// How often a waiting request hears from the broker: well below the shortest request
/// timeouts clients use (the SDKs default to 60 seconds).
pub const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// What the progress notifications say.
pub const WAITING: &str = "waiting for approval in mcp-broker";

type Check = Pin<Box<dyn Future<Output = (Vec<Message>, Result<(), Response>)> + Send>>;

/// The tool gate's verdict on a POST's messages.
pub enum Gated {
    /// Nothing refused: relay them.
    Pass(Vec<Message>),
    /// The broker answers (a refused call).
    Answered(Response),
    /// A person is asked; see [`Waiting::respond`].
    Waiting(Waiting),
}

pub struct Waiting {
    check: Check,
    /// The raw JSON of each waiting request's progress token.
    tokens: Vec<Box<str>>,
}

/// Screens the POST's `tools/call`s. `sse`: the client accepts an event stream; without
/// it a waiting call is waited for here, as before.
pub async fn gate(
    up: &Upstreams,
    msgs: Vec<Message>,
    grant: GrantId,
    upstream: &str,
    sse: bool,
) -> Gated {
    let Some(g) = up.gate() else {
        return Gated::Pass(msgs);
    };
    let mut calls = msgs.iter().filter(|m| m.method() == Some("tools/call"));
    // A call whose name the message carries and whose grant's policy is cached and
    // relays it costs no task, parse or allocation.
    if calls.all(|m| m.target.as_deref().is_some_and(|t| g.passes_now(grant, t))) {
        return Gated::Pass(msgs);
    }
    let Some(up) = up.me.upgrade() else {
        // Shutting down: nothing can be asked.
        return Gated::Pass(msgs);
    };
    let tokens = msgs
        .iter()
        .filter(|m| m.method() == Some("tools/call"))
        .filter_map(|m| m.progress_token.clone())
        .collect();
    let upstream = upstream.to_owned();
    let asking = Arc::new(Notify::new());
    let told = asking.clone();
    let mut check: Check = Box::pin(async move {
        let verdict = match up.gate() {
            Some(g) => {
                let activity = up.activity();
                super::tool_gate::screen_calls(g, &msgs, grant, &upstream, activity, Some(&told))
                    .await
            }
            None => Ok(()),
        };
        (msgs, verdict)
    });
    let decided = if sse {
        tokio::select! {
            biased;
            d = &mut check => d,
            () = asking.notified() => return Gated::Waiting(Waiting { check, tokens }),
        }
    } else {
        check.await
    };
    match decided {
        (msgs, Ok(())) => Gated::Pass(msgs),
        (_, Err(refused)) => Gated::Answered(refused),
    }
}

impl Waiting {
    /// Answers the POST with an event stream now; `relay` runs once the gate let the
    /// calls through, and its response follows on the stream.
    pub fn respond<F, Fut>(self, relay: F) -> Response
    where
        F: FnOnce(Vec<Message>) -> Fut + Send + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let Waiting { mut check, tokens } = self;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            let mut n: u64 = 0;
            let (msgs, verdict) = loop {
                tokio::select! {
                    decided = &mut check => break decided,
                    _ = tick.tick() => {
                        n += 1;
                        if tx.send(progress(&tokens, n)).await.is_err() {
                            return;
                        }
                    }
                    // The client went away: dropping `check` withdraws the question.
                    () = tx.closed() => return,
                }
            };
            let res = match verdict {
                // The client going away now cancels the relayed call, as it would have
                // without the wait (dropping it is cancellation upstream).
                Ok(()) => tokio::select! {
                    res = relay(msgs) => res,
                    () = tx.closed() => return,
                },
                Err(refused) => refused,
            };
            splice(res, &tx, &tokens, n).await;
        });
        let body = Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>),
        );
        let mut res = Response::new(body);
        *res.status_mut() = StatusCode::OK;
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        res
    }
}

/// One tick: a progress notification per token, or a comment when there is none.
fn progress(tokens: &[Box<str>], n: u64) -> Bytes {
    if tokens.is_empty() {
        return Bytes::from_static(b": waiting for approval in mcp-broker\n\n");
    }
    let mut out = String::new();
    for t in tokens {
        out.push_str(&format!(
            "data: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{{\"progressToken\":{t},\"progress\":{n},\"message\":\"{WAITING}\"}}}}\n\n"
        ));
    }
    Bytes::from(out)
}

/// The answer the POST would have had, on the stream already open: an event stream's
/// bytes as they are, a JSON body as one event (every line a `data:` line).
/// The upstream's own progress for a waiting token is counted on from the `sent` waiting
/// notifications, so that the client sees it increase (progress: "MUST increase with each
/// notification"); `total`, when given, moves with it, so what is left stays the same.
async fn splice(res: Response, tx: &mpsc::Sender<Bytes>, tokens: &[Box<str>], sent: u64) {
    let is_sse = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let mut body = res.into_body().into_data_stream();
    if is_sse {
        while let Some(Ok(chunk)) = body.next().await {
            let chunk = if sent > 0 && !tokens.is_empty() {
                count_on(chunk, tokens, sent)
            } else {
                chunk
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
        return;
    }
    let mut json = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        json.extend_from_slice(&chunk);
    }
    if !json.iter().any(|b| !b.is_ascii_whitespace()) {
        return;
    }
    let _ = tx.send(event(&json)).await;
}

/// `chunk` with each progress notification for one of `tokens` counted on by `sent`.
/// The broker's own event stream writes whole events per chunk; a chunk that is not
/// made of whole `data:` events is passed on as it is.
fn count_on(chunk: Bytes, tokens: &[Box<str>], sent: u64) -> Bytes {
    let Ok(text) = std::str::from_utf8(&chunk) else {
        return chunk;
    };
    if !text.contains("notifications/progress") || !text.ends_with("\n\n") {
        return chunk;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for ev in text.split_terminator("\n\n") {
        let mut rewritten = None;
        if let Some(data) = ev.lines().find_map(|l| l.strip_prefix("data: "))
            && let Ok(mut v) = serde_json::from_str::<serde_json::Value>(data)
            && v["method"] == "notifications/progress"
            && let Some(t) = v["params"].get("progressToken").map(|t| t.to_string())
            && tokens.iter().any(|w| **w == *t)
        {
            let p = &mut v["params"];
            let on = |x: &serde_json::Value| match x.as_u64() {
                Some(x) => Some(serde_json::json!(x + sent)),
                None => x.as_f64().map(|x| serde_json::json!(x + sent as f64)),
            };
            if let Some(n) = on(&p["progress"]) {
                p["progress"] = n;
                if let Some(t) = on(&p["total"]) {
                    p["total"] = t;
                }
                let data = v.to_string();
                rewritten = Some(
                    ev.lines()
                        .map(|l| {
                            if l.starts_with("data: ") {
                                format!("data: {data}")
                            } else {
                                l.to_owned()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
        }
        out.push_str(rewritten.as_deref().unwrap_or(ev));
        out.push_str("\n\n");
    }
    Bytes::from(out)
}

fn event(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 16);
    for line in json.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tick_is_a_progress_per_token_or_a_comment() {
        let p = progress(&["\"t1\"".into(), "7".into()], 2);
        let text = std::str::from_utf8(&p).unwrap();
        let events: Vec<serde_json::Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["params"]["progressToken"], "t1");
        assert_eq!(events[1]["params"]["progressToken"], 7);
        assert_eq!(events[1]["params"]["progress"], 2);
        assert_eq!(events[1]["params"]["message"], WAITING);
        assert!(progress(&[], 1).starts_with(b": "));
    }

    #[test]
    fn the_upstream_s_progress_counts_on_from_the_waiting_ones() {
        let chunk = Bytes::from_static(
            b"id: 4\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"t1\",\"progress\":1,\"total\":3}}\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"other\",\"progress\":1}}\n\n",
        );
        let out = count_on(chunk, &["\"t1\"".into()], 5);
        let text = std::str::from_utf8(&out).unwrap();
        let events: Vec<serde_json::Value> = text
            .split_terminator("\n\n")
            .map(|e| {
                let d = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
                serde_json::from_str(d).unwrap()
            })
            .collect();
        assert!(text.starts_with("id: 4\n"), "{text}");
        assert_eq!(events[0]["params"]["progress"], 6);
        assert_eq!(events[0]["params"]["total"], 8);
        assert_eq!(
            events[1]["params"]["progress"], 1,
            "another token is left alone"
        );
        let half = Bytes::from_static(b"data: {\"method\":\"notifications/progress\"");
        assert_eq!(count_on(half.clone(), &["\"t1\"".into()], 5), half);
    }

    #[test]
    fn a_json_answer_becomes_one_event_whatever_its_lines() {
        let e = event(b"{\"a\":\r\n 1}");
        assert_eq!(&e[..], b"data: {\"a\":\ndata:  1}\n\n");
    }
}
