//! Tests against a real OS keychain: gnome-keyring's Secret Service inside a private
//! D-Bus session. `tests/keychain/run.sh` sets that up and sets `MCP_BROKER_KEYCHAIN_TESTS=1`;
//! without it these tests are reported as ignored (a plain `cargo test` on a machine with
//! no D-Bus still passes), except the one that checks the error for a missing keychain.
//!
//! Everything runs through the real `mcp-broker` binary where a user would: `secrets
//! set/list/delete`, `serve --headless`, an OAuth sign-in over HTTP (register, authorize,
//! the consent form, token), then MCP calls to a stdio upstream (a Python script that
//! reports its environment) and to a remote upstream (an in-test HTTP server that records
//! the headers it gets).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use sha2::Digest;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-broker");
const GATE: &str = "MCP_BROKER_KEYCHAIN_TESTS";

fn main() {
    let args = Arguments::from_args();
    let enabled = std::env::var_os(GATE).is_some();
    if !enabled {
        eprintln!(
            "keychain tests skipped: {GATE} is not set. Run tests/keychain/run.sh, which starts a \
             private D-Bus session with an unlocked gnome-keyring and sets it."
        );
    }
    let keychain = |name: &str, f: fn() -> Result<(), Failed>| {
        Trial::test(name, f).with_ignored_flag(!enabled)
    };
    let mut trials = vec![
        keychain("vault_set_get_delete_real_entries", vault_round_trip),
        keychain("cli_secrets_set_list_delete", cli_set_list_delete),
        keychain(
            "upstreams_receive_their_secrets_and_nothing_leaks",
            upstreams_receive_secrets,
        ),
        keychain("upstream_oauth_end_to_end", upstream_oauth),
        keychain(
            "upstream_oauth_per_account_signs_out_one_account_only",
            upstream_oauth_per_account,
        ),
        keychain("import_claude_desktop_moves_keys", import_claude_desktop),
        keychain("import_claude_code_moves_keys", import_claude_code),
        keychain("import_cursor_moves_keys", import_cursor),
        keychain(
            "imported_server_runs_through_the_broker_with_its_key",
            import_then_call,
        ),
        keychain(
            "import_asks_about_each_secret_on_a_terminal",
            import_on_a_terminal,
        ),
        keychain(
            "import_with_a_locked_keychain_writes_nothing",
            import_with_locked_keychain,
        ),
    ];
    if cfg!(target_os = "linux") {
        trials.push(Trial::test(
            "no_keychain_gives_one_clear_line",
            no_keychain_one_line,
        ));
        trials.push(Trial::test(
            "import_without_keychain_writes_nothing",
            import_without_keychain,
        ));
    }
    libtest_mimic::run(&args, trials).exit();
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

fn random_hex(n: usize) -> String {
    (0..n)
        .map(|_| format!("{:x}", rand::random::<u8>() & 0xf))
        .collect()
}

/// A service name of its own per test, so runs and tests never see each other's entries.
fn test_service() -> String {
    format!("mcp-broker-test-{}", random_hex(12))
}

/// Asks the keychain through libsecret's own tool, independent of the `keyring` crate.
fn secret_tool_lookup(service: &str, name: &str) -> Option<String> {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", service, "username", name])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn vault_round_trip() -> Result<(), Failed> {
    use mcp_broker::vault::{Secret, Vault};
    let service = test_service();
    let a = Vault::Keyring {
        service: service.clone(),
    };
    // A second handle: a value must come back from the keychain, not from the entry.
    let b = Vault::Keyring {
        service: service.clone(),
    };
    let v1 = format!("first-{}", random_hex(16));
    let v2 = format!("second-{}", random_hex(16));
    check(a.get("tok")?.is_none(), "fresh service has no entry")?;
    a.set("tok", &Secret::new(v1.clone()))?;
    check(
        b.get("tok")?.as_ref().map(|s| s.expose().as_str()) == Some(v1.as_str()),
        "value read back through another handle",
    )?;
    check(
        secret_tool_lookup(&service, "tok").as_deref() == Some(v1.as_str()),
        "secret-tool sees the entry in gnome-keyring",
    )?;
    a.set("tok", &Secret::new(v2.clone()))?;
    check(
        b.get("tok")?.map(|s| s.expose().clone()) == Some(v2.clone()),
        "overwritten",
    )?;
    check(b.delete("tok")?, "delete reports an existing entry")?;
    check(!a.delete("tok")?, "second delete finds nothing")?;
    check(a.get("tok")?.is_none(), "gone after delete")?;
    check(
        secret_tool_lookup(&service, "tok").is_none(),
        "secret-tool no longer finds it",
    )?;
    Ok(())
}

struct Cli {
    service: String,
    data_dir: PathBuf,
}

/// The stdio upstream that reports its environment.
const ENV_UPSTREAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/env_upstream.py"
);

