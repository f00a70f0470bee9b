//! The configuration changes while the broker serves, with no restart: hand edits of
//! `config.toml` picked up by the running binary (a new server answers at once, an
//! invalid edit is refused and the last good configuration stays, a changed server's
//! sessions end, a removed server refuses clearly and its grants stay), and the same
//! rules through the Gateway's own operations (add, update, remove, import).

mod support;

use std::path::Path;
use std::time::Duration;

use mcp_broker::client_apps::ClientApp;
use mcp_broker::events::GatewayEvent;
use mcp_broker::gateway::Gateway;
use mcp_broker::gateway::mcp::McpRefusal;
use mcp_broker::gateway::servers::{FormTransport, FormValue, ServerForm, ValueKind};
use serde_json::{Value, json};
use support::{Broker, authorize, http, wait_until};

/// The stdio upstream that reports its environment (`env` tool).
const ENV_UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/env_upstream.py"
);

fn server(name: &str, x: &str) -> String {
    format!(
        "[servers.{name}]\ncommand = \"python3\"\nargs = [{ENV_UPSTREAM:?}]\nenv = {{ X = \"{x}\" }}\n"
    )
}

/// One MCP session over plain HTTP.
struct Mcp {
    c: reqwest::Client,
    url: String,
    token: String,
    session: String,
}

async fn post(
    c: &reqwest::Client,
    url: &str,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut r = c
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(s) = session {
        r = r.header("mcp-session-id", s);
    }
    r.body(body.to_string()).send().await.unwrap()
}

/// The JSON-RPC message of a reply, JSON or one SSE event.
async fn message(res: reqwest::Response) -> Value {
    let text = res.text().await.unwrap();
    let data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|d| !d.is_empty())
        .unwrap_or(text.trim());
    serde_json::from_str(data).unwrap_or(Value::Null)
}

impl Mcp {
    async fn open(c: &reqwest::Client, url: String, token: &str) -> Mcp {
        let res = post(
            c,
            &url,
            token,
            None,
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
        )
        .await;
        assert_eq!(res.status(), 200, "initialize on {url}");
        let session = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
        message(res).await;
        let ack = post(
            c,
            &url,
            token,
            Some(&session),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        )
        .await;
        assert_eq!(ack.status(), 202);
        Mcp {
            c: c.clone(),
            url,
            token: token.to_owned(),
            session,
        }
    }

    /// `tools/call env {name}`: the status, and the text when it answered.
    async fn env(&self, name: &str) -> (u16, String) {
        let res = post(
            &self.c,
            &self.url,
            &self.token,
            Some(&self.session),
            json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"env","arguments":{"name":name}}}),
        )
        .await;
        let status = res.status().as_u16();
        let m = message(res).await;
        let text = m["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (status, text)
    }
}

async fn metadata_status(c: &reqwest::Client, b: &Broker, name: &str) -> u16 {
    c.get(format!(
        "{}/.well-known/oauth-protected-resource/mcp/{name}",
        b.base
    ))
    .send()
    .await
    .unwrap()
    .status()
    .as_u16()
}

