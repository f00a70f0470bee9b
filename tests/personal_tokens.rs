//! Tokens people control, end to end against the real binary over real HTTP: personal
//! access tokens made by the CLI next to a running broker, RFC 7662 introspection,
//! revoking all grants or one client's, and deleting or purging client registrations.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

/// Two upstreams that are never started: these tests only need the resources.
const CONFIG: &str = r#"
[servers.alpha]
command = "does-not-exist-alpha"
[servers.beta]
command = "does-not-exist-beta"
"#;

fn config_path(b: &Broker) -> String {
    b.dir.path().join("config.toml").display().to_string()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `tokens create` against the broker's config; returns the printed token.
fn create_token(b: &Broker, extra: &[&str]) -> String {
    let cfg = config_path(b);
    let mut args = vec!["tokens", "create", "--config", &cfg];
    args.extend_from_slice(extra);
    let out = b.cli(&args);
    assert!(out.status.success(), "tokens create: {}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    assert!(token.starts_with("mcpb_pat_"), "{token}");
    token
}

fn grants_json(b: &Broker) -> Vec<Value> {
    let out = b.cli(&["grants", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn registrations_json(b: &Broker) -> Vec<Value> {
    let out = b.cli(&["registrations", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The status of a tools/list on upstream with this token: 400 (no session) means it
/// was accepted, 401 refused.
async fn on(b: &Broker, upstream: &str, token: &str) -> u16 {
    mcp_status(&http(), &b.mcp_url(upstream), Some(token))
        .await
        .0
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_personal_token_works_at_once_on_its_upstream_only_until_revoked() {
    let b = Broker::start(CONFIG);
    let cfg = config_path(&b);
    let out = b.cli(&[
        "tokens",
        "create",
        "--config",
        &cfg,
        "--upstream",
        "alpha",
        "--label",
        "ci script",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();
    assert!(token.starts_with("mcpb_pat_"));
    assert_eq!(stdout(&out).lines().count(), 1, "stdout is the token alone");
    assert!(stderr(&out).contains("shown only this once"));
    assert!(
        stderr(&out).contains(&b.mcp_url("alpha")),
        "bound to the running broker's port: {}",
        stderr(&out)
    );

    // Made by another process, accepted by the running broker on the first request.
    assert_eq!(on(&b, "alpha", &token).await, 400);
    let (status, www) = mcp_status(&http(), &b.mcp_url("beta"), Some(&token)).await;
    assert_eq!(status, 401, "another upstream is another audience");
    assert!(www.contains("invalid_token"));

    let grants = grants_json(&b);
    assert_eq!(grants.len(), 1);
    let g = &grants[0];
    for field in [
        "id",
        "client_id",
        "client_name",
        "upstream",
        "resource",
        "scope",
        "created_at",
        "last_used_at",
    ] {
        assert!(g.get(field).is_some(), "grants list keeps {field}");
    }
    assert_eq!(g["kind"], "personal_token");
    assert_eq!(g["label"], "ci script");
    assert_eq!(g["client_name"], "ci script");
    assert_eq!(g["upstream"], "alpha");
    assert_eq!(g["resource"], b.mcp_url("alpha"));
    assert_eq!(g["scope"], "mcp");
    // No --tools: every tool (a_tokens_tools_are_its_policy has a list).
    assert_eq!(g["tools"], Value::Null);
    let expires = g["expires_at"].as_i64().unwrap();
    assert!((expires - now() - 30 * 86400).abs() < 60, "default 30 days");
    let text = stdout(&b.cli(&["tokens", "list"]));
    assert!(text.contains("\tci script\talpha\t"), "{text}");
    assert!(text.trim_end().ends_with("\tall"), "{text}");
    assert!(!text.contains(&token), "never the token itself");
    let text = stdout(&b.cli(&["grants", "list"]));
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("\tKIND\tEXPIRES\tACCOUNT"),
        "{text}"
    );
    assert!(text.contains("\tpersonal token\t"), "{text}");

    // Use is recorded like any grant's (written in the background).
    let mut used = Value::Null;
    for _ in 0..40 {
        used = grants_json(&b)[0]["last_used_at"].clone();
        if !used.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(used.as_i64().is_some(), "last_used_at recorded");
    let listed: Vec<Value> =
        serde_json::from_slice(&b.cli(&["tokens", "list", "--json"]).stdout).unwrap();
    assert_eq!(
        listed,
        grants_json(&b),
        "tokens list shows the personal ones, as grants"
    );

    // Only a hash is stored.
    for f in files_under(&b.data_dir()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "{} holds the token",
            f.display()
        );
    }

    let id = g["id"].to_string();
    let out = b.cli(&["grants", "revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ci script"), "{}", stdout(&out));
    assert_eq!(
        on(&b, "alpha", &token).await,
        401,
        "refused from the next request on"
    );
    assert!(grants_json(&b).is_empty());
    assert!(stdout(&b.cli(&["tokens", "list"])).starts_with("no personal access tokens"));
}

#[tokio::test]
async fn personal_token_expiry_and_bad_input() {
    let b = Broker::start(CONFIG);
    let short = create_token(
        &b,
        &["--upstream", "alpha", "--label", "short", "--expires", "3s"],
    );
    let never = create_token(
        &b,
        &[
            "--upstream",
            "beta",
            "--label",
            "forever",
            "--expires",
            "never",
        ],
    );
    assert_eq!(on(&b, "alpha", &short).await, 400);
    let grants = grants_json(&b);
    let forever = grants.iter().find(|g| g["label"] == "forever").unwrap();
    assert_eq!(forever["expires_at"], Value::Null);
    assert_eq!(forever["tools"], Value::Null);
    let text = stdout(&b.cli(&["grants", "list"]));
    assert!(
        text.lines()
            .any(|l| l.contains("forever") && l.ends_with("\tpersonal token\tnever\t-")),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(4200)).await;
    assert_eq!(on(&b, "alpha", &short).await, 401, "expired");
    assert_eq!(on(&b, "beta", &never).await, 400);

    let cfg = config_path(&b);
    for (args, why) in [
        (
            vec!["--upstream", "nope", "--label", "x"],
            "no upstream named nope",
        ),
        (
            vec!["--upstream", "alpha", "--label", "  "],
            "label must not be empty",
        ),
        (
            vec!["--upstream", "alpha", "--label", "x", "--expires", "soon"],
            "cannot read the expiry",
        ),
        (
            vec!["--upstream", "alpha", "--label", "x", "--tools", "rm -rf"],
            "is not a tool name",
        ),
    ] {
        let mut full = vec!["tokens", "create", "--config", &cfg];
        full.extend(args);
        let out = b.cli(&full);
        assert_eq!(out.status.code(), Some(2), "{full:?}");
        assert!(stderr(&out).contains(why), "{full:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    assert_eq!(grants_json(&b).len(), 2, "nothing was made by bad input");
}

async fn introspect(c: &reqwest::Client, b: &Broker, auth: Auth<'_>, token: &str) -> (u16, Value) {
    let req = c.post(format!("{}/introspect", b.base));
    let mut form = vec![("token", token.to_owned())];
    let req = match auth {
        Auth::Basic(id, secret) => req.basic_auth(id, Some(secret)),
        Auth::Post(id, secret) => {
            form.push(("client_id", id.to_owned()));
            form.push(("client_secret", secret.to_owned()));
            req
        }
        Auth::IdOnly(id) => {
            form.push(("client_id", id.to_owned()));
            req
        }
        Auth::Bearer(t) => req.bearer_auth(t),
        Auth::Nothing => req,
    };
    let res = req.form(&form).send().await.unwrap();
    let status = res.status().as_u16();
    assert_eq!(res.headers()["cache-control"], "no-store");
    (status, res.json().await.unwrap())
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    IdOnly(&'a str),
    Bearer(&'a str),
    Nothing,
}

#[tokio::test]
async fn introspection_tells_callers_about_their_own_tokens_only() {
    let b = Broker::start(CONFIG);
    let c = http();
    let asm: Value = c
        .get(format!("{}/.well-known/oauth-authorization-server", b.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        asm["introspection_endpoint"],
        format!("{}/introspect", b.base)
    );

    let (conf, conf_t) = authorize_as(&c, &b.base, "alpha", "client_secret_basic").await;
    let secret = conf.client_secret.clone().unwrap();
    let (public, public_t) = authorize(&c, &b.base, "beta").await;
    let pat = create_token(
        &b,
        &[
            "--upstream",
            "beta",
            "--label",
            "introspector",
            "--expires",
            "never",
        ],
    );
    let inactive = json!({"active": false});
    let t0 = now();

    let (s, v) = introspect(
        &c,
        &b,
        Auth::Basic(&conf.client_id, &secret),
        &conf_t.access,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], conf.client_id.as_str());
    assert_eq!(v["scope"], "mcp");
    assert_eq!(v["aud"], b.mcp_url("alpha"));
    assert_eq!(v["token_type"], "Bearer");
    assert!((v["exp"].as_i64().unwrap() - t0 - 3600).abs() < 30, "{v}");
    assert!((v["iat"].as_i64().unwrap() - t0).abs() < 30, "{v}");
    assert!(v["sub"].as_str().is_some_and(|s| !s.is_empty()));
    let (s, v) = introspect(
        &c,
        &b,
        Auth::Post(&conf.client_id, &secret),
        &conf_t.refresh,
    )
    .await;
    assert_eq!(
        (s, &v["active"]),
        (200, &json!(true)),
        "its refresh token too"
    );
    assert!(
        (v["exp"].as_i64().unwrap() - t0 - 30 * 86400).abs() < 30,
        "{v}"
    );

    // Never a way to probe: another client's token, garbage, and the PAT's own grant
    // seen by the confidential client are all just inactive.
    for token in [
        public_t.access.as_str(),
        public_t.refresh.as_str(),
        "garbage",
        pat.as_str(),
    ] {
        let (s, v) = introspect(&c, &b, Auth::Basic(&conf.client_id, &secret), token).await;
        assert_eq!((s, v), (200, inactive.clone()), "{token}");
    }

    // A personal access token as a bearer: itself, yes; anything else, inactive.
    let (s, v) = introspect(&c, &b, Auth::Bearer(&pat), &pat).await;
    assert_eq!(s, 200);
    assert_eq!(v["active"], true);
    assert_eq!(v["client_id"], "mcp-broker:personal-token");
    assert_eq!(v["aud"], b.mcp_url("beta"));
    assert!(
        v.get("exp").is_none(),
        "a token that never expires has no exp: {v}"
    );
    for token in [conf_t.access.as_str(), public_t.access.as_str()] {
        let (s, v) = introspect(&c, &b, Auth::Bearer(&pat), token).await;
        assert_eq!((s, v), (200, inactive.clone()));
    }

    // Unauthenticated callers: 401 invalid_client.
    for auth in [
        Auth::Nothing,
        Auth::IdOnly(&public.client_id),
        Auth::Basic(&conf.client_id, "wrong"),
        Auth::Bearer(&public_t.access),
        Auth::Bearer("mcpb_pat_not-a-real-token"),
    ] {
        let (s, v) = introspect(&c, &b, auth, &conf_t.access).await;
        assert_eq!(s, 401);
        assert_eq!(v["error"], "invalid_client");
    }

    // Revoked: inactive for its owner too.
    let id = grants_json(&b)
        .into_iter()
        .find(|g| g["client_id"] == conf.client_id.as_str())
        .unwrap()["id"]
        .to_string();
    assert!(b.cli(&["grants", "revoke", &id]).status.success());
    let (s, v) = introspect(
        &c,
        &b,
        Auth::Basic(&conf.client_id, &secret),
        &conf_t.access,
    )
    .await;
    assert_eq!((s, v), (200, inactive));
}

#[tokio::test]
async fn revoke_all_and_revoke_one_clients_grants() {
    let b = Broker::start(CONFIG);
    let c = http();
    let (x, x_t) = authorize(&c, &b.base, "alpha").await;
    // The same client on a second upstream: two grants for one client.
    let (verifier, challenge) = pkce();
    let consent = open_consent(&c, &b.base, &x, &challenge, Some(&b.mcp_url("beta")), "s").await;
    let code = query_param(&decide(&c, &b.base, &consent, "approve").await, "code").unwrap();
    let x_beta_status = exchange_code(&c, &b.base, &x, &code, &verifier)
        .await
        .status();
    assert_eq!(x_beta_status, 200);
    let (_, y_t) = authorize(&c, &b.base, "alpha").await;
    let pat = create_token(&b, &["--upstream", "alpha", "--label", "p"]);
    assert_eq!(grants_json(&b).len(), 4);

    let out = b.cli(&["grants", "revoke", "--client", &x.client_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("revoked grant"))
            .count(),
        2
    );
    assert_eq!(on(&b, "alpha", &x_t.access).await, 401);
    assert_eq!(on(&b, "alpha", &y_t.access).await, 400);
    assert_eq!(on(&b, "alpha", &pat).await, 400);
    assert_eq!(grants_json(&b).len(), 2);

    let out = b.cli(&["grants", "revoke", "--client", "mcpb-nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("no active grant of client mcpb-nobody"));

    let out = b.cli(&["grants", "revoke", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(on(&b, "alpha", &y_t.access).await, 401);
    assert_eq!(on(&b, "alpha", &pat).await, 401);
    assert!(grants_json(&b).is_empty());
    let out = b.cli(&["grants", "revoke", "--all"]);
    assert_eq!(out.status.code(), Some(0), "all of nothing is done");
    assert!(stdout(&out).contains("no active grants"));

    // Usage: an id, --all or --client, never two of them.
    assert_eq!(b.cli(&["grants", "revoke"]).status.code(), Some(2));
    assert_eq!(
        b.cli(&["grants", "revoke", "1", "--all"]).status.code(),
        Some(2)
    );
}

#[tokio::test]
async fn a_deleted_registration_answers_invalid_client() {
    let b = Broker::start(CONFIG);
    let c = http();
    let (x, x_t) = authorize(&c, &b.base, "alpha").await;
    let (y, y_t) = authorize(&c, &b.base, "alpha").await;
    create_token(
        &b,
        &["--upstream", "alpha", "--label", "not a registration"],
    );

    let regs = registrations_json(&b);
    let ids: Vec<&str> = regs
        .iter()
        .map(|r| r["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![x.client_id.as_str(), y.client_id.as_str()],
        "{regs:?}"
    );
    assert_eq!(regs[0]["active_grants"], 1);
    assert_eq!(regs[0]["kind"], "dynamic");
    assert_eq!(regs[0]["client_name"], "Test <Client>");
    assert!(stdout(&b.cli(&["registrations", "list"])).contains(&x.client_id));

    let out = b.cli(&["registrations", "delete", &x.client_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 grant(s) revoked"),
        "{}",
        stdout(&out)
    );

    assert_eq!(on(&b, "alpha", &x_t.access).await, 401);
    assert_eq!(on(&b, "alpha", &y_t.access).await, 400);
    let r = refresh_public(&c, &b.base, &x.client_id, &x_t.refresh, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    // RFC 6749 §4.1.2.1: an unknown client gets an error page, never a redirect.
    let (_, challenge) = pkce();
    let r = c
        .get(format!("{}/authorize", b.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", x.client_id.as_str()),
            ("redirect_uri", x.redirect_uri.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    let page = r.text().await.unwrap();
    assert!(page.contains("unknown client_id"), "{page}");
    assert!(page.contains("so that it registers again"), "{page}");

    let ids: Vec<String> = registrations_json(&b)
        .iter()
        .map(|r| r["client_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![y.client_id.clone()]);
    let again = b.cli(&["registrations", "delete", &x.client_id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("no client registration"));
    let pat_client = b.cli(&["registrations", "delete", "mcp-broker:personal-token"]);
    assert_eq!(
        pat_client.status.code(),
        Some(1),
        "personal tokens are not a registration"
    );

    // Registering again works: a new id, a new grant.
    let (_, again_t) = authorize(&c, &b.base, "alpha").await;
    assert_eq!(on(&b, "alpha", &again_t.access).await, 400);
}

#[tokio::test]
async fn stale_registrations_without_grants_are_purged() {
    let config = format!("[broker]\nregistration_ttl_secs = 1\n{CONFIG}");
    let b = Broker::start(&config);
    let c = http();
    let idle = register(&c, &b.base, "none").await;
    let (kept, kept_t) = authorize(&c, &b.base, "alpha").await;
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids = registrations_json(&b)
            .iter()
            .map(|r| r["client_id"].as_str().unwrap().to_owned())
            .collect();
        if !ids.contains(&idle.client_id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ids,
        vec![kept.client_id.clone()],
        "the idle one went, the granted one stays"
    );
    let r = refresh_public(&c, &b.base, &idle.client_id, "whatever", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(on(&b, "alpha", &kept_t.access).await, 400);
}

/// The running broker notices a personal token made by the CLI (another process): the
/// grants listeners (the desktop window and tray) hear `GrantsChanged` once; a
/// `grants revoke --all` from the CLI is announced once per grant, as `External`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_broker_notices_tokens_made_and_revoked_by_the_cli() {
    use mcp_broker::consent::ConsentMode;
    use mcp_broker::events::{GatewayEvent, RevokeReason};

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let config = mcp_broker::config::load(&cfg).unwrap();
    let data = dir.path().join("data");
    let running = mcp_broker::app::start(config, data.clone(), 0, ConsentMode::Page)
        .await
        .unwrap();
    let base = running.gateway().issuer().to_string();
    let mut events = running.gateway().subscribe();
    tokio::spawn(running.until(std::future::pending()));
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let seen = |rx: &mut tokio::sync::broadcast::Receiver<GatewayEvent>| {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            out.push(ev);
        }
        out
    };
    // Let the first maintenance tick take its baseline.
    tokio::time::sleep(Duration::from_millis(600)).await;
    seen(&mut events);

    let cfg = cfg.display().to_string();
    let token = cli(&[
        "tokens",
        "create",
        "--config",
        &cfg,
        "--upstream",
        "alpha",
        "--label",
        "bot",
    ]);
    let url = format!("{base}/mcp/alpha");
    assert_eq!(mcp_status(&http(), &url, Some(token.trim())).await.0, 400);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let evs = seen(&mut events);
    assert_eq!(
        evs.iter()
            .filter(|e| **e == GatewayEvent::GrantsChanged)
            .count(),
        1,
        "{evs:?}"
    );

    cli(&["grants", "revoke", "--all"]);
    assert_eq!(mcp_status(&http(), &url, Some(token.trim())).await.0, 401);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let revoked: Vec<(String, RevokeReason)> = seen(&mut events)
        .into_iter()
        .filter_map(|e| match e {
            GatewayEvent::GrantRevoked {
                client_name,
                reason,
                ..
            } => Some((client_name, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(revoked, vec![("bot".to_owned(), RevokeReason::External)]);
}

/// `tokens create --tools echo,add`: the list is the token's policy. Through the running
/// broker its session lists echo and add only, a call of the third tool is refused and
/// never reaches the upstream, the named ones go through. A name the upstream does not
/// serve, or an upstream that cannot be listed, makes no token.
#[tokio::test]
async fn a_tokens_tools_are_its_policy() {
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools.json");
    let calls = dir.path().join("calls.log");
    std::fs::write(
        &tools,
        json!([
            {"name": "echo", "description": "echo", "inputSchema": {"type": "object"}},
            {"name": "add", "description": "add", "inputSchema": {"type": "object"}},
            {"name": "rm", "description": "delete", "inputSchema": {"type": "object"}},
        ])
        .to_string(),
    )
    .unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tools_upstream.py"
    );
    let config = format!(
        "[servers.tools]\ncommand = \"python3\"\nargs = [{fixture:?}]\n\
         env = {{ TOOLS_FILE = {:?}, CALL_LOG = {:?} }}\n{CONFIG}",
        tools.display().to_string(),
        calls.display().to_string()
    );
    let b = Broker::start(&config);
    let cfg = config_path(&b);

    // Refused, nothing made: a typo, and an upstream that does not start.
    for (upstream, tools, why) in [
        (
            "tools",
            "echo,ecoh",
            "serves no tool named \"ecoh\" (it serves: echo, add, rm)",
        ),
        ("alpha", "echo", "cannot list the tools of alpha"),
    ] {
        let out = b.cli(&[
            "tokens",
            "create",
            "--config",
            &cfg,
            "--upstream",
            upstream,
            "--label",
            "x",
            "--tools",
            tools,
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
    assert!(grants_json(&b).is_empty(), "no grant was left behind");

    let token = create_token(
        &b,
        &[
            "--upstream",
            "tools",
            "--label",
            "two",
            "--tools",
            "echo,add",
        ],
    );
    let g = &grants_json(&b)[0];
    assert_eq!(g["tools"], json!(["echo", "add"]));
    let text = stdout(&b.cli(&["tokens", "list"]));
    assert!(text.trim_end().ends_with("\techo,add"), "{text}");

    let mut s = session::Session::open(&b.mcp_url("tools"), &token).await;
    let listed = s.request("tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["echo", "add"]);
    let refused = s
        .request("tools/call", json!({"name": "rm", "arguments": {}}))
        .await;
    assert_eq!(refused["error"]["code"], -32003, "{refused}");
    assert_eq!(
        s.tool_text("echo", json!({"x": 1})).await,
        "called echo with {\"x\": 1}"
    );
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), "echo\n");

    // Without --tools a token of the same upstream sees every tool.
    let all = create_token(&b, &["--upstream", "tools", "--label", "all"]);
    let mut s = session::Session::open(&b.mcp_url("tools"), &all).await;
    let listed = s.request("tools/list", json!({})).await;
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(3));
}