impl Cli {
    /// A keychain service of its own and a data dir in `tmp`.
    fn in_dir(tmp: &Path) -> Cli {
        Cli {
            service: test_service(),
            data_dir: tmp.join("data"),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env(mcp_broker::vault::SERVICE_ENV, &self.service)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run mcp-broker");
        if let Some(s) = stdin {
            let mut i = child.stdin.take().unwrap();
            // A command that refuses its arguments exits without reading stdin; the
            // exit status is what the test checks, so a closed pipe here is expected.
            if let Err(e) = i.write_all(s.as_bytes()) {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "stdin: {e}");
            }
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn cli_set_list_delete() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let cli = Cli::in_dir(tmp.path());
    let value = format!("cli-{}", random_hex(20));
    let config = tmp.path().join("c.toml");
    std::fs::write(
        &config,
        "[servers.gh]\ncommand = \"x\"\nenv = { GITHUB_TOKEN = { secret = \"github-token\" } }\n\
         [servers.other]\ncommand = \"x\"\nenv = { K = { secret = \"never-set\" } }\n",
    )?;
    let config = config.to_str().unwrap();

    // Value on stdin, with the newline `echo` adds.
    let (code, out, err) = cli.run(
        &["secrets", "set", "github-token"],
        Some(&format!("{value}\n")),
    );
    check(code == 0, format!("set failed: {err}"))?;
    check(out.contains("stored github-token"), &out)?;
    check(
        secret_tool_lookup(&cli.service, "github-token").as_deref() == Some(value.as_str()),
        "the keychain holds exactly the value, newline dropped",
    )?;

    let (code, out, err) = cli.run(&["secrets", "list", "--config", config], None);
    check(code == 0, format!("list failed: {err}"))?;
    check(
        !out.contains(&value) && !err.contains(&value),
        "list never shows values",
    )?;
    check(
        out.contains("github-token\tstored\tgh (env GITHUB_TOKEN)"),
        format!("list shows name, status, usage: {out}"),
    )?;
    check(
        out.contains("never-set\tmissing\tother (env K)"),
        format!("list shows referenced but missing: {out}"),
    )?;

    let (code, out, _) = cli.run(&["secrets", "list", "--json", "--config", config], None);
    check(code == 0, "list --json")?;
    let rows: Value = serde_json::from_str(&out)?;
    check(rows.as_array().map(Vec::len) == Some(2), &out)?;

    // Names only in the data dir.
    check(
        dir_contains(&cli.data_dir, value.as_bytes())?.is_none(),
        "the data dir never holds the value",
    )?;

    let (code, out, err) = cli.run(&["secrets", "delete", "github-token"], None);
    check(code == 0, format!("delete: {err}"))?;
    check(out.contains("deleted github-token"), &out)?;
    check(
        secret_tool_lookup(&cli.service, "github-token").is_none(),
        "entry gone from the keychain",
    )?;
    let (code, _, err) = cli.run(&["secrets", "delete", "github-token"], None);
    check(
        code == 1 && err.contains("no secret named github-token"),
        &err,
    )?;
    let (_, out, _) = cli.run(&["secrets", "list", "--config", config], None);
    check(out.contains("github-token\tmissing"), &out)?;

    let (code, _, err) = cli.run(&["secrets", "set", "bad name"], Some("x"));
    check(code == 2 && err.contains("not a valid secret name"), &err)?;
    let (code, _, err) = cli.run(&["secrets", "set", "empty"], Some("\n"));
    check(code == 1 && err.contains("empty"), &err)?;
    Ok(())
}

fn no_keychain_one_line() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let out = Command::new(BIN)
        .args(["secrets", "set", "x", "--data-dir"])
        .arg(&data)
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env_remove("DISPLAY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            // The command may give up before reading stdin; its exit status is checked below.
            let _ = c.stdin.take().unwrap().write_all(b"value-123");
            c.wait_with_output()
        })?;
    let err = String::from_utf8_lossy(&out.stderr);
    check(out.status.code() == Some(1), format!("exit 1: {err}"))?;
    check(
        err.trim_end().lines().count() == 1,
        format!("one line: {err}"),
    )?;
    check(
        err.contains("gnome-keyring") && err.contains("never falls back"),
        format!("says what to install: {err}"),
    )?;
    check(
        !data.exists(),
        "nothing written when the keychain is missing",
    )?;
    Ok(())
}

