//! The activity log, reference ids and rate limits (issue 12) end to end: the real broker
//! binary, real HTTP, real SQLite, and a fake stdio upstream that is this test binary
//! re-running itself (`FAKE_MCP_UPSTREAM=1`).

mod support;

use std::io::{BufRead, Write};
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use support::*;

fn main() {
    if std::env::var_os("FAKE_MCP_UPSTREAM").is_some() {
        fake_upstream();
        return;
    }
    let args = Arguments::from_args();
    macro_rules! trials {
        ($($name:ident),* $(,)?) => {
            vec![$(Trial::test(stringify!($name), $name)),*]
        };
    }
    let trials = trials![
        calls_and_authorization_events_of_two_grants_are_recorded_without_secrets,
        each_rate_limit_answers_429_with_retry_after_then_recovers,
        a_reference_id_is_in_the_error_the_log_and_the_activity_log,
        activity_follow_prints_calls_as_they_happen,
        a_flood_of_made_up_tokens_is_one_row_not_a_row_each,
    ];
    libtest_mimic::run(&args, trials).exit();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config(broker: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    format!(
        r#"[broker]
{broker}

[servers.fake]
command = {exe:?}
env = {{ FAKE_MCP_UPSTREAM = "1" }}

[servers.other]
command = {exe:?}
env = {{ FAKE_MCP_UPSTREAM = "1" }}
"#,
        exe = exe.display().to_string()
    )
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+).into());
        }
    };
}

struct Mcp {
    c: reqwest::Client,
    url: String,
    token: String,
    session: Option<String>,
}

impl Mcp {
    async fn post(&self, body: Value) -> reqwest::Response {
        let mut r = self
            .c
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        r.body(body.to_string()).send().await.unwrap()
    }

