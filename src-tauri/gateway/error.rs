//! Why a core operation did not happen, by kind, so that each front end can render it
//! (an HTTP status and body in `http::response`, a `CommandError` in the desktop shell, an
//! exit status in the CLI) without matching on text.

use crate::oauth::personal::PersonalTokenError;
use crate::oauth::{ErrorCode, GrantId, OAuthError};
use crate::proxy::upstream_oauth::UpstreamAuthError;
use crate::secrets::SecretsError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// An OAuth protocol refusal, for the client (RFC 6749 §5.2).
    #[error("{}: {}", .0.code.as_str(), .0.description)]
    OAuth(#[from] OAuthError),
    /// A consent question that was already answered, expired, or never existed.
    #[error("this request was already answered or has expired")]
    ConsentGone,
    /// A consent form whose single-use token did not match (the question is now void).
    #[error("the form's security token did not match")]
    ConsentForged,
    #[error("no active grant with id {0}")]
    UnknownGrant(GrantId),
    #[error("no client registration with id {0}")]
    UnknownClient(String),
    #[error(transparent)]
    PersonalToken(#[from] PersonalTokenError),
    #[error("no remote upstream named {0}")]
    NotRemote(String),
    #[error("no upstream named {0}")]
    UnknownUpstream(String),
    #[error("grant {grant} has no tool named {tool}")]
    UnknownTool { grant: GrantId, tool: String },
    /// The grant chose no tools at consent (its server could not be listed then), so
    /// every tool is allowed; approving the client again lists them.
    #[error(
        "grant {0} allows every tool (its server could not be listed at consent); approve the client again to choose tools"
    )]
    ToolsNotChosen(GrantId),
    /// Approve without choosing which of the upstream's accounts the grant uses.
    #[error("choose which account of {upstream} this access uses: {}", .accounts.join(", "))]
    AccountRequired {
        upstream: String,
        accounts: Vec<String>,
    },
    #[error(transparent)]
    UnknownAccount(#[from] crate::config::UnknownAccount),
    #[error("sign-in to {upstream} failed: {reason}")]
    SignIn {
        upstream: String,
        reason: UpstreamAuthError,
    },
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The login item could not be changed.
    #[error("start at login: {0}")]
    StartAtLogin(String),
    /// A server could not be added, changed, removed or imported; nothing was written.
    #[error(transparent)]
    Servers(#[from] super::servers::ServerError),
    /// Over a `[broker]` rate limit: 429 with `Retry-After`.
    #[error("{0}")]
    RateLimited(super::limits::Limited),
    /// Plumbing: the database, the disk, the keychain. Details go to the log.
    #[error(transparent)]
    Internal(#[from] crate::Error),
}

impl GatewayError {
    /// What an OAuth client is told: the protocol error itself, `temporarily_unavailable`
    /// for a full disk (it can retry once space is freed, RFC 6749 §4.1.2.1 and §5.2), or
    /// an opaque `server_error` (details go to the log, never to the client).
    pub fn client_view(&self) -> OAuthError {
        match self {
            GatewayError::OAuth(e) => e.clone(),
            GatewayError::Internal(e) if e.is_disk_full() => OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the disk holding the broker's data is full; free some space and try again",
            ),
            _ => OAuthError::new(
                ErrorCode::ServerError,
                "internal error; see the broker's log",
            ),
        }
    }

    /// A short, stable name for the kind, for front ends that branch on it (the desktop
    /// window offers "Sign in" on `sign_in`, "Set" on `secrets`).
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::OAuth(_) => "oauth",
            GatewayError::ConsentGone => "consent_gone",
            GatewayError::ConsentForged => "consent_forged",
            GatewayError::UnknownGrant(_) => "unknown_grant",
            GatewayError::UnknownClient(_) => "unknown_client",
            GatewayError::PersonalToken(_) => "personal_token",
            GatewayError::NotRemote(_) => "not_remote",
            GatewayError::UnknownUpstream(_) => "unknown_upstream",
            GatewayError::AccountRequired { .. } => "account_required",
            GatewayError::UnknownAccount(_) => "unknown_account",
            GatewayError::SignIn {
                reason: UpstreamAuthError::NeedsSignIn(_),
                ..
            } => "needs_sign_in",
            GatewayError::SignIn {
                reason: UpstreamAuthError::Keychain(_),
                ..
            } => "keychain",
            GatewayError::UnknownTool { .. } => "unknown_tool",
            GatewayError::ToolsNotChosen(_) => "tools_not_chosen",
            GatewayError::SignIn { .. } => "sign_in",
            GatewayError::Secrets(_) => "secrets",
            GatewayError::StartAtLogin(_) => "start_at_login",
            GatewayError::Servers(_) => "servers",
            GatewayError::RateLimited(_) => "rate_limited",
            GatewayError::Internal(_) => "internal",
        }
    }
}
