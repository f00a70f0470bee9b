//! The configuration file: which upstream MCP servers the broker fronts, and the
//! broker's own settings. Parsing reports one line naming the file, the key and the
//! reason, and never panics.
//!
//! A file that does not exist is an empty configuration (no upstreams), at the default
//! path and at any path given with `--config` alike: that is a first start, and the first
//! change made through `config_edit` creates the file there (mode 0600). [`load`] logs
//! one line saying so, naming the path, so a mistyped `--config` is still visible. A file
//! that exists but cannot be read or is invalid is an error. `config_edit` (writes) and
//! `config_watch` (hand edits) validate through [`parse`], so every path gives the same
//! messages.
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
//!
//! [servers.gh]             # several accounts: consent asks which one a grant uses
//! command = "github-mcp-server"
//! env = { LOG = "info" }   # shared by every account
//! [servers.gh.accounts.work]
//! env = { GITHUB_TOKEN = { secret = "github-work" } }
//! [servers.gh.accounts.personal]
//! env = { GITHUB_TOKEN = { secret = "github-personal" } }
//! ```
//!
//! An account's `env` (stdio) or `headers` (HTTP) are merged over the server's own; an
//! account of an HTTP upstream with no headers signs in with OAuth on its own
//! (`mcp-broker upstream login NAME --account A`). An upstream without accounts has one
//! implicit account, as before accounts existed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Used when neither `--port` nor `[broker] port` is given. A fixed port keeps the MCP
/// URLs clients saved valid across restarts.
pub const DEFAULT_PORT: u16 = 7391;

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    pub port: Option<u16>,
    pub access_token_ttl_secs: Option<u64>,
    pub refresh_token_ttl_secs: Option<u64>,
    pub session_idle_timeout_secs: Option<u64>,
    pub max_sessions_per_grant: Option<usize>,
    pub request_timeout_secs: Option<u64>,
    /// How long a client registration with no active grant and no activity is kept
    /// (default one day).
    pub registration_ttl_secs: Option<u64>,
    /// The largest MCP request body accepted; larger ones get 413.
    pub max_request_bytes: Option<usize>,
    /// Test only: see [`TestClientMetadata`]. Off unless present.
    pub test_client_metadata: Option<TestClientMetadata>,
    /// The activity log (default on); off records nothing.
    pub activity_log: Option<bool>,
    /// How long activity rows are kept (default 90 days).
    pub activity_retention_days: Option<u64>,
    /// At most this many activity rows (default one million); the oldest go first.
    pub activity_max_rows: Option<u64>,
    /// Upstreams whose tool arguments are recorded in the activity log, secrets redacted
    /// (default none).
    pub log_arguments: Option<Vec<String>>,
    /// Client registrations (`/register`), default `"20/hour"`, per client name.
    pub registration_rate: Option<Rate>,
    /// Authorization requests (`/authorize`), default `"20/hour"`, per client.
    pub authorization_rate: Option<Rate>,
    /// Token requests, default `"10/minute"`, per client (per grant for a Client ID
    /// Metadata Document client, whose one `client_id` every installation shares).
    pub token_rate: Option<Rate>,
    /// MCP requests, default `"600/minute"`, per grant.
    pub mcp_rate: Option<Rate>,
    /// What the headless broker does with a call to an "Ask each time" tool (default
    /// `"block"`); the desktop app always asks in its own window.
    pub ask_headless: Option<AskHeadless>,
    /// How long an "Ask each time" question (the approval window or page) waits before
    /// the call is denied (default `"50s"`).
    pub ask_timeout: Option<AskTimeout>,
}

/// `[broker] ask_timeout`: a duration (`"50s"`, `"2m"`), from 5 seconds to 10 minutes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct AskTimeout(pub Duration);

impl AskTimeout {
    /// Below the 60 seconds the MCP SDKs wait for an answer by default.
    pub const DEFAULT: Duration = Duration::from_secs(50);
    const BOUNDS: std::ops::RangeInclusive<Duration> =
        Duration::from_secs(5)..=Duration::from_secs(600);
}

