//! Pending consent decisions: the seam between the authorization endpoint and whatever
//! asks the human (the headless HTML page, or the desktop's native window).
//!
//! Each pending request has a random id and a separate single-use CSRF token; both must
//! come back with the decision, and a decision consumes the entry, so a form can be
//! submitted once. Entries expire after [`CONSENT_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::oauth::authorize::AuthorizeRequest;
use crate::oauth::{constant_time_eq, mint_secret};

/// How long a consent question stays answerable; no answer counts as Deny.
pub const CONSENT_TTL: Duration = Duration::from_secs(5 * 60);
/// Open consent forms kept at most; the oldest form goes first.
const MAX_PENDING: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// What a native consent window shows.
#[derive(Debug, Clone)]
pub struct ConsentRequest {
    pub id: String,
    pub request: AuthorizeRequest,
}

struct Pending {
    request: AuthorizeRequest,
    csrf: String,
    created: Instant,
    /// For native consent: where the window's decision goes.
    answer: Option<oneshot::Sender<Decision>>,
}

/// Where consent questions are answered.
pub enum ConsentMode {
    /// The broker serves an HTML form (headless).
    Page,
    /// Questions go to the desktop shell, which opens native windows.
    Native(mpsc::UnboundedSender<ConsentRequest>),
}

pub struct ConsentBroker {
    pending: Mutex<HashMap<String, Pending>>,
    /// Native consent: where the browser's waiting page goes next (None: undecided).
    outcomes: Mutex<HashMap<String, (Instant, Option<String>)>>,
    mode: ConsentMode,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ConsentLookupError {
    /// Unknown id, already decided, or expired.
    Gone,
    BadCsrf,
}

impl ConsentBroker {
    pub fn new(mode: ConsentMode) -> Self {
        ConsentBroker {
            pending: Mutex::new(HashMap::new()),
            outcomes: Mutex::new(HashMap::new()),
            mode,
        }
    }

    pub fn is_native(&self) -> bool {
        matches!(self.mode, ConsentMode::Native(_))
    }

    /// Registers a question for the HTML form; returns its id and CSRF token.
    pub fn open(&self, request: AuthorizeRequest) -> (String, String) {
        let id = mint_secret();
        let csrf = mint_secret();
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.retain(|_, v| v.created.elapsed() < CONSENT_TTL);
        // Any local process can open consent pages; keep their number bounded.
        if p.len() >= MAX_PENDING {
            let oldest = p
                .iter()
                .filter(|(_, v)| v.answer.is_none())
                .min_by_key(|(_, v)| v.created)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                p.remove(&k);
            }
        }
        p.insert(
            id.clone(),
            Pending {
                request,
                csrf: csrf.clone(),
                created: Instant::now(),
                answer: None,
            },
        );
        (id, csrf)
    }

