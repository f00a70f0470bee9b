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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
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
/// Its answer to a POST ended without the response: nothing else will bring it (the
/// broker does not resume upstream POST streams), so the client hears it now.
const ENDED_UNANSWERED: &str = "the upstream MCP server ended its answer without a response";

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

    /// An SSE answer: every event goes to the inbox; the response must be among them.
    async fn read_events(&self, msg: &Message, res: reqwest::Response) -> Exchange {
        let r = &self.remote;
        let mut answered = false;
        let mut events = res.bytes_stream().eventsource();
        loop {
            let ev = match tokio::time::timeout(r.timeout, events.next()).await {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(_) => {
                    self.fail_request(msg, REQUEST_TIMEOUT, DID_NOT_ANSWER);
                    return Exchange::TimedOut;
                }
            };
            match ev {
                Ok(ev) if !ev.data.trim().is_empty() => match parse_one(Bytes::from(ev.data)) {
                    Ok(m) => {
                        answered |= answers(&m, msg);
                        self.report(Inbound::Message(m));
                    }
                    Err(_) => {
                        tracing::warn!(upstream = %r.upstream, "ignoring an SSE event that is not JSON-RPC")
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    let why = format!("the upstream stream broke: {e}");
                    self.fail_request(msg, UPSTREAM_ERROR, &why.to_string());
                    return Exchange::Done;
                }
            }
        }
        if !answered {
            self.fail_request(msg, UPSTREAM_ERROR, ENDED_UNANSWERED);
        }
        Exchange::Done
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

    /// The upstream's standalone SSE stream (server-initiated messages). Resumed with
    /// `Last-Event-ID` a few times if it drops. It may stay quiet for long, so it has no
    /// read timeout; it ends with the session.
    async fn listen(self: Arc<Self>) {
        let mut last_event_id: Option<String> = None;
        for attempt in 0..5u32 {
            if self.inbox.is_closed() {
                return;
            }
            let r = &self.remote;
            let bearer = r.oauth.bearer(&r.sign_in).await.ok().flatten();
            let mut headers = r.headers.clone();
            headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
            if let Some(v) = last_event_id
                .as_deref()
                .and_then(|id| HeaderValue::from_str(id).ok())
            {
                headers.insert("last-event-id", v);
            }
            let req = self.request(reqwest::Method::GET, headers, bearer.as_ref());
            let Ok(res) = r.client.execute(req).await else {
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                continue;
            };
            if !res.status().is_success() {
                // 405: the upstream offers no standalone stream. Fine.
                return;
            }
            let mut events = res.bytes_stream().eventsource();
            while let Some(Ok(ev)) = events.next().await {
                if !ev.id.is_empty() {
                    last_event_id = Some(ev.id.clone());
                }
                if let Ok(m) = parse_one(Bytes::from(ev.data))
                    && self.inbox.send(Inbound::Message(m)).is_err()
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
        }
    }

    fn fail_request(&self, msg: &Message, code: i64, why: &str) {
        let reference = crate::activity::Reference::mint();
        tracing::warn!(upstream = %self.remote.upstream, %reference, "{why}");
        if let Kind::Request { id, .. } = &msg.kind
            && let Ok(m) = parse_one(error_response(Some(id), code, why, &reference))
        {
            self.report(Inbound::Message(m));
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
