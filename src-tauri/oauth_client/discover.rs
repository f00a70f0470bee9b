//! Discovery for a protected resource (MCP authorization spec, "Authorization Server
//! Discovery"): the protected-resource metadata at the URL a 401 named or at the
//! well-known URL (RFC 9728 §3.1, §5.1), then the authorization server's metadata at
//! `oauth-authorization-server`, falling back to `openid-configuration` (RFC 8414 §3.1).
//! Each document is checked before anything in it is used.

use url::Url;

use super::{OAuthClientError, without_url};
use crate::oauth::discovery::{
    ResourceMetadata, ServerMetadata, check_resource, check_server, well_known,
};

/// The two documents, checked against each other and against the resource.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub resource: ResourceMetadata,
    pub server: ServerMetadata,
}

/// `metadata_url`: the `resource_metadata` of a 401's `WWW-Authenticate`, when there was
/// one (already checked with `check_url`); else the well-known URL of `resource`.
pub async fn discover(
    http: &reqwest::Client,
    resource: &Url,
    metadata_url: Option<Url>,
) -> Result<Discovered, OAuthClientError> {
    let prm_url = metadata_url.unwrap_or_else(|| well_known(resource, "oauth-protected-resource"));
    let prm: ResourceMetadata = get_json(http, &prm_url).await?;
    let issuer = check_resource(&prm, resource)?;
    let issuer_url = Url::parse(&issuer).map_err(|_| OAuthClientError::BadUrl(issuer.clone()))?;
    let server: ServerMetadata =
        match get_json(http, &well_known(&issuer_url, "oauth-authorization-server")).await {
            Ok(m) => m,
            Err(_) => get_json(http, &well_known(&issuer_url, "openid-configuration")).await?,
        };
    check_server(&server, &issuer)?;
    Ok(Discovered {
        resource: prm,
        server,
    })
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
) -> Result<T, OAuthClientError> {
    let res = http
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| OAuthClientError::Unreachable {
            url: url.to_string(),
            reason: without_url(&e),
        })?;
    if !res.status().is_success() {
        return Err(OAuthClientError::Status {
            url: url.to_string(),
            status: res.status(),
        });
    }
    res.json().await.map_err(|e| OAuthClientError::BadDocument {
        url: url.to_string(),
        reason: without_url(&e),
    })
}
