//! Per-tool consent: which tools of an upstream a grant may see and call, and whether the
//! definitions it calls are still the ones the person approved (issue 14). Pure rules:
//! plain data in, decisions out, `now` passed in. The gateway keeps each grant's policy
//! (`gateway::tools`), the proxy asks it before relaying `tools/call` and filters
//! `tools/list` answers (MCP 2025-11-25 "Tools": `tools/list`, `tools/call`,
//! `notifications/tools/list_changed`).
//!
//! A grant approved while its upstream could not be reached has no tool list: all or
//! nothing, every tool allowed and nothing pinned ([`GrantPolicy::unpinned`]). A grant
//! made before per-tool consent existed has no policy at all and is treated the same.

pub mod arguments;
pub mod definition;
pub mod diff;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::oauth::UnixTime;
pub use definition::ToolDefinition;

/// The person's choice for one tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    Allow,
    /// Ask each time it is called (the desktop app's approval window).
    Ask,
    Block,
}

impl ToolChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolChoice::Allow => "allow",
            ToolChoice::Ask => "ask",
            ToolChoice::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<ToolChoice> {
        match s {
            "allow" => Some(ToolChoice::Allow),
            "ask" => Some(ToolChoice::Ask),
            "block" => Some(ToolChoice::Block),
            _ => None,
        }
    }

    /// What a consent screen proposes: the desktop app asks for tools that say they are
    /// destructive; the headless page allows everything (and marks those tools).
    pub fn default_for(tool: &ToolDefinition, desktop: bool) -> ToolChoice {
        if desktop && tool.destructive {
            ToolChoice::Ask
        } else {
            ToolChoice::Allow
        }
    }
}

/// Whether the definition the upstream serves is the one the person approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    /// Served as approved (or never served differently).
    Approved,
    /// The upstream now serves a different definition: suspended until approved.
    Changed,
    /// Appeared after consent (a rename is a new tool): hidden until approved.
    New,
}

impl ToolStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolStatus::Approved => "approved",
            ToolStatus::Changed => "changed",
            ToolStatus::New => "new",
        }
    }

    pub fn parse(s: &str) -> Option<ToolStatus> {
        match s {
            "approved" => Some(ToolStatus::Approved),
            "changed" => Some(ToolStatus::Changed),
            "new" => Some(ToolStatus::New),
            _ => None,
        }
    }
}

/// One tool of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolRule {
    pub choice: ToolChoice,
    pub status: ToolStatus,
    /// The pin of the approved definition (`None` for a new tool not yet approved).
    pub pin: Option<String>,
    /// "Allow for 1 hour": an Ask tool relays without asking until then.
    pub allowed_until: Option<UnixTime>,
}

/// A grant's tools, as the proxy consults them on every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantPolicy {
    /// False: no tool list was approved (all or nothing): every tool is allowed.
    pub pinned: bool,
    pub tools: HashMap<String, ToolRule>,
}

/// What happens to one `tools/call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallVerdict {
    Relay,
    /// Ask the person first.
    Ask,
    Refuse(Refusal),
}

/// A decision the person made about a grant's tools, for the activity log: what the
/// grant's tools became, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolDecision {
    pub grant_id: crate::oauth::GrantId,
    pub upstream: String,
    /// `None`: the decision covers all the grant's tools (consent).
    pub tool: Option<String>,
    pub kind: DecisionKind,
    /// One line for the person, such as "allow once" or "allow: echo, ask: rm".
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// The tools chosen at consent.
    Consent,
    /// An answer in the approval window (allow once, for an hour, always, deny, timeout).
    Ask,
    /// A choice changed later (grants window or CLI), approving a changed or new
    /// definition included.
    Choice,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Consent => "consent",
            DecisionKind::Ask => "ask",
            DecisionKind::Choice => "choice",
        }
    }
}

/// Why a call is refused; each says how to allow the tool ([`refusal_message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Blocked,
    /// Not among the tools the person saw at consent.
    Unknown,
    /// Its definition changed since it was approved.
    Changed,
    /// It appeared after consent.
    New,
    /// An Ask tool where no one can be asked (headless).
    NoOneToAsk,
    /// The person said no (or did not answer in time).
    Denied,
}

impl GrantPolicy {
    /// All or nothing: every tool allowed, nothing pinned.
    pub fn unpinned() -> GrantPolicy {
        GrantPolicy::default()
    }

    pub fn verdict(&self, tool: &str, now: UnixTime) -> CallVerdict {
        if !self.pinned {
            return CallVerdict::Relay;
        }
        let Some(rule) = self.tools.get(tool) else {
            return CallVerdict::Refuse(Refusal::Unknown);
        };
        match (rule.status, rule.choice) {
            (ToolStatus::New, _) => CallVerdict::Refuse(Refusal::New),
            (ToolStatus::Changed, _) => CallVerdict::Refuse(Refusal::Changed),
            (_, ToolChoice::Block) => CallVerdict::Refuse(Refusal::Blocked),
            (_, ToolChoice::Allow) => CallVerdict::Relay,
            (_, ToolChoice::Ask) if rule.allowed_until.is_some_and(|t| now < t) => {
                CallVerdict::Relay
            }
            (_, ToolChoice::Ask) => CallVerdict::Ask,
        }
    }

