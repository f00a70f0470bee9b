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
    let id = id.to_owned();
    question_window(
        app,
        Question {
            label: format!("{CONSENT_PREFIX}{id}"),
            page: "consent.html",
            title: "Allow access? — mcp-broker",
            // Tall enough for the server's tools, each with its choice.
            size: (560.0, 600.0),
            resizable: false,
            lasts: CONSENT_TTL,
        },
        // Already answered is fine: the decision then reports Gone, which is ignored.
        move |g| {
            let _ = g.decide_native(&id, ConsentAnswer::deny());
        },
    )
}

/// Opens the window that asks whether a waiting tool call may go through. Closing it
/// without an answer denies the call; so does `timeout` (`[broker] ask_timeout`), when it
/// closes.
pub fn open_tool_approval(
    app: &AppHandle,
    id: &str,
    timeout: std::time::Duration,
) -> tauri::Result<()> {
    let id = id.to_owned();
    question_window(
        app,
        Question {
            label: format!("{APPROVAL_PREFIX}{id}"),
            page: "approve.html",
            title: "Allow this tool call? — mcp-broker",
            size: (560.0, 520.0),
            // Long arguments: the person may want more room to read them.
            resizable: true,
            lasts: timeout,
        },
        move |g| {
            let _ = g.answer_tool_approval(&id, ApprovalAnswer::Deny);
        },
    )
}

/// A window that asks a person one question.
struct Question {
    label: String,
    page: &'static str,
    title: &'static str,
    size: (f64, f64),
    resizable: bool,
    /// After this the window closes, which answers no.
    lasts: std::time::Duration,
}

/// Opens `q` on top and focused; closing it, or its time running out, calls `deny`.
fn question_window(
    app: &AppHandle,
    q: Question,
    deny: impl Fn(&Gateway) + Send + Sync + 'static,
) -> tauri::Result<()> {
    let window = WebviewWindowBuilder::new(app, &q.label, WebviewUrl::App(q.page.into()))
        .title(q.title)
        .inner_size(q.size.0, q.size.1)
        .resizable(q.resizable)
        .center()
        .always_on_top(true)
        .focused(true)
        .build()?;
    let app2 = app.clone();
    window.on_window_event(move |e| {
        if let WindowEvent::Destroyed = e
            && let Some(g) = app2.try_state::<Gateway>()
        {
            deny(&g);
        }
    });
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(q.lasts).await;
        if let Some(w) = app.get_webview_window(&q.label) {
            let _ = w.close();
        }
    });
    Ok(())
}
