//! Personal access tokens: bearer tokens the person mints for a client that cannot do
//! OAuth (a script, a CLI without dynamic registration). Each is a grant of its own for
//! one upstream's resource (RFC 8707 audience, like every token here), with a label and
//! an optional expiry, revocable like any grant. GitHub's and GitLab's personal access
//! tokens are the model: shown once, stored as a hash, recognisable by a prefix so that
//! secret scanners can find a leaked one.
//!
//! They are not OAuth clients: they belong to one reserved client row that no OAuth
//! request can name (see [`PERSONAL_CLIENT_ID`]).

use super::UnixTime;

/// The client every personal token's grant belongs to. Not a registration: the store
/// never returns it as a client, so `/authorize`, `/token` and `/revoke` treat it as
/// unknown.
pub const PERSONAL_CLIENT_ID: &str = "mcp-broker:personal-token";
/// The name shown for that client where a label is missing.
pub const PERSONAL_CLIENT_NAME: &str = "Personal access token";
/// The stored expiry of a token that never expires (the column is NOT NULL).
pub const NEVER_EXPIRES: UnixTime = UnixTime::MAX;
/// Starts every personal token, so that it is recognisable in a config file or a leak.
/// Minted with a check: `token_format::CheckKey::mint_personal`.
pub const TOKEN_PREFIX: &str = "mcpb_pat_";
const MAX_LABEL_CHARS: usize = 100;
const MAX_TOOLS: usize = 256;
/// Longer is "never" with extra steps; refusing it catches a typo such as `30y`.
const MAX_LIFETIME_SECS: u64 = 5 * 366 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonalTokenError {
    #[error("the label must not be empty")]
    EmptyLabel,
    #[error("the label is longer than {MAX_LABEL_CHARS} characters")]
    LabelTooLong,
    #[error("the label must not contain control characters")]
    LabelControl,
    #[error(
        "cannot read the expiry {0:?}: give a duration such as 30d, 12h or 90d, or never (at most 5 years)"
    )]
    BadExpiry(String),
    #[error("{0:?} is not a tool name")]
    BadTool(String),
    #[error("at most {MAX_TOOLS} tools")]
    TooManyTools,
    /// `--tools` needs the upstream's tool definitions to pin the named ones; without
    /// them the token would reach every tool, so none is made.
    #[error(
        "cannot list the tools of {upstream} to limit the token to them: {why}; no token was created"
    )]
    ToolsUnlisted { upstream: String, why: String },
    #[error("{upstream} serves no tool named {tool:?} (it serves: {served}); no token was created")]
    UnknownTool {
        upstream: String,
        tool: String,
        served: String,
    },
}

/// How long a new personal token lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    AfterSecs(i64),
}

impl Expiry {
    /// `never`, or a duration such as `30d`, `12h`, `1w` (humantime's syntax).
    pub fn parse(s: &str) -> Result<Expiry, PersonalTokenError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("never") {
            return Ok(Expiry::Never);
        }
        let bad = || PersonalTokenError::BadExpiry(s.to_owned());
        let d = humantime::parse_duration(s).map_err(|_| bad())?;
        let secs = d.as_secs();
        if secs == 0 || secs > MAX_LIFETIME_SECS {
            return Err(bad());
        }
        Ok(Expiry::AfterSecs(secs as i64))
    }

    /// When a token minted at `now` expires; `None` for never.
    pub fn at(self, now: UnixTime) -> Option<UnixTime> {
        match self {
            Expiry::Never => None,
            Expiry::AfterSecs(s) => Some(now + s),
        }
    }
}

/// A validated request for a personal token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalTokenSpec {
    pub label: String,
    pub expires_at: Option<UnixTime>,
    /// The tools it is meant for; empty means every tool. Stored, not yet enforced.
    pub tools: Vec<String>,
}

