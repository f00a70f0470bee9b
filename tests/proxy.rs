//! The MCP proxy end to end: the real broker binary, real HTTP, and a fake stdio
//! upstream that is this test binary re-running itself (`FAKE_MCP_UPSTREAM=1`), plus a
//! fake Streamable HTTP upstream served in-process. Covers the Streamable HTTP server
//! side, verbatim relay, server-to-client requests, progress streaming, resumption,
//! one child per session, crashing/garbage/hanging children, idle reaping, the child's
//! environment, token checks on every request and revocation ending sessions.

mod support;

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};
use support::*;

fn main() {
    if std::env::var_os("FAKE_MCP_UPSTREAM").is_some() {
        fake_upstream();
        return;
    }
    let args = Arguments::from_args();
    // Each name once. A test function left out of this list is never used, which
    // fails the build (`dead_code` under `-D warnings`), so none can be forgotten.
    macro_rules! trials {
        ($($name:ident),* $(,)?) => {
            vec![$(Trial::test(stringify!($name), $name)),*]
        };
    }
    let trials = trials![
        relays_json_and_unknown_methods_verbatim,
        session_rules_and_discover_probe,
        progress_streams_as_it_happens,
        server_to_client_request_round_trip,
        standalone_get_stream_and_resumption,
        sessions_never_share_a_child,
        crash_garbage_and_hang_end_only_that_session,
        child_environment_is_explicit_and_stderr_logged,
        revocation_ends_sessions_streams_and_children,
        idle_sessions_are_reaped_and_sigterm_ends_children,
        remote_http_upstream_gets_no_client_token,
        sessions_per_grant_are_capped,
        churn_and_faults_leave_no_children_or_open_files,
        a_server_s_own_children_end_with_its_session,
        the_child_starts_while_consent_is_shown_and_stops_on_deny,
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

fn config(extra: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    format!(
        r#"{extra}
[servers.fake]
command = {exe:?}
env = {{ FAKE_MCP_UPSTREAM = "1", FAKE_CONFIGURED = "from-config" }}

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

// ---------------------------------------------------------------- the MCP client side

struct Mcp {
    c: reqwest::Client,
    url: String,
    token: String,
    session: Option<String>,
}

enum Reply {
    Json(Value),
    Sse(Vec<(String, Value)>),
}

impl Mcp {
    async fn connect(b: &Broker, upstream: &str) -> Mcp {
        let c = http();
        let (_, t) = authorize(&c, &b.base, upstream).await;
        Mcp {
            c,
            url: b.mcp_url(upstream),
            token: t.access,
            session: None,
        }
    }

    fn req(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut r = self
            .c
            .request(method, &self.url)
            .bearer_auth(&self.token)
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        r
    }

    async fn post_raw(&self, body: &str) -> reqwest::Response {
        self.req(reqwest::Method::POST)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, body: Value) -> Reply {
        let res = self.post_raw(&body.to_string()).await;
        read_reply(res).await
    }

    async fn initialize(&mut self) -> Value {
        let res = self
            .post_raw(&json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}},"clientInfo":{"name":"t","version":"1"}}}).to_string())
            .await;
        self.session = res
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            self.session.is_some(),
            "initialize must issue Mcp-Session-Id"
        );
        let r = read_reply(res).await.response(&json!(0));
        let ack = self
            .post_raw(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        assert_eq!(ack.status(), 202);
        r
    }

    async fn call(&self, id: i64, tool: &str, args: Value) -> Value {
        self.post(json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})).await.response(&json!(id))
    }
}

impl Reply {
    fn response(self, id: &Value) -> Value {
        match self {
            Reply::Json(v) => v,
            Reply::Sse(evs) => evs
                .into_iter()
                .map(|(_, v)| v)
                .find(|v| &v["id"] == id && v.get("method").is_none())
                .unwrap_or(Value::Null),
        }
    }
}

