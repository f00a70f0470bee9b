//! Noticing hand edits of `config.toml` while the broker runs: a file watch (`notify`,
//! debounced, so an editor's save of several writes and a rename counts once) whose every
//! change is loaded with [`config::parse`] and handed to the caller on a tokio channel as
//! the new [`Config`] or the loader's error (file, key, reason).
//!
//! This module decides nothing: it never applies a configuration. The caller keeps the
//! last good one in force when it receives an error, and says so to the person.
//!
//! The directory is watched, not the file: editors and `config_edit` replace the file by
//! renaming a new one over it, which a watch on the old file would not see. A change
//! that leaves the text as it was last reported (or as it was when the watch started)
//! yields nothing, so touching the file, or an edit saved twice, is not a reload. A
//! removed file is reported as an error (the configuration in force stays); an empty
//! configuration comes only from a file that says so. After the debounce the file is
//! read until two reads agree, so a save caught half-way is not reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;

use crate::config::{self, Config, ConfigError};

/// Long enough to fold an editor's save into one change, short enough to feel immediate.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// One change of the file: the configuration it now holds, or why it cannot be used.
pub type Reload = Result<Config, ConfigError>;

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {} for changes to the configuration: {reason}", dir.display())]
pub struct WatchError {
    pub dir: PathBuf,
    pub reason: String,
}

/// The file's text once it stops changing. The debounce already waited for a quiet
/// moment, but a writer that truncates and then writes (`echo > config.toml`, many
/// editors) can be descheduled in between on a busy machine; an empty file where there
/// was text gets a longer look, since taking it at face value would remove every
/// upstream.
fn settled(
    path: &Path,
    debounce: Duration,
    last: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    let pause = (debounce / 2).max(Duration::from_millis(50));
    let mut text = config::read(path)?;
    for round in 0..20 {
        let emptied = text.as_deref().is_some_and(|t| t.trim().is_empty())
            && last.is_some_and(|l| !l.trim().is_empty());
        std::thread::sleep(if emptied && round == 0 {
            debounce * 2
        } else {
            pause
        });
        let again = config::read(path)?;
        if again == text {
            break;
        }
        text = again;
    }
    Ok(text)
}

/// A running watch; dropping it stops watching.
pub struct ConfigWatcher {
    changes: mpsc::Receiver<Reload>,
    _debouncer: Debouncer<RecommendedWatcher>,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigWatcher")
    }
}

impl ConfigWatcher {
    /// Watches `path`, creating its directory when missing (a first start has none).
    /// Changes are compared with the text the file has now. Start the watch before
    /// [`config::load`]: an edit in between is then reported (once more, harmlessly, if
    /// the load already saw it), where the other order could miss it.
    pub fn start(path: &Path, debounce: Duration) -> Result<ConfigWatcher, WatchError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        // A symlinked config (dotfiles) is edited where it really is.
        let path = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(&path).unwrap_or(path),
            _ => path,
        };
        let dir = match path.parent() {
            Some(d) => d.to_owned(),
            None => {
                return Err(WatchError {
                    dir: path.clone(),
                    reason: "the configuration file has no directory".into(),
                });
            }
        };
        let fail = |reason: String| WatchError {
            dir: dir.clone(),
            reason,
        };
        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
        let Some(name) = path.file_name().map(ToOwned::to_owned) else {
            return Err(fail("the configuration path names no file".into()));
        };
        // `None` inside: the file did not exist.
        let mut last: Option<String> = config::read(&path).ok().flatten();
        let (tx, changes) = mpsc::channel(16);
        let watched = path.clone();
        let handler = move |events: DebounceEventResult| {
            let ours = match events {
                Ok(events) => events
                    .iter()
                    .any(|e| e.path.file_name() == Some(name.as_os_str())),
                Err(e) => {
                    tracing::warn!("watching {}: {e}", watched.display());
                    false
                }
            };
            if !ours {
                return;
            }
            let reload = match settled(&watched, debounce, last.as_deref()) {
                Err(e) => Some(Err(e)),
                Ok(None) if last.is_none() => None,
                Ok(None) => {
                    last = None;
                    Some(Err(ConfigError {
                        file: watched.clone(),
                        key: String::new(),
                        reason: "the file was removed; the configuration in force stays until it is back".into(),
                    }))
                }
                Ok(Some(text)) if last.as_deref() == Some(text.as_str()) => None,
                Ok(Some(text)) => {
                    let r = config::parse(&watched, &text);
                    last = Some(text);
                    Some(r)
                }
            };
            if let Some(r) = reload {
                // Runs on the debouncer's own thread, never inside the runtime; a
                // dropped receiver means nobody listens any more.
                let _ = tx.blocking_send(r);
            }
        };
        let mut debouncer = new_debouncer(debounce, handler).map_err(|e| fail(e.to_string()))?;
        debouncer
            .watcher()
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| fail(e.to_string()))?;
        Ok(ConfigWatcher {
            changes,
            _debouncer: debouncer,
        })
    }

    /// The next change; `None` once the watch has ended.
    pub async fn next(&mut self) -> Option<Reload> {
        self.changes.recv().await
    }
}
