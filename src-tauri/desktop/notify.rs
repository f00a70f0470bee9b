//! Desktop notifications (freedesktop Notifications over D-Bus on Linux, via
//! notify-rust) for the events a person should hear about even with the window closed.
//! A missing notification server is logged, never fatal.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::events::{GatewayEvent, RevokeReason};

/// An upstream that keeps failing (one failure per session) notifies once a minute.
const FAILURE_QUIET: Duration = Duration::from_secs(60);

/// Turns events into notifications; remembers when each upstream's failure was last
/// shown, so that a failing upstream does not notify once per session.
#[derive(Default)]
pub struct Notifier {
    last_failure: HashMap<String, Instant>,
    /// A restart to apply `[broker]` settings is asked for once.
    told_restart: bool,
}

impl Notifier {
    pub fn for_event(&mut self, ev: &GatewayEvent) {
        if let Some((summary, body)) = self.message(ev) {
            show(summary, body);
        }
    }

    fn message(&mut self, ev: &GatewayEvent) -> Option<(String, String)> {
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
                if self
                    .last_failure
                    .get(upstream)
                    .is_some_and(|t| t.elapsed() < FAILURE_QUIET)
                {
                    return None;
                }
                self.last_failure.insert(upstream.clone(), Instant::now());
                (format!("{upstream} failed"), reason.clone())
            }
            GatewayEvent::UpstreamSignIn {
                upstream,
                signed_in,
            } => {
                // `NAME:ACCOUNT` for one account's sign-in (config::sign_in_id).
                let account = crate::config::split_sign_in_id(upstream);
                if let (name, Some(account)) = account {
                    let who = format!("{name} (account {account})");
                    return Some(if *signed_in {
                        (format!("Signed in to {who}"), "The sign-in is kept in the OS keychain; grants on this account reach it through mcp-broker.".to_owned())
                    } else {
                        (
                            format!("Signed out of {who}"),
                            format!(
                                "Grants on the {account} account of {name} fail until it signs in again; other accounts are not affected."
                            ),
                        )
                    });
                }
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
            GatewayEvent::ConfigRejected { file, key, reason } => {
                let at = if key.is_empty() {
                    String::new()
                } else {
                    format!("{key}: ")
                };
                (
                    "Configuration not applied".to_owned(),
                    format!("{file}: {at}{reason}. The last good configuration stays in force."),
                )
            }
            GatewayEvent::UpstreamsChanged {
                restart_needed: true,
                ..
            } if !self.told_restart => {
                self.told_restart = true;
                (
                    "Restart mcp-broker to apply its settings".to_owned(),
                    "The [broker] settings in the configuration changed; the servers were \
                     applied, the settings take effect after a restart."
                        .to_owned(),
                )
            }
            GatewayEvent::ToolsSuspended {
                upstream,
                changed,
                new,
                ..
            } => {
                let mut parts = Vec::new();
                if !changed.is_empty() {
                    parts.push(format!("changed {}", changed.join(", ")));
                }
                if !new.is_empty() {
                    parts.push(format!("added {}", new.join(", ")));
                }
                (
                    format!("{upstream} changed its tools"),
                    format!(
                        "{upstream} {}. They are hidden until you review them in the grants window.",
                        parts.join(" and ")
                    ),
                )
            }
            _ => return None,
        };
        Some((summary, body))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_one_account_out_names_it_and_spares_the_others() {
        let mut n = Notifier::default();
        let out = |upstream: &str| GatewayEvent::UpstreamSignIn {
            upstream: upstream.into(),
            signed_in: false,
        };
        let (summary, body) = n.message(&out("notion:acme")).unwrap();
        assert_eq!(summary, "Signed out of notion (account acme)");
        assert!(
            body.contains("Grants on the acme account of notion fail")
                && body.contains("other accounts are not affected"),
            "{body}"
        );
        let (summary, _) = n.message(&out("notion")).unwrap();
        assert_eq!(summary, "Signed out of notion", "no account, no mention");
    }
}