async fn read_reply(res: reqwest::Response) -> Reply {
    let sse = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    if sse {
        let mut out = Vec::new();
        let mut s = res.bytes_stream().eventsource();
        while let Some(Ok(ev)) = s.next().await {
            if let Ok(v) = serde_json::from_str(&ev.data) {
                out.push((ev.id, v));
            }
        }
        Reply::Sse(out)
    } else {
        let text = res.text().await.unwrap();
        Reply::Json(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn text_of(result: &Value) -> String {
    result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); /proc tells the state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')),
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------- the tests

fn relays_json_and_unknown_methods_verbatim() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config(""));
        let mut m = Mcp::connect(&b, "fake").await;
        let init = m.initialize().await;
        ensure!(
            init["result"]["serverInfo"]["name"] == "fake-upstream",
            "{init}"
        );
        let r = m.call(1, "echo", json!({"text": "héllo"})).await;
        ensure!(text_of(&r) == "héllo", "{r}");
        // A method the broker has never heard of, with odd spacing and a string id.
        let raw =
            r#"{"jsonrpc":"2.0","id":"x-7","method":"vendor/frobnicate","params":{"n": 1.50}}"#;
        let res = m.post_raw(raw).await;
        ensure!(res.status() == 200, "status {}", res.status());
        let v: Value = res.json().await.unwrap();
        ensure!(
            v["id"] == "x-7" && v["result"]["echoed"] == raw,
            "the upstream must see the exact bytes: {v}"
        );
        // A pretty-printed (multi-line) request still reaches the stdio child as one line.
        let res = m
            .post_raw("{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 2,\n  \"method\": \"tools/list\"\n}")
            .await;
        let v: Value = res.json().await.unwrap();
        ensure!(
            v["result"]["tools"].as_array().is_some_and(|t| t.len() > 3),
            "{v}"
        );
        // Notifications and responses only: 202.
        let res = m
            .post_raw(r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#)
            .await;
        ensure!(res.status() == 202, "status {}", res.status());
        Ok(())
    })
}