/// Replaces the file in one rename, as editors and `config_edit` do.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn eventually<F, Fut>(what: &str, secs: u64, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edits_apply_to_the_running_broker() {
    let mut b = Broker::start(&server("alpha", "one"));
    let cfg = b.dir.path().join("config.toml");
    let c = http();
    let (_, ta) = authorize(&c, &b.base, "alpha").await;
    let alpha = Mcp::open(&c, b.mcp_url("alpha"), &ta.access).await;
    assert_eq!(alpha.env("X").await, (200, "one".to_owned()));
    assert_eq!(metadata_status(&c, &b, "beta").await, 404);

    // A server added by hand is served at once: metadata, consent, tools.
    save(&cfg, &(server("alpha", "one") + &server("beta", "bee")));
    eventually("beta's metadata", 10, || async {
        metadata_status(&c, &b, "beta").await == 200
    })
    .await;
    let (_, tb) = authorize(&c, &b.base, "beta").await;
    let beta = Mcp::open(&c, b.mcp_url("beta"), &tb.access).await;
    assert_eq!(beta.env("X").await, (200, "bee".to_owned()));
    // An unchanged server keeps its session.
    assert_eq!(alpha.env("X").await, (200, "one".to_owned()));

    // An invalid edit: refused with file, key and reason; the last good one stays.
    save(
        &cfg,
        &(server("alpha", "one")
            + &server("beta", "bee")
            + "[servers.gamma]\nurl = \"http://example.com/mcp\"\n"),
    );
    let expected = format!(
        "config error in {}: servers.gamma.url: must be https",
        std::path::absolute(&cfg).unwrap().display()
    );
    assert!(
        wait_until(|| b.log().contains(&expected), 10).await,
        "the refusal is logged with file, key and reason: {}",
        b.log()
    );
    assert!(
        b.log()
            .contains("the last good configuration stays in force")
    );
    assert_eq!(alpha.env("X").await, (200, "one".to_owned()));
    assert_eq!(beta.env("X").await, (200, "bee".to_owned()));
    assert_eq!(metadata_status(&c, &b, "gamma").await, 404);

    // A changed server: its session ends; the next one has the new settings.
    save(&cfg, &(server("alpha", "two") + &server("beta", "bee")));
    eventually("alpha's old session to end", 10, || async {
        alpha.env("X").await.0 == 404
    })
    .await;
    let alpha2 = Mcp::open(&c, b.mcp_url("alpha"), &ta.access).await;
    assert_eq!(alpha2.env("X").await, (200, "two".to_owned()));
    assert_eq!(
        beta.env("X").await,
        (200, "bee".to_owned()),
        "beta untouched"
    );

    // A removed server refuses, saying so; its grant stays listed.
    save(&cfg, &server("alpha", "two"));
    let refused = || async {
        let res = post(
            &c,
            &b.mcp_url("beta"),
            &tb.access,
            None,
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        )
        .await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        status == 404 && text.contains("removed from the broker's configuration")
    };
    eventually("beta to be refused as removed", 10, refused).await;
    let grants: Vec<Value> =
        serde_json::from_slice(&b.cli(&["grants", "list", "--json"]).stdout).unwrap();
    assert!(
        grants.iter().any(|g| g["upstream"] == "beta"),
        "beta's grant stays: {grants:?}"
    );
    assert_eq!(alpha2.env("X").await, (200, "two".to_owned()));

    // Back again: the same grant works.
    save(&cfg, &(server("alpha", "two") + &server("beta", "back")));
    eventually("beta to be back", 10, || async {
        metadata_status(&c, &b, "beta").await == 200
    })
    .await;
    let beta2 = Mcp::open(&c, b.mcp_url("beta"), &tb.access).await;
    assert_eq!(beta2.env("X").await, (200, "back".to_owned()));
    assert!(b.terminate().success());
}

fn literal(key: &str, value: &str) -> FormValue {
    FormValue {
        key: key.into(),
        kind: ValueKind::Literal,
        value: value.into(),
        secret: String::new(),
        prefix: String::new(),
    }
}

fn form(name: &str, x: &str) -> ServerForm {
    ServerForm {
        name: name.into(),
        transport: FormTransport::Stdio,
        command: "python3".into(),
        args: vec![ENV_UPSTREAM.into()],
        cwd: String::new(),
        url: String::new(),
        client_id: String::new(),
        values: vec![literal("X", x)],
    }
}

fn changes(rx: &mut tokio::sync::broadcast::Receiver<GatewayEvent>) -> Vec<GatewayEvent> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if matches!(ev, GatewayEvent::UpstreamsChanged { .. }) {
            out.push(ev);
        }
    }
    out
}

