//! The user's upstream secrets, as the desktop window and `mcp-broker secrets` manage
//! them (the keychain and index rules are in [`crate::secrets`]). Values go from the
//! caller to the keychain and nowhere else; nothing here returns one.
//!
//! The command line has no gateway for these ([`Gateway::set_secret_offline`] and the
//! other `*_offline` operations): a gateway owns an open store, and opening one creates
//! the data dir, while a `secrets set` without a keychain must leave no trace there. So
//! they start from the keychain and open the store only once it has answered.

use std::path::Path;
use std::sync::Arc;

use crate::config::Config;
use crate::events::GatewayEvent;
use crate::secrets::{self, SecretEntry};
use crate::store::Store;
use crate::vault::{Secret, Vault, VaultError};

use super::{Gateway, GatewayError};

impl Gateway {
    /// Stores a secret; the next session of an upstream that reads it gets it.
    pub async fn set_secret(&self, name: &str, value: Secret<String>) -> Result<(), GatewayError> {
        secrets::set(&self.inner.vault, &self.inner.store, name, value).await?;
        // A "secret missing" failure of an upstream that reads it is now out of date.
        {
            let mut errors = self.last_errors();
            for u in &self.config().upstreams {
                if u.secret_refs().iter().any(|(n, _)| *n == name) {
                    errors.remove(&u.name);
                }
            }
        }
        self.emit(GatewayEvent::SecretsChanged);
        Ok(())
    }

    /// Deletes a secret from the keychain and the index; false when neither had it.
    pub async fn delete_secret(&self, name: &str) -> Result<bool, GatewayError> {
        let existed = secrets::delete(&self.inner.vault, &self.inner.store, name).await?;
        self.emit(GatewayEvent::SecretsChanged);
        Ok(existed)
    }

    /// Every secret name the configuration uses or the index knows, with its status,
    /// and why the keychain could not be asked (if it could not).
    pub async fn secrets(&self) -> Result<(Vec<SecretEntry>, Option<VaultError>), GatewayError> {
        Ok(secrets::inventory(
            &self.inner.vault,
            Some(&self.inner.store),
            Some(&self.config()),
        )
        .await?)
    }

    /// [`set_secret`](Self::set_secret) for a one-off command: the keychain first, then
    /// the index in `data_dir` (created only then).
    pub async fn set_secret_offline(
        data_dir: &Path,
        name: &str,
        value: Secret<String>,
    ) -> Result<(), GatewayError> {
        secrets::put_value(&Arc::new(Vault::system()), name, value).await?;
        secrets::record(&Store::open(data_dir).await?, name).await?;
        Ok(())
    }

    /// [`delete_secret`](Self::delete_secret) for a one-off command.
    pub async fn delete_secret_offline(data_dir: &Path, name: &str) -> Result<bool, GatewayError> {
        let existed = secrets::remove_value(&Arc::new(Vault::system()), name).await?;
        let indexed = secrets::forget(&Store::open(data_dir).await?, name).await?;
        Ok(existed || indexed)
    }

    /// [`secrets`](Self::secrets) for a one-off command: the index only if the data dir
    /// has a database (listing creates none), usage only if there is a configuration.
    pub async fn secrets_offline(
        data_dir: &Path,
        config: Option<&Config>,
    ) -> Result<(Vec<SecretEntry>, Option<VaultError>), GatewayError> {
        let store = if data_dir.join(crate::store::DB_FILE).exists() {
            Some(Store::open(data_dir).await?)
        } else {
            None
        };
        Ok(secrets::inventory(&Arc::new(Vault::system()), store.as_ref(), config).await?)
    }
}
