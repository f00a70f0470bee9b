//! Pending consent decisions: the seam between the authorization endpoint and whatever
//! asks the human (the headless HTML page, or the desktop's native window).
//!
//! Each pending request has a random id and a separate single-use CSRF token; both must
//! come back with the decision, and a decision consumes the entry, so a form can be
//! submitted once. Entries expire after [`CONSENT_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::oauth::authorize::AuthorizeRequest;
use crate::oauth::{constant_time_eq, mint_secret, redirect};
use crate::tool_policy::{ToolChoice, ToolDefinition};

/// How long a consent question stays answerable; no answer counts as Deny.
pub const CONSENT_TTL: Duration = Duration::from_secs(5 * 60);
/// Open consent forms kept at most; the oldest form goes first.
const MAX_PENDING: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// What the person is shown before deciding, built once from the validated request and
/// rendered by both the HTML page and the native window, so the two cannot disagree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentView {
    /// The client's self-asserted name (its id when it gave none).
    pub client_name: String,
    pub client_id: String,
    /// For a Client ID Metadata Document client: the host its document came from.
    pub described_by: Option<String>,
    /// Where the approval is sent: the redirect URI's host.
    pub redirect_host: String,
    /// False when the redirect leaves this machine: the screens warn.
    pub redirect_is_loopback: bool,
    pub upstream: String,
    /// The scopes asked for, as the client asked.
    pub scope: String,
    /// Asked for but not offered by the broker; granted without them.
    pub ignored_scopes: Option<String>,
    /// Shown on every consent screen: what approving hands over.
    pub access_warning: String,
    /// The upstream's tools with the proposed choice for each (issue 14).
    pub tools: Vec<ConsentTool>,
    /// Why the tools could not be listed: the choice is then all or nothing.
    pub tools_error: Option<String>,
    /// The upstream's accounts when the person must choose one (two or more); empty
    /// otherwise, and then the screens look as they did before accounts.
    pub accounts: Vec<String>,
    /// The account this client chose last time, if still one of `accounts`: named as a
    /// suggestion, never pre-selected.
    pub suggested_account: Option<String>,
}

/// One tool on a consent screen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentTool {
    #[serde(flatten)]
    pub tool: ToolDefinition,
    /// What the screen proposes; the person may change it.
    pub choice: ToolChoice,
}

/// The person's choices per tool, by name; a tool left out keeps what was proposed.
pub type ToolChoices = HashMap<String, ToolChoice>;

/// Everything a consent screen sends back: the same from the HTML form and the native
/// window, so both reach the same checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentAnswer {
    pub decision: Decision,
    /// Changes to the proposed tool choices (issue 14).
    pub tools: ToolChoices,
    /// The account chosen, when the upstream has several (issue 15).
    pub account: Option<String>,
}

impl ConsentAnswer {
    pub fn deny() -> ConsentAnswer {
        ConsentAnswer {
            decision: Decision::Deny,
            tools: ToolChoices::new(),
            account: None,
        }
    }

    /// Approve as proposed, with this account.
    pub fn approve(account: Option<String>) -> ConsentAnswer {
        ConsentAnswer {
            decision: Decision::Approve,
            tools: ToolChoices::new(),
            account,
        }
    }
}

impl ConsentView {
    pub fn of(req: &AuthorizeRequest) -> ConsentView {
        let ignored = req.requested_scopes.difference(&req.scopes);
        let client_name = if req.client_name.is_empty() {
            req.client_id.0.clone()
        } else {
            req.client_name.clone()
        };
        ConsentView {
            access_warning: access_warning(&client_name, &req.upstream),
            client_name,
            client_id: req.client_id.0.clone(),
            described_by: req.client_host.clone(),
            redirect_host: redirect::display_host(&req.redirect_uri),
            redirect_is_loopback: redirect::is_loopback(&req.redirect_uri),
            upstream: req.upstream.clone(),
            scope: req.requested_scopes.to_string(),
            ignored_scopes: (!ignored.is_empty()).then(|| ignored.to_string()),
            tools: Vec::new(),
            tools_error: None,
            accounts: Vec::new(),
            suggested_account: None,
        }
    }

    /// The tools to record on approval: what was proposed, with the person's changes.
    /// `None` when the tools could not be listed (all or nothing).
    pub fn chosen_tools(&self, choices: &ToolChoices) -> Option<Vec<(ToolDefinition, ToolChoice)>> {
        if self.tools_error.is_some() {
            return None;
        }
        Some(
            self.tools
                .iter()
                .map(|t| {
                    let c = choices.get(&t.tool.name).copied().unwrap_or(t.choice);
                    (t.tool.clone(), c)
                })
                .collect(),
        )
    }
}

/// What approving means, said every time: the client acts as the person on the upstream.
pub fn access_warning(client_name: &str, upstream: &str) -> String {
    format!(
        "Approving gives {client_name} access to the tools of {upstream} as you: it can \
         call them with the accounts and keys mcp-broker uses for {upstream}, until you \
         revoke this access."
    )
}

