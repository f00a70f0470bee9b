//! Per-tool consent and pinned tool definitions (issue 14): the tools a consent screen
//! lists, the policy recorded on approval, the gate the proxy consults on every
//! `tools/call` and `tools/list` ([`ToolPolicies`], rules in `tool_policy`), the approval
//! window for "Ask each time", and editing a grant's tools later (window and CLI).
//!
//! "Ask each time" is asked by whoever can ask: the desktop shell's approval window when
//! it listens ([`Gateway::tool_approvals`]), else, with `[broker] ask_headless =
//! "browser"`, a page of this broker opened in the person's browser (`http::tool_approval`,
//! single-use CSRF token like the consent form); otherwise the call is refused. Both
//! screens show the same [`ToolApprovalView`] and end in [`ApprovalAnswer`].
//!
//! Each grant's policy is cached in memory; any change, from this process or the CLI,
//! moves the store's shared change counter, which empties the cache on the next lookup
//! (one atomic read per call), and the maintenance tick tells the grant's open sessions
//! with `notifications/tools/list_changed` (MCP 2025-11-25 "Tools").
//!
//! Every decision (the choices at consent, an answer in the approval window or page, a
//! choice changed later) goes through [`ToolPolicies::record_decision`]: one tracing
//! line, one `tool_decision` row in the activity log and one
//! [`GatewayEvent::ToolDecision`] for the windows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::clock::now;
use crate::consent::ConsentTool;
use crate::events::GatewayEvent;
use crate::oauth::{GrantId, mint_secret};
use crate::proxy::tool_gate::{ToolCall, ToolGate};
use crate::store::{ChoiceChange, Store, ToolRow};
use crate::tool_policy::arguments::readable_arguments;
use crate::tool_policy::diff::{DiffLine, definition_diff};
use crate::tool_policy::{
    CallVerdict, DecisionKind, Finding, GrantPolicy, Refusal, ToolChoice, ToolDecision,
    ToolDefinition, refusal_message, screen_list,
};

use super::{Gateway, GatewayError};

/// How long a consent screen waits for the upstream to list its tools.
pub(super) const LIST_TOOLS_BOUND: Duration = Duration::from_secs(5);
/// "Allow for 1 hour".
const ALLOW_FOR: i64 = 3600;

/// A question for the desktop shell: open an approval window for this call.
#[derive(Debug, Clone)]
pub struct ToolApprovalRequest {
    pub id: String,
    pub view: ToolApprovalView,
}

/// What the approval window shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolApprovalView {
    pub grant_id: GrantId,
    pub client_name: String,
    pub upstream: String,
    pub tool: String,
    /// The arguments, indented JSON, whole, with secret-looking values masked.
    pub arguments: String,
    /// Seconds until the call is denied without an answer.
    pub timeout_secs: u64,
}

/// An answer in the approval window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalAnswer {
    Once,
    Hour,
    Always,
    Deny,
}

/// A grant's tools as the grants window and `grants show` list them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrantToolsView {
    pub grant_id: GrantId,
    pub client_name: String,
    pub upstream: String,
    /// False: no tools were chosen at consent (the upstream could not be listed, or the
    /// grant predates per-tool consent): every tool is allowed.
    pub pinned: bool,
    pub tools: Vec<ToolView>,
}

/// One tool of a grant, with the change to review when the server serves another
/// definition than the one approved (or a tool never approved).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolView {
    #[serde(flatten)]
    pub row: ToolRow,
    /// Approved vs served, line by line; empty when nothing waits for review.
    pub diff: Vec<DiffLine>,
}

#[derive(Default)]
struct PolicyCache {
    epoch: Option<u64>,
    grants: HashMap<GrantId, Arc<GrantPolicy>>,
}

struct PendingApproval {
    view: ToolApprovalView,
    answer: oneshot::Sender<ApprovalAnswer>,
    /// The approval page's form token (single use, like the consent form's).
    csrf: String,
}

