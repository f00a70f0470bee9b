//! Importing the MCP servers a client app already has: read its `mcpServers`, decide
//! what each becomes in the broker's configuration, which `env` and header values are
//! secrets to move into the keychain, and what the client's file says afterwards.
//!
//! Pure: text and the current configuration in, an [`ImportPlan`] out. Whether a command
//! is on PATH is asked through a function passed in. `client_import` carries a plan out
//! (keychain, `config.toml`, the client's file, in that order).
//!
//! What a client entry looks like (the clients' documentation, 2026): stdio `{command,
//! args?, env?, cwd?, type?: "stdio"}`; remote `{url, type?: "http" | "sse" |
//! "streamable-http", headers?}`. Values of the form `${VAR}` (Claude Code) or
//! `${env:VAR}` (Cursor) become `{ env = "VAR" }`.
//!
//! A value is taken for a secret by its name (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`,
//! `*_KEY`, `Authorization`, ...) or by its shape (a known token prefix such as `ghp_`,
//! `sk-`, `xoxb-`, or a long random-looking string), unless it looks like a path, a
//! number or a flag. The person confirms each one; a value declined stays a literal in
//! `config.toml`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::{BrokerTarget, ClientApp, ClientConfigError, SERVERS_KEY, entry, is_own_entry};
use crate::config::{Config, ValueSource};
use crate::config_edit::ServerEntry;
use crate::vault::Secret;

/// One server in a client's file, as found.
#[derive(Debug, Clone)]
pub struct ClientServer {
    /// Its name in the client's `mcpServers`.
    pub key: String,
    pub kind: ClientServerKind,
}

#[derive(Debug, Clone)]
pub enum ClientServerKind {
    Stdio {
        command: String,
        args: Vec<String>,
        cwd: Option<String>,
        env: Vec<(String, String)>,
    },
    Remote {
        url: String,
        /// The client's `type`, when it said one.
        kind: Option<String>,
        headers: Vec<(String, String)>,
    },
    /// Already an entry that runs through a broker (`clients install` or an import).
    Brokered,
    /// Neither a command nor a URL, or values that are not strings.
    Unsupported(String),
}

impl ClientServerKind {
    pub fn describe(&self) -> String {
        match self {
            ClientServerKind::Stdio { command, .. } => format!("stdio, runs {command}"),
            ClientServerKind::Remote { url, .. } => format!("remote, {url}"),
            ClientServerKind::Brokered => "already goes through mcp-broker".into(),
            ClientServerKind::Unsupported(why) => format!("cannot be imported: {why}"),
        }
    }
}

/// The servers in a client's configuration text, in the file's order.
pub fn servers(text: &str) -> Result<Vec<ClientServer>, ClientConfigError> {
    let root = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(ClientConfigError::NotAnObject),
        Err(e) => return Err(ClientConfigError::InvalidJson(e.to_string())),
    };
    let servers = match root.get(SERVERS_KEY) {
        None => return Ok(Vec::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ClientConfigError::ServersNotAnObject),
    };
    Ok(servers
        .iter()
        .map(|(key, v)| ClientServer {
            key: key.clone(),
            kind: classify(key, v),
        })
        .collect())
}

