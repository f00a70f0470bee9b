//! The configuration file: which upstream MCP servers the broker fronts, and the
//! broker's own settings. Parsing reports one line naming the file, the key and the
//! reason, and never panics.
//!
//! ```toml
//! [broker]                 # optional
//! port = 7391
//!
//! [servers.everything]     # stdio upstream
//! command = "npx"
//! args = ["-y", "@modelcontextprotocol/server-everything"]
//! env = { DEBUG = "1" }
//!
//! [servers.remote]         # Streamable HTTP upstream
//! url = "https://mcp.example.com/mcp"
//! headers = { "X-Api-Key" = { env = "EXAMPLE_KEY" } }
//!
//! [servers.github]         # a secret from the OS keychain (`mcp-broker secrets set github-token`)
//! command = "github-mcp-server"
//! env = { GITHUB_TOKEN = { secret = "github-token" } }
//!
//! [servers.linear]
//! url = "https://mcp.linear.app/mcp"
//! headers = { Authorization = { secret = "linear", prefix = "Bearer " } }
//!
//! [servers.notion]         # signs in with OAuth (`mcp-broker upstream login notion`)
//! url = "https://mcp.notion.com/mcp"
//! client_id = "..."        # optional: a client registered by hand, where the server
//!                          # offers no dynamic registration
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Used when neither `--port` nor `[broker] port` is given. A fixed port keeps the MCP
/// URLs clients saved valid across restarts.
pub const DEFAULT_PORT: u16 = 7391;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    pub port: Option<u16>,
    pub access_token_ttl_secs: Option<u64>,
    pub refresh_token_ttl_secs: Option<u64>,
    pub session_idle_timeout_secs: Option<u64>,
    pub max_sessions_per_grant: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    /// The largest MCP request body accepted; larger ones get 413.
    pub max_request_bytes: Option<usize>,
    /// Test only: see [`TestClientMetadata`]. Off unless present.
    pub test_client_metadata: Option<TestClientMetadata>,
}

/// Test only (`[broker.test_client_metadata]`): when fetching Client ID Metadata
/// Documents, also trust the CA in `ca_file` and allow these (otherwise refused,
/// non-public) addresses. Logged as a warning whenever it is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestClientMetadata {
    pub ca_file: PathBuf,
    pub allow_addresses: Vec<std::net::IpAddr>,
}

/// A value in `env` or `headers`: a literal, or a reference resolved when a session starts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "RawValue")]
pub enum ValueSource {
    Literal(String),
    /// `{ env = "VAR" }`: read from the broker's environment when the upstream starts.
    Env {
        env: String,
    },
    /// `{ secret = "name" }` or `{ secret = "name", prefix = "Bearer " }`: read from the
    /// OS keychain (see `vault`) when the upstream starts; `prefix` goes before the value.
    Secret {
        secret: String,
        prefix: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawValue {
    Literal(String),
    Table(BTreeMap<String, String>),
}

impl TryFrom<RawValue> for ValueSource {
    type Error = String;
    fn try_from(raw: RawValue) -> Result<Self, String> {
        const SHAPES: &str = "expected a string, { env = \"VAR\" }, { secret = \"name\" } or { secret = \"name\", prefix = \"...\" }";
        let mut t = match raw {
            RawValue::Literal(s) => return Ok(ValueSource::Literal(s)),
            RawValue::Table(t) => t,
        };
        let env = t.remove("env");
        let secret = t.remove("secret");
        let prefix = t.remove("prefix");
        if let Some(k) = t.keys().next() {
            return Err(format!("unknown key `{k}`: {SHAPES}"));
        }
        match (env, secret, prefix) {
            (Some(env), None, None) => Ok(ValueSource::Env { env }),
            (None, Some(secret), prefix) => {
                crate::vault::check_name(&secret).map_err(|e| e.to_string())?;
                Ok(ValueSource::Secret { secret, prefix })
            }
            _ => Err(SHAPES.into()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, ValueSource>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, ValueSource>,
    cwd: Option<PathBuf>,
    client_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    broker: BrokerSettings,
    #[serde(default)]
    servers: BTreeMap<String, RawServer>,
}

/// How the broker reaches one upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, ValueSource>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: url::Url,
        headers: BTreeMap<String, ValueSource>,
        /// The OAuth client the broker signs in as, when the upstream's authorization
        /// server has no dynamic registration (RFC 7591); `None` registers.
        client_id: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: String,
    pub transport: Transport,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub settings: BrokerSettings,
    pub upstreams: Vec<UpstreamConfig>,
}

impl UpstreamConfig {
    /// The keychain secrets this upstream reads: `(secret name, where)`, where is
    /// `env VAR` or `header NAME`.
    pub fn secret_refs(&self) -> Vec<(&str, String)> {
        let (kind, values) = match &self.transport {
            Transport::Stdio { env, .. } => ("env", env),
            Transport::Http { headers, .. } => ("header", headers),
        };
        values
            .iter()
            .filter_map(|(k, v)| match v {
                ValueSource::Secret { secret, .. } => {
                    Some((secret.as_str(), format!("{kind} {k}")))
                }
                _ => None,
            })
            .collect()
    }
}

impl Config {
    pub fn port(&self) -> u16 {
        self.settings.port.unwrap_or(DEFAULT_PORT)
    }
    pub fn access_token_ttl(&self) -> i64 {
        self.settings.access_token_ttl_secs.unwrap_or(3600) as i64
    }
    pub fn refresh_token_ttl(&self) -> i64 {
        self.settings
            .refresh_token_ttl_secs
            .unwrap_or(30 * 24 * 3600) as i64
    }
    pub fn session_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.session_idle_timeout_secs.unwrap_or(30 * 60))
    }
    pub fn max_sessions_per_grant(&self) -> usize {
        self.settings.max_sessions_per_grant.unwrap_or(8)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.request_timeout_secs.unwrap_or(300))
    }
    /// 4 MiB by default, the limit of the official MCP SDKs' servers.
    pub fn max_request_bytes(&self) -> usize {
        self.settings.max_request_bytes.unwrap_or(4 * 1024 * 1024)
    }
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// A configuration problem, rendered as one line: `FILE: KEY: REASON`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(
                f,
                "config error in {}: {}",
                self.file.display(),
                self.reason
            )
        } else {
            write!(
                f,
                "config error in {}: {}: {}",
                self.file.display(),
                self.key,
                self.reason
            )
        }
    }
}

