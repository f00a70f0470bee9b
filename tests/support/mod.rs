//! Shared test support: runs the real `mcp-broker` binary on 127.0.0.1:0 with a temp
//! config and data dir, and drives the OAuth flow over real HTTP, as a client would.
#![allow(dead_code)]

pub mod session;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-broker");

pub struct Broker {
    pub child: Child,
    pub base: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub stdout_rest: Option<std::thread::JoinHandle<()>>,
}

/// A log filter under which the broker reports its live tasks (see [`alive_tasks`]).
pub const LOG_TASKS: &str = "info,sqlx=warn,mcp_broker::proxy=debug";

impl Broker {
    /// Starts `mcp-broker serve --headless` with this config body (the `[servers]` part).
    pub fn start(config: &str) -> Broker {
        Self::start_in(tempfile::tempdir().expect("tempdir"), config, 0)
    }

    pub fn start_in(dir: tempfile::TempDir, config: &str, port: u16) -> Broker {
        Self::start_logging(dir, config, port, "info")
    }

    /// As [`Broker::start_in`], with this `MCP_BROKER_LOG` filter.
    pub fn start_logging(dir: tempfile::TempDir, config: &str, port: u16, log: &str) -> Broker {
        let cfg = dir.path().join("config.toml");
        std::fs::write(&cfg, config).expect("write config");
        let mut child = Command::new(BIN)
            .args(["serve", "--headless", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--port", &port.to_string()])
            .env("MCP_BROKER_LOG", log)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("broker.log")).expect("log"),
            ))
            .spawn()
            .expect("spawn broker");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let rest = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let log =
                    std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
                panic!("broker printed no ready line; log:\n{log}")
            });
        let base = line
            .strip_prefix("listening on ")
            .expect("ready line")
            .trim()
            .to_owned();
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        Broker {
            child,
            base,
            port,
            dir,
            stdout_rest: Some(rest),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    pub fn mcp_url(&self, name: &str) -> String {
        format!("{}/mcp/{name}", self.base)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..100 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("broker did not exit within 5 s of SIGTERM");
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli_in(&self.data_dir(), args)
    }
}

