//! Which MCP era an upstream speaks (basic/versioning §Backward Compatibility;
//! basic/transports/stdio §Backward Compatibility; brief §3.5).
//!
//! The `era` setting of a server decides when it is `legacy` or `modern`; with `auto`
//! (the default) a `server/discover` probe decides, once, and the verdict is cached per
//! upstream and launch (URL, or command line): a changed launch is probed afresh. A
//! verdict is forgotten when the upstream's answers say its era changed
//! ([`Eras::forget`]); a legacy verdict is dated and probed again after a while (an
//! upstream that moved to 2026-07-28 keeps serving its old sessions, so nothing else
//! would tell).
//!
//! - A remote upstream gets the probe over HTTP: a discover result naming 2026-07-28,
//!   or a modern ladder error (-32020…-32022), means modern; any other answer means
//!   legacy. 401/403, 5xx and network errors are not verdicts and are not cached.
//! - A stdio child locks to the era of its first request (a Python or TypeScript
//!   dual-era server), and some servers exit on any request before `initialize`, so a
//!   working child is never probed: a throwaway child gets the probe (stderr dropped,
//!   short timeout), then exits. A result naming 2026-07-28, or -32022 listing it, means
//!   modern; any other error, a timeout or an exit means legacy (stdio §Backward
//!   Compatibility: the fallback must not key on one code).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::{Transport, UpstreamConfig, UpstreamEra as Setting};
use crate::proxy::Upstreams;
use crate::proxy::link::Inbound;
use crate::proxy::message::{Kind, parse_one};
use crate::proxy::modern::ladder::{CAPABILITIES_KEY, MODERN_VERSION, VERSION_KEY};

/// How long a remote upstream may take to answer the probe.
const HTTP_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a throwaway stdio child may take to start and answer.
const STDIO_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_ID: &str = "mcp-broker-probe";
/// The probe's id as it appears on the wire.
const PROBE_ID_JSON: &str = "\"mcp-broker-probe\"";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamEra {
    Legacy,
    Modern,
}

/// How long a legacy verdict holds: an upstream that moves to 2026-07-28 keeps
/// answering its old sessions, so nothing else would tell (the TypeScript SDK's gateway
/// guide dates legacy verdicts too).
const LEGACY_VERDICT_TTL: Duration = Duration::from_secs(600);

/// Verdicts, per upstream name: for which launch, which era, reached when.
#[derive(Default)]
pub struct Eras {
    known: Mutex<HashMap<String, (u64, UpstreamEra, Instant)>>,
}

impl Eras {
    fn get(&self, upstream: &str, launch: u64, now: Instant) -> Option<UpstreamEra> {
        let (of, era, at) = *self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(upstream)?;
        let stale = of != launch
            || (era == UpstreamEra::Legacy
                && now.saturating_duration_since(at) >= LEGACY_VERDICT_TTL);
        (!stale).then_some(era)
    }

    fn put(&self, upstream: &str, launch: u64, era: UpstreamEra, now: Instant) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(upstream.to_owned(), (launch, era, now));
    }

    /// The upstream answered in a way its cached era cannot explain (an outage, or a
    /// legacy refusal of a modern request): the next session probes again.
    pub fn forget(&self, upstream: &str) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(upstream);
    }
}

/// What identifies one way of reaching an upstream (its URL, or its command line), as a
/// hash: looked up on every request of a 2026-07-28 client, so nothing is allocated.
fn launch_key(cfg: &UpstreamConfig) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match &cfg.transport {
        Transport::Http { url, .. } => url.as_str().hash(&mut h),
        Transport::Stdio {
            command, args, cwd, ..
        } => (command, args, cwd).hash(&mut h),
    }
    h.finish()
}

/// The `server/discover` probe request.
fn probe_request() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": PROBE_ID,
        "method": "server/discover",
        "params": {"_meta": {
            VERSION_KEY: MODERN_VERSION,
            CAPABILITIES_KEY: {},
            "io.modelcontextprotocol/clientInfo": {"name": "mcp-broker", "version": env!("CARGO_PKG_VERSION")},
        }},
    })
}