impl TryFrom<String> for AskTimeout {
    type Error = String;
    fn try_from(text: String) -> Result<AskTimeout, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("expected a duration such as \"50s\" or \"2m\": {e}"))?;
        if !AskTimeout::BOUNDS.contains(&d) {
            return Err(format!(
                "must be between 5s and 10m (a person needs time to read the call; a client waits only so long), not {}",
                humantime::format_duration(d)
            ));
        }
        Ok(AskTimeout(d))
    }
}

/// `[broker] ask_headless`: who answers for an "Ask each time" tool without the desktop
/// app.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AskHeadless {
    /// Refused, with an error that says the desktop app (or this setting) is needed.
    #[default]
    Block,
    /// The broker opens an approval page in the browser and the call waits for it.
    Browser,
}

/// A rate limit in the file: `"N/hour"`, `"N/minute"`, `"N/second"`, `"N/day"` or `"N/DURATION"`
/// (`"3/2s"`); `0` or `"off"` turns it off. `N` requests may come at once; after that
/// one more every `DURATION/N`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(try_from = "RawRate")]
pub enum Rate {
    Off,
    Limit { count: u32, per: Duration },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRate {
    Number(u64),
    Text(String),
}

impl TryFrom<RawRate> for Rate {
    type Error = String;
    fn try_from(raw: RawRate) -> Result<Rate, String> {
        const SHAPE: &str = "expected \"N/hour\", \"N/minute\", \"N/second\", \"N/DURATION\" (\"5/30s\"), 0 or \"off\"";
        let text = match raw {
            RawRate::Number(0) => return Ok(Rate::Off),
            RawRate::Number(_) => return Err(SHAPE.into()),
            RawRate::Text(t) => t,
        };
        let t = text.trim();
        if t == "off" || t == "0" {
            return Ok(Rate::Off);
        }
        let (n, per) = t.split_once('/').ok_or(SHAPE)?;
        let count: u32 = n.trim().parse().map_err(|_| SHAPE.to_string())?;
        let per = match per.trim() {
            "second" | "s" => Duration::from_secs(1),
            "minute" | "min" | "m" => Duration::from_secs(60),
            "hour" | "h" => Duration::from_secs(3600),
            "day" | "d" => Duration::from_secs(86400),
            d => humantime::parse_duration(d).map_err(|_| SHAPE.to_string())?,
        };
        if count == 0 {
            return Ok(Rate::Off);
        }
        if per.is_zero() {
            return Err(SHAPE.into());
        }
        Ok(Rate::Limit { count, per })
    }
}

/// Test only (`[broker.test_client_metadata]`): when fetching Client ID Metadata
/// Documents, also trust the CA in `ca_file` and allow these (otherwise refused,
/// non-public) addresses. Logged as a warning whenever it is set.
#[derive(Debug, Clone, Deserialize, PartialEq)]
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

/// The same shapes as in the file: a string, `{ env }` or `{ secret, prefix? }` (what
/// the desktop window sends and receives).
impl Serialize for ValueSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            ValueSource::Literal(v) => s.serialize_str(v),
            ValueSource::Env { env } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("env", env)?;
                m.end()
            }
            ValueSource::Secret { secret, prefix } => {
                let mut m = s.serialize_map(Some(1 + usize::from(prefix.is_some())))?;
                m.serialize_entry("secret", secret)?;
                if let Some(p) = prefix {
                    m.serialize_entry("prefix", p)?;
                }
                m.end()
            }
        }
    }
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
    #[serde(default)]
    era: UpstreamEra,
    #[serde(default)]
    accounts: BTreeMap<String, RawAccount>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    #[serde(default)]
    env: BTreeMap<String, ValueSource>,
    #[serde(default)]
    headers: BTreeMap<String, ValueSource>,
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
    /// Which MCP era the upstream speaks (`era = "auto" | "legacy" | "modern"`).
    pub era: UpstreamEra,
    /// `[servers.NAME.accounts.ACCOUNT]`: the values each account sets over the
    /// transport's own `env` / `headers`. Empty: one implicit account.
    pub accounts: BTreeMap<String, Account>,
}