    /// Whether `tools/list` shows this tool: approved and not blocked.
    fn shows(&self, tool: &str) -> bool {
        !self.pinned
            || self
                .tools
                .get(tool)
                .is_some_and(|r| r.status == ToolStatus::Approved && r.choice != ToolChoice::Block)
    }
}

/// A tool the upstream serves that the grant has not approved as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A pinned tool is served with another definition.
    Changed(ToolDefinition),
    /// A tool that is not in the policy at all.
    New(ToolDefinition),
}

/// A `tools/list` result screened against a grant's policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Screened {
    /// The result with only the tools the grant may see; `None` when nothing was removed
    /// (the upstream's bytes are relayed unchanged).
    pub result: Option<Value>,
    /// What is not yet known to the policy as served; each is recorded once.
    pub findings: Vec<Finding>,
}

/// Screens a `tools/list` result: hides blocked, changed and new tools. A tool already
/// recorded as changed or new is hidden again without a new finding, unless what the
/// upstream serves now is the approved definition again.
pub fn screen_list(policy: &GrantPolicy, result: &Value) -> Screened {
    let Some(tools) = result.get("tools").and_then(Value::as_array) else {
        return Screened {
            result: None,
            findings: Vec::new(),
        };
    };
    if !policy.pinned {
        return Screened {
            result: None,
            findings: Vec::new(),
        };
    }
    let mut findings = Vec::new();
    let mut keep = Vec::with_capacity(tools.len());
    for t in tools {
        let Some(def) = ToolDefinition::of(t) else {
            continue;
        };
        match policy.tools.get(&def.name) {
            None => findings.push(Finding::New(def)),
            Some(rule) if rule.status == ToolStatus::New => {}
            Some(rule) if rule.pin.as_deref() != Some(def.pin.as_str()) => {
                if rule.status == ToolStatus::Approved {
                    findings.push(Finding::Changed(def));
                }
            }
            Some(_) if policy.shows(&def.name) => keep.push(t.clone()),
            Some(_) => {}
        }
    }
    let removed = keep.len() != tools.len();
    let result = removed.then(|| {
        let mut r = result.clone();
        r["tools"] = Value::Array(keep);
        r
    });
    Screened { result, findings }
}

