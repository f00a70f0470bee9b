//! Redirect URI rules: which URIs a client may register, and how a requested
//! `redirect_uri` is matched against them.
//!
//! OAuth 2.1 §2.3.1 and RFC 9700 §4.1.3: exact string matching, with one exception,
//! RFC 8252 §7.3: for `http` loopback redirects the port is ignored, because native
//! clients bind an ephemeral port at the time of the request. Only `http` loopback
//! (`127.0.0.1`, `[::1]`, `localhost`) and `https` are accepted (MCP authorization spec,
//! "Communication Security").

use url::{Host, Url};

pub const MAX_REDIRECT_URIS: usize = 10;
pub const MAX_REDIRECT_URI_LEN: usize = 500;

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Why a redirect URI cannot be registered.
pub fn check_registrable(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(format!(
            "redirect_uri longer than {MAX_REDIRECT_URI_LEN} characters"
        ));
    }
    let url = Url::parse(uri).map_err(|e| format!("redirect_uri is not an absolute URL: {e}"))?;
    // RFC 6749 §3.1.2: "The endpoint URI MUST NOT include a fragment component."
    if url.fragment().is_some() || uri.contains('#') {
        return Err("redirect_uri must not contain a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("redirect_uri must not contain credentials".into());
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback_host(&url) => Ok(()),
        "http" => Err(
            "http redirect_uri must be a loopback address (127.0.0.1, [::1] or localhost)".into(),
        ),
        _ => Err("redirect_uri must use https or http on a loopback address".into()),
    }
}

/// Whether `requested` matches the registered URI `registered`.
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    // RFC 8252 §7.3: "The authorization server MUST allow any port to be specified at the
    // time of the request for loopback IP redirect URIs". Everything else must be equal.
    let (Ok(a), Ok(b)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    if a.scheme() != "http" || b.scheme() != "http" || !is_loopback_host(&a) {
        return false;
    }
    a.host_str() == b.host_str()
        && a.path() == b.path()
        && a.query() == b.query()
        && a.username() == b.username()
        && a.password() == b.password()
        && b.fragment().is_none()
        // The url crate normalises, so also require the raw strings to agree apart from
        // the port: no trick spellings that only the parser would accept.
        && strip_port(registered) == strip_port(requested)
}

fn strip_port(uri: &str) -> String {
    let Ok(mut u) = Url::parse(uri) else {
        return uri.to_owned();
    };
    let _ = u.set_port(None);
    u.to_string()
}

/// The host (with port) to show the user on the consent screen.
pub fn display_host(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => uri.to_owned(),
        },
        Err(_) => uri.to_owned(),
    }
}

/// Whether the redirect goes back to this machine (the consent screen warns otherwise).
pub fn is_loopback(uri: &str) -> bool {
    Url::parse(uri)
        .map(|u| u.scheme() == "http" && is_loopback_host(&u))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_uris() {
        for ok in [
            "http://127.0.0.1:3000/callback",
            "http://localhost:53682/oauth/callback",
            "http://[::1]/cb",
            "https://app.example.com/cb?x=1",
        ] {
            assert!(check_registrable(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/cb",
            "http://127.0.0.2/cb",
            "http://localhost.evil.com/cb",
            "javascript:alert(1)",
            "custom:/cb",
            "https://a.example/cb#frag",
            "https://user:pw@a.example/cb",
            "/relative",
            "",
        ] {
            assert!(check_registrable(bad).is_err(), "{bad}");
        }
        let long = format!("https://a.example/{}", "x".repeat(500));
        assert!(check_registrable(&long).is_err());
    }

    #[test]
    fn exact_matching_with_loopback_any_port() {
        let cases = [
            (
                "http://127.0.0.1:3000/callback",
                "http://127.0.0.1:3000/callback",
                true,
            ),
            (
                "http://127.0.0.1:3000/callback",
                "http://127.0.0.1:49152/callback",
                true,
            ),
            (
                "http://127.0.0.1/callback",
                "http://127.0.0.1:8080/callback",
                true,
            ),
            ("http://localhost:1/cb", "http://localhost:2/cb", true),
            ("http://[::1]:1/cb", "http://[::1]:2/cb", true),
            // host must be the same loopback spelling
            ("http://localhost:1/cb", "http://127.0.0.1:1/cb", false),
            // path, query exact
            ("http://127.0.0.1:1/cb", "http://127.0.0.1:1/cb/", false),
            ("http://127.0.0.1:1/cb", "http://127.0.0.1:1/cb?x=1", false),
            ("http://127.0.0.1:1/cb", "http://127.0.0.1:1/CB", false),
            // https: no port tolerance, no prefix matching
            ("https://a.example/cb", "https://a.example:8443/cb", false),
            (
                "https://a.example/cb",
                "https://a.example/cb/../evil",
                false,
            ),
            ("https://a.example/cb", "https://a.example.evil/cb", false),
            ("http://127.0.0.1:1/cb", "http://127.0.0.1:1/cb#x", false),
        ];
        for (reg, req, want) in cases {
            assert_eq!(matches(reg, req), want, "{reg} vs {req}");
        }
    }

    #[test]
    fn display_host_includes_port() {
        assert_eq!(display_host("http://localhost:5000/cb"), "localhost:5000");
        assert_eq!(display_host("https://a.example/cb"), "a.example");
        assert!(is_loopback("http://[::1]:5/cb"));
        assert!(!is_loopback("https://a.example/cb"));
    }
}
