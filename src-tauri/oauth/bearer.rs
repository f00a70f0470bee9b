//! Bearer token use at the MCP endpoint (RFC 6750 §2.1, §3; RFC 8707 audience; MCP
//! authorization spec "Token Handling").
//!
//! Tokens are accepted only in the `Authorization` header: the MCP spec says access
//! tokens MUST NOT be included in the URI query string.

use super::{ClientId, GrantId, Resource, Scopes, UnixTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// No credentials: RFC 6750 §3.1 says to send no `error` code then.
    Missing,
    InvalidToken,
    InsufficientScope(Scopes),
}

/// A stored access token joined with its (unrevoked) grant.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    pub grant_id: GrantId,
    pub client_id: ClientId,
    pub resource: Resource,
    pub scopes: Scopes,
    pub expires_at: UnixTime,
    /// The upstream account the grant uses (`None`: the upstream's implicit one).
    pub account: Option<String>,
}

/// Who is calling, once the token checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub grant_id: GrantId,
    /// The upstream account the grant uses: its sessions get that account's credentials.
    pub account: Option<String>,
    pub client_id: ClientId,
    pub scopes: Scopes,
}

/// Extracts the token from an `Authorization` header value.
pub fn parse_bearer(header: Option<&str>) -> Result<&str, BearerError> {
    let Some(h) = header else {
        return Err(BearerError::Missing);
    };
    let (scheme, token) = h.split_once(' ').ok_or(BearerError::InvalidToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::Missing);
    }
    let token = token.trim();
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let ok = !token.is_empty()
        && token.len() <= 512
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if ok {
        Ok(token)
    } else {
        Err(BearerError::InvalidToken)
    }
}

/// Checks a looked-up token against the resource being called and the scopes the
/// operation needs (`required`). A token whose scope falls short is refused with
/// exactly those scopes, all of them in one challenge, never `offline_access` (RFC 6750
/// §3.1 `insufficient_scope`; MCP 2026-07-28 basic/authorization §Scope Challenge
/// Handling and §Runtime Insufficient Scope Errors), so that the client can step up.
pub fn check_bearer(
    rec: Option<&AccessRecord>,
    expected: &Resource,
    required: &Scopes,
    now: UnixTime,
) -> Result<Caller, BearerError> {
    let Some(rec) = rec else {
        return Err(BearerError::InvalidToken);
    };
    if now >= rec.expires_at {
        return Err(BearerError::InvalidToken);
    }
    // RFC 8707 / MCP spec: "MCP servers MUST validate that access tokens were issued
    // specifically for them as the intended audience".
    if &rec.resource != expected {
        return Err(BearerError::InvalidToken);
    }
    let required = required.of_resource();
    if !required.is_subset(&rec.scopes) {
        return Err(BearerError::InsufficientScope(required));
    }
    Ok(Caller {
        grant_id: rec.grant_id,
        account: rec.account.clone(),
        client_id: rec.client_id.clone(),
        scopes: rec.scopes.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_800_000_000;

    fn rec() -> AccessRecord {
        AccessRecord {
            account: None,
            grant_id: GrantId(1),
            client_id: ClientId("c".into()),
            resource: Resource("http://127.0.0.1:9/mcp/a".into()),
            scopes: Scopes::single("mcp"),
            expires_at: NOW + 10,
        }
    }

    #[test]
    fn header_parsing() {
        assert_eq!(parse_bearer(None), Err(BearerError::Missing));
        assert_eq!(parse_bearer(Some("Basic abc")), Err(BearerError::Missing));
        assert_eq!(parse_bearer(Some("Bearer")), Err(BearerError::InvalidToken));
        assert_eq!(
            parse_bearer(Some("Bearer a b")),
            Err(BearerError::InvalidToken)
        );
        assert_eq!(parse_bearer(Some("bearer abc-_")), Ok("abc-_"));
    }

    #[test]
    fn audience_expiry_scope() {
        let a = Resource("http://127.0.0.1:9/mcp/a".into());
        let b = Resource("http://127.0.0.1:9/mcp/b".into());
        let other_port = Resource("http://127.0.0.1:10/mcp/a".into());
        let mcp = Scopes::single("mcp");
        assert!(check_bearer(Some(&rec()), &a, &mcp, NOW).is_ok());
        assert_eq!(
            check_bearer(Some(&rec()), &b, &mcp, NOW).unwrap_err(),
            BearerError::InvalidToken
        );
        assert_eq!(
            check_bearer(Some(&rec()), &other_port, &mcp, NOW).unwrap_err(),
            BearerError::InvalidToken
        );
        assert_eq!(
            check_bearer(Some(&rec()), &a, &mcp, NOW + 10).unwrap_err(),
            BearerError::InvalidToken
        );
        assert_eq!(
            check_bearer(None, &a, &mcp, NOW).unwrap_err(),
            BearerError::InvalidToken
        );
        // `offline_access` is never needed for a call, nor named in the challenge.
        let with_refresh = Scopes::parse("mcp offline_access").unwrap();
        assert!(check_bearer(Some(&rec()), &a, &with_refresh, NOW).is_ok());
        let more = Scopes::parse("mcp admin offline_access").unwrap();
        assert_eq!(
            check_bearer(Some(&rec()), &a, &more, NOW).unwrap_err(),
            BearerError::InsufficientScope(Scopes::parse("admin mcp").unwrap())
        );
        let admin = Scopes::single("admin");
        assert_eq!(
            check_bearer(Some(&rec()), &a, &admin, NOW).unwrap_err(),
            BearerError::InsufficientScope(admin)
        );
    }
}