/// Forgets an open question when its call stops waiting, answered or not (the client
/// went away, the time ran out): a late answer then finds nothing to answer.
struct OpenQuestion<'a> {
    approvals: &'a Mutex<HashMap<String, PendingApproval>>,
    id: &'a str,
}

impl Drop for OpenQuestion<'_> {
    fn drop(&mut self) {
        lock(self.approvals).remove(self.id);
    }
}

/// The grants' tool policies: the proxy's [`ToolGate`].
pub struct ToolPolicies {
    store: Store,
    activity: crate::activity::ActivityLog,
    events: broadcast::Sender<GatewayEvent>,
    cache: Mutex<PolicyCache>,
    /// One policy read at a time: concurrent calls after a change wait for the first
    /// read instead of each taking a database connection.
    loading: tokio::sync::Mutex<()>,
    /// The policy each grant's sessions were last told about.
    announced: Mutex<HashMap<GrantId, Arc<GrantPolicy>>>,
    /// Set when a desktop shell listens for approval questions; without one, "Ask each
    /// time" refuses.
    asker: Mutex<Option<mpsc::UnboundedSender<ToolApprovalRequest>>>,
    approvals: Mutex<HashMap<String, PendingApproval>>,
    /// `[broker] ask_headless = "browser"`: the broker's base URL, where the approval
    /// page is served, when no desktop shell asks.
    approval_page: Option<String>,
    /// How long a question waits; no answer denies the call (`[broker] ask_timeout`).
    ask_timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ToolPolicies {
    /// `approval_page`: the base URL of the broker's approval page, when "Ask each time"
    /// is asked in the browser without the desktop app (`[broker] ask_headless`).
    pub(super) fn new(
        store: Store,
        events: broadcast::Sender<GatewayEvent>,
        activity: crate::activity::ActivityLog,
        approval_page: Option<String>,
        ask_timeout: Duration,
    ) -> ToolPolicies {
        ToolPolicies {
            ask_timeout,
            activity,
            approval_page,
            store,
            events,
            cache: Mutex::new(PolicyCache::default()),
            loading: tokio::sync::Mutex::new(()),
            announced: Mutex::new(HashMap::new()),
            asker: Mutex::new(None),
            approvals: Mutex::new(HashMap::new()),
        }
    }

    /// The one place a decision about tools is recorded.
    pub fn record_decision(&self, d: ToolDecision) {
        tracing::info!(
            grant = %d.grant_id,
            upstream = %d.upstream,
            tool = d.tool.as_deref().unwrap_or("*"),
            kind = ?d.kind,
            detail = %d.detail,
            "tool decision"
        );
        self.activity.record(crate::store::activity::ActivityRow {
            at_ms: crate::clock::now_ms(),
            event: "tool_decision".into(),
            grant_id: Some(d.grant_id),
            upstream: Some(d.upstream.clone()),
            method: Some(d.kind.as_str().into()),
            target: d.tool.clone(),
            outcome: "ok".into(),
            detail: Some(serde_json::json!({ "decision": &d.detail }).to_string()),
            ..Default::default()
        });
        let _ = self.events.send(GatewayEvent::ToolDecision(d));
    }

    /// The grant's policy, from the cache while nothing changed.
    async fn policy(&self, grant: GrantId) -> crate::Result<Arc<GrantPolicy>> {
        if let Some(p) = self.cached(grant) {
            return Ok(p);
        }
        let _one = self.loading.lock().await;
        let epoch = self.store.revocation_epoch();
        {
            let mut c = lock(&self.cache);
            if epoch.is_some() && c.epoch == epoch {
                if let Some(p) = c.grants.get(&grant) {
                    return Ok(p.clone());
                }
            } else {
                c.grants.clear();
                c.epoch = epoch;
            }
        }
        let p = Arc::new(self.store.tool_policy(grant).await?);
        // What a session of this grant has seen, for telling it about later changes.
        lock(&self.announced)
            .entry(grant)
            .or_insert_with(|| p.clone());
        let mut c = lock(&self.cache);
        // Read after `epoch` was seen: a change in between moved the counter, and the
        // next lookup drops this entry.
        if epoch.is_some() && c.epoch == epoch {
            c.grants.insert(grant, p.clone());
        }
        Ok(p)
    }

    fn cached(&self, grant: GrantId) -> Option<Arc<GrantPolicy>> {
        let epoch = self.store.revocation_epoch();
        let c = lock(&self.cache);
        (epoch.is_some() && c.epoch == epoch)
            .then(|| c.grants.get(&grant).cloned())
            .flatten()
    }

    /// Whether an "Ask each time" call can be put to a person (the desktop app's window,
    /// or the browser page of `[broker] ask_headless = "browser"`).
    fn can_ask(&self) -> bool {
        lock(&self.asker).is_some() || self.approval_page.is_some()
    }

    async fn ask(&self, call: &ToolCall<'_>) -> Result<(), String> {
        let asker = lock(&self.asker).clone();
        if asker.is_none() && self.approval_page.is_none() {
            return Err(refusal_message(call.tool, Refusal::NoOneToAsk, call.grant));
        }
        let client_name = self
            .store
            .grant_client_name(call.grant)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| format!("grant {}", call.grant));
        let args: Option<Value> = call
            .arguments
            .and_then(|r| serde_json::from_str(r.get()).ok());
        let view = ToolApprovalView {
            grant_id: call.grant,
            client_name,
            upstream: call.upstream.to_owned(),
            tool: call.tool.to_owned(),
            arguments: readable_arguments(args.as_ref()),
            timeout_secs: self.ask_timeout.as_secs(),
        };
        let id = mint_secret();
        let (answer, answered) = oneshot::channel();
        lock(&self.approvals).insert(
            id.clone(),
            PendingApproval {
                view: view.clone(),
                answer,
                csrf: mint_secret(),
            },
        );
        let open = OpenQuestion {
            approvals: &self.approvals,
            id: &id,
        };
        let asked = match (asker, &self.approval_page) {
            (Some(tx), _) => tx
                .send(ToolApprovalRequest {
                    id: id.clone(),
                    view,
                })
                .is_ok(),
            (None, Some(base)) => {
                open_approval_page(&format!("{base}/tool-approval/{id}"), &view);
                true
            }
            (None, None) => false,
        };
        if !asked {
            return Err(refusal_message(call.tool, Refusal::NoOneToAsk, call.grant));
        }
        if let Some(n) = call.asking {
            n.notify_one();
        }
        let got = tokio::time::timeout(self.ask_timeout, answered).await;
        drop(open);
        let (answer, detail) = match got {
            Ok(Ok(a)) => (a, None),
            _ => (ApprovalAnswer::Deny, Some("no answer in time: denied")),
        };
        let t = now();
        let outcome = match answer {
            ApprovalAnswer::Once => Ok(()),
            ApprovalAnswer::Hour => self
                .store
                .allow_tool_until(call.grant, call.tool, t + ALLOW_FOR)
                .await
                .map_err(|e| e.to_string()),
            ApprovalAnswer::Always => self
                .store
                .set_tool_choice(call.grant, call.tool, ToolChoice::Allow, t)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            ApprovalAnswer::Deny => Err(refusal_message(call.tool, Refusal::Denied, call.grant)),
        };
        self.record_decision(ToolDecision {
            grant_id: call.grant,
            upstream: call.upstream.to_owned(),
            tool: Some(call.tool.to_owned()),
            kind: DecisionKind::Ask,
            detail: detail
                .unwrap_or(match answer {
                    ApprovalAnswer::Once => "allowed once",
                    ApprovalAnswer::Hour => "allowed for 1 hour",
                    ApprovalAnswer::Always => "always allowed",
                    ApprovalAnswer::Deny => "denied",
                })
                .to_owned(),
        });
        outcome
    }

