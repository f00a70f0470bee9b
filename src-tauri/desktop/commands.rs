//! The commands the web views call, each one call of a [`Gateway`] method. Which window
//! may call which is decided by `src-tauri/capabilities/`: only `consent-*` windows may
//! read or answer a consent question, and a consent window can only answer its own
//! (the question id is taken from the window's label, never from the page).
//!
//! Failures reach the window as a [`CommandError`]: a stable `code` to branch on and a
//! one-line `message` for the person.

use serde::Serialize;
use tauri::{State, WebviewWindow};

use super::windows::{APPROVAL_PREFIX, CONSENT_PREFIX};
use crate::client_apps::import::PlanView;
use crate::consent::{ConsentAnswer, ConsentView, Decision, ToolChoices};
use crate::events::RevokeReason;
use crate::gateway::about::About;
use crate::gateway::activity::{GrantActivity, GrantActivityFilter};
use crate::gateway::personal::CreatedToken;
use crate::gateway::servers::{Applied, ImportSource, ImportedView, ServerForm};
use crate::gateway::tools::{ApprovalAnswer, GrantToolsView, ToolApprovalView};
use crate::gateway::upstreams::Overview;
use crate::gateway::{Gateway, GatewayError, GrantView};
use crate::oauth::GrantId;
use crate::oauth::personal::Expiry;
use crate::tool_policy::ToolChoice;
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

/// One grant's detail view: its calls (filtered, paged), counts, errors and history.
#[tauri::command]
pub async fn grant_activity(
    gateway: State<'_, Gateway>,
    id: i64,
    filter: GrantActivityFilter,
) -> Outcome<GrantActivity> {
    Ok(gateway.grant_activity(GrantId(id), &filter).await?)
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
pub fn server_form(gateway: State<'_, Gateway>, name: String) -> Outcome<ServerForm> {
    Ok(gateway.server_form(&name)?)
}

/// Adds a server; values typed into its password fields go to the keychain.
#[tauri::command]
pub async fn add_server(gateway: State<'_, Gateway>, form: ServerForm) -> Outcome<Applied> {
    Ok(gateway.add_server(form).await?)
}

#[tauri::command]
pub async fn update_server(gateway: State<'_, Gateway>, form: ServerForm) -> Outcome<Applied> {
    Ok(gateway.update_server(form).await?)
}

#[tauri::command]
pub async fn remove_server(gateway: State<'_, Gateway>, name: String) -> Outcome<Applied> {
    Ok(gateway.remove_server(&name).await?)
}

#[tauri::command]
pub fn import_sources(gateway: State<'_, Gateway>) -> Vec<ImportSource> {
    gateway.import_sources()
}

#[tauri::command]
pub async fn import_preview(
    gateway: State<'_, Gateway>,
    client: String,
    servers: Vec<String>,
) -> Outcome<PlanView> {
    Ok(gateway.import_preview(&client, &servers).await?)
}

/// `confirmed`: the keychain entries (from the preview) the person agreed to move.
#[tauri::command]
pub async fn import_servers(
    gateway: State<'_, Gateway>,
    client: String,
    servers: Vec<String>,
    confirmed: Vec<String>,
) -> Outcome<ImportedView> {
    Ok(gateway
        .import_servers(&client, &servers, &confirmed)
        .await?)
}

#[tauri::command]
pub async fn revoke_grant(gateway: State<'_, Gateway>, id: i64) -> Outcome<()> {
    gateway
        .revoke_grant(GrantId(id), RevokeReason::Window)
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
    Ok(gateway.revoke_all(None, RevokeReason::Window).await?.len())
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
pub fn consent_details(window: WebviewWindow, gateway: State<'_, Gateway>) -> Outcome<ConsentView> {
    Ok(gateway.consent_view(consent_id(&window)?)?)
}

#[tauri::command]
pub fn decide_consent(
    window: WebviewWindow,
    gateway: State<'_, Gateway>,
    approve: bool,
    tools: Option<ToolChoices>,
    account: Option<String>,
) -> Outcome<()> {
    let id = consent_id(&window)?;
    let decision = if approve {
        Decision::Approve
    } else {
        Decision::Deny
    };
    let answered = gateway.decide_native(
        id,
        ConsentAnswer {
            decision,
            tools: tools.unwrap_or_default(),
            account,
        },
    );
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

fn approval_id(window: &WebviewWindow) -> Outcome<&str> {
    window
        .label()
        .strip_prefix(APPROVAL_PREFIX)
        .ok_or(CommandError {
            code: "not_an_approval_window",
            message: "only a tool approval window can do this".to_owned(),
        })
}

#[tauri::command]
pub fn tool_approval_details(
    window: WebviewWindow,
    gateway: State<'_, Gateway>,
) -> Outcome<ToolApprovalView> {
    Ok(gateway.tool_approval_view(approval_id(&window)?)?)
}

#[tauri::command]
pub fn answer_tool_approval(
    window: WebviewWindow,
    gateway: State<'_, Gateway>,
    answer: ApprovalAnswer,
) -> Outcome<()> {
    let answered = gateway.answer_tool_approval(approval_id(&window)?, answer);
    let _ = window.close();
    Ok(answered?)
}

#[tauri::command]
pub async fn grant_tools(gateway: State<'_, Gateway>, grant_id: i64) -> Outcome<GrantToolsView> {
    Ok(gateway.grant_tools(GrantId(grant_id)).await?)
}

#[tauri::command]
pub async fn set_tool_choice(
    gateway: State<'_, Gateway>,
    grant_id: i64,
    tool: String,
    choice: ToolChoice,
) -> Outcome<()> {
    Ok(gateway
        .set_tool_choice(GrantId(grant_id), &tool, choice)
        .await?)
}
