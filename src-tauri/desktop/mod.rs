//! The desktop shell: a Tauri 2 app around the same [`Gateway`] the headless server
//! runs. It owns the windows (grants, consent), the tray menu and notifications, and it
//! reacts to [`GatewayEvent`]s; every decision and revocation goes through the Gateway.
//!
//! Must not import: sqlx, axum, rmcp (go through `Gateway`). This module is the only
//! importer of tauri and notify-rust; `cargo check --no-default-features` proves it.

mod commands;
mod notify;
mod tray;
mod windows;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use tauri::{Emitter, Manager, RunEvent};
use tokio::sync::{broadcast, mpsc};

use crate::config::Config;
use crate::consent::{ConsentMode, ConsentRequest};
use crate::events::{GatewayEvent, RevokeReason};
use crate::gateway::Gateway;
use crate::oauth::GrantId;

/// What the shell remembers beyond the core: the last failure of each upstream, shown
/// in the grants window (the core reports failures as events and keeps no history).
#[derive(Default)]
pub struct ShellState {
    last_errors: Mutex<HashMap<String, String>>,
}

impl ShellState {
    fn errors(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.last_errors.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn set_error(&self, upstream: String, reason: String) {
        self.errors().insert(upstream, reason);
    }
    fn clear_error(&self, upstream: &str) {
        self.errors().remove(upstream);
    }
    fn last_error(&self, upstream: &str) -> Option<String> {
        self.errors().get(upstream).cloned()
    }
}

/// Runs the desktop app until the user quits (tray "Quit") or SIGTERM; returns the
/// process exit status.
pub fn run(config: Config, data_dir: PathBuf, port: u16) -> i32 {
    let (consent_tx, consent_rx) = mpsc::unbounded_channel();
    let mut consent_rx = Some(consent_rx);
    let mut consent_tx = Some(consent_tx);
    let mut config = Some(config);
    let app = tauri::Builder::default()
        // A second launch focuses this one instead of starting a second server on the
        // same port; it must be the first plugin (it exits the second process early).
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            windows::show_main(app);
        }))
        .manage(ShellState::default())
        .invoke_handler(tauri::generate_handler![
            commands::list_grants,
            commands::list_upstreams,
            commands::revoke_grant,
            commands::set_secret,
            commands::delete_secret,
            commands::sign_in_upstream,
            commands::sign_out_upstream,
            commands::consent_details,
            commands::decide_consent,
        ])
        .setup(move |app| {
            let (Some(config), Some(tx), Some(rx)) =
                (config.take(), consent_tx.take(), consent_rx.take())
            else {
                return Err("setup ran twice".into());
            };
            let bound = tauri::async_runtime::block_on(Gateway::bind(
                config,
                &data_dir,
                port,
                ConsentMode::Native(tx),
            ));
            let (gateway, listener) = match bound {
                Ok(x) => x,
                Err(e) => return Err(format!("cannot start on 127.0.0.1:{port}: {e}").into()),
            };
            app.manage(gateway.clone());
            let handle = app.handle().clone();
            tray::create(&handle)?;
            windows::keep_main_in_tray(&handle);
            // Subscribe before serving so no event from the first request is missed.
            let events = gateway.subscribe();
            let shutdown = {
                let handle = handle.clone();
                async move {
                    crate::cli::shutdown_signal().await;
                    tracing::info!("shutting down");
                    handle.exit(0);
                }
            };
            tauri::async_runtime::spawn(shutdown);
            {
                let gateway = gateway.clone();
                tauri::async_runtime::spawn(async move {
                    gateway.spawn_maintenance();
                    if let Err(e) =
                        crate::http::serve(listener, gateway, std::future::pending()).await
                    {
                        tracing::error!("server failed: {e}");
                    }
                });
            }
            tauri::async_runtime::spawn(ask_for_consent(handle.clone(), rx));
            tauri::async_runtime::spawn(follow_events(handle.clone(), events));
            tauri::async_runtime::spawn(tray::rebuild(handle));
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {}", gateway.issuer);
            let _ = out.flush();
            tracing::info!(upstreams = gateway.config.upstreams.len(), data_dir = %gateway.data_dir.display(), "ready (desktop)");
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            return 1;
        }
    };
    app.run(|app, event| match event {
        // Closing the last window keeps the app in the tray; only Quit (an explicit
        // exit code) ends it.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::Exit => {
            if let Some(g) = app.try_state::<Gateway>() {
                // End every MCP session, and so every upstream child, before exiting.
                tauri::async_runtime::block_on(g.shutdown());
            }
        }
        _ => {}
    });
    0
}