    async fn screen(&self, grant: GrantId, upstream: &str, response: &[u8]) -> Option<Bytes> {
        let mut v: Value = serde_json::from_slice(response).ok()?;
        let result = v.get("result")?;
        let screened = match self.policy(grant).await {
            Ok(p) => screen_list(&p, result),
            Err(e) => {
                // Fail closed: without the policy, no tool is shown.
                tracing::warn!(grant = %grant, "reading the tool policy failed: {e}");
                let mut r = result.clone();
                r["tools"] = Value::Array(Vec::new());
                v["result"] = r;
                return Some(Bytes::from(v.to_string()));
            }
        };
        if !screened.findings.is_empty() {
            self.suspend(grant, upstream, &screened.findings).await;
        }
        let r = screened.result?;
        v["result"] = r;
        Some(Bytes::from(v.to_string()))
    }

    /// Records what an upstream served unapproved; the person hears of it once.
    async fn suspend(&self, grant: GrantId, upstream: &str, findings: &[Finding]) {
        match self
            .store
            .record_tool_findings(grant, findings, now())
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(grant = %grant, "recording changed tools failed: {e}");
                return;
            }
        }
        let (mut changed, mut new) = (Vec::new(), Vec::new());
        for f in findings {
            match f {
                Finding::Changed(d) => changed.push(d.name.clone()),
                Finding::New(d) => new.push(d.name.clone()),
            }
        }
        tracing::warn!(grant = %grant, upstream, ?changed, ?new, "tools hidden until approved: the server changed or added them");
        let _ = self.events.send(GatewayEvent::ToolsSuspended {
            grant_id: grant,
            upstream: upstream.to_owned(),
            changed,
            new,
        });
    }
}