/// What an HTTP probe answer says, if it says anything (pure; tested below).
pub fn verdict(status: u16, body: &[u8]) -> Option<UpstreamEra> {
    if status == 401 || status == 403 || status >= 500 {
        return None;
    }
    let v = json_of(body).unwrap_or(Value::Null);
    let modern = names_modern(&v["result"]["supportedVersions"])
        || matches!(v["error"]["code"].as_i64(), Some(-32022..=-32020));
    Some(if modern {
        UpstreamEra::Modern
    } else {
        UpstreamEra::Legacy
    })
}

/// What a stdio child's answer to the probe says (pure; tested below).
pub fn stdio_verdict(answer: &Value) -> UpstreamEra {
    let modern = names_modern(&answer["result"]["supportedVersions"])
        || (answer["error"]["code"].as_i64() == Some(-32022)
            && names_modern(&answer["error"]["data"]["supported"]));
    if modern {
        UpstreamEra::Modern
    } else {
        UpstreamEra::Legacy
    }
}

fn names_modern(versions: &Value) -> bool {
    versions
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == MODERN_VERSION))
}

/// The body as JSON, or the first `data:` event of an SSE body.
pub fn json_of(body: &[u8]) -> Option<Value> {
    if let Ok(v) = serde_json::from_slice(body) {
        return Some(v);
    }
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .find_map(|d| serde_json::from_str(d.trim()).ok())
}

impl Upstreams {
    /// The era `upstream` speaks: its setting, else the cached verdict, else a probe's.
    /// `None`: not configured, or the probe said nothing (auth, outage); callers then
    /// treat it as it was treated before eras existed (legacy).
    pub(in crate::proxy) async fn upstream_era(&self, upstream: &str) -> Option<UpstreamEra> {
        let eras = &self.modern.eras;
        let cfg = {
            let configs = self.configs.read().unwrap_or_else(|e| e.into_inner());
            let cfg = configs.get(upstream)?;
            match cfg.era {
                Setting::Legacy => return Some(UpstreamEra::Legacy),
                Setting::Modern => return Some(UpstreamEra::Modern),
                Setting::Auto => {}
            }
            if let Some(e) = eras.get(upstream, launch_key(cfg), Instant::now()) {
                return Some(e);
            }
            cfg.clone()
        };
        let era = match &cfg.transport {
            Transport::Http { url, .. } => self.probe_http(upstream, url).await?,
            Transport::Stdio { .. } => self.probe_stdio(upstream, &cfg).await?,
        };
        tracing::info!(upstream, era = ?era, "upstream era found by a server/discover probe");
        eras.put(upstream, launch_key(&cfg), era, Instant::now());
        Some(era)
    }

    async fn probe_http(&self, upstream: &str, url: &url::Url) -> Option<UpstreamEra> {
        let mut headers = HeaderMap::new();
        headers.insert("mcp-method", HeaderValue::from_static("server/discover"));
        let req = self.signed(upstream, None, url, &headers).await.ok()?;
        let res = tokio::time::timeout(
            HTTP_PROBE_TIMEOUT,
            req.body(probe_request().to_string()).send(),
        )
        .await
        .ok()?
        .ok()?;
        let status = res.status().as_u16();
        let bytes = tokio::time::timeout(HTTP_PROBE_TIMEOUT, res.bytes())
            .await
            .ok()?
            .ok()?;
        verdict(status, &bytes)
    }