/// The first file under `dir` that contains `needle`.
fn dir_contains(dir: &Path, needle: &[u8]) -> std::io::Result<Option<PathBuf>> {
    if !dir.exists() {
        return Ok(None);
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            if let Some(hit) = dir_contains(&p, needle)? {
                return Ok(Some(hit));
            }
        } else if contains(&std::fs::read(&p)?, needle) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `mcp-broker serve --headless` on a free port; SIGTERM on drop.
struct Broker {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Broker {
    fn start(
        config: &Path,
        data_dir: &Path,
        service: &str,
        log: PathBuf,
    ) -> Result<Broker, Failed> {
        let mut child = Command::new(BIN)
            .args(["serve", "--headless", "--port", "0", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .env(mcp_broker::vault::SERVICE_ENV, service)
            .env("MCP_BROKER_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| format!("broker did not start; log: {}", read_lossy(&log)))?;
        let base = line
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        Ok(Broker { child, base, log })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn read_lossy(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

/// The person approving on a broker's headless consent page: opens the authorization
/// URL, submits Approve, and returns where the broker sends the browser.
async fn approve(
    http: &reqwest::Client,
    base: &str,
    authorize: url::Url,
) -> Result<String, Failed> {
    approve_as(http, base, authorize, None).await
}

/// [`approve`], choosing `account` when the consent page asks which one.
async fn approve_as(
    http: &reqwest::Client,
    base: &str,
    authorize: url::Url,
    account: Option<&str>,
) -> Result<String, Failed> {
    let page = http.get(authorize).send().await?.text().await?;
    let consent_id = between(&page, "name=\"consent_id\" value=\"", "\"")
        .ok_or_else(|| format!("no consent form: {page}"))?;
    let csrf = between(&page, "name=\"csrf_token\" value=\"", "\"").ok_or("no csrf")?;
    let res = http
        .post(format!("{base}/authorize/consent"))
        .header("origin", base)
        .form(&[
            ("consent_id", consent_id),
            ("csrf_token", csrf),
            ("decision", "approve"),
            ("account", account.unwrap_or("")),
        ])
        .send()
        .await?;
    Ok(res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("no redirect after approval")?
        .to_owned())
}

/// The OAuth sign-in a client does, approving on the headless consent page; returns an
/// access token for `/mcp/UPSTREAM`.
async fn sign_in(http: &reqwest::Client, base: &str, upstream: &str) -> Result<String, Failed> {
    sign_in_as(http, base, upstream, None).await
}

/// [`sign_in`], choosing `account` at consent.
async fn sign_in_as(
    http: &reqwest::Client,
    base: &str,
    upstream: &str,
    account: Option<&str>,
) -> Result<String, Failed> {
    let redirect = "http://127.0.0.1:9/callback";
    let reg: Value = http
        .post(format!("{base}/register"))
        .json(&json!({
            "client_name": "keychain test",
            "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }))
        .send()
        .await?
        .json()
        .await?;
    let client_id = reg["client_id"].as_str().ok_or("no client_id")?.to_owned();
    let verifier = random_hex(64);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let resource = format!("{base}/mcp/{upstream}");
    let url = url::Url::parse_with_params(
        &format!("{base}/authorize"),
        [
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", redirect),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "st-1"),
            ("resource", &resource),
        ],
    )?;
    let location = url::Url::parse(&approve_as(http, base, url, account).await?)?;
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or("no code")?;
    let tok: Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", &client_id),
            ("code_verifier", &verifier),
            ("resource", &resource),
        ])
        .send()
        .await?
        .json()
        .await?;
    Ok(tok["access_token"]
        .as_str()
        .ok_or_else(|| format!("no access token: {tok}"))?
        .to_owned())
}

/// One MCP session as a client sees it.
struct Mcp<'a> {
    http: &'a reqwest::Client,
    url: String,
    token: String,
    sid: Option<String>,
    next_id: i64,
}

impl<'a> Mcp<'a> {
    fn new(http: &'a reqwest::Client, base: &str, upstream: &str, token: &str) -> Mcp<'a> {
        Mcp {
            http,
            url: format!("{base}/mcp/{upstream}"),
            token: token.to_owned(),
            sid: None,
            next_id: 1,
        }
    }

    async fn post(&mut self, body: Value) -> Result<Value, Failed> {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json")
            .json(&body);
        if let Some(sid) = &self.sid {
            req = req
                .header("mcp-session-id", sid)
                .header("mcp-protocol-version", "2025-06-18");
        }
        let res = req.send().await?;
        if let Some(sid) = res.headers().get("mcp-session-id") {
            self.sid = Some(sid.to_str()?.to_owned());
        }
        let text = res.text().await?;
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value, Failed> {
        let id = self.next_id;
        self.next_id += 1;
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    /// initialize + notifications/initialized; returns the initialize answer.
    async fn open(&mut self) -> Result<Value, Failed> {
        let init = self
            .request(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "keychain-test", "version": "1"}}),
            )
            .await?;
        if init.get("result").is_some() {
            self.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .await?;
        }
        Ok(init)
    }

    async fn tool_text(&mut self, name: &str, args: Value) -> Result<String, Failed> {
        let r = self
            .request("tools/call", json!({"name": name, "arguments": args}))
            .await?;
        Ok(r["result"]["content"][0]["text"]
            .as_str()
            .ok_or_else(|| format!("no tool result: {r}"))?
            .to_owned())
    }
}

/// A remote MCP upstream that records the `Authorization` header of every request.
async fn header_recorder() -> Result<(String, Arc<Mutex<Vec<String>>>), Failed> {
    use axum::http::HeaderMap;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen2.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                seen.lock().unwrap().push(auth.clone());
                let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let result = match msg["method"].as_str() {
                    Some("initialize") => json!({"protocolVersion": "2025-06-18",
                        "capabilities": {"tools": {}}, "serverInfo": {"name": "rec", "version": "1"}}),
                    _ => json!({"content": [{"type": "text", "text": "ok"}]}),
                };
                if msg.get("id").is_none() {
                    return (axum::http::StatusCode::ACCEPTED, String::new());
                }
                (
                    axum::http::StatusCode::OK,
                    json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}).to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/mcp"), seen))
}

fn python() -> String {
    std::env::var("MCP_BROKER_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn upstreams_receive_secrets() -> Result<(), Failed> {
    tokio::runtime::Runtime::new()?.block_on(upstreams_receive_secrets_async())
}

async fn upstreams_receive_secrets_async() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let cli = Cli::in_dir(tmp.path());
    let gh_value = format!("ghp-{}", random_hex(32));
    let linear_value = format!("lin-{}", random_hex(32));
    let fixture = ENV_UPSTREAM;
    let (remote_url, seen) = header_recorder().await?;
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[servers.envy]
command = "{py}"
args = ["{fixture}"]
env = {{ GITHUB_TOKEN = {{ secret = "gh-token" }}, PLAIN = "plain-value" }}

[servers.other]
command = "{py}"
args = ["{fixture}"]

[servers.needs-missing]
command = "{py}"
args = ["{fixture}"]
env = {{ K = {{ secret = "not-set-anywhere" }} }}

[servers.remote]
url = "{remote_url}"
headers = {{ Authorization = {{ secret = "linear", prefix = "Bearer " }} }}
"#,
            py = python()
        ),
    )?;
    for (name, value) in [("gh-token", &gh_value), ("linear", &linear_value)] {
        let (code, _, err) = cli.run(&["secrets", "set", name], Some(value));
        check(code == 0, format!("secrets set {name}: {err}"))?;
    }

    let broker = Broker::start(
        &config,
        &cli.data_dir,
        &cli.service,
        tmp.path().join("broker.log"),
    )?;
    let http = http();
    let base = broker.base.clone();

    // The stdio upstream gets its secret, and its literal value, in its environment.
    let tok = sign_in(&http, &base, "envy").await?;
    let mut envy = Mcp::new(&http, &base, "envy", &tok);
    let init = envy.open().await?;
    check(init.get("result").is_some(), format!("initialize: {init}"))?;
    check(
        envy.tool_text("env", json!({"name": "GITHUB_TOKEN"}))
            .await?
            == gh_value,
        "the upstream sees GITHUB_TOKEN from the keychain",
    )?;
    check(
        envy.tool_text("env", json!({"name": "PLAIN"})).await? == "plain-value",
        "literal env values still work",
    )?;
    let envy_env: Value = serde_json::from_str(&envy.tool_text("environ", json!({})).await?)?;
    let envy_pid = envy_env["pid"].as_i64().ok_or("pid")?;
    // Positive control for the scan below: the bytes are found where they must be.
    check(
        contains(
            &std::fs::read(format!("/proc/{envy_pid}/environ"))?,
            gh_value.as_bytes(),
        ),
        "the scan finds the secret in the child that should have it",
    )?;

    // Another upstream's child does not get it.
    let tok_other = sign_in(&http, &base, "other").await?;
    let mut other = Mcp::new(&http, &base, "other", &tok_other);
    check(
        other.open().await?.get("result").is_some(),
        "other initializes",
    )?;
    let other_env = other.tool_text("environ", json!({})).await?;
    let other_pid = serde_json::from_str::<Value>(&other_env)?["pid"]
        .as_i64()
        .ok_or("pid")?;
    let other_proc = std::fs::read(format!("/proc/{other_pid}/environ"))?;
    for v in [&gh_value, &linear_value] {
        check(
            !other_env.contains(v.as_str()) && !contains(&other_proc, v.as_bytes()),
            "another upstream's environment has no secret",
        )?;
    }

    // The remote upstream gets its header, prefix included.
    let tok_remote = sign_in(&http, &base, "remote").await?;
    let mut remote = Mcp::new(&http, &base, "remote", &tok_remote);
    let init = remote.open().await?;
    check(
        init.get("result").is_some(),
        format!("remote initialize: {init}"),
    )?;
    check(
        remote.tool_text("anything", json!({})).await? == "ok",
        "remote tool call",
    )?;
    {
        let seen = seen.lock().unwrap();
        check(!seen.is_empty(), "the remote upstream was called")?;
        check(
            seen.iter().all(|h| *h == format!("Bearer {linear_value}")),
            "every request to the remote carries Bearer + the keychain value",
        )?;
    }

    // A missing secret fails that upstream's start, with the name and the command to fix it.
    let tok_missing = sign_in(&http, &base, "needs-missing").await?;
    let mut missing = Mcp::new(&http, &base, "needs-missing", &tok_missing);
    let err = missing.open().await?;
    let message = err["error"]["message"].as_str().unwrap_or("").to_owned();
    check(
        message.contains("\"not-set-anywhere\"")
            && message.contains("mcp-broker secrets set not-set-anywhere"),
        format!("clear error naming the secret and the command: {err}"),
    )?;
    // ... and the others keep working.
    check(
        envy.tool_text("env", json!({"name": "GITHUB_TOKEN"}))
            .await?
            == gh_value,
        "envy still works after another upstream failed",
    )?;

    // Setting the missing secret while the broker runs: the next session picks it up.
    let late = format!("late-{}", random_hex(16));
    let (code, _, err) = cli.run(&["secrets", "set", "not-set-anywhere"], Some(&late));
    check(code == 0, err)?;
    let mut missing = Mcp::new(&http, &base, "needs-missing", &tok_missing);
    check(
        missing.open().await?.get("result").is_some(),
        "starts once set",
    )?;
    check(
        missing.tool_text("env", json!({"name": "K"})).await? == late,
        "gets the newly set value",
    )?;

    // Deleting a secret: the running session keeps its child, a new session fails.
    let (code, _, err) = cli.run(&["secrets", "delete", "gh-token"], None);
    check(code == 0, err)?;
    let mut envy2 = Mcp::new(&http, &base, "envy", &tok);
    let err = envy2.open().await?;
    check(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("mcp-broker secrets set gh-token")),
        format!("after delete: {err}"),
    )?;

    let log = broker.log.clone();
    drop(broker); // SIGTERM: flushes the database and the logs.

    // Nothing secret in the data dir (SQLite files, upstream logs) or the broker's log.
    check(
        cli.data_dir.join("broker.db").exists(),
        "the data dir was used",
    )?;
    check(
        cli.data_dir.join("logs").join("envy.log").exists(),
        "upstream logs are in the data dir",
    )?;
    let log_text = read_lossy(&log);
    check(
        log_text.contains("DEBUG") || log_text.contains("INFO"),
        "the broker log was written",
    )?;
    for v in [&gh_value, &linear_value, &late] {
        if let Some(hit) = dir_contains(&cli.data_dir, v.as_bytes())? {
            return Err(format!("secret bytes found in {}", hit.display()).into());
        }
        check(
            !log_text.contains(v.as_str()),
            "secret bytes in the broker log",
        )?;
    }
    Ok(())
}

fn upstream_oauth() -> Result<(), Failed> {
    tokio::runtime::Runtime::new()?.block_on(upstream_oauth_async())
}

fn upstream_oauth_per_account() -> Result<(), Failed> {
    tokio::runtime::Runtime::new()?.block_on(upstream_oauth_per_account_async())
}

/// Starts `mcp-broker upstream login ARGS` and reads the authorization URL it prints.
fn start_login(service: &str, args: &[&str]) -> Result<(Child, String), Failed> {
    let mut login = Command::new(BIN)
        .args(["upstream", "login"])
        .args(args)
        .env(mcp_broker::vault::SERVICE_ENV, service)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(login.stdout.take().unwrap()).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("http") => {
                // Keep reading: a closed pipe would fail the login's later output.
                std::thread::spawn(move || lines.for_each(drop));
                return Ok((login, l));
            }
            Some(Ok(_)) => continue,
            _ => {
                let out = login.wait_with_output()?;
                return Err(format!(
                    "login printed no URL: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
        }
    }
}

/// Runs `mcp-broker upstream login|logout ARGS` against broker A; for a login, the test
/// approves at `b_base` as the person in the browser and follows the callback.
async fn upstream_cli(
    http: &reqwest::Client,
    b_base: &str,
    service: &str,
    args: &[&str],
) -> Result<(), Failed> {
    if args[1] != "login" {
        let out = Command::new(BIN)
            .args(args)
            .env(mcp_broker::vault::SERVICE_ENV, service)
            .output()?;
        return check(
            out.status.success(),
            format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)),
        );
    }
    let (login, authorize_url) = start_login(service, &args[2..])?;
    let callback = approve(http, b_base, url::Url::parse(&authorize_url)?).await?;
    let r = http.get(&callback).send().await?;
    check(r.status() == 200, format!("callback: {}", r.status()))?;
    let out = login.wait_with_output()?;
    check(
        out.status.success(),
        format!("login exit: {}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// An upstream with two accounts that each sign in with OAuth (issue 15): `upstream login
/// NAME --account A` stores that account's tokens under its own keychain entry; a grant
/// on the other account still needs sign-in and is told which; signing one account out
/// fails only the grants on that account.
async fn upstream_oauth_per_account_async() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let config_b = tmp.path().join("b.toml");
    std::fs::write(
        &config_b,
        format!(
            "[servers.envy]\ncommand = \"{}\"\nargs = [\"{ENV_UPSTREAM}\"]\nenv = {{ PLAIN = \"from-b\" }}\n",
            python()
        ),
    )?;
    let b = Broker::start(
        &config_b,
        &tmp.path().join("b-data"),
        &test_service(),
        tmp.path().join("b.log"),
    )?;
    let config_a = tmp.path().join("a.toml");
    std::fs::write(
        &config_a,
        format!(
            "[servers.protected]\nurl = \"{}/mcp/envy\"\n[servers.protected.accounts.acme]\n[servers.protected.accounts.globex]\n",
            b.base
        ),
    )?;
    let service = test_service();
    let a = Broker::start(
        &config_a,
        &tmp.path().join("a-data"),
        &service,
        tmp.path().join("a.log"),
    )?;
    let port_a = a.base.rsplit(':').next().unwrap().to_owned();
    let http = http();
    let acme_tok = sign_in_as(&http, &a.base, "protected", Some("acme")).await?;
    let globex_tok = sign_in_as(&http, &a.base, "protected", Some("globex")).await?;

    upstream_cli(
        &http,
        &b.base,
        &service,
        &[
            "upstream",
            "login",
            "protected",
            "--account",
            "acme",
            "--no-browser",
            "--port",
            &port_a,
        ],
    )
    .await?;
    check(
        stored_tokens(&service, "protected:acme").is_some(),
        "acme's tokens under oauth:protected:acme",
    )?;
    check(
        stored_tokens(&service, "protected").is_none()
            && stored_tokens(&service, "protected:globex").is_none(),
        "no other account signed in",
    )?;

    let mut acme = Mcp::new(&http, &a.base, "protected", &acme_tok);
    let init = acme.open().await?;
    check(init.get("result").is_some(), format!("acme: {init}"))?;
    check(
        acme.tool_text("env", json!({"name": "PLAIN"})).await? == "from-b",
        "a grant on acme reaches the upstream",
    )?;
    let mut globex = Mcp::new(&http, &a.base, "protected", &globex_tok);
    let refused = globex.open().await?;
    check(
        refused["error"]["message"].as_str().is_some_and(|m| {
            m.contains("protected (account globex) needs sign-in")
                && m.contains("upstream login protected --account globex")
        }),
        format!("globex, not signed in: {refused}"),
    )?;

    upstream_cli(
        &http,
        &b.base,
        &service,
        &[
            "upstream",
            "logout",
            "protected",
            "--account",
            "acme",
            "--port",
            &port_a,
        ],
    )
    .await?;
    check(
        stored_tokens(&service, "protected:acme").is_none(),
        "acme's tokens deleted",
    )?;
    let after = acme
        .request(
            "tools/call",
            json!({"name": "env", "arguments": {"name": "PLAIN"}}),
        )
        .await?;
    check(
        after["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("protected (account acme) needs sign-in")),
        format!("acme after its sign-out: {after}"),
    )?;
    Ok(())
}

fn stored_tokens(service: &str, upstream: &str) -> Option<Value> {
    secret_tool_lookup(service, &format!("oauth:{upstream}"))
        .and_then(|s| serde_json::from_str(&s).ok())
}

/// A second broker process protects an upstream; the first has it as a remote upstream,
/// signs in to it through `mcp-broker upstream login` (the test approves the second
/// broker's consent page), keeps the tokens in the keychain, refreshes them when they
/// expire, and a client's calls through the first broker keep working; after `upstream
/// logout` the next call says that sign-in is needed.
async fn upstream_oauth_async() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let fixture = ENV_UPSTREAM;
    // Broker B: the protected upstream, with 4-second access tokens.
    let config_b = tmp.path().join("b.toml");
    std::fs::write(
        &config_b,
        format!(
            "[broker]\naccess_token_ttl_secs = 4\n[servers.envy]\ncommand = \"{}\"\nargs = [\"{fixture}\"]\nenv = {{ PLAIN = \"from-b\" }}\n",
            python()
        ),
    )?;
    let b = Broker::start(
        &config_b,
        &tmp.path().join("b-data"),
        &test_service(),
        tmp.path().join("b.log"),
    )?;
    // Broker A: has B's upstream as a remote upstream.
    let config_a = tmp.path().join("a.toml");
    std::fs::write(
        &config_a,
        format!("[servers.protected]\nurl = \"{}/mcp/envy\"\n", b.base),
    )?;
    let service = test_service();
    let data_a = tmp.path().join("a-data");
    let a = Broker::start(&config_a, &data_a, &service, tmp.path().join("a.log"))?;
    let port_a = a.base.rsplit(':').next().unwrap().to_owned();
    let http = http();

    // A client of broker A.
    let tok = sign_in(&http, &a.base, "protected").await?;
    let mut client = Mcp::new(&http, &a.base, "protected", &tok);
    let before = client.open().await?;
    check(
        before["error"]["message"].as_str().is_some_and(|m| {
            m.contains("needs sign-in") && m.contains("mcp-broker upstream login protected")
        }),
        format!("before sign-in: {before}"),
    )?;

    // `upstream login`, with the test as the person in the browser.
    let (login, authorize_url) =
        start_login(&service, &["protected", "--no-browser", "--port", &port_a])?;
    let au = url::Url::parse(&authorize_url)?;
    let q: std::collections::HashMap<String, String> = au.query_pairs().into_owned().collect();
    check(
        au.as_str().starts_with(&format!("{}/authorize", b.base)),
        "goes to B's authorization endpoint",
    )?;
    check(
        q.get("code_challenge_method").map(String::as_str) == Some("S256"),
        "PKCE S256",
    )?;
    check(
        q.get("resource") == Some(&format!("{}/mcp/envy", b.base)),
        "resource parameter",
    )?;
    check(
        q.get("redirect_uri") == Some(&format!("{}/upstream-callback/protected", a.base)),
        "loopback callback on broker A",
    )?;
    let callback = approve(&http, &b.base, au.clone()).await?;
    check(
        callback.starts_with(&format!("{}/upstream-callback/protected?", a.base)),
        &callback,
    )?;
    // A replayed or forged state is refused.
    let forged = callback.replace("state=", "state=x");
    let r = http.get(&forged).send().await?;
    check(r.status() == 400, "forged state refused")?;
    let r = http.get(&callback).send().await?;
    let status = r.status();
    let body = r.text().await?;
    check(
        status == 200 && body.contains("Signed in to protected"),
        format!("callback: {status} {body}"),
    )?;
    let out = login.wait_with_output()?;
    check(
        out.status.success(),
        format!("login exit: {}", String::from_utf8_lossy(&out.stderr)),
    )?;

    // The tokens are in the keychain.
    let t1 = stored_tokens(&service, "protected").ok_or("no tokens in the keychain")?;
    let access1 = t1["access_token"].as_str().ok_or("access")?.to_owned();
    let refresh1 = t1["refresh_token"].as_str().ok_or("refresh")?.to_owned();

    // The client's session works now.
    let mut client = Mcp::new(&http, &a.base, "protected", &tok);
    let init = client.open().await?;
    check(
        init.get("result").is_some(),
        format!("initialize after sign-in: {init}"),
    )?;
    check(
        client.tool_text("env", json!({"name": "PLAIN"})).await? == "from-b",
        "tools/call through A to B",
    )?;

    // Past the 4-second lifetime: refreshed, and the same session keeps working.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    check(
        client.tool_text("env", json!({"name": "PLAIN"})).await? == "from-b",
        "tools/call after expiry",
    )?;
    let t2 = stored_tokens(&service, "protected").ok_or("tokens gone")?;
    check(
        t2["access_token"].as_str() != Some(access1.as_str()),
        "a new access token was stored",
    )?;
    check(
        t2["refresh_token"].as_str() != Some(refresh1.as_str()),
        "the rotated refresh token was stored",
    )?;
    // Three sessions call at once right after the next expiry: one refresh only. B
    // rotates refresh tokens and revokes the grant when one is replayed, so a second,
    // racing refresh would break every session.
    let mut c2 = Mcp::new(&http, &a.base, "protected", &tok);
    let mut c3 = Mcp::new(&http, &a.base, "protected", &tok);
    check(c2.open().await?.get("result").is_some(), "second session")?;
    check(c3.open().await?.get("result").is_some(), "third session")?;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let arg = json!({"name": "PLAIN"});
    let (r1, r2, r3) = tokio::join!(
        client.tool_text("env", arg.clone()),
        c2.tool_text("env", arg.clone()),
        c3.tool_text("env", arg.clone())
    );
    check(
        r1? == "from-b" && r2? == "from-b" && r3? == "from-b",
        "concurrent calls across a refresh",
    )?;
    check(
        client.tool_text("env", arg).await? == "from-b",
        "still working after the concurrent refresh",
    )?;
    let t3 = stored_tokens(&service, "protected").ok_or("tokens gone")?;

    // Logout: revoked at B, deleted from the keychain; the next call asks for sign-in.
    let out = Command::new(BIN)
        .args(["upstream", "logout", "protected", "--port", &port_a])
        .env(mcp_broker::vault::SERVICE_ENV, &service)
        .output()?;
    check(
        out.status.success(),
        format!("logout: {}", String::from_utf8_lossy(&out.stderr)),
    )?;
    check(
        stored_tokens(&service, "protected").is_none(),
        "tokens deleted from the keychain",
    )?;
    let after = client
        .request(
            "tools/call",
            json!({"name": "env", "arguments": {"name": "PLAIN"}}),
        )
        .await?;
    check(
        after["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("needs sign-in")),
        format!("after logout: {after}"),
    )?;
    // The revoked refresh token no longer works at B.
    let r = http
        .post(format!("{}/token", b.base))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t3["refresh_token"].as_str().unwrap_or("")),
            ("client_id", t3["client_id"].as_str().unwrap_or("")),
        ])
        .send()
        .await?;
    check(
        r.status().is_client_error(),
        format!(
            "the refresh token still works at B after logout: {}",
            r.status()
        ),
    )?;

    // No upstream token in A's data dir or log, nor in anything the client saw.
    let log = a.log.clone();
    drop(a);
    drop(b);
    let log_text = read_lossy(&log);
    for t in [&t1, &t2, &t3] {
        for k in ["access_token", "refresh_token"] {
            let v = t[k].as_str().unwrap_or("");
            check(!v.is_empty(), "token present")?;
            if let Some(hit) = dir_contains(&data_a, v.as_bytes())? {
                return Err(format!("upstream token found in {}", hit.display()).into());
            }
            check(!log_text.contains(v), "upstream token in broker A's log")?;
        }
    }
    Ok(())
}

fn client_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clients/import")
        .join(name)
}

/// What one import from a fixture must have done.
struct Expected<'a> {
    app: &'a str,
    fixture: &'a str,
    /// The broker's servers afterwards, in the configuration's (sorted) order.
    upstreams: &'a [&'a str],
    /// (keychain entry, the plaintext value the fixture held).
    moved: &'a [(&'a str, &'a str)],
    /// (the client's name, the broker's name) of each imported entry.
    renamed: &'a [(&'a str, &'a str)],
}

