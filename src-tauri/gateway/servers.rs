//! The configured upstreams as a person changes them while the broker runs: add, edit and
//! remove a server from the window, import the servers an MCP client already has, and
//! apply a new configuration (those changes, or a hand edit of `config.toml` noticed by
//! the file watch) without a restart.
//!
//! Writing is done by the modules that own the file and the keychain (`upstream_edit`,
//! `config_edit`, `client_import`), which validate as the loader does; this module turns
//! the window's form into their input and applies what they wrote. Applying follows one
//! rule set ([`Gateway::apply_config`]): a new upstream is served at once (its `/mcp/NAME`
//! and metadata answer), a changed one has its open sessions ended so that the next
//! request starts with the new settings, a removed one revokes nothing but refuses new
//! requests with a message saying it was removed. `[broker]` settings are taken only at
//! start: a change there is reported as needing a restart, never half applied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::client_apps::import::{self, ClientServerKind, PlanError, PlanView};
use crate::client_apps::{BrokerTarget, ClientApp};
use crate::client_import::{self, ImportError};
use crate::config::{self, Config, ConfigDiff, ConfigError, Transport, ValueSource};
use crate::config_edit::{self, EditError, ServerEntry};
use crate::config_watch::{self, ConfigWatcher, WatchError};
use crate::events::GatewayEvent;
use crate::oauth::authorize::AuthorizeContext;
use crate::upstream_edit::{self, SaveError, SaveMode, TypedSecret};
use crate::vault::Secret;

use super::{Gateway, GatewayError, resources};

/// One server as the window's form shows and sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerForm {
    pub name: String,
    pub transport: FormTransport,
    /// stdio: the program and its arguments, and the directory it starts in (empty: the
    /// broker's).
    pub command: String,
    pub args: Vec<String>,
    pub cwd: String,
    /// remote: the MCP endpoint, and the OAuth client to sign in as (empty: register).
    pub url: String,
    pub client_id: String,
    /// stdio: the environment; remote: the headers.
    pub values: Vec<FormValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormTransport {
    Stdio,
    Remote,
}

/// One environment variable or header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormValue {
    pub key: String,
    pub kind: ValueKind,
    /// literal: the text; env: the variable to read; secret: what was typed into the
    /// password field, or empty to keep the stored value. A secret's value is never sent
    /// to the window: the form for an existing server has it empty.
    pub value: String,
    /// secret: the keychain entry (empty for a new value: the broker names it).
    pub secret: String,
    /// secret: what goes before the value (`Bearer `), kept in the file.
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    Literal,
    Env,
    Secret,
}

/// What a change did to the configuration in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// `[broker]` settings in the file differ from those in force; a restart applies them.
    pub restart_needed: bool,
    /// The change was made, but something around it was not (the index of secret names).
    pub warning: Option<String>,
}

impl Applied {
    fn of(diff: ConfigDiff, warning: Option<String>) -> Applied {
        Applied {
            added: diff.added,
            changed: diff.changed,
            removed: diff.removed,
            restart_needed: diff.settings_need_restart,
            warning,
        }
    }
}