    async fn initialize(&mut self) {
        let res = self
            .post(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
            .await;
        self.session = res
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(self.session.is_some(), "initialize: {}", res.status());
        let _ = res.text().await;
        let ack = self
            .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        assert_eq!(ack.status(), 202);
    }

    async fn request(&self, id: i64, method: &str, params: Value) -> Value {
        let res = self
            .post(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
            .await;
        serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null)
    }
}

async fn connect(b: &Broker, upstream: &str) -> (Registered, Tokens, Mcp) {
    let c = http();
    let (reg, t) = authorize(&c, &b.base, upstream).await;
    let mut m = Mcp {
        c,
        url: b.mcp_url(upstream),
        token: t.access.clone(),
        session: None,
    };
    m.initialize().await;
    (reg, t, m)
}

/// The activity log as `mcp-broker activity --json` prints it (oldest first).
fn activity(b: &Broker, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["activity", "--json", "--limit", "1000"];
    args.extend_from_slice(extra);
    let out = b.cli(&args);
    assert!(
        out.status.success(),
        "activity failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("activity --json prints an array")
}

fn grants(b: &Broker) -> Vec<Value> {
    let out = b.cli(&["grants", "list", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn files_contain(dir: &std::path::Path, needle: &str) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
        .map(|p| p.display().to_string())
        .collect()
}

fn calls_and_authorization_events_of_two_grants_are_recorded_without_secrets() -> Result<(), Failed>
{
    rt().block_on(async {
        let mut b = Broker::start(&config(""));
        let secret_arg = "do-not-log-7f3a9c";
        let (reg_a, tok_a, a) = connect(&b, "fake").await;
        let (reg_b, tok_b, bb) = connect(&b, "other").await;
        let echoed = a
            .request(
                1,
                "tools/call",
                json!({"name":"echo","arguments":{"text": secret_arg}}),
            )
            .await;
        ensure!(
            echoed["result"]["content"][0]["text"] == secret_arg,
            "echo: {echoed}"
        );
        let failed = a
            .request(2, "tools/call", json!({"name":"fail","arguments":{}}))
            .await;
        ensure!(failed["error"]["code"] == -32602, "fail: {failed}");
        a.request(3, "resources/read", json!({"uri":"file:///notes.txt"}))
            .await;
        a.request(4, "tools/list", json!({})).await;
        bb.request(
            1,
            "tools/call",
            json!({"name":"echo","arguments":{"text":"hi"}}),
        )
        .await;
        // A refresh, then a CLI revocation of the second grant.
        let refreshed =
            refresh_public(&http(), &b.base, &reg_a.client_id, &tok_a.refresh, None).await;
        ensure!(refreshed.status() == 200, "refresh: {}", refreshed.status());
        let new_tokens: Value = refreshed.json().await.unwrap();
        let all = grants(&b);
        let grant_of = |client: &str| {
            all.iter()
                .find(|g| g["client_id"] == client)
                .map(|g| g["id"].as_i64().unwrap())
                .unwrap()
        };
        let (ga, gb) = (grant_of(&reg_a.client_id), grant_of(&reg_b.client_id));
        let out = b.cli(&["grants", "revoke", &gb.to_string()]);
        ensure!(out.status.success(), "revoke: {:?}", out);
        // A clean shutdown writes what was still queued.
        ensure!(b.terminate().success(), "broker exit");

        let rows = activity(&b, &["--grant", &ga.to_string()]);
        let calls: Vec<&Value> = rows.iter().filter(|r| r["event"] == "call").collect();
        let by_target = |t: &str| calls.iter().find(|r| r["target"] == t).copied();
        let echo = by_target("echo").ok_or("no echo call recorded")?;
        ensure!(echo["grant_id"] == ga, "grant: {echo}");
        ensure!(
            echo["client_id"] == reg_a.client_id.as_str(),
            "client: {echo}"
        );
        ensure!(echo["upstream"] == "fake", "upstream: {echo}");
        ensure!(echo["method"] == "tools/call", "method: {echo}");
        ensure!(echo["outcome"] == "ok", "outcome: {echo}");
        ensure!(
            echo["duration_us"].as_i64().unwrap_or(0) > 0,
            "duration: {echo}"
        );
        ensure!(
            echo["response_bytes"].as_i64().unwrap_or(0) > 20,
            "size: {echo}"
        );
        let fail = by_target("fail").ok_or("no fail call")?;
        ensure!(
            fail["outcome"] == "error" && fail["error_code"] == -32602,
            "fail: {fail}"
        );
        ensure!(
            by_target("file:///notes.txt").is_some(),
            "resources/read target: {calls:?}"
        );
        ensure!(
            calls
                .iter()
                .any(|r| r["method"] == "tools/list" && r["target"].is_null()),
            "tools/list: {calls:?}"
        );
        ensure!(
            calls.iter().any(|r| r["method"] == "initialize"),
            "initialize: {calls:?}"
        );
        let events: Vec<&str> = rows.iter().filter_map(|r| r["event"].as_str()).collect();
        for e in ["consent_approved", "tokens_issued", "tokens_refreshed"] {
            ensure!(events.contains(&e), "{e} missing from {events:?}");
        }
        let consent = rows
            .iter()
            .find(|r| r["event"] == "consent_approved")
            .unwrap();
        let shown: Value = serde_json::from_str(consent["detail"].as_str().unwrap())?;
        ensure!(
            shown["shown"]["client_name"] == "Test <Client>"
                && shown["shown"]["upstream"] == "fake",
            "consent detail: {shown}"
        );
        // The other grant: its call, and who revoked it.
        let rows_b = activity(&b, &["--grant", &gb.to_string()]);
        ensure!(
            rows_b
                .iter()
                .any(|r| r["event"] == "call" && r["target"] == "echo" && r["upstream"] == "other"),
            "grant b call: {rows_b:?}"
        );
        let revoked = rows_b
            .iter()
            .find(|r| r["event"] == "revoked")
            .ok_or("no revocation")?;
        ensure!(
            revoked["detail"]
                .as_str()
                .unwrap()
                .contains("\"by\":\"cli\""),
            "{revoked}"
        );
        // Registrations are recorded (without a grant).
        let everything = activity(&b, &[]);
        ensure!(
            everything
                .iter()
                .filter(|r| r["event"] == "registered")
                .count()
                == 2,
            "registrations: {everything:?}"
        );
        ensure!(
            activity(&b, &["--upstream", "other"])
                .iter()
                .all(|r| r["upstream"] == "other"),
            "--upstream filters"
        );
        // Never an argument value or a token, anywhere in the data dir or the log.
        let secrets = [
            secret_arg.to_owned(),
            tok_a.access.clone(),
            tok_a.refresh.clone(),
            tok_b.access.clone(),
            tok_b.refresh.clone(),
            new_tokens["access_token"].as_str().unwrap().to_owned(),
            new_tokens["refresh_token"].as_str().unwrap().to_owned(),
        ];
        for s in &secrets {
            let found = files_contain(b.dir.path(), s);
            ensure!(found.is_empty(), "{s} found in {found:?}");
        }
        Ok(())
    })
}

async fn status_and_retry(res: reqwest::Response) -> (u16, Option<u64>, String) {
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (status, retry, res.text().await.unwrap_or_default())
}

fn each_rate_limit_answers_429_with_retry_after_then_recovers() -> Result<(), Failed> {
    rt().block_on(async {
        let mut b = Broker::start(&config(
            r#"registration_rate = "3/2s"
authorization_rate = "2/2s"
token_rate = "2/2s"
mcp_rate = "4/2s""#,
        ));
        let c = http();
        // MCP calls per grant (first, while the other limits are untouched).
        let (_, _, m) = connect(&b, "fake").await; // 1 registration, 1 authorize, 1 token
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut limited = None;
        for id in 1..=6 {
            let res = m
                .post(json!({"jsonrpc":"2.0","id":id,"method":"tools/list"}))
                .await;
            if res.status() == 429 {
                limited = Some(status_and_retry(res).await);
                break;
            }
            let _ = res.text().await;
        }
        let (_, retry, body) = limited.ok_or("no 429 within 6 MCP calls at 4/2s")?;
        let retry = retry.ok_or("429 without Retry-After")?;
        let v: Value = serde_json::from_str(&body)?;
        ensure!(v["id"].is_number() && v["error"]["data"]["reference"].is_string(), "mcp 429 body: {v}");
        let mcp_ref = v["error"]["data"]["reference"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_secs(retry)).await;
        let again = m
            .post(json!({"jsonrpc":"2.0","id":50,"method":"tools/list"}))
            .await;
        ensure!(again.status() == 200, "after the window: {}", again.status());

        // Registrations.
        let reg = |n: usize| {
            let c = c.clone();
            let base = b.base.clone();
            async move {
                c.post(format!("{base}/register"))
                    .json(&json!({"client_name": "Limited", "redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none", "n": n}))
                    .send()
                    .await
                    .unwrap()
            }
        };
        let mut last = (0, None, String::new());
        for n in 0..4 {
            last = status_and_retry(reg(n).await).await;
        }
        ensure!(last.0 == 429, "fourth registration: {}", last.0);
        let v: Value = serde_json::from_str(&last.2)?;
        ensure!(
            v["error"] == "temporarily_unavailable" && v["reference"].is_string(),
            "registration 429 body: {v}"
        );
        // Another client name is not limited by this one.
        let other = c
            .post(format!("{}/register", b.base))
            .json(&json!({"client_name": "Other", "redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"}))
            .send()
            .await
            .unwrap();
        ensure!(other.status() == 201, "other name: {}", other.status());
        tokio::time::sleep(Duration::from_secs(last.1.ok_or("no Retry-After")?)).await;
        ensure!(reg(9).await.status() == 201, "registration after the window");

        // Authorization requests, per client.
        let r = register(&c, &b.base, "none").await;
        let (_, challenge) = pkce();
        let authz = || {
            c.get(format!("{}/authorize", b.base))
                .query(&[
                    ("response_type", "code"),
                    ("client_id", r.client_id.as_str()),
                    ("redirect_uri", r.redirect_uri.as_str()),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                ])
                .send()
        };
        let mut last = (0, None, String::new());
        for _ in 0..3 {
            last = status_and_retry(authz().await.unwrap()).await;
        }
        ensure!(last.0 == 429, "third authorization: {}", last.0);
        ensure!(last.2.contains("Reference"), "the page shows the reference");
        tokio::time::sleep(Duration::from_secs(last.1.ok_or("no Retry-After")?)).await;
        let after = authz().await.unwrap().status();
        ensure!(after != 429, "authorization after the window: {after}");

        // Token requests, per client.
        let form = [
            ("grant_type", "authorization_code"),
            ("code", "nope"),
            ("redirect_uri", r.redirect_uri.as_str()),
            ("client_id", r.client_id.as_str()),
            ("code_verifier", "v"),
        ];
        let token = || post_token(&c, &b.base, &form);
        let mut last = (0, None, String::new());
        for _ in 0..3 {
            last = status_and_retry(token().await).await;
        }
        ensure!(last.0 == 429, "third token request: {}", last.0);
        ensure!(last.2.contains("temporarily_unavailable"), "token 429 body: {}", last.2);
        tokio::time::sleep(Duration::from_secs(last.1.ok_or("no Retry-After")?)).await;
        ensure!(token().await.status() == 400, "token endpoint after the window");

        ensure!(b.terminate().success(), "exit");
        let rows = activity(&b, &[]);
        let limited: Vec<&Value> = rows.iter().filter(|r| r["event"] == "rate_limited").collect();
        for kind in ["mcp", "registration", "authorization", "token"] {
            ensure!(
                limited.iter().any(|r| r["method"] == kind),
                "no rate_limited row for {kind}: {limited:?}"
            );
        }
        ensure!(
            limited.iter().any(|r| r["reference"] == mcp_ref.as_str() && r["grant_id"].is_number()),
            "the MCP limit's row carries its reference and grant"
        );
        Ok(())
    })
}

fn a_reference_id_is_in_the_error_the_log_and_the_activity_log() -> Result<(), Failed> {
    rt().block_on(async {
        let mut b = Broker::start(&config(""));
        let c = http();
        let r = register(&c, &b.base, "none").await;
        let res = post_token(
            &c,
            &b.base,
            &[
                ("grant_type", "authorization_code"),
                ("code", "unknown"),
                ("redirect_uri", r.redirect_uri.as_str()),
                ("client_id", r.client_id.as_str()),
                ("code_verifier", "v"),
            ],
        )
        .await;
        ensure!(res.status() == 400, "status {}", res.status());
        let v: Value = res.json().await?;
        let reference = v["reference"]
            .as_str()
            .ok_or("no reference member")?
            .to_owned();
        ensure!(reference.len() == 8, "reference {reference}");
        ensure!(
            v["error_description"]
                .as_str()
                .unwrap()
                .contains(&reference),
            "error_description names it: {v}"
        );
        // A JSON-RPC error the broker produces carries one in error.data.
        let (_, _, m) = connect(&b, "fake").await;
        let dup = m
            .post(json!({"jsonrpc":"2.0","id":1,"method":"resources/list"}))
            .await;
        let _ = dup.text().await;
        let no_session = Mcp {
            session: Some("nope".into()),
            c: m.c.clone(),
            url: m.url.clone(),
            token: m.token.clone(),
        }
        .post(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
        .await;
        ensure!(
            no_session.status() == 404,
            "unknown session: {}",
            no_session.status()
        );
        let v: Value = no_session.json().await?;
        let rpc_ref = v["error"]["data"]["reference"]
            .as_str()
            .ok_or("no error.data.reference")?
            .to_owned();
        ensure!(b.terminate().success(), "exit");
        let log = b.log();
        ensure!(log.contains(&reference), "the log has {reference}");
        ensure!(log.contains(&rpc_ref), "the log has {rpc_ref}");
        let rows = activity(&b, &[]);
        ensure!(
            rows.iter()
                .any(|r| r["reference"] == reference.as_str() && r["event"] == "error"),
            "the activity log has {reference}"
        );
        ensure!(
            rows.iter().any(|r| r["reference"] == rpc_ref.as_str()
                && r["event"] == "call"
                && r["outcome"] == "refused"
                && r["grant_id"].is_number()),
            "the activity log has {rpc_ref} as a refused call of the grant"
        );
        Ok(())
    })
}

/// Requests without a valid token cost no row each (a flood would push real activity
/// out of the log): the broker counts them and records one row with the counts.
fn a_flood_of_made_up_tokens_is_one_row_not_a_row_each() -> Result<(), Failed> {
    rt().block_on(async {
        let mut b = Broker::start(&config(""));
        let c = http();
        let url = format!("{}/mcp/fake", b.base);
        let body = json!({"jsonrpc":"2.0","id":7,"method":"tools/list"});
        for i in 0..60 {
            let mut req = c.post(&url).json(&body);
            if i % 3 != 0 {
                req = req.bearer_auth(format!("made-up-{i}"));
            }
            let res = req.send().await?;
            ensure!(res.status() == 401, "status {}", res.status());
            let v: Value = res.json().await?;
            ensure!(v["id"] == 7, "the request id is echoed: {v}");
            ensure!(
                v["error"].get("data").is_none(),
                "no reference that nothing records: {v}"
            );
        }
        ensure!(b.terminate().success(), "exit");
        let rows = activity(&b, &[]);
        let refused: Vec<&Value> = rows.iter().filter(|r| r["event"] == "error").collect();
        ensure!(refused.len() == 1, "one row for the lot: {refused:?}");
        let detail: Value = serde_json::from_str(refused[0]["detail"].as_str().unwrap_or("{}"))?;
        ensure!(
            detail["without_token"] == 20 && detail["unknown_token"] == 40,
            "the row counts them: {detail}"
        );
        Ok(())
    })
}

fn activity_follow_prints_calls_as_they_happen() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config(""));
        let (_, _, m) = connect(&b, "fake").await;
        let mut follow = std::process::Command::new(BIN)
            .args(["activity", "--follow", "--json", "--data-dir"])
            .arg(b.data_dir())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = follow.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(800)).await;
        m.request(
            7,
            "tools/call",
            json!({"name":"echo","arguments":{"text":"x"}}),
        )
        .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut seen = false;
        while std::time::Instant::now() < deadline && !seen {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                let v: Value = serde_json::from_str(&line)?;
                seen = v["event"] == "call" && v["target"] == "echo";
            }
        }
        let _ = follow.kill();
        let _ = follow.wait();
        ensure!(seen, "--follow printed the echo call within 10 s");
        Ok(())
    })
}