fn session_rules_and_discover_probe() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config(""));
        let mut m = Mcp::connect(&b, "fake").await;
        // The 2026-07-28 `server/discover` probe before initialize: a prompt JSON-RPC error.
        let started = Instant::now();
        let res = m
            .post_raw(r#"{"jsonrpc":"2.0","id":"d1","method":"server/discover"}"#)
            .await;
        ensure!(
            res.status() == 400 && started.elapsed() < Duration::from_secs(2),
            "status {}",
            res.status()
        );
        let v: Value = res.json().await.unwrap();
        ensure!(v["id"] == "d1" && v["error"]["code"].is_i64(), "{v}");
        m.initialize().await;
        // Unknown session: 404. Malformed body: -32700. Bad protocol version: 400.
        let good = m.session.clone();
        m.session = Some("nope".into());
        let res = m
            .post_raw(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .await;
        ensure!(res.status() == 404, "unknown session: {}", res.status());
        m.session = good;
        let res = m.post_raw("{not json").await;
        ensure!(res.status() == 400, "parse error: {}", res.status());
        let v: Value = res.json().await.unwrap();
        ensure!(v["error"]["code"] == -32700, "{v}");
        let res =
            m.c.post(&m.url)
                .bearer_auth(&m.token)
                .header("mcp-session-id", m.session.as_deref().unwrap())
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "banana")
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
                .send()
                .await
                .unwrap();
        ensure!(res.status() == 400, "bad version: {}", res.status());
        let res = m
            .req(reqwest::Method::POST)
            .header("content-type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap();
        ensure!(res.status() == 415, "content type: {}", res.status());
        // A session is bound to its grant: another client's valid token cannot use it.
        let other = Mcp {
            session: m.session.clone(),
            ..Mcp::connect(&b, "fake").await
        };
        let res = other
            .post_raw(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .await;
        ensure!(res.status() == 404, "foreign session: {}", res.status());
        // Audience: a token for `fake` is refused at `other`.
        let res = http()
            .post(b.mcp_url("other"))
            .bearer_auth(&m.token)
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .unwrap();
        ensure!(res.status() == 401, "audience: {}", res.status());
        // DELETE ends the session.
        let res = m.req(reqwest::Method::DELETE).send().await.unwrap();
        ensure!(res.status() == 200, "delete: {}", res.status());
        let res = m
            .post_raw(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .await;
        ensure!(res.status() == 404, "after delete: {}", res.status());
        Ok(())
    })
}

fn progress_streams_as_it_happens() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config(""));
        let mut m = Mcp::connect(&b, "fake").await;
        m.initialize().await;
        let body = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow","arguments":{"steps":4,"ms":150},"_meta":{"progressToken":"p5"}}});
        let res = m.post_raw(&body.to_string()).await;
        ensure!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"), "progress needs SSE");
        let mut s = res.bytes_stream().eventsource();
        let mut arrivals = Vec::new();
        let t0 = Instant::now();
        while let Some(Ok(ev)) = s.next().await {
            let v: Value = serde_json::from_str(&ev.data).unwrap();
            arrivals.push((t0.elapsed(), ev.id, v));
        }
        ensure!(arrivals.len() == 5, "4 progress + 1 result, got {}", arrivals.len());
        for (_, id, v) in &arrivals[..4] {
            ensure!(v["method"] == "notifications/progress" && v["params"]["progressToken"] == "p5" && !id.is_empty(), "{v}");
        }
        ensure!(arrivals[4].2["id"] == 5, "result last");
        // Streamed, not buffered: the first progress arrived well before the result.
        let gap = arrivals[4].0 - arrivals[0].0;
        ensure!(gap >= Duration::from_millis(400), "progress was buffered (gap {gap:?})");

        // Two concurrent streams in one session both complete.
        let a = m.post(json!({"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"slow","arguments":{"steps":2,"ms":100},"_meta":{"progressToken":"a"}}}));
        let c = m.post(json!({"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"slow","arguments":{"steps":2,"ms":100},"_meta":{"progressToken":"c"}}}));
        let (ra, rc) = tokio::join!(a, c);
        let (Reply::Sse(ea), Reply::Sse(ec)) = (ra, rc) else { return Err("expected two SSE replies".into()) };
        ensure!(ea.iter().all(|(_, v)| v["id"] == 10 || v["params"]["progressToken"] == "a"), "stream a mixed: {ea:?}");
        ensure!(ec.iter().all(|(_, v)| v["id"] == 11 || v["params"]["progressToken"] == "c"), "stream c mixed: {ec:?}");
        ensure!(ea.last().unwrap().1["id"] == 10 && ec.last().unwrap().1["id"] == 11, "both finish");
        Ok(())
    })
}

fn server_to_client_request_round_trip() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config(""));
        let mut m = Mcp::connect(&b, "fake").await;
        m.initialize().await;
        let res = m.post_raw(&json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"sample","arguments":{}}}).to_string()).await;
        let mut s = res.bytes_stream().eventsource();
        let first: Value = serde_json::from_str(&s.next().await.unwrap().unwrap().data).unwrap();
        ensure!(first["method"] == "sampling/createMessage" && first["id"] == "s1", "{first}");
        let ack = m.post_raw(r#"{"jsonrpc":"2.0","id":"s1","result":{"role":"assistant","content":{"type":"text","text":"from the client"}}}"#).await;
        ensure!(ack.status() == 202, "response accepted: {}", ack.status());
        let last: Value = serde_json::from_str(&s.next().await.unwrap().unwrap().data).unwrap();
        ensure!(last["id"] == 7 && text_of(&last) == "sampled: from the client", "{last}");
        Ok(())
    })
}

fn standalone_get_stream_and_resumption() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config(""));
        let mut m = Mcp::connect(&b, "fake").await;
        m.initialize().await;
        let get = m.req(reqwest::Method::GET).header("accept", "text/event-stream").send().await.unwrap();
        ensure!(get.status() == 200, "GET stream: {}", get.status());
        let second = m.req(reqwest::Method::GET).header("accept", "text/event-stream").send().await.unwrap();
        ensure!(second.status() == 409, "one standalone stream: {}", second.status());
        let mut gs = get.bytes_stream().eventsource();
        let r = m.call(3, "notify_later", json!({})).await;
        ensure!(r["id"] == 3, "{r}");
        let ev = tokio::time::timeout(Duration::from_secs(5), gs.next()).await.map_err(|_| "no event on the GET stream")?;
        let v: Value = serde_json::from_str(&ev.unwrap().unwrap().data).unwrap();
        ensure!(v["method"] == "notifications/tools/list_changed", "{v}");
        drop(gs);

        // Resume a POST stream after losing it mid-way.
        let body = json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"slow","arguments":{"steps":3,"ms":200},"_meta":{"progressToken":"r"}}});
        let res = m.post_raw(&body.to_string()).await;
        let mut s = res.bytes_stream().eventsource();
        let first = s.next().await.unwrap().unwrap();
        drop(s);
        let resumed = m
            .req(reqwest::Method::GET)
            .header("accept", "text/event-stream")
            .header("last-event-id", &first.id)
            .send()
            .await
            .unwrap();
        ensure!(resumed.status() == 200, "resume: {}", resumed.status());
        let Reply::Sse(rest) = read_reply(resumed).await else { return Err("resume must be SSE".into()) };
        ensure!(rest.len() == 3, "2 progress + result after {}: {rest:?}", first.id);
        ensure!(rest.last().unwrap().1["id"] == 9, "result delivered on the resumed stream");
        Ok(())
    })
}