/// The token's tool policy from the names it was given and the tools the upstream
/// serves: each served tool with whether the token may call it (the named ones only).
/// Every named tool must be served, so a typo is caught now rather than at the first call.
pub fn tool_choices<'a>(
    upstream: &str,
    named: &[String],
    served: &'a [String],
) -> Result<Vec<(&'a str, bool)>, PersonalTokenError> {
    if let Some(missing) = named.iter().find(|n| !served.contains(n)) {
        return Err(PersonalTokenError::UnknownTool {
            upstream: upstream.to_owned(),
            tool: missing.clone(),
            served: if served.is_empty() {
                "no tools".to_owned()
            } else {
                served.join(", ")
            },
        });
    }
    Ok(served
        .iter()
        .map(|s| (s.as_str(), named.contains(s)))
        .collect())
}

/// Checks what the person typed. The upstream is checked by the caller, which knows the
/// configuration.
pub fn validate(
    label: &str,
    expiry: Expiry,
    tools: &[String],
    now: UnixTime,
) -> Result<PersonalTokenSpec, PersonalTokenError> {
    let label = label.trim();
    if label.is_empty() {
        return Err(PersonalTokenError::EmptyLabel);
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(PersonalTokenError::LabelTooLong);
    }
    if label.chars().any(char::is_control) {
        return Err(PersonalTokenError::LabelControl);
    }
    let mut names: Vec<String> = Vec::new();
    for t in tools.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        // MCP tool names: 1-128 characters of A-Z a-z 0-9 _ - . / (MCP 2025-11-25,
        // "Tool names").
        let ok = t.len() <= 128
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b));
        if !ok {
            return Err(PersonalTokenError::BadTool(t.to_owned()));
        }
        if !names.iter().any(|n| n == t) {
            names.push(t.to_owned());
        }
    }
    if names.len() > MAX_TOOLS {
        return Err(PersonalTokenError::TooManyTools);
    }
    Ok(PersonalTokenSpec {
        label: label.to_owned(),
        expires_at: expiry.at(now),
        tools: names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_800_000_000;

    #[test]
    fn expiry_parses_durations_and_never() {
        assert_eq!(Expiry::parse("never"), Ok(Expiry::Never));
        assert_eq!(Expiry::parse("30d"), Ok(Expiry::AfterSecs(30 * 86400)));
        assert_eq!(Expiry::parse(" 12h "), Ok(Expiry::AfterSecs(12 * 3600)));
        for bad in ["", "0s", "soon", "30y", "-1d"] {
            assert!(Expiry::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Expiry::Never.at(NOW), None);
        assert_eq!(Expiry::AfterSecs(5).at(NOW), Some(NOW + 5));
    }

    #[test]
    fn labels_and_tools_are_checked() {
        let ok = validate(
            " ci deploy ",
            Expiry::Never,
            &["a".into(), "a".into(), " b/c ".into()],
            NOW,
        )
        .unwrap();
        assert_eq!(ok.label, "ci deploy");
        assert_eq!(ok.tools, vec!["a".to_owned(), "b/c".to_owned()]);
        assert_eq!(
            validate("  ", Expiry::Never, &[], NOW),
            Err(PersonalTokenError::EmptyLabel)
        );
        assert_eq!(
            validate("a\nb", Expiry::Never, &[], NOW),
            Err(PersonalTokenError::LabelControl)
        );
        assert_eq!(
            validate(&"x".repeat(101), Expiry::Never, &[], NOW),
            Err(PersonalTokenError::LabelTooLong)
        );
        assert_eq!(
            validate("l", Expiry::Never, &["rm -rf".into()], NOW),
            Err(PersonalTokenError::BadTool("rm -rf".into()))
        );
    }

    #[test]
    fn a_tokens_tools_allow_the_named_and_nothing_else() {
        let served = ["echo".to_owned(), "add".to_owned(), "rm".to_owned()];
        let named = ["add".to_owned(), "echo".to_owned()];
        assert_eq!(
            tool_choices("u", &named, &served).unwrap(),
            [("echo", true), ("add", true), ("rm", false)]
        );
        let err = tool_choices("u", &["ecoh".to_owned()], &served).unwrap_err();
        assert_eq!(
            err.to_string(),
            "u serves no tool named \"ecoh\" (it serves: echo, add, rm); no token was created"
        );
    }
}
