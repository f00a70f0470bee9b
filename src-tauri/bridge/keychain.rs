//! The bridge's token storage: the OS keychain through `keyring` (Secret Service on
//! Linux, Keychain on macOS, Credential Manager on Windows). There is no file fallback.
//!
//! This is deliberately the same shape as the broker's `Vault` (issue 6: `get`, `set`,
//! `delete` by name, service `mcp-broker`, `mcp-broker-dev` for debug builds,
//! `MCP_BROKER_KEYCHAIN_SERVICE` to override). When `crate::vault` lands, this file goes
//! and [`Keychain`] becomes `crate::vault::Vault::system()`.

#[derive(Debug, thiserror::Error)]
pub enum KeychainError {
    #[error(
        "the OS keychain is not reachable ({0}); mcp-broker connect keeps its tokens only there, never in a file. On Linux start a Secret Service provider (gnome-keyring, or KeePassXC) in your D-Bus session"
    )]
    Unavailable(String),
    #[error("the OS keychain refused the operation: {0}")]
    Failed(String),
}

pub struct Keychain {
    service: String,
}

impl Keychain {
    pub fn system() -> Keychain {
        let service = std::env::var("MCP_BROKER_KEYCHAIN_SERVICE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                if cfg!(debug_assertions) {
                    "mcp-broker-dev"
                } else {
                    "mcp-broker"
                }
                .to_owned()
            });
        Keychain { service }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    fn entry(&self, name: &str) -> Result<keyring::Entry, KeychainError> {
        keyring::Entry::new(&self.service, name).map_err(map_err)
    }

    pub fn get(&self, name: &str) -> Result<Option<String>, KeychainError> {
        match self.entry(name)?.get_password() {
            Ok(v) => Ok(Some(v)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    pub fn set(&self, name: &str, value: &str) -> Result<(), KeychainError> {
        self.entry(name)?.set_password(value).map_err(map_err)
    }

    pub fn delete(&self, name: &str) -> Result<bool, KeychainError> {
        match self.entry(name)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(map_err(e)),
        }
    }
}

fn map_err(e: keyring::Error) -> KeychainError {
    match e {
        keyring::Error::NoStorageAccess(inner) | keyring::Error::PlatformFailure(inner) => {
            KeychainError::Unavailable(inner.to_string())
        }
        other => KeychainError::Failed(other.to_string()),
    }
}