fn sessions_never_share_a_child() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config(""));
        let mut m1 = Mcp::connect(&b, "fake").await;
        let mut m2 = Mcp {
            session: None,
            ..Mcp::connect(&b, "fake").await
        };
        m1.initialize().await;
        m2.initialize().await;
        let mut m3 = Mcp {
            session: None,
            c: http(),
            url: m1.url.clone(),
            token: m1.token.clone(),
        };
        m3.initialize().await;
        let p1 = text_of(&m1.call(1, "pid", json!({})).await);
        let p2 = text_of(&m2.call(1, "pid", json!({})).await);
        let p3 = text_of(&m3.call(1, "pid", json!({})).await);
        ensure!(
            p1 != p2 && p1 != p3 && p2 != p3,
            "children shared: {p1} {p2} {p3}"
        );
        Ok(())
    })
}

fn crash_garbage_and_hang_end_only_that_session() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config("[broker]\nrequest_timeout_secs = 1\n"));
        for tool in ["crash", "garbage", "hang"] {
            let mut m = Mcp::connect(&b, "fake").await;
            m.initialize().await;
            let pid: i32 = text_of(&m.call(1, "pid", json!({})).await).parse().unwrap();
            let started = Instant::now();
            let r = m.call(2, tool, json!({})).await;
            ensure!(
                r["id"] == 2 && r["error"]["code"].is_i64(),
                "{tool}: expected a JSON-RPC error, got {r}"
            );
            ensure!(
                started.elapsed() < Duration::from_secs(5),
                "{tool}: took {:?}",
                started.elapsed()
            );
            let after = m
                .post_raw(r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#)
                .await;
            ensure!(
                after.status() == 404,
                "{tool}: the session must end, got {}",
                after.status()
            );
            ensure!(
                wait_until(|| !alive(pid), 5).await,
                "{tool}: child {pid} still running"
            );
            // The broker keeps serving: a new session works.
            let mut again = Mcp {
                session: None,
                c: http(),
                url: m.url.clone(),
                token: m.token.clone(),
            };
            again.initialize().await;
            ensure!(
                text_of(&again.call(1, "echo", json!({"text":"ok"})).await) == "ok",
                "{tool}: new session"
            );
        }
        Ok(())
    })
}

fn child_environment_is_explicit_and_stderr_logged() -> Result<(), Failed> {
    rt().block_on(async {
        // SAFETY: set before the broker process is spawned; no threads read it concurrently.
        unsafe { std::env::set_var("BROKER_ONLY_SECRET", "must-not-leak") };
        let b = Broker::start(&config(""));
        unsafe { std::env::remove_var("BROKER_ONLY_SECRET") };
        let mut m = Mcp::connect(&b, "fake").await;
        m.initialize().await;
        let env = |name: &str| m.call(1, "env", json!({"name": name}));
        ensure!(
            text_of(&env("FAKE_CONFIGURED").await) == "from-config",
            "configured env"
        );
        ensure!(
            text_of(&env("BROKER_ONLY_SECRET").await) == "<unset>",
            "the broker's environment leaked"
        );
        ensure!(text_of(&env("PATH").await) != "<unset>", "PATH");
        ensure!(text_of(&env("HOME").await) != "<unset>", "HOME");
        let log = std::fs::read_to_string(b.data_dir().join("logs/fake.log")).unwrap_or_default();
        ensure!(
            log.contains("fake upstream started"),
            "stderr goes to the upstream log: {log:?}"
        );
        Ok(())
    })
}

