//! The entries MCP clients need to reach the broker, and the JSON edit that puts them in
//! (or takes them out of) a client's own configuration file.
//!
//! Pure: text in, text out (finding the user's home and config directories aside). Must
//! not import tokio, axum, sqlx or keyring; the CLI (`cli/clients.rs`) and
//! `client_import` read and write the files. [`import`] plans taking a client's own
//! servers into the broker.
//!
//! What each client takes (from the clients' documentation, 2026):
//! - Claude Desktop (`claude_desktop_config.json`, key `mcpServers`) starts **stdio**
//!   servers only; its remote connectors run in the vendor's cloud and cannot reach
//!   127.0.0.1. Its entries run `mcp-broker connect NAME`, the stdio bridge.
//! - Claude Code (`~/.claude.json`, user scope, key `mcpServers`) connects to HTTP
//!   servers itself: `{"type": "http", "url": ...}`.
//! - Cursor (`~/.cursor/mcp.json`, key `mcpServers`) takes `{"url": ...}`.
//!
//! The edit keeps every other key and entry as it was, in the same order (serde_json's
//! `preserve_order`), and is idempotent: when the entries are already there the caller
//! gets `None` and writes nothing. Entries are keyed by the upstream's name; an entry of
//! that name which this broker did not write is never overwritten.

pub mod import;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// The key every supported client keeps its servers under.
pub const SERVERS_KEY: &str = "mcpServers";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientApp {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
}

impl ClientApp {
    pub fn display_name(self) -> &'static str {
        match self {
            ClientApp::ClaudeDesktop => "Claude Desktop",
            ClientApp::ClaudeCode => "Claude Code",
            ClientApp::Cursor => "Cursor",
        }
    }

    /// The client's standard per-user configuration file on this OS. `home` and
    /// `config_dir` are passed in (from `dirs`) so tests can say where they are.
    pub fn config_file(self, home: &Path, config_dir: &Path) -> PathBuf {
        match self {
            // macOS: ~/Library/Application Support/Claude, Windows: %APPDATA%\Claude,
            // Linux: $XDG_CONFIG_HOME/Claude; `dirs::config_dir()` is each of these.
            ClientApp::ClaudeDesktop => {
                config_dir.join("Claude").join("claude_desktop_config.json")
            }
            // Claude Code reads `$CLAUDE_CONFIG_DIR/.claude.json` when that is set.
            ClientApp::ClaudeCode => match std::env::var_os("CLAUDE_CONFIG_DIR") {
                Some(d) if !d.is_empty() => PathBuf::from(d).join(".claude.json"),
                _ => home.join(".claude.json"),
            },
            ClientApp::Cursor => home.join(".cursor").join("mcp.json"),
        }
    }

    /// [`ClientApp::config_file`] for this user (`dirs`); `None` without a home directory.
    pub fn user_config_file(self) -> Option<PathBuf> {
        let home = dirs::home_dir()?;
        let config_dir = dirs::config_dir().unwrap_or_else(|| home.join(".config"));
        Some(self.config_file(&home, &config_dir))
    }
}

/// How the entries reach the broker.
#[derive(Debug, Clone)]
pub struct BrokerTarget {
    /// Absolute path of the `mcp-broker` executable (for stdio entries).
    pub executable: PathBuf,
    /// `--data-dir` to pass to `connect`, when not the default.
    pub data_dir: Option<PathBuf>,
    /// `--config` to pass to `connect` (absolute), when not the default: a broker that
    /// the client's bridge starts serves the same servers.
    pub config: Option<PathBuf>,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
}

/// The entry for one upstream in one client's configuration.
pub fn entry(app: ClientApp, upstream: &str, target: &BrokerTarget) -> Value {
    let url = format!("{}/mcp/{upstream}", target.base_url);
    match app {
        ClientApp::ClaudeDesktop => {
            let mut args = vec![Value::from("connect"), Value::from(upstream)];
            if let Some(d) = &target.data_dir {
                args.push("--data-dir".into());
                args.push(d.to_string_lossy().into_owned().into());
            }
            if let Some(c) = &target.config {
                args.push("--config".into());
                args.push(c.to_string_lossy().into_owned().into());
            }
            json!({
                "command": target.executable.to_string_lossy(),
                "args": args,
            })
        }
        ClientApp::ClaudeCode => json!({ "type": "http", "url": url }),
        ClientApp::Cursor => json!({ "url": url }),
    }
}

