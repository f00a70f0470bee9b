//! A remote upstream over Streamable HTTP (MCP transport spec 2025-06-18 and
//! 2025-11-25), client side: each client session has its own upstream session
//! (`Mcp-Session-Id`), messages are POSTed as they come, JSON or SSE answers are fed back
//! to the session's router, and the upstream's standalone GET stream is kept open.
//!
//! The client's bearer token is never forwarded: the MCP spec forbids token passthrough.
//! The upstream sees only the headers configured for it.
//!
//! An upstream that stops answering costs nothing past the request timeout: the headers
//! and then each read of the answer must arrive within it, every exchange is dropped
//! (closing its connection) when its request is cancelled, times out or its session ends,
//! and at most [`MAX_EXCHANGES`] exchanges per upstream are open at once.
//!
//! Transparent for 2025-11-25 upstreams (basic/transports):
//! - SSE polling (§Sending Messages to the Server item 6, §Resumability and Redelivery):
//!   an SSE answer that closes before the response is resumed with a GET carrying
//!   `Last-Event-ID`, after the upstream's `retry`, until the response comes, the upstream
//!   goes quiet for [`MAX_QUIET_RESUMES`] connections, or the request's deadline passes.
//!   The standalone GET stream is resumed the same way.
//! - An HTTP 4xx answer whose body is a JSON-RPC error about the client's message is
//!   relayed with its status, code and message ([`relayed_status`]); 401 and 403 concern
//!   the broker's own sign-in to the upstream and stay the broker's business.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use sse_stream::{Sse, SseByteStream};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

use super::link::{Inbound, Inbox};
use super::message::{
    IdKey, Kind, Message, REQUEST_TIMEOUT, UPSTREAM_ERROR, cancelled_notification, error_response,
    parse_body, parse_one,
};
use super::upstream_oauth::UpstreamOAuth;
use crate::events::GatewayEvent;
use crate::vault::Secret;

/// Exchanges (POSTs) open at once to one upstream, across its sessions; more wait for a
/// turn within their own deadline. Also the number of idle connections kept per host.
pub const MAX_EXCHANGES: usize = 32;

/// Both forms, as the transport requires, with JSON preferred: one body read instead of
/// an event stream's several, for upstreams that let the client choose.
const POST_ACCEPT: &str = "application/json, text/event-stream;q=0.9";

const DID_NOT_ANSWER: &str = "the upstream MCP server did not answer in time";
/// Its answer to a POST ended without the response and without an event id to resume
/// it from: nothing else will bring it, so the client hears it now.
const ENDED_UNANSWERED: &str = "the upstream MCP server ended its answer without a response";

/// Connections in a row that bring nothing (no event, or no connection at all) before
/// the broker stops resuming an upstream's SSE stream.
pub const MAX_QUIET_RESUMES: u32 = 5;
/// The wait before resuming when the upstream named none (`retry`): the EventSource
/// default order of magnitude, doubled for each quiet connection in a row.
const DEFAULT_RETRY: Duration = Duration::from_millis(500);
/// The most of an error answer's body that is read.
const MAX_ERROR_BODY: usize = 64 * 1024;

const STOPPED_RESUMING: &str = "the upstream MCP server kept closing its answer without sending anything, so the broker stopped resuming it";

/// Whether `m` is the response to request `to`.
fn answers(m: &Message, to: &Message) -> bool {
    matches!((&m.kind, &to.kind), (Kind::Response { id }, Kind::Request { id: asked, .. }) if id == asked)
}

/// How an exchange ended.
#[derive(PartialEq)]
enum Exchange {
    Done,
    /// The upstream went quiet for longer than the timeout.
    TimedOut,
}

pub struct HttpLink {
    inner: Arc<Inner>,
}