fn revocation_ends_sessions_streams_and_children() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config(""));
        let c = http();
        let (_, t) = authorize(&c, &b.base, "fake").await;
        let mut m = Mcp {
            c,
            url: b.mcp_url("fake"),
            token: t.access.clone(),
            session: None,
        };
        m.initialize().await;
        let pid: i32 = text_of(&m.call(1, "pid", json!({})).await).parse().unwrap();
        let get = m
            .req(reqwest::Method::GET)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        let mut gs = get.bytes_stream();
        let grants: Value =
            serde_json::from_slice(&b.cli(&["grants", "list", "--json"]).stdout).unwrap();
        let id = grants[0]["id"].to_string();
        let out = b.cli(&["grants", "revoke", &id]);
        ensure!(
            out.status.success(),
            "revoke: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let res = m
            .post_raw(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
            .await;
        ensure!(
            res.status() == 401,
            "next request on the open session: {}",
            res.status()
        );
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(_)) = gs.next().await {}
        })
        .await;
        ensure!(closed.is_ok(), "the open SSE stream must close");
        ensure!(
            wait_until(|| !alive(pid), 5).await,
            "child {pid} must exit after revocation"
        );
        Ok(())
    })
}

fn idle_sessions_are_reaped_and_sigterm_ends_children() -> Result<(), Failed> {
    rt().block_on(async {
        let mut b = Broker::start(&config("[broker]\nsession_idle_timeout_secs = 1\n"));
        let mut m = Mcp::connect(&b, "fake").await;
        m.initialize().await;
        let pid: i32 = text_of(&m.call(1, "pid", json!({})).await).parse().unwrap();
        ensure!(
            wait_until(|| !alive(pid), 6).await,
            "idle child {pid} not reaped"
        );
        let res = m
            .post_raw(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
            .await;
        ensure!(res.status() == 404, "reaped session: {}", res.status());

        let mut m2 = Mcp {
            session: None,
            c: http(),
            url: m.url.clone(),
            token: m.token.clone(),
        };
        m2.initialize().await;
        let pid2: i32 = text_of(&m2.call(1, "pid", json!({})).await)
            .parse()
            .unwrap();
        let st = b.terminate();
        ensure!(st.success(), "exit status {st:?}");
        ensure!(
            wait_until(|| !alive(pid2), 5).await,
            "child {pid2} survived SIGTERM"
        );
        Ok(())
    })
}

fn remote_http_upstream_gets_no_client_token() -> Result<(), Failed> {
    rt().block_on(async {
        let (url, seen) = fake_http_upstream().await;
        // SAFETY: set before the broker process is spawned.
        unsafe { std::env::set_var("FAKE_REMOTE_KEY", "k-123") };
        let b = Broker::start(&format!("[servers.remote]\nurl = {url:?}\nheaders = {{ \"X-Api-Key\" = {{ env = \"FAKE_REMOTE_KEY\" }} }}\n"));
        let mut m = Mcp::connect(&b, "remote").await;
        // The consent page listed the tools over an upstream session of its own (issue
        // 14); what follows is the client's session.
        let probed = std::mem::take(&mut *seen.lock().unwrap());
        ensure!(probed.iter().all(|h| h.authorization.is_none()), "the consent probe sent no client token: {probed:?}");
        let init = m.initialize().await;
        ensure!(init["result"]["serverInfo"]["name"] == "fake-http", "{init}");
        let r = m.call(1, "echo", json!({"text": "over http"})).await;
        ensure!(text_of(&r) == "over http", "{r}");
        let seen = seen.lock().unwrap().clone();
        ensure!(!seen.is_empty(), "the upstream saw requests");
        for h in &seen {
            ensure!(h.authorization.is_none(), "the client's token reached the upstream: {:?}", h.authorization);
            ensure!(h.api_key.as_deref() == Some("k-123"), "configured header: {:?}", h.api_key);
        }
        ensure!(seen.iter().skip(1).all(|h| h.session.as_deref() == Some("up-1")), "upstream session id used: {seen:?}");
        Ok(())
    })
}

fn sessions_per_grant_are_capped() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config("[broker]\nmax_sessions_per_grant = 2\n"));
        let first = Mcp::connect(&b, "fake").await;
        let mut sessions = Vec::new();
        let mut pids = Vec::new();
        for _ in 0..3 {
            let mut m = Mcp {
                session: None,
                c: http(),
                url: first.url.clone(),
                token: first.token.clone(),
            };
            m.initialize().await;
            pids.push(
                text_of(&m.call(1, "pid", json!({})).await)
                    .parse::<i32>()
                    .unwrap(),
            );
            sessions.push(m);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The third session made room by closing the least recently used one.
        ensure!(
            wait_until(|| !alive(pids[0]), 5).await,
            "oldest child {} still running",
            pids[0]
        );
        let res = sessions[0]
            .post_raw(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
            .await;
        ensure!(res.status() == 404, "evicted session: {}", res.status());
        for (m, pid) in sessions[1..].iter().zip(&pids[1..]) {
            ensure!(alive(*pid), "child {pid} should still run");
            ensure!(
                text_of(&m.call(3, "echo", json!({"text":"still here"})).await) == "still here",
                "session works"
            );
        }
        Ok(())
    })
}

