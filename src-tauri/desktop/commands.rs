//! The commands the web views call, each one call of a [`Gateway`] method. Which window
//! may call which is decided by `src-tauri/capabilities/`: only `consent-*` windows may
//! read or answer a consent question, and a consent window can only answer its own
//! (the question id is taken from the window's label, never from the page).
//!
//! Failures reach the window as a [`CommandError`]: a stable `code` to branch on and a
//! one-line `message` for the person.

use serde::Serialize;
use tauri::{State, WebviewWindow};

use super::windows::CONSENT_PREFIX;
use crate::consent::{ConsentView, Decision};
use crate::events::RevokeReason;
use crate::gateway::about::About;
use crate::gateway::personal::CreatedToken;
use crate::gateway::upstreams::Overview;
use crate::gateway::{Gateway, GatewayError, GrantView};
use crate::oauth::GrantId;
use crate::oauth::personal::Expiry;
use crate::vault::Secret;

/// What a failed command returns to the web view.
#[derive(Debug, Serialize)]
pub struct CommandError {
    code: &'static str,
    message: String,
}

impl From<GatewayError> for CommandError {
    fn from(e: GatewayError) -> Self {
        if let GatewayError::Internal(inner) = &e {
            tracing::error!("desktop command failed: {inner}");
        }
        CommandError {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

type Outcome<T> = Result<T, CommandError>;

#[tauri::command]
pub async fn list_grants(gateway: State<'_, Gateway>) -> Outcome<Vec<GrantView>> {
    Ok(gateway.list_grants().await?)
}

#[tauri::command]
pub async fn list_upstreams(gateway: State<'_, Gateway>) -> Outcome<Overview> {
    Ok(gateway.overview().await?)
}

/// Stores a secret typed into the grants window. The value goes straight to the
/// keychain and is never sent back.
#[tauri::command]
pub async fn set_secret(gateway: State<'_, Gateway>, name: String, value: String) -> Outcome<()> {
    Ok(gateway.set_secret(&name, Secret::new(value)).await?)
}

#[tauri::command]
pub async fn delete_secret(gateway: State<'_, Gateway>, name: String) -> Outcome<bool> {
    Ok(gateway.delete_secret(&name).await?)
}

/// Starts the broker's sign-in to a remote upstream and opens the authorization page in
/// the system browser; returns its URL for the window to show in case no browser opens.
/// The outcome arrives as `upstreams-changed` once the browser comes back.
#[tauri::command]
pub async fn sign_in_upstream(gateway: State<'_, Gateway>, name: String) -> Outcome<String> {
    let url = gateway.start_upstream_sign_in(&name).await?;
    if let Err(e) = crate::browser::open(&url) {
        tracing::warn!(upstream = %name, "could not open a browser: {e}");
    }
    Ok(url)
}

#[tauri::command]
pub async fn sign_out_upstream(gateway: State<'_, Gateway>, name: String) -> Outcome<bool> {
    Ok(gateway.upstream_sign_out(&name).await?)
}

#[tauri::command]
pub async fn revoke_grant(gateway: State<'_, Gateway>, id: i64) -> Outcome<()> {
    gateway
        .revoke_grant(GrantId(id), RevokeReason::User)
        .await?;
    Ok(())
}

/// Moves a grant to another account of its upstream; its open sessions end.
#[tauri::command]
pub async fn switch_account(gateway: State<'_, Gateway>, id: i64, account: String) -> Outcome<()> {
    gateway.switch_account(GrantId(id), &account).await?;
    Ok(())
}

/// Revokes every active grant (the window asks for confirmation first); returns how many.
#[tauri::command]
pub async fn revoke_all_grants(gateway: State<'_, Gateway>) -> Outcome<usize> {
    Ok(gateway.revoke_all(None, RevokeReason::User).await?.len())
}

/// Mints a personal access token; the window shows it once, with a copy button.
/// `expires`: a duration such as `30d`, or `never`.
#[tauri::command]
pub async fn create_personal_token(
    gateway: State<'_, Gateway>,
    upstream: String,
    label: String,
    expires: String,
) -> Outcome<CreatedToken> {
    let expiry = Expiry::parse(&expires).map_err(GatewayError::from)?;
    Ok(gateway
        .create_personal_token(&upstream, &label, expiry, &[])
        .await?)
}

#[tauri::command]
pub fn about(gateway: State<'_, Gateway>) -> About {
    gateway.about()
}

#[tauri::command]
pub fn set_start_at_login(gateway: State<'_, Gateway>, on: bool) -> Outcome<About> {
    Ok(gateway.set_start_at_login(on)?)
}

#[tauri::command]
pub fn dismiss_start_at_login_offer(gateway: State<'_, Gateway>) -> About {
    gateway.dismiss_start_at_login_offer()
}

fn consent_id(window: &WebviewWindow) -> Outcome<&str> {
    window
        .label()
        .strip_prefix(CONSENT_PREFIX)
        .ok_or(CommandError {
            code: "not_a_consent_window",
            message: "only a consent window can do this".to_owned(),
        })
}

#[tauri::command]
pub async fn consent_details(
    window: WebviewWindow,
    gateway: State<'_, Gateway>,
) -> Outcome<ConsentView> {
    Ok(gateway.consent_view(consent_id(&window)?).await?)
}

#[tauri::command]
pub fn decide_consent(
    window: WebviewWindow,
    gateway: State<'_, Gateway>,
    approve: bool,
    account: Option<String>,
) -> Outcome<()> {
    let id = consent_id(&window)?;
    let decision = if approve {
        Decision::Approve
    } else {
        Decision::Deny
    };
    let answered = gateway.decide_native(id, decision, account.as_deref());
    if let Err(e @ (GatewayError::AccountRequired { .. } | GatewayError::UnknownAccount(_))) =
        answered
    {
        // Still open: the person chooses an account and approves again.
        return Err(e.into());
    }
    // The question is settled either way (answered now, or expired); the window goes.
    let _ = window.close();
    Ok(answered?)
}
