//! A remote upstream over Streamable HTTP (MCP transport spec 2025-06-18 and
//! 2025-11-25), client side: each client session has its own upstream session
//! (`Mcp-Session-Id`), messages are POSTed as they come, JSON or SSE answers are fed back
//! to the session's router, and the upstream's standalone GET stream is kept open.
//!
//! The client's bearer token is never forwarded: the MCP spec forbids token passthrough.
//! The upstream sees only the headers configured for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};

use super::message::{Kind, Message, error_response, parse_body, parse_one};
use super::session::{EndReason, Session, UPSTREAM_ERROR};
use super::upstream_oauth::UpstreamOAuth;
use crate::events::GatewayEvent;
use crate::vault::Secret;

pub struct HttpLink {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    url: url::Url,
    headers: HeaderMap,
    upstream_session: Mutex<Option<HeaderValue>>,
    session: Weak<Session>,
    get_opened: AtomicBool,
    get_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    events: tokio::sync::broadcast::Sender<GatewayEvent>,
    /// The broker's own sign-in to this upstream, if it has one.
    oauth: Arc<UpstreamOAuth>,
    upstream: String,
}

impl HttpLink {
    pub fn new(
        client: reqwest::Client,
        url: url::Url,
        headers: HeaderMap,
        session: Weak<Session>,
        events: tokio::sync::broadcast::Sender<GatewayEvent>,
        oauth: Arc<UpstreamOAuth>,
        upstream: String,
    ) -> HttpLink {
        HttpLink {
            inner: Arc::new(Inner {
                client,
                url,
                headers,
                upstream_session: Mutex::new(None),
                session,
                get_opened: AtomicBool::new(false),
                get_task: Mutex::new(None),
                events,
                oauth,
                upstream,
            }),
        }
    }

    pub fn send(&self, _session: &Arc<Session>, msg: &Message) {
        let inner = self.inner.clone();
        let msg = msg.clone();
        tokio::spawn(async move { inner.post(msg).await });
    }

    pub async fn shutdown(&self) {
        if let Some(t) = self
            .inner
            .get_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
        let sid = self
            .inner
            .upstream_session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(sid) = sid {
            let mut req = self
                .inner
                .client
                .delete(self.inner.url.clone())
                .headers(self.inner.headers.clone())
                .header("mcp-session-id", sid);
            if let Ok(Some(t)) = self.inner.oauth.bearer(&self.inner.upstream).await {
                req = req.bearer_auth(t.expose());
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), req.send()).await;
        }
    }
}