/// The MCP protocol era of an upstream (basic/versioning §Backward Compatibility):
/// `auto` finds it out with a `server/discover` probe; `legacy` (2025-11-25 and
/// earlier: `initialize`, sessions) and `modern` (2026-07-28: stateless) skip the probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamEra {
    #[default]
    Auto,
    Legacy,
    Modern,
}

/// One named account of an upstream: only the values it adds or overrides (`env` for a
/// stdio upstream, `headers` for an HTTP one; the loader refuses the other).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Account {
    pub values: BTreeMap<String, ValueSource>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub settings: BrokerSettings,
    pub upstreams: Vec<UpstreamConfig>,
}

/// What to tell a person whose configuration has no upstreams yet.
pub const FIRST_STEPS: &str = "add one in the app's window, with a [servers.NAME] table in the file, or import the servers your MCP clients already have with `mcp-broker clients import claude-desktop|claude-code|cursor`";

impl UpstreamConfig {
    /// The keychain secrets this upstream reads: `(secret name, where)`, where is
    /// `env VAR` or `header NAME`, followed by `, account A` for an account's own value.
    pub fn secret_refs(&self) -> Vec<(&str, String)> {
        self.secret_uses()
            .into_iter()
            .map(|(secret, place, _)| (secret, place))
            .collect()
    }

    /// [`secret_refs`](Self::secret_refs) with the account whose value reads the secret
    /// (`None`: the server's own value, shared by every account).
    pub fn secret_uses(&self) -> Vec<(&str, String, Option<&str>)> {
        let (kind, values) = match &self.transport {
            Transport::Stdio { env, .. } => ("env", env),
            Transport::Http { headers, .. } => ("header", headers),
        };
        let own = values.iter().map(|(k, v)| (k, v, None));
        let accounts = self
            .accounts
            .iter()
            .flat_map(|(a, acc)| acc.values.iter().map(move |(k, v)| (k, v, Some(a))));
        own.chain(accounts)
            .filter_map(|(k, v, account)| match v {
                ValueSource::Secret { secret, .. } => Some((
                    secret.as_str(),
                    match account {
                        Some(a) => format!("{kind} {k}, account {a}"),
                        None => format!("{kind} {k}"),
                    },
                    account.map(String::as_str),
                )),
                _ => None,
            })
            .collect()
    }

    /// The account names, in order; empty for the one implicit account.
    pub fn account_names(&self) -> Vec<&str> {
        self.accounts.keys().map(String::as_str).collect()
    }

    /// Whether a grant on this upstream must name an account: with two or more, the
    /// person chooses at consent. With exactly one, that one is used.
    pub fn needs_account_choice(&self) -> bool {
        self.accounts.len() > 1
    }

    /// The account a grant uses when it names none: the only one, or the implicit one.
    pub fn default_account(&self) -> Option<&str> {
        match self.accounts.len() {
            1 => self.accounts.keys().next().map(String::as_str),
            _ => None,
        }
    }

