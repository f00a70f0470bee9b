//! The authorization endpoint's decision (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1): a raw
//! query in, a validated request or an error that says whether it may be redirected.
//!
//! RFC 6749 §4.1.2.1: "If the request fails due to a missing, invalid, or mismatching
//! redirection URI, or if the client identifier is missing or invalid, the authorization
//! server SHOULD inform the resource owner of the error and MUST NOT automatically
//! redirect the user-agent to the invalid redirection URI." Everything else goes back to
//! the client with `error`, `state` and `iss` (RFC 9207).

use std::collections::HashMap;

use url::Url;

use super::{Client, ClientId, ErrorCode, OAuthError, Resource, Scopes, pkce, redirect};

/// What the authorization server offers; built once from the configuration.
#[derive(Debug, Clone)]
pub struct AuthorizeContext {
    /// Upstream name and its resource URL, for every configured upstream.
    pub resources: Vec<(String, Resource)>,
    pub supported_scopes: Scopes,
    pub default_scopes: Scopes,
}

/// A request that passed every check; what the user is asked to approve.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub client_id: ClientId,
    pub client_name: String,
    /// For a Client ID Metadata Document client: the host its document came from, shown
    /// beside the (self-asserted) name.
    pub client_host: Option<String>,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    /// The scopes the client asked for (or the default), as shown to the user.
    pub requested_scopes: Scopes,
    /// The subset the broker can grant.
    pub scopes: Scopes,
    pub upstream: String,
    pub resource: Resource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuthorizeError {
    /// Bad client or redirect URI: show an error page, never redirect.
    DoNotRedirect(OAuthError),
    /// Send the user agent back to the client with the error.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

/// Validates an authorization request. `client` is the registered client named by
/// `client_id`, if there is one.
pub fn validate_authorize(
    pairs: &[(String, String)],
    client: Option<&Client>,
    ctx: &AuthorizeContext,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let no_redirect =
        |d: &'static str| AuthorizeError::DoNotRedirect(OAuthError::invalid_request(d));

    // RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than
    // once." `resource` is the exception (RFC 8707 §2); it is checked below.
    let mut params: HashMap<&str, &str> = HashMap::new();
    let mut resources: Vec<&str> = Vec::new();
    let mut duplicate = None;
    for (k, v) in pairs {
        if k == "resource" {
            resources.push(v);
        } else if params.insert(k.as_str(), v.as_str()).is_some() {
            duplicate = Some(k.as_str());
        }
    }

    let Some(client_id) = params.get("client_id").copied() else {
        return Err(no_redirect("client_id is required"));
    };
    let Some(client) = client.filter(|c| c.id.0 == client_id) else {
        return Err(AuthorizeError::DoNotRedirect(OAuthError::new(
            ErrorCode::InvalidClient,
            "unknown client_id",
        )));
    };
    let redirect_uri = match params.get("redirect_uri") {
        Some(r) => {
            if !client
                .redirect_uris
                .iter()
                .any(|reg| redirect::matches(reg, r))
            {
                return Err(no_redirect(
                    "redirect_uri is not registered for this client",
                ));
            }
            (*r).to_owned()
        }
        // OAuth 2.1 §4.1.1: optional only when exactly one was registered.
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(no_redirect("redirect_uri is required")),
    };
    if let Some(k) = duplicate
        && (k == "client_id" || k == "redirect_uri")
    {
        return Err(no_redirect(
            "client_id and redirect_uri must not be repeated",
        ));
    }

    let state = params.get("state").map(|s| (*s).to_owned());
    let fail = |error: OAuthError| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
    };

    if let Some(k) = duplicate {
        return Err(fail(OAuthError::invalid_request(format!(
            "parameter {k} is repeated"
        ))));
    }
    match params.get("response_type") {
        Some(&"code") => {}
        Some(_) => {
            return Err(fail(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            )));
        }
        None => {
            return Err(fail(OAuthError::invalid_request(
                "response_type is required",
            )));
        }
    }

    // OAuth 2.1 §4.1.1: PKCE is required; the MCP spec requires S256.
    let Some(challenge) = params.get("code_challenge") else {
        return Err(fail(OAuthError::invalid_request(
            "code_challenge is required (PKCE)",
        )));
    };
    match params.get("code_challenge_method") {
        Some(&"S256") => {}
        // RFC 7636 §4.3 defaults a missing method to `plain`, which is refused.
        _ => {
            return Err(fail(OAuthError::invalid_request(
                "code_challenge_method must be S256 (plain is not supported)",
            )));
        }
    }
    if !pkce::is_valid_s256_challenge(challenge) {
        return Err(fail(OAuthError::invalid_request(
            "code_challenge is not a valid S256 challenge",
        )));
    }

    // RFC 8707 §2: the token is for exactly one upstream.
    let (upstream, resource) = match resources.as_slice() {
        [] if ctx.resources.len() == 1 => ctx.resources[0].clone(),
        [] => {
            return Err(fail(OAuthError::invalid_target(
                "resource is required: this broker protects several MCP servers",
            )));
        }
        [one] => match ctx.resources.iter().find(|(_, r)| r.matches_param(one)) {
            Some(found) => found.clone(),
            None => {
                return Err(fail(OAuthError::invalid_target(
                    "resource is not an MCP server of this broker",
                )));
            }
        },
        _ => {
            return Err(fail(OAuthError::invalid_target(
                "exactly one resource may be requested",
            )));
        }
    };

    let requested_scopes = match params.get("scope") {
        Some(s) => Scopes::parse(s).map_err(&fail)?,
        None => ctx.default_scopes.clone(),
    };
    let requested_scopes = if requested_scopes.is_empty() {
        ctx.default_scopes.clone()
    } else {
        requested_scopes
    };
    // RFC 6749 §3.3: the server may grant less than requested and says so in the token
    // response. Nothing granted at all is an error.
    let scopes = requested_scopes.intersection(&ctx.supported_scopes);
    if scopes.is_empty() {
        return Err(fail(OAuthError::new(
            ErrorCode::InvalidScope,
            "none of the requested scopes is offered",
        )));
    }

    let client_name = if client.name.is_empty() {
        client.id.0.clone()
    } else {
        client.name.clone()
    };
    Ok(AuthorizeRequest {
        client_id: client.id.clone(),
        client_name,
        client_host: super::cimd::document_host(&client.id.0),
        redirect_uri,
        state,
        code_challenge: (*challenge).to_owned(),
        requested_scopes,
        scopes,
        upstream,
        resource,
    })
}

