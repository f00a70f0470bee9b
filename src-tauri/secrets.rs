//! The user's upstream secrets as `mcp-broker secrets` and the desktop app's upstream
//! list both show them: [`set`] and [`delete`] keep the OS keychain and the index of
//! names in the data dir in step, and [`inventory`] joins that index, the references in
//! the configuration and the keychain's answer for each name. Values go from the caller
//! to the keychain and nowhere else; nothing here returns one.
//!
//! The keychain calls block (D-Bus on Linux), so they run on the blocking pool.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::now;
use crate::config::Config;
use crate::store::Store;
use crate::vault::{Secret, Vault, VaultError, check_name};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The keychain refused or is unreachable (the message says what to do).
    #[error(transparent)]
    Vault(VaultError),
    /// The index of names in the data dir could not be read or written.
    #[error("the index of secret names: {0}")]
    Index(String),
    /// An empty value is a mistake (an empty pipe, a field left blank), never a secret.
    #[error("the value is empty; nothing was stored")]
    Empty,
}

/// Where a secret stands in the keychain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretStatus {
    Stored,
    Missing,
    /// The keychain could not be asked.
    Unknown,
}

impl SecretStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretStatus::Stored => "stored",
            SecretStatus::Missing => "missing",
            SecretStatus::Unknown => "unknown",
        }
    }
}

/// One secret name: whether the keychain has it, and which upstreams read it where
/// (`gh (env GITHUB_TOKEN)`).
#[derive(Debug, Clone, Serialize)]
pub struct SecretEntry {
    pub name: String,
    pub status: SecretStatus,
    pub used_by: Vec<String>,
}

async fn blocking<T: Send + 'static>(
    vault: &Arc<Vault>,
    f: impl FnOnce(&Vault) -> Result<T, VaultError> + Send + 'static,
) -> Result<T, SecretsError> {
    let vault = vault.clone();
    tokio::task::spawn_blocking(move || f(&vault))
        .await
        .map_err(|e| SecretsError::Index(format!("the keychain task failed: {e}")))?
        .map_err(SecretsError::Vault)
}

/// Stores `value` under `name` in the keychain only; [`set`] also records the name.
pub async fn put_value(
    vault: &Arc<Vault>,
    name: &str,
    value: Secret<String>,
) -> Result<(), SecretsError> {
    check_name(name).map_err(SecretsError::Vault)?;
    if value.expose().is_empty() {
        return Err(SecretsError::Empty);
    }
    let n = name.to_owned();
    blocking(vault, move |v| v.set(&n, &value)).await
}

/// Removes `name` from the keychain only; false when it had no such entry.
pub async fn remove_value(vault: &Arc<Vault>, name: &str) -> Result<bool, SecretsError> {
    check_name(name).map_err(SecretsError::Vault)?;
    let n = name.to_owned();
    blocking(vault, move |v| v.delete(&n)).await
}

/// Stores `value` under `name` and records the name. The keychain write comes first:
/// an index entry without a value would only show as "missing".
pub async fn set(
    vault: &Arc<Vault>,
    store: &Store,
    name: &str,
    value: Secret<String>,
) -> Result<(), SecretsError> {
    put_value(vault, name, value).await?;
    record(store, name).await
}

pub async fn record(store: &Store, name: &str) -> Result<(), SecretsError> {
    store
        .record_secret_name(name, now())
        .await
        .map_err(|e| SecretsError::Index(e.to_string()))
}

/// Deletes `name` from the keychain and the index; false when neither had it.
pub async fn delete(vault: &Arc<Vault>, store: &Store, name: &str) -> Result<bool, SecretsError> {
    let existed = remove_value(vault, name).await?;
    Ok(forget(store, name).await? || existed)
}

pub async fn forget(store: &Store, name: &str) -> Result<bool, SecretsError> {
    store
        .forget_secret_name(name)
        .await
        .map_err(|e| SecretsError::Index(e.to_string()))
}

/// Every name the configuration references or the index knows, sorted, with its status.
/// When the keychain cannot be asked, the names still come back (status `Unknown`)
/// together with the error.
pub async fn inventory(
    vault: &Arc<Vault>,
    store: Option<&Store>,
    config: Option<&Config>,
) -> Result<(Vec<SecretEntry>, Option<VaultError>), SecretsError> {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in config.map(|c| c.upstreams.as_slice()).unwrap_or_default() {
        for (secret, place) in u.secret_refs() {
            used.entry(secret.to_owned())
                .or_default()
                .push(format!("{} ({place})", u.name));
        }
    }
    if let Some(store) = store {
        let names = store
            .secret_names()
            .await
            .map_err(|e| SecretsError::Index(e.to_string()))?;
        for (n, _) in names {
            used.entry(n).or_default();
        }
    }
    let names: Vec<String> = used.keys().cloned().collect();
    // One blocking task for all lookups; the first keychain error stops asking.
    let statuses = blocking(vault, move |v| {
        let mut out = Vec::with_capacity(names.len());
        let mut error = None;
        for n in &names {
            if error.is_some() {
                out.push(SecretStatus::Unknown);
                continue;
            }
            out.push(match v.get(n) {
                Ok(Some(_)) => SecretStatus::Stored,
                Ok(None) => SecretStatus::Missing,
                Err(e) => {
                    error = Some(e);
                    SecretStatus::Unknown
                }
            });
        }
        Ok((out, error))
    })
    .await?;
    let (statuses, error) = statuses;
    let entries = used
        .into_iter()
        .zip(statuses)
        .map(|((name, used_by), status)| SecretEntry {
            name,
            status,
            used_by,
        })
        .collect();
    Ok((entries, error))
}