impl Inner {
    fn request(
        &self,
        method: reqwest::Method,
        session: &Session,
        bearer: Option<&Secret<String>>,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(method, self.url.clone())
            .headers(self.headers.clone());
        if let Some(t) = bearer {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            v.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, v);
        }
        if let Some(sid) = self
            .upstream_session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            req = req.header("mcp-session-id", sid);
        }
        let version = session
            .protocol_version
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(v) = version {
            req = req.header("mcp-protocol-version", v);
        }
        req
    }

    async fn post(self: Arc<Self>, msg: Message) {
        let Some(session) = self.session.upgrade() else {
            return;
        };
        let mut bearer = match self.oauth.bearer(&self.upstream).await {
            Ok(b) => b,
            Err(e) => {
                self.fail_request(&session, &msg, &e);
                return;
            }
        };
        let had_session = self
            .upstream_session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        let mut retried = false;
        let res = loop {
            let req = self
                .request(reqwest::Method::POST, &session, bearer.as_ref())
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json, text/event-stream")
                .body(msg.raw.clone());
            let res = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    self.fail_request(
                        &session,
                        &msg,
                        &format!(
                            "the upstream MCP server is unreachable: {}",
                            without_url(&e)
                        ),
                    );
                    return;
                }
            };
            if res.status() != reqwest::StatusCode::UNAUTHORIZED {
                break res;
            }
            // 401: refresh once (one refresh at a time per upstream), then try once more.
            match self
                .oauth
                .after_unauthorized(&self.upstream, bearer.as_ref())
                .await
            {
                Ok(fresh) if !retried => {
                    bearer = Some(fresh);
                    retried = true;
                }
                Ok(_) => break res,
                Err(why) => {
                    let _ = self.events.send(GatewayEvent::UpstreamFailed {
                        upstream: session.upstream.clone(),
                        reason: why.clone(),
                    });
                    self.fail_request(&session, &msg, &why);
                    return;
                }
            }
        };
        if let Some(sid) = res.headers().get("mcp-session-id") {
            *self
                .upstream_session
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(sid.clone());
        }
        let status = res.status();
        if status == reqwest::StatusCode::NOT_FOUND && had_session {
            session.end(&EndReason::Failed(
                "the upstream MCP server ended the session".into(),
            ));
            return;
        }
        if !status.is_success() {
            let why = format!("the upstream MCP server answered HTTP {status}");
            let _ = self.events.send(GatewayEvent::UpstreamFailed {
                upstream: session.upstream.clone(),
                reason: why.clone(),
            });
            self.fail_request(&session, &msg, &why);
            return;
        }
        let is_sse = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if status == reqwest::StatusCode::ACCEPTED || !msg.is_request() {
            // Notifications and responses get 202 with no body.
        } else if is_sse {
            let mut events = res.bytes_stream().eventsource();
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(ev) if !ev.data.trim().is_empty() => match parse_one(Bytes::from(ev.data)) {
                        Ok(m) => session.route(m),
                        Err(_) => {
                            tracing::warn!(upstream = %session.upstream, "ignoring an SSE event that is not JSON-RPC")
                        }
                    },
                    Ok(_) => {}
                    Err(e) => {
                        self.fail_request(
                            &session,
                            &msg,
                            &format!("the upstream stream broke: {e}"),
                        );
                        break;
                    }
                }
            }
        } else {
            match res
                .bytes()
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| parse_body(&b).map_err(|_| "invalid JSON-RPC".into()))
            {
                Ok(msgs) => msgs.into_iter().for_each(|m| session.route(m)),
                Err(e) => self.fail_request(
                    &session,
                    &msg,
                    &format!("the upstream MCP server's answer was unusable: {e}"),
                ),
            }
        }
        if msg.method() == Some("notifications/initialized")
            && !self.get_opened.swap(true, Ordering::AcqRel)
        {
            let me = self.clone();
            let task = tokio::spawn(async move { me.listen().await });
            *self.get_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
    }

    /// The upstream's standalone SSE stream (server-initiated messages). Resumed with
    /// `Last-Event-ID` a few times if it drops.
    async fn listen(self: Arc<Self>) {
        let mut last_event_id: Option<String> = None;
        for attempt in 0..5u32 {
            let Some(session) = self.session.upgrade() else {
                return;
            };
            if session.is_closed() {
                return;
            }
            let bearer = self.oauth.bearer(&self.upstream).await.ok().flatten();
            let mut req = self
                .request(reqwest::Method::GET, &session, bearer.as_ref())
                .header(ACCEPT, "text/event-stream");
            if let Some(id) = &last_event_id {
                req = req.header("last-event-id", id.clone());
            }
            drop(session);
            let Ok(res) = req.send().await else {
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
                let Some(session) = self.session.upgrade() else {
                    return;
                };
                if let Ok(m) = parse_one(Bytes::from(ev.data)) {
                    session.route(m);
                }
            }
            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
        }
    }

    fn fail_request(&self, session: &Session, msg: &Message, why: &str) {
        tracing::warn!(upstream = %session.upstream, "{why}");
        if let Kind::Request { id, .. } = &msg.kind
            && let Ok(m) = parse_one(error_response(Some(id), UPSTREAM_ERROR, why))
        {
            session.route(m);
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