/// A minimal MCP server on stdio: `echo` answers its text, `fail` a JSON-RPC error.
fn fake_upstream() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let id = msg["id"].clone();
        if id.is_null() {
            continue;
        }
        let result = |v: Value| json!({"jsonrpc":"2.0","id":id,"result":v});
        let reply = match msg["method"].as_str().unwrap_or("") {
            "initialize" => result(
                json!({"protocolVersion": msg["params"]["protocolVersion"], "capabilities":{"tools":{}, "resources":{}}, "serverInfo":{"name":"fake","version":"1"}}),
            ),
            "tools/list" => {
                // `fail` is listed (so the grant's tool policy lets calls through) and
                // answers every call with a JSON-RPC error.
                result(json!({"tools":[
                    {"name":"echo","inputSchema":{"type":"object"}},
                    {"name":"fail","inputSchema":{"type":"object"}}
                ]}))
            }
            "tools/call" => match msg["params"]["name"].as_str().unwrap_or("") {
                "echo" => result(
                    json!({"content":[{"type":"text","text": msg["params"]["arguments"]["text"]}]}),
                ),
                _ => {
                    json!({"jsonrpc":"2.0","id":id,"error":{"code":-32602,"message":"unknown tool"}})
                }
            },
            "resources/read" => {
                result(json!({"contents":[{"uri": msg["params"]["uri"], "text":"x"}]}))
            }
            _ => result(json!({})),
        };
        writeln!(out, "{reply}").unwrap();
        out.flush().unwrap();
    }
}