/// `clients import APP --yes` on a copy of the fixture with a first-start broker (no
/// config file): every plaintext key is in the keychain and in no file (client file,
/// its backup, config.toml, data dir) nor the output; the client's entries run through
/// the broker; everything else in the client's file is as it was.
fn import_case(x: &Expected) -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let cli = Cli::in_dir(tmp.path());
    let client_file = tmp.path().join(x.fixture);
    std::fs::copy(client_fixture(x.fixture), &client_file)?;
    let original: Value = serde_json::from_slice(&std::fs::read(&client_file)?)?;
    let config = tmp.path().join("broker").join("config.toml");
    let import = || {
        cli.run(
            &[
                "clients",
                "import",
                x.app,
                "--yes",
                "--config",
                config.to_str().unwrap(),
                "--client-config",
                client_file.to_str().unwrap(),
            ],
            None,
        )
    };
    let (code, out, err) = import();
    check(code == 0, format!("import failed: {out}\n{err}"))?;

    // The keychain has each value, exactly.
    for (name, value) in x.moved {
        check(
            secret_tool_lookup(&cli.service, name).as_deref() == Some(*value),
            format!("{name} is in the keychain"),
        )?;
    }
    // ... and no file has it any more.
    let backup = tmp.path().join(format!("{}.mcp-broker.bak", x.fixture));
    check(backup.exists(), "a backup was written")?;
    for (_, value) in x.moved {
        for f in [&client_file, &backup, &config] {
            check(
                !contains(&std::fs::read(f)?, value.as_bytes()),
                format!("plaintext key left in {}", f.display()),
            )?;
        }
        check(
            dir_contains(&cli.data_dir, value.as_bytes())?.is_none(),
            "plaintext key in the data dir",
        )?;
        check(
            !out.contains(value) && !err.contains(value),
            "plaintext key printed",
        )?;
    }

    // The broker's configuration has the servers, reading the keychain entries.
    let c = mcp_broker::config::load(&config)?;
    let names: Vec<&str> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
    check(names == x.upstreams, format!("upstreams: {names:?}"))?;
    let refs: Vec<String> = c
        .upstreams
        .iter()
        .flat_map(|u| u.secret_refs().into_iter().map(|(s, _)| s.to_owned()))
        .collect();
    for (name, _) in x.moved {
        check(refs.iter().any(|r| r == name), format!("{name} referenced"))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config)?.permissions().mode() & 0o777;
        check(mode == 0o600, format!("config.toml mode {mode:o}"))?;
    }

    // The client's entries go through the broker; the rest of its file is as it was.
    let after: Value = serde_json::from_slice(&std::fs::read(&client_file)?)?;
    for (k, v) in original.as_object().unwrap() {
        if k != "mcpServers" {
            check(after.get(k) == Some(v), format!("key {k} kept"))?;
        }
    }
    let servers = after["mcpServers"].as_object().ok_or("mcpServers")?;
    for (old, new) in x.renamed {
        check(
            old == new || !servers.contains_key(*old),
            format!("{old} renamed"),
        )?;
        let e = &servers[*new];
        let ok = match x.app {
            "claude-desktop" => {
                e["command"]
                    .as_str()
                    .is_some_and(|c| c.ends_with("mcp-broker"))
                    && e["args"][0] == "connect"
                    && e["args"][1] == *new
                    && e["args"][2] == "--data-dir"
            }
            "claude-code" => {
                *e == json!({"type": "http", "url": format!("http://127.0.0.1:7391/mcp/{new}")})
            }
            _ => *e == json!({"url": format!("http://127.0.0.1:7391/mcp/{new}")}),
        };
        check(ok, format!("{new}'s entry runs through the broker: {e}"))?;
    }

    // `secrets list` shows them as stored and where they are used.
    let (code, out, _) = cli.run(
        &["secrets", "list", "--config", config.to_str().unwrap()],
        None,
    );
    check(code == 0, &out)?;
    for (name, _) in x.moved {
        check(
            out.contains(&format!("{name}\tstored\t")),
            format!("list: {out}"),
        )?;
    }

    // Importing again finds nothing left to import, and writes nothing.
    let before = std::fs::read(&client_file)?;
    let (code, out, err) = import();
    check(
        code == 0 && out.contains("nothing to import"),
        format!("second import: {out}{err}"),
    )?;
    check(
        std::fs::read(&client_file)? == before,
        "second import wrote",
    )?;
    Ok(())
}

