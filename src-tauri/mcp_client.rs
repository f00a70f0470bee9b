//! The client half of the MCP Streamable HTTP transport (MCP transports spec 2025-06-18
//! and 2025-11-25, "Streamable HTTP"), for one endpoint: each message is POSTed with
//! `Accept: application/json, text/event-stream`; the answer is 202, one JSON body, or an
//! SSE stream of messages; the `Mcp-Session-Id` the server assigns is sent back on every
//! later request; `MCP-Protocol-Version` carries the negotiated version; a GET opens the
//! server's standalone stream (resumable with `Last-Event-ID`); a DELETE ends the session.
//!
//! It moves messages and does not interpret them, and it does not authorize: the caller
//! passes the bearer token and decides what a 401 or a 404 for the session means (the
//! stdio bridge renews and replays `initialize`; the proxy ends its client's session).
//! Used by the stdio bridge (`bridge::relay`); meant for `proxy::remote` too.

use std::sync::Mutex;
use std::time::Duration;

use eventsource_stream::{EventStream, Eventsource};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use url::Url;

const SESSION: &str = "mcp-session-id";
const VERSION: &str = "mcp-protocol-version";

#[derive(Debug, thiserror::Error)]
pub enum McpClientError {
    #[error("the MCP server did not answer: {0}")]
    Unreachable(String),
    #[error("the MCP server's stream broke: {0}")]
    Stream(String),
}

/// One MCP endpoint and the session with it.
pub struct StreamableHttp {
    http: reqwest::Client,
    endpoint: Url,
    /// Sent on every request (configured upstream headers); never the caller's token.
    headers: HeaderMap,
    session: Mutex<Option<HeaderValue>>,
    protocol_version: Mutex<Option<HeaderValue>>,
}

/// What the server made of a POST.
pub enum Answer {
    /// 202: a notification or response was taken; nothing to read.
    Accepted,
    /// 2xx with a JSON body or an SSE stream.
    Messages(Messages),
    /// 401: the token is missing, expired or revoked.
    Unauthorized,
    /// 404 to a request that carried a session id: the server ended the session
    /// (the spec says the client then starts a new one with `initialize`).
    SessionEnded,
    /// Any other status, with its body (it may be a JSON-RPC error).
    Refused { status: StatusCode, body: String },
}

/// What the server made of the GET for its standalone stream.
pub enum Listen {
    Stream(Messages),
    /// 405: the server offers no standalone stream.
    NotOffered,
    Unauthorized,
    Refused(StatusCode),
}

/// The messages of one answer, in order: each SSE event's data, or the one JSON body
/// (which may be a batch array).
pub struct Messages {
    inner: Box<Body>,
    last_event_id: Option<String>,
}

enum Body {
    Json(Option<reqwest::Response>),
    Sse(EventStream<BoxStream<'static, reqwest::Result<bytes::Bytes>>>),
}

impl Messages {
    fn from(res: reqwest::Response) -> Messages {
        let sse = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let inner = if sse {
            Body::Sse(res.bytes_stream().boxed().eventsource())
        } else {
            Body::Json(Some(res))
        };
        Messages {
            inner: Box::new(inner),
            last_event_id: None,
        }
    }

    /// The next message; `None` at the end. Empty events (keep-alives, priming events
    /// that carry only an id) are skipped.
    pub async fn next(&mut self) -> Option<Result<String, McpClientError>> {
        match self.inner.as_mut() {
            Body::Json(res) => {
                let res = res.take()?;
                match res.text().await {
                    Ok(t) if t.trim().is_empty() => None,
                    Ok(t) => Some(Ok(t)),
                    Err(e) => Some(Err(McpClientError::Stream(e.to_string()))),
                }
            }
            Body::Sse(events) => loop {
                match events.next().await? {
                    Ok(ev) => {
                        if !ev.id.is_empty() {
                            self.last_event_id = Some(ev.id);
                        }
                        if !ev.data.trim().is_empty() {
                            return Some(Ok(ev.data));
                        }
                    }
                    Err(e) => return Some(Err(McpClientError::Stream(e.to_string()))),
                }
            },
        }
    }

    /// The id of the last SSE event read, for resuming a broken GET stream.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StreamableHttp {
    pub fn new(http: reqwest::Client, endpoint: Url, headers: HeaderMap) -> StreamableHttp {
        StreamableHttp {
            http,
            endpoint,
            headers,
            session: Mutex::new(None),
            protocol_version: Mutex::new(None),
        }
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    pub fn session_id(&self) -> Option<String> {
        lock(&self.session)
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Before replaying `initialize`: the next POST starts a new session.
    pub fn forget_session(&self) {
        *lock(&self.session) = None;
    }

    /// The version the `initialize` result named; sent as `MCP-Protocol-Version` from
    /// then on.
    pub fn set_protocol_version(&self, version: &str) {
        if let Ok(v) = HeaderValue::from_str(version) {
            *lock(&self.protocol_version) = Some(v);
        }
    }

    fn request(&self, method: reqwest::Method, bearer: Option<&str>) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, self.endpoint.clone())
            .headers(self.headers.clone());
        if let Some(t) = bearer
            && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {t}"))
        {
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        if let Some(sid) = lock(&self.session).clone() {
            req = req.header(SESSION, sid);
        }
        if let Some(v) = lock(&self.protocol_version).clone() {
            req = req.header(VERSION, v);
        }
        req
    }

    /// POSTs one JSON-RPC message (or batch) as it is.
    pub async fn post(&self, body: String, bearer: Option<&str>) -> Result<Answer, McpClientError> {
        let had_session = lock(&self.session).is_some();
        let res = self
            .request(reqwest::Method::POST, bearer)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| McpClientError::Unreachable(crate::oauth_client::without_url(&e)))?;
        let status = res.status();
        if status.is_success()
            && let Some(sid) = res.headers().get(SESSION)
        {
            *lock(&self.session) = Some(sid.clone());
        }
        Ok(match status {
            StatusCode::ACCEPTED => Answer::Accepted,
            s if s.is_success() => Answer::Messages(Messages::from(res)),
            StatusCode::UNAUTHORIZED => Answer::Unauthorized,
            StatusCode::NOT_FOUND if had_session => Answer::SessionEnded,
            status => Answer::Refused {
                status,
                body: res.text().await.unwrap_or_default(),
            },
        })
    }

    /// Opens the server's standalone stream (server-to-client requests and notifications
    /// outside any POST), resuming after `last_event_id` when given.
    pub async fn listen(
        &self,
        bearer: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<Listen, McpClientError> {
        let mut req = self
            .request(reqwest::Method::GET, bearer)
            .header(ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req
            .send()
            .await
            .map_err(|e| McpClientError::Unreachable(crate::oauth_client::without_url(&e)))?;
        Ok(match res.status() {
            s if s.is_success() => Listen::Stream(Messages::from(res)),
            StatusCode::METHOD_NOT_ALLOWED => Listen::NotOffered,
            StatusCode::UNAUTHORIZED => Listen::Unauthorized,
            s => Listen::Refused(s),
        })
    }

    /// Ends the session (a DELETE; the server may refuse with 405, which is fine).
    pub async fn end_session(&self, bearer: Option<&str>) {
        if lock(&self.session).is_none() {
            return;
        }
        let req = self.request(reqwest::Method::DELETE, bearer);
        let _ = tokio::time::timeout(Duration::from_secs(2), req.send()).await;
        self.forget_session();
    }
}
