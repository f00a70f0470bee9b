//! Several accounts per upstream (issue 15): consent asks which account a grant uses,
//! the grant records it, and its sessions get that account's credentials only, in a
//! stdio child's environment (a Python upstream that reports what it got) and in a
//! remote upstream's request headers (an HTTP upstream that records them). The broker
//! runs in-process (the same `app::start` the binary uses) so a grant can be switched to
//! another account through the Gateway, and is driven over real HTTP.

mod support;

use std::sync::{Arc, Mutex};

use mcp_broker::consent::ConsentMode;
use mcp_broker::gateway::Gateway;
use mcp_broker::oauth::GrantId;
use serde_json::{Value, json};
use support::session::Session;
use support::{
    Consent, Registered, exchange_code, http, open_consent, pkce, query_param, register,
};

const WORK: &str = "work-token-7f3a";
const PERSONAL: &str = "personal-token-19c2";

struct InProcess {
    base: String,
    gateway: Gateway,
    _dir: tempfile::TempDir,
}

async fn start(remote_url: &str) -> InProcess {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/env_upstream.py"
    );
    let text = format!(
        r#"
[servers.gh]
command = "python3"
args = ["{fixture}"]
env = {{ SHARED = "both", GH_TOKEN = "none" }}
[servers.gh.accounts.work]
env = {{ GH_TOKEN = "{WORK}" }}
[servers.gh.accounts.personal]
env = {{ GH_TOKEN = "{PERSONAL}", ONLY_PERSONAL = "p" }}

[servers.saas]
url = "{remote_url}"
headers = {{ X-Shared = "both" }}
[servers.saas.accounts.acme]
headers = {{ Authorization = "Bearer {WORK}" }}
[servers.saas.accounts.globex]
headers = {{ Authorization = "Bearer {PERSONAL}" }}

[servers.notion]
url = "{remote_url}"
[servers.notion.accounts.acme]
[servers.notion.accounts.globex]
headers = {{ Authorization = "Bearer {PERSONAL}" }}

[servers.plain]
command = "python3"
args = ["{fixture}"]
env = {{ GH_TOKEN = "plain" }}
"#
    );
    let config = mcp_broker::config::parse(&dir.path().join("c.toml"), &text).unwrap();
    let running = mcp_broker::app::start(config, dir.path().join("data"), 0, ConsentMode::Page)
        .await
        .unwrap();
    let gateway = running.gateway().clone();
    let base = gateway.issuer().to_string();
    tokio::spawn(running.until(std::future::pending()));
    InProcess {
        base,
        gateway,
        _dir: dir,
    }
}

/// Posts the consent form with an account (`None`: none chosen); returns the status and
/// the redirect location or the page.
async fn decide_with(
    c: &reqwest::Client,
    base: &str,
    consent: &Consent,
    account: Option<&str>,
) -> (u16, String) {
    let mut form = vec![
        ("consent_id", consent.consent_id.as_str()),
        ("csrf_token", consent.csrf.as_str()),
        ("decision", "approve"),
    ];
    if let Some(a) = account {
        form.push(("account", a));
    }
    let res = c
        .post(format!("{base}/authorize/consent"))
        .header("origin", base)
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    match res.headers().get("location") {
        Some(l) => (status, l.to_str().unwrap().to_owned()),
        None => (status, res.text().await.unwrap()),
    }
}