/// A question for the desktop shell: open a consent window for this id.
#[derive(Debug, Clone)]
pub struct ConsentRequest {
    pub id: String,
    pub view: ConsentView,
}

enum Pending {
    /// Answered by a POST of the HTML form, which must carry the CSRF token.
    Form {
        request: Box<AuthorizeRequest>,
        view: Box<ConsentView>,
        csrf: String,
        created: Instant,
    },
    /// Answered by a native window through the shell.
    Native {
        view: Box<ConsentView>,
        created: Instant,
        answer: oneshot::Sender<ConsentAnswer>,
    },
}

impl Pending {
    fn created(&self) -> Instant {
        match self {
            Pending::Form { created, .. } | Pending::Native { created, .. } => *created,
        }
    }
}

/// Where consent questions are answered.
pub enum ConsentMode {
    /// The broker serves an HTML form (headless).
    Page,
    /// Questions go to the desktop shell, which opens native windows.
    Native(mpsc::UnboundedSender<ConsentRequest>),
}

/// How a browser that waits for a native decision stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitState {
    Undecided,
    /// Decided: send the browser here (the client's redirect URI with a code or error).
    Decided(String),
    /// Unknown or expired wait id.
    Gone,
}

/// The open consent questions and the browsers waiting for native answers.
pub struct Consents {
    pending: Mutex<HashMap<String, Pending>>,
    waits: Mutex<HashMap<String, (Instant, Option<String>)>>,
    mode: ConsentMode,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ConsentLookupError {
    /// Unknown id, already decided, or expired.
    Gone,
    BadCsrf,
}

impl Consents {
    pub fn new(mode: ConsentMode) -> Self {
        Consents {
            pending: Mutex::new(HashMap::new()),
            waits: Mutex::new(HashMap::new()),
            mode,
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn waits(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<String>)>> {
        self.waits.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_native(&self) -> bool {
        matches!(self.mode, ConsentMode::Native(_))
    }

    /// Registers a question for the HTML form; returns its id and CSRF token.
    pub fn open_form(&self, request: AuthorizeRequest, view: ConsentView) -> (String, String) {
        let id = mint_secret();
        let csrf = mint_secret();
        let mut p = self.pending();
        p.retain(|_, v| v.created().elapsed() < CONSENT_TTL);
        // Any local process can open consent pages; keep their number bounded.
        if p.len() >= MAX_PENDING {
            let oldest = p
                .iter()
                .filter(|(_, v)| matches!(v, Pending::Form { .. }))
                .min_by_key(|(_, v)| v.created())
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                p.remove(&k);
            }
        }
        p.insert(
            id.clone(),
            Pending::Form {
                request: Box::new(request),
                view: Box::new(view),
                csrf: csrf.clone(),
                created: Instant::now(),
            },
        );
        (id, csrf)
    }

    /// Consumes a question answered through the HTML form.
    pub fn take_form(
        &self,
        id: &str,
        csrf: &str,
    ) -> Result<(AuthorizeRequest, ConsentView), ConsentLookupError> {
        let mut p = self.pending();
        let Some(Pending::Form {
            csrf: expected,
            created,
            ..
        }) = p.get(id)
        else {
            return Err(ConsentLookupError::Gone);
        };
        if created.elapsed() >= CONSENT_TTL {
            p.remove(id);
            return Err(ConsentLookupError::Gone);
        }
        if !constant_time_eq(expected.as_bytes(), csrf.as_bytes()) {
            // A wrong token burns the question: no guessing.
            p.remove(id);
            return Err(ConsentLookupError::BadCsrf);
        }
        match p.remove(id) {
            Some(Pending::Form { request, view, .. }) => Ok((*request, *view)),
            _ => Err(ConsentLookupError::Gone),
        }
    }

    /// Asks the native shell and waits for its answer; no answer within the TTL (or a
    /// shell that went away) counts as Deny.
    pub async fn ask_native(&self, view: ConsentView) -> ConsentAnswer {
        let ConsentMode::Native(tx) = &self.mode else {
            return ConsentAnswer::deny();
        };
        let id = mint_secret();
        let (answer, answered) = oneshot::channel();
        self.pending().insert(
            id.clone(),
            Pending::Native {
                view: Box::new(view.clone()),
                created: Instant::now(),
                answer,
            },
        );
        if tx
            .send(ConsentRequest {
                id: id.clone(),
                view,
            })
            .is_err()
        {
            self.pending().remove(&id);
            return ConsentAnswer::deny();
        }
        let d = tokio::time::timeout(CONSENT_TTL, answered).await;
        self.pending().remove(&id);
        match d {
            Ok(Ok(d)) => d,
            _ => ConsentAnswer::deny(),
        }
    }

    /// The native shell's answer to [`ask_native`](Self::ask_native).
    pub fn answer_native(&self, id: &str, answer: ConsentAnswer) -> Result<(), ConsentLookupError> {
        let mut p = self.pending();
        if !matches!(p.get(id), Some(Pending::Native { .. })) {
            return Err(ConsentLookupError::Gone);
        }
        match p.remove(id) {
            Some(Pending::Native { answer: tx, .. }) => {
                tx.send(answer).map_err(|_| ConsentLookupError::Gone)
            }
            _ => Err(ConsentLookupError::Gone),
        }
    }

    /// What a native window for this question shows.
    pub fn native_view(&self, id: &str) -> Option<ConsentView> {
        match self.pending().get(id) {
            Some(Pending::Native { view, .. }) => Some((**view).clone()),
            _ => None,
        }
    }

    /// The upstream of an open HTML-form question, without consuming it (an answer that
    /// must be refused leaves the form answerable).
    pub fn form_upstream(&self, id: &str) -> Option<String> {
        match self.pending().get(id) {
            Some(Pending::Form { request, .. }) => Some(request.upstream.clone()),
            _ => None,
        }
    }

    /// A browser starts waiting for a native decision; returns its wait id.
    pub fn start_wait(&self) -> String {
        let id = mint_secret();
        let mut w = self.waits();
        w.retain(|_, (t, _)| t.elapsed() < 2 * CONSENT_TTL);
        w.insert(id.clone(), (Instant::now(), None));
        id
    }

    pub fn finish_wait(&self, wait_id: &str, redirect: String) {
        if let Some(slot) = self.waits().get_mut(wait_id) {
            slot.1 = Some(redirect);
        }
    }

    /// How the wait stands; a decided wait is consumed (the redirect is given once).
    pub fn poll_wait(&self, wait_id: &str) -> WaitState {
        let mut w = self.waits();
        match w.get(wait_id) {
            None => WaitState::Gone,
            Some((_, None)) => WaitState::Undecided,
            Some((_, Some(_))) => match w.remove(wait_id) {
                Some((_, Some(to))) => WaitState::Decided(to),
                _ => WaitState::Gone,
            },
        }
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
        let b = Consents::new(ConsentMode::Page);
        let (id, csrf) = b.open_form(req(), ConsentView::of(&req()));
        assert!(b.take_form(&id, &csrf).is_ok());
        assert_eq!(
            b.take_form(&id, &csrf).unwrap_err(),
            ConsentLookupError::Gone
        );
        let (id, csrf) = b.open_form(req(), ConsentView::of(&req()));
        assert_eq!(
            b.take_form(&id, "wrong").unwrap_err(),
            ConsentLookupError::BadCsrf
        );
        assert_eq!(
            b.take_form(&id, &csrf).unwrap_err(),
            ConsentLookupError::Gone
        );
    }

    #[test]
    fn pending_forms_are_bounded() {
        let b = Consents::new(ConsentMode::Page);
        let (first, csrf) = b.open_form(req(), ConsentView::of(&req()));
        for _ in 0..MAX_PENDING {
            b.open_form(req(), ConsentView::of(&req()));
        }
        assert_eq!(
            b.take_form(&first, &csrf).unwrap_err(),
            ConsentLookupError::Gone,
            "the oldest made room"
        );
        assert!(b.pending.lock().unwrap().len() <= MAX_PENDING);
    }

    #[tokio::test]
    async fn native_questions_reach_the_shell_and_its_answer_comes_back() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let b = std::sync::Arc::new(Consents::new(ConsentMode::Native(tx)));
        let b2 = b.clone();
        let asked = tokio::spawn(async move { b2.ask_native(ConsentView::of(&req())).await });
        let q = rx.recv().await.unwrap();
        assert_eq!(q.view.upstream, "u");
        assert_eq!(b.native_view(&q.id).unwrap(), q.view);
        assert!(
            b.take_form(&q.id, "").is_err(),
            "a native question cannot be answered by the form"
        );
        b.answer_native(&q.id, ConsentAnswer::approve(Some("work".into())))
            .unwrap();
        let got = asked.await.unwrap();
        assert_eq!(got.decision, Decision::Approve);
        assert_eq!(got.account.as_deref(), Some("work"));
        assert!(
            b.answer_native(&q.id, ConsentAnswer::deny()).is_err(),
            "answered once"
        );
    }

    #[test]
    fn a_wait_gives_its_redirect_once() {
        let b = Consents::new(ConsentMode::Page);
        let id = b.start_wait();
        assert_eq!(b.poll_wait(&id), WaitState::Undecided);
        b.finish_wait(&id, "http://127.0.0.1/cb?code=x".into());
        assert_eq!(
            b.poll_wait(&id),
            WaitState::Decided("http://127.0.0.1/cb?code=x".into())
        );
        assert_eq!(b.poll_wait(&id), WaitState::Gone);
        assert_eq!(b.poll_wait("unknown"), WaitState::Gone);
    }

    #[test]
    fn the_view_names_the_client_and_what_was_dropped() {
        let mut r = req();
        r.client_name = String::new();
        r.requested_scopes = Scopes::parse("mcp email").unwrap();
        r.redirect_uri = "https://example.com/cb".into();
        let v = ConsentView::of(&r);
        assert_eq!(v.client_name, "c", "the id stands in for a missing name");
        assert_eq!(v.ignored_scopes.as_deref(), Some("email"));
        assert!(!v.redirect_is_loopback);
        assert_eq!(v.redirect_host, "example.com");
    }
}