    /// The `env` (stdio) or `headers` (HTTP) for a session of `account` (`None`: the
    /// implicit one, or the only one): the account's values over the server's own.
    /// `Err` names the account when this upstream has none by that name.
    pub fn values_for(
        &self,
        account: Option<&str>,
    ) -> Result<BTreeMap<String, ValueSource>, UnknownAccount> {
        let mut values = match &self.transport {
            Transport::Stdio { env, .. } => env.clone(),
            Transport::Http { headers, .. } => headers.clone(),
        };
        if let Some(a) = account.or(self.default_account()) {
            let acc = self.accounts.get(a).ok_or_else(|| UnknownAccount {
                upstream: self.name.clone(),
                account: a.to_owned(),
            })?;
            values.extend(acc.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(values)
    }
}

/// Which sign-in of a remote upstream a session uses: `NAME` for the implicit account,
/// `NAME:ACCOUNT` for a named one (`:` is in neither name). Its OAuth tokens live in the
/// keychain under `oauth:` and this id, so the implicit account keeps `oauth:NAME`.
pub fn sign_in_id(upstream: &str, account: Option<&str>) -> String {
    match account {
        Some(a) => format!("{upstream}:{a}"),
        None => upstream.to_owned(),
    }
}

/// The upstream and account a [`sign_in_id`] names.
pub fn split_sign_in_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once(':') {
        Some((u, a)) => (u, Some(a)),
        None => (id, None),
    }
}

/// A name that is not one of an upstream's accounts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("upstream {upstream} has no account named \"{account}\"")]
pub struct UnknownAccount {
    pub upstream: String,
    pub account: String,
}

/// Whether `name` may name an account (the same rule as server names).
pub fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Config {
    /// No upstreams and every setting at its default, as if `path` were an empty file
    /// (a first start).
    pub fn empty(path: &Path) -> Config {
        Config {
            path: path.to_owned(),
            settings: BrokerSettings::default(),
            upstreams: Vec::new(),
        }
    }

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
    pub fn registration_ttl(&self) -> Duration {
        Duration::from_secs(
            self.settings
                .registration_ttl_secs
                .unwrap_or(24 * 3600)
                .max(1),
        )
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
    pub fn activity_log(&self) -> bool {
        self.settings.activity_log.unwrap_or(true)
    }
    pub fn activity_retention(&self) -> (Duration, u64) {
        (
            Duration::from_secs(self.settings.activity_retention_days.unwrap_or(90) * 86400),
            self.settings.activity_max_rows.unwrap_or(1_000_000),
        )
    }
    pub fn ask_headless(&self) -> AskHeadless {
        self.settings.ask_headless.unwrap_or_default()
    }

    /// `[broker] ask_timeout`: how long an "Ask each time" question waits for an answer.
    pub fn ask_timeout(&self) -> Duration {
        self.settings
            .ask_timeout
            .map_or(AskTimeout::DEFAULT, |t| t.0)
    }
    pub fn logs_arguments(&self, upstream: &str) -> bool {
        self.settings
            .log_arguments
            .as_ref()
            .is_some_and(|l| l.iter().any(|n| n == upstream))
    }
    pub fn registration_rate(&self) -> Rate {
        self.settings.registration_rate.unwrap_or(Rate::Limit {
            count: 20,
            per: Duration::from_secs(3600),
        })
    }
    pub fn authorization_rate(&self) -> Rate {
        self.settings.authorization_rate.unwrap_or(Rate::Limit {
            count: 20,
            per: Duration::from_secs(3600),
        })
    }
    pub fn token_rate(&self) -> Rate {
        self.settings.token_rate.unwrap_or(Rate::Limit {
            count: 10,
            per: Duration::from_secs(60),
        })
    }
    pub fn mcp_rate(&self) -> Rate {
        self.settings.mcp_rate.unwrap_or(Rate::Limit {
            count: 600,
            per: Duration::from_secs(60),
        })
    }
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// What changed between the configuration in force and a new one, for applying it live:
/// `added` upstreams can be served at once, `changed` ones need their sessions ended (a
/// session keeps the child or connection it started with), `removed` ones refuse new
/// requests. Names are in the configuration's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// `[broker]` settings that only take effect after a restart (the port, token
    /// lifetimes, limits) differ; the caller says so rather than applying half of them.
    pub settings_need_restart: bool,
}

impl ConfigDiff {
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let mut d = ConfigDiff::default();
        for u in &new.upstreams {
            match old.upstream(&u.name) {
                None => d.added.push(u.name.clone()),
                Some(o) if o != u => d.changed.push(u.name.clone()),
                Some(_) => {}
            }
        }
        d.removed = old
            .upstreams
            .iter()
            .filter(|u| new.upstream(&u.name).is_none())
            .map(|u| u.name.clone())
            .collect();
        d.settings_need_restart = old.settings != new.settings;
        d
    }

    pub fn is_empty(&self) -> bool {
        *self == ConfigDiff::default()
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

/// The configuration in `path`; an empty one when there is no file (see the module docs).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let config = match read(path)? {
        Some(text) => parse(path, &text)?,
        None => {
            tracing::info!(
                "no config at {}; no upstreams yet: {FIRST_STEPS}",
                path.display()
            );
            return Ok(Config::empty(path));
        }
    };
    if config.upstreams.is_empty() {
        tracing::info!("{} has no upstreams yet: {FIRST_STEPS}", path.display());
    }
    Ok(config)
}

/// The file's text, or `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError {
            file: path.to_owned(),
            key: String::new(),
            reason: format!("cannot read file: {e}"),
        }),
    }
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
                check_env_names(&key, &s.env).map_err(|(k, r)| err(&k, r))?;
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
                check_header_names(&key, &s.headers).map_err(|(k, r)| err(&k, r))?;
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
        let mut accounts = BTreeMap::new();
        for (a, raw) in s.accounts {
            let akey = format!("{key}.accounts.{a}");
            if !valid_account_name(&a) {
                return Err(err(
                    &akey,
                    "account names must match [a-z0-9-]+ (at most 64 characters)".into(),
                ));
            }
            let values = match &transport {
                Transport::Stdio { .. } => {
                    if !raw.headers.is_empty() {
                        return Err(err(
                            &format!("{akey}.headers"),
                            "only accounts of HTTP upstreams (url) take headers; a stdio upstream's account sets env".into(),
                        ));
                    }
                    if raw.env.is_empty() {
                        return Err(err(
                            &akey,
                            "an account of a stdio upstream needs its own env values (its credentials)".into(),
                        ));
                    }
                    check_env_names(&akey, &raw.env).map_err(|(k, r)| err(&k, r))?;
                    raw.env
                }
                Transport::Http { .. } => {
                    if !raw.env.is_empty() {
                        return Err(err(
                            &format!("{akey}.env"),
                            "only accounts of stdio upstreams (command) take env; an HTTP upstream's account sets headers, or signs in with OAuth".into(),
                        ));
                    }
                    check_header_names(&akey, &raw.headers).map_err(|(k, r)| err(&k, r))?;
                    raw.headers
                }
            };
            accounts.insert(a, Account { values });
        }
        upstreams.push(UpstreamConfig {
            name,
            transport,
            accounts,
            era: s.era,
        });
    }
    Ok(Config {
        path: path.to_owned(),
        settings: raw.broker,
        upstreams,
    })
}