/// Whether an entry was written by `clients install`: a `connect` bridge run by an
/// executable named `mcp-broker`, or a URL of a broker's `/mcp/NAME` on 127.0.0.1.
pub fn is_own_entry(name: &str, v: &Value) -> bool {
    if let Some(cmd) = v.get("command").and_then(Value::as_str) {
        let stem = Path::new(cmd)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("");
        let args: Vec<&str> = v
            .get("args")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        return stem == "mcp-broker"
            && args.first() == Some(&"connect")
            && args.get(1) == Some(&name);
    }
    if let Some(url) = v.get("url").and_then(Value::as_str) {
        let Some(rest) = url.strip_prefix("http://127.0.0.1:") else {
            return false;
        };
        let Some((port, path)) = rest.split_once('/') else {
            return false;
        };
        return !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && path == format!("mcp/{name}");
    }
    false
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientConfigError {
    #[error("it is not valid JSON ({0}); fix or move it, then run this again")]
    InvalidJson(String),
    #[error("its top level is not a JSON object")]
    NotAnObject,
    #[error("its \"mcpServers\" is not a JSON object")]
    ServersNotAnObject,
    #[error(
        "it already has an entry \"{0}\" that mcp-broker did not write; rename or remove that entry first"
    )]
    Conflict(String),
}

fn parse(existing: Option<&str>) -> Result<Map<String, Value>, ClientConfigError> {
    let Some(text) = existing else {
        return Ok(Map::new());
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ClientConfigError::NotAnObject),
        Err(e) => Err(ClientConfigError::InvalidJson(e.to_string())),
    }
}

fn render(root: &Map<String, Value>) -> String {
    let mut s = serde_json::to_string_pretty(root).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// Adds (or updates) `entries` in a configuration file's text (`None`: no file yet).
/// Returns the new text, or `None` when the file already says exactly this.
pub fn install(
    existing: Option<&str>,
    entries: &[(String, Value)],
) -> Result<Option<String>, ClientConfigError> {
    let mut root = parse(existing)?;
    let before = root.clone();
    let servers = root
        .entry(SERVERS_KEY)
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(servers) = servers else {
        return Err(ClientConfigError::ServersNotAnObject);
    };
    for (name, value) in entries {
        match servers.get(name) {
            Some(old) if !is_own_entry(name, old) => {
                return Err(ClientConfigError::Conflict(name.clone()));
            }
            _ => {
                servers.insert(name.clone(), value.clone());
            }
        }
    }
    if existing.is_some() && root == before {
        return Ok(None);
    }
    Ok(Some(render(&root)))
}

/// Removes this broker's entries (those named in `only`, or all of them). Returns the
/// new text and the names removed, or `None` when there was nothing to remove.
pub fn uninstall(
    existing: &str,
    only: &[String],
) -> Result<Option<(String, Vec<String>)>, ClientConfigError> {
    let mut root = parse(Some(existing))?;
    let Some(servers) = root.get_mut(SERVERS_KEY) else {
        return Ok(None);
    };
    let Value::Object(servers) = servers else {
        return Err(ClientConfigError::ServersNotAnObject);
    };
    let gone: Vec<String> = servers
        .iter()
        .filter(|(k, v)| is_own_entry(k, v) && (only.is_empty() || only.contains(k)))
        .map(|(k, _)| k.clone())
        .collect();
    if gone.is_empty() {
        return Ok(None);
    }
    for k in &gone {
        // `shift_remove` keeps the order of the entries that stay.
        servers.shift_remove(k);
    }
    Ok(Some((render(&root), gone)))
}

/// Replaces each entry `old` by `(new, value)` in its place (an import: the client's own
/// entry becomes one that runs through the broker, under the broker's name). Entries not
/// named stay as they were, in the same order.
pub fn adopt(
    existing: &str,
    replaced: &[(String, String, Value)],
) -> Result<String, ClientConfigError> {
    let mut root = parse(Some(existing))?;
    let Some(Value::Object(servers)) = root.get_mut(SERVERS_KEY) else {
        return Err(ClientConfigError::ServersNotAnObject);
    };
    let old = std::mem::take(servers);
    for (k, v) in old {
        match replaced.iter().find(|(o, _, _)| *o == k) {
            Some((_, new, value)) => servers.insert(new.clone(), value.clone()),
            None => servers.insert(k, v),
        };
    }
    Ok(render(&root))
}

/// `FILE.mcp-broker.bak`: the client's file as it was before the last change mcp-broker
/// made to it.
pub fn backup_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".mcp-broker.bak");
    file.with_file_name(name)
}