/// The broker's children (zombies included: they must be reaped too), open files and
/// resident memory, from /proc.
#[derive(Debug, PartialEq)]
struct Footprint {
    children: usize,
    fds: usize,
    rss_kib: u64,
}

fn footprint(pid: u32) -> Footprint {
    let mut children = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        children += list.split_whitespace().count();
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0);
    Footprint {
        children,
        fds,
        rss_kib,
    }
}

fn churn_and_faults_leave_no_children_or_open_files() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start_logging(
            tempfile::tempdir().unwrap(),
            &config("[broker]\nrequest_timeout_secs = 1\n"),
            0,
            LOG_TASKS,
        );
        let pid = b.child.id();
        // No idle connections on the client side: the broker's fds show its own.
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let (_, t) = authorize(&c, &b.base, "fake").await;
        let fresh = || Mcp {
            c: c.clone(),
            url: b.mcp_url("fake"),
            token: t.access.clone(),
            session: None,
        };
        // Warm up once (the upstream log file, the pool), then take the baseline.
        let mut m = fresh();
        m.initialize().await;
        m.req(reqwest::Method::DELETE).send().await.unwrap();
        ensure!(wait_until(|| footprint(pid).children == 0, 5).await, "warm-up child");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = footprint(pid);
        let tasks_before = alive_tasks(&b, 0).await;

        for i in 0..20 {
            let mut m = fresh();
            m.initialize().await;
            let r = m.call(1, "echo", json!({"text": "churn"})).await;
            ensure!(text_of(&r) == "churn", "session {i}: {r}");
            if i % 2 == 0 {
                // Half end with DELETE, half by the client giving up on a hung call
                // and then DELETE: the child hears `notifications/cancelled` first.
                let hung = m
                    .req(reqwest::Method::POST)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .body(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"hang","arguments":{}}}"#)
                    .send();
                let hung = tokio::spawn(hung);
                let mut n = 3;
                let mut ask = async || {
                    n += 1;
                    let v: Value = serde_json::from_str(&text_of(&m.call(n, "cancelled", json!({})).await)).unwrap();
                    v
                };
                let mut heard = ask().await;
                for _ in 0..100 {
                    if heard["hung"] == json!([2]) {
                        break;
                    }
                    heard = ask().await;
                }
                ensure!(heard["hung"] == json!([2]), "the child never got the call: {heard}");
                hung.abort();
                // The broker notices the closed connection on its own time: ask again.
                for _ in 0..100 {
                    if heard["cancelled"] != json!([]) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    heard = ask().await;
                }
                ensure!(
                    heard["cancelled"] == json!([[2, "the client went away"]]),
                    "session {i}: the child hears of the abandoned call: {heard}"
                );
            }
            m.req(reqwest::Method::DELETE).send().await.unwrap();
        }
        for tool in ["crash", "garbage", "hang"] {
            let mut m = fresh();
            m.initialize().await;
            let r = m.call(1, tool, json!({})).await;
            ensure!(r["error"]["code"].is_i64(), "{tool}: {r}");
        }
        let settled = wait_until(
            || {
                let now = footprint(pid);
                now.children == 0 && now.fds == before.fds
            },
            8,
        )
        .await;
        let after = footprint(pid);
        let tasks_after = alive_tasks(&b, 0).await;
        eprintln!("churn (20 sessions, 10 abandoned calls, crash, garbage, hang): before {before:?}, {tasks_before} tasks; after {after:?}, {tasks_after} tasks");
        ensure!(settled, "before {before:?}, after {after:?}");
        ensure!(
            tasks_after <= tasks_before,
            "tasks: {tasks_before} before, {tasks_after} after"
        );
        ensure!(
            after.rss_kib < before.rss_kib + 16 * 1024,
            "memory grew: before {before:?}, after {after:?}"
        );
        Ok(())
    })
}