impl ToolGate for ToolPolicies {
    fn check_call<'a>(&'a self, call: ToolCall<'a>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let policy = self.policy(call.grant).await.map_err(|e| {
                tracing::warn!(grant = %call.grant, "reading the tool policy failed: {e}");
                "the broker could not read this client's tool policy; see its log".to_owned()
            })?;
            match policy.verdict(call.tool, now()) {
                CallVerdict::Relay => Ok(()),
                CallVerdict::Refuse(why) => Err(refusal_message(call.tool, why, call.grant)),
                CallVerdict::Ask => self.ask(&call).await,
            }
        })
    }

    fn passes_now(&self, grant: GrantId, tool: &str) -> bool {
        self.cached(grant)
            .is_some_and(|p| matches!(p.verdict(tool, now()), CallVerdict::Relay))
    }

    fn screen_list<'a>(
        &'a self,
        grant: GrantId,
        upstream: &'a str,
        response: &'a [u8],
    ) -> BoxFuture<'a, Option<Bytes>> {
        Box::pin(self.screen(grant, upstream, response))
    }
}

impl Gateway {
    /// The one place a decision about tools is recorded (see [`ToolPolicies`]).
    pub fn record_decision(&self, d: ToolDecision) {
        self.inner.tools.record_decision(d);
    }

    /// The tools a consent screen lists, with the proposed choice for each, or why they
    /// could not be listed.
    pub(super) async fn consent_tools(&self, upstream: &str) -> (Vec<ConsentTool>, Option<String>) {
        let desktop = self.inner.consents.is_native();
        match self
            .inner
            .upstreams
            .list_tools(upstream, LIST_TOOLS_BOUND)
            .await
        {
            Ok(tools) => {
                let mut seen = std::collections::HashSet::new();
                let tools = tools
                    .iter()
                    .filter_map(ToolDefinition::of)
                    .filter(|t| seen.insert(t.name.clone()))
                    .map(|tool| ConsentTool {
                        choice: ToolChoice::default_for(&tool, desktop),
                        tool,
                    })
                    .collect();
                (tools, None)
            }
            Err(why) => {
                tracing::warn!(upstream, "cannot list the tools for consent: {why}");
                (Vec::new(), Some(why))
            }
        }
    }

