//! Carrying out an import plan (`client_apps::import`): the secrets into the keychain,
//! the servers into `config.toml`, the client's entries through the broker. Used by
//! `mcp-broker clients import` and, through the same call, by the desktop window.
//!
//! Order, so that a failure leaves nothing half-done:
//! 1. Everything is computed and checked first, writing nothing: the new `config.toml`
//!    (loaded as the loader would), the client's new file and its backup, and that the
//!    client's file is still the text the plan was made from.
//! 2. The keychain: each value is stored (`upstream_edit::KeychainWrites`). A locked
//!    or missing keychain fails here, and the entries already written are put back as
//!    they were, so nothing at all is written.
//! 3. `config.toml`, in one rename. If that fails, the keychain is put back.
//! 4. The index of secret names in the data dir (for `secrets list`); a failure there
//!    is only reported: the secrets work without it.
//! 5. The client's file: its backup (`FILE.mcp-broker.bak`, with each moved value
//!    replaced by a note naming its keychain entry: a backup holding the plaintext would
//!    defeat the move), then the file itself in one rename. If that fails, steps 3 and
//!    2 are undone (the previous `config.toml` put back, the keychain too) and the error
//!    says whether the undo worked; the client's file is then as it was.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::client_apps::import::ImportPlan;
use crate::client_apps::{BrokerTarget, ClientConfigError, backup_path};
use crate::config::Config;
use crate::config_edit::{Draft, EditError};
use crate::secrets::{self, SecretsError};
use crate::store::Store;
use crate::upstream_edit::KeychainWrites;
use crate::vault::Vault;

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    /// The configuration now in `config.toml`, for a running broker to apply.
    pub config: Config,
    /// The keychain entries written.
    pub secrets: Vec<String>,
    /// The client's previous file, without the moved values.
    pub backup: PathBuf,
    /// The index of secret names could not be updated (the import itself worked).
    pub index_warning: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not changing {}: {reason}", file.display())]
    ClientFile {
        file: PathBuf,
        reason: ClientConfigError,
    },
    #[error("cannot read {}: {source}", file.display())]
    ClientRead {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} changed since the import was planned; nothing was written, run the import again",
        file.display()
    )]
    ClientChanged { file: PathBuf },
    /// The broker's configuration would be invalid, or could not be written. Nothing
    /// was written (the keychain was put back as it was).
    #[error("nothing was imported: {0}")]
    Config(EditError),
    /// Nothing was written.
    #[error("nothing was imported: {0}")]
    Keychain(SecretsError),
    /// The client's file could not be written; `undo` says whether the broker's side
    /// was put back as it was.
    #[error("cannot write {}: {source}; {undo}", file.display())]
    ClientWrite {
        file: PathBuf,
        source: std::io::Error,
        undo: String,
    },
}

/// Carries out `plan` (see the module docs for the order and what a failure leaves).
pub async fn carry_out(
    plan: &ImportPlan,
    config_path: &Path,
    client_file: &Path,
    target: &BrokerTarget,
    vault: &Arc<Vault>,
    data_dir: &Path,
) -> Result<Imported, ImportError> {
    // 1. Compute and check everything, writing nothing.
    let mut draft = Draft::open(config_path).map_err(ImportError::Config)?;
    for s in &plan.servers {
        draft.add(&s.name, &s.entry).map_err(ImportError::Config)?;
    }
    draft.check().map_err(ImportError::Config)?;
    let config_before = draft.before().map(str::to_owned);
    let client_error = |reason| ImportError::ClientFile {
        file: client_file.to_owned(),
        reason,
    };
    let after = plan.client_text_after(target).map_err(client_error)?;
    let backup_text = plan.redacted_backup().map_err(client_error)?;
    let now = std::fs::read(client_file).map_err(|source| ImportError::ClientRead {
        file: client_file.to_owned(),
        source,
    })?;
    if now != plan.client_text.as_bytes() {
        return Err(ImportError::ClientChanged {
            file: client_file.to_owned(),
        });
    }

    // 2. The keychain.
    let mut writes = KeychainWrites::new(vault);
    for m in plan.servers.iter().flat_map(|s| &s.secrets) {
        writes
            .put(&m.secret, m.value.clone())
            .await
            .map_err(ImportError::Keychain)?;
    }
    let stored: Vec<String> = writes.names().map(str::to_owned).collect();

    // 3. config.toml.
    let config = match draft.commit() {
        Ok(c) => c,
        Err(e) => {
            writes.undo().await;
            return Err(ImportError::Config(e));
        }
    };

    // 4. The index of names.
    let index_warning = if stored.is_empty() {
        None
    } else {
        record_names(data_dir, &stored).await.err()
    };

    // 5. The client's file.
    let backup = backup_path(client_file);
    let written = crate::atomic_file::replace(&backup, backup_text.as_bytes())
        .and_then(|()| crate::atomic_file::replace(client_file, after.as_bytes()));
    if let Err(source) = written {
        let undo = undo(config_path, config_before.as_deref(), &mut writes).await;
        return Err(ImportError::ClientWrite {
            file: client_file.to_owned(),
            source,
            undo,
        });
    }
    Ok(Imported {
        config,
        secrets: stored,
        backup,
        index_warning,
    })
}

async fn record_names(data_dir: &Path, names: &[String]) -> Result<(), String> {
    let store = Store::open(data_dir)
        .await
        .map_err(|e| format!("cannot open the database in {}: {e}", data_dir.display()))?;
    for n in names {
        secrets::record(&store, n)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Puts `config.toml` and the keychain back; says what it managed.
async fn undo(config_path: &Path, before: Option<&str>, writes: &mut KeychainWrites<'_>) -> String {
    let config_back = match before {
        Some(text) => crate::config_edit::write(config_path, text).map_err(|e| e.to_string()),
        None => std::fs::remove_file(config_path).map_err(|e| e.to_string()),
    };
    match config_back {
        Ok(()) => {
            let left = writes.undo().await;
            if left.is_empty() {
                format!(
                    "{} and the keychain were put back as they were; nothing was imported",
                    config_path.display()
                )
            } else {
                format!(
                    "{} was put back as it was, but these keychain entries could not be put back: {}",
                    config_path.display(),
                    left.join(", ")
                )
            }
        }
        // The configuration still references the values: they stay.
        Err(e) => format!(
            "the servers stay in {} ({e} when putting it back) and their values in the keychain; the client's file is unchanged",
            config_path.display()
        ),
    }
}

/// Secret names the configuration references or the index knows: generated names avoid
/// them. The index is read only when the data dir already has a database.
pub async fn taken_secret_names(config: &Config, data_dir: &Path) -> BTreeSet<String> {
    let mut taken: BTreeSet<String> = config
        .upstreams
        .iter()
        .flat_map(|u| u.secret_refs().into_iter().map(|(s, _)| s.to_owned()))
        .collect();
    if data_dir.join(crate::store::DB_FILE).exists()
        && let Ok(store) = crate::store::Store::open(data_dir).await
        && let Ok(names) = store.secret_names().await
    {
        taken.extend(names.into_iter().map(|(n, _)| n));
    }
    taken
}