/// `(key, reason)` for the first name in `env` that cannot name an environment variable.
fn check_env_names(key: &str, env: &BTreeMap<String, ValueSource>) -> Result<(), (String, String)> {
    match env
        .keys()
        .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
    {
        Some(k) => Err((
            format!("{key}.env.{k}"),
            "not a valid environment variable name".into(),
        )),
        None => Ok(()),
    }
}

/// `(key, reason)` for the first name in `headers` that is not an HTTP header name.
fn check_header_names(
    key: &str,
    headers: &BTreeMap<String, ValueSource>,
) -> Result<(), (String, String)> {
    match headers
        .keys()
        .find(|h| reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err())
    {
        Some(h) => Err((
            format!("{key}.headers.{h}"),
            "not a valid header name".into(),
        )),
        None => Ok(()),
    }
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
    fn ask_headless_is_block_unless_browser_and_a_typo_names_the_key() {
        assert_eq!(p("").unwrap().ask_headless(), AskHeadless::Block);
        let c = p("[broker]\nask_headless = \"browser\"\n").unwrap();
        assert_eq!(c.ask_headless(), AskHeadless::Browser);
        let e = p("[broker]\nask_headless = \"window\"\n").unwrap_err();
        assert_eq!(e.key, "broker.ask_headless");
        assert!(
            e.reason.contains("block") && e.reason.contains("browser"),
            "{e}"
        );
    }

    #[test]
    fn ask_timeout_is_50s_unless_set_within_bounds() {
        assert_eq!(p("").unwrap().ask_timeout(), Duration::from_secs(50));
        let c = p("[broker]\nask_timeout = \"2m\"\n").unwrap();
        assert_eq!(c.ask_timeout(), Duration::from_secs(120));
        for (bad, why) in [
            ("\"1s\"", "between 5s and 10m"),
            ("\"1h\"", "between 5s and 10m"),
            ("\"soon\"", "expected a duration"),
            ("50", "expected a string"),
        ] {
            let e = p(&format!("[broker]\nask_timeout = {bad}\n")).unwrap_err();
            assert_eq!(e.key, "broker.ask_timeout", "{bad}");
            assert!(e.reason.contains(why), "{bad}: {e}");
        }
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
    fn accounts_merge_over_the_servers_own_values() {
        let c = p(r#"
            [servers.gh]
            command = "gh-mcp"
            env = { LOG = "info", GITHUB_TOKEN = "none" }
            [servers.gh.accounts.work]
            env = { GITHUB_TOKEN = { secret = "github-work" } }
            [servers.gh.accounts.personal]
            env = { GITHUB_TOKEN = { secret = "github-personal" }, EXTRA = "1" }
            [servers.remote]
            url = "https://example.com/mcp"
            [servers.remote.accounts.acme]
            [servers.plain]
            command = "x"
            env = { A = "1" }
        "#)
        .unwrap();
        let gh = c.upstream("gh").unwrap();
        assert_eq!(gh.account_names(), ["personal", "work"]);
        assert!(gh.needs_account_choice());
        let work = gh.values_for(Some("work")).unwrap();
        assert_eq!(work["LOG"], ValueSource::Literal("info".into()));
        assert_eq!(
            work["GITHUB_TOKEN"],
            ValueSource::Secret {
                secret: "github-work".into(),
                prefix: None
            }
        );
        assert!(!work.contains_key("EXTRA"));
        let personal = gh.values_for(Some("personal")).unwrap();
        assert_eq!(personal["EXTRA"], ValueSource::Literal("1".into()));
        let e = gh.values_for(Some("other")).unwrap_err();
        assert_eq!(e.to_string(), "upstream gh has no account named \"other\"");
        assert_eq!(
            gh.secret_refs(),
            vec![
                (
                    "github-personal",
                    "env GITHUB_TOKEN, account personal".to_owned()
                ),
                ("github-work", "env GITHUB_TOKEN, account work".to_owned()),
            ]
        );
        assert_eq!(
            gh.secret_uses()
                .iter()
                .map(|(s, _, a)| (*s, *a))
                .collect::<Vec<_>>(),
            [
                ("github-personal", Some("personal")),
                ("github-work", Some("work"))
            ],
            "the window's secrets list names the account using each secret"
        );
        // One account (here an OAuth sign-in of its own) is used without asking.
        let remote = c.upstream("remote").unwrap();
        assert!(!remote.needs_account_choice());
        assert_eq!(remote.default_account(), Some("acme"));
        // No accounts: exactly the server's own values, as before.
        let plain = c.upstream("plain").unwrap();
        assert!(plain.account_names().is_empty());
        assert_eq!(plain.default_account(), None);
        assert_eq!(plain.values_for(None).unwrap().len(), 1);
        assert!(plain.values_for(Some("work")).is_err());
    }

    #[test]
    fn each_account_has_its_own_sign_in_id() {
        assert_eq!(sign_in_id("notion", None), "notion");
        assert_eq!(sign_in_id("notion", Some("acme")), "notion:acme");
        assert_eq!(split_sign_in_id("notion:acme"), ("notion", Some("acme")));
        assert_eq!(split_sign_in_id("notion"), ("notion", None));
    }

    #[test]
    fn no_servers_is_a_valid_configuration() {
        for text in [
            "",
            "# nothing yet\n",
            "[broker]\nport = 7000\n",
            "[servers]\n",
        ] {
            let c = p(text).unwrap();
            assert!(c.upstreams.is_empty(), "{text}");
        }
    }

    #[test]
    fn a_missing_file_is_an_empty_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("config.toml");
        let c = load(&path).unwrap();
        assert!(c.upstreams.is_empty());
        assert_eq!(c.path, path);
        assert_eq!(c.port(), DEFAULT_PORT);
        assert!(!path.exists(), "loading creates nothing");
        // A file that exists but cannot be read is still an error.
        let e = load(dir.path()).unwrap_err();
        assert!(e.reason.contains("cannot read file"), "{e}");
    }

    #[test]
    fn value_sources_serialize_as_in_the_file() {
        let v = [
            ValueSource::Literal("x".into()),
            ValueSource::Env { env: "HOME".into() },
            ValueSource::Secret {
                secret: "gh".into(),
                prefix: Some("Bearer ".into()),
            },
        ];
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(
            json,
            r#"["x",{"env":"HOME"},{"secret":"gh","prefix":"Bearer "}]"#
        );
        let back: Vec<ValueSource> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn diff_names_added_changed_and_removed_upstreams() {
        let old = p("[servers.a]\ncommand = 'x'\n[servers.b]\ncommand = 'y'\n[servers.c]\nurl = 'https://c/'\n")
            .unwrap();
        let new = p("[servers.a]\ncommand = 'x'\n[servers.b]\ncommand = 'y'\nargs = ['1']\n[servers.d]\ncommand = 'z'\n")
            .unwrap();
        let d = ConfigDiff::between(&old, &new);
        assert_eq!(d.added, ["d"]);
        assert_eq!(d.changed, ["b"]);
        assert_eq!(d.removed, ["c"]);
        assert!(!d.settings_need_restart);
        assert!(ConfigDiff::between(&new, &new).is_empty());
        let moved = p("[broker]\nport = 9000\n[servers.a]\ncommand = 'x'\n").unwrap();
        assert!(
            ConfigDiff::between(&Config::empty(Path::new("c.toml")), &moved).settings_need_restart
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
            (
                "[servers.a]\nurl='https://a.example/mcp'\nera='2026'",
                "servers.a.era",
                "expected one of `auto`, `legacy`, `modern`",
            ),
            (
                "[servers.a]\ncommand='x'\n[servers.a.accounts.Work]\nenv={T='1'}",
                "servers.a.accounts.Work",
                "[a-z0-9-]+",
            ),
            (
                "[servers.a]\ncommand='x'\n[servers.a.accounts.work]\nheaders={T='1'}",
                "servers.a.accounts.work.headers",
                "only accounts of HTTP upstreams",
            ),
            (
                "[servers.a]\ncommand='x'\n[servers.a.accounts.work]\n",
                "servers.a.accounts.work",
                "needs its own env values",
            ),
            (
                "[servers.a]\nurl='https://a/'\n[servers.a.accounts.work]\nenv={T='1'}",
                "servers.a.accounts.work.env",
                "only accounts of stdio upstreams",
            ),
            (
                "[servers.a]\ncommand='x'\n[servers.a.accounts.work]\nenv={T={secret='a b'}}",
                "servers.a.accounts.work.env.T",
                "not a valid secret name",
            ),
            (
                "[servers.a]\ncommand='x'\n[servers.a.accounts.work]\nenvs={T='1'}",
                "servers.a.accounts.work.envs",
                "unknown field `envs`",
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

    #[test]
    fn era_defaults_to_auto_and_takes_legacy_or_modern() {
        let c = p("[servers.a]\ncommand='x'\n[servers.b]\nurl='https://b.example/mcp'\nera='modern'\n[servers.c]\ncommand='y'\nera='legacy'\n").unwrap();
        let eras: Vec<UpstreamEra> = c.upstreams.iter().map(|u| u.era).collect();
        assert_eq!(
            eras,
            [UpstreamEra::Auto, UpstreamEra::Modern, UpstreamEra::Legacy]
        );
    }
}
