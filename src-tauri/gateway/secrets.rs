//! The user's upstream secrets, as the desktop window and `mcp-broker secrets` manage
//! them (the keychain and index rules are in [`crate::secrets`]). Values go from the
//! caller to the keychain and nowhere else; nothing here returns one.

use crate::events::GatewayEvent;
use crate::secrets::{self, SecretEntry};
use crate::vault::{Secret, VaultError};

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
}