/// What a link needs to reach its upstream.
pub struct Remote {
    pub client: reqwest::Client,
    pub url: url::Url,
    pub headers: HeaderMap,
    pub events: tokio::sync::broadcast::Sender<GatewayEvent>,
    /// The broker's own sign-in to this upstream, if it has one.
    pub oauth: Arc<UpstreamOAuth>,
    /// Which of the upstream's sign-ins (one per account) this session's requests use.
    pub sign_in: String,
    pub upstream: String,
    /// Shared by every session of this upstream: the bound on open exchanges.
    pub exchanges: Arc<Semaphore>,
    /// How long the upstream may take to send headers, and then each part of its answer.
    pub timeout: Duration,
}

struct Inner {
    remote: Remote,
    /// The configured headers with those of every POST, built once: each message's
    /// request starts from a copy instead of merging them one by one.
    post_headers: HeaderMap,
    upstream_session: Mutex<Option<HeaderValue>>,
    protocol_version: Mutex<Option<HeaderValue>>,
    inbox: Inbox,
    get_opened: AtomicBool,
    in_flight: Mutex<InFlight>,
}

/// The exchanges still open (and the standalone GET), so that they can be dropped: by
/// request id when that request is cancelled, all of them when the session ends.
#[derive(Default)]
struct InFlight {
    next: u64,
    closed: bool,
    tasks: HashMap<u64, (Option<IdKey>, AbortHandle)>,
}

impl HttpLink {
    pub fn new(remote: Remote, inbox: Inbox) -> HttpLink {
        let mut post_headers = remote.headers.clone();
        post_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        post_headers.insert(ACCEPT, HeaderValue::from_static(POST_ACCEPT));
        HttpLink {
            inner: Arc::new(Inner {
                post_headers,
                remote,
                upstream_session: Mutex::new(None),
                protocol_version: Mutex::new(None),
                inbox,
                get_opened: AtomicBool::new(false),
                in_flight: Mutex::new(InFlight::default()),
            }),
        }
    }

    pub fn send(&self, msg: &Message) {
        let id = match &msg.kind {
            Kind::Request { id, .. } => Some(id.clone()),
            _ => None,
        };
        let inner = self.inner.clone();
        let msg = msg.clone();
        self.inner.track(id, move |key| async move {
            inner.exchange(&msg).await;
            if msg.method() == Some("notifications/initialized")
                && !inner.get_opened.swap(true, Ordering::AcqRel)
            {
                let me = inner.clone();
                inner.track(None, move |key| async move {
                    me.clone().listen().await;
                    me.untrack(key);
                });
            }
            inner.untrack(key);
        });
    }

    /// Drops the exchange of request `id`, and with `notify` tells the upstream.
    pub fn cancel(&self, id: &str, notify: Option<&str>) {
        let task = {
            let mut f = self.inner.lock_in_flight();
            let key = f
                .tasks
                .iter()
                .find(|(_, (tid, _))| tid.as_deref() == Some(id))
                .map(|(k, _)| *k);
            key.and_then(|k| f.tasks.remove(&k))
        };
        if let Some((_, task)) = task {
            task.abort();
        }
        if let Some(Ok(note)) = notify.map(|reason| parse_one(cancelled_notification(id, reason))) {
            let inner = self.inner.clone();
            self.inner.track(None, move |key| async move {
                inner.exchange(&note).await;
                inner.untrack(key);
            });
        }
    }

    pub fn set_protocol_version(&self, version: &str) {
        let mut v = self
            .inner
            .protocol_version
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if v.as_ref()
            .is_none_or(|old| old.as_bytes() != version.as_bytes())
        {
            *v = HeaderValue::from_str(version).ok();
        }
    }

    pub async fn shutdown(&self) {
        let tasks = {
            let mut f = self.inner.lock_in_flight();
            f.closed = true;
            std::mem::take(&mut f.tasks)
        };
        for (_, (_, task)) in tasks {
            task.abort();
        }
        let sid = self
            .inner
            .upstream_session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(sid) = sid {
            let r = &self.inner.remote;
            let mut req = r
                .client
                .delete(r.url.clone())
                .headers(r.headers.clone())
                .header("mcp-session-id", sid);
            if let Ok(Some(t)) = r.oauth.bearer(&r.sign_in).await {
                req = req.bearer_auth(t.expose());
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), req.send()).await;
        }
    }
}

