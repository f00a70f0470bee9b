//! Changes to `config.toml` made by the app rather than by hand: add, replace or remove
//! one `[servers.NAME]` table, keeping everything else (comments, blank lines, order,
//! quoting) as the person wrote it (`toml_edit`).
//!
//! Every change is checked by rendering the new text and loading it with
//! [`config::parse`], so a change is accepted exactly when the loader would accept the
//! result, and refused with the loader's own `FILE: KEY: REASON`. A refused change writes
//! nothing. An accepted one is written in one rename (`atomic_file`); a new file gets
//! mode 0600. [`Draft::commit`] also refuses when the file changed on disk since it was
//! read (a hand edit in between), instead of silently undoing that edit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, InlineTable, Item, Table, TableLike, Value};

use crate::config::{self, Config, ConfigError, ValueSource};

/// One server as the window's form (or an import) describes it. Nothing here is checked:
/// [`Draft`] renders it and the loader judges the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum ServerEntry {
    Stdio {
        command: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        cwd: Option<PathBuf>,
        #[serde(default)]
        env: BTreeMap<String, ValueSource>,
    },
    Remote {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, ValueSource>,
        #[serde(default)]
        client_id: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The result would not load; the loader's own message (file, key, reason).
    #[error("{0}")]
    Invalid(ConfigError),
    #[error(
        "config error in {}: servers.{name}: a server with this name already exists; choose another name or replace it",
        file.display()
    )]
    NameTaken { file: PathBuf, name: String },
    #[error("config error in {}: servers.{name}: no server with this name", file.display())]
    NoSuchServer { file: PathBuf, name: String },
    #[error(
        "{} changed on disk while this change was being made; nothing was written, try again",
        file.display()
    )]
    ChangedMeanwhile { file: PathBuf },
    #[error("cannot write {}: {source}", file.display())]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
}

/// The keys a server table may have (the loader refuses any other).
const FIELDS: [&str; 7] = [
    "command",
    "args",
    "cwd",
    "env",
    "url",
    "headers",
    "client_id",
];

/// `config.toml` as read, with changes not yet written.
#[derive(Debug)]
pub struct Draft {
    path: PathBuf,
    /// The text as read (`None`: no file yet).
    before: Option<String>,
    doc: DocumentMut,
}

impl Draft {
    /// Reads `path` (no file: an empty draft). A file that is not TOML is refused with
    /// the loader's message: an edit must not turn a broken file into a different one.
    pub fn open(path: &Path) -> Result<Draft, EditError> {
        let before = config::read(path).map_err(EditError::Invalid)?;
        Draft::from_text(path, before)
    }

