//! Saving an upstream as a person does it in the window: the form's settings go to
//! `config.toml` (`config_edit`), and a value typed into a password field goes to the
//! OS keychain, referenced from the file as `{ secret = NAME }`. Both or neither: the
//! change is checked as the loader would before anything is written, the keychain is
//! written first (a locked or missing keychain stops it there), and if `config.toml`
//! cannot be written the keychain is put back as it was (a value replaced gets its old
//! value back, a new one is deleted).
//!
//! [`KeychainWrites`] is that keychain step on its own, shared with `client_import`.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::config_edit::{Draft, EditError, ServerEntry};
use crate::secrets::{self, SecretsError};
use crate::store::Store;
use crate::vault::{Secret, Vault, VaultError};

/// A value typed into a password field, for the keychain entry `name`.
#[derive(Debug, Clone)]
pub struct TypedSecret {
    pub name: String,
    pub value: Secret<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMode {
    /// A new server; a name already configured is refused.
    Add,
    /// Change the server of that name in place.
    Replace,
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Refused or not written (the loader's message, a name clash, a write failure);
    /// the keychain is as it was.
    #[error("{0}")]
    Config(EditError),
    /// Nothing was written.
    #[error("nothing was saved: {0}")]
    Keychain(SecretsError),
    /// `typed` names a keychain entry the server does not reference: it would be stored
    /// and never read.
    #[error("the secret {0:?} is not used by this server's settings; nothing was saved")]
    Unreferenced(String),
}

/// What a save did.
#[derive(Debug)]
pub struct Saved {
    /// The configuration now in `config.toml`, for the running broker to apply.
    pub config: Config,
    /// The index of secret names could not be updated (the save itself worked; only
    /// `secrets list` misses the names).
    pub index_warning: Option<String>,
}

/// Adds or replaces server `name` with `entry`, storing `typed` values in the keychain.
pub async fn save(
    config_path: &Path,
    name: &str,
    entry: &ServerEntry,
    mode: SaveMode,
    typed: Vec<TypedSecret>,
    vault: &Arc<Vault>,
    store: &Store,
) -> Result<Saved, SaveError> {
    let mut draft = Draft::open(config_path).map_err(SaveError::Config)?;
    match mode {
        SaveMode::Add => draft.add(name, entry),
        SaveMode::Replace => draft.replace(name, entry),
    }
    .map_err(SaveError::Config)?;
    let (_, config) = draft.check().map_err(SaveError::Config)?;
    let referenced: Vec<&str> = config
        .upstream(name)
        .map(|u| u.secret_refs().into_iter().map(|(s, _)| s).collect())
        .unwrap_or_default();
    if let Some(t) = typed
        .iter()
        .find(|t| !referenced.contains(&t.name.as_str()))
    {
        return Err(SaveError::Unreferenced(t.name.clone()));
    }
    let mut writes = KeychainWrites::new(vault);
    for t in typed {
        writes
            .put(&t.name, t.value)
            .await
            .map_err(SaveError::Keychain)?;
    }
    let config = match draft.commit() {
        Ok(c) => c,
        Err(e) => {
            writes.undo().await;
            return Err(SaveError::Config(e));
        }
    };
    let mut index_warning = None;
    for n in writes.names() {
        if let Err(e) = secrets::record(store, n).await {
            index_warning = Some(e.to_string());
        }
    }
    Ok(Saved {
        config,
        index_warning,
    })
}

/// Values written to the keychain as one step that can be taken back: each write
/// remembers what the entry held before. A failed write takes back the earlier ones.
pub struct KeychainWrites<'a> {
    vault: &'a Arc<Vault>,
    done: Vec<(String, Option<Secret<String>>)>,
}

impl<'a> KeychainWrites<'a> {
    pub fn new(vault: &'a Arc<Vault>) -> KeychainWrites<'a> {
        KeychainWrites {
            vault,
            done: Vec::new(),
        }
    }

    /// Stores `value` under `name`; on failure, every earlier write is taken back.
    pub async fn put(&mut self, name: &str, value: Secret<String>) -> Result<(), SecretsError> {
        let before = match previous(self.vault, name).await {
            Ok(v) => v,
            Err(e) => {
                self.undo().await;
                return Err(SecretsError::Vault(e));
            }
        };
        if let Err(e) = secrets::put_value(self.vault, name, value).await {
            self.undo().await;
            return Err(e);
        }
        self.done.push((name.to_owned(), before));
        Ok(())
    }

    /// The entries written, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.done.iter().map(|(n, _)| n.as_str())
    }

    /// Puts every entry written back as it was; returns the names that could not be.
    pub async fn undo(&mut self) -> Vec<String> {
        let mut left = Vec::new();
        while let Some((name, before)) = self.done.pop() {
            let r = match before {
                Some(v) => secrets::put_value(self.vault, &name, v).await,
                None => secrets::remove_value(self.vault, &name).await.map(|_| ()),
            };
            if let Err(e) = r {
                tracing::warn!("cannot put the keychain entry {name} back: {e}");
                left.push(name);
            }
        }
        left
    }
}

async fn previous(vault: &Arc<Vault>, name: &str) -> Result<Option<Secret<String>>, VaultError> {
    let vault = vault.clone();
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || vault.get(&name))
        .await
        .map_err(|e| VaultError::Failed(format!("the keychain task failed: {e}")))?
}
