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

/// The caller's bearer token, marked sensitive (kept out of debug output).
fn with_bearer(req: reqwest::RequestBuilder, bearer: Option<&str>) -> reqwest::RequestBuilder {
    match bearer.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
        Some(mut v) => {
            v.set_sensitive(true);
            req.header(AUTHORIZATION, v)
        }
        None => req,
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
        let mut req = with_bearer(
            self.http
                .request(method, self.endpoint.clone())
                .headers(self.headers.clone()),
            bearer,
        );
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
        let req = self.request(reqwest::Method::POST, bearer);
        self.send_post(req, body, had_session).await
    }

    /// POSTs one 2026-07-28 request: stateless, so with its own routing `headers`
    /// (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`) and never the session's id or
    /// version (MCP 2026-07-28 basic/transports/streamable-http §Standard Request Headers).
    pub async fn post_stateless(
        &self,
        body: String,
        bearer: Option<&str>,
        headers: HeaderMap,
    ) -> Result<Answer, McpClientError> {
        let req = with_bearer(
            self.http
                .request(reqwest::Method::POST, self.endpoint.clone())
                .headers(self.headers.clone())
                .headers(headers),
            bearer,
        );
        self.send_post(req, body, false).await
    }

    async fn send_post(
        &self,
        req: reqwest::RequestBuilder,
        body: String,
        had_session: bool,
    ) -> Result<Answer, McpClientError> {
        let res = req
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::{HeaderMap as Headers, StatusCode as Status};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;

    use super::*;

    /// A POST's method and the headers the client sent with it.
    type Sent = (String, Option<String>, Option<String>, Option<String>);

    /// What the test server saw.
    #[derive(Default)]
    struct Seen {
        headers: Mutex<Vec<Sent>>,
        session_ended: std::sync::atomic::AtomicBool,
        deleted: Mutex<Option<String>>,
    }

    fn header(h: &Headers, name: &str) -> Option<String> {
        h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    /// A Streamable HTTP server in miniature: `initialize` opens session `s1`; `sse`
    /// answers with an event stream; notifications get 202; `fail` gets a JSON-RPC error
    /// with 400; once the session is ended, requests carrying it get 404.
    async fn server(seen: Arc<Seen>) -> Url {
        let on_post = {
            let seen = seen.clone();
            move |h: Headers, body: String| {
                let seen = seen.clone();
                async move {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let method = v["method"].as_str().unwrap_or("").to_owned();
                    let sid = header(&h, SESSION);
                    seen.headers.lock().unwrap().push((
                        method.clone(),
                        sid.clone(),
                        header(&h, VERSION),
                        header(&h, "authorization"),
                    ));
                    let ended = seen.session_ended.load(std::sync::atomic::Ordering::SeqCst);
                    let reply: Response = match method.as_str() {
                        "initialize" => (
                            [(SESSION, "s1"), ("content-type", "application/json")],
                            r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}"#,
                        )
                            .into_response(),
                        _ if sid.is_some() && ended => Status::NOT_FOUND.into_response(),
                        "sse" => (
                            [("content-type", "text/event-stream")],
                            "id: 1\ndata: {\"a\":1}\n\n: keep-alive\n\nid: 2\ndata: {\"b\":2}\n\n",
                        )
                            .into_response(),
                        "fail" => (
                            Status::BAD_REQUEST,
                            r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32600,"message":"no"}}"#,
                        )
                            .into_response(),
                        _ => Status::ACCEPTED.into_response(),
                    };
                    reply
                }
            }
        };
        let on_get = |h: Headers| async move {
            if header(&h, "last-event-id").as_deref() == Some("7") {
                return Status::METHOD_NOT_ALLOWED.into_response();
            }
            (
                [("content-type", "text/event-stream")],
                "id: 7\ndata: {\"method\":\"notifications/x\"}\n\n",
            )
                .into_response()
        };
        let on_delete = {
            let seen = seen.clone();
            move |h: Headers| {
                let seen = seen.clone();
                async move {
                    *seen.deleted.lock().unwrap() = header(&h, SESSION);
                    Status::OK
                }
            }
        };
        let app = axum::Router::new().route("/mcp", post(on_post).get(on_get).delete(on_delete));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap()
    }

    async fn all(answer: Answer) -> Vec<String> {
        let Answer::Messages(mut m) = answer else {
            panic!("expected messages");
        };
        let mut out = vec![];
        while let Some(x) = m.next().await {
            out.push(x.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_session_from_initialize_to_delete() {
        let seen = Arc::new(Seen::default());
        let url = server(seen.clone()).await;
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let c = StreamableHttp::new(http, url, HeaderMap::new());
        let post = |m: &str, id: Option<u32>| {
            let body = match id {
                Some(id) => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{m}"}}"#),
                None => format!(r#"{{"jsonrpc":"2.0","method":"{m}"}}"#),
            };
            c.post(body, Some("tok"))
        };

        let init = all(post("initialize", Some(1)).await.unwrap()).await;
        assert!(init[0].contains("2025-06-18"));
        assert_eq!(c.session_id().as_deref(), Some("s1"));
        c.set_protocol_version("2025-06-18");

        // SSE: every event's data in order, keep-alives skipped.
        assert_eq!(
            all(post("sse", Some(2)).await.unwrap()).await,
            [r#"{"a":1}"#, r#"{"b":2}"#]
        );
        assert!(matches!(
            post("notifications/initialized", None).await.unwrap(),
            Answer::Accepted
        ));
        match post("fail", Some(3)).await.unwrap() {
            Answer::Refused { status, body } => {
                assert_eq!(status, 400);
                assert!(body.contains("-32600"));
            }
            _ => panic!("expected Refused"),
        }
        // Every request after initialize carries the session, the version and the token.
        let headers = seen.headers.lock().unwrap().clone();
        assert_eq!(
            headers[0],
            ("initialize".into(), None, None, Some("Bearer tok".into()))
        );
        for (m, sid, v, auth) in &headers[1..] {
            assert_eq!(
                (sid.as_deref(), v.as_deref(), auth.as_deref()),
                (Some("s1"), Some("2025-06-18"), Some("Bearer tok")),
                "{m}"
            );
        }

        // The standalone stream, then resuming after its last event.
        let Listen::Stream(mut s) = c.listen(Some("tok"), None).await.unwrap() else {
            panic!("expected the GET stream");
        };
        assert!(s.next().await.unwrap().unwrap().contains("notifications/x"));
        assert!(s.next().await.is_none());
        assert_eq!(s.last_event_id(), Some("7"));
        assert!(matches!(
            c.listen(Some("tok"), s.last_event_id()).await.unwrap(),
            Listen::NotOffered
        ));

        // The server ends the session: a 404 to a request that carried it.
        seen.session_ended
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(
            post("tools/list", Some(4)).await.unwrap(),
            Answer::SessionEnded
        ));
        c.end_session(Some("tok")).await;
        assert_eq!(seen.deleted.lock().unwrap().as_deref(), Some("s1"));
        assert_eq!(c.session_id(), None);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_not_an_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = StreamableHttp::new(
            reqwest::Client::builder().no_proxy().build().unwrap(),
            Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap(),
            HeaderMap::new(),
        );
        assert!(matches!(
            c.post("{}".into(), None).await,
            Err(McpClientError::Unreachable(_))
        ));
    }
}
