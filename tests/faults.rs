//! Faults users meet, end to end against the real binary (issue 19): a remote upstream
//! that accepts connections and never answers, clients that give up, cancel or end
//! their session, a batch with a repeated id, envelopes that are not JSON-RPC 2.0,
//! oversized bodies, and a data dir on a disk that fills up and is freed again.
//!
//! Resources are counted from outside, in `/proc/BROKER_PID/fd`, and the fake upstream
//! counts the exchanges it holds open. Each test prints its counts before and after
//! each fault (`cargo nextest run --test faults --no-capture`).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ------------------------------------------------------------------ what is open

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    fds: usize,
    sockets: usize,
}

fn open_files(pid: u32) -> Open {
    let mut o = Open { fds: 0, sockets: 0 };
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        o.fds += 1;
        if std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")) {
            o.sockets += 1;
        }
    }
    o
}

/// Waits (up to `secs`) until the broker's open files are back to `baseline`.
async fn settles_to(pid: u32, baseline: Open, secs: u64) -> Open {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = open_files(pid);
        if now == baseline || Instant::now() > end {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client that keeps no idle connections, so the broker's socket count shows only
/// what the broker itself holds.
fn unpooled() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

// --------------------------------------------------------- a silent remote upstream

/// A Streamable HTTP upstream that answers `initialize`, `ping`, `tools/list` and every
/// notification at once, and never answers `tools/call`: it holds that connection open
/// until the broker closes it. One exchange per connection (`Connection: close`), so
/// the broker keeps no idle connection to it and its socket count is exact.
struct Silent {
    url: String,
    /// `tools/call` exchanges the broker still holds open.
    held: Arc<AtomicUsize>,
    /// Methods received, in order.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Silent {
    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
    fn seen(&self, method: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == method)
            .count()
    }
}

async fn silent_upstream() -> Silent {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let held = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (h, s) = (held.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(silent_exchange(sock, h.clone(), s.clone()));
        }
    });
    Silent { url, held, seen }
}