/// A client app whose servers can be imported, as found on this computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportSource {
    /// `claude-desktop`, `claude-code`, `cursor`: what the import calls take.
    pub client: String,
    pub display_name: String,
    /// Where its configuration is (or would be).
    pub file: String,
    pub found: bool,
    /// Why the file cannot be used (not valid JSON, unreadable).
    pub error: Option<String>,
    pub servers: Vec<ImportCandidate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportCandidate {
    /// Its name in the client's file.
    pub key: String,
    /// `stdio, runs npx`, `remote, URL`, or why it cannot be imported.
    pub what: String,
    pub importable: bool,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedView {
    /// The broker names of the imported servers.
    pub servers: Vec<String>,
    /// The keychain entries written.
    pub secrets: Vec<String>,
    /// The client's rewritten file, and its backup (without the moved values).
    pub client_file: String,
    pub backup: String,
    pub applied: Applied,
}

/// Why a change to the servers was not made. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The form itself is incomplete (before the loader could judge it).
    #[error("{place}: {reason}")]
    Form { place: String, reason: String },
    #[error("{0}")]
    Save(#[from] SaveError),
    #[error("{0}")]
    Edit(#[from] EditError),
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Import(#[from] ImportError),
    #[error("unknown client {0:?}: one of claude-desktop, claude-code, cursor")]
    UnknownClient(String),
    #[error("cannot find {0}'s configuration: this user has no home directory")]
    NoHome(&'static str),
    #[error("{client} has no configuration at {file}; nothing to import")]
    NoClientFile { client: &'static str, file: PathBuf },
    #[error("cannot read {file}: {source}")]
    ClientRead {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("pick at least one server to import")]
    NothingChosen,
    /// The import's task ended without an answer (it panicked or was cancelled).
    #[error("the import stopped unexpectedly: {0}")]
    Task(tokio::task::JoinError),
    /// The client's entries run this program: its path is needed.
    #[error("cannot find this program's own path: {0}")]
    OwnPath(std::io::Error),
}

impl Gateway {
    /// The form for editing server `name`, as configured now (no secret values).
    pub fn server_form(&self, name: &str) -> Result<ServerForm, GatewayError> {
        let config = self.config();
        let u = config
            .upstream(name)
            .ok_or_else(|| GatewayError::UnknownUpstream(name.to_owned()))?;
        let values = |m: &BTreeMap<String, ValueSource>| -> Vec<FormValue> {
            m.iter().map(|(k, v)| form_value(k, v)).collect()
        };
        let mut form = ServerForm {
            name: name.to_owned(),
            transport: FormTransport::Stdio,
            command: String::new(),
            args: Vec::new(),
            cwd: String::new(),
            url: String::new(),
            client_id: String::new(),
            values: Vec::new(),
        };
        match &u.transport {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                form.command = command.clone();
                form.args = args.clone();
                form.cwd = cwd
                    .as_ref()
                    .map(|c| c.display().to_string())
                    .unwrap_or_default();
                form.values = values(env);
            }
            Transport::Http {
                url,
                headers,
                client_id,
            } => {
                form.transport = FormTransport::Remote;
                form.url = url.to_string();
                form.client_id = client_id.clone().unwrap_or_default();
                form.values = values(headers);
            }
        }
        Ok(form)
    }

    /// Adds a server: written to `config.toml` (secrets typed into the form to the
    /// keychain) and served at once.
    pub async fn add_server(&self, form: ServerForm) -> Result<Applied, GatewayError> {
        self.save_server(form, SaveMode::Add).await
    }

    /// Changes a server's settings; its open sessions end, the next request starts one
    /// with the new settings.
    pub async fn update_server(&self, form: ServerForm) -> Result<Applied, GatewayError> {
        self.save_server(form, SaveMode::Replace).await
    }

    async fn save_server(&self, form: ServerForm, mode: SaveMode) -> Result<Applied, GatewayError> {
        let config = self.config();
        let taken = self.taken_secret_names(&config).await;
        let (entry, typed) = entry_of(&form, &taken)?;
        let stores_secrets = !typed.is_empty();
        let saved = upstream_edit::save(
            &config.path,
            form.name.trim(),
            &entry,
            mode,
            typed,
            &self.inner.vault,
            &self.inner.store,
        )
        .await
        .map_err(ServerError::from)?;
        if stores_secrets {
            self.emit(GatewayEvent::SecretsChanged);
        }
        Ok(Applied::of(
            self.apply_written(&config, saved.config).await,
            saved.index_warning,
        ))
    }

    /// Removes a server from `config.toml`. Its sessions end and its requests are
    /// refused; its grants and secrets stay (they serve it again if it comes back).
    pub async fn remove_server(&self, name: &str) -> Result<Applied, GatewayError> {
        let before = self.config();
        let config = config_edit::remove_server(&before.path, name).map_err(ServerError::from)?;
        Ok(Applied::of(self.apply_written(&before, config).await, None))
    }

    /// The client apps whose servers could be imported, each with what its file holds.
    pub fn import_sources(&self) -> Vec<ImportSource> {
        ClientApp::value_variants()
            .iter()
            .map(|&app| {
                let mut source = ImportSource {
                    client: client_id(app),
                    display_name: app.display_name().to_owned(),
                    file: String::new(),
                    found: false,
                    error: None,
                    servers: Vec::new(),
                };
                let Some(file) = app.user_config_file() else {
                    source.error = Some(ServerError::NoHome(app.display_name()).to_string());
                    return source;
                };
                source.file = file.display().to_string();
                match std::fs::read_to_string(&file) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => source.error = Some(format!("cannot read it: {e}")),
                    Ok(text) => {
                        source.found = true;
                        match import::servers(&text) {
                            Ok(found) => {
                                source.servers = found
                                    .into_iter()
                                    .map(|s| ImportCandidate {
                                        importable: matches!(
                                            s.kind,
                                            ClientServerKind::Stdio { .. }
                                                | ClientServerKind::Remote { .. }
                                        ),
                                        what: s.kind.describe(),
                                        key: s.key,
                                    })
                                    .collect()
                            }
                            Err(e) => source.error = Some(e.to_string()),
                        }
                    }
                }
                source
            })
            .collect()
    }

    /// What importing `chosen` (names in the client's file) would do: the broker names,
    /// and each value that would move to the keychain (names and places, never values).
    pub async fn import_preview(
        &self,
        client: &str,
        chosen: &[String],
    ) -> Result<PlanView, GatewayError> {
        let (_, plan) = self.import_plan(client, chosen).await?;
        Ok(plan.view())
    }

    /// Imports `chosen` from the client's file: the servers into `config.toml` (served
    /// at once), each value in `confirmed` (keychain entry names from the preview) into
    /// the keychain (the others stay literal values in `config.toml`), and the client's
    /// entries rewritten to go through this broker (with a backup without the values).
    pub async fn import_servers(
        &self,
        client: &str,
        chosen: &[String],
        confirmed: &[String],
    ) -> Result<ImportedView, GatewayError> {
        let before = self.config();
        let (file, mut plan) = self.import_plan(client, chosen).await?;
        for s in &mut plan.servers {
            let mut i = 0;
            while i < s.secrets.len() {
                if confirmed.contains(&s.secrets[i].secret) {
                    i += 1;
                } else {
                    s.keep_literal(i);
                }
            }
        }
        let target = BrokerTarget {
            executable: std::env::current_exe()
                .and_then(|p| p.canonicalize())
                .map_err(ServerError::OwnPath)?,
            data_dir: Some(
                std::path::absolute(self.data_dir()).unwrap_or_else(|_| self.data_dir().into()),
            ),
            config: None,
            base_url: self.issuer().to_string(),
        };
        // `carry_out` is written for the command line's `block_on` and its future is not
        // `Send`; the window's call runs it on a blocking thread of its own.
        let done = {
            let (config_path, data_dir) = (self.config().path.clone(), self.data_dir().to_owned());
            let (vault, plan, file) = (self.inner.vault.clone(), plan.clone(), file.clone());
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                runtime.block_on(client_import::carry_out(
                    &plan,
                    &config_path,
                    &file,
                    &target,
                    &vault,
                    &data_dir,
                ))
            })
            .await
            .map_err(ServerError::Task)?
            .map_err(ServerError::from)?
        };
        if !done.secrets.is_empty() {
            self.emit(GatewayEvent::SecretsChanged);
        }
        let diff = self.apply_written(&before, done.config).await;
        Ok(ImportedView {
            servers: plan.servers.iter().map(|s| s.name.clone()).collect(),
            secrets: done.secrets,
            client_file: file.display().to_string(),
            backup: done.backup.display().to_string(),
            applied: Applied::of(diff, done.index_warning),
        })
    }

    async fn import_plan(
        &self,
        client: &str,
        chosen: &[String],
    ) -> Result<(PathBuf, import::ImportPlan), GatewayError> {
        if chosen.is_empty() {
            return Err(ServerError::NothingChosen.into());
        }
        let app = ClientApp::from_str(client, true)
            .map_err(|_| ServerError::UnknownClient(client.to_owned()))?;
        let file = app
            .user_config_file()
            .ok_or(ServerError::NoHome(app.display_name()))?;
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ServerError::NoClientFile {
                    client: app.display_name(),
                    file,
                }
                .into());
            }
            Err(source) => return Err(ServerError::ClientRead { file, source }.into()),
        };
        let config = self.config();
        let taken = self.taken_secret_names(&config).await;
        let broker = import::Broker {
            config: &config,
            taken_secrets: &taken,
        };
        let on_path = |c: &str| which::which(c).is_ok();
        let plan = import::plan(app, &text, chosen, &BTreeMap::new(), &broker, &on_path)
            .map_err(ServerError::from)?;
        Ok((file, plan))
    }

    /// Secret names in use (referenced, or in the index): a new one avoids them.
    async fn taken_secret_names(&self, config: &Config) -> BTreeSet<String> {
        let mut taken: BTreeSet<String> = config
            .upstreams
            .iter()
            .flat_map(|u| u.secret_refs().into_iter().map(|(s, _)| s.to_owned()))
            .collect();
        match self.inner.store.secret_names().await {
            Ok(names) => taken.extend(names.into_iter().map(|(n, _)| n)),
            Err(e) => tracing::warn!("cannot read the index of secret names: {e}"),
        }
        taken
    }

    /// Applies a configuration this process just wrote, and says what the write changed
    /// against `before` (the file watch may have applied it already).
    async fn apply_written(&self, before: &Config, written: Config) -> ConfigDiff {
        let diff = ConfigDiff::between(before, &written);
        self.apply_config(written).await;
        diff
    }

    /// Puts `new` in force (see the module docs for the rules) and announces it; the
    /// `[broker]` settings in force stay. Returns what changed; nothing happens, and
    /// nothing is announced, when the upstreams are as they were.
    pub async fn apply_config(&self, new: Config) -> ConfigDiff {
        let _one_at_a_time = self.inner.applying.lock().await;
        let old = self.config();
        let diff = ConfigDiff::between(&old, &new);
        if diff.is_empty() {
            return diff;
        }
        let applied = Arc::new(Config {
            path: old.path.clone(),
            settings: old.settings.clone(),
            upstreams: new.upstreams,
        });
        self.inner.upstreams.reconfigure(&applied);
        let ctx = {
            let was = self.authorize_ctx();
            AuthorizeContext {
                resources: resources(self.issuer(), &applied),
                supported_scopes: was.supported_scopes.clone(),
                default_scopes: was.default_scopes.clone(),
            }
        };
        *self
            .inner
            .authorize_ctx
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(ctx);
        *self.inner.config.write().unwrap_or_else(|e| e.into_inner()) = applied;
        {
            let mut removed = self.inner.removed.lock().unwrap_or_else(|e| e.into_inner());
            removed.extend(diff.removed.iter().cloned());
            for n in &diff.added {
                removed.remove(n);
            }
        }
        for name in diff.changed.iter().chain(&diff.removed) {
            self.inner.upstreams.end_upstream(name).await;
            self.last_errors().remove(name);
        }
        tracing::info!(
            added = ?diff.added,
            changed = ?diff.changed,
            removed = ?diff.removed,
            "configuration applied"
        );
        if diff.settings_need_restart {
            tracing::warn!(
                "[broker] settings in {} changed; they take effect when mcp-broker restarts",
                old.path.display()
            );
        }
        self.emit(GatewayEvent::UpstreamsChanged {
            added: diff.added.clone(),
            changed: diff.changed.clone(),
            removed: diff.removed.clone(),
            restart_needed: diff.settings_need_restart,
        });
        diff
    }

    /// A configuration that cannot be used (a hand edit the loader refuses): the last
    /// good one stays in force, and listeners are told file, key and reason.
    pub fn reject_config(&self, e: &ConfigError) {
        tracing::warn!("{e}; the last good configuration stays in force");
        self.emit(GatewayEvent::ConfigRejected {
            file: e.file.display().to_string(),
            key: e.key.clone(),
            reason: e.reason.clone(),
        });
    }

    /// Whether `upstream` was removed from the configuration while this process ran.
    pub(super) fn was_removed(&self, upstream: &str) -> bool {
        self.inner
            .removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(upstream)
    }

    /// Watches the configuration file and applies each hand edit (or refuses it, keeping
    /// the last good configuration). The task ends when the gateway's runtime does, or
    /// when it is aborted.
    pub fn watch_config(&self) -> Result<JoinHandle<()>, WatchError> {
        let path = self.config().path.clone();
        let mut watch = ConfigWatcher::start(&path, config_watch::DEBOUNCE)?;
        let g = self.clone();
        Ok(tokio::spawn(async move {
            // An edit between the start-up load and the watch's start is seen here.
            match config::read(&path).and_then(|t| t.map(|t| config::parse(&path, &t)).transpose())
            {
                Ok(Some(c)) => {
                    g.apply_config(c).await;
                }
                Ok(None) => {}
                Err(e) => g.reject_config(&e),
            }
            while let Some(change) = watch.next().await {
                match change {
                    Ok(c) => {
                        g.apply_config(c).await;
                    }
                    Err(e) => g.reject_config(&e),
                }
            }
        }))
    }
}