/// The pids whose parent is `parent`, from /proc.
fn children_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok())
                == Some(parent)
        })
        .collect()
}

fn a_server_s_own_children_end_with_its_session() -> Result<(), Failed> {
    rt().block_on(async {
        // A wrapper that leaves a process behind holding the server's pipes, as `npx`
        // or `uvx` wrappers can.
        let exe = std::env::current_exe().unwrap().display().to_string();
        let b = Broker::start(&format!(
            "[servers.wrapped]\ncommand = \"sh\"\nargs = [\"-c\", \"sleep 600 & exec \\\"$0\\\"\", {exe:?}]\nenv = {{ FAKE_MCP_UPSTREAM = \"1\" }}\n"
        ));
        let mut m = Mcp::connect(&b, "wrapped").await;
        m.initialize().await;
        let pid: i32 = text_of(&m.call(1, "pid", json!({})).await).parse().unwrap();
        let left_behind = children_of(pid);
        ensure!(left_behind.len() == 1, "the wrapper's own child: {left_behind:?}");
        let res = m.req(reqwest::Method::DELETE).send().await.unwrap();
        ensure!(res.status() == 200, "delete: {}", res.status());
        ensure!(
            wait_until(|| !alive(pid) && !alive(left_behind[0]), 8).await,
            "server {pid} (alive: {}) or its child {} (alive: {}) outlived the session",
            alive(pid),
            left_behind[0],
            alive(left_behind[0])
        );
        Ok(())
    })
}

// ------------------------------------------------------------- the fake upstreams

/// A stdio MCP server with tools that misbehave on request.
fn fake_upstream() {
    eprintln!("fake upstream started");
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let mut send = |v: Value| {
        writeln!(out, "{v}").unwrap();
        out.flush().unwrap();
    };
    let mut lines = stdin.lock().lines();
    // Ids of `hang` calls, and `notifications/cancelled` received: (requestId, reason).
    let mut hung: Vec<Value> = Vec::new();
    let mut cancelled: Vec<Value> = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let id = msg["id"].clone();
        let method = msg["method"].as_str().unwrap_or("").to_owned();
        if method == "notifications/cancelled" {
            cancelled.push(json!([msg["params"]["requestId"], msg["params"]["reason"]]));
        }
        if id.is_null() {
            continue;
        }
        let result = |v: Value| json!({"jsonrpc":"2.0","id":id,"result":v});
        let text = |s: String| json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":s}]}});
        match method.as_str() {
            "initialize" => send(result(
                json!({"protocolVersion": msg["params"]["protocolVersion"], "capabilities":{"tools":{"listChanged":true}}, "serverInfo":{"name":"fake-upstream","version":"1"}}),
            )),
            "ping" => send(result(json!({}))),
            "tools/list" => {
                let tools: Vec<Value> = [
                    "echo",
                    "cancelled",
                    "env",
                    "pid",
                    "slow",
                    "sample",
                    "notify_later",
                    "crash",
                    "garbage",
                    "hang",
                ]
                .iter()
                .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                .collect();
                send(result(json!({ "tools": tools })))
            }
            "tools/call" => {
                let args = &msg["params"]["arguments"];
                match msg["params"]["name"].as_str().unwrap_or("") {
                    "echo" => send(text(args["text"].as_str().unwrap_or("").to_owned())),
                    "env" => send(text(
                        std::env::var(args["name"].as_str().unwrap_or(""))
                            .unwrap_or_else(|_| "<unset>".into()),
                    )),
                    "pid" => send(text(std::process::id().to_string())),
                    "cancelled" => send(text(
                        json!({"hung": hung, "cancelled": cancelled}).to_string(),
                    )),
                    "slow" => {
                        let token = msg["params"]["_meta"]["progressToken"].clone();
                        let steps = args["steps"].as_u64().unwrap_or(3);
                        for i in 1..=steps {
                            send(
                                json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":token,"progress":i,"total":steps}}),
                            );
                            std::thread::sleep(Duration::from_millis(
                                args["ms"].as_u64().unwrap_or(100),
                            ));
                        }
                        send(text("done".into()));
                    }
                    "sample" => {
                        send(
                            json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{"messages":[],"maxTokens":10}}),
                        );
                        let reply: Value = loop {
                            let Some(Ok(l)) = lines.next() else { return };
                            let v: Value = serde_json::from_str(&l).unwrap_or(Value::Null);
                            if v["id"] == "s1" {
                                break v;
                            }
                        };
                        send(text(format!(
                            "sampled: {}",
                            reply["result"]["content"]["text"].as_str().unwrap_or("")
                        )));
                    }
                    "notify_later" => {
                        send(text("ok".into()));
                        std::thread::sleep(Duration::from_millis(100));
                        send(json!({"jsonrpc":"2.0","method":"notifications/tools/list_changed"}));
                    }
                    "crash" => std::process::exit(3),
                    "garbage" => {
                        println!("this is not JSON-RPC");
                    }
                    "hang" => hung.push(id.clone()),
                    other => send(
                        json!({"jsonrpc":"2.0","id":id,"error":{"code":-32602,"message":format!("no tool {other}")}}),
                    ),
                }
            }
            _ => send(result(json!({"echoed": line}))),
        }
    }
}