fn classify(key: &str, v: &Value) -> ClientServerKind {
    if is_own_entry(key, v) {
        return ClientServerKind::Brokered;
    }
    let Value::Object(m) = v else {
        return ClientServerKind::Unsupported("the entry is not a JSON object".into());
    };
    let string = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let pairs = |k: &str| -> Result<Vec<(String, String)>, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(o)) => o
                .iter()
                .map(|(name, v)| match v {
                    Value::String(s) => Ok((name.clone(), s.clone())),
                    Value::Number(n) => Ok((name.clone(), n.to_string())),
                    Value::Bool(b) => Ok((name.clone(), b.to_string())),
                    _ => Err(format!("{k}.{name} is not a string")),
                })
                .collect(),
            Some(_) => Err(format!("{k} is not an object")),
        }
    };
    let kind = string("type");
    match (string("command"), string("url")) {
        (Some(command), _) => {
            let args = match m.get("args") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => {
                    match a.iter().map(|x| x.as_str().map(str::to_owned)).collect() {
                        Some(v) => v,
                        None => {
                            return ClientServerKind::Unsupported(
                                "args holds something other than strings".into(),
                            );
                        }
                    }
                }
                Some(_) => return ClientServerKind::Unsupported("args is not a list".into()),
            };
            match pairs("env") {
                Ok(env) => ClientServerKind::Stdio {
                    command,
                    args,
                    cwd: string("cwd"),
                    env,
                },
                Err(e) => ClientServerKind::Unsupported(e),
            }
        }
        (None, Some(url)) => match pairs("headers") {
            Ok(headers) => ClientServerKind::Remote { url, kind, headers },
            Err(e) => ClientServerKind::Unsupported(e),
        },
        (None, None) => ClientServerKind::Unsupported("it has neither command nor url".into()),
    }
}

/// A value moving from the client's file into the keychain.
#[derive(Debug, Clone)]
pub struct SecretMove {
    /// The keychain entry's name (what `config.toml` will reference).
    pub secret: String,
    /// `env NAME` or `header NAME`.
    pub place: String,
    /// Why it was taken for a secret (`its name` or `its shape`).
    pub because: &'static str,
    /// The value, without `prefix`.
    pub value: Secret<String>,
    /// A scheme kept in the configuration (`Bearer `), not in the keychain.
    pub prefix: Option<String>,
    /// The variable or header name.
    key: String,
}

/// One server to import.
#[derive(Debug, Clone)]
pub struct PlannedServer {
    /// Its name in the client's file.
    pub client_key: String,
    /// Its name in the broker's configuration (and the client's rewritten entry).
    pub name: String,
    /// What goes into `config.toml`; moved values are `{ secret = ... }` references.
    pub entry: ServerEntry,
    pub secrets: Vec<SecretMove>,
    pub warnings: Vec<String>,
}

impl PlannedServer {
    /// Keeps secret number `i` as a literal value in `config.toml` instead of moving it.
    pub fn keep_literal(&mut self, i: usize) {
        let m = self.secrets.remove(i);
        let literal = ValueSource::Literal(format!(
            "{}{}",
            m.prefix.as_deref().unwrap_or(""),
            m.value.expose()
        ));
        match &mut self.entry {
            ServerEntry::Stdio { env, .. } => env.insert(m.key, literal),
            ServerEntry::Remote { headers, .. } => headers.insert(m.key, literal),
        };
    }
}

#[derive(Clone)]
pub struct ImportPlan {
    pub app: ClientApp,
    /// The client's file as read; the plan's changes apply to exactly this text.
    pub client_text: String,
    pub servers: Vec<PlannedServer>,
    /// Servers left out and why (already brokered, unsupported), for the listing.
    pub skipped: Vec<(String, String)>,
}

/// Without the client's text, which holds the values being moved.
impl std::fmt::Debug for ImportPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportPlan")
            .field("app", &self.app)
            .field("servers", &self.servers)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    ClientFile(ClientConfigError),
    #[error("the client has no server named {name:?} (it has: {available})")]
    NoSuchServer { name: String, available: String },
    #[error("{key:?} cannot be imported: {reason}")]
    Unsupported { key: String, reason: String },
    #[error(
        "a server named {name:?} is already configured in the broker; remove it there first, or import {key:?} under another name with --rename {key}=NEW-NAME"
    )]
    NameTaken { key: String, name: String },
    #[error(
        "{key:?} has no usable broker name (names are [a-z0-9-]+, at most 64 characters); import it with --rename {key}=NEW-NAME"
    )]
    NoName { key: String },
    #[error("{a:?} and {b:?} would both be named {name:?}; rename one with --rename")]
    Duplicate { a: String, b: String, name: String },
    #[error("--rename {0}=...: the client has no server of that name")]
    RenameUnknown(String),
}

