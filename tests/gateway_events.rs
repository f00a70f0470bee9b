//! The core announces each fact once: a replayed code or refresh token revokes the grant
//! and is announced as one `GrantRevoked { reason: Replay }`; a revocation by another
//! process (`mcp-broker grants revoke`) is noticed by the running broker and announced
//! once as `External`; a client's own RFC 7009 revocation once as `Client`. The broker
//! runs in-process (the same `app::start` the binary uses) so the events can be watched,
//! and is driven over real HTTP.

mod support;

use std::time::Duration;

use mcp_broker::consent::ConsentMode;
use mcp_broker::events::{GatewayEvent, RevokeReason};
use support::{authorize, cli_in, http, post_token};
use tokio::sync::broadcast;

struct InProcess {
    base: String,
    data: std::path::PathBuf,
    events: broadcast::Receiver<GatewayEvent>,
    gateway: mcp_broker::Gateway,
    _dir: tempfile::TempDir,
}

async fn start() -> InProcess {
    start_with("").await
}

/// [`start`] with `broker` as the `[broker]` table's settings.
async fn start_with(broker: &str) -> InProcess {
    start_serving(broker, "url = \"https://notes.example.com/mcp\"").await
}

/// [`start`] with `broker` as the `[broker]` table's settings and `notes` as the
/// `[servers.notes]` table.
async fn start_serving(broker: &str, notes: &str) -> InProcess {
    let dir = tempfile::tempdir().unwrap();
    let config = mcp_broker::config::parse(
        &dir.path().join("c.toml"),
        &format!("[broker]\n{broker}\n[servers.notes]\n{notes}\n"),
    )
    .unwrap();
    let data = dir.path().join("data");
    let running = mcp_broker::app::start(config, data.clone(), 0, ConsentMode::Page)
        .await
        .unwrap();
    let base = running.gateway().issuer().to_string();
    let events = running.gateway().subscribe();
    let gateway = running.gateway().clone();
    tokio::spawn(running.until(std::future::pending()));
    InProcess {
        base,
        data,
        events,
        gateway,
        _dir: dir,
    }
}

