//! The OAuth 2.1 client side, shared by every place where mcp-broker signs in somewhere:
//! the broker signing in to a remote upstream (`proxy::upstream_oauth`) and the stdio
//! bridge signing in to the broker (`bridge::auth`). It follows the MCP authorization
//! spec's client steps: discovery (RFC 9728, RFC 8414), dynamic registration as a public
//! client (RFC 7591), authorization code with PKCE S256 (RFC 7636) and `resource`
//! (RFC 8707), the `iss` check on the way back (RFC 9207), and refresh (RFC 6749 §6).
//! The `oauth2` crate builds the authorization URL and makes the token requests; the
//! checks on documents and URLs are the pure ones in [`crate::oauth::discovery`].
//!
//! Where the tokens are kept is the caller's business (both keep them in the OS keychain).
//!
//! - [`discover`]: the protected-resource and authorization-server documents, checked.
//! - [`register`]: RFC 7591 registration.
//! - [`authorization`]: the authorization request, the answer's checks, the code exchange
//!   and refresh.
//! - [`loopback`]: the native-app redirect on 127.0.0.1 (RFC 8252 §7.3).

pub mod authorization;
pub mod discover;
pub mod loopback;
pub mod register;

pub use authorization::{PendingAuthorization, TokenSet, refresh};
pub use discover::{Discovered, discover};
pub use register::{Registration, register};

use crate::oauth::discovery::DiscoveryError;

#[derive(Debug, thiserror::Error)]
pub enum OAuthClientError {
    #[error("cannot fetch {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("{url} is not the expected document: {reason}")]
    BadDocument { url: String, reason: String },
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(
        "the authorization server offers no dynamic registration; set `client_id` for this upstream"
    )]
    NoRegistration,
    #[error("registration failed: {0}")]
    RegistrationRefused(String),
    #[error("the answer came from the wrong authorization server (iss mismatch)")]
    WrongIssuer,
    #[error("the answer is not for the current request (state mismatch)")]
    WrongState,
    #[error("access was not granted: {0}")]
    Denied(String),
    #[error("the answer carries no code")]
    NoCode,
    #[error("the token request was refused: {0}")]
    TokenRefused(String),
    #[error("the token request failed: {0}")]
    TokenRequest(String),
    #[error("no answer from the browser within {0} seconds")]
    Timeout(u64),
    #[error("cannot listen for the browser's answer on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    #[error("{0} is not a usable URL")]
    BadUrl(String),
}

/// reqwest's errors include the URL, whose query may carry credentials.
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    s
}