/// What the import needs to know about the broker's side.
pub struct Broker<'a> {
    pub config: &'a Config,
    /// Secret names already in use (referenced by the configuration or in the index):
    /// generated names avoid them.
    pub taken_secrets: &'a BTreeSet<String>,
}

/// Plans importing `chosen` (empty: every importable server) from `client_text`.
/// `renames` maps client names to broker names; `on_path` says whether a command can
/// be found (a command that cannot is imported anyway, with a warning).
pub fn plan(
    app: ClientApp,
    client_text: &str,
    chosen: &[String],
    renames: &BTreeMap<String, String>,
    broker: &Broker,
    on_path: &dyn Fn(&str) -> bool,
) -> Result<ImportPlan, PlanError> {
    let found = servers(client_text).map_err(PlanError::ClientFile)?;
    for k in renames.keys() {
        if !found.iter().any(|s| &s.key == k) {
            return Err(PlanError::RenameUnknown(k.clone()));
        }
    }
    for name in chosen {
        let Some(s) = found.iter().find(|s| &s.key == name) else {
            return Err(PlanError::NoSuchServer {
                name: name.clone(),
                available: found
                    .iter()
                    .map(|s| s.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if let ClientServerKind::Brokered | ClientServerKind::Unsupported(_) = &s.kind {
            return Err(PlanError::Unsupported {
                key: name.clone(),
                reason: s.kind.describe(),
            });
        }
    }
    let keys: BTreeSet<String> = found.iter().map(|s| s.key.clone()).collect();
    let mut taken: BTreeSet<String> = broker.taken_secrets.clone();
    let mut planned: Vec<PlannedServer> = Vec::new();
    let mut skipped = Vec::new();
    for s in found {
        if !chosen.is_empty() && !chosen.contains(&s.key) {
            continue;
        }
        if let ClientServerKind::Brokered | ClientServerKind::Unsupported(_) = &s.kind {
            skipped.push((s.key.clone(), s.kind.describe()));
            continue;
        }
        let name = match renames.get(&s.key) {
            Some(n) => n.clone(),
            None => broker_name(&s.key).ok_or_else(|| PlanError::NoName { key: s.key.clone() })?,
        };
        if broker.config.upstream(&name).is_some() {
            return Err(PlanError::NameTaken { key: s.key, name });
        }
        if let Some(other) = planned.iter().find(|p| p.name == name) {
            return Err(PlanError::Duplicate {
                a: other.client_key.clone(),
                b: s.key,
                name,
            });
        }
        // The rewritten entry takes the broker's name; another entry may have it already.
        if name != s.key && keys.contains(&name) {
            return Err(PlanError::Duplicate {
                a: name.clone(),
                b: s.key,
                name,
            });
        }
        planned.push(plan_one(&s, name, &mut taken, on_path));
    }
    Ok(ImportPlan {
        app,
        client_text: client_text.to_owned(),
        servers: planned,
        skipped,
    })
}

fn plan_one(
    s: &ClientServer,
    name: String,
    taken: &mut BTreeSet<String>,
    on_path: &dyn Fn(&str) -> bool,
) -> PlannedServer {
    let mut warnings = Vec::new();
    let mut secrets = Vec::new();
    let mut values = |kind: &str, pairs: &[(String, String)]| {
        let mut out = BTreeMap::new();
        for (k, v) in pairs {
            let source = if let Some(var) = env_reference(v) {
                ValueSource::Env {
                    env: var.to_owned(),
                }
            } else if let Some(because) = secret_reason(k, v) {
                let (prefix, bare) = split_scheme(v);
                let secret = secret_name(&name, k, taken);
                taken.insert(secret.clone());
                secrets.push(SecretMove {
                    secret: secret.clone(),
                    place: format!("{kind} {k}"),
                    because,
                    value: Secret::new(bare.to_owned()),
                    prefix: prefix.map(str::to_owned),
                    key: k.clone(),
                });
                ValueSource::Secret {
                    secret,
                    prefix: prefix.map(str::to_owned),
                }
            } else {
                ValueSource::Literal(v.clone())
            };
            out.insert(k.clone(), source);
        }
        out
    };
    let entry = match &s.kind {
        ClientServerKind::Stdio {
            command,
            args,
            cwd,
            env,
        } => {
            let env = values("env", env);
            if !on_path(command) {
                warnings.push(format!(
                    "{command:?} is not on the broker's PATH; imported anyway (give its full path if the broker cannot start it)"
                ));
            }
            for (i, a) in args.iter().enumerate() {
                if looks_like_a_secret_value(a) {
                    warnings.push(format!(
                        "argument {} looks like a secret; it is copied into config.toml as it is (pass it through an env variable if the server can read one)",
                        i + 1
                    ));
                }
            }
            ServerEntry::Stdio {
                command: command.clone(),
                args: args.clone(),
                cwd: cwd.as_ref().map(Into::into),
                env,
            }
        }
        ClientServerKind::Remote { url, kind, headers } => {
            if kind.as_deref() == Some("sse") {
                warnings.push(
                    "the client uses the older HTTP+SSE transport for it; the broker speaks Streamable HTTP, which most such servers also offer (check the URL)".into(),
                );
            }
            ServerEntry::Remote {
                url: url.clone(),
                headers: values("header", headers),
                client_id: None,
            }
        }
        ClientServerKind::Brokered | ClientServerKind::Unsupported(_) => {
            unreachable!("filtered out by plan")
        }
    };
    PlannedServer {
        client_key: s.key.clone(),
        name,
        entry,
        secrets,
        warnings,
    }
}

/// The client's name made into a broker name: lower case, `_`, `.` and spaces as `-`.
fn broker_name(key: &str) -> Option<String> {
    let mut out = String::new();
    for c in key.chars() {
        match c {
            'a'..='z' | '0'..='9' | '-' => out.push(c),
            'A'..='Z' => out.push(c.to_ascii_lowercase()),
            '_' | '.' | ' ' | '/' | ':' | '@' => out.push('-'),
            _ => {}
        }
    }
    let out = out.trim_matches('-').to_owned();
    (!out.is_empty() && out.len() <= 64).then_some(out)
}

/// `${VAR}` or `${env:VAR}`: the variable's name.
fn env_reference(v: &str) -> Option<&str> {
    let inner = v.strip_prefix("${")?.strip_suffix('}')?;
    let var = inner.strip_prefix("env:").unwrap_or(inner);
    let ok = !var.is_empty()
        && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !var.as_bytes()[0].is_ascii_digit();
    ok.then_some(var)
}

/// Parts of a name that say its value is a credential.
const SECRET_WORDS: [&str; 9] = [
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "COOKIE",
    "AUTH",
    "APIKEY",
];

/// Prefixes of well-known credential formats.
const TOKEN_PREFIXES: [&str; 22] = [
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "xoxb-",
    "xoxp-",
    "xapp-",
    "lin_api_",
    "AKIA",
    "AIza",
    "ya29.",
    "npm_",
    "pypi-",
    "hf_",
    "eyJ",
];

fn secret_reason(key: &str, value: &str) -> Option<&'static str> {
    let (_, bare) = split_scheme(value);
    if bare.is_empty() || is_plain_setting(bare) {
        return None;
    }
    let k = key.to_ascii_uppercase().replace('-', "_");
    let by_name = SECRET_WORDS.iter().any(|w| k.contains(w))
        || k.ends_with("_KEY")
        || k.starts_with("KEY_")
        || k == "KEY"
        || k.contains("_KEY_")
        || k.ends_with("_PAT");
    if by_name {
        Some("its name")
    } else if looks_like_a_secret_value(value) {
        Some("its shape")
    } else {
        None
    }
}

/// Paths, URLs without credentials, numbers and flags: settings, not secrets.
fn is_plain_setting(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    v.starts_with('/')
        || v.starts_with('~')
        || v.starts_with("./")
        || v.starts_with("../")
        || (v.len() > 2 && v.as_bytes()[1] == b':' && v.as_bytes()[2] == b'\\')
        || ((lower.starts_with("https://") || lower.starts_with("http://"))
            && !v.contains('@')
            && !lower.contains("key=")
            && !lower.contains("token="))
        || v.parse::<f64>().is_ok()
        || matches!(
            lower.as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "none" | "null"
        )
}

fn looks_like_a_secret_value(v: &str) -> bool {
    let (scheme, bare) = split_scheme(v);
    if is_plain_setting(bare) || bare.len() < 12 {
        return false;
    }
    if scheme.is_some() || TOKEN_PREFIXES.iter().any(|p| bare.starts_with(p)) {
        return true;
    }
    let charset = bare
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_+/=.".contains(&b));
    let letters = bare.bytes().any(|b| b.is_ascii_alphabetic());
    let digits = bare.bytes().filter(u8::is_ascii_digit).count();
    charset && letters && bare.len() >= 32 && digits >= 4
}

/// `Bearer X` → (`Bearer `, `X`): the scheme stays in the configuration as a prefix.
fn split_scheme(v: &str) -> (Option<&str>, &str) {
    for scheme in ["Bearer ", "bearer ", "Basic ", "Token ", "token "] {
        if let Some(rest) = v.strip_prefix(scheme)
            && !rest.is_empty()
            && !rest.contains(' ')
        {
            return (Some(scheme), rest);
        }
    }
    (None, v)
}

/// `UPSTREAM.KEY`, made safe for the keychain (`vault::check_name`) and not in `taken`
/// (a `.2`, `.3`, ... suffix otherwise). Also what the window proposes for a value typed
/// into a password field.
pub fn secret_name(upstream: &str, key: &str, taken: &BTreeSet<String>) -> String {
    let clean: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut base = format!("{upstream}.{clean}");
    base.truncate(120);
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}.{n}");
        n += 1;
    }
    name
}

/// What the window shows of a plan: every name, place and warning, never a value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanView {
    pub client: String,
    pub servers: Vec<ServerView>,
    pub skipped: Vec<SkippedView>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerView {
    pub client_key: String,
    pub name: String,
    /// `stdio, runs COMMAND` or `remote, URL`.
    pub what: String,
    pub secrets: Vec<SecretView>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretView {
    pub secret: String,
    pub place: String,
    pub because: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SkippedView {
    pub client_key: String,
    pub reason: String,
}

impl ImportPlan {
    pub fn view(&self) -> PlanView {
        PlanView {
            client: self.app.display_name().to_owned(),
            servers: self
                .servers
                .iter()
                .map(|s| ServerView {
                    client_key: s.client_key.clone(),
                    name: s.name.clone(),
                    what: match &s.entry {
                        ServerEntry::Stdio { command, .. } => format!("stdio, runs {command}"),
                        ServerEntry::Remote { url, .. } => format!("remote, {url}"),
                    },
                    secrets: s
                        .secrets
                        .iter()
                        .map(|m| SecretView {
                            secret: m.secret.clone(),
                            place: m.place.clone(),
                            because: m.because.to_owned(),
                        })
                        .collect(),
                    warnings: s.warnings.clone(),
                })
                .collect(),
            skipped: self
                .skipped
                .iter()
                .map(|(k, r)| SkippedView {
                    client_key: k.clone(),
                    reason: r.clone(),
                })
                .collect(),
        }
    }

    /// The client's file afterwards: each imported entry replaced, in its place, by one
    /// that runs through the broker (named as in the broker); everything else as it was.
    pub fn client_text_after(&self, target: &BrokerTarget) -> Result<String, ClientConfigError> {
        let replaced: Vec<(String, String, Value)> = self
            .servers
            .iter()
            .map(|s| {
                (
                    s.client_key.clone(),
                    s.name.clone(),
                    entry(self.app, &s.name, target),
                )
            })
            .collect();
        super::adopt(&self.client_text, &replaced)
    }

    /// The client's file as it was, but with every value moving to the keychain replaced
    /// by a note naming its keychain entry: the backup must not keep what the import
    /// takes out of the file.
    pub fn redacted_backup(&self) -> Result<String, ClientConfigError> {
        if self.secret_count() == 0 {
            return Ok(self.client_text.clone());
        }
        let mut root: Map<String, Value> = match serde_json::from_str(&self.client_text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(ClientConfigError::NotAnObject),
            Err(e) => return Err(ClientConfigError::InvalidJson(e.to_string())),
        };
        if let Some(Value::Object(servers)) = root.get_mut(SERVERS_KEY) {
            for s in &self.servers {
                let Some(Value::Object(e)) = servers.get_mut(&s.client_key) else {
                    continue;
                };
                for m in &s.secrets {
                    let table = if m.place.starts_with("env ") {
                        "env"
                    } else {
                        "headers"
                    };
                    if let Some(Value::Object(t)) = e.get_mut(table)
                        && let Some(v) = t.get_mut(&m.key)
                    {
                        *v = Value::String(format!(
                            "(moved to the OS keychain by mcp-broker as {:?})",
                            m.secret
                        ));
                    }
                }
            }
        }
        Ok(super::render(&root))
    }

    pub fn secret_count(&self) -> usize {
        self.servers.iter().map(|s| s.secrets.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn config(text: &str) -> Config {
        crate::config::parse(Path::new("c.toml"), text).unwrap()
    }

    fn target() -> BrokerTarget {
        BrokerTarget {
            executable: PathBuf::from("/opt/bin/mcp-broker"),
            data_dir: None,
            config: None,
            base_url: "http://127.0.0.1:7391".into(),
        }
    }

    const DESKTOP: &str = r#"{
  "globalShortcut": "Ctrl+Space",
  "mcpServers": {
    "GitHub": {
      "command": "docker",
      "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
      "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "LOG": "debug", "HOME_DIR": "${HOME}"}
    },
    "linear": {"type": "http", "url": "https://mcp.linear.app/mcp", "headers": {"Authorization": "Bearer lin_api_0123456789abcdef0123"}},
    "odd": {"args": []},
    "mine": {"command": "/usr/bin/mcp-broker", "args": ["connect", "mine"]}
  },
  "preferences": {"a": 1}
}"#;

    fn plan_all(cfg: &Config, chosen: &[&str]) -> Result<ImportPlan, PlanError> {
        let chosen: Vec<String> = chosen.iter().map(|s| s.to_string()).collect();
        plan(
            ClientApp::ClaudeDesktop,
            DESKTOP,
            &chosen,
            &BTreeMap::new(),
            &Broker {
                config: cfg,
                taken_secrets: &BTreeSet::new(),
            },
            &|c| c == "docker",
        )
    }

    #[test]
    fn plans_stdio_and_remote_with_secrets_moved() {
        let cfg = config("");
        let p = plan_all(&cfg, &[]).unwrap();
        assert_eq!(
            p.servers
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["github", "linear"]
        );
        assert_eq!(
            p.skipped.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
            ["odd", "mine"]
        );
        let gh = &p.servers[0];
        let ServerEntry::Stdio { env, args, .. } = &gh.entry else {
            panic!()
        };
        assert_eq!(args.len(), 6);
        assert_eq!(
            env["GITHUB_PERSONAL_ACCESS_TOKEN"],
            ValueSource::Secret {
                secret: "github.GITHUB_PERSONAL_ACCESS_TOKEN".into(),
                prefix: None
            }
        );
        assert_eq!(env["LOG"], ValueSource::Literal("debug".into()));
        assert_eq!(env["HOME_DIR"], ValueSource::Env { env: "HOME".into() });
        assert_eq!(gh.secrets.len(), 1);
        assert_eq!(gh.secrets[0].place, "env GITHUB_PERSONAL_ACCESS_TOKEN");
        assert!(gh.warnings.is_empty(), "{:?}", gh.warnings);

        let linear = &p.servers[1];
        let ServerEntry::Remote { headers, url, .. } = &linear.entry else {
            panic!()
        };
        assert_eq!(url, "https://mcp.linear.app/mcp");
        assert_eq!(
            headers["Authorization"],
            ValueSource::Secret {
                secret: "linear.Authorization".into(),
                prefix: Some("Bearer ".into())
            }
        );
        assert_eq!(
            linear.secrets[0].value.expose(),
            "lin_api_0123456789abcdef0123"
        );
        assert_eq!(p.secret_count(), 2);
    }

    #[test]
    fn the_plan_never_prints_a_value() {
        let cfg = config("");
        let p = plan_all(&cfg, &[]).unwrap();
        let view = p.view();
        let json = serde_json::to_string(&view).unwrap();
        for shown in [format!("{p:?}"), format!("{view:?}"), json] {
            assert!(!shown.contains("ghp_abc"), "{shown}");
            assert!(!shown.contains("lin_api_0123"), "{shown}");
        }
        assert_eq!(view.servers[0].what, "stdio, runs docker");
        assert_eq!(
            view.servers[1].secrets[0],
            SecretView {
                secret: "linear.Authorization".into(),
                place: "header Authorization".into(),
                because: "its name".into()
            }
        );
        assert_eq!(view.skipped[1].client_key, "mine");
    }

    #[test]
    fn client_file_after_and_backup_hold_no_secret() {
        let cfg = config("");
        let p = plan_all(&cfg, &[]).unwrap();
        let after = p.client_text_after(&target()).unwrap();
        let backup = p.redacted_backup().unwrap();
        for text in [&after, &backup] {
            assert!(!text.contains("ghp_abc"), "{text}");
            assert!(!text.contains("lin_api_0123"), "{text}");
        }
        let v: Value = serde_json::from_str(&after).unwrap();
        let servers = v["mcpServers"].as_object().unwrap();
        // Same places, broker names, other entries and keys untouched.
        assert_eq!(
            servers.keys().collect::<Vec<_>>(),
            ["github", "linear", "odd", "mine"]
        );
        assert_eq!(
            servers["github"],
            serde_json::json!({"command": "/opt/bin/mcp-broker", "args": ["connect", "github"]})
        );
        assert_eq!(
            servers["linear"],
            serde_json::json!({"command": "/opt/bin/mcp-broker", "args": ["connect", "linear"]})
        );
        assert_eq!(v["preferences"], serde_json::json!({"a": 1}));
        let b: Value = serde_json::from_str(&backup).unwrap();
        assert_eq!(b["mcpServers"]["GitHub"]["env"]["LOG"], "debug");
        assert!(
            b["mcpServers"]["GitHub"]["env"]["GITHUB_PERSONAL_ACCESS_TOKEN"]
                .as_str()
                .unwrap()
                .contains("github.GITHUB_PERSONAL_ACCESS_TOKEN")
        );
    }

    #[test]
    fn clashes_and_unknown_names_are_refused() {
        let cfg = config("[servers.github]\ncommand = \"x\"\n");
        assert_eq!(
            plan_all(&cfg, &[]).unwrap_err(),
            PlanError::NameTaken {
                key: "GitHub".into(),
                name: "github".into()
            }
        );
        // Choosing only the other one works.
        assert_eq!(plan_all(&cfg, &["linear"]).unwrap().servers.len(), 1);
        assert!(matches!(
            plan_all(&cfg, &["nope"]).unwrap_err(),
            PlanError::NoSuchServer { .. }
        ));
        assert!(matches!(
            plan_all(&cfg, &["mine"]).unwrap_err(),
            PlanError::Unsupported { .. }
        ));
        // Renamed on request.
        let renames = [("GitHub".to_owned(), "gh2".to_owned())].into();
        let p = plan(
            ClientApp::Cursor,
            DESKTOP,
            &["GitHub".into()],
            &renames,
            &Broker {
                config: &cfg,
                taken_secrets: &BTreeSet::new(),
            },
            &|_| true,
        )
        .unwrap();
        assert_eq!(p.servers[0].name, "gh2");
        assert_eq!(
            p.servers[0].secrets[0].secret,
            "gh2.GITHUB_PERSONAL_ACCESS_TOKEN"
        );
    }

    #[test]
    fn taken_secret_names_get_a_suffix_and_declined_ones_stay_literal() {
        let cfg = config("");
        let taken: BTreeSet<String> = ["linear.Authorization".to_owned()].into();
        let mut p = plan(
            ClientApp::ClaudeCode,
            DESKTOP,
            &["linear".into()],
            &BTreeMap::new(),
            &Broker {
                config: &cfg,
                taken_secrets: &taken,
            },
            &|_| true,
        )
        .unwrap();
        assert_eq!(p.servers[0].secrets[0].secret, "linear.Authorization.2");
        p.servers[0].keep_literal(0);
        let ServerEntry::Remote { headers, .. } = &p.servers[0].entry else {
            panic!()
        };
        assert_eq!(
            headers["Authorization"],
            ValueSource::Literal("Bearer lin_api_0123456789abcdef0123".into())
        );
        assert_eq!(p.secret_count(), 0);
    }

    #[test]
    fn warnings_for_missing_commands_secret_arguments_and_sse() {
        let text = r#"{"mcpServers": {
            "a": {"command": "nope-not-here", "args": ["--token", "sk-abcdefghijklmnop1234567890"]},
            "b": {"type": "sse", "url": "https://x.example/sse"}
        }}"#;
        let cfg = config("");
        let p = plan(
            ClientApp::ClaudeCode,
            text,
            &[],
            &BTreeMap::new(),
            &Broker {
                config: &cfg,
                taken_secrets: &BTreeSet::new(),
            },
            &|_| false,
        )
        .unwrap();
        let w = &p.servers[0].warnings;
        assert!(w[0].contains("not on the broker's PATH"), "{w:?}");
        assert!(w[1].contains("argument 2 looks like a secret"), "{w:?}");
        assert!(!w.join(" ").contains("sk-abc"));
        assert!(p.servers[1].warnings[0].contains("HTTP+SSE"));
    }

    #[test]
    fn what_counts_as_a_secret() {
        let yes = [
            ("GITHUB_TOKEN", "abc"),
            ("OPENAI_API_KEY", "whatever-it-is"),
            ("api-key", "x1"),
            ("Authorization", "Bearer abc"),
            ("DB_PASSWORD", "hunter2"),
            ("X", "ghp_0123456789abcdefghij"),
            ("CONFIG", "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG"),
            ("SLACK_BOT", "xoxb-1234-5678-abcdefgh"),
        ];
        for (k, v) in yes {
            assert!(secret_reason(k, v).is_some(), "{k}={v}");
        }
        let no = [
            ("SSH_KEY_PATH", "/home/a/.ssh/id"),
            ("TOKEN_TTL", "3600"),
            ("LOG_LEVEL", "debug"),
            ("KEYBOARD", "us"),
            ("ENDPOINT", "https://api.example.com/v1"),
            ("AUTH_ENABLED", "true"),
            ("GITHUB_TOKEN", ""),
            ("MODE", "stdio-with-a-fairly-long-name"),
        ];
        for (k, v) in no {
            assert!(secret_reason(k, v).is_none(), "{k}={v}");
        }
        assert_eq!(env_reference("${GITHUB_TOKEN}"), Some("GITHUB_TOKEN"));
        assert_eq!(env_reference("${env:X_1}"), Some("X_1"));
        assert_eq!(env_reference("${A:-b}"), None);
        assert_eq!(broker_name("My_Server.v2"), Some("my-server-v2".into()));
        assert_eq!(broker_name("ü"), None);
    }
}