async fn token(
    c: &reqwest::Client,
    base: &str,
    reg: &Registered,
    loc: &str,
    verifier: &str,
) -> String {
    let code = query_param(loc, "code").expect("code in redirect");
    let res = exchange_code(c, base, reg, &code, verifier).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// A client signs in to `upstream` choosing `account` on the consent page (after trying
/// to approve without a choice, which is refused and leaves the form answerable).
async fn sign_in(
    c: &reqwest::Client,
    base: &str,
    reg: &Registered,
    upstream: &str,
    account: &str,
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let resource = format!("{base}/mcp/{upstream}");
    let consent = open_consent(c, base, reg, &challenge, Some(&resource), "st").await;
    let (status, page) = decide_with(c, base, &consent, None).await;
    assert_eq!(status, 400, "approve without a choice is refused: {page}");
    assert!(page.contains("Choose an account"), "{page}");
    assert!(
        page.contains(&format!(
            "choose which account of {upstream} this access uses"
        )),
        "{page}"
    );
    let (status, loc) = decide_with(c, base, &consent, Some("nope")).await;
    assert_eq!(
        status, 400,
        "an account the upstream lacks is refused: {loc}"
    );
    assert!(loc.contains("has no account named"), "{loc}");
    let (status, loc) = decide_with(c, base, &consent, Some(account)).await;
    assert_eq!(status, 302, "{loc}");
    (token(c, base, reg, &loc, &verifier).await, consent.html)
}

/// The child's whole environment, as the fake upstream reports it.
async fn environ(base: &str, upstream: &str, token: &str) -> Value {
    let mut m = Session::open(&format!("{base}/mcp/{upstream}"), token).await;
    let text = m.tool_text("environ", json!({})).await;
    serde_json::from_str::<Value>(&text).unwrap()["environ"].clone()
}

/// One 2026-07-28 `tools/call` (no session: the broker keeps a warm one per grant);
/// returns the first text content.
async fn modern_tool_text(
    c: &reqwest::Client,
    base: &str,
    upstream: &str,
    token: &str,
    tool: &str,
    args: Value,
) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": args,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let res = c
        .post(format!("{base}/mcp/{upstream}"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or(Value::Null)
    });
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {text}"))
        .to_owned()
}

/// A remote MCP upstream that records the `Authorization` header of every request.
async fn header_recorder() -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::http::HeaderMap;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen2.clone();
            async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                seen.lock().unwrap().push(format!("{}|{}", h("authorization"), h("x-shared")));
                let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if msg.get("id").is_none() {
                    return (axum::http::StatusCode::ACCEPTED, String::new());
                }
                let result = match msg["method"].as_str() {
                    Some("initialize") => json!({"protocolVersion": "2025-06-18",
                        "capabilities": {"tools": {}}, "serverInfo": {"name": "rec", "version": "1"}}),
                    _ => json!({"content": [{"type": "text", "text": "ok"}]}),
                };
                (
                    axum::http::StatusCode::OK,
                    json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}).to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/mcp"), seen)
}