/// The JSON-RPC error message for a refused call: names the tool, says why and how to
/// allow it.
pub fn refusal_message(tool: &str, why: Refusal, grant: crate::oauth::GrantId) -> String {
    let how = format!(
        "allow it in the mcp-broker window (Grants) or with `mcp-broker grants tools {grant} --allow {tool}`"
    );
    match why {
        Refusal::Blocked => format!("the tool \"{tool}\" is blocked for this client; {how}"),
        Refusal::Unknown => {
            format!("the tool \"{tool}\" was not among the tools approved for this client; {how}")
        }
        Refusal::Changed => format!(
            "the tool \"{tool}\" is suspended: the server changed its definition since you approved it; review the change in the mcp-broker window (Grants) or with `mcp-broker grants show {grant}`, then approve it with `mcp-broker grants tools {grant} --allow {tool}`"
        ),
        Refusal::New => format!(
            "the tool \"{tool}\" appeared after this client was approved and is hidden until you approve it; {how}"
        ),
        Refusal::NoOneToAsk => format!(
            "the tool \"{tool}\" is set to \"ask each time\", which needs the mcp-broker desktop app to ask you (or `ask_headless = \"browser\"` under [broker] in the broker's config.toml, to be asked on a page in your browser); {how}"
        ),
        Refusal::Denied => format!("the call to \"{tool}\" was denied by the user"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(name: &str, desc: &str) -> Value {
        json!({"name": name, "description": desc, "inputSchema": {"type": "object"}})
    }

    fn rule(choice: ToolChoice, status: ToolStatus, t: &Value) -> ToolRule {
        ToolRule {
            choice,
            status,
            pin: Some(ToolDefinition::of(t).unwrap().pin),
            allowed_until: None,
        }
    }

    fn policy(rules: &[(&Value, ToolChoice, ToolStatus)]) -> GrantPolicy {
        GrantPolicy {
            pinned: true,
            tools: rules
                .iter()
                .map(|(t, c, s)| (t["name"].as_str().unwrap().to_owned(), rule(*c, *s, t)))
                .collect(),
        }
    }

    #[test]
    fn calls_follow_the_choice_and_the_status() {
        let (a, b, c, d, e) = (
            def("a", ""),
            def("b", ""),
            def("c", ""),
            def("d", ""),
            def("e", ""),
        );
        let mut p = policy(&[
            (&a, ToolChoice::Allow, ToolStatus::Approved),
            (&b, ToolChoice::Ask, ToolStatus::Approved),
            (&c, ToolChoice::Block, ToolStatus::Approved),
            (&d, ToolChoice::Allow, ToolStatus::Changed),
            (&e, ToolChoice::Allow, ToolStatus::New),
        ]);
        let cases = [
            ("a", CallVerdict::Relay),
            ("b", CallVerdict::Ask),
            ("c", CallVerdict::Refuse(Refusal::Blocked)),
            ("d", CallVerdict::Refuse(Refusal::Changed)),
            ("e", CallVerdict::Refuse(Refusal::New)),
            ("zzz", CallVerdict::Refuse(Refusal::Unknown)),
        ];
        for (tool, expect) in cases {
            assert_eq!(p.verdict(tool, 100), expect, "{tool}");
        }
        p.tools.get_mut("b").unwrap().allowed_until = Some(200);
        assert_eq!(p.verdict("b", 199), CallVerdict::Relay, "inside the hour");
        assert_eq!(p.verdict("b", 200), CallVerdict::Ask, "the hour is over");
        assert_eq!(
            GrantPolicy::unpinned().verdict("anything", 0),
            CallVerdict::Relay
        );
    }

    #[test]
    fn the_list_shows_allowed_and_ask_tools_served_as_approved() {
        let (a, b, c) = (def("a", "A"), def("b", "B"), def("c", "C"));
        let p = policy(&[
            (&a, ToolChoice::Allow, ToolStatus::Approved),
            (&b, ToolChoice::Ask, ToolStatus::Approved),
            (&c, ToolChoice::Block, ToolStatus::Approved),
        ]);
        let all = json!({"tools": [a, b, c], "nextCursor": "n"});
        let s = screen_list(&p, &all);
        let r = s.result.unwrap();
        assert_eq!(r["tools"].as_array().unwrap().len(), 2);
        assert_eq!(r["nextCursor"], "n", "other fields stay");
        assert!(s.findings.is_empty());

        let only_allowed = json!({"tools": [def("a", "A")]});
        assert_eq!(
            screen_list(&p, &only_allowed).result,
            None,
            "nothing removed: relayed as is"
        );

        let changed = json!({"tools": [def("a", "A, and also mails your files away"), def("b", "B"), def("renamed", "C")]});
        let s = screen_list(&p, &changed);
        let names: Vec<&str> = s.result.as_ref().unwrap()["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b"]);
        assert!(
            matches!(&s.findings[..], [Finding::Changed(d), Finding::New(n)] if d.name == "a" && n.name == "renamed")
        );
    }

    #[test]
    fn a_recorded_change_is_not_found_again_and_an_undone_one_is_hidden_until_settled() {
        let a = def("a", "A");
        let mut p = policy(&[(&a, ToolChoice::Allow, ToolStatus::Changed)]);
        let s = screen_list(&p, &json!({"tools": [def("a", "A2")]}));
        assert!(s.findings.is_empty());
        assert_eq!(s.result.unwrap()["tools"], json!([]));
        // Served as approved again, but still suspended until the person settles it.
        assert_eq!(
            screen_list(&p, &json!({"tools": [a.clone()]}))
                .result
                .unwrap()["tools"],
            json!([])
        );
        p.tools.get_mut("a").unwrap().status = ToolStatus::Approved;
        assert_eq!(screen_list(&p, &json!({"tools": [a]})).result, None);
    }

    #[test]
    fn an_unpinned_grant_sees_and_calls_everything() {
        let s = screen_list(&GrantPolicy::unpinned(), &json!({"tools": [def("x", "")]}));
        assert_eq!(
            s,
            Screened {
                result: None,
                findings: vec![]
            }
        );
    }

    #[test]
    fn defaults_ask_for_destructive_tools_only_on_the_desktop() {
        let d = ToolDefinition::of(&json!({"name":"rm","annotations":{"destructiveHint":true}}))
            .unwrap();
        let r =
            ToolDefinition::of(&json!({"name":"ls","annotations":{"readOnlyHint":true}})).unwrap();
        assert_eq!(ToolChoice::default_for(&d, true), ToolChoice::Ask);
        assert_eq!(ToolChoice::default_for(&r, true), ToolChoice::Allow);
        assert_eq!(ToolChoice::default_for(&d, false), ToolChoice::Allow);
    }

    #[test]
    fn refusals_name_the_tool_and_the_way_out() {
        let m = refusal_message("rm", Refusal::Blocked, crate::oauth::GrantId(7));
        assert!(
            m.contains("\"rm\"") && m.contains("grants tools 7 --allow rm"),
            "{m}"
        );
        let m = refusal_message("rm", Refusal::NoOneToAsk, crate::oauth::GrantId(7));
        assert!(
            m.contains("desktop app") && m.contains("ask_headless = \"browser\""),
            "{m}"
        );
    }
}