/// `mcp-broker grants revoke ID`: a revocation by another process.
fn revoke_elsewhere(data: &std::path::Path, id: i64) {
    let out = cli_in(data, &["grants", "revoke", &id.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every revocation announced within `wait` (long enough for several maintenance ticks,
/// so a second announcement of the same fact would show).
async fn revocations(
    rx: &mut broadcast::Receiver<GatewayEvent>,
    wait: Duration,
) -> Vec<RevokeReason> {
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + wait;
    while let Ok(Ok(ev)) = tokio::time::timeout_at(end, rx.recv()).await {
        if let GatewayEvent::GrantRevoked { reason, .. } = ev {
            out.push(reason);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_refresh_token_revokes_and_is_announced_once() {
    let mut b = start().await;
    let c = http();
    let (reg, tokens) = authorize(&c, &b.base, "notes").await;
    let refresh = |t: String| {
        let (c, base, id) = (c.clone(), b.base.clone(), reg.client_id.clone());
        async move {
            post_token(
                &c,
                &base,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", t.as_str()),
                    ("client_id", id.as_str()),
                ],
            )
            .await
        }
    };
    assert_eq!(refresh(tokens.refresh.clone()).await.status(), 200);
    let replay = refresh(tokens.refresh.clone()).await;
    assert_eq!(replay.status(), 400);
    let body: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // A second replay finds the grant gone: refused, not announced again.
    assert_eq!(refresh(tokens.refresh).await.status(), 400);
    assert_eq!(
        revocations(&mut b.events, Duration::from_millis(1500)).await,
        vec![RevokeReason::Replay]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_code_revokes_and_is_announced_once() {
    let mut b = start().await;
    let c = http();
    let reg = support::register(&c, &b.base, "none").await;
    let (verifier, challenge) = support::pkce();
    let resource = format!("{}/mcp/notes", b.base);
    let consent = support::open_consent(&c, &b.base, &reg, &challenge, Some(&resource), "s").await;
    let loc = support::decide(&c, &b.base, &consent, "approve").await;
    let code = support::query_param(&loc, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", reg.redirect_uri.as_str()),
        ("client_id", reg.client_id.as_str()),
        ("code_verifier", verifier.as_str()),
        ("resource", resource.as_str()),
    ];
    assert_eq!(post_token(&c, &b.base, &form).await.status(), 200);
    assert_eq!(post_token(&c, &b.base, &form).await.status(), 400);
    assert_eq!(
        revocations(&mut b.events, Duration::from_millis(1500)).await,
        vec![RevokeReason::Replay]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_by_the_cli_and_by_the_client_are_each_announced_once() {
    let mut b = start().await;
    let c = http();
    let (_, _) = authorize(&c, &b.base, "notes").await;
    let (reg2, tokens2) = authorize(&c, &b.base, "notes").await;
    // Let the maintenance tick learn the grants first.
    tokio::time::sleep(Duration::from_millis(600)).await;
    revoke_elsewhere(&b.data, 1);
    let res = c
        .post(format!("{}/revoke", b.base))
        .form(&[
            ("token", tokens2.refresh.as_str()),
            ("client_id", reg2.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut seen = revocations(&mut b.events, Duration::from_millis(2000)).await;
    seen.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(seen, vec![RevokeReason::Client, RevokeReason::External]);
}

/// A broker whose `notes` upstream is a stdio child per session (tests/fixtures), so
/// that ending a grant's sessions takes a moment, as it does in the app.
async fn start_with_children() -> InProcess {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/env_upstream.py"
    );
    start_serving(
        "registration_rate = 0",
        &format!("command = \"python3\"\nargs = [{fixture:?}]"),
    )
    .await
}

/// A new grant and a session of it on `notes`: its token and session id.
async fn grant_with_session(c: &reqwest::Client, base: &str) -> (String, String) {
    let (_, t) = authorize(c, base, "notes").await;
    let res = c
        .post(format!("{base}/mcp/notes"))
        .bearer_auth(&t.access)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
        .unwrap();
    let sid = res.headers().get("mcp-session-id").cloned();
    let body = res.text().await.unwrap();
    let sid = sid.unwrap_or_else(|| panic!("no session: {body}"));
    (t.access, sid.to_str().unwrap().to_owned())
}

/// A revocation made in this process moves the shared revocation counter too, and the
/// maintenance tick re-reads the grants when it moves; it must not take a grant revoked
/// here for one revoked elsewhere and announce it a second time (the tray once showed
/// "Access revoked" twice for one click).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_made_here_are_never_announced_again_as_external() {
    const GRANTS: i64 = 16;
    let mut b = start_with_children().await;
    let c = http();
    for _ in 0..GRANTS {
        grant_with_session(&c, &b.base).await;
    }
    // Let the maintenance tick learn the grants first.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for id in 1..=GRANTS {
        b.gateway
            .revoke_grant(mcp_broker::oauth::GrantId(id), RevokeReason::Window)
            .await
            .unwrap();
        // Spread over several ticks, so that some land while one is reading the grants.
        tokio::time::sleep(Duration::from_millis(17)).await;
    }
    let seen = revocations(&mut b.events, Duration::from_millis(1500)).await;
    assert_eq!(
        seen.iter()
            .filter(|r| **r == RevokeReason::External)
            .count(),
        0,
        "{seen:?}"
    );
    assert_eq!(seen.len(), GRANTS as usize, "{seen:?}");
}

/// The maintenance tick reads the active grants when the revocation counter moves, and
/// ends the sessions of grants that are gone. A grant approved just after that read has a
/// session too, and is missing from what was read: its session must stay open (a client
/// connected while `mcp-broker grants revoke` ran once lost its session at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_opened_while_another_process_revokes_stay_open() {
    const THROWAWAY: i64 = 8;
    const FRESH: usize = 16;
    let mut b = start_with_children().await;
    let c = http();
    for _ in 0..THROWAWAY {
        authorize(&c, &b.base, "notes").await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Another process revokes the throwaway grants one by one, moving the counter, so
    // that ticks keep re-reading the grants while new ones are approved.
    let data = b.data.clone();
    let cli = tokio::task::spawn_blocking(move || {
        for id in 1..=THROWAWAY {
            revoke_elsewhere(&data, id);
            std::thread::sleep(Duration::from_millis(60));
        }
    });
    let mut sessions = Vec::new();
    for _ in 0..FRESH {
        sessions.push(grant_with_session(&c, &b.base).await);
    }
    cli.await.unwrap();
    // Several ticks later, every fresh session still answers.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for (token, sid) in &sessions {
        let res = c
            .post(format!("{}/mcp/notes", b.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", "2025-11-25")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        // The fixture answers every call (a ping with "no such method"); an ended
        // session is a 404 from the broker.
        assert_eq!(status, 200, "session {sid:?} ended: {body}");
    }
    // Only the throwaway grants were announced, each once, as revoked elsewhere.
    let seen = revocations(&mut b.events, Duration::from_millis(500)).await;
    assert!(
        seen.iter().all(|r| *r == RevokeReason::External),
        "{seen:?}"
    );
}