/// Appends parameters to a redirect URI, keeping its own query (RFC 6749 §3.1.2).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

/// The success redirect: `code`, the unchanged `state`, and `iss` (RFC 9207 §2).
pub fn code_redirect(req: &AuthorizeRequest, code: &str, issuer: &str) -> String {
    let mut p = vec![("code", code)];
    if let Some(s) = &req.state {
        p.push(("state", s));
    }
    p.push(("iss", issuer));
    redirect_with(&req.redirect_uri, &p)
}

/// The error redirect, also carrying `state` and `iss`.
pub fn error_redirect(
    redirect_uri: &str,
    state: Option<&str>,
    error: &OAuthError,
    issuer: &str,
) -> String {
    let mut p = vec![
        ("error", error.code.as_str()),
        ("error_description", error.description.as_ref()),
    ];
    if let Some(s) = state {
        p.push(("state", s));
    }
    p.push(("iss", issuer));
    redirect_with(redirect_uri, &p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::AuthMethod;

    const CH: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client() -> Client {
        Client {
            id: ClientId("c1".into()),
            name: "Test Client".into(),
            redirect_uris: vec!["http://127.0.0.1:5000/cb".into()],
            auth_method: AuthMethod::None,
            secret_hash: None,
        }
    }
    fn ctx(n: usize) -> AuthorizeContext {
        AuthorizeContext {
            resources: (0..n)
                .map(|i| {
                    (
                        format!("u{i}"),
                        Resource(format!("http://127.0.0.1:9/mcp/u{i}")),
                    )
                })
                .collect(),
            supported_scopes: Scopes::single("mcp"),
            default_scopes: Scopes::single("mcp"),
        }
    }
    fn q(extra: &[(&str, &str)], drop: &[&str]) -> Vec<(String, String)> {
        let mut base = vec![
            ("response_type", "code"),
            ("client_id", "c1"),
            ("redirect_uri", "http://127.0.0.1:6000/cb"),
            ("code_challenge", CH),
            ("code_challenge_method", "S256"),
            ("state", "xyz"),
        ];
        base.retain(|(k, _)| !drop.contains(k));
        base.extend_from_slice(extra);
        base.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn valid_request_with_default_scope_and_single_upstream() {
        let r = validate_authorize(&q(&[], &[]), Some(&client()), &ctx(1)).unwrap();
        assert_eq!(r.redirect_uri, "http://127.0.0.1:6000/cb");
        assert_eq!(r.scopes.to_string(), "mcp");
        assert_eq!(r.upstream, "u0");
        let redirect = code_redirect(&r, "abc", "http://127.0.0.1:9");
        assert_eq!(
            redirect,
            "http://127.0.0.1:6000/cb?code=abc&state=xyz&iss=http%3A%2F%2F127.0.0.1%3A9"
        );
    }

    #[test]
    fn bad_client_or_redirect_never_redirects() {
        let c = client();
        type Case<'a> = (Vec<(String, String)>, Option<&'a Client>);
        let cases: Vec<Case> = vec![
            (q(&[], &[]), None),
            (q(&[], &["client_id"]), Some(&c)),
            (
                q(
                    &[("redirect_uri", "http://evil.example/cb")],
                    &["redirect_uri"],
                ),
                Some(&c),
            ),
            (
                q(
                    &[("redirect_uri", "http://localhost:5000/cb")],
                    &["redirect_uri"],
                ),
                Some(&c),
            ),
            (q(&[("client_id", "c1")], &[]), Some(&c)),
        ];
        for (query, cl) in cases {
            let e = validate_authorize(&query, cl, &ctx(1)).unwrap_err();
            assert!(
                matches!(e, AuthorizeError::DoNotRedirect(_)),
                "{query:?}: {e:?}"
            );
        }
    }

    #[test]
    fn other_errors_redirect_with_state() {
        let c = client();
        let cases = [
            (q(&[], &["code_challenge"]), ErrorCode::InvalidRequest),
            (
                q(&[], &["code_challenge_method"]),
                ErrorCode::InvalidRequest,
            ),
            (
                q(
                    &[("code_challenge_method", "plain")],
                    &["code_challenge_method"],
                ),
                ErrorCode::InvalidRequest,
            ),
            (
                q(&[("code_challenge", "short")], &["code_challenge"]),
                ErrorCode::InvalidRequest,
            ),
            (
                q(&[("response_type", "token")], &["response_type"]),
                ErrorCode::UnsupportedResponseType,
            ),
            (
                q(&[("resource", "http://127.0.0.1:9/mcp/other")], &[]),
                ErrorCode::InvalidTarget,
            ),
            (
                q(
                    &[
                        ("resource", "http://127.0.0.1:9/mcp/u0"),
                        ("resource", "http://127.0.0.1:9/mcp/u0"),
                    ],
                    &[],
                ),
                ErrorCode::InvalidTarget,
            ),
            (q(&[("scope", "admin")], &[]), ErrorCode::InvalidScope),
            (q(&[("state", "again")], &[]), ErrorCode::InvalidRequest),
        ];
        for (query, code) in cases {
            match validate_authorize(&query, Some(&c), &ctx(1)).unwrap_err() {
                AuthorizeError::Redirect {
                    error,
                    redirect_uri,
                    ..
                } => {
                    assert_eq!(error.code, code, "{query:?}");
                    assert_eq!(redirect_uri, "http://127.0.0.1:6000/cb");
                }
                e => panic!("{query:?}: {e:?}"),
            }
        }
    }

    #[test]
    fn resource_is_required_with_several_upstreams() {
        let c = client();
        let e = validate_authorize(&q(&[], &[]), Some(&c), &ctx(2)).unwrap_err();
        assert!(
            matches!(e, AuthorizeError::Redirect { error, .. } if error.code == ErrorCode::InvalidTarget)
        );
        let r = validate_authorize(
            &q(&[("resource", "http://127.0.0.1:9/mcp/u1/")], &[]),
            Some(&c),
            &ctx(2),
        )
        .unwrap();
        assert_eq!(r.upstream, "u1");
    }

    #[test]
    fn unknown_scopes_are_shown_but_not_granted() {
        let r = validate_authorize(&q(&[("scope", "mcp extra")], &[]), Some(&client()), &ctx(1))
            .unwrap();
        assert_eq!(r.requested_scopes.to_string(), "extra mcp");
        assert_eq!(r.scopes.to_string(), "mcp");
    }

    #[test]
    fn error_redirect_keeps_existing_query() {
        let e = OAuthError::new(ErrorCode::AccessDenied, "no");
        let u = error_redirect(
            "https://a.example/cb?x=1",
            Some("s"),
            &e,
            "http://127.0.0.1:9",
        );
        assert_eq!(
            u,
            "https://a.example/cb?x=1&error=access_denied&error_description=no&state=s&iss=http%3A%2F%2F127.0.0.1%3A9"
        );
    }
}