fn import_claude_desktop() -> Result<(), Failed> {
    import_case(&Expected {
        app: "claude-desktop",
        fixture: "claude_desktop_config.json",
        upstreams: &["brave-search", "filesystem", "github"],
        moved: &[
            (
                "github.GITHUB_PERSONAL_ACCESS_TOKEN",
                "ghp_FixtureDesktop0a1b2c3d4e5f6a7b8c9d0e1f2",
            ),
            (
                "brave-search.BRAVE_API_KEY",
                "BSAfixture-desktop-brave-9f8e7d6c5b4a",
            ),
        ],
        renamed: &[
            ("github", "github"),
            ("filesystem", "filesystem"),
            ("Brave_Search", "brave-search"),
        ],
    })
}

fn import_claude_code() -> Result<(), Failed> {
    import_case(&Expected {
        app: "claude-code",
        fixture: "claude.json",
        upstreams: &["notion", "playwright", "sentry"],
        moved: &[
            // The scheme stays in config.toml as the prefix; the keychain has the token.
            (
                "sentry.Authorization",
                "sntrys_fixtureCode_7c6b5a4f3e2d1c0b9a8f",
            ),
            (
                "notion.NOTION_TOKEN",
                "ntn_fixtureCode_0123456789abcdefghij",
            ),
        ],
        renamed: &[
            ("sentry", "sentry"),
            ("notion", "notion"),
            ("playwright", "playwright"),
        ],
    })
}

