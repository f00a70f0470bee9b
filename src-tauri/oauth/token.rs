//! The token endpoint's decisions (RFC 6749 §3.2, §4.1.3, §6; OAuth 2.1 §4.3): client
//! authentication, the authorization-code exchange and refresh-token rotation.
//!
//! Refresh tokens are rotated on every use and a rotated-out token that comes back is
//! treated as stolen: the whole grant is revoked (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{
    AuthMethod, Client, ClientId, GrantId, OAuthError, Resource, Scopes, TokenHash, UnixTime, pkce,
};

/// How the client presented its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialsVia {
    Basic,
    Post,
    /// Only a `client_id` in the body: a public client.
    IdOnly,
}

#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<String>,
    pub via: CredentialsVia,
}

#[derive(Debug, Clone)]
pub enum TokenRequest {
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
        resource: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
        resource: Option<String>,
    },
}

/// Parses a token request body and its client credentials.
pub fn parse_token_request(
    form: &[(String, String)],
    authorization: Option<&str>,
) -> Result<(TokenRequest, ClientCredentials), OAuthError> {
    let params = single_params(form)?;
    let creds = client_credentials(&params, authorization)?;
    let get = |k: &str| params.get(k).map(|v| (*v).to_owned());
    let req = match params.get("grant_type").copied() {
        Some("authorization_code") => TokenRequest::AuthorizationCode {
            code: get("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?,
            redirect_uri: get("redirect_uri"),
            code_verifier: get("code_verifier"),
            resource: get("resource"),
        },
        Some("refresh_token") => TokenRequest::RefreshToken {
            refresh_token: get("refresh_token")
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?,
            scope: get("scope"),
            resource: get("resource"),
        },
        Some(_) => {
            return Err(OAuthError::new(
                super::ErrorCode::UnsupportedGrantType,
                "unsupported grant_type",
            ));
        }
        None => return Err(OAuthError::invalid_request("grant_type is required")),
    };
    Ok((req, creds))
}

/// Parameters of a form, refusing repeats (RFC 6749 §3.2: "MUST NOT be included more
/// than once"). One `resource` is all a token here can carry.
pub fn single_params(form: &[(String, String)]) -> Result<HashMap<&str, &str>, OAuthError> {
    let mut m = HashMap::new();
    for (k, v) in form {
        if m.insert(k.as_str(), v.as_str()).is_some() {
            if k == "resource" {
                return Err(OAuthError::invalid_target(
                    "exactly one resource may be requested",
                ));
            }
            return Err(OAuthError::invalid_request(format!(
                "parameter {k} is repeated"
            )));
        }
    }
    Ok(m)
}

/// RFC 6749 §2.3.1: HTTP Basic (form-urlencoded id and secret) or the body; not both.
pub fn client_credentials(
    params: &HashMap<&str, &str>,
    authorization: Option<&str>,
) -> Result<ClientCredentials, OAuthError> {
    let body_id = params.get("client_id").copied();
    let body_secret = params.get("client_secret").copied();
    if let Some(h) = authorization {
        let Some(b64) = h
            .strip_prefix("Basic ")
            .or_else(|| h.strip_prefix("basic "))
        else {
            return Err(OAuthError::invalid_client(
                "unsupported Authorization scheme",
            ));
        };
        let decoded = STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
        let id = form_decode(id);
        let secret = form_decode(secret);
        // "The client MUST NOT use more than one authentication method in each request."
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request("client credentials sent twice"));
        }
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_client(
                "client_id differs from the Basic credentials",
            ));
        }
        return Ok(ClientCredentials {
            client_id: id,
            secret: Some(secret),
            via: CredentialsVia::Basic,
        });
    }
    let Some(id) = body_id else {
        return Err(OAuthError::invalid_client(
            "client authentication is required",
        ));
    };
    Ok(match body_secret {
        Some(s) => ClientCredentials {
            client_id: id.to_owned(),
            secret: Some(s.to_owned()),
            via: CredentialsVia::Post,
        },
        None => ClientCredentials {
            client_id: id.to_owned(),
            secret: None,
            via: CredentialsVia::IdOnly,
        },
    })
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Authenticates the client at the token or revocation endpoint.
pub fn authenticate_client(
    client: Option<&Client>,
    creds: &ClientCredentials,
) -> Result<ClientId, OAuthError> {
    let Some(client) = client.filter(|c| c.id.0 == creds.client_id) else {
        return Err(OAuthError::invalid_client("unknown client"));
    };
    match (client.auth_method, &creds.secret, &client.secret_hash) {
        (AuthMethod::None, None, _) => Ok(client.id.clone()),
        (AuthMethod::None, Some(_), _) => Err(OAuthError::invalid_client(
            "this client is public and has no secret",
        )),
        (_, Some(secret), Some(hash))
            if super::constant_time_eq(&TokenHash::of(secret).0, &hash.0) =>
        {
            Ok(client.id.clone())
        }
        (_, None, _) => Err(OAuthError::invalid_client(
            "client authentication is required",
        )),
        _ => Err(OAuthError::invalid_client("client authentication failed")),
    }
}

