//! The client side of discovery, for the broker signing in to a remote upstream: the
//! `resource_metadata` parameter of a 401's `WWW-Authenticate` (RFC 9728 §5.1), the
//! well-known URLs (RFC 9728 §3.1, RFC 8414 §3.1), and the checks on the documents
//! (RFC 9728 §3.3: `resource` is the URL we called; RFC 8414 §3.3: `issuer` is the server
//! we asked; MCP authorization spec: PKCE S256 must be offered), and on every URL those
//! documents hand us (RFC 9700 §2.1 and the MCP security best practices on SSRF and on
//! opening authorization URLs: https, or http on a loopback address, and nothing else; the
//! authorization endpoint is opened in the user's browser, where a `file:` or custom-scheme
//! URL would run something else).
//!
//! Must not import: reqwest, axum, tokio. The fetching is in `proxy::upstream_oauth`.

use serde::Deserialize;
use url::Url;

/// RFC 9728 §2, the fields the broker uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceMetadata {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// RFC 8414 §2, the fields the broker uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// `resource_metadata="URL"` from a `WWW-Authenticate: Bearer ...` header.
pub fn resource_metadata_param(www_authenticate: &str) -> Option<String> {
    let rest = www_authenticate.trim_start();
    let rest = rest
        .get(..6)
        .filter(|s| s.eq_ignore_ascii_case("bearer"))
        .map(|_| &rest[6..])?;
    let i = rest.find("resource_metadata=")? + "resource_metadata=".len();
    let v = &rest[i..];
    let value = match v.strip_prefix('"') {
        Some(q) => &q[..q.find('"')?],
        None => v.split([',', ' ']).next()?,
    };
    (!value.is_empty()).then(|| value.to_owned())
}

