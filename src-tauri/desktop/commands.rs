//! The commands the web views call, each a thin wrapper over [`Gateway`]. Which window
//! may call which is decided by `src-tauri/capabilities/`: only `consent-*` windows may
//! read or answer a consent question, and a consent window can only answer its own
//! (the question id is taken from the window's label, never from the page).

use serde::Serialize;
use tauri::{State, WebviewWindow};

use super::ShellState;
use super::windows::CONSENT_PREFIX;
use crate::config::Transport;
use crate::consent::Decision;
use crate::events::{GatewayEvent, RevokeReason};
use crate::gateway::Gateway;
use crate::oauth::{GrantId, UnixTime, redirect};
use crate::proxy::upstream_oauth::LoginState;
use crate::secrets::{self, SecretEntry, SecretStatus};
use crate::vault::Secret;

#[derive(Serialize)]
pub struct GrantView {
    id: GrantId,
    client_id: String,
    client_name: String,
    upstream: String,
    scope: String,
    created_at: UnixTime,
    last_used_at: Option<UnixTime>,
    sessions: usize,
}

#[derive(Serialize)]
pub struct UpstreamView {
    name: String,
    endpoint: String,
    sessions: usize,
    last_error: Option<String>,
    /// The keychain secrets this upstream reads, with their status.
    secrets: Vec<SecretUse>,
    /// For a remote upstream that may sign in with OAuth (no `Authorization` header
    /// configured): whether the broker holds a sign-in.
    sign_in: Option<SignInView>,
}

#[derive(Serialize)]
pub struct SecretUse {
    name: String,
    /// `env GITHUB_TOKEN`, `header Authorization`.
    place: String,
    status: SecretStatus,
}

#[derive(Serialize)]
pub struct SignInView {
    /// `None`: the keychain could not be asked.
    signed_in: Option<bool>,
    /// A sign-in started here or by `mcp-broker upstream login`, and how it ended.
    login: Option<LoginState>,
}

#[derive(Serialize)]
pub struct Overview {
    issuer: String,
    upstreams: Vec<UpstreamView>,
    /// Every secret name the configuration uses or the keychain index knows. Names and
    /// statuses only: no value ever reaches a web view.
    secrets: Vec<SecretEntry>,
    /// Why the keychain could not be asked, in one line with what to do.
    keychain_error: Option<String>,
}

#[derive(Serialize)]
pub struct ConsentDetails {
    client_name: String,
    client_id: String,
    redirect_host: String,
    redirect_is_loopback: bool,
    upstream: String,
    scope: String,
}

#[tauri::command]
pub async fn list_grants(gateway: State<'_, Gateway>) -> Result<Vec<GrantView>, String> {
    let grants = gateway.active_grants().await.map_err(|e| e.to_string())?;
    Ok(grants
        .into_iter()
        .map(|g| GrantView {
            sessions: gateway.upstreams.sessions_of_grant(g.id),
            id: g.id,
            client_id: g.client_id,
            client_name: g.client_name,
            upstream: g.upstream,
            scope: g.scope,
            created_at: g.created_at,
            last_used_at: g.last_used_at,
        })
        .collect())
}

#[tauri::command]
pub async fn list_upstreams(
    gateway: State<'_, Gateway>,
    shell: State<'_, ShellState>,
) -> Result<Overview, String> {
    let (secrets, keychain_error) =
        secrets::inventory(&gateway.vault, Some(&gateway.store), Some(&gateway.config))
            .await
            .map_err(|e| e.to_string())?;
    let mut keychain_error = keychain_error.map(|e| e.to_string());
    let mut upstreams = Vec::with_capacity(gateway.config.upstreams.len());
    let status = gateway.upstreams.status();
    for u in &gateway.config.upstreams {
        let uses = u
            .secret_refs()
            .into_iter()
            .map(|(name, place)| SecretUse {
                status: secrets
                    .iter()
                    .find(|e| e.name == name)
                    .map_or(SecretStatus::Unknown, |e| e.status),
                name: name.to_owned(),
                place,
            })
            .collect();
        let sign_in = match &u.transport {
            Transport::Http { headers, .. }
                if !headers
                    .keys()
                    .any(|h| h.eq_ignore_ascii_case("authorization")) =>
            {
                let signed_in = match gateway.upstream_signed_in(&u.name).await {
                    Ok(b) => Some(b),
                    Err(e) => {
                        keychain_error.get_or_insert_with(|| e.to_string());
                        None
                    }
                };
                Some(SignInView {
                    signed_in,
                    login: gateway.upstreams.oauth.login_state(&u.name),
                })
            }
            _ => None,
        };
        upstreams.push(UpstreamView {
            name: u.name.clone(),
            endpoint: endpoint(&u.transport),
            sessions: status
                .iter()
                .find(|s| s.name == u.name)
                .map_or(0, |s| s.sessions),
            last_error: shell.last_error(&u.name),
            secrets: uses,
            sign_in,
        });
    }
    Ok(Overview {
        issuer: gateway.issuer.clone(),
        upstreams,
        secrets,
        keychain_error,
    })
}