/// Opens a consent window for each question the authorization endpoint asks.
async fn ask_for_consent(app: tauri::AppHandle, mut rx: mpsc::UnboundedReceiver<ConsentRequest>) {
    while let Some(req) = rx.recv().await {
        if let Err(e) = windows::open_consent(&app, &req.id) {
            tracing::error!("cannot open a consent window: {e}");
            // Without a window nobody can answer; deny now rather than after 5 minutes.
            if let Some(g) = app.try_state::<Gateway>() {
                let _ = g.consent.decide(&req.id, crate::consent::Decision::Deny);
            }
        }
    }
}

/// The active grants as last seen: (client name, upstream) by id.
type KnownGrants = HashMap<GrantId, (String, String)>;

async fn active_grants(app: &tauri::AppHandle) -> Option<KnownGrants> {
    let g = app.try_state::<Gateway>()?;
    match g.active_grants().await {
        Ok(list) => Some(
            list.into_iter()
                .map(|g| (g.id, (g.client_name, g.upstream)))
                .collect(),
        ),
        Err(e) => {
            tracing::warn!("cannot read the grants: {e}");
            None
        }
    }
}

/// Grants that vanished without an event from this process were revoked by another one
/// (`mcp-broker grants revoke`): they get the same "Access revoked" notification.
async fn notice_external_revocations(app: &tauri::AppHandle, known: &mut KnownGrants) {
    let Some(now) = active_grants(app).await else {
        return;
    };
    for (id, (client_name, upstream)) in known.drain() {
        if !now.contains_key(&id) {
            notify::for_event(&GatewayEvent::GrantRevoked {
                grant_id: id,
                client_name,
                upstream,
                reason: RevokeReason::External,
            });
        }
    }
    *known = now;
}

/// Turns core events into window refreshes, tray rebuilds and notifications.
async fn follow_events(app: tauri::AppHandle, mut rx: broadcast::Receiver<GatewayEvent>) {
    let mut known = active_grants(&app).await.unwrap_or_default();
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Missed some: refresh everything, which is always correct.
                notice_external_revocations(&app, &mut known).await;
                grants_changed(&app).await;
                let _ = app.emit("upstreams-changed", ());
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        notify::for_event(&ev);
        match ev {
            GatewayEvent::GrantApproved {
                grant_id,
                client_name,
                upstream,
            } => {
                known.insert(grant_id, (client_name, upstream));
                grants_changed(&app).await;
            }
            GatewayEvent::GrantRevoked { grant_id, .. } => {
                // Already announced: the later GrantsChanged must not announce it again.
                known.remove(&grant_id);
                grants_changed(&app).await;
            }
            GatewayEvent::GrantsChanged => {
                notice_external_revocations(&app, &mut known).await;
                grants_changed(&app).await;
            }
            GatewayEvent::UpstreamFailed { upstream, reason } => {
                app.state::<ShellState>().set_error(upstream, reason);
                let _ = app.emit("upstreams-changed", ());
            }
            GatewayEvent::UpstreamSignIn {
                upstream,
                signed_in: true,
            } => {
                // The failure that asked for this sign-in is settled.
                app.state::<ShellState>().clear_error(&upstream);
                let _ = app.emit("upstreams-changed", ());
            }
            GatewayEvent::SessionsChanged { .. }
            | GatewayEvent::UpstreamSignIn { .. }
            | GatewayEvent::SecretsChanged => {
                let _ = app.emit("upstreams-changed", ());
            }
            GatewayEvent::RefreshReplayed { .. } | GatewayEvent::ClientRegistered { .. } => {}
        }
    }
}

async fn grants_changed(app: &tauri::AppHandle) {
    let _ = app.emit("grants-changed", ());
    tray::rebuild(app.clone()).await;
}
