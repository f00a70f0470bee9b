//! Fetching Client ID Metadata Documents for the authorization endpoint: the I/O half of
//! `oauth::cimd` (which decides what is valid).
//!
//! SSRF defences (draft-ietf-oauth-client-id-metadata-document §8.6): only `https`; no
//! proxy; redirects are never followed (draft §5: the document must come from the URL
//! itself); every address a host name resolves to is checked, and connections go only
//! to addresses that passed, through a resolver that re-checks them at connect time, so
//! a DNS answer cannot change between the check and the connection; a short timeout;
//! and the body is read only up to the size cap. Documents are cached in memory for as
//! long as their `Cache-Control` allows (at most a day); failures are never cached.
//!
//! A test-only setting (`[broker.test_client_metadata]`) trusts one extra CA and allows
//! listed addresses (a loopback test server). It is off by default and logged as a
//! warning whenever it is on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::config::TestClientMetadata;
use crate::oauth::Client;
use crate::oauth::cimd::{
    MAX_DOCUMENT_BYTES, MetadataError, cache_secs, is_public_address, literal_ip,
    parse_client_id_url, validate_document,
};

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CACHED: usize = 256;

pub struct ClientMetadataDocuments {
    /// `None` when the HTTP client could not be built; the feature is then off and not
    /// advertised.
    http: Option<reqwest::Client>,
    allowed: Arc<Vec<IpAddr>>,
    cache: Mutex<HashMap<String, (Instant, Client)>>,
}

fn permitted(ip: IpAddr, allowed: &[IpAddr]) -> bool {
    is_public_address(ip) || allowed.contains(&ip)
}

/// Resolves host names and drops every address that may not be fetched from.
struct PublicOnlyResolver {
    allowed: Arc<Vec<IpAddr>>,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| permitted(a.ip(), &allowed))
                .collect();
            if addrs.is_empty() {
                let e = std::io::Error::other(format!(
                    "{} resolves to no public address",
                    name.as_str()
                ));
                return Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

impl ClientMetadataDocuments {
    pub fn new(test: Option<&TestClientMetadata>) -> ClientMetadataDocuments {
        let allowed: Arc<Vec<IpAddr>> =
            Arc::new(test.map(|t| t.allow_addresses.clone()).unwrap_or_default());
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .user_agent(concat!("mcp-broker/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PublicOnlyResolver {
                allowed: allowed.clone(),
            }));
        if let Some(t) = test {
            tracing::warn!(
                ca_file = %t.ca_file.display(),
                allow_addresses = ?t.allow_addresses,
                "TEST-ONLY SETTING ON: [broker.test_client_metadata] trusts an extra CA and allows \
                 non-public addresses for Client ID Metadata Documents; never use it outside tests"
            );
            match std::fs::read(&t.ca_file)
                .map_err(|e| e.to_string())
                .and_then(|pem| reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string()))
            {
                Ok(cert) => builder = builder.add_root_certificate(cert),
                Err(e) => {
                    tracing::error!(
                        "cannot load test CA {}: {e}; Client ID Metadata Documents are off",
                        t.ca_file.display()
                    );
                    return ClientMetadataDocuments {
                        http: None,
                        allowed,
                        cache: Mutex::new(HashMap::new()),
                    };
                }
            }
        }
        let http = match builder.build() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("Client ID Metadata Documents are off: {e}");
                None
            }
        };
        ClientMetadataDocuments {
            http,
            allowed,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the authorization server metadata may advertise
    /// `client_id_metadata_document_supported`.
    pub fn supported(&self) -> bool {
        self.http.is_some()
    }

    /// The client a `client_id` URL describes, from the cache or freshly fetched.
    pub async fn client(&self, client_id: &str) -> Result<Client, MetadataError> {
        let Some(http) = &self.http else {
            return Err(MetadataError::Fetch(
                "this broker cannot fetch client metadata documents".into(),
            ));
        };
        let url = parse_client_id_url(client_id)?;
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((until, c)) = cache.get(client_id)
                && Instant::now() < *until
            {
                return Ok(c.clone());
            }
        }
        self.check_host(&url).await?;
        let res = http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fetch_error(&e))?;
        let status = res.status();
        if status.is_redirection() {
            return Err(MetadataError::Redirect);
        }
        if status != reqwest::StatusCode::OK {
            return Err(MetadataError::Status(status.as_u16()));
        }
        if res
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(MetadataError::TooLarge);
        }
        let cache_control = res
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fetch_error(&e))?;
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(MetadataError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let client = validate_document(client_id, &body)?;
        let ttl = cache_secs(cache_control.as_deref());
        if ttl > 0 {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() < MAX_CACHED {
                cache.insert(
                    client_id.to_owned(),
                    (now + Duration::from_secs(ttl), client.clone()),
                );
            }
        }
        Ok(client)
    }

    /// Refuses, with a clear message, hosts that are or resolve only to non-public
    /// addresses. (The resolver enforces the same rule for the connection itself.)
    async fn check_host(&self, url: &url::Url) -> Result<(), MetadataError> {
        if let Some(ip) = literal_ip(url) {
            return if permitted(ip, &self.allowed) {
                Ok(())
            } else {
                Err(MetadataError::PrivateAddress(ip.to_string()))
            };
        }
        let host = url.host_str().unwrap_or_default();
        let lookup = tokio::time::timeout(
            FETCH_TIMEOUT,
            tokio::net::lookup_host((host, url.port_or_known_default().unwrap_or(443))),
        )
        .await
        .map_err(|_| MetadataError::Fetch(format!("resolving {host} timed out")))?
        .map_err(|_| MetadataError::Fetch(format!("cannot resolve {host}")))?;
        let addrs: Vec<IpAddr> = lookup.map(|a| a.ip()).collect();
        if addrs.iter().any(|ip| permitted(*ip, &self.allowed)) {
            Ok(())
        } else {
            Err(MetadataError::PrivateAddress(format!(
                "{host} ({})",
                addrs
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

fn fetch_error(e: &reqwest::Error) -> MetadataError {
    if e.is_timeout() {
        return MetadataError::Fetch("timed out".into());
    }
    // The chain says why (TLS, refused connection, resolver); it holds no secrets.
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    MetadataError::Fetch(msg)
}
