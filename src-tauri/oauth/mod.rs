//! Pure OAuth 2.1 decisions: plain data in, decisions out, `now` passed in.
//!
//! Owns the vocabulary (client ids, grants, scopes, resources, token hashes) and every
//! protocol rule the broker enforces. Must not import axum, sqlx, tokio or keyring: the
//! HTTP layer parses requests into these types and the store persists them.
//!
//! Specs: OAuth 2.1 (draft-ietf-oauth-v2-1), RFC 6749, RFC 7636 (PKCE), RFC 7591 (dynamic
//! registration), RFC 7009 (revocation), RFC 7662 (introspection), RFC 8252 (native apps), RFC 8414 and RFC 9728
//! (metadata), RFC 8707 (resource indicators), RFC 9207 (`iss`), RFC 9700 (security BCP).

pub mod authorize;
pub mod bearer;
pub mod cimd;
pub mod discovery;
pub mod error;
pub mod introspect;
pub mod metadata;
pub mod personal;
pub mod pkce;
pub mod redirect;
pub mod register;
pub mod token;
pub mod token_format;

use std::collections::BTreeSet;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::{ErrorCode, OAuthError};

/// Seconds since the Unix epoch. Every check takes it as an argument.
pub type UnixTime = i64;

/// The one scope the broker offers today: full use of one upstream's MCP endpoint.
pub const DEFAULT_SCOPE: &str = "mcp";

/// A registered client's identifier (random, opaque).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A grant: one client's consented access to one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GrantId(pub i64);

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A set of scope tokens (RFC 6749 §3.3: space-delimited, order-insensitive).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Parses a `scope` parameter. `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
    pub fn parse(s: &str) -> Result<Scopes, OAuthError> {
        let mut set = BTreeSet::new();
        for tok in s.split(' ').filter(|t| !t.is_empty()) {
            let ok = tok.len() <= 128
                && tok
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
            if !ok {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "malformed scope token",
                ));
            }
            set.insert(tok.to_owned());
        }
        if set.len() > 32 {
            return Err(OAuthError::new(ErrorCode::InvalidScope, "too many scopes"));
        }
        Ok(Scopes(set))
    }
    pub fn single(s: &str) -> Scopes {
        Scopes(BTreeSet::from([s.to_owned()]))
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }
    pub fn intersection(&self, other: &Scopes) -> Scopes {
        Scopes(self.0.intersection(&other.0).cloned().collect())
    }
    pub fn difference(&self, other: &Scopes) -> Scopes {
        Scopes(self.0.difference(&other.0).cloned().collect())
    }
    /// These scopes as the protected resource names them: without `offline_access`,
    /// which asks the authorization server for a refresh token and is no permission on
    /// the resource (MCP 2026-07-28 basic/authorization §Refresh Tokens: not in the
    /// resource metadata's `scopes_supported`, nor in a `WWW-Authenticate` scope).
    pub fn of_resource(&self) -> Scopes {
        Scopes(
            self.0
                .iter()
                .filter(|s| *s != OFFLINE_ACCESS)
                .cloned()
                .collect(),
        )
    }
}

/// The scope that asks for a refresh token (OpenID Connect Core §11).
pub const OFFLINE_ACCESS: &str = "offline_access";

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

/// An RFC 8707 resource: the exact URL of one upstream's MCP endpoint,
/// `http://127.0.0.1:PORT/mcp/NAME`. Tokens are bound to one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Resource(pub String);

impl Resource {
    /// Whether a `resource` parameter names this resource. Clients send the PRM
    /// `resource` verbatim; a trailing `/` is tolerated because some normalise URLs.
    pub fn matches_param(&self, param: &str) -> bool {
        let p = param.strip_suffix('/').unwrap_or(param);
        p == self.0
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of an issued secret (token, code or client secret). Only this is stored.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(secret: &str) -> TokenHash {
        TokenHash(Sha256::digest(secret.as_bytes()).into())
    }
    pub fn from_slice(b: &[u8]) -> Option<TokenHash> {
        Some(TokenHash(b.try_into().ok()?))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// A fresh secret: 32 bytes from the OS-seeded CSPRNG, base64url without padding
/// (256 bits, beyond RFC 6749 §10.10's 128-bit floor).
pub fn mint_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// A shorter random identifier for values that are not credentials (client ids).
pub fn mint_id(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Compares secrets without an early exit, so timing does not reveal a prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    None,
    ClientSecretPost,
    ClientSecretBasic,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
        }
    }
    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "none" => Some(AuthMethod::None),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            _ => None,
        }
    }
    pub fn is_confidential(self) -> bool {
        !matches!(self, AuthMethod::None)
    }
}

/// A registered client as the protocol code needs it.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub auth_method: AuthMethod,
    pub secret_hash: Option<TokenHash>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print_sorted() {
        let s = Scopes::parse("b  a mcp").unwrap();
        assert_eq!(s.to_string(), "a b mcp");
        assert!(Scopes::parse("").unwrap().is_empty());
        assert!(Scopes::parse("bad\"quote").is_err());
        assert!(Scopes::parse("back\\slash").is_err());
    }

    #[test]
    fn resource_param_tolerates_one_trailing_slash() {
        let r = Resource("http://127.0.0.1:9/mcp/a".into());
        assert!(r.matches_param("http://127.0.0.1:9/mcp/a"));
        assert!(r.matches_param("http://127.0.0.1:9/mcp/a/"));
        assert!(!r.matches_param("http://127.0.0.1:9/mcp/ab"));
        assert!(!r.matches_param("http://localhost:9/mcp/a"));
        assert!(!r.matches_param("http://127.0.0.1:10/mcp/a"));
    }

    #[test]
    fn minted_secrets_are_distinct_and_long() {
        let a = mint_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, mint_secret());
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