/// The name the import calls take for `app`.
fn client_id(app: ClientApp) -> String {
    app.to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

fn form_value(key: &str, v: &ValueSource) -> FormValue {
    let (kind, value, secret, prefix) = match v {
        ValueSource::Literal(s) => (ValueKind::Literal, s.clone(), "", ""),
        ValueSource::Env { env } => (ValueKind::Env, env.clone(), "", ""),
        ValueSource::Secret { secret, prefix } => (
            ValueKind::Secret,
            String::new(),
            secret.as_str(),
            prefix.as_deref().unwrap_or(""),
        ),
    };
    FormValue {
        key: key.to_owned(),
        kind,
        value,
        secret: secret.to_owned(),
        prefix: prefix.to_owned(),
    }
}

/// The form as the file's entry, and the secrets typed into it. What the loader checks
/// (names, URLs, commands) is left to it, so its messages are the ones shown.
fn entry_of(
    form: &ServerForm,
    taken: &BTreeSet<String>,
) -> Result<(ServerEntry, Vec<TypedSecret>), ServerError> {
    let name = form.name.trim();
    let table = match form.transport {
        FormTransport::Stdio => "env",
        FormTransport::Remote => "headers",
    };
    let fail = |place: String, reason: &str| ServerError::Form {
        place,
        reason: reason.to_owned(),
    };
    let mut values = BTreeMap::new();
    let mut typed = Vec::new();
    let mut taken = taken.clone();
    for v in &form.values {
        let key = v.key.trim();
        if key.is_empty() {
            if v.value.is_empty() && v.secret.is_empty() {
                continue; // an empty row of the form
            }
            return Err(fail(
                format!("servers.{name}.{table}"),
                "a value without a name",
            ));
        }
        let place = format!("servers.{name}.{table}.{key}");
        let source = match v.kind {
            ValueKind::Literal => ValueSource::Literal(v.value.clone()),
            ValueKind::Env if v.value.trim().is_empty() => {
                return Err(fail(place, "name the environment variable to read"));
            }
            ValueKind::Env => ValueSource::Env {
                env: v.value.trim().to_owned(),
            },
            ValueKind::Secret => {
                let secret = if v.secret.trim().is_empty() {
                    if v.value.is_empty() {
                        return Err(fail(place, "type the secret's value"));
                    }
                    let n = import::secret_name(name, key, &taken);
                    taken.insert(n.clone());
                    n
                } else {
                    v.secret.trim().to_owned()
                };
                if !v.value.is_empty() {
                    typed.push(TypedSecret {
                        name: secret.clone(),
                        value: Secret::new(v.value.clone()),
                    });
                }
                ValueSource::Secret {
                    secret,
                    prefix: (!v.prefix.is_empty()).then(|| v.prefix.clone()),
                }
            }
        };
        if values.insert(key.to_owned(), source).is_some() {
            return Err(fail(place, "given twice"));
        }
    }
    let entry = match form.transport {
        FormTransport::Stdio => ServerEntry::Stdio {
            command: form.command.trim().to_owned(),
            args: form.args.clone(),
            cwd: (!form.cwd.trim().is_empty()).then(|| PathBuf::from(form.cwd.trim())),
            env: values,
        },
        FormTransport::Remote => ServerEntry::Remote {
            url: form.url.trim().to_owned(),
            headers: values,
            client_id: (!form.client_id.trim().is_empty())
                .then(|| form.client_id.trim().to_owned()),
        },
    };
    Ok((entry, typed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The desktop shell runs these on the runtime's workers: they must be `Send`.
    #[allow(dead_code, clippy::let_underscore_future)]
    fn the_operations_are_send(g: &Gateway, f: ServerForm, c: Config) {
        fn send<T: Send>(_: T) {}
        send(g.add_server(f.clone()));
        send(g.update_server(f));
        send(g.remove_server(""));
        send(g.import_preview("", &[]));
        send(g.import_servers("", &[], &[]));
        send(g.apply_config(c));
    }

    fn form(values: Vec<FormValue>) -> ServerForm {
        ServerForm {
            name: "github".into(),
            transport: FormTransport::Stdio,
            command: "github-mcp-server".into(),
            args: vec!["stdio".into()],
            cwd: String::new(),
            url: String::new(),
            client_id: String::new(),
            values,
        }
    }

    fn value(key: &str, kind: ValueKind, value: &str, secret: &str) -> FormValue {
        FormValue {
            key: key.into(),
            kind,
            value: value.into(),
            secret: secret.into(),
            prefix: String::new(),
        }
    }

    #[test]
    fn a_typed_secret_becomes_a_reference_and_a_keychain_write() {
        let taken = BTreeSet::from(["github.GITHUB_TOKEN".to_owned()]);
        let (entry, typed) = entry_of(
            &form(vec![
                value("GITHUB_TOKEN", ValueKind::Secret, "ghp_x", ""),
                value("DEBUG", ValueKind::Literal, "1", ""),
                value("HOME_DIR", ValueKind::Env, "HOME", ""),
                value("", ValueKind::Literal, "", ""),
            ]),
            &taken,
        )
        .unwrap();
        let ServerEntry::Stdio { env, .. } = entry else {
            panic!("stdio expected")
        };
        // The proposed name was taken: the next free one.
        assert_eq!(
            env["GITHUB_TOKEN"],
            ValueSource::Secret {
                secret: "github.GITHUB_TOKEN.2".into(),
                prefix: None
            }
        );
        assert_eq!(env["DEBUG"], ValueSource::Literal("1".into()));
        assert_eq!(env["HOME_DIR"], ValueSource::Env { env: "HOME".into() });
        assert_eq!(typed.len(), 1);
        assert_eq!(typed[0].name, "github.GITHUB_TOKEN.2");
        assert_eq!(typed[0].value.expose(), "ghp_x");
    }

    #[test]
    fn an_existing_secret_left_blank_keeps_its_value() {
        let (entry, typed) = entry_of(
            &form(vec![value("GITHUB_TOKEN", ValueKind::Secret, "", "gh")]),
            &BTreeSet::new(),
        )
        .unwrap();
        assert!(typed.is_empty());
        let ServerEntry::Stdio { env, .. } = entry else {
            panic!("stdio expected")
        };
        assert_eq!(
            env["GITHUB_TOKEN"],
            ValueSource::Secret {
                secret: "gh".into(),
                prefix: None
            }
        );
    }

    #[test]
    fn incomplete_rows_are_refused_naming_the_key() {
        let e = entry_of(
            &form(vec![value("TOKEN", ValueKind::Secret, "", "")]),
            &BTreeSet::new(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "servers.github.env.TOKEN: type the secret's value"
        );
        let e = entry_of(
            &form(vec![
                value("A", ValueKind::Literal, "1", ""),
                value("A", ValueKind::Literal, "2", ""),
            ]),
            &BTreeSet::new(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "servers.github.env.A: given twice");
        let e = entry_of(
            &form(vec![value("X", ValueKind::Env, " ", "")]),
            &BTreeSet::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("name the environment variable"));
    }

    #[test]
    fn the_form_of_a_server_shows_references_not_values() {
        let v = form_value(
            "Authorization",
            &ValueSource::Secret {
                secret: "linear".into(),
                prefix: Some("Bearer ".into()),
            },
        );
        assert_eq!(v.kind, ValueKind::Secret);
        assert_eq!(v.value, "");
        assert_eq!(v.secret, "linear");
        assert_eq!(v.prefix, "Bearer ");
    }
}