    /// Records the tools chosen at consent for a grant just approved.
    pub(super) async fn save_consent_tools(
        &self,
        grant: GrantId,
        upstream: &str,
        tools: Option<Vec<(ToolDefinition, ToolChoice)>>,
    ) -> crate::Result<()> {
        self.inner
            .store
            .save_tool_policy(grant, tools.as_deref(), now())
            .await?;
        let detail = match &tools {
            None => "all tools (the server could not be listed)".to_owned(),
            Some(t) => summary(t.iter().map(|(d, c)| (d.name.as_str(), *c))),
        };
        self.record_decision(ToolDecision {
            grant_id: grant,
            upstream: upstream.to_owned(),
            tool: None,
            kind: DecisionKind::Consent,
            detail,
        });
        self.announce_tools(grant, false).await;
        // Cached now, so the client's first calls read nothing from the database.
        self.inner.tools.policy(grant).await?;
        Ok(())
    }

    /// A grant's tools and their state.
    pub async fn grant_tools(&self, grant: GrantId) -> Result<GrantToolsView, GatewayError> {
        let g = self.active_grant(grant).await?;
        let rows = self.inner.store.tool_rows(grant).await?;
        Ok(GrantToolsView {
            grant_id: grant,
            client_name: g.client_name,
            upstream: g.upstream,
            pinned: rows.is_some(),
            tools: rows
                .unwrap_or_default()
                .into_iter()
                .map(|row| ToolView {
                    diff: row
                        .served_definition
                        .as_deref()
                        .map(|new| definition_diff(row.definition.as_deref(), new))
                        .unwrap_or_default(),
                    row,
                })
                .collect(),
        })
    }

    /// Sets one tool's choice for a grant. Allow or Ask on a changed or new tool approves
    /// the definition the upstream serves now ("Approve change"); Block keeps it hidden
    /// ("Keep blocked"). Effective on the next request; open sessions are told.
    pub async fn set_tool_choice(
        &self,
        grant: GrantId,
        tool: &str,
        choice: ToolChoice,
    ) -> Result<(), GatewayError> {
        let view = self.grant_tools(grant).await?;
        match self
            .inner
            .store
            .set_tool_choice(grant, tool, choice, now())
            .await?
        {
            ChoiceChange::Changed => {}
            ChoiceChange::UnknownTool => {
                return Err(GatewayError::UnknownTool {
                    grant,
                    tool: tool.to_owned(),
                });
            }
            ChoiceChange::NotPinned => return Err(GatewayError::ToolsNotChosen(grant)),
        }
        let before = view.tools.iter().find(|t| t.row.name == tool);
        let approving = before.is_some_and(|t| t.row.served_definition.is_some());
        self.record_decision(ToolDecision {
            grant_id: grant,
            upstream: view.upstream,
            tool: Some(tool.to_owned()),
            kind: DecisionKind::Choice,
            detail: match (approving, choice) {
                (true, ToolChoice::Block) => "kept blocked".to_owned(),
                (true, c) => format!("change approved: {}", c.as_str()),
                (false, c) => c.as_str().to_owned(),
            },
        });
        self.announce_tools(grant, true).await;
        self.emit(GatewayEvent::GrantsChanged);
        Ok(())
    }

    /// The desktop shell listens for approval questions ("Ask each time"); from then on
    /// Ask tools wait for its answer instead of being refused.
    /// Whether "Ask each time" can be answered here; the consent page says when not.
    pub fn asks_can_be_answered(&self) -> bool {
        self.inner.tools.can_ask()
    }