    /// Consumes a question answered through the HTML form.
    pub fn take(&self, id: &str, csrf: &str) -> Result<AuthorizeRequest, ConsentLookupError> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = p.get(id) else {
            return Err(ConsentLookupError::Gone);
        };
        if entry.created.elapsed() >= CONSENT_TTL || entry.answer.is_some() {
            p.remove(id);
            return Err(ConsentLookupError::Gone);
        }
        if !constant_time_eq(entry.csrf.as_bytes(), csrf.as_bytes()) {
            // A wrong token burns the question: no guessing.
            p.remove(id);
            return Err(ConsentLookupError::BadCsrf);
        }
        p.remove(id)
            .map(|e| e.request)
            .ok_or(ConsentLookupError::Gone)
    }

    /// Asks the native shell and waits for its decision; no answer within the TTL (or
    /// a shell that went away) counts as Deny.
    pub async fn ask_native(&self, request: AuthorizeRequest) -> Decision {
        let ConsentMode::Native(tx) = &self.mode else {
            return Decision::Deny;
        };
        let id = mint_secret();
        let (answer_tx, answer_rx) = oneshot::channel();
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.insert(
                id.clone(),
                Pending {
                    request: request.clone(),
                    csrf: String::new(),
                    created: Instant::now(),
                    answer: Some(answer_tx),
                },
            );
        }
        if tx
            .send(ConsentRequest {
                id: id.clone(),
                request,
            })
            .is_err()
        {
            self.forget(&id);
            return Decision::Deny;
        }
        let d = tokio::time::timeout(CONSENT_TTL, answer_rx).await;
        self.forget(&id);
        match d {
            Ok(Ok(d)) => d,
            _ => Decision::Deny,
        }
    }

    /// The native shell's answer to [`ask_native`](Self::ask_native).
    pub fn decide(&self, id: &str, decision: Decision) -> Result<(), ConsentLookupError> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let tx = p
            .get_mut(id)
            .and_then(|e| e.answer.take())
            .ok_or(ConsentLookupError::Gone)?;
        p.remove(id);
        tx.send(decision).map_err(|_| ConsentLookupError::Gone)
    }

    /// The request behind a native question, for the window to show.
    pub fn details(&self, id: &str) -> Option<AuthorizeRequest> {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.get(id)
            .filter(|e| e.answer.is_some())
            .map(|e| e.request.clone())
    }

    pub fn set_outcome(&self, wait_id: &str, redirect: Option<String>) {
        let mut o = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        o.retain(|_, (t, _)| t.elapsed() < 2 * CONSENT_TTL);
        o.insert(wait_id.to_owned(), (Instant::now(), redirect));
    }

    pub fn outcome(&self, wait_id: &str) -> Option<Option<String>> {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(wait_id)
            .map(|(_, r)| r.clone())
    }

    pub fn clear_outcome(&self, wait_id: &str) {
        self.outcomes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(wait_id);
    }

    fn forget(&self, id: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{ClientId, Resource, Scopes};

    fn req() -> AuthorizeRequest {
        AuthorizeRequest {
            client_id: ClientId("c".into()),
            client_name: "c".into(),
            client_host: None,
            redirect_uri: "http://127.0.0.1/cb".into(),
            state: None,
            code_challenge: "x".into(),
            requested_scopes: Scopes::single("mcp"),
            scopes: Scopes::single("mcp"),
            upstream: "u".into(),
            resource: Resource("http://127.0.0.1:1/mcp/u".into()),
        }
    }

    #[test]
    fn a_form_is_answered_once_and_a_wrong_token_burns_it() {
        let b = ConsentBroker::new(ConsentMode::Page);
        let (id, csrf) = b.open(req());
        assert!(b.take(&id, &csrf).is_ok());
        assert_eq!(b.take(&id, &csrf).unwrap_err(), ConsentLookupError::Gone);
        let (id, csrf) = b.open(req());
        assert_eq!(
            b.take(&id, "wrong").unwrap_err(),
            ConsentLookupError::BadCsrf
        );
        assert_eq!(b.take(&id, &csrf).unwrap_err(), ConsentLookupError::Gone);
    }

    #[test]
    fn pending_forms_are_bounded() {
        let b = ConsentBroker::new(ConsentMode::Page);
        let (first, csrf) = b.open(req());
        for _ in 0..MAX_PENDING {
            b.open(req());
        }
        assert_eq!(
            b.take(&first, &csrf).unwrap_err(),
            ConsentLookupError::Gone,
            "the oldest made room"
        );
        assert!(b.pending.lock().unwrap().len() <= MAX_PENDING);
    }

    #[tokio::test]
    async fn native_questions_reach_the_shell_and_its_answer_comes_back() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let b = std::sync::Arc::new(ConsentBroker::new(ConsentMode::Native(tx)));
        let b2 = b.clone();
        let asked = tokio::spawn(async move { b2.ask_native(req()).await });
        let q = rx.recv().await.unwrap();
        assert_eq!(b.details(&q.id).unwrap().upstream, "u");
        b.decide(&q.id, Decision::Approve).unwrap();
        assert_eq!(asked.await.unwrap(), Decision::Approve);
        assert!(b.decide(&q.id, Decision::Deny).is_err(), "answered once");
    }
}