    /// The probe on a throwaway child, started exactly as a working child is (same
    /// environment, stderr to the upstream's log), stopped afterwards whatever it said.
    /// `None`: the child could not be started (no verdict; the working child will fail
    /// the same way, with the reason).
    async fn probe_stdio(&self, upstream: &str, cfg: &UpstreamConfig) -> Option<UpstreamEra> {
        let (inbox, mut heard) = mpsc::unbounded_channel();
        // No grant is behind a probe: with several accounts, none of their credentials.
        let values = cfg.values_for(None).ok()?;
        let child = self
            .spawn_stdio(upstream, cfg, &values, "era-probe", inbox)
            .await
            .ok()?;
        let probe = parse_one(Bytes::from(probe_request().to_string())).ok()?;
        child.send(&probe).await;
        let answer = tokio::time::timeout(STDIO_PROBE_TIMEOUT, async {
            while let Some(Inbound::Message(m)) = heard.recv().await {
                if matches!(&m.kind, Kind::Response { id } if **id == *PROBE_ID_JSON) {
                    return serde_json::from_slice::<Value>(&m.raw).ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        child.shutdown().await;
        Some(answer.map_or(UpstreamEra::Legacy, |a| stdio_verdict(&a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_verdicts() {
        let discover = br#"{"jsonrpc":"2.0","id":1,"result":{"supportedVersions":["2026-07-28"],"capabilities":{}}}"#;
        assert_eq!(verdict(200, discover), Some(UpstreamEra::Modern));
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"supportedVersions\":[\"2026-07-28\"]}}\n\n";
        assert_eq!(verdict(200, sse), Some(UpstreamEra::Modern));
        let unsupported = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32022,"message":"x","data":{"supported":["2026-07-28"]}}}"#;
        assert_eq!(verdict(400, unsupported), Some(UpstreamEra::Modern));
        let no_session = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#;
        assert_eq!(verdict(400, no_session), Some(UpstreamEra::Legacy));
        assert_eq!(verdict(404, b""), Some(UpstreamEra::Legacy));
        assert_eq!(verdict(401, b""), None);
        assert_eq!(verdict(503, discover), None);
    }

    #[test]
    fn stdio_verdicts() {
        let modern = json!({"id": PROBE_ID, "result": {"supportedVersions": ["2026-07-28"]}});
        assert_eq!(stdio_verdict(&modern), UpstreamEra::Modern);
        let unsupported = json!({"id": PROBE_ID, "error": {"code": -32022, "data": {"supported": ["2026-07-28"]}}});
        assert_eq!(stdio_verdict(&unsupported), UpstreamEra::Modern);
        let only_legacy = json!({"id": PROBE_ID, "error": {"code": -32022, "data": {"supported": ["2025-11-25"]}}});
        assert_eq!(stdio_verdict(&only_legacy), UpstreamEra::Legacy);
        let unknown =
            json!({"id": PROBE_ID, "error": {"code": -32601, "message": "Method not found"}});
        assert_eq!(stdio_verdict(&unknown), UpstreamEra::Legacy);
    }

    #[test]
    fn legacy_verdicts_expire_modern_ones_hold() {
        let eras = Eras::default();
        let t0 = Instant::now();
        eras.put("a", 1, UpstreamEra::Legacy, t0);
        eras.put("b", 2, UpstreamEra::Modern, t0);
        let later = t0 + LEGACY_VERDICT_TTL;
        assert_eq!(eras.get("a", 1, t0), Some(UpstreamEra::Legacy));
        assert_eq!(eras.get("a", 1, later), None);
        assert_eq!(eras.get("b", 2, later), Some(UpstreamEra::Modern));
        assert_eq!(
            eras.get("b", 3, t0),
            None,
            "another launch is probed afresh"
        );
        eras.forget("b");
        assert_eq!(eras.get("b", 2, t0), None);
    }

    #[test]
    fn launch_keys_differ_by_command_line_and_url() {
        let stdio = |args: &[&str]| UpstreamConfig {
            name: "a".into(),
            transport: Transport::Stdio {
                command: "node".into(),
                args: args.iter().map(|s| s.to_string()).collect(),
                env: Default::default(),
                cwd: None,
            },
            era: Setting::Auto,
            accounts: Default::default(),
        };
        assert_ne!(
            launch_key(&stdio(&["a b"])),
            launch_key(&stdio(&["a", "b"]))
        );
        assert_eq!(launch_key(&stdio(&["x"])), launch_key(&stdio(&["x"])));
    }
}