impl std::error::Error for ConfigError {}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let err = |key: &str, reason: String| ConfigError {
        file: path.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| err("", format!("cannot read file: {e}")))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let err = |key: &str, reason: String| ConfigError {
        file: path.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| err("", one_line(e.message(), text, e.span())))?;
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        err(
            if key == "." { "" } else { &key },
            one_line(inner.message(), text, inner.span()),
        )
    })?;

    if raw.broker.port == Some(0) {
        // Port 0 is for tests on the command line: saved URLs would break on every start.
        return Err(err(
            "broker.port",
            "must be a fixed port (1-65535); use --port 0 for a random one".into(),
        ));
    }
    if raw.broker.max_request_bytes == Some(0) {
        return Err(err(
            "broker.max_request_bytes",
            "must be at least 1 (the default is 4194304, 4 MiB)".into(),
        ));
    }
    if raw.servers.is_empty() {
        return Err(err(
            "servers",
            "no upstream configured; add a [servers.NAME] table".into(),
        ));
    }
    let mut upstreams = Vec::new();
    for (name, s) in raw.servers {
        let key = format!("servers.{name}");
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err(
                &key,
                "server names must match [a-z0-9-]+ (at most 64 characters)".into(),
            ));
        }
        let transport = match (s.command, s.url) {
            (Some(_), Some(_)) => {
                return Err(err(
                    &key,
                    "set either command (stdio) or url (HTTP), not both".into(),
                ));
            }
            (None, None) => return Err(err(&key, "needs command (stdio) or url (HTTP)".into())),
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err(err(&format!("{key}.command"), "must not be empty".into()));
                }
                if !s.headers.is_empty() {
                    return Err(err(
                        &format!("{key}.headers"),
                        "only HTTP upstreams (url) take headers".into(),
                    ));
                }
                if s.client_id.is_some() {
                    return Err(err(
                        &format!("{key}.client_id"),
                        "only HTTP upstreams (url) sign in with OAuth".into(),
                    ));
                }
                for k in s.env.keys() {
                    if k.is_empty() || k.contains('=') || k.contains('\0') {
                        return Err(err(
                            &format!("{key}.env.{k}"),
                            "not a valid environment variable name".into(),
                        ));
                    }
                }
                Transport::Stdio {
                    command,
                    args: s.args,
                    env: s.env,
                    cwd: s.cwd,
                }
            }
            (None, Some(u)) => {
                if !s.args.is_empty() || !s.env.is_empty() || s.cwd.is_some() {
                    return Err(err(
                        &key,
                        "args, env and cwd are for stdio upstreams (command)".into(),
                    ));
                }
                let url = url::Url::parse(&u)
                    .map_err(|e| err(&format!("{key}.url"), format!("not a URL: {e}")))?;
                let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
                if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
                    return Err(err(
                        &format!("{key}.url"),
                        "must be https, or http on a loopback address".into(),
                    ));
                }
                for h in s.headers.keys() {
                    if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                        return Err(err(
                            &format!("{key}.headers.{h}"),
                            "not a valid header name".into(),
                        ));
                    }
                }
                if let Some(c) = &s.client_id
                    && (c.is_empty() || c.len() > 255 || c.chars().any(char::is_control))
                {
                    return Err(err(
                        &format!("{key}.client_id"),
                        "must be 1 to 255 printable characters".into(),
                    ));
                }
                Transport::Http {
                    url,
                    headers: s.headers,
                    client_id: s.client_id,
                }
            }
        };
        upstreams.push(UpstreamConfig { name, transport });
    }
    Ok(Config {
        path: path.to_owned(),
        settings: raw.broker,
        upstreams,
    })
}

