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
use crate::events::RevokeReason;
use crate::gateway::Gateway;
use crate::oauth::{GrantId, UnixTime, redirect};

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
}

#[derive(Serialize)]
pub struct Overview {
    issuer: String,
    upstreams: Vec<UpstreamView>,
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
pub fn list_upstreams(gateway: State<'_, Gateway>, shell: State<'_, ShellState>) -> Overview {
    let status = gateway.upstreams.status();
    let errors = shell.last_errors.lock().unwrap_or_else(|e| e.into_inner());
    let upstreams = gateway
        .config
        .upstreams
        .iter()
        .map(|u| UpstreamView {
            name: u.name.clone(),
            endpoint: endpoint(&u.transport),
            sessions: status
                .iter()
                .find(|s| s.name == u.name)
                .map_or(0, |s| s.sessions),
            last_error: errors.get(&u.name).cloned(),
        })
        .collect();
    Overview {
        issuer: gateway.issuer.clone(),
        upstreams,
    }
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