async fn grant_of(g: &Gateway, client_id: &str, upstream: &str) -> (GrantId, Option<String>) {
    let v = g.list_grants().await.unwrap();
    let gr = v
        .iter()
        .map(|v| &v.grant)
        .find(|gr| gr.client_id == client_id && gr.upstream == upstream)
        .expect("grant");
    (gr.id, gr.account.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_grants_on_two_accounts_get_only_their_own_credentials() {
    let (remote, seen) = header_recorder().await;
    let b = start(&remote).await;
    let c = http();
    let alice = register(&c, &b.base, "none").await;
    let bob = register(&c, &b.base, "none").await;

    // Stdio: the consent page asks (radio buttons, none checked); each client chooses.
    let (alice_gh, page) = sign_in(&c, &b.base, &alice, "gh", "work").await;
    assert!(
        page.contains("type=\"radio\" name=\"account\" value=\"personal\""),
        "{page}"
    );
    assert!(page.contains("value=\"work\""), "{page}");
    assert!(!page.contains("checked"), "nothing pre-selected: {page}");
    let (bob_gh, _) = sign_in(&c, &b.base, &bob, "gh", "personal").await;

    let a_env = environ(&b.base, "gh", &alice_gh).await;
    let b_env = environ(&b.base, "gh", &bob_gh).await;
    assert_eq!(a_env["GH_TOKEN"], WORK, "alice's child has the work token");
    assert_eq!(
        b_env["GH_TOKEN"], PERSONAL,
        "bob's child has the personal token"
    );
    assert_eq!(a_env["SHARED"], "both");
    assert_eq!(b_env["SHARED"], "both");
    assert_eq!(b_env["ONLY_PERSONAL"], "p");
    assert!(a_env.get("ONLY_PERSONAL").is_none());
    let a_all = a_env.to_string();
    let b_all = b_env.to_string();
    assert!(
        !a_all.contains(PERSONAL),
        "work never sees the personal credential"
    );
    assert!(
        !b_all.contains(WORK),
        "personal never sees the work credential"
    );
    // The 2026-07-28 era: the broker's warm session per grant has the grant's account.
    assert_eq!(
        modern_tool_text(
            &c,
            &b.base,
            "gh",
            &alice_gh,
            "env",
            json!({"name": "GH_TOKEN"})
        )
        .await,
        WORK
    );
    assert_eq!(
        modern_tool_text(
            &c,
            &b.base,
            "gh",
            &bob_gh,
            "env",
            json!({"name": "GH_TOKEN"})
        )
        .await,
        PERSONAL
    );

    // Remote: each grant's requests carry its account's header, never the other's.
    let (alice_saas, _) = sign_in(&c, &b.base, &alice, "saas", "acme").await;
    let (bob_saas, _) = sign_in(&c, &b.base, &bob, "saas", "globex").await;
    // The consent lists the tools before an account is chosen: with the server's own
    // headers only, neither account's.
    let consent_lists = seen.lock().unwrap().clone();
    assert!(!consent_lists.is_empty());
    for h in &consent_lists {
        assert_eq!(h, "|both", "no account's credential before the choice");
    }
    let mut ma = Session::open(&format!("{}/mcp/saas", b.base), &alice_saas).await;
    let n_alice = seen.lock().unwrap().len();
    let mut mb = Session::open(&format!("{}/mcp/saas", b.base), &bob_saas).await;
    ma.tool_text("x", json!({})).await;
    mb.tool_text("x", json!({})).await;
    let all = seen.lock().unwrap()[consent_lists.len()..].to_vec();
    let n_alice = n_alice - consent_lists.len();
    assert!(n_alice >= 1);
    for h in &all[..n_alice] {
        assert_eq!(h, &format!("Bearer {WORK}|both"));
    }
    let alice_after: Vec<_> = all.iter().filter(|h| h.contains(WORK)).collect();
    let bob_after: Vec<_> = all.iter().filter(|h| h.contains(PERSONAL)).collect();
    assert_eq!(
        alice_after.len() + bob_after.len(),
        all.len(),
        "every request had one account's header: {all:?}"
    );
    assert!(alice_after.len() >= 3 && bob_after.len() >= 3, "{all:?}");

    // The grants record their accounts; the list shows them.
    let (alice_grant, acct) = grant_of(&b.gateway, &alice.client_id, "gh").await;
    assert_eq!(acct.as_deref(), Some("work"));
    assert_eq!(
        grant_of(&b.gateway, &bob.client_id, "gh")
            .await
            .1
            .as_deref(),
        Some("personal")
    );
    assert_eq!(
        grant_of(&b.gateway, &bob.client_id, "saas")
            .await
            .1
            .as_deref(),
        Some("globex")
    );

    // The same client asking again: the last choice is named, not pre-selected.
    let (_, challenge) = pkce();
    let again = open_consent(
        &c,
        &b.base,
        &alice,
        &challenge,
        Some(&format!("{}/mcp/gh", b.base)),
        "s2",
    )
    .await;
    assert!(
        again
            .html
            .contains("work <small>(chosen last time)</small>"),
        "{}",
        again.html
    );
    assert!(!again.html.contains("checked"));

    // Switching: the open session ends, the next one gets the new account's credentials
    // with the same token.
    let mut open = Session::open(&format!("{}/mcp/gh", b.base), &alice_gh).await;
    assert_eq!(
        open.tool_text("env", json!({"name": "GH_TOKEN"})).await,
        WORK
    );
    let e = b
        .gateway
        .switch_account(alice_grant, "nope")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unknown_account", "{e}");
    b.gateway
        .switch_account(alice_grant, "personal")
        .await
        .unwrap();
    assert_eq!(
        grant_of(&b.gateway, &alice.client_id, "gh")
            .await
            .1
            .as_deref(),
        Some("personal")
    );
    let r = open
        .request(
            "tools/call",
            json!({"name": "env", "arguments": {"name": "GH_TOKEN"}}),
        )
        .await;
    assert!(r.get("result").is_none(), "the old session is gone: {r}");
    let a_env = environ(&b.base, "gh", &alice_gh).await;
    assert_eq!(
        a_env["GH_TOKEN"], PERSONAL,
        "after the switch alice's child has the personal token"
    );

    // The activity log names the account each call used, before and after the switch.
    b.gateway.flush_activity().await;
    let calls = b
        .gateway
        .grant_activity(alice_grant, &Default::default())
        .await
        .unwrap()
        .calls;
    let accounts: Vec<_> = calls
        .iter()
        .filter(|r| r.method.as_deref() == Some("tools/call"))
        .map(|r| r.account.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(accounts.first(), Some(&"personal"), "{accounts:?}");
    assert_eq!(accounts.last(), Some(&"work"), "{accounts:?}");
    assert!(accounts.iter().all(|a| *a == "work" || *a == "personal"));

    // Approving again with another account keeps the grant and ends its open sessions,
    // which hold the old account's credentials.
    let mut bob_open = Session::open(&format!("{}/mcp/gh", b.base), &bob_gh).await;
    assert_eq!(
        bob_open.tool_text("env", json!({"name": "GH_TOKEN"})).await,
        PERSONAL
    );
    let (bob_grant, _) = grant_of(&b.gateway, &bob.client_id, "gh").await;
    let (bob_gh2, _) = sign_in(&c, &b.base, &bob, "gh", "work").await;
    assert_eq!(
        grant_of(&b.gateway, &bob.client_id, "gh").await,
        (bob_grant, Some("work".to_owned())),
        "the same grant, now on work"
    );
    let r = bob_open
        .request(
            "tools/call",
            json!({"name": "env", "arguments": {"name": "GH_TOKEN"}}),
        )
        .await;
    assert!(
        r.get("result").is_none(),
        "the session on personal ended: {r}"
    );
    let env = environ(&b.base, "gh", &bob_gh2).await;
    assert_eq!(env["GH_TOKEN"], WORK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_without_accounts_asks_nothing_and_behaves_as_before() {
    let (remote, _) = header_recorder().await;
    let b = start(&remote).await;
    let c = http();
    let (reg, tokens) = support::authorize(&c, &b.base, "plain").await;
    let (verifier_unused, _) = pkce();
    let _ = verifier_unused;
    let (_, challenge) = pkce();
    let consent = open_consent(
        &c,
        &b.base,
        &reg,
        &challenge,
        Some(&format!("{}/mcp/plain", b.base)),
        "s",
    )
    .await;
    assert!(
        !consent.html.contains("name=\"account\""),
        "no account choice: {}",
        consent.html
    );
    let env = environ(&b.base, "plain", &tokens.access).await;
    assert_eq!(env["GH_TOKEN"], "plain");
    assert_eq!(grant_of(&b.gateway, &reg.client_id, "plain").await.1, None);
    let (grant, _) = grant_of(&b.gateway, &reg.client_id, "plain").await;
    let e = b.gateway.switch_account(grant, "work").await.unwrap_err();
    assert_eq!(e.code(), "unknown_account", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_account_that_signs_in_with_oauth_has_its_own_sign_in() {
    let (remote, _) = header_recorder().await;
    let b = start(&remote).await;
    let o = b.gateway.overview().await.unwrap();
    let notion = o.upstreams.iter().find(|u| u.name == "notion").unwrap();
    assert!(
        notion.sign_in.is_none(),
        "no sign-in of the upstream itself"
    );
    let ids: Vec<_> = notion
        .account_sign_ins
        .iter()
        .map(|a| (a.account.as_str(), a.sign_in_id.as_str()))
        .collect();
    assert_eq!(
        ids,
        [("acme", "notion:acme")],
        "globex sends its own header"
    );
    let saas = o.upstreams.iter().find(|u| u.name == "saas").unwrap();
    assert!(saas.sign_in.is_none() && saas.account_sign_ins.is_empty());
    let plain = o.upstreams.iter().find(|u| u.name == "plain").unwrap();
    assert!(plain.sign_in.is_none() && plain.account_sign_ins.is_empty());
    let e = b
        .gateway
        .start_upstream_sign_in("notion:nope")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "not_remote", "{e}");
}

#[test]
fn login_to_an_account_the_upstream_lacks_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[servers.notion]\nurl = \"https://mcp.notion.example/mcp\"\n[servers.notion.accounts.acme]\n[servers.notion.accounts.globex]\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::BIN)
        .args([
            "upstream",
            "login",
            "notion",
            "--account",
            "initech",
            "--no-browser",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("c.toml: servers.notion.accounts: no account named \"initech\" (its accounts: acme, globex)"),
        "{err}"
    );
}