    pub fn tool_approvals(&self) -> mpsc::UnboundedReceiver<ToolApprovalRequest> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.inner.tools.asker) = Some(tx);
        rx
    }

    /// What an approval window shows.
    pub fn tool_approval_view(&self, id: &str) -> Result<ToolApprovalView, GatewayError> {
        lock(&self.inner.tools.approvals)
            .get(id)
            .map(|p| p.view.clone())
            .ok_or(GatewayError::ConsentGone)
    }

    /// What the approval page shows, and its form's token.
    pub fn tool_approval_form(&self, id: &str) -> Result<(ToolApprovalView, String), GatewayError> {
        lock(&self.inner.tools.approvals)
            .get(id)
            .map(|p| (p.view.clone(), p.csrf.clone()))
            .ok_or(GatewayError::ConsentGone)
    }

    /// The approval page's answer, with its form's token; a wrong token voids the
    /// question (the call is denied), as on the consent form.
    pub fn answer_tool_approval_form(
        &self,
        id: &str,
        csrf: &str,
        answer: ApprovalAnswer,
    ) -> Result<(), GatewayError> {
        let p = self.take_approval(id)?;
        if !crate::oauth::constant_time_eq(p.csrf.as_bytes(), csrf.as_bytes()) {
            let _ = p.answer.send(ApprovalAnswer::Deny);
            return Err(GatewayError::ConsentForged);
        }
        p.answer.send(answer).map_err(|_| GatewayError::ConsentGone)
    }

    /// An approval window's answer; the waiting call continues.
    pub fn answer_tool_approval(
        &self,
        id: &str,
        answer: ApprovalAnswer,
    ) -> Result<(), GatewayError> {
        let p = self.take_approval(id)?;
        p.answer.send(answer).map_err(|_| GatewayError::ConsentGone)
    }

    fn take_approval(&self, id: &str) -> Result<PendingApproval, GatewayError> {
        lock(&self.inner.tools.approvals)
            .remove(id)
            .ok_or(GatewayError::ConsentGone)
    }

    /// Tells the grant's open sessions that their tool list changed, if it did since
    /// they were last told (`changed`: this process just changed it). A grant seen for
    /// the first time is only remembered: its sessions have not listed anything older.
    async fn announce_tools(&self, grant: GrantId, changed: bool) {
        let fresh = match self.inner.store.tool_policy(grant).await {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::warn!(grant = %grant, "reading the tool policy failed: {e}");
                return;
            }
        };
        let before = lock(&self.inner.tools.announced).insert(grant, fresh.clone());
        if changed || before.is_some_and(|b| visible(&b) != visible(&fresh)) {
            self.inner.upstreams.tools_changed_for(grant);
        }
    }

    /// After another process (the CLI) changed something: sessions whose tools changed
    /// are told. Called by the maintenance tick when the change counter moved.
    pub(super) async fn notice_tool_changes(&self) {
        for grant in self.inner.upstreams.grants_with_sessions() {
            self.announce_tools(grant, false).await;
        }
    }
}

/// Opens the approval page in the person's browser; the log names it too, for a broker
/// whose browser cannot be opened (over SSH, in a container).
fn open_approval_page(url: &str, view: &ToolApprovalView) {
    tracing::info!(
        grant = %view.grant_id,
        upstream = %view.upstream,
        tool = %view.tool,
        "a tool call waits for your approval: {url}"
    );
    if let Err(e) = crate::browser::open(url) {
        tracing::warn!("cannot open a browser for the tool approval page ({e}); open {url}");
    }
}

/// What a grant's sessions can see, to tell whether their list changed.
fn visible(p: &GrantPolicy) -> Vec<(&str, &ToolChoice, Option<&str>)> {
    let mut v: Vec<_> = p
        .tools
        .iter()
        .filter(|(_, r)| r.status == crate::tool_policy::ToolStatus::Approved)
        .map(|(n, r)| (n.as_str(), &r.choice, r.pin.as_deref()))
        .collect();
    v.sort();
    v
}

/// "allow: a, b; ask: c; block: d".
fn summary<'a>(tools: impl Iterator<Item = (&'a str, ToolChoice)>) -> String {
    let mut by: [(ToolChoice, Vec<&str>); 3] = [
        (ToolChoice::Allow, vec![]),
        (ToolChoice::Ask, vec![]),
        (ToolChoice::Block, vec![]),
    ];
    for (name, c) in tools {
        if let Some((_, v)) = by.iter_mut().find(|(k, _)| *k == c) {
            v.push(name);
        }
    }
    let parts: Vec<String> = by
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(c, v)| format!("{}: {}", c.as_str(), v.join(", ")))
        .collect();
    if parts.is_empty() {
        "no tools".to_owned()
    } else {
        parts.join("; ")
    }
}