#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    api_key: Option<String>,
    session: Option<String>,
}

/// A minimal Streamable HTTP MCP server that records the headers it receives.
async fn fake_http_upstream() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    use axum::http::HeaderMap;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Seen>::new()));
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = s2.clone();
            async move {
                let h = |k: &str| headers.get(k).map(|v| v.to_str().unwrap().to_owned());
                seen.lock().unwrap().push(Seen { authorization: h("authorization"), api_key: h("x-api-key"), session: h("mcp-session-id") });
                let msg: Value = serde_json::from_str(&body).unwrap();
                let id = msg["id"].clone();
                let reply = match msg["method"].as_str() {
                    Some("initialize") => json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"fake-http","version":"1"}}}),
                    Some("tools/call") => json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":msg["params"]["arguments"]["text"]}]}}),
                    _ if id.is_null() => return (axum::http::StatusCode::ACCEPTED, [("mcp-session-id", "up-1")], String::new()),
                    _ => json!({"jsonrpc":"2.0","id":id,"result":{}}),
                };
                (axum::http::StatusCode::OK, [("mcp-session-id", "up-1")], reply.to_string())
            }
        })
        .get(|| async { axum::http::StatusCode::METHOD_NOT_ALLOWED }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/mcp",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The upstream starts while the consent page is shown: Deny stops it, and after Approve
/// the first session gets that very child instead of starting one.
fn the_child_starts_while_consent_is_shown_and_stops_on_deny() -> Result<(), Failed> {
    rt().block_on(async {
        let b = Broker::start(&config(""));
        let broker = b.child.id() as i32;
        let c = http();
        let resource = b.mcp_url("fake");
        let reg = register(&c, &b.base, "none").await;

        let (_, challenge) = pkce();
        let consent = open_consent(&c, &b.base, &reg, &challenge, Some(&resource), "s").await;
        let started = children_of(broker);
        ensure!(
            started.len() == 1,
            "a child while the consent is shown: {started:?}"
        );
        decide(&c, &b.base, &consent, "deny").await;
        ensure!(
            wait_until(|| children_of(broker).is_empty(), 10).await,
            "the child outlived the denial: {:?}",
            children_of(broker)
        );

        let mut m = Mcp::connect(&b, "fake").await;
        let warm = children_of(broker);
        ensure!(warm.len() == 1, "one child after approval: {warm:?}");
        m.initialize().await;
        let pid: i32 = text_of(&m.call(1, "pid", json!({})).await).parse().unwrap();
        ensure!(
            warm == vec![pid],
            "the session's child {pid} is not the warm one {warm:?}"
        );
        ensure!(children_of(broker).len() == 1, "a second child was started");
        Ok(())
    })
}
