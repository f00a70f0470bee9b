//! OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP
//! authorization spec 2025-11-25, "Client ID Metadata Documents", a SHOULD): a client
//! whose `client_id` is an `https` URL is described by the JSON document at that URL.
//!
//! Pure: which URLs may be a `client_id`, which addresses may be fetched, what a fetched
//! document must contain, and how long it may be cached. Must not import tokio, reqwest,
//! axum or sqlx; `crate::cimd_fetch` does the fetching.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;
use url::{Host, Url};

use super::register::validate_registration;
use super::{AuthMethod, Client, ClientId};

/// The MCP spec suggests a small cap; real documents are a few hundred bytes.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Longest a document is kept, whatever its `Cache-Control` says.
pub const MAX_CACHE_SECS: u64 = 24 * 3600;
/// How long a document without caching headers is kept.
pub const DEFAULT_CACHE_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("client_id URL is not acceptable: {0}")]
    BadUrl(&'static str),
    #[error(
        "the client's metadata document may not be fetched from {0}: it is a private, loopback or link-local address"
    )]
    PrivateAddress(String),
    #[error("the client's metadata document could not be fetched: {0}")]
    Fetch(String),
    #[error("the client's metadata document URL answered with a redirect, which is not followed")]
    Redirect,
    #[error("the client's metadata document URL answered with HTTP status {0}")]
    Status(u16),
    #[error("the client's metadata document is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("the client's metadata document is not valid: {0}")]
    Invalid(String),
    #[error(
        "the client_id inside the client's metadata document is not the URL it was fetched from"
    )]
    ClientIdMismatch,
}

/// Whether a `client_id` should be treated as a metadata document URL (rather than an
/// id this broker issued through registration).
pub fn is_metadata_client_id(client_id: &str) -> bool {
    client_id.starts_with("https://")
}

/// Checks a `client_id` URL (draft §3): `https`, a path other than `/`, no dot
/// segments, no fragment, no user or password.
pub fn parse_client_id_url(client_id: &str) -> Result<Url, MetadataError> {
    if client_id.len() > 2000 {
        return Err(MetadataError::BadUrl("longer than 2000 characters"));
    }
    let url = Url::parse(client_id).map_err(|_| MetadataError::BadUrl("not a URL"))?;
    if url.scheme() != "https" {
        return Err(MetadataError::BadUrl("it must use https"));
    }
    if url.host().is_none() {
        return Err(MetadataError::BadUrl("it has no host"));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(MetadataError::BadUrl("it must contain a path"));
    }
    // The url crate resolves dot segments, so look at the raw text.
    let raw_path = client_id
        .split_once("://")
        .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
        .unwrap_or("");
    let raw_path = raw_path.split(['?', '#']).next().unwrap_or("");
    if raw_path.split('/').any(|s| {
        s == "." || s == ".." || s.eq_ignore_ascii_case("%2e") || s.eq_ignore_ascii_case("%2e%2e")
    }) {
        return Err(MetadataError::BadUrl(
            "it must not contain . or .. segments",
        ));
    }
    if url.fragment().is_some() || client_id.contains('#') {
        return Err(MetadataError::BadUrl("it must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(MetadataError::BadUrl(
            "it must not contain a user or password",
        ));
    }
    Ok(url)
}

/// An IP literal host of the URL, if it is one.
pub fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host() {
        Some(Host::Ipv4(a)) => Some(IpAddr::V4(a)),
        Some(Host::Ipv6(a)) => Some(IpAddr::V6(a)),
        _ => None,
    }
}

/// Whether an address is on the public internet (draft §8.6, SSRF: the server must not
/// be made to fetch from its own network). Loopback, private (RFC 1918), shared (RFC
/// 6598), link-local, unique-local, documentation, multicast, unspecified and reserved
/// ranges, and IPv4 embedded in IPv6 in those ranges, are not.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => is_public_v4(a),
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = a.segments();
            let special = a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: may reach IPv4 anywhere
                || (s[0] == 0x2002) // 6to4: embeds an IPv4 address
                || (s[0] == 0x2001 && s[1] == 0); // Teredo
            // IPv4-compatible ::a.b.c.d (deprecated) embeds IPv4 too.
            let compat = s[..6].iter().all(|x| *x == 0);
            !special && !compat
        }
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_broadcast()
        || a.is_documentation()
        || a.is_unspecified()
        || a.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240) // reserved
}

/// Validates a fetched document against the URL it came from and turns it into the
/// public client it describes.
pub fn validate_document(client_id: &str, body: &[u8]) -> Result<Client, MetadataError> {
    // Draft §8.7: the server may limit the size of documents it fetches.
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(MetadataError::TooLarge);
    }
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| MetadataError::Invalid(format!("not JSON: {e}")))?;
    let Some(obj) = doc.as_object() else {
        return Err(MetadataError::Invalid("not a JSON object".into()));
    };
    // MCP 2025-11-25: authorization servers "MUST validate that the fetched document's
    // client_id matches the URL exactly" (a simple string comparison, draft §4).
    if obj.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(MetadataError::ClientIdMismatch);
    }
    // Draft §4: the document must not carry a shared secret, and shared-secret
    // authentication methods cannot be used with it.
    if obj.contains_key("client_secret") || obj.contains_key("client_secret_expires_at") {
        return Err(MetadataError::Invalid(
            "it must not contain client_secret".into(),
        ));
    }
    let mut as_registration = obj.clone();
    match obj.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => {
            as_registration.insert("token_endpoint_auth_method".into(), "none".into());
        }
        Some(Value::String(s)) if s == "none" => {}
        Some(_) => {
            return Err(MetadataError::Invalid(
                "token_endpoint_auth_method must be none (this broker accepts documents of public clients only)".into(),
            ));
        }
    }
    // The rest are the RFC 7591 metadata rules, shared with dynamic registration:
    // redirect_uris required (https, or http on loopback), grant and response types.
    let reg = validate_registration(&Value::Object(as_registration))
        .map_err(|e| MetadataError::Invalid(e.description.into_owned()))?;
    debug_assert_eq!(reg.auth_method, AuthMethod::None);
    Ok(Client {
        id: ClientId(client_id.to_owned()),
        name: reg.client_name,
        redirect_uris: reg.redirect_uris,
        auth_method: AuthMethod::None,
        secret_hash: None,
    })
}