/// What `--print` shows: the entries alone, as they would be merged.
pub fn snippet(entries: &[(String, Value)]) -> String {
    let servers: Map<String, Value> = entries.iter().cloned().collect();
    let mut root = Map::new();
    root.insert(SERVERS_KEY.into(), Value::Object(servers));
    render(&root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> BrokerTarget {
        BrokerTarget {
            executable: PathBuf::from("/opt/mcp-broker/bin/mcp-broker"),
            data_dir: None,
            config: None,
            base_url: "http://127.0.0.1:7391".into(),
        }
    }

    #[test]
    fn entries_per_client() {
        let t = target();
        assert_eq!(
            entry(ClientApp::ClaudeDesktop, "gh", &t),
            json!({"command": "/opt/mcp-broker/bin/mcp-broker", "args": ["connect", "gh"]})
        );
        assert_eq!(
            entry(ClientApp::ClaudeCode, "gh", &t),
            json!({"type": "http", "url": "http://127.0.0.1:7391/mcp/gh"})
        );
        assert_eq!(
            entry(ClientApp::Cursor, "gh", &t),
            json!({"url": "http://127.0.0.1:7391/mcp/gh"})
        );
        for app in [
            ClientApp::ClaudeDesktop,
            ClientApp::ClaudeCode,
            ClientApp::Cursor,
        ] {
            assert!(is_own_entry("gh", &entry(app, "gh", &t)));
            assert!(!is_own_entry("other", &entry(app, "gh", &t)));
        }
    }

    #[test]
    fn foreign_entries_are_not_ours() {
        for v in [
            json!({"command": "npx", "args": ["-y", "mcp-remote", "http://127.0.0.1:7391/mcp/gh"]}),
            json!({"command": "/usr/bin/mcp-broker-x", "args": ["connect", "gh"]}),
            json!({"url": "https://example.com/mcp/gh"}),
            json!({"url": "http://127.0.0.1:7391/mcp/gh/extra"}),
            json!({"url": "http://127.0.0.1:/mcp/gh"}),
            json!("string"),
        ] {
            assert!(!is_own_entry("gh", &v), "{v}");
        }
    }

    #[test]
    fn conflict_with_a_foreign_entry_is_refused() {
        let text = r#"{"mcpServers": {"gh": {"command": "npx", "args": []}}}"#;
        let e = install(Some(text), &[("gh".into(), json!({"url": "x"}))]).unwrap_err();
        assert_eq!(e, ClientConfigError::Conflict("gh".into()));
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let entries = [("a".into(), json!({}))];
        assert_eq!(
            install(Some("[]"), &entries).unwrap_err(),
            ClientConfigError::NotAnObject
        );
        assert_eq!(
            install(Some(r#"{"mcpServers": []}"#), &entries).unwrap_err(),
            ClientConfigError::ServersNotAnObject
        );
        assert!(matches!(
            install(Some("{\"a\": 1,}"), &entries).unwrap_err(),
            ClientConfigError::InvalidJson(_)
        ));
        assert!(matches!(
            install(Some(""), &entries).unwrap_err(),
            ClientConfigError::InvalidJson(_)
        ));
    }

    #[test]
    fn new_file_and_uninstall_of_nothing() {
        let t = target();
        let e = vec![("gh".to_string(), entry(ClientApp::Cursor, "gh", &t))];
        let text = install(None, &e).unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"mcpServers": {"gh": {"url": "http://127.0.0.1:7391/mcp/gh"}}})
        );
        assert_eq!(uninstall("{}", &[]).unwrap(), None);
        let (after, gone) = uninstall(&text, &[]).unwrap().unwrap();
        assert_eq!(gone, vec!["gh"]);
        assert_eq!(
            serde_json::from_str::<Value>(&after).unwrap(),
            json!({"mcpServers": {}})
        );
    }
}