/// Inserts a well-known path between the host and the path (RFC 8414 §3.1, RFC 9728
/// §3.1): `https://as.example/tenant` -> `https://as.example/.well-known/NAME/tenant`.
pub fn well_known(base: &Url, name: &str) -> Url {
    let mut u = base.clone();
    let path = base.path().trim_end_matches('/');
    u.set_path(&format!("/.well-known/{name}{path}"));
    u.set_query(None);
    u.set_fragment(None);
    u
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the protected-resource metadata names resource {found}, not {expected}")]
    WrongResource { expected: String, found: String },
    #[error("the protected-resource metadata names no authorization server")]
    NoServer,
    #[error("the authorization server metadata names issuer {found}, not {expected}")]
    WrongIssuer { expected: String, found: String },
    #[error("the authorization server does not offer PKCE with S256")]
    NoPkce,
    #[error("{what} {url:?} is not an https URL (http only on a loopback address)")]
    UnsafeUrl { what: &'static str, url: String },
}

/// A URL the broker may fetch or open: https, or http to 127.0.0.1 / [::1] / localhost
/// (a local upstream); no credentials in it, no fragment.
pub fn check_url(what: &'static str, raw: &str) -> Result<Url, DiscoveryError> {
    let bad = || DiscoveryError::UnsafeUrl {
        what,
        url: raw.chars().take(200).collect(),
    };
    let u = Url::parse(raw).map_err(|_| bad())?;
    let loopback = matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    let scheme_ok = u.scheme() == "https" || (u.scheme() == "http" && loopback);
    if !scheme_ok
        || u.host_str().is_none_or(str::is_empty)
        || !u.username().is_empty()
        || u.password().is_some()
        || u.fragment().is_some()
    {
        return Err(bad());
    }
    Ok(u)
}

pub fn check_resource(meta: &ResourceMetadata, upstream: &Url) -> Result<String, DiscoveryError> {
    let norm = |s: &str| s.trim_end_matches('/').to_owned();
    if norm(&meta.resource) != norm(upstream.as_str()) {
        return Err(DiscoveryError::WrongResource {
            expected: upstream.to_string(),
            found: meta.resource.clone(),
        });
    }
    let issuer = meta
        .authorization_servers
        .first()
        .cloned()
        .ok_or(DiscoveryError::NoServer)?;
    check_url("the authorization server", &issuer)?;
    Ok(issuer)
}

pub fn check_server(meta: &ServerMetadata, issuer: &str) -> Result<(), DiscoveryError> {
    if meta.issuer != issuer {
        return Err(DiscoveryError::WrongIssuer {
            expected: issuer.to_owned(),
            found: meta.issuer.clone(),
        });
    }
    if !meta
        .code_challenge_methods_supported
        .iter()
        .any(|m| m == "S256")
    {
        return Err(DiscoveryError::NoPkce);
    }
    check_url("the authorization endpoint", &meta.authorization_endpoint)?;
    check_url("the token endpoint", &meta.token_endpoint)?;
    if let Some(r) = &meta.registration_endpoint {
        check_url("the registration endpoint", r)?;
    }
    if let Some(r) = &meta.revocation_endpoint {
        check_url("the revocation endpoint", r)?;
    }
    Ok(())
}

/// RFC 9207 §2.4: when the server sends `iss` it must be its issuer; when it promised to
/// send it, it must be there.
pub fn check_iss(iss: Option<&str>, meta: &ServerMetadata) -> bool {
    match iss {
        Some(i) => i == meta.issuer,
        None => !meta.authorization_response_iss_parameter_supported,
    }
}

/// A server at `http://127.0.0.1:9`, for tests here and in `oauth_client`.
#[cfg(test)]
pub(crate) fn sample_server(iss_supported: bool, pkce: &[&str]) -> ServerMetadata {
    ServerMetadata {
        issuer: "http://127.0.0.1:9".into(),
        authorization_endpoint: "http://127.0.0.1:9/authorize".into(),
        token_endpoint: "http://127.0.0.1:9/token".into(),
        registration_endpoint: None,
        revocation_endpoint: None,
        code_challenge_methods_supported: pkce.iter().map(|s| s.to_string()).collect(),
        authorization_response_iss_parameter_supported: iss_supported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_resource_metadata_in_challenges() {
        let cases = [
            (
                r#"Bearer resource_metadata="http://a/.well-known/oauth-protected-resource/mcp/x""#,
                Some("http://a/.well-known/oauth-protected-resource/mcp/x"),
            ),
            (
                r#"Bearer error="invalid_token", resource_metadata="https://b/prm""#,
                Some("https://b/prm"),
            ),
            (
                "bearer resource_metadata=https://c/prm, scope=x",
                Some("https://c/prm"),
            ),
            ("Basic realm=x", None),
            ("Bearer realm=x", None),
            (r#"Bearer resource_metadata="""#, None),
        ];
        for (h, want) in cases {
            assert_eq!(resource_metadata_param(h).as_deref(), want, "{h}");
        }
    }

    #[test]
    fn well_known_goes_before_the_path() {
        let u = Url::parse("https://as.example/tenant/1?x=y").unwrap();
        assert_eq!(
            well_known(&u, "oauth-authorization-server").as_str(),
            "https://as.example/.well-known/oauth-authorization-server/tenant/1"
        );
        let root = Url::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(
            well_known(&root, "oauth-authorization-server").as_str(),
            "http://127.0.0.1:9/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn checks_documents() {
        let up = Url::parse("http://r/mcp/x").unwrap();
        let prm = |res: &str, servers: &[&str]| ResourceMetadata {
            resource: res.into(),
            authorization_servers: servers.iter().map(|s| s.to_string()).collect(),
            scopes_supported: vec![],
        };
        assert_eq!(
            check_resource(&prm("http://r/mcp/x", &["http://127.0.0.1:9"]), &up).unwrap(),
            "http://127.0.0.1:9"
        );
        assert!(matches!(
            check_resource(&prm("http://evil/mcp/x", &["http://127.0.0.1:9"]), &up),
            Err(DiscoveryError::WrongResource { .. })
        ));
        assert_eq!(
            check_resource(&prm("http://r/mcp/x", &[]), &up),
            Err(DiscoveryError::NoServer)
        );
        assert!(check_server(&sample_server(true, &["S256"]), "http://127.0.0.1:9").is_ok());
        assert_eq!(
            check_server(&sample_server(true, &["plain"]), "http://127.0.0.1:9"),
            Err(DiscoveryError::NoPkce)
        );
        assert!(matches!(
            check_server(&sample_server(true, &["S256"]), "http://other"),
            Err(DiscoveryError::WrongIssuer { .. })
        ));
        assert!(check_iss(
            Some("http://127.0.0.1:9"),
            &sample_server(true, &[])
        ));
        // A server may only send us to https, or http on this machine.
        assert!(matches!(
            check_resource(&prm("http://r/mcp/x", &["http://169.254.169.254"]), &up),
            Err(DiscoveryError::UnsafeUrl { .. })
        ));
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "ms-settings:x",
            "http://10.0.0.1/authorize",
            "https://user:pw@as.example/authorize",
            "https://as.example/authorize#x",
            "not a url",
        ] {
            let mut m = sample_server(true, &["S256"]);
            m.authorization_endpoint = bad.into();
            assert!(
                matches!(
                    check_server(&m, "http://127.0.0.1:9"),
                    Err(DiscoveryError::UnsafeUrl { .. })
                ),
                "{bad}"
            );
        }
        let mut m = sample_server(true, &["S256"]);
        m.token_endpoint = "http://example.com/token".into();
        assert!(check_server(&m, "http://127.0.0.1:9").is_err());
        m.token_endpoint = "https://example.com/token".into();
        m.revocation_endpoint = Some("gopher://x".into());
        assert!(check_server(&m, "http://127.0.0.1:9").is_err());
        m.revocation_endpoint = Some("https://example.com/revoke".into());
        assert!(check_server(&m, "http://127.0.0.1:9").is_ok());
        assert!(!check_iss(Some("http://evil"), &sample_server(false, &[])));
        assert!(!check_iss(None, &sample_server(true, &[])));
        assert!(check_iss(None, &sample_server(false, &[])));
    }
}