/// How many seconds a fetched document may be reused (draft §5.2: respect the HTTP
/// caching headers), from its `Cache-Control` header. `no-store` and `no-cache` mean it
/// is used for this one request only.
pub fn cache_secs(cache_control: Option<&str>) -> u64 {
    let Some(cc) = cache_control else {
        return DEFAULT_CACHE_SECS;
    };
    let mut max_age = None;
    for d in cc.split(',').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return 0;
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse::<u64>().ok().or(Some(0));
        }
    }
    max_age.unwrap_or(DEFAULT_CACHE_SECS).min(MAX_CACHE_SECS)
}

/// The host a document came from, as the consent screen shows it.
pub fn document_host(client_id: &str) -> Option<String> {
    if !is_metadata_client_id(client_id) {
        return None;
    }
    let url = Url::parse(client_id).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "https://app.example.com/oauth/client.json";

    fn doc(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn client_id_urls() {
        for ok in [ID, "https://a.example/c?x=1", "https://a.example:8443/c"] {
            assert!(parse_client_id_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://a.example/c",
            "https://a.example",
            "https://a.example/",
            "https://a.example/x/../c",
            "https://a.example/./c",
            "https://a.example/%2e%2e/c",
            "https://a.example/c#f",
            "https://u:p@a.example/c",
            "https:///c",
        ] {
            assert!(parse_client_id_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_and_private_addresses() {
        for ok in [
            "93.184.215.14",
            "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
            "1.1.1.1",
        ] {
            assert!(is_public_address(ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "127.8.9.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "::10.0.0.1",
        ] {
            assert!(!is_public_address(bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn valid_document_makes_a_public_client() {
        let c = validate_document(
            ID,
            &doc(json!({
                "client_id": ID, "client_name": "Claude Code",
                "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "client_uri": "https://app.example.com"
            })),
        )
        .unwrap();
        assert_eq!(c.id.0, ID);
        assert_eq!(c.name, "Claude Code");
        assert_eq!(c.auth_method, AuthMethod::None);
        // Loopback redirect URIs match on any port (RFC 8252 §7.3), as for registered clients.
        assert!(super::super::redirect::matches(
            &c.redirect_uris[0],
            "http://localhost:53123/callback"
        ));
    }

    #[test]
    fn refusals() {
        let big = doc(
            json!({"client_id": ID, "redirect_uris": ["http://127.0.0.1/cb"], "pad": "x".repeat(6000)}),
        );
        assert_eq!(
            validate_document(ID, &big).unwrap_err(),
            MetadataError::TooLarge
        );
        let cases = [
            (
                json!({"client_id": "https://evil.example/c.json", "redirect_uris": ["http://127.0.0.1/cb"]}),
                MetadataError::ClientIdMismatch,
            ),
            (
                json!({"redirect_uris": ["http://127.0.0.1/cb"]}),
                MetadataError::ClientIdMismatch,
            ),
            (
                json!({"client_id": format!("{ID}/"), "redirect_uris": ["http://127.0.0.1/cb"]}),
                MetadataError::ClientIdMismatch,
            ),
        ];
        for (v, want) in cases {
            assert_eq!(
                validate_document(ID, &doc(v.clone())).unwrap_err(),
                want,
                "{v}"
            );
        }
        for v in [
            json!({"client_id": ID}),
            json!({"client_id": ID, "redirect_uris": ["http://evil.example/cb"]}),
            json!({"client_id": ID, "redirect_uris": ["http://127.0.0.1/cb"], "client_secret": "s"}),
            json!({"client_id": ID, "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            json!({"client_id": ID, "redirect_uris": ["http://127.0.0.1/cb"], "grant_types": ["implicit"]}),
            json!([1]),
        ] {
            assert!(
                matches!(
                    validate_document(ID, &doc(v.clone())),
                    Err(MetadataError::Invalid(_))
                ),
                "{v}"
            );
        }
        assert!(matches!(
            validate_document(ID, b"{"),
            Err(MetadataError::Invalid(_))
        ));
    }

    #[test]
    fn cache_lifetimes() {
        assert_eq!(cache_secs(None), DEFAULT_CACHE_SECS);
        assert_eq!(cache_secs(Some("public, max-age=60")), 60);
        assert_eq!(cache_secs(Some("max-age=999999999")), MAX_CACHE_SECS);
        assert_eq!(cache_secs(Some("no-store")), 0);
        assert_eq!(cache_secs(Some("max-age=60, no-cache")), 0);
        assert_eq!(cache_secs(Some("max-age=bogus")), 0);
        assert_eq!(document_host(ID).as_deref(), Some("app.example.com"));
        assert_eq!(
            document_host("https://localhost:8443/c").as_deref(),
            Some("localhost:8443")
        );
        assert_eq!(document_host("mcpb-abc"), None);
    }
}