impl Inner {
    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one exchange as its own task, registered so that it can be dropped. Spawned
    /// under the lock, so the task cannot finish (and untrack) before it is tracked.
    fn track<F, Fut>(&self, id: Option<IdKey>, exchange: F)
    where
        F: FnOnce(u64) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut f = self.lock_in_flight();
        if f.closed {
            return;
        }
        let key = f.next;
        f.next += 1;
        let task = tokio::spawn(exchange(key));
        f.tasks.insert(key, (id, task.abort_handle()));
    }

    fn untrack(&self, key: u64) {
        self.lock_in_flight().tasks.remove(&key);
    }

    fn report(&self, m: Inbound) {
        let _ = self.inbox.send(m);
    }

    /// A request to the upstream with `headers`, the sign-in and the session's headers.
    fn request(
        &self,
        method: reqwest::Method,
        headers: HeaderMap,
        bearer: Option<&Secret<String>>,
    ) -> reqwest::Request {
        let r = &self.remote;
        let mut req = reqwest::Request::new(method, r.url.clone());
        *req.headers_mut() = headers;
        let h = req.headers_mut();
        if let Some(t) = bearer
            && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
        {
            v.set_sensitive(true);
            h.insert(reqwest::header::AUTHORIZATION, v);
        }
        if let Some(sid) = self
            .upstream_session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            h.insert("mcp-session-id", sid);
        }
        if let Some(v) = self
            .protocol_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            h.insert("mcp-protocol-version", v);
        }
        req
    }

    /// One message's exchange, within the per-upstream bound. A request's exchange lasts
    /// as long as its answer keeps coming (its deadline is the session's business, which
    /// cancels it); anything else gets one timeout for the whole exchange.
    async fn exchange(&self, msg: &Message) {
        // The client's answers to the upstream's own requests unblock work the upstream
        // is already doing, so they never wait for a turn.
        let needs_turn = !matches!(msg.kind, Kind::Response { .. });
        let is_request = msg.is_request();
        let run = async {
            let _turn = if needs_turn {
                match self.remote.exchanges.acquire().await {
                    Ok(p) => Some(p),
                    Err(_) => return Exchange::Done,
                }
            } else {
                None
            };
            self.post(msg).await
        };
        if is_request {
            if run.await == Exchange::TimedOut
                && let Kind::Request { id, .. } = &msg.kind
                && let Ok(note) = parse_one(cancelled_notification(
                    id,
                    "the broker's request timeout passed",
                ))
            {
                // Its error went to the client already; the upstream may stop working.
                let _ = tokio::time::timeout(self.remote.timeout, self.post(&note)).await;
            }
        } else if tokio::time::timeout(self.remote.timeout, run)
            .await
            .is_err()
        {
            tracing::warn!(upstream = %self.remote.upstream, "the upstream MCP server did not take a notification in time");
        }
    }

    async fn post(&self, msg: &Message) -> Exchange {
        let had_session = self
            .upstream_session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        let res = match self.send_signed_in(msg).await {
            Ok(res) => res,
            Err(ended) => return ended,
        };
        self.take_answer(msg, res, had_session).await
    }

    /// POSTs `msg` with the broker's sign-in, if any; after a 401, refreshes it once
    /// (one refresh at a time per upstream) and tries once more. The headers must come
    /// within the timeout.
    async fn send_signed_in(&self, msg: &Message) -> Result<reqwest::Response, Exchange> {
        let r = &self.remote;
        let mut bearer = match r.oauth.bearer(&r.sign_in).await {
            Ok(b) => b,
            Err(e) => {
                self.fail_request(msg, UPSTREAM_ERROR, &e.to_string());
                return Err(Exchange::Done);
            }
        };
        let mut retried = false;
        loop {
            let mut req = self.request(
                reqwest::Method::POST,
                self.post_headers.clone(),
                bearer.as_ref(),
            );
            // `Bytes` into the body: no copy of the message.
            *req.body_mut() = Some(msg.raw.clone().into());
            let res = match tokio::time::timeout(r.timeout, r.client.execute(req)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    let why = format!(
                        "the upstream MCP server is unreachable: {}",
                        without_url(&e)
                    );
                    self.fail_request(msg, UPSTREAM_ERROR, &why.to_string());
                    return Err(Exchange::Done);
                }
                Err(_) => {
                    self.fail_request(msg, REQUEST_TIMEOUT, DID_NOT_ANSWER);
                    return Err(Exchange::TimedOut);
                }
            };
            if res.status() != reqwest::StatusCode::UNAUTHORIZED {
                return Ok(res);
            }
            match r
                .oauth
                .after_unauthorized(&r.sign_in, bearer.as_ref())
                .await
            {
                Ok(fresh) if !retried => {
                    bearer = Some(fresh);
                    retried = true;
                }
                Ok(_) => return Ok(res),
                Err(why) => {
                    let _ = r.events.send(GatewayEvent::UpstreamFailed {
                        upstream: r.upstream.clone(),
                        reason: why.to_string(),
                    });
                    self.fail_request(msg, UPSTREAM_ERROR, &why.to_string());
                    return Err(Exchange::Done);
                }
            }
        }
    }

    /// Feeds the upstream's answer to `msg` (JSON or SSE) to the inbox; each read must
    /// come within the timeout.
    async fn take_answer(
        &self,
        msg: &Message,
        res: reqwest::Response,
        had_session: bool,
    ) -> Exchange {
        let r = &self.remote;
        if let Some(sid) = res.headers().get("mcp-session-id") {
            *self
                .upstream_session
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(sid.clone());
        }
        let status = res.status();
        if status == reqwest::StatusCode::NOT_FOUND && had_session {
            self.report(Inbound::Failed(
                "the upstream MCP server ended the session".into(),
            ));
            return Exchange::Done;
        }
        if !status.is_success() {
            if let Kind::Request { id, .. } = &msg.kind
                && relayed_status(status)
                && let Some(refusal) = self.read_refusal(id, res).await
            {
                // The upstream turned the client's message down: the client hears it as
                // the upstream said it, and the upstream is not failing.
                self.report(Inbound::Refused {
                    message: refusal,
                    status: status.as_u16(),
                });
                return Exchange::Done;
            }
            let why = format!("the upstream MCP server answered HTTP {status}");
            let _ = r.events.send(GatewayEvent::UpstreamFailed {
                upstream: r.upstream.clone(),
                reason: why.clone(),
            });
            self.fail_request(msg, UPSTREAM_ERROR, &why);
            return Exchange::Done;
        }
        let is_sse = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if status == reqwest::StatusCode::ACCEPTED || !msg.is_request() {
            // Notifications and responses get 202 with no body.
            Exchange::Done
        } else if is_sse {
            self.read_events(msg, res).await
        } else {
            self.read_json(msg, res).await
        }
    }

    /// An SSE answer: every event goes to the inbox; the response must be among them. A
    /// connection that closes before it is resumed (SSE polling) as long as the upstream
    /// gave an event id to resume from.
    async fn read_events(&self, msg: &Message, res: reqwest::Response) -> Exchange {
        let r = &self.remote;
        let mut cursor = Cursor::default();
        let mut res = Some(res);
        loop {
            if let Some(res) = res.take() {
                match self.relay_events(Some(msg), res, &mut cursor).await {
                    Connection::Answered => return Exchange::Done,
                    Connection::TimedOut => {
                        self.fail_request(msg, REQUEST_TIMEOUT, DID_NOT_ANSWER);
                        return Exchange::TimedOut;
                    }
                    Connection::Gone => return Exchange::Done,
                    Connection::Closed { heard } => cursor.closed(heard),
                }
            }
            let wait = match cursor.next_try(r.timeout) {
                Resume::After(wait) => wait,
                Resume::Never => {
                    self.fail_request(msg, UPSTREAM_ERROR, ENDED_UNANSWERED);
                    return Exchange::Done;
                }
                Resume::GiveUp => {
                    self.fail_request(msg, UPSTREAM_ERROR, STOPPED_RESUMING);
                    return Exchange::Done;
                }
            };
            tokio::time::sleep(wait).await;
            match self.open_stream(cursor.last_event_id.as_deref()).await {
                Ok(resumed) if resumed.status().is_success() => res = Some(resumed),
                Ok(refused) => {
                    let why = format!(
                        "the upstream MCP server closed its answer early and refused to resume it (HTTP {})",
                        refused.status()
                    );
                    self.fail_request(msg, UPSTREAM_ERROR, &why);
                    return Exchange::Done;
                }
                Err(_) => cursor.closed(false),
            }
        }
    }

    /// Relays one SSE connection's events to the inbox until it ends. With `answering`,
    /// each read must come within the timeout and the connection is done once the
    /// response to that request is among them; without (the standalone stream), it may
    /// stay quiet for as long as it likes.
    async fn relay_events(
        &self,
        answering: Option<&Message>,
        res: reqwest::Response,
        cursor: &mut Cursor,
    ) -> Connection {
        let r = &self.remote;
        let mut heard = false;
        let mut events = SseByteStream::new(res.bytes_stream());
        loop {
            let next = match answering {
                Some(_) => match tokio::time::timeout(r.timeout, events.next()).await {
                    Ok(next) => next,
                    Err(_) => return Connection::TimedOut,
                },
                None => events.next().await,
            };
            let ev = match next {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => {
                    // A dropped connection is no cancellation (transports §Sending
                    // Messages item 6): resume like after a polling close.
                    tracing::info!(upstream = %r.upstream, "the upstream's SSE connection broke: {e}");
                    return Connection::Closed { heard };
                }
                None => return Connection::Closed { heard },
            };
            heard |= cursor.saw(&ev);
            let Some(data) = ev.data.filter(|d| !d.trim().is_empty()) else {
                continue;
            };
            match parse_one(Bytes::from(data)) {
                Ok(m) => {
                    let answered = answering.is_some_and(|to| answers(&m, to));
                    if self.inbox.send(Inbound::Message(m)).is_err() {
                        return Connection::Gone;
                    }
                    if answered {
                        return Connection::Answered;
                    }
                }
                Err(_) => {
                    tracing::warn!(upstream = %r.upstream, "ignoring an SSE event that is not JSON-RPC")
                }
            }
        }
    }

    /// A GET for an SSE stream: the standalone one, or with `last_event_id` the one to
    /// resume (transports §Resumability and Redelivery). Its headers must come within the
    /// timeout. A polled call can outlive the broker's access token for the upstream:
    /// after a 401 the sign-in is refreshed once and the GET tried again.
    async fn open_stream(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, StreamFailed> {
        let r = &self.remote;
        let mut bearer = r.oauth.bearer(&r.sign_in).await.ok().flatten();
        let mut headers = r.headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let Some(v) = last_event_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            headers.insert("last-event-id", v);
        }
        for last_try in [false, true] {
            let req = self.request(reqwest::Method::GET, headers.clone(), bearer.as_ref());
            let res = match tokio::time::timeout(r.timeout, r.client.execute(req)).await {
                Ok(Ok(res)) => res,
                Ok(Err(e)) => {
                    tracing::info!(upstream = %r.upstream, "cannot open the upstream's SSE stream: {}", without_url(&e));
                    return Err(StreamFailed);
                }
                Err(_) => return Err(StreamFailed),
            };
            if last_try || res.status() != reqwest::StatusCode::UNAUTHORIZED {
                return Ok(res);
            }
            match r
                .oauth
                .after_unauthorized(&r.sign_in, bearer.as_ref())
                .await
            {
                Ok(fresh) => bearer = Some(fresh),
                Err(_) => return Ok(res),
            }
        }
        Err(StreamFailed)
    }

    /// The JSON-RPC error in an error answer's body, as the answer to request `id`; none
    /// if the body is not one (then the broker says what happened instead).
    async fn read_refusal(&self, id: &str, res: reqwest::Response) -> Option<Message> {
        if res
            .content_length()
            .is_some_and(|n| n > MAX_ERROR_BODY as u64)
        {
            return None;
        }
        let mut body = Vec::new();
        let mut chunks = res.bytes_stream();
        let read = async {
            while let Some(Ok(chunk)) = chunks.next().await {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_ERROR_BODY {
                    return false;
                }
            }
            true
        };
        if !matches!(
            tokio::time::timeout(self.remote.timeout, read).await,
            Ok(true)
        ) {
            return None;
        }
        parse_one(refusal_for(id, &body)?).ok()
    }

    /// A JSON answer (one message, or a batch): the response must be in it.
    async fn read_json(&self, msg: &Message, res: reqwest::Response) -> Exchange {
        let r = &self.remote;
        let Ok(body) = tokio::time::timeout(r.timeout, res.bytes()).await else {
            self.fail_request(msg, REQUEST_TIMEOUT, DID_NOT_ANSWER);
            return Exchange::TimedOut;
        };
        let body = body.map_err(|e| e.to_string());
        match body.and_then(|b| parse_body(&b).map_err(|_| "invalid JSON-RPC".into())) {
            Ok(msgs) => {
                let answered = msgs.iter().any(|m| answers(m, msg));
                msgs.into_iter()
                    .for_each(|m| self.report(Inbound::Message(m)));
                if !answered {
                    self.fail_request(msg, UPSTREAM_ERROR, ENDED_UNANSWERED);
                }
            }
            Err(e) => self.fail_request(
                msg,
                UPSTREAM_ERROR,
                &format!("the upstream MCP server's answer was unusable: {e}"),
            ),
        }
        Exchange::Done
    }

    /// The upstream's standalone SSE stream (server-initiated messages). Reopened when it
    /// closes, with `Last-Event-ID` once the upstream gave an id and after its `retry`
    /// (transports §Listening for Messages from the Server: it may poll this stream too),
    /// until it goes quiet for [`MAX_QUIET_RESUMES`] connections. It may stay quiet for
    /// long, so it has no read timeout; it ends with the session.
    async fn listen(self: Arc<Self>) {
        let mut cursor = Cursor::default();
        let mut opened = false;
        loop {
            if self.inbox.is_closed() {
                return;
            }
            match self.open_stream(cursor.last_event_id.as_deref()).await {
                Ok(res) if res.status().is_success() => {
                    opened = true;
                    match self.relay_events(None, res, &mut cursor).await {
                        Connection::Closed { heard } => cursor.closed(heard),
                        _ => return,
                    }
                }
                // 405 at first: the upstream offers no standalone stream. Fine. Later: it
                // cannot resume it, and a fresh one would lose what it held; stop.
                Ok(res) => {
                    if opened {
                        tracing::warn!(upstream = %self.remote.upstream, status = %res.status(), "the upstream refused to resume its standalone stream");
                    }
                    return;
                }
                Err(StreamFailed) => cursor.closed(false),
            }
            match cursor.next_try(self.remote.timeout) {
                Resume::After(wait) => tokio::time::sleep(wait).await,
                // No id to resume from: a fresh stream, after the same wait.
                Resume::Never => tokio::time::sleep(cursor.backoff(self.remote.timeout)).await,
                Resume::GiveUp => {
                    tracing::warn!(upstream = %self.remote.upstream, "{STOPPED_RESUMING} (standalone stream)");
                    return;
                }
            }
        }
    }

    fn fail_request(&self, msg: &Message, code: i64, why: &str) {
        if code == UPSTREAM_ERROR && msg.method() == Some("initialize") {
            // The session cannot be used: it ends with its `initialize` answered by this
            // error, so the client gets no session id for it (transports §Session
            // Management: the id comes with an InitializeResult) and none stays open.
            self.report(Inbound::Failed(why.to_owned()));
            return;
        }
        let reference = crate::activity::Reference::mint();
        tracing::warn!(upstream = %self.remote.upstream, %reference, "{why}");
        if let Kind::Request { id, .. } = &msg.kind
            && let Ok(m) = parse_one(error_response(Some(id), code, why, &reference))
        {
            self.report(Inbound::Message(m));
        }
    }
}