/// Runs the CLI with `args` on the data dir `data` (another process, as a person would).
pub fn cli_in(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run cli")
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it holds or `secs` pass; whether it held.
pub async fn wait_until(mut f: impl FnMut() -> bool, secs: u64) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    f()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A form POSTed to the token endpoint, as a client sends it.
pub async fn post_token<T: serde::Serialize + ?Sized>(
    c: &reqwest::Client,
    base: &str,
    form: &T,
) -> reqwest::Response {
    c.post(format!("{base}/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The code exchange of a public client.
pub async fn exchange_code(
    c: &reqwest::Client,
    base: &str,
    reg: &Registered,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    post_token(
        c,
        base,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", reg.redirect_uri.as_str()),
            ("client_id", reg.client_id.as_str()),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// A refresh request of a public client, with `resource` when given.
pub async fn refresh_public(
    c: &reqwest::Client,
    base: &str,
    client_id: &str,
    refresh_token: &str,
    resource: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client_id),
    ];
    form.extend(resource.map(|r| ("resource", r)));
    post_token(c, base, &form).await
}

pub fn pkce() -> (String, String) {
    let verifier = format!("v{}", "x".repeat(50));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

#[derive(Debug, Clone)]
pub struct Registered {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uri: String,
}

pub async fn register(c: &reqwest::Client, base: &str, method: &str) -> Registered {
    let redirect_uri = "http://127.0.0.1:4567/callback".to_owned();
    let res = c
        .post(format!("{base}/register"))
        .json(&serde_json::json!({
            "client_name": "Test <Client>",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": method,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let v: serde_json::Value = res.json().await.unwrap();
    Registered {
        client_id: v["client_id"].as_str().unwrap().to_owned(),
        client_secret: v["client_secret"].as_str().map(str::to_owned),
        redirect_uri,
    }
}

/// Pulls a hidden input's value out of the consent page.
pub fn hidden(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in page"))
        + key.len();
    html[start..].split('"').next().unwrap().to_owned()
}

pub struct Consent {
    pub consent_id: String,
    pub csrf: String,
    pub html: String,
}

pub async fn open_consent(
    c: &reqwest::Client,
    base: &str,
    reg: &Registered,
    challenge: &str,
    resource: Option<&str>,
    state: &str,
) -> Consent {
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", reg.client_id.as_str()),
        ("redirect_uri", reg.redirect_uri.as_str()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", state),
    ];
    if let Some(r) = resource {
        q.push(("resource", r));
    }
    let res = c
        .get(format!("{base}/authorize"))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "authorize should show the consent page");
    let html = res.text().await.unwrap();
    Consent {
        consent_id: hidden(&html, "consent_id"),
        csrf: hidden(&html, "csrf_token"),
        html,
    }
}

/// Submits the consent form; returns the redirect Location.
pub async fn decide(c: &reqwest::Client, base: &str, consent: &Consent, decision: &str) -> String {
    let res = c
        .post(format!("{base}/authorize/consent"))
        .header("origin", base)
        .form(&[
            ("consent_id", consent.consent_id.as_str()),
            ("csrf_token", consent.csrf.as_str()),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "consent decision should redirect");
    res.headers()["location"].to_str().unwrap().to_owned()
}

pub fn query_param(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub body: serde_json::Value,
}

/// The whole flow: register a public client, approve, exchange the code.
pub async fn authorize(c: &reqwest::Client, base: &str, upstream: &str) -> (Registered, Tokens) {
    authorize_as(c, base, upstream, "none").await
}

/// [`authorize`] for a client registered with `method` (`none`, `client_secret_basic`
/// or `client_secret_post`), authenticating at the token endpoint accordingly.
pub async fn authorize_as(
    c: &reqwest::Client,
    base: &str,
    upstream: &str,
    method: &str,
) -> (Registered, Tokens) {
    let reg = register(c, base, method).await;
    let (verifier, challenge) = pkce();
    let resource = format!("{base}/mcp/{upstream}");
    let consent = open_consent(c, base, &reg, &challenge, Some(&resource), "st").await;
    let loc = decide(c, base, &consent, "approve").await;
    let code = query_param(&loc, "code").expect("code in redirect");
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", reg.redirect_uri.as_str()),
        ("code_verifier", verifier.as_str()),
        ("resource", resource.as_str()),
    ];
    let secret = reg.client_secret.as_deref().unwrap_or_default();
    let req = c.post(format!("{base}/token"));
    let req = match method {
        "client_secret_basic" => req.basic_auth(&reg.client_id, Some(secret)),
        "client_secret_post" => {
            form.extend([
                ("client_id", reg.client_id.as_str()),
                ("client_secret", secret),
            ]);
            req
        }
        _ => {
            form.push(("client_id", reg.client_id.as_str()));
            req
        }
    };
    let res = req.form(&form).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let tokens = Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        body,
    };
    (reg, tokens)
}

/// A POST to /mcp/NAME: one that passes authentication gets 400 (no session), not 401.
/// Returns the status and the `WWW-Authenticate` header.
pub async fn mcp_status(c: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = c
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let www = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (res.status().as_u16(), www)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p)
                } else {
                    out.push(p)
                }
            }
        }
    }
    out
}

/// The broker's live task count, from its next upkeep line with `sessions` sessions
/// (logged at debug level by `mcp_broker::proxy`; see [`Broker::start_logging`]).
pub async fn alive_tasks(b: &Broker, sessions: usize) -> usize {
    let seen = b.log().matches("upkeep").count();
    let want = format!("sessions={sessions} ");
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let log = b.log();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("upkeep")).collect();
        if let Some(line) = lines
            .get(seen..)
            .and_then(|new| new.iter().rev().find(|l| strip_ansi(l).contains(&want)))
        {
            let plain = strip_ansi(line);
            return plain
                .split("tasks=")
                .nth(1)
                .and_then(|t| t.split_whitespace().next()?.parse().ok())
                .unwrap_or(usize::MAX);
        }
    }
    panic!("no upkeep line with {want}in the log")
}

/// The log carries ANSI colours (tracing's default); the counts sit between them.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
