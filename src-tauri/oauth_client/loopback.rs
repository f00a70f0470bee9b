//! The redirect of a native app (RFC 8252 §7.3): a listener on 127.0.0.1 on a port the OS
//! picks, at `/callback`, that waits for the one answer to one authorization request. An
//! answer for another request (a stale tab) gets a 400 and the wait goes on; anything
//! else at `/callback` (denied, the wrong issuer, no code) ends the wait with that error.
//! The page the browser shows says what happened and that the tab can be closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::{OAuthClientError, PendingAuthorization};

pub struct LoopbackRedirect {
    listener: TcpListener,
    redirect_uri: String,
}

type Answer = Result<String, OAuthClientError>;

struct Waiting {
    pending: PendingAuthorization,
    answer: Mutex<Option<oneshot::Sender<Answer>>>,
}

impl LoopbackRedirect {
    pub async fn bind() -> Result<LoopbackRedirect, OAuthClientError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(OAuthClientError::Listen)?;
        let port = listener
            .local_addr()
            .map_err(OAuthClientError::Listen)?
            .port();
        Ok(LoopbackRedirect {
            listener,
            redirect_uri: format!("http://127.0.0.1:{port}/callback"),
        })
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Serves `/callback` until the answer to `pending` comes back or `wait` passes;
    /// returns the code (checked by [`PendingAuthorization::code_from`]).
    pub async fn code(
        self,
        pending: &PendingAuthorization,
        wait: Duration,
    ) -> Result<String, OAuthClientError> {
        let (tx, rx) = oneshot::channel();
        let waiting = Arc::new(Waiting {
            pending: pending.clone(),
            answer: Mutex::new(Some(tx)),
        });
        let app = axum::Router::new()
            .route("/callback", get(callback))
            .with_state(waiting);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        let answer = match tokio::time::timeout(wait, rx).await {
            Ok(Ok(a)) => a,
            Ok(Err(_)) => Err(OAuthClientError::NoCode),
            Err(_) => Err(OAuthClientError::Timeout(wait.as_secs())),
        };
        // Let the page that was just answered reach the browser, then stop listening.
        let _ = stop.send(());
        if tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .is_err()
        {
            tracing::debug!("the loopback listener did not stop within 2 s");
        }
        answer
    }
}

async fn callback(
    State(w): State<Arc<Waiting>>,
    Query(params): Query<HashMap<String, String>>,
) -> (StatusCode, Html<String>) {
    let answer = w.pending.code_from(&params);
    let (status, text) = match &answer {
        Err(OAuthClientError::WrongState) => {
            // Not this request's answer: keep waiting for the right one.
            return page(
                StatusCode::BAD_REQUEST,
                "This answer is not for the current request.",
            );
        }
        Ok(_) => (
            StatusCode::OK,
            "Access approved. You can close this tab and return to your application.",
        ),
        Err(OAuthClientError::Denied(_)) => (
            StatusCode::OK,
            "Access was not granted. You can close this tab.",
        ),
        Err(OAuthClientError::WrongIssuer) => (
            StatusCode::BAD_REQUEST,
            "The answer came from another issuer.",
        ),
        Err(_) => (StatusCode::BAD_REQUEST, "The answer carries no code."),
    };
    let sender = w.answer.lock().unwrap_or_else(|e| e.into_inner()).take();
    match sender {
        Some(tx) => {
            let _ = tx.send(answer);
            page(status, text)
        }
        None => page(StatusCode::GONE, "This request was already answered."),
    }
}

fn page(status: StatusCode, text: &str) -> (StatusCode, Html<String>) {
    (
        status,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>mcp-broker</title><p style=\"font:16px system-ui;margin:3rem\">{text}</p>"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::discovery::sample_server;

    /// A loopback redirect waiting for one request's answer: its URI, the request's
    /// `state`, and the wait.
    async fn waiting(
        wait: Duration,
    ) -> (
        String,
        String,
        tokio::task::JoinHandle<Result<String, OAuthClientError>>,
    ) {
        let lb = LoopbackRedirect::bind().await.unwrap();
        let uri = lb.redirect_uri().to_owned();
        let (_, p) =
            PendingAuthorization::start(&sample_server(true, &["S256"]), "c", &uri, "r", &[])
                .unwrap();
        let state = p.state.clone();
        (
            uri,
            state,
            tokio::spawn(async move { lb.code(&p, wait).await }),
        )
    }

    async fn get(url: &str) -> reqwest::Result<reqwest::Response> {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
    }

    const ISS: &str = "iss=http%3A%2F%2F127.0.0.1%3A9";

    /// A real browser's path: a stale tab, a favicon, then the answer.
    #[tokio::test]
    async fn waits_for_this_requests_answer_and_ignores_the_rest() {
        let (uri, state, wait) = waiting(Duration::from_secs(20)).await;
        let stale = get(&format!("{uri}?state=stale&code=x&{ISS}"))
            .await
            .unwrap();
        assert_eq!(stale.status(), 400);
        let base = uri.trim_end_matches("/callback");
        assert_eq!(
            get(&format!("{base}/favicon.ico")).await.unwrap().status(),
            404
        );
        let r = get(&format!("{uri}?state={state}&code=the-code&{ISS}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("Access approved"));
        assert_eq!(wait.await.unwrap().unwrap(), "the-code");
        // The listener is gone once the answer is in.
        assert!(get(&uri).await.is_err());
    }

    #[tokio::test]
    async fn a_denial_or_another_issuer_ends_the_wait_with_that_error() {
        for (query, page_text) in [
            (format!("error=access_denied&{ISS}"), "not granted"),
            ("code=x&iss=http%3A%2F%2Fevil".to_owned(), "another issuer"),
        ] {
            let (uri, state, wait) = waiting(Duration::from_secs(20)).await;
            let r = get(&format!("{uri}?state={state}&{query}")).await.unwrap();
            assert!(r.text().await.unwrap().contains(page_text), "{query}");
            assert!(wait.await.unwrap().is_err(), "{query}");
        }
    }

    #[tokio::test]
    async fn gives_up_after_the_wait() {
        let (_, _, wait) = waiting(Duration::from_millis(100)).await;
        assert!(matches!(
            wait.await.unwrap(),
            Err(OAuthClientError::Timeout(_))
        ));
    }
}
