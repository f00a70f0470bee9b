//! Windows: the grants window ("main", from tauri.conf.json), which hides into the tray
//! when closed, one consent window per authorization request, labelled
//! `consent-<id>` so the capability for `consent-*` applies to it and nothing else, and
//! one approval window per waiting call to an "ask each time" tool (`approve-<id>`).

use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder, WindowEvent};

use crate::consent::{CONSENT_TTL, ConsentAnswer};
use crate::gateway::Gateway;
use crate::gateway::tools::ApprovalAnswer;

pub const CONSENT_PREFIX: &str = "consent-";
/// Tool approval windows ("Ask each time"), one per waiting call.
pub const APPROVAL_PREFIX: &str = "approve-";
pub const MAIN: &str = "main";

pub fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Started minimised: the app lives in the tray until the person opens it.
pub fn hide_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let _ = w.hide();
    }
}

/// Closing the grants window hides it; the app lives on in the tray.
pub fn keep_main_in_tray(app: &AppHandle) {
    if let Some(w) = app.get_webview_window(MAIN) {
        let w2 = w.clone();
        w.on_window_event(move |e| {
            if let WindowEvent::CloseRequested { api, .. } = e {
                api.prevent_close();
                let _ = w2.hide();
            }
        });
    }
}

/// Opens the window that asks about consent question `id`. Closing it without an
/// answer denies; after [`CONSENT_TTL`] the question has expired and the window closes.
pub fn open_consent(app: &AppHandle, id: &str) -> tauri::Result<()> {
    let label = format!("{CONSENT_PREFIX}{id}");
    let window = WebviewWindowBuilder::new(app, &label, WebviewUrl::App("consent.html".into()))
        .title("Allow access? — mcp-broker")
        // Tall enough for the server's tools, each with its choice.
        .inner_size(560.0, 600.0)
        .resizable(false)
        .center()
        .always_on_top(true)
        .focused(true)
        .build()?;
    let (app2, id2) = (app.clone(), id.to_owned());
    window.on_window_event(move |e| {
        if let WindowEvent::Destroyed = e
            && let Some(g) = app2.try_state::<Gateway>()
        {
            // Already answered is fine: the decision then reports Gone, which is ignored.
            let _ = g.decide_native(&id2, ConsentAnswer::deny());
        }
    });
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(CONSENT_TTL).await;
        if let Some(w) = app.get_webview_window(&label) {
            let _ = w.close();
        }
    });
    Ok(())
}

/// Opens the window that asks whether a waiting tool call may go through. Closing it
/// without an answer denies the call; so does `timeout` (`[broker] ask_timeout`), when it
/// closes.
pub fn open_tool_approval(
    app: &AppHandle,
    id: &str,
    timeout: std::time::Duration,
) -> tauri::Result<()> {
    let label = format!("{APPROVAL_PREFIX}{id}");
    let window = WebviewWindowBuilder::new(app, &label, WebviewUrl::App("approve.html".into()))
        .title("Allow this tool call? — mcp-broker")
        .inner_size(560.0, 520.0)
        .center()
        .always_on_top(true)
        .focused(true)
        .build()?;
    let (app2, id2) = (app.clone(), id.to_owned());
    window.on_window_event(move |e| {
        if let WindowEvent::Destroyed = e
            && let Some(g) = app2.try_state::<Gateway>()
        {
            let _ = g.answer_tool_approval(&id2, ApprovalAnswer::Deny);
        }
    });
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(timeout).await;
        if let Some(w) = app.get_webview_window(&label) {
            let _ = w.close();
        }
    });
    Ok(())
}