fn one_line(msg: &str, text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let msg = msg.trim().replace('\n', "; ");
    match span {
        Some(s) => {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!("{msg} (line {line})")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Config, ConfigError> {
        parse(Path::new("c.toml"), s)
    }

    #[test]
    fn parses_stdio_and_http() {
        let c = p(r#"
            [broker]
            port = 9000
            [servers.a]
            command = "node"
            args = ["x.js"]
            env = { K = "v", T = { env = "HOME" } }
            [servers.b-2]
            url = "https://example.com/mcp"
            headers = { Authorization = "Bearer x" }
            client_id = "registered-by-hand"
        "#)
        .unwrap();
        assert_eq!(c.port(), 9000);
        assert_eq!(c.upstreams.len(), 2);
        assert!(
            matches!(&c.upstreams[0].transport, Transport::Stdio { command, .. } if command == "node")
        );
        assert!(matches!(&c.upstreams[1].transport,
            Transport::Http { client_id: Some(c), .. } if c == "registered-by-hand"));
    }

    #[test]
    fn parses_secret_references() {
        let c = p(r#"
            [servers.a]
            command = "node"
            env = { GH = { secret = "github-token" }, L = "x" }
            [servers.b]
            url = "https://example.com/mcp"
            headers = { Authorization = { secret = "linear", prefix = "Bearer " } }
        "#)
        .unwrap();
        let Transport::Stdio { env, .. } = &c.upstreams[0].transport else {
            panic!()
        };
        assert_eq!(
            env["GH"],
            ValueSource::Secret {
                secret: "github-token".into(),
                prefix: None
            }
        );
        assert_eq!(env["L"], ValueSource::Literal("x".into()));
        let Transport::Http { headers, .. } = &c.upstreams[1].transport else {
            panic!()
        };
        assert_eq!(
            headers["Authorization"],
            ValueSource::Secret {
                secret: "linear".into(),
                prefix: Some("Bearer ".into())
            }
        );
        assert_eq!(
            c.upstreams[0].secret_refs(),
            vec![("github-token", "env GH".to_owned())]
        );
        assert_eq!(
            c.upstreams[1].secret_refs(),
            vec![("linear", "header Authorization".to_owned())]
        );
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let cases = [
            ("[servers.A]\ncommand='x'", "servers.A", "[a-z0-9-]+"),
            (
                "[servers.a]\ncomand='x'",
                "servers.a.comand",
                "unknown field `comand`",
            ),
            (
                "[servers.a]\ncommand='x'\nurl='https://a/'",
                "servers.a",
                "not both",
            ),
            (
                "[servers.a]\nurl='http://example.com/'",
                "servers.a.url",
                "loopback",
            ),
            (
                "[servers.a]\ncommand=5",
                "servers.a.command",
                "invalid type",
            ),
            (
                "[broker]\nport=0\n[servers.a]\ncommand='x'",
                "broker.port",
                "fixed port",
            ),
            ("", "servers", "no upstream"),
            (
                "[servers.a]\ncommand='x'\nclient_id='c'",
                "servers.a.client_id",
                "only HTTP upstreams",
            ),
            (
                "[servers.a]\nurl='https://a/'\nclient_id=''",
                "servers.a.client_id",
                "1 to 255",
            ),
            ("[servers.a\n", "", "line 1"),
            (
                "[servers.a]\ncommand='x'\nenv={A={secret='a b'}}",
                "servers.a.env.A",
                "not a valid secret name",
            ),
            (
                "[servers.a]\ncommand='x'\nenv={A={secret='a',env='B'}}",
                "servers.a.env.A",
                "expected a string",
            ),
            (
                "[servers.a]\ncommand='x'\nenv={A={secrt='a'}}",
                "servers.a.env.A",
                "unknown key `secrt`",
            ),
        ];
        for (text, key, reason) in cases {
            let e = p(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.reason.contains(reason), "{text}: {e}");
            let line = e.to_string();
            assert!(!line.contains('\n'), "{line}");
            assert!(line.contains("c.toml"), "{line}");
        }
    }
}
