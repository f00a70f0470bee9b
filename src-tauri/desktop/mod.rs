//! The desktop shell: a Tauri 2 app around the same [`Gateway`] the headless server
//! runs, started by the same [`app::start`]. It owns the windows (grants, consent), the
//! tray menu and notifications, and it reacts to [`GatewayEvent`]s; every decision,
//! revocation and listing is one Gateway call. It keeps no state of its own about grants
//! or upstreams.
//!
//! Must not import: sqlx, axum, the store, `cli` (go through `Gateway` and `app`). This module is the only
//! importer of tauri and notify-rust; `cargo check --no-default-features` proves it.

mod commands;
mod notify;
mod tray;
mod windows;

use std::sync::Mutex;

use tauri::{Emitter, Manager, RunEvent};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::app;
use crate::consent::{ConsentAnswer, ConsentMode, ConsentRequest};
use crate::events::GatewayEvent;
use crate::gateway::Gateway;

/// How the shell stops the broker it started: the sender ends the serving task, whose
/// shutdown (sessions, children, `broker.json`) completes before the receiver fires.
struct Stop(Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<i32>)>>);

/// Runs the desktop app until the user quits (tray "Quit") or SIGTERM; returns the
/// process exit status. The broker inside is started by [`app::start`], exactly as the
/// headless one is.
pub fn run(start: app::DesktopStart) -> i32 {
    let app::DesktopStart {
        config,
        data_dir,
        port,
        minimized,
    } = start;
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
        .invoke_handler(tauri::generate_handler![
            commands::list_grants,
            commands::grant_activity,
            commands::list_upstreams,
            commands::revoke_grant,
            commands::switch_account,
            commands::revoke_all_grants,
            commands::create_personal_token,
            commands::set_secret,
            commands::delete_secret,
            commands::sign_in_upstream,
            commands::sign_out_upstream,
            commands::about,
            commands::set_start_at_login,
            commands::dismiss_start_at_login_offer,
            commands::server_form,
            commands::add_server,
            commands::update_server,
            commands::remove_server,
            commands::import_sources,
            commands::import_preview,
            commands::import_servers,
            commands::consent_details,
            commands::decide_consent,
            commands::tool_approval_details,
            commands::answer_tool_approval,
            commands::grant_tools,
            commands::set_tool_choice,
        ])
        .setup(move |app| {
            let (Some(config), Some(tx), Some(rx)) =
                (config.take(), consent_tx.take(), consent_rx.take())
            else {
                return Err("setup ran twice".into());
            };
            let running = tauri::async_runtime::block_on(app::start(
                config,
                data_dir.clone(),
                port,
                ConsentMode::Native(tx),
            ))?;
            let gateway = running.gateway().clone();
            app.manage(gateway.clone());
            let handle = app.handle().clone();
            tray::create(&handle)?;
            windows::keep_main_in_tray(&handle);
            if minimized {
                windows::hide_main(&handle);
            }
            // Subscribed before the first request can be served to the shell.
            let events = gateway.subscribe();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let (done_tx, done_rx) = oneshot::channel::<i32>();
            app.manage(Stop(Mutex::new(Some((stop_tx, done_rx)))));
            {
                let handle = handle.clone();
                tauri::async_runtime::spawn(async move {
                    let stop = async {
                        tokio::select! {
                            _ = app::shutdown_signal() => {}
                            _ = stop_rx => {}
                        }
                    };
                    let code = running.until(stop).await;
                    let _ = done_tx.send(code);
                    // SIGTERM or a failed server: leave the event loop too. After Quit
                    // this exit request finds the app already leaving.
                    handle.exit(code);
                });
            }
            tauri::async_runtime::spawn(ask_for_consent(handle.clone(), rx));
            tauri::async_runtime::spawn(ask_for_tool_calls(
                handle.clone(),
                gateway.tool_approvals(),
            ));
            tauri::async_runtime::spawn(follow_events(handle.clone(), events));
            tauri::async_runtime::spawn(tray::rebuild(handle));
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("mcp-broker: cannot start: {e}");
            return 1;
        }
    };
    // `run` ends the process itself, with the code given to `exit` (by Quit, or by the
    // serving task after SIGTERM or a failure).
    app.run(|app, event| match event {
        // Closing the last window keeps the app in the tray; only Quit (an explicit
        // exit code) ends it.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::Exit => {
            // End every MCP session (and so every upstream child) and remove
            // broker.json before the process goes.
            let pending = app
                .try_state::<Stop>()
                .and_then(|s| s.0.lock().unwrap_or_else(|e| e.into_inner()).take());
            if let Some((stop, done)) = pending {
                let _ = stop.send(());
                let _ = tauri::async_runtime::block_on(done);
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
                let _ = g.decide_native(&req.id, ConsentAnswer::deny());
            }
        }
    }
}

/// Opens an approval window for each call to an "ask each time" tool.
async fn ask_for_tool_calls(
    app: tauri::AppHandle,
    mut rx: mpsc::UnboundedReceiver<crate::gateway::tools::ToolApprovalRequest>,
) {
    while let Some(req) = rx.recv().await {
        if let Err(e) = windows::open_tool_approval(
            &app,
            &req.id,
            std::time::Duration::from_secs(req.view.timeout_secs),
        ) {
            tracing::error!("cannot open a tool approval window: {e}");
            if let Some(g) = app.try_state::<Gateway>() {
                let _ =
                    g.answer_tool_approval(&req.id, crate::gateway::tools::ApprovalAnswer::Deny);
            }
        }
    }
}

/// Turns core events into window refreshes, tray rebuilds and notifications.
async fn follow_events(app: tauri::AppHandle, mut rx: broadcast::Receiver<GatewayEvent>) {
    let mut notifier = notify::Notifier::default();
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Missed some: refresh everything, which is always correct.
                grants_changed(&app).await;
                let _ = app.emit("upstreams-changed", ());
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        notifier.for_event(&ev);
        match ev {
            GatewayEvent::GrantApproved { .. }
            | GatewayEvent::GrantRevoked { .. }
            | GatewayEvent::GrantsChanged
            | GatewayEvent::ToolDecision(_)
            | GatewayEvent::ToolsSuspended { .. } => grants_changed(&app).await,
            GatewayEvent::SessionsChanged { .. }
            | GatewayEvent::UpstreamFailed { .. }
            | GatewayEvent::UpstreamSignIn { .. }
            | GatewayEvent::SecretsChanged
            | GatewayEvent::UpstreamsChanged { .. } => {
                let _ = app.emit("upstreams-changed", ());
            }
            GatewayEvent::ConfigRejected { file, key, reason } => {
                let _ = app.emit(
                    "config-rejected",
                    serde_json::json!({ "file": file, "key": key, "reason": reason }),
                );
            }
        }
    }
}

async fn grants_changed(app: &tauri::AppHandle) {
    let _ = app.emit("grants-changed", ());
    tray::rebuild(app.clone()).await;
}