    /// A draft of `text` as if read from `path` (`None`: no file yet).
    pub fn from_text(path: &Path, before: Option<String>) -> Result<Draft, EditError> {
        let doc = match before.as_deref() {
            None => DocumentMut::new(),
            Some(t) => t.parse::<DocumentMut>().map_err(|_| {
                // The loader words TOML syntax errors (with a line) the same way.
                match config::parse(path, t) {
                    Err(e) => EditError::Invalid(e),
                    Ok(_) => EditError::Invalid(ConfigError {
                        file: path.to_owned(),
                        key: String::new(),
                        reason: "not valid TOML".into(),
                    }),
                }
            })?,
        };
        Ok(Draft {
            path: path.to_owned(),
            before,
            doc,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as it was read, `None` when there was none.
    pub fn before(&self) -> Option<&str> {
        self.before.as_deref()
    }

    pub fn has_server(&self, name: &str) -> bool {
        self.servers().is_some_and(|s| s.contains_key(name))
    }

    fn servers(&self) -> Option<&dyn TableLike> {
        self.doc.get("servers").and_then(Item::as_table_like)
    }

    fn servers_mut(&mut self) -> Result<&mut dyn TableLike, EditError> {
        let item = self.doc.entry("servers").or_insert_with(|| {
            let mut t = Table::new();
            // `[servers.NAME]` headers only, no empty `[servers]` line.
            t.set_implicit(true);
            Item::Table(t)
        });
        let path = &self.path;
        item.as_table_like_mut().ok_or_else(|| {
            EditError::Invalid(ConfigError {
                file: path.clone(),
                key: "servers".into(),
                reason: "must be a table of servers".into(),
            })
        })
    }

    /// Adds `[servers.NAME]` after the last server; a name already there is refused.
    pub fn add(&mut self, name: &str, entry: &ServerEntry) -> Result<(), EditError> {
        if self.has_server(name) {
            return Err(EditError::NameTaken {
                file: self.path.clone(),
                name: name.to_owned(),
            });
        }
        let first_thing = self.doc.as_table().is_empty();
        let mut table = Table::new();
        fill(&mut table, entry);
        if !first_thing {
            table.decor_mut().set_prefix("\n");
        }
        self.servers_mut()?.insert(name, Item::Table(table));
        Ok(())
    }

    /// Replaces the settings of server NAME in place: its position, its comments and the
    /// comments beside values that stay are kept.
    pub fn replace(&mut self, name: &str, entry: &ServerEntry) -> Result<(), EditError> {
        let file = self.path.clone();
        let missing = || EditError::NoSuchServer {
            file: file.clone(),
            name: name.to_owned(),
        };
        let servers = self.servers_mut()?;
        let item = servers.get_mut(name).ok_or_else(missing)?;
        let Some(table) = item.as_table_like_mut() else {
            // Not a table: the loader would refuse the file anyway; start it afresh.
            let mut t = Table::new();
            fill(&mut t, entry);
            *item = Item::Table(t);
            return Ok(());
        };
        let new = values(entry);
        for field in FIELDS {
            match new.iter().find(|(k, _)| *k == field) {
                Some((_, v)) => set_keeping_decor(table, field, v.clone()),
                None => {
                    table.remove(field);
                }
            }
        }
        Ok(())
    }

    /// Removes `[servers.NAME]`, with the comments written above it.
    pub fn remove(&mut self, name: &str) -> Result<(), EditError> {
        if !self.has_server(name) {
            return Err(EditError::NoSuchServer {
                file: self.path.clone(),
                name: name.to_owned(),
            });
        }
        self.servers_mut()?.remove(name);
        Ok(())
    }

    /// The text the file would have. `toml_edit` writes `\n`; a file written with `\r\n`
    /// (Windows editors) keeps its line endings.
    pub fn text(&self) -> String {
        let text = self.doc.to_string();
        if self.before.as_deref().is_some_and(|b| b.contains("\r\n")) {
            text.replace("\r\n", "\n").replace('\n', "\r\n")
        } else {
            text
        }
    }

    /// Renders and loads the result: the configuration it would be, or the loader's error.
    pub fn check(&self) -> Result<(String, Config), EditError> {
        let text = self.text();
        let config = config::parse(&self.path, &text).map_err(EditError::Invalid)?;
        Ok((text, config))
    }

    /// Checks, then writes the file in one rename, unless it changed on disk since it was
    /// read. Returns the configuration now in the file (for the caller to apply).
    pub fn commit(self) -> Result<Config, EditError> {
        let (text, config) = self.check()?;
        let now = config::read(&self.path).map_err(EditError::Invalid)?;
        if now != self.before {
            return Err(EditError::ChangedMeanwhile { file: self.path });
        }
        if self.before.as_deref() == Some(text.as_str()) {
            return Ok(config);
        }
        write(&self.path, &text)?;
        Ok(config)
    }
}

/// Writes `text` as the whole file, in one rename (a new file gets mode 0600). For
/// putting back a previous text after a later step of a larger change failed.
pub fn write(path: &Path, text: &str) -> Result<(), EditError> {
    crate::atomic_file::replace(path, text.as_bytes()).map_err(|source| EditError::Write {
        file: path.to_owned(),
        source,
    })
}

/// Adds server NAME to the file at `path` and returns the new configuration.
pub fn add_server(path: &Path, name: &str, entry: &ServerEntry) -> Result<Config, EditError> {
    let mut d = Draft::open(path)?;
    d.add(name, entry)?;
    d.commit()
}

/// Replaces server NAME's settings and returns the new configuration.
pub fn replace_server(path: &Path, name: &str, entry: &ServerEntry) -> Result<Config, EditError> {
    let mut d = Draft::open(path)?;
    d.replace(name, entry)?;
    d.commit()
}

/// Removes server NAME and returns the new configuration.
pub fn remove_server(path: &Path, name: &str) -> Result<Config, EditError> {
    let mut d = Draft::open(path)?;
    d.remove(name)?;
    d.commit()
}

/// The entry's keys and values, in the order a person would write them.
fn values(entry: &ServerEntry) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    match entry {
        ServerEntry::Stdio {
            command,
            args,
            cwd,
            env,
        } => {
            out.push(("command", Value::from(command.as_str())));
            if !args.is_empty() {
                out.push((
                    "args",
                    Value::Array(args.iter().map(String::as_str).collect()),
                ));
            }
            if let Some(cwd) = cwd {
                out.push(("cwd", Value::from(cwd.to_string_lossy().as_ref())));
            }
            if !env.is_empty() {
                out.push(("env", Value::InlineTable(sources(env))));
            }
        }
        ServerEntry::Remote {
            url,
            headers,
            client_id,
        } => {
            out.push(("url", Value::from(url.as_str())));
            if !headers.is_empty() {
                out.push(("headers", Value::InlineTable(sources(headers))));
            }
            if let Some(c) = client_id {
                out.push(("client_id", Value::from(c.as_str())));
            }
        }
    }
    out
}

fn fill(table: &mut Table, entry: &ServerEntry) {
    for (k, v) in values(entry) {
        table.insert(k, Item::Value(v));
    }
}

fn sources(map: &BTreeMap<String, ValueSource>) -> InlineTable {
    map.iter().map(|(k, v)| (k.as_str(), source(v))).collect()
}

fn source(v: &ValueSource) -> Value {
    match v {
        ValueSource::Literal(s) => Value::from(s.as_str()),
        ValueSource::Env { env } => {
            Value::InlineTable(std::iter::once(("env", Value::from(env.as_str()))).collect())
        }
        ValueSource::Secret { secret, prefix } => {
            let mut t = InlineTable::new();
            t.insert("secret", Value::from(secret.as_str()));
            if let Some(p) = prefix {
                t.insert("prefix", Value::from(p.as_str()));
            }
            Value::InlineTable(t)
        }
    }
}

/// Sets `key` to `value`; when the key was there, its comments stay (the key's own
/// decor is untouched, the old value's decor moves to the new value).
fn set_keeping_decor(table: &mut dyn TableLike, key: &str, mut value: Value) {
    match table.get_mut(key) {
        Some(Item::Value(old)) => {
            if *old.to_string().trim() == *value.to_string().trim() {
                return;
            }
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        Some(other) => *other = Item::Value(value),
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio(command: &str) -> ServerEntry {
        ServerEntry::Stdio {
            command: command.into(),
            args: vec![],
            cwd: None,
            env: BTreeMap::new(),
        }
    }

    fn draft(text: &str) -> Draft {
        Draft::from_text(Path::new("c.toml"), Some(text.into())).unwrap()
    }

    #[test]
    fn add_to_an_empty_file_writes_a_servers_table() {
        let mut d = Draft::from_text(Path::new("c.toml"), None).unwrap();
        d.add(
            "gh",
            &ServerEntry::Stdio {
                command: "github-mcp-server".into(),
                args: vec!["stdio".into()],
                cwd: Some("/tmp".into()),
                env: [
                    ("A".to_owned(), ValueSource::Literal("1".into())),
                    ("B".to_owned(), ValueSource::Env { env: "HOME".into() }),
                    (
                        "GITHUB_TOKEN".to_owned(),
                        ValueSource::Secret {
                            secret: "gh".into(),
                            prefix: None,
                        },
                    ),
                ]
                .into(),
            },
        )
        .unwrap();
        assert_eq!(
            d.text(),
            "[servers.gh]\ncommand = \"github-mcp-server\"\nargs = [\"stdio\"]\ncwd = \"/tmp\"\n\
             env = { A = \"1\", B = { env = \"HOME\" }, GITHUB_TOKEN = { secret = \"gh\" } }\n"
        );
        let (_, c) = d.check().unwrap();
        assert_eq!(c.upstreams.len(), 1);
    }

    #[test]
    fn remote_with_a_prefixed_secret_header() {
        let mut d = draft("[broker]\nport = 7000\n");
        d.add(
            "linear",
            &ServerEntry::Remote {
                url: "https://mcp.linear.app/mcp".into(),
                headers: [(
                    "Authorization".to_owned(),
                    ValueSource::Secret {
                        secret: "linear".into(),
                        prefix: Some("Bearer ".into()),
                    },
                )]
                .into(),
                client_id: None,
            },
        )
        .unwrap();
        let (text, c) = d.check().unwrap();
        assert!(
            text.ends_with(
                "\n\n[servers.linear]\nurl = \"https://mcp.linear.app/mcp\"\n\
                 headers = { Authorization = { secret = \"linear\", prefix = \"Bearer \" } }\n"
            ),
            "{text}"
        );
        assert_eq!(c.upstreams[0].secret_refs()[0].0, "linear");
    }

    #[test]
    fn the_loaders_messages_for_bad_entries() {
        let cases: [(&str, ServerEntry, &str, &str); 4] = [
            ("Bad_Name", stdio("x"), "servers.Bad_Name", "[a-z0-9-]+"),
            ("a", stdio(" "), "servers.a.command", "must not be empty"),
            (
                "a",
                ServerEntry::Remote {
                    url: "http://example.com/mcp".into(),
                    headers: BTreeMap::new(),
                    client_id: None,
                },
                "servers.a.url",
                "loopback",
            ),
            (
                "a",
                ServerEntry::Stdio {
                    command: "x".into(),
                    args: vec![],
                    cwd: None,
                    env: [(
                        "K".to_owned(),
                        ValueSource::Secret {
                            secret: "bad name".into(),
                            prefix: None,
                        },
                    )]
                    .into(),
                },
                "servers.a.env.K",
                "not a valid secret name",
            ),
        ];
        for (name, entry, key, reason) in cases {
            let mut d = draft("");
            d.add(name, &entry).unwrap();
            let Err(EditError::Invalid(e)) = d.check() else {
                panic!("{name}: accepted")
            };
            assert_eq!(e.key, key);
            assert!(e.reason.contains(reason), "{e}");
            assert!(e.to_string().starts_with("config error in c.toml: "), "{e}");
        }
    }

    #[test]
    fn replace_switches_transport_in_place() {
        let mut d = draft(
            "[servers.a]\ncommand = \"x\" # the tool\nargs = [\"1\"]\n\n[servers.b]\ncommand = \"y\"\n",
        );
        d.replace(
            "a",
            &ServerEntry::Remote {
                url: "https://a.example/mcp".into(),
                headers: BTreeMap::new(),
                client_id: Some("cid".into()),
            },
        )
        .unwrap();
        assert_eq!(
            d.text(),
            "[servers.a]\nurl = \"https://a.example/mcp\"\nclient_id = \"cid\"\n\n[servers.b]\ncommand = \"y\"\n"
        );
        d.check().unwrap();
    }

    #[test]
    fn replace_keeps_the_era_setting_the_form_does_not_show() {
        let mut d = draft("[servers.a]\nurl = \"https://a.example/mcp\"\nera = \"modern\"\n");
        d.replace(
            "a",
            &ServerEntry::Remote {
                url: "https://b.example/mcp".into(),
                headers: BTreeMap::new(),
                client_id: None,
            },
        )
        .unwrap();
        let (_, config) = d.check().unwrap();
        assert_eq!(config.upstreams[0].era, config::UpstreamEra::Modern);
        assert!(d.text().contains("era = \"modern\""), "{}", d.text());
    }

    #[test]
    fn replace_keeps_the_servers_accounts() {
        let text = "[servers.gh]\ncommand = \"x\"\n\n[servers.gh.accounts.work] # mine\nenv = { T = { secret = \"gh-work\" } }\n\n[servers.gh.accounts.home]\nenv = { T = \"h\" }\n";
        let mut d = draft(text);
        d.replace("gh", &stdio("y")).unwrap();
        assert_eq!(d.text(), text.replace("command = \"x\"", "command = \"y\""));
        let (_, c) = d.check().unwrap();
        assert_eq!(c.upstream("gh").unwrap().account_names(), ["home", "work"]);
        let mut d = draft(text);
        d.remove("gh").unwrap();
        assert!(!d.text().contains("accounts"), "{}", d.text());
    }

    #[test]
    fn inline_server_tables_are_edited_too() {
        let mut d = draft("[servers]\na = { command = \"x\" }\n");
        d.replace("a", &stdio("z")).unwrap();
        assert_eq!(d.text(), "[servers]\na = { command = \"z\" }\n");
        assert!(matches!(
            d.add("a", &stdio("q")),
            Err(EditError::NameTaken { .. })
        ));
        d.remove("a").unwrap();
        assert!(matches!(d.remove("a"), Err(EditError::NoSuchServer { .. })));
        assert!(matches!(
            d.replace("a", &stdio("q")),
            Err(EditError::NoSuchServer { .. })
        ));
    }

    #[test]
    fn files_without_a_final_newline_or_with_crlf() {
        let mut d = draft("[broker]\nport = 7000");
        d.add("a", &stdio("x")).unwrap();
        let (text, c) = d.check().unwrap();
        assert!(text.starts_with("[broker]\nport = 7000\n"), "{text:?}");
        assert_eq!(c.upstreams.len(), 1);

        let mut d = draft("# mine\r\n[servers.a]\r\ncommand = \"x\"\r\n");
        d.add("b", &stdio("y")).unwrap();
        let (text, c) = d.check().unwrap();
        assert!(
            text.starts_with("# mine\r\n[servers.a]\r\ncommand = \"x\"\r\n"),
            "{text:?}"
        );
        assert_eq!(c.upstreams.len(), 2);
    }

    #[test]
    fn a_file_that_is_not_toml_is_refused_with_the_loaders_line() {
        let e = Draft::from_text(Path::new("c.toml"), Some("[servers.a\n".into())).unwrap_err();
        let EditError::Invalid(e) = e else { panic!() };
        assert!(e.reason.contains("line 1"), "{e}");
    }

    #[test]
    fn entries_round_trip_as_json() {
        let e = ServerEntry::Remote {
            url: "https://x/mcp".into(),
            headers: [("X-Key".to_owned(), ValueSource::Env { env: "K".into() })].into(),
            client_id: None,
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"transport": "remote", "url": "https://x/mcp",
                "headers": {"X-Key": {"env": "K"}}, "client_id": null})
        );
        assert_eq!(serde_json::from_value::<ServerEntry>(json).unwrap(), e);
    }
}