/// The window's operations: each writes `config.toml` (keeping the person's comments),
/// applies it to the gateway at once, and announces it; a refused one names file, key
/// and reason as the loader does and writes nothing. Then an import from Claude Desktop's
/// file (found through `XDG_CONFIG_HOME`, as the window finds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_operations_write_and_apply() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "# mine\n[broker]\nport = 7391\n").unwrap();
    let config = mcp_broker::config::load(&cfg).unwrap();
    let g = Gateway::offline(config, &dir.path().join("data"))
        .await
        .unwrap();
    let mut rx = g.subscribe();

    let applied = g.add_server(form("alpha", "one")).await.unwrap();
    assert_eq!(applied.added, ["alpha"]);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.starts_with("# mine\n[broker]\nport = 7391\n") && text.contains("[servers.alpha]")
    );
    assert!(g.resource_for("alpha").is_some(), "served at once");
    assert!(g.protected_resource_metadata("alpha").is_some());
    assert_eq!(
        changes(&mut rx),
        [GatewayEvent::UpstreamsChanged {
            added: vec!["alpha".into()],
            changed: vec![],
            removed: vec![],
            restart_needed: false
        }]
    );
    assert_eq!(g.server_form("alpha").unwrap(), form("alpha", "one"));

    // The loader's message; nothing written, nothing applied.
    let before = std::fs::read_to_string(&cfg).unwrap();
    let mut bad = form("beta", "x");
    bad.transport = FormTransport::Remote;
    bad.url = "http://example.com/mcp".into();
    bad.values.clear();
    let e = g.add_server(bad).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "config error in {}: servers.beta.url: must be https, or http on a loopback address",
            cfg.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);
    assert!(g.resource_for("beta").is_none());
    let e = g.add_server(form("alpha", "again")).await.unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(changes(&mut rx).is_empty());

    let applied = g.update_server(form("alpha", "two")).await.unwrap();
    assert_eq!(applied.changed, ["alpha"]);
    assert!(
        std::fs::read_to_string(&cfg)
            .unwrap()
            .contains("X = \"two\"")
    );

    let applied = g.remove_server("alpha").await.unwrap();
    assert_eq!(applied.removed, ["alpha"]);
    assert!(!std::fs::read_to_string(&cfg).unwrap().contains("alpha"));
    assert!(matches!(
        g.authenticate("alpha", Some("Bearer x")).await,
        Err(McpRefusal::RemovedUpstream)
    ));
    assert!(matches!(
        g.authenticate("never", Some("Bearer x")).await,
        Err(McpRefusal::UnknownUpstream)
    ));
    assert!(g.remove_server("alpha").await.is_err(), "already gone");

    // A hand edit of [broker] settings is reported, not applied.
    let port_before = g.config().port();
    let diff = g
        .apply_config(
            mcp_broker::config::parse(
                &cfg,
                "[broker]\nport = 7400\n[servers.x]\nurl = \"https://x.example/mcp\"\n",
            )
            .unwrap(),
        )
        .await;
    assert!(diff.settings_need_restart && diff.added == ["x"]);
    assert_eq!(g.config().port(), port_before);
    g.remove_server("x").await.ok();

    // Import from Claude Desktop's file; the key not confirmed stays a literal.
    let xdg = dir.path().join("xdg");
    let claude = xdg.join("Claude").join("claude_desktop_config.json");
    std::fs::create_dir_all(claude.parent().unwrap()).unwrap();
    std::fs::write(
        &claude,
        json!({"mcpServers": {"notes": {"command": "python3", "args": [ENV_UPSTREAM], "env": {"X": "plain", "API_KEY": "sk-live-abcdefghijklmnopqrstuvwx"}}, "broken": {"foo": 1}}}).to_string(),
    )
    .unwrap();
    // SAFETY: this test is the only one in this binary that reads the variable, and
    // nothing else reads the environment concurrently at this point.
    unsafe { std::env::set_var("XDG_CONFIG_HOME", &xdg) };
    assert_eq!(ClientApp::ClaudeDesktop.user_config_file().unwrap(), claude);
    let sources = g.import_sources();
    let desktop = sources
        .iter()
        .find(|s| s.client == "claude-desktop")
        .unwrap();
    assert!(desktop.found);
    assert_eq!(
        desktop
            .servers
            .iter()
            .map(|s| (s.key.as_str(), s.importable))
            .collect::<Vec<_>>(),
        [("notes", true), ("broken", false)]
    );
    let plan = g
        .import_preview("claude-desktop", &["notes".into()])
        .await
        .unwrap();
    assert_eq!(plan.servers[0].name, "notes");
    assert_eq!(plan.servers[0].secrets.len(), 1, "{plan:?}");
    assert!(
        !format!("{plan:?}").contains("sk-live"),
        "no value in the preview"
    );
    let done = g
        .import_servers("claude-desktop", &["notes".into()], &[])
        .await
        .unwrap();
    assert_eq!(done.servers, ["notes"]);
    assert!(done.secrets.is_empty());
    assert!(
        g.resource_for("notes").is_some(),
        "imported servers are served"
    );
    let client_text = std::fs::read_to_string(&claude).unwrap();
    assert!(client_text.contains("\"connect\"") && !client_text.contains("sk-live"));
    assert!(
        std::fs::read_to_string(&cfg).unwrap().contains("sk-live"),
        "kept as a literal"
    );
    let e = g
        .import_preview("claude-desktop", &["notes".into()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("notes"), "{e}");
    let e = g.import_preview("nope", &["x".into()]).await.unwrap_err();
    assert!(e.to_string().contains("unknown client"), "{e}");
    g.shutdown().await;
}