/// A stored authorization code.
#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub grant_id: GrantId,
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: Resource,
    pub scopes: Scopes,
    pub expires_at: UnixTime,
}

/// RFC 6749 §4.1.3 and OAuth 2.1 §4.1.3 checks of a freshly redeemed code.
pub fn check_code_exchange(
    code: &CodeRecord,
    client_id: &ClientId,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    resource: Option<&str>,
    now: UnixTime,
) -> Result<(), OAuthError> {
    if now >= code.expires_at {
        return Err(OAuthError::invalid_grant("authorization code expired"));
    }
    // "ensure that the authorization code was issued to the authenticated confidential
    // client, or if the client is public, ensure that the code was issued to client_id"
    if &code.client_id != client_id {
        return Err(OAuthError::invalid_grant(
            "authorization code was issued to another client",
        ));
    }
    // OAuth 2.1 §4.1.3: redirect_uri must be identical if it was in the request, and we
    // always record it.
    match redirect_uri {
        Some(r) if r == code.redirect_uri => {}
        Some(_) => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        None => return Err(OAuthError::invalid_request("redirect_uri is required")),
    }
    let Some(verifier) = code_verifier else {
        return Err(OAuthError::invalid_request(
            "code_verifier is required (PKCE)",
        ));
    };
    if !pkce::verify_s256(verifier, &code.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    if let Some(r) = resource
        && !code.resource.matches_param(r)
    {
        return Err(OAuthError::invalid_target(
            "resource differs from the authorization request",
        ));
    }
    Ok(())
}

/// A stored refresh token and the state of its grant.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub grant_id: GrantId,
    pub client_id: ClientId,
    pub resource: Resource,
    pub scopes: Scopes,
    pub expires_at: UnixTime,
    /// Set once this token has been exchanged for a newer one.
    pub rotated: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RefreshRejection {
    /// A rotated-out token came back: revoke the grant, then answer `invalid_grant`.
    Replayed(GrantId),
    Invalid(OAuthError),
}

/// Checks a refresh request; returns the scopes of the new tokens. `served` are the
/// resources this broker serves now: a grant for a resource it no longer serves (the
/// broker moved to another port) is refused whether or not `resource` is sent, since
/// tokens for it could never be used.
pub fn check_refresh(
    rec: &RefreshRecord,
    client_id: &ClientId,
    scope: Option<&str>,
    resource: Option<&str>,
    served: &[Resource],
    now: UnixTime,
) -> Result<Scopes, RefreshRejection> {
    let invalid = |e| Err(RefreshRejection::Invalid(e));
    if &rec.client_id != client_id {
        return invalid(OAuthError::invalid_grant(
            "refresh token was issued to another client",
        ));
    }
    if rec.rotated {
        return Err(RefreshRejection::Replayed(rec.grant_id));
    }
    if now >= rec.expires_at {
        return invalid(OAuthError::invalid_grant("refresh token expired"));
    }
    if !served.contains(&rec.resource) {
        return invalid(OAuthError::invalid_grant(
            "refresh token was issued for another address of this broker; authorize again",
        ));
    }
    if let Some(r) = resource
        && !rec.resource.matches_param(r)
    {
        return invalid(OAuthError::invalid_target(
            "resource differs from the grant",
        ));
    }
    match scope {
        None => Ok(rec.scopes.clone()),
        Some(s) => {
            let asked = Scopes::parse(s).map_err(RefreshRejection::Invalid)?;
            // RFC 6749 §6: "MUST NOT include any scope not originally granted".
            if asked.is_empty() {
                Ok(rec.scopes.clone())
            } else if asked.is_subset(&rec.scopes) {
                Ok(asked)
            } else {
                invalid(OAuthError::new(
                    super::ErrorCode::InvalidScope,
                    "scope exceeds the grant",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ErrorCode;

    const NOW: UnixTime = 1_800_000_000;
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }
    fn code() -> CodeRecord {
        CodeRecord {
            grant_id: GrantId(7),
            client_id: ClientId("c1".into()),
            redirect_uri: "http://127.0.0.1:5/cb".into(),
            code_challenge: CHALLENGE.into(),
            resource: Resource("http://127.0.0.1:9/mcp/a".into()),
            scopes: Scopes::single("mcp"),
            expires_at: NOW + 60,
        }
    }
    fn refresh() -> RefreshRecord {
        RefreshRecord {
            grant_id: GrantId(7),
            client_id: ClientId("c1".into()),
            resource: Resource("http://127.0.0.1:9/mcp/a".into()),
            scopes: Scopes::single("mcp"),
            expires_at: NOW + 100,
            rotated: false,
        }
    }
    fn c1() -> ClientId {
        ClientId("c1".into())
    }
    fn served() -> Vec<Resource> {
        vec![Resource("http://127.0.0.1:9/mcp/a".into())]
    }

    #[test]
    fn parses_both_grant_types_and_credentials() {
        let (r, c) = parse_token_request(
            &pairs(&[
                ("grant_type", "authorization_code"),
                ("code", "x"),
                ("client_id", "c1"),
            ]),
            None,
        )
        .unwrap();
        assert!(matches!(r, TokenRequest::AuthorizationCode { .. }));
        assert_eq!(c.via, CredentialsVia::IdOnly);
        // "c%3A1:s%20x" -> id "c:1", secret "s x"
        let basic = format!("Basic {}", STANDARD.encode("c%3A1:s%20x"));
        let (_, c) = parse_token_request(
            &pairs(&[("grant_type", "refresh_token"), ("refresh_token", "r")]),
            Some(&basic),
        )
        .unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.secret.as_deref(), c.via),
            ("c:1", Some("s x"), CredentialsVia::Basic)
        );
    }

    #[test]
    fn token_request_refusals() {
        let cases: [(&[(&str, &str)], ErrorCode); 5] = [
            (
                &[("grant_type", "password"), ("client_id", "c")],
                ErrorCode::UnsupportedGrantType,
            ),
            (&[("client_id", "c")], ErrorCode::InvalidRequest),
            (
                &[("grant_type", "authorization_code"), ("client_id", "c")],
                ErrorCode::InvalidRequest,
            ),
            (
                &[
                    ("grant_type", "authorization_code"),
                    ("code", "a"),
                    ("code", "b"),
                    ("client_id", "c"),
                ],
                ErrorCode::InvalidRequest,
            ),
            (
                &[("grant_type", "authorization_code"), ("code", "a")],
                ErrorCode::InvalidClient,
            ),
        ];
        for (form, want) in cases {
            assert_eq!(
                parse_token_request(&pairs(form), None).unwrap_err().code,
                want,
                "{form:?}"
            );
        }
    }

    #[test]
    fn client_authentication() {
        let public = Client {
            id: c1(),
            name: String::new(),
            redirect_uris: vec![],
            auth_method: AuthMethod::None,
            secret_hash: None,
        };
        let confidential = Client {
            auth_method: AuthMethod::ClientSecretPost,
            secret_hash: Some(TokenHash::of("s3cret")),
            ..public.clone()
        };
        let creds = |secret: Option<&str>| ClientCredentials {
            client_id: "c1".into(),
            secret: secret.map(str::to_owned),
            via: CredentialsVia::Post,
        };
        assert!(authenticate_client(Some(&public), &creds(None)).is_ok());
        assert!(authenticate_client(Some(&public), &creds(Some("x"))).is_err());
        assert!(authenticate_client(Some(&confidential), &creds(Some("s3cret"))).is_ok());
        assert!(authenticate_client(Some(&confidential), &creds(Some("wrong"))).is_err());
        assert!(authenticate_client(Some(&confidential), &creds(None)).is_err());
        assert!(authenticate_client(None, &creds(None)).is_err());
    }

    #[test]
    fn code_exchange_checks() {
        let ok = |c: &CodeRecord, r: Option<&str>, v: Option<&str>, res: Option<&str>, now| {
            check_code_exchange(c, &c1(), r, v, res, now)
        };
        let cb = Some("http://127.0.0.1:5/cb");
        assert!(ok(&code(), cb, Some(VERIFIER), None, NOW).is_ok());
        assert!(
            ok(
                &code(),
                cb,
                Some(VERIFIER),
                Some("http://127.0.0.1:9/mcp/a"),
                NOW
            )
            .is_ok()
        );
        let cases = [
            (
                ok(&code(), cb, Some(VERIFIER), None, NOW + 60),
                ErrorCode::InvalidGrant,
            ),
            (
                ok(
                    &code(),
                    Some("http://127.0.0.1:6/cb"),
                    Some(VERIFIER),
                    None,
                    NOW,
                ),
                ErrorCode::InvalidGrant,
            ),
            (
                ok(&code(), None, Some(VERIFIER), None, NOW),
                ErrorCode::InvalidRequest,
            ),
            (ok(&code(), cb, None, None, NOW), ErrorCode::InvalidRequest),
            (
                ok(&code(), cb, Some(&VERIFIER.replace('d', "e")), None, NOW),
                ErrorCode::InvalidGrant,
            ),
            (
                ok(&code(), cb, Some(CHALLENGE), None, NOW),
                ErrorCode::InvalidGrant,
            ),
            (
                ok(
                    &code(),
                    cb,
                    Some(VERIFIER),
                    Some("http://127.0.0.1:9/mcp/b"),
                    NOW,
                ),
                ErrorCode::InvalidTarget,
            ),
            (
                check_code_exchange(
                    &code(),
                    &ClientId("c2".into()),
                    cb,
                    Some(VERIFIER),
                    None,
                    NOW,
                ),
                ErrorCode::InvalidGrant,
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got.unwrap_err().code, want, "case {i}");
        }
    }

    #[test]
    fn refresh_rotation_and_replay() {
        assert_eq!(
            check_refresh(&refresh(), &c1(), None, None, &served(), NOW)
                .unwrap()
                .to_string(),
            "mcp"
        );
        let rotated = RefreshRecord {
            rotated: true,
            ..refresh()
        };
        assert_eq!(
            check_refresh(&rotated, &c1(), None, None, &served(), NOW),
            Err(RefreshRejection::Replayed(GrantId(7)))
        );
        let expired = check_refresh(&refresh(), &c1(), None, None, &served(), NOW + 100);
        assert!(
            matches!(expired, Err(RefreshRejection::Invalid(e)) if e.code == ErrorCode::InvalidGrant)
        );
        let other = check_refresh(
            &refresh(),
            &ClientId("c2".into()),
            None,
            None,
            &served(),
            NOW,
        );
        assert!(
            matches!(other, Err(RefreshRejection::Invalid(e)) if e.code == ErrorCode::InvalidGrant)
        );
        let wider = check_refresh(&refresh(), &c1(), Some("mcp admin"), None, &served(), NOW);
        assert!(
            matches!(wider, Err(RefreshRejection::Invalid(e)) if e.code == ErrorCode::InvalidScope)
        );
        let aud = check_refresh(
            &refresh(),
            &c1(),
            None,
            Some("http://127.0.0.1:9/mcp/b"),
            &served(),
            NOW,
        );
        assert!(
            matches!(aud, Err(RefreshRejection::Invalid(e)) if e.code == ErrorCode::InvalidTarget)
        );
        // The broker now serves on port 10: the grant's resource is gone, with or
        // without a `resource` parameter.
        let moved = [Resource("http://127.0.0.1:10/mcp/a".into())];
        for resource in [None, Some("http://127.0.0.1:9/mcp/a")] {
            let r = check_refresh(&refresh(), &c1(), None, resource, &moved, NOW);
            assert!(
                matches!(r, Err(RefreshRejection::Invalid(e)) if e.code == ErrorCode::InvalidGrant),
                "{resource:?}"
            );
        }
    }
}