fn import_cursor() -> Result<(), Failed> {
    import_case(&Expected {
        app: "cursor",
        fixture: "cursor-mcp.json",
        upstreams: &["linear", "stripe", "time"],
        moved: &[
            ("linear.X-Api-Key", "lin_api_fixtureCursor0123456789abcdef"),
            (
                "stripe.STRIPE_SECRET_KEY",
                "sk_test_fixtureCursor51Habcdefghij0123",
            ),
        ],
        renamed: &[("linear", "linear"), ("stripe", "stripe"), ("time", "time")],
    })
}

/// Without a keychain, the import is refused before anything is written: the client's
/// file, the broker's configuration and the data dir are as they were.
fn import_without_keychain() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let client_file = tmp.path().join("claude.json");
    std::fs::copy(client_fixture("claude.json"), &client_file)?;
    let before = std::fs::read(&client_file)?;
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "# mine\n[servers.other]\ncommand = \"x\"\n")?;
    let config_before = std::fs::read(&config)?;
    let data = tmp.path().join("data");
    let out = Command::new(BIN)
        .args(["clients", "import", "claude-code", "--yes", "--config"])
        .arg(&config)
        .arg("--client-config")
        .arg(&client_file)
        .arg("--data-dir")
        .arg(&data)
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .env(mcp_broker::vault::SERVICE_ENV, test_service())
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    check(out.status.code() == Some(1), format!("exit 1: {err}"))?;
    check(
        err.contains("nothing was imported") && err.contains("never falls back"),
        format!("says why: {err}"),
    )?;
    check(
        std::fs::read(&client_file)? == before,
        "client file untouched",
    )?;
    check(std::fs::read(&config)? == config_before, "config untouched")?;
    check(
        !tmp.path().join("claude.json.mcp-broker.bak").exists(),
        "no backup written",
    )?;
    check(!data.exists(), "nothing in the data dir")?;
    Ok(())
}