async fn silent_exchange(
    mut sock: tokio::net::TcpStream,
    held: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if sock.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        if sock.read_buf(&mut buf).await.unwrap_or(0) == 0 {
            return;
        }
    }
    let reply = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nconnection: close\r\nmcp-session-id: up-1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    if !head.starts_with("post ") {
        // No standalone stream; DELETE is fine.
        let status = if head.starts_with("get ") {
            "405 Method Not Allowed"
        } else {
            "200 OK"
        };
        let _ = sock.write_all(reply(status, "").as_bytes()).await;
        return;
    }
    let msg: Value = serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("").to_owned();
    seen.lock().unwrap().push(method.clone());
    let id = msg["id"].clone();
    let answer = match method.as_str() {
        "initialize" => {
            json!({"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"silent","version":"1"}})
        }
        "tools/call" => {
            held.fetch_add(1, Ordering::SeqCst);
            let mut scratch = [0u8; 256];
            while matches!(sock.read(&mut scratch).await, Ok(n) if n > 0) {}
            held.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        _ if id.is_null() => {
            let _ = sock.write_all(reply("202 Accepted", "").as_bytes()).await;
            return;
        }
        "resources/list" => {
            // An SSE answer that ends without the response.
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: text/event-stream\r\n\r\n")
                .await;
            return;
        }
        "tools/list" => json!({"tools":[{"name":"wait","inputSchema":{"type":"object"}}]}),
        _ => json!({}),
    };
    let body = json!({"jsonrpc":"2.0","id":id,"result":answer}).to_string();
    let _ = sock.write_all(reply("200 OK", &body).as_bytes()).await;
}

fn remote_config(url: &str, broker: &str) -> String {
    format!("[broker]\n{broker}\n[servers.remote]\nurl = {url:?}\n")
}

// ------------------------------------------------------------------ an MCP client

struct Mcp {
    c: reqwest::Client,
    url: String,
    token: String,
    session: Option<String>,
}

impl Mcp {
    async fn open(b: &Broker, c: reqwest::Client) -> Mcp {
        let (_, t) = authorize(&c, &b.base, "remote").await;
        Mcp {
            c,
            url: b.mcp_url("remote"),
            token: t.access,
            session: None,
        }
    }

    fn post(&self, body: &str, accept: &str) -> reqwest::RequestBuilder {
        let mut r = self
            .c
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", accept)
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_owned());
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        r
    }

    /// Posts `body`; the answer as JSON, or an SSE answer's events as a JSON array.
    async fn json(&self, body: &str) -> (u16, Value) {
        let res = self
            .post(body, "application/json, text/event-stream")
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let sse = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
        let text = res.text().await.unwrap_or_default();
        let v = if sse {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .collect()
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        (status, v)
    }

    async fn initialize(&mut self) {
        let res = self
            .post(
                r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
                "application/json, text/event-stream",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        self.session = Some(res.headers()["mcp-session-id"].to_str().unwrap().to_owned());
        let _ = res.bytes().await;
        let (status, _) = self
            .json(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        assert_eq!(status, 202);
    }

    fn call(&self, id: u64) -> String {
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"wait","arguments":{}}})
            .to_string()
    }

    async fn delete(&self) {
        let res = self
            .c
            .delete(&self.url)
            .bearer_auth(&self.token)
            .header("mcp-session-id", self.session.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
}

/// A broker in front of `up`, its open files once the OAuth flow is done (the baseline),
/// and an initialized session whose client keeps no idle connections.
async fn measured_session(up: &Silent, settings: &str) -> (Broker, Mcp, Open) {
    let config = remote_config(&up.url, settings);
    let b = Broker::start_logging(tempfile::tempdir().unwrap(), &config, 0, LOG_TASKS);
    let mut m = Mcp::open(&b, unpooled()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = open_files(b.child.id());
    m.initialize().await;
    (b, m, before)
}

// ---------------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_remote_upstream_costs_nothing_after_the_timeout() {
    const CALLS: u64 = 16;
    let up = silent_upstream().await;
    let (b, m, before) = measured_session(&up, "request_timeout_secs = 1").await;
    let pid = b.child.id();
    let tasks_idle = alive_tasks(&b, 1).await;

    let started = Instant::now();
    let bodies: Vec<String> = (1..=CALLS).map(|id| m.call(id)).collect();
    let calls: Vec<_> = bodies.iter().map(|body| m.json(body)).collect();
    let calls = futures_util::future::join_all(calls);
    // While they hang: each holds a socket to the client and one to the upstream.
    let during = async {
        wait_until(|| up.held() == CALLS as usize, 5).await;
        open_files(pid)
    };
    let (answers, during) = tokio::join!(calls, during);
    for (status, v) in &answers {
        assert_eq!(*status, 200, "{v}");
        assert_eq!(v["error"]["code"], -32001, "a timeout error: {v}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        wait_until(|| up.held() == 0, 5).await,
        "the broker still holds {} exchanges open",
        up.held()
    );
    assert!(
        wait_until(|| up.seen("notifications/cancelled") == CALLS as usize, 5).await,
        "the upstream is told of each abandoned request: {}",
        up.seen("notifications/cancelled")
    );
    let after_timeouts = settles_to(pid, before, 5).await;
    // The session survives: a remote upstream's slow call ends that call only.
    let (status, v) = m.json(r#"{"jsonrpc":"2.0","id":99,"method":"ping"}"#).await;
    assert_eq!((status, &v["id"]), (200, &json!(99)), "{v}");

    m.delete().await;
    let after_end = settles_to(pid, before, 5).await;
    let tasks_after = alive_tasks(&b, 0).await;
    eprintln!(
        "silent upstream, {CALLS} timed-out calls: broker fds/sockets before {before:?}, \
         while they hung {during:?}, after the timeouts {after_timeouts:?}, after the session ended {after_end:?} \
         (tasks: {tasks_idle} with the idle session, {tasks_after} after it ended)"
    );
    // The session's own task went with it, and nothing of the timed-out calls stayed.
    assert!(
        tasks_after < tasks_idle,
        "tasks: {tasks_idle} idle, {tasks_after} after"
    );
    assert_eq!(after_timeouts, before, "after {CALLS} timed-out calls");
    assert_eq!(after_end, before, "after the session ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_or_ends_its_session_frees_the_upstream_exchange() {
    let up = silent_upstream().await;
    // A long timeout: only the client's own doing may free anything here.
    let (b, m, before) = measured_session(&up, "request_timeout_secs = 600").await;
    let pid = b.child.id();

    // 1. The client gives up on plain-JSON answers (it closes the connection) once the
    // upstream has them.
    let gave_up: Vec<_> = (1..=8)
        .map(|id| {
            let call = m
                .post(&m.call(id), "application/json, text/event-stream")
                .send();
            tokio::spawn(call)
        })
        .collect();
    assert!(wait_until(|| up.held() == 8, 5).await, "held {}", up.held());
    for call in gave_up {
        call.abort();
    }
    assert!(
        wait_until(|| up.held() == 0, 5).await,
        "client gone: {} exchanges still open",
        up.held()
    );
    assert!(wait_until(|| up.seen("notifications/cancelled") == 8, 5).await);
    let after_leaving = settles_to(pid, before, 5).await;

    // 2. The client cancels a request whose answer streams as SSE.
    let stream = m.post(&m.call(20), "text/event-stream").send();
    let stream = tokio::spawn(async move { stream.await.unwrap().text().await });
    assert!(wait_until(|| up.held() == 1, 5).await);
    let (status, _) = m
        .json(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":20,"reason":"user"}}"#)
        .await;
    assert_eq!(status, 202);
    assert!(
        wait_until(|| up.held() == 0, 5).await,
        "cancelled: exchange still open"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), stream).await;
    assert!(ended.is_ok(), "the cancelled request's stream ends");
    // The client's own notification reaches the upstream (relayed on its own, so it may
    // land after the exchange closed); the broker adds none.
    assert!(
        wait_until(|| up.seen("notifications/cancelled") >= 9, 5).await,
        "the client's notifications/cancelled reached the upstream"
    );
    assert_eq!(up.seen("notifications/cancelled"), 9);
    let after_cancel = settles_to(pid, before, 5).await;

    // 3. More requests than the per-upstream bound, then the session ends with all of
    // them in flight: at most 32 exchanges are ever open to one upstream.
    let streams: Vec<_> = (100..140)
        .map(|id| {
            let s = m.post(&m.call(id), "text/event-stream").send();
            tokio::spawn(async move { s.await.unwrap().text().await })
        })
        .collect();
    assert!(
        wait_until(|| up.held() == 32, 5).await,
        "held {}",
        up.held()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(up.held(), 32, "the bound on open exchanges");
    m.delete().await;
    assert!(
        wait_until(|| up.held() == 0, 5).await,
        "session ended: {} exchanges still open",
        up.held()
    );
    for s in streams {
        assert!(
            tokio::time::timeout(Duration::from_secs(5), s)
                .await
                .is_ok()
        );
    }
    let after_end = settles_to(pid, before, 5).await;
    eprintln!(
        "client faults: broker fds/sockets before {before:?}, after 8 clients left {after_leaving:?}, \
         after a cancellation {after_cancel:?}, after the session ended {after_end:?}"
    );
    assert_eq!(after_leaving, before);
    assert_eq!(after_cancel, before);
    assert_eq!(after_end, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_never_waits_for_an_answer_that_cannot_come() {
    let up = silent_upstream().await;
    let (_b, m, _) = measured_session(&up, "request_timeout_secs = 600").await;

    let started = Instant::now();
    let (status, v) = m
        .json(r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":1,"method":"ping"}]"#)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 200, "{v}");
    let answers = v.as_array().expect("one answer per request");
    assert_eq!(answers.len(), 2, "{v}");
    assert!(
        answers
            .iter()
            .any(|a| a["id"] == 1 && a["result"]["tools"].is_array()),
        "{v}"
    );
    assert!(
        answers
            .iter()
            .any(|a| a["id"] == 1 && a["error"]["code"] == -32600),
        "{v}"
    );
    assert_eq!(
        up.seen("ping"),
        0,
        "the refused request never went upstream"
    );

    // An id still in flight in another POST.
    let hanging = m.post(&m.call(7), "text/event-stream").send();
    let hanging = tokio::spawn(hanging);
    assert!(wait_until(|| up.held() == 1, 5).await);
    let started = Instant::now();
    let (status, v) = m.json(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        (status, &v["id"], &v["error"]["code"]),
        (400, &json!(7), &json!(-32600)),
        "{v}"
    );
    hanging.abort();

    // An upstream answer that ends without the response: the error comes at once, not
    // at the request timeout.
    let started = Instant::now();
    let (status, v) = m
        .json(r#"{"jsonrpc":"2.0","id":8,"method":"resources/list"}"#)
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        (status, &v["id"], &v["error"]["code"]),
        (200, &json!(8), &json!(-32603)),
        "{v}"
    );
}

/// An `initialize` the remote upstream cannot take (nothing listens at its address) gets
/// the error and no session: an `Mcp-Session-Id` comes only with an InitializeResult
/// (basic/transports §Session Management), so neither the client nor the broker keeps a
/// session that can only fail. The same holds when the broker's sign-in to the upstream
/// is missing (the desktop e2e `accounts-oauth` checks that one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initialize_that_fails_opens_no_session() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let b = Broker::start(&remote_config(&url, ""));
    let m = Mcp::open(&b, unpooled()).await;
    for accept in ["application/json, text/event-stream", "application/json"] {
        let res = m
            .post(
                r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
                accept,
            )
            .send()
            .await
            .unwrap();
        let sid = res.headers().get("mcp-session-id").cloned();
        let body = res.text().await.unwrap();
        assert!(body.contains("unreachable"), "the error says why: {body}");
        assert_eq!(
            sid, None,
            "no session for a failed initialize ({accept}): {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_json_rpc_2_0_is_relayed_and_bodies_are_bounded() {
    let up = silent_upstream().await;
    let (_b, m, _) = measured_session(&up, "max_request_bytes = 100000").await;
    for body in [
        r#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#,
        r#"{"id":3,"method":"ping"}"#,
        r#"{"jsonrpc":2.0,"id":3,"method":"ping"}"#,
    ] {
        let (status, v) = m.json(body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            (&v["id"], &v["error"]["code"]),
            (&json!(3), &json!(-32600)),
            "{body}: {v}"
        );
    }
    let (status, _) = m
        .json(r#"[{"jsonrpc":"2.0","id":4,"method":"ping"},{"jsonrpc":"2.1","id":5,"method":"ping"}]"#)
        .await;
    assert_eq!(status, 400, "a batch with a bad member");
    assert_eq!(up.seen("ping"), 0, "nothing was relayed");

    let padded = |n: usize| {
        let head = r#"{"jsonrpc":"2.0","id":6,"method":"ping","params":{"pad":""#;
        let tail = r#""}}"#;
        format!("{head}{}{tail}", "x".repeat(n - head.len() - tail.len()))
    };
    let (status, v) = m.json(&padded(100_000)).await;
    assert_eq!((status, &v["id"]), (200, &json!(6)), "at the limit: {v}");
    let (status, v) = m.json(&padded(100_001)).await;
    assert_eq!(status, 413, "over the limit");
    assert_eq!(v["error"]["code"], -32600, "a JSON-RPC error body: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_request_bytes")
    );

    // The default is 4 MiB.
    let (_b, m, _) = measured_session(&up, "").await;
    let (status, _) = m.json(&padded(4 * 1024 * 1024)).await;
    assert_eq!(status, 200);
    let (status, v) = m.json(&padded(4 * 1024 * 1024 + 1)).await;
    assert_eq!((status, &v["error"]["code"]), (413, &json!(-32600)), "{v}");
}

// ------------------------------------------------------------------- a full disk

/// A small tmpfs mounted on the data dir, unmounted (and its parent removed) on drop.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(SmallDisk {
            path: path.to_owned(),
        })
    }

    /// Writes a file until the disk refuses more.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let err = loop {
            if let Err(e) = f.write_all(&chunk) {
                break e;
            }
        };
        assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

/// A stdio MCP server that writes 16 KiB to stderr for every message, and exits when
/// that fails (as many servers do).
const CHATTY: &str = r#"
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    sys.stderr.write("x" * 16384 + "\n")
    sys.stderr.flush()
    if "id" not in msg:
        continue
    result = {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "chatty", "version": "1"}} if msg.get("method") == "initialize" else {}
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"#;

/// A client registered and its consent page opened, waiting for a decision.
async fn pending_consent(c: &reqwest::Client, base: &str) -> (Registered, Consent, String) {
    let reg = register(c, base, "none").await;
    let (verifier, challenge) = pkce();
    let resource = format!("{base}/mcp/remote");
    let consent = open_consent(c, base, &reg, &challenge, Some(&resource), "st").await;
    (reg, consent, verifier)
}

async fn refresh(
    c: &reqwest::Client,
    base: &str,
    reg: &Registered,
    token: &str,
) -> reqwest::Response {
    post_token(
        c,
        base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", reg.client_id.as_str()),
        ],
    )
    .await
}

/// 503, `Retry-After`, `temporarily_unavailable`, and a description naming the disk.
async fn says_disk_full(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 503, "{what}");
    assert!(
        res.headers().contains_key("retry-after"),
        "{what}: Retry-After"
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "temporarily_unavailable", "{what}: {v}");
    assert!(
        v["error_description"].as_str().unwrap().contains("disk"),
        "{what}: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let disk = match SmallDisk::mount(&dir.path().join("data"), "8m") {
        Ok(d) => d,
        Err(why) => {
            eprintln!(
                "SKIPPED a_full_disk_refuses_writes_clearly_and_recovers_without_a_restart: \
                 cannot mount a tmpfs here (needs root): {why}"
            );
            return;
        }
    };
    let up = silent_upstream().await;
    let config = format!(
        "{}\n[servers.chatty]\ncommand = \"python3\"\nargs = [\"-c\", '''{CHATTY}''']\n",
        // It registers dozens of clients a second: more than the registration limit allows.
        remote_config(&up.url, "registration_rate = 0")
    );
    let b = Broker::start_in(dir, &config, 0);
    let pid = b.child.id();
    let c = unpooled();
    let (reg, tokens) = authorize(&c, &b.base, "remote").await;
    let (_, chatty_tokens) = authorize(&c, &b.base, "chatty").await;
    let chatty = |session| Mcp {
        c: unpooled(),
        url: b.mcp_url("chatty"),
        token: chatty_tokens.access.clone(),
        session,
    };
    let mut old_chatty = chatty(None);
    old_chatty.initialize().await;
    let mut m = Mcp {
        c: unpooled(),
        url: b.mcp_url("remote"),
        token: tokens.access.clone(),
        session: None,
    };
    m.initialize().await;
    // Consent pages opened before the disk fills, decided while it is full.
    let mut waiting = Vec::new();
    for _ in 0..12 {
        waiting.push(pending_consent(&c, &b.base).await);
    }
    // The database pool at its full size, so that counts compare like with like.
    let warm: Vec<_> = (0..8).map(|_| register(&c, &b.base, "none")).collect();
    futures_util::future::join_all(warm).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = open_files(pid);

    let filler = disk.fill();
    // A failed write may leave room that the next small ones use (SQLite reuses the WAL
    // space it had claimed), so "full" shows as: some writes still commit, then all are
    // refused. Every refusal is the clear one; nothing is a 500.
    let mut registered = 0;
    loop {
        let res = c
            .post(format!("{}/register", b.base))
            .json(&json!({"redirect_uris": ["http://127.0.0.1:4567/callback"]}))
            .send()
            .await
            .unwrap();
        if res.status() == 201 && registered < 100 {
            registered += 1;
            continue;
        }
        says_disk_full(res, "registration").await;
        break;
    }
    let decisions: Vec<_> = waiting
        .iter()
        .map(|(_, consent, _)| decide(&c, &b.base, consent, "approve"))
        .collect();
    let mut approved = 0;
    for location in futures_util::future::join_all(decisions).await {
        match query_param(&location, "error") {
            None => approved += 1,
            Some(e) => assert_eq!(e, "temporarily_unavailable", "consent: {location}"),
        }
    }
    // More refusals than the pool has connections: each may have failed a COMMIT.
    assert!(
        approved <= 12 - 4,
        "{approved} of 12 approvals committed on a full disk"
    );
    let mut refresh_token = tokens.refresh.clone();
    let res = refresh(&c, &b.base, &reg, &refresh_token).await;
    let refreshed_while_full = res.status() == 200;
    if refreshed_while_full {
        let v: Value = res.json().await.unwrap();
        refresh_token = v["refresh_token"].as_str().unwrap().to_owned();
    } else {
        says_disk_full(res, "refresh").await;
    }
    // Reads and proxying go on.
    let (status, v) = m.json(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    assert_eq!(
        (status, &v["id"]),
        (200, &json!(1)),
        "proxying while full: {v}"
    );
    let mut second = Mcp {
        session: None,
        c: unpooled(),
        ..m
    };
    second.initialize().await;
    let m = Mcp {
        session: m.session.clone(),
        c: unpooled(),
        ..second
    };
    // A stdio upstream that logs a lot: its stderr is the broker's to write, so a full
    // disk loses log lines, not the server.
    let mut new_chatty = chatty(None);
    new_chatty.initialize().await;
    for s in [&old_chatty, &new_chatty] {
        let (status, v) = s.json(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#).await;
        assert_eq!(
            (status, &v["id"]),
            (200, &json!(3)),
            "stdio while full: {v}"
        );
    }
    let listed = b.cli(&["grants", "list", "--json"]);
    assert!(
        listed.status.success(),
        "grants list while full: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    eprintln!(
        "full disk: {registered} registrations, {approved} of 12 approvals and \
         {} refresh still fit, then writes were refused",
        if refreshed_while_full { "the" } else { "no" }
    );
    let during = open_files(pid);

    std::fs::remove_file(filler).unwrap();
    // Every write works again, on every pooled connection, in the same process.
    let flows: Vec<_> = (0..8).map(|_| authorize(&c, &b.base, "remote")).collect();
    let fresh = futures_util::future::join_all(flows).await;
    let res = refresh(&c, &b.base, &reg, &refresh_token).await;
    assert_eq!(
        res.status(),
        200,
        "a refresh refused while full is no replay"
    );
    // Nothing committed was lost: the first grant, those approved while it fit, and the
    // eight made after.
    let grants: Value =
        serde_json::from_slice(&b.cli(&["grants", "list", "--json"]).stdout).unwrap();
    assert_eq!(grants.as_array().unwrap().len(), 10 + approved, "{grants}");
    let (status, _) = m.json(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(fresh.len(), 8);
    // The session opened while full ends; the one from before stays, as in the baseline.
    new_chatty.delete().await;
    let after = settles_to(pid, before, 5).await;
    eprintln!(
        "full disk: broker fds/sockets before {before:?}, while full {during:?}, after freeing {after:?}"
    );
    assert_eq!(after, before);
    assert!(
        std::fs::metadata(format!("/proc/{pid}")).is_ok(),
        "the same process"
    );
}
