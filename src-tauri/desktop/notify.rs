//! Desktop notifications (freedesktop Notifications over D-Bus on Linux, via
//! notify-rust) for the events a person should hear about even with the window closed.
//! A missing notification server is logged, never fatal.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::events::{GatewayEvent, RevokeReason};

/// An upstream that keeps failing (one failure per session) notifies once a minute.
const FAILURE_QUIET: Duration = Duration::from_secs(60);

static LAST_FAILURE: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

pub fn for_event(ev: &GatewayEvent) {
    let (summary, body) = match ev {
        GatewayEvent::GrantApproved {
            client_name,
            upstream,
            ..
        } => (
            "Access granted".to_owned(),
            format!("{client_name} can now use {upstream}."),
        ),
        GatewayEvent::GrantRevoked {
            reason: RevokeReason::Replay,
            client_name,
            upstream,
            ..
        } => (
            "Possible token theft".to_owned(),
            format!(
                "A used code or refresh token of {client_name} for {upstream} came back. \
                 The grant was revoked; approve the client again if this was you."
            ),
        ),
        GatewayEvent::GrantRevoked {
            client_name,
            upstream,
            ..
        } => (
            "Access revoked".to_owned(),
            format!("{client_name} can no longer use {upstream}."),
        ),
        GatewayEvent::UpstreamFailed { upstream, reason } => {
            let mut last = LAST_FAILURE.lock().unwrap_or_else(|e| e.into_inner());
            let last = last.get_or_insert_with(HashMap::new);
            if last
                .get(upstream)
                .is_some_and(|t| t.elapsed() < FAILURE_QUIET)
            {
                return;
            }
            last.insert(upstream.clone(), Instant::now());
            (format!("{upstream} failed"), reason.clone())
        }
        GatewayEvent::UpstreamSignIn {
            upstream,
            signed_in,
        } => {
            if *signed_in {
                (
                    format!("Signed in to {upstream}"),
                    "The sign-in is kept in the OS keychain; clients reach it through mcp-broker."
                        .to_owned(),
                )
            } else {
                (
                    format!("Signed out of {upstream}"),
                    "Its tokens were revoked and deleted from the OS keychain.".to_owned(),
                )
            }
        }
        _ => return,
    };
    show(summary, body);
}

fn show(summary: String, body: String) {
    // `show` blocks on D-Bus; keep it off the event loop.
    tauri::async_runtime::spawn_blocking(move || {
        let r = notify_rust::Notification::new()
            .appname("mcp-broker")
            .summary(&summary)
            .body(&body)
            .timeout(notify_rust::Timeout::Milliseconds(6000))
            .show();
        if let Err(e) = r {
            tracing::warn!("notification not shown ({summary}): {e}");
        }
    });
}