fn import_then_call() -> Result<(), Failed> {
    tokio::runtime::Runtime::new()?.block_on(import_then_call_async())
}

/// A Claude Code user's stdio server with its key in plaintext: after the import the
/// broker starts it with the key from the keychain, reached at the URL the client's
/// entry now holds.
async fn import_then_call_async() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let cli = Cli::in_dir(tmp.path());
    let key = format!("sk-import-{}", random_hex(24));
    let fixture = ENV_UPSTREAM;
    let client_file = tmp.path().join("claude.json");
    std::fs::write(
        &client_file,
        serde_json::to_string_pretty(&json!({
            "mcpServers": {
                "envy": {"type": "stdio", "command": python(), "args": [fixture],
                          "env": {"SERVICE_API_KEY": key, "PLAIN": "visible"}}
            }
        }))?,
    )?;
    // A free port, so that the entry's URL and the broker agree.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port()
        .to_string();
    let config = tmp.path().join("config.toml");
    let (code, out, err) = cli.run(
        &[
            "clients",
            "import",
            "claude-code",
            "--yes",
            "--port",
            &port,
            "--config",
            config.to_str().unwrap(),
            "--client-config",
            client_file.to_str().unwrap(),
        ],
        None,
    );
    check(code == 0, format!("{out}{err}"))?;
    let after: Value = serde_json::from_slice(&std::fs::read(&client_file)?)?;
    let url = after["mcpServers"]["envy"]["url"]
        .as_str()
        .ok_or("entry has a url")?
        .to_owned();

    let mut broker = Command::new(BIN)
        .args(["serve", "--headless", "--port", &port, "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&cli.data_dir)
        .env(mcp_broker::vault::SERVICE_ENV, &cli.service)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(tmp.path().join("serve.log"))?)
        .spawn()?;
    let mut first = String::new();
    BufReader::new(broker.stdout.take().unwrap()).read_line(&mut first)?;
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .map(str::to_owned);
    let result = async {
        let base = base.ok_or_else(|| format!("broker did not start: {first:?}"))?;
        check(
            url == format!("{base}/mcp/envy"),
            format!("{url} is the broker's"),
        )?;
        let http = http();
        let tok = sign_in(&http, &base, "envy").await?;
        let mut mcp = Mcp::new(&http, &base, "envy", &tok);
        let init = mcp.open().await?;
        check(init.get("result").is_some(), format!("initialize: {init}"))?;
        check(
            mcp.tool_text("env", json!({"name": "SERVICE_API_KEY"}))
                .await?
                == key,
            "the server gets its key from the keychain",
        )?;
        check(
            mcp.tool_text("env", json!({"name": "PLAIN"})).await? == "visible",
            "plain values stay literal",
        )?;
        Ok::<(), Failed>(())
    }
    .await;
    unsafe {
        libc::kill(broker.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = broker.wait();
    result?;
    for f in [&client_file, &config] {
        check(
            !contains(&std::fs::read(f)?, key.as_bytes()),
            format!("key left in {}", f.display()),
        )?;
    }
    check(
        dir_contains(&cli.data_dir, key.as_bytes())?.is_none(),
        "key in the data dir",
    )?;
    Ok(())
}

/// On a terminal (a pty from util-linux `script`), each value is asked about: the one
/// declined stays a literal in config.toml (and still leaves the client's file), the
/// one accepted moves to the keychain.
fn import_on_a_terminal() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let cli = Cli::in_dir(tmp.path());
    let client_file = tmp.path().join("claude.json");
    std::fs::copy(client_fixture("claude.json"), &client_file)?;
    let config = tmp.path().join("config.toml");
    let command = format!(
        "{BIN} clients import claude-code --config {} --client-config {} --data-dir {}",
        config.display(),
        client_file.display(),
        cli.data_dir.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env(mcp_broker::vault::SERVICE_ENV, &cli.service)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("util-linux `script` is needed for this test: {e}"))?;
    // The servers in the plan's order: sentry's Authorization first, then notion's token.
    child.stdin.take().unwrap().write_all(b"n\ny\n")?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    check(
        out.status.success(),
        format!("import on a terminal: {text}"),
    )?;
    check(
        text.contains("Move header Authorization of sentry into the OS keychain as sentry.Authorization? [Y/n]")
            && text.contains("kept as a literal value"),
        format!("asked about sentry: {text}"),
    )?;
    check(
        text.contains(
            "Move env NOTION_TOKEN of notion into the OS keychain as notion.NOTION_TOKEN?",
        ),
        format!("asked about notion: {text}"),
    )?;
    check(
        secret_tool_lookup(&cli.service, "notion.NOTION_TOKEN").as_deref()
            == Some("ntn_fixtureCode_0123456789abcdefghij"),
        "accepted: in the keychain",
    )?;
    check(
        secret_tool_lookup(&cli.service, "sentry.Authorization").is_none(),
        "declined: not in the keychain",
    )?;
    let toml = std::fs::read_to_string(&config)?;
    check(
        toml.contains("Authorization = \"Bearer sntrys_fixtureCode_7c6b5a4f3e2d1c0b9a8f\""),
        format!("declined: literal in config.toml: {toml}"),
    )?;
    check(
        !toml.contains("ntn_fixtureCode"),
        "accepted: not in config.toml",
    )?;
    let client = std::fs::read(&client_file)?;
    check(
        !contains(&client, b"sntrys_fixtureCode") && !contains(&client, b"ntn_fixtureCode"),
        "neither value left in the client's file",
    )?;
    Ok(())
}

/// With the login keyring locked (in a D-Bus session of its own, so the other tests'
/// keyring stays unlocked) and nobody to answer the unlock prompt, the import is refused
/// with the keychain's "locked" message and every file is as it was.
fn import_with_locked_keychain() -> Result<(), Failed> {
    let tmp = tempfile::tempdir()?;
    let client_file = tmp.path().join("claude.json");
    std::fs::copy(client_fixture("claude.json"), &client_file)?;
    let before = std::fs::read(&client_file)?;
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "# mine\n")?;
    let data = tmp.path().join("data");
    // Storing one item creates the login collection; then it is locked over D-Bus. The
    // store may already find it locked: when the bus starts a daemon of its own before
    // the unlocked one has registered, that daemon's login keyring starts locked.
    let script = r#"
        set -eu
        mkdir -p "$HOME"
        eval "$(printf %s throwaway-pw | gnome-keyring-daemon --unlock --components=secrets)"
        printf v | secret-tool store --label=probe service probe username probe 2>/dev/null || true
        dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
            org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login >/dev/null
        if secret-tool lookup service probe username probe >/dev/null 2>&1; then
            echo "the collection did not lock" >&2; exit 9
        fi
        exec "$BROKER" clients import claude-code --yes --config "$CONFIG" --client-config "$CLIENT" --data-dir "$DATA"
    "#;
    let home = tmp.path().join("home");
    let mut child = Command::new("dbus-run-session")
        .args(["--", "bash", "-c", script])
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("BROKER", BIN)
        .env("CONFIG", &config)
        .env("CLIENT", &client_file)
        .env("DATA", &data)
        .env(mcp_broker::vault::SERVICE_ENV, test_service())
        // A daemon of its own, not the one the other tests use.
        .env_remove("GNOME_KEYRING_CONTROL")
        // No display: the unlock prompt cannot be shown, as on a headless machine.
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return Err("the import hung on a locked keychain".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    check(out.status.code() == Some(1), format!("exit 1: {err}"))?;
    check(
        err.contains("nothing was imported: the OS keychain is locked"),
        format!("says the keychain is locked: {err}"),
    )?;
    check(
        std::fs::read(&client_file)? == before,
        "client file untouched",
    )?;
    check(
        std::fs::read_to_string(&config)? == "# mine\n",
        "config untouched",
    )?;
    check(
        !tmp.path().join("claude.json.mcp-broker.bak").exists(),
        "no backup",
    )?;
    check(!data.exists(), "nothing in the data dir")?;
    Ok(())
}