/// Stores a secret typed into the grants window. The value goes straight to the
/// keychain; the next session of an upstream that reads it gets it.
#[tauri::command]
pub async fn set_secret(
    gateway: State<'_, Gateway>,
    shell: State<'_, ShellState>,
    name: String,
    value: String,
) -> Result<(), String> {
    secrets::set(&gateway.vault, &gateway.store, &name, Secret::new(value))
        .await
        .map_err(|e| e.to_string())?;
    // A "secret missing" failure of an upstream that reads it is now out of date.
    for u in &gateway.config.upstreams {
        if u.secret_refs().iter().any(|(n, _)| *n == name) {
            shell.clear_error(&u.name);
        }
    }
    gateway.emit(GatewayEvent::SecretsChanged);
    Ok(())
}

#[tauri::command]
pub async fn delete_secret(gateway: State<'_, Gateway>, name: String) -> Result<bool, String> {
    let existed = secrets::delete(&gateway.vault, &gateway.store, &name)
        .await
        .map_err(|e| e.to_string())?;
    gateway.emit(GatewayEvent::SecretsChanged);
    Ok(existed)
}

/// Starts the broker's sign-in to a remote upstream and opens the authorization page in
/// the system browser; returns its URL for the window to show in case no browser opens.
/// The outcome arrives as `upstreams-changed` once the browser comes back.
#[tauri::command]
pub async fn sign_in_upstream(gateway: State<'_, Gateway>, name: String) -> Result<String, String> {
    let url = gateway
        .start_upstream_sign_in(&name)
        .await
        .map_err(|e| e.to_string())?;
    if let Err(e) = crate::browser::open(&url) {
        tracing::warn!(upstream = %name, "could not open a browser: {e}");
    }
    Ok(url)
}

#[tauri::command]
pub async fn sign_out_upstream(gateway: State<'_, Gateway>, name: String) -> Result<bool, String> {
    gateway
        .upstream_sign_out(&name)
        .await
        .map_err(|e| e.to_string())
}

/// How an upstream is reached, without anything that could be a secret: the program's
/// file name (not its arguments), or the URL without query or credentials.
fn endpoint(t: &Transport) -> String {
    match t {
        Transport::Stdio { command, .. } => {
            let name = std::path::Path::new(command)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| command.clone());
            format!("stdio: {name}")
        }
        Transport::Http { url, .. } => {
            let mut u = url.clone();
            u.set_query(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
    }
}

#[tauri::command]
pub async fn revoke_grant(gateway: State<'_, Gateway>, id: i64) -> Result<bool, String> {
    gateway
        .revoke_grant(GrantId(id), RevokeReason::User)
        .await
        .map_err(|e| e.to_string())
}

fn consent_id(window: &WebviewWindow) -> Result<&str, String> {
    window
        .label()
        .strip_prefix(CONSENT_PREFIX)
        .ok_or_else(|| "only a consent window can do this".to_owned())
}

#[tauri::command]
pub fn consent_details(
    window: WebviewWindow,
    gateway: State<'_, Gateway>,
) -> Result<ConsentDetails, String> {
    let id = consent_id(&window)?;
    let r = gateway
        .consent
        .details(id)
        .ok_or_else(|| "this request was already answered or has expired".to_owned())?;
    Ok(ConsentDetails {
        client_name: r.client_name.clone(),
        client_id: r.client_id.0.clone(),
        redirect_host: redirect::display_host(&r.redirect_uri),
        redirect_is_loopback: redirect::is_loopback(&r.redirect_uri),
        upstream: r.upstream.clone(),
        scope: r.requested_scopes.to_string(),
    })
}

#[tauri::command]
pub fn decide_consent(
    window: WebviewWindow,
    gateway: State<'_, Gateway>,
    approve: bool,
) -> Result<(), String> {
    let id = consent_id(&window)?;
    let decision = if approve {
        Decision::Approve
    } else {
        Decision::Deny
    };
    let answered = gateway.consent.decide(id, decision);
    // The question is settled either way (answered now, or expired); the window goes.
    let _ = window.close();
    answered.map_err(|_| "this request was already answered or has expired".to_owned())
}
