//! The tray icon and its menu: one "Revoke client → upstream" item per active grant,
//! a "Revoke all…" submenu whose one item confirms it (a menu cannot ask otherwise),
//! then the "Start at login" switch, "Open mcp-broker" and "Quit". The menu is rebuilt from the core's grant list on
//! every grant change, so it never shows a grant the broker no longer honours.

use tauri::menu::{
    CheckMenuItemBuilder, Menu, MenuBuilder, MenuEvent, MenuItemBuilder, SubmenuBuilder,
};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Manager};

use crate::events::RevokeReason;
use crate::gateway::Gateway;
use crate::oauth::GrantId;

const TRAY: &str = "main";
const REVOKE_PREFIX: &str = "revoke:";
const REVOKE_ALL: &str = "revoke-all";
const OPEN: &str = "open";
const START_AT_LOGIN: &str = "start-at-login";
const QUIT: &str = "quit";

/// What a menu item does, parsed from its id.
#[derive(Debug, PartialEq)]
enum TrayAction {
    Revoke(GrantId),
    RevokeAll,
    StartAtLogin,
    Open,
    Quit,
}

fn parse(id: &str) -> Option<TrayAction> {
    match id {
        OPEN => Some(TrayAction::Open),
        START_AT_LOGIN => Some(TrayAction::StartAtLogin),
        REVOKE_ALL => Some(TrayAction::RevokeAll),
        QUIT => Some(TrayAction::Quit),
        _ => id
            .strip_prefix(REVOKE_PREFIX)?
            .parse()
            .ok()
            .map(|n| TrayAction::Revoke(GrantId(n))),
    }
}

pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let menu = menu(app, &[])?;
    let mut builder = TrayIconBuilder::with_id(TRAY)
        .tooltip("mcp-broker")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(on_menu_event);
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    Ok(())
}

/// Rebuilds the menu from the current grants.
pub async fn rebuild(app: AppHandle) {
    let Some(gateway) = app.try_state::<Gateway>().map(|g| g.inner().clone()) else {
        return;
    };
    let grants = match gateway.list_grants().await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!("cannot list grants for the tray: {e}");
            return;
        }
    };
    let now = crate::clock::now();
    let items: Vec<(GrantId, String)> = grants
        .into_iter()
        .map(|v| {
            (
                v.grant.id,
                match &v.grant.account {
                    Some(a) => format!(
                        "Revoke {} → {} ({a}, {})",
                        v.grant.client_name,
                        v.grant.upstream,
                        last_used(v.grant.last_used_at, now)
                    ),
                    None => format!(
                        "Revoke {} → {} ({})",
                        v.grant.client_name,
                        v.grant.upstream,
                        last_used(v.grant.last_used_at, now)
                    ),
                },
            )
        })
        .collect();
    let r = menu(&app, &items).and_then(|m| match app.tray_by_id(TRAY) {
        Some(tray) => tray.set_menu(Some(m)),
        None => Ok(()),
    });
    if let Err(e) = r {
        tracing::warn!("cannot rebuild the tray menu: {e}");
    }
}

/// When a grant was last used, as the tray says it (as of the last rebuild).
fn last_used(at: Option<i64>, now: i64) -> String {
    let Some(at) = at else {
        return "never used".into();
    };
    match (now - at).max(0) {
        s if s < 120 => "used just now".into(),
        s if s < 7200 => format!("used {} min ago", s / 60),
        s if s < 172_800 => format!("used {} h ago", s / 3600),
        s => format!("used {} days ago", s / 86_400),
    }
}

fn menu(app: &AppHandle, grants: &[(GrantId, String)]) -> tauri::Result<Menu<tauri::Wry>> {
    let mut b = MenuBuilder::new(app);
    if grants.is_empty() {
        b = b.item(
            &MenuItemBuilder::with_id("none", "No active grants")
                .enabled(false)
                .build(app)?,
        );
    }
    for (id, label) in grants {
        b = b.item(&MenuItemBuilder::with_id(format!("{REVOKE_PREFIX}{id}"), label).build(app)?);
    }
    if !grants.is_empty() {
        let confirm = SubmenuBuilder::new(app, "Revoke all…")
            .item(
                &MenuItemBuilder::with_id(
                    REVOKE_ALL,
                    match grants.len() {
                        1 => "Yes, revoke the one grant now".to_owned(),
                        n => format!("Yes, revoke all {n} grants now"),
                    },
                )
                .build(app)?,
            )
            .build()?;
        b = b.separator().item(&confirm);
    }
    let start_at_login = app
        .try_state::<Gateway>()
        .and_then(|g| g.about().start_at_login);
    b.separator()
        .item(
            &CheckMenuItemBuilder::with_id(START_AT_LOGIN, "Start at login")
                .checked(start_at_login == Some(true))
                .enabled(start_at_login.is_some())
                .build(app)?,
        )
        .item(&MenuItemBuilder::with_id(OPEN, "Open mcp-broker").build(app)?)
        .item(&MenuItemBuilder::with_id(QUIT, "Quit").build(app)?)
        .build()
}

fn on_menu_event(app: &AppHandle, event: MenuEvent) {
    let Some(action) = parse(event.id().as_ref()) else {
        return;
    };
    tracing::info!(?action, "tray menu");
    match action {
        TrayAction::Open => super::windows::show_main(app),
        TrayAction::StartAtLogin => {
            let Some(gateway) = app.try_state::<Gateway>().map(|g| g.inner().clone()) else {
                return;
            };
            let on = gateway.about().start_at_login != Some(true);
            if let Err(e) = gateway.set_start_at_login(on) {
                tracing::error!("changing start at login from the tray failed: {e}");
            }
            let _ = app.emit("about-changed", ());
            tauri::async_runtime::spawn(rebuild(app.clone()));
        }
        TrayAction::Quit => app.exit(0),
        TrayAction::RevokeAll => {
            let Some(gateway) = app.try_state::<Gateway>().map(|g| g.inner().clone()) else {
                return;
            };
            tauri::async_runtime::spawn(async move {
                if let Err(e) = gateway.revoke_all(None, RevokeReason::Tray).await {
                    tracing::error!("revoking all grants from the tray failed: {e}");
                }
            });
        }
        TrayAction::Revoke(id) => {
            let Some(gateway) = app.try_state::<Gateway>().map(|g| g.inner().clone()) else {
                return;
            };
            tauri::async_runtime::spawn(async move {
                if let Err(e) = gateway.revoke_grant(id, RevokeReason::Tray).await {
                    tracing::error!(grant = %id, "revoking from the tray failed: {e}");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_ids() {
        assert_eq!(parse("revoke:42"), Some(TrayAction::Revoke(GrantId(42))));
        assert_eq!(parse("open"), Some(TrayAction::Open));
        assert_eq!(parse("start-at-login"), Some(TrayAction::StartAtLogin));
        assert_eq!(parse("revoke-all"), Some(TrayAction::RevokeAll));
        assert_eq!(parse("quit"), Some(TrayAction::Quit));
        assert_eq!(parse("revoke:"), None);
        assert_eq!(parse("revoke:x"), None);
        assert_eq!(parse("none"), None);
    }
}