/// The 4xx statuses an upstream gives about the client's own message, which the client
/// hears as they are when the body is a JSON-RPC error: 400 (malformed or invalid), 409,
/// 413 (too large), 422 and 429 (slow down). Not 401/403 (the broker's sign-in to the
/// upstream, not the client's token), 404 (the upstream session, which the broker holds),
/// nor 405/406/415 (the broker's own use of HTTP).
pub fn relayed_status(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 409 | 413 | 422 | 429)
}

/// `body` as the error response to request `id` (JSON text): the upstream's `code`,
/// `message` and `data`, with the id put in when the upstream left it null (transports
/// §Sending Messages item 4: an error about a message it could not read has no id).
/// None if the body is no JSON-RPC error, or answers another request.
fn refusal_for(id: &str, body: &[u8]) -> Option<Bytes> {
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object_mut()?;
    let error = o.get("error")?;
    error.get("code")?.as_i64()?;
    error.get("message")?.as_str()?;
    if o.contains_key("result") {
        return None;
    }
    let want: serde_json::Value = serde_json::from_str(id).ok()?;
    match o.get("id") {
        None | Some(serde_json::Value::Null) => {
            o.insert("id".into(), want);
        }
        Some(given) if *given == want => {}
        Some(_) => return None,
    }
    o.insert("jsonrpc".into(), "2.0".into());
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// How one SSE connection ended.
enum Connection {
    /// The response it was waiting for came.
    Answered,
    /// A read took longer than the timeout.
    TimedOut,
    /// The session is gone: nobody reads what the upstream says any more.
    Gone,
    /// The upstream closed it (or it broke); `heard` if it brought any event.
    Closed { heard: bool },
}

/// A GET for a stream got no answer (the reason is logged).
struct StreamFailed;

/// What to do about an SSE stream that closed before it was done.
#[derive(Debug, PartialEq)]
enum Resume {
    After(Duration),
    /// The upstream gave no event id: nothing to resume from.
    Never,
    /// Too many quiet connections in a row.
    GiveUp,
}

/// Where an upstream's SSE stream stands (transports §Resumability and Redelivery): the
/// last event id, the reconnection time the upstream asked for, and how many
/// connections in a row brought nothing.
#[derive(Default)]
struct Cursor {
    last_event_id: Option<String>,
    retry: Option<Duration>,
    quiet: u32,
}

impl Cursor {
    /// Takes an event's `id` and `retry` (an empty id resets it, as in the SSE
    /// standard); whether the event counts as hearing from the upstream.
    fn saw(&mut self, ev: &Sse) -> bool {
        if let Some(id) = &ev.id {
            self.last_event_id = (!id.is_empty()).then(|| id.clone());
        }
        if let Some(ms) = ev.retry {
            self.retry = Some(Duration::from_millis(ms));
        }
        ev.id.is_some() || ev.data.is_some()
    }

    fn closed(&mut self, heard: bool) {
        self.quiet = if heard { 0 } else { self.quiet + 1 };
    }

    /// The upstream's `retry` (which the client must respect), else a backoff that
    /// grows with each quiet connection; never longer than `ceiling`.
    fn backoff(&self, ceiling: Duration) -> Duration {
        self.retry
            .unwrap_or_else(|| DEFAULT_RETRY * 2u32.pow(self.quiet.min(6)))
            .min(ceiling)
    }

    fn next_try(&self, ceiling: Duration) -> Resume {
        if self.quiet >= MAX_QUIET_RESUMES {
            Resume::GiveUp
        } else if self.last_event_id.is_none() {
            Resume::Never
        } else {
            Resume::After(self.backoff(ceiling))
        }
    }
}

/// reqwest's errors include the URL, which may carry credentials in its query.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<upstream>");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: Option<&str>, data: Option<&str>, retry: Option<u64>) -> Sse {
        Sse {
            event: None,
            data: data.map(str::to_owned),
            id: id.map(str::to_owned),
            retry,
        }
    }

    #[test]
    fn a_priming_event_makes_the_stream_resumable_after_its_retry() {
        let ceiling = Duration::from_secs(30);
        let mut c = Cursor::default();
        assert_eq!(c.next_try(ceiling), Resume::Never);
        // The 2025-11-25 priming event: an id, empty data, and a retry.
        assert!(c.saw(&event(Some("s1-0"), Some(""), Some(250))));
        c.closed(true);
        assert_eq!(
            c.next_try(ceiling),
            Resume::After(Duration::from_millis(250))
        );
        assert_eq!(c.last_event_id.as_deref(), Some("s1-0"));
        // A retry above the request timeout waits no longer than it.
        c.saw(&event(None, None, Some(3_600_000)));
        assert_eq!(c.next_try(ceiling), Resume::After(ceiling));
        // An empty id resets the cursor (SSE standard): nothing to resume from.
        c.saw(&event(Some(""), Some("{}"), None));
        assert_eq!(c.next_try(ceiling), Resume::Never);
    }

    #[test]
    fn quiet_connections_in_a_row_end_the_resuming_and_an_event_starts_over() {
        let ceiling = Duration::from_secs(30);
        let mut c = Cursor::default();
        c.saw(&event(Some("7"), Some(""), None));
        for n in 0..MAX_QUIET_RESUMES {
            c.closed(false);
            let expected = if n + 1 < MAX_QUIET_RESUMES {
                Resume::After(DEFAULT_RETRY * 2u32.pow(n + 1))
            } else {
                Resume::GiveUp
            };
            assert_eq!(c.next_try(ceiling), expected, "after {} quiet", n + 1);
        }
        c.closed(true);
        assert_eq!(c.next_try(ceiling), Resume::After(DEFAULT_RETRY));
        // A comment-only connection is quiet: `saw` is never called for it.
        assert!(!c.saw(&event(None, None, Some(5))));
    }

    #[test]
    fn an_upstream_refusal_keeps_its_code_message_and_data_and_gets_the_request_id() {
        let body = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32602,"message":"bad cursor","data":{"x":1}}}"#;
        let out: serde_json::Value =
            serde_json::from_slice(&refusal_for("\"a-1\"", body).unwrap()).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"jsonrpc":"2.0","id":"a-1","error":{"code":-32602,"message":"bad cursor","data":{"x":1}}})
        );
        let same = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"slow down"}}"#;
        assert!(refusal_for("7", same).is_some());
        // Another request's answer, a result, or no JSON-RPC error at all: not relayed.
        let other = br#"{"jsonrpc":"2.0","id":8,"error":{"code":-32000,"message":"x"}}"#;
        assert!(refusal_for("7", other).is_none());
        assert!(refusal_for("7", br#"{"jsonrpc":"2.0","id":7,"result":{}}"#).is_none());
        assert!(refusal_for("7", br#"{"error":{"code":"no","message":"x"}}"#).is_none());
        assert!(refusal_for("7", b"Bad Request").is_none());
    }

    #[test]
    fn only_statuses_about_the_client_s_message_are_relayed() {
        use reqwest::StatusCode as S;
        for s in [
            S::BAD_REQUEST,
            S::CONFLICT,
            S::PAYLOAD_TOO_LARGE,
            S::UNPROCESSABLE_ENTITY,
            S::TOO_MANY_REQUESTS,
        ] {
            assert!(relayed_status(s), "{s}");
        }
        for s in [
            S::UNAUTHORIZED,
            S::FORBIDDEN,
            S::NOT_FOUND,
            S::METHOD_NOT_ALLOWED,
            S::NOT_ACCEPTABLE,
            S::UNSUPPORTED_MEDIA_TYPE,
            S::INTERNAL_SERVER_ERROR,
            S::BAD_GATEWAY,
        ] {
            assert!(!relayed_status(s), "{s}");
        }
    }
}
