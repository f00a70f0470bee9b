//! The vault: secrets the broker *uses* (upstream API keys, upstream OAuth tokens), kept
//! in the OS keychain through `keyring` (Secret Service on Linux, Keychain on macOS,
//! Credential Manager on Windows), one entry per secret, service `mcp-broker`.
//!
//! Must not import: axum, sqlx, tauri. Secrets the broker *issues* are not here: the store
//! keeps only their hashes.
//!
//! There is no file fallback: when no keychain is reachable every operation fails with
//! [`VaultError::Unavailable`], whose one line says what to install or start. Values
//! travel as [`Secret`], whose `Debug` and `Display` print `<redacted>`, so a stray `{:?}`
//! in a log line cannot leak one.
//!
//! Every call blocks (D-Bus round trips on Linux): async code calls it through
//! `tokio::task::spawn_blocking`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

/// The keychain service name of release builds.
pub const SERVICE: &str = "mcp-broker";
/// Debug builds use their own service, so a development build never reads or overwrites
/// the secrets of the installed app (GitButler's `but-secret` does the same).
pub const DEV_SERVICE: &str = "mcp-broker-dev";
/// Overrides the service name (tests use it to keep runs apart).
pub const SERVICE_ENV: &str = "MCP_BROKER_KEYCHAIN_SERVICE";

/// A value that must not be printed. `Debug` and `Display` show `<redacted>`; read it
/// with [`Secret::expose`] at the one place that hands it over (a child's environment,
/// an HTTP header, the keychain).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// No keychain to talk to (no Secret Service on the session bus, no session bus).
    #[error("{UNAVAILABLE_HINT} ({0})")]
    Unavailable(String),
    /// The keychain is there but locked, and the broker cannot show an unlock prompt.
    #[error(
        "the OS keychain is locked: unlock your login keyring (for example by signing in to the desktop, or `gnome-keyring-daemon --unlock`) ({0})"
    )]
    Locked(String),
    #[error("{0:?} is not a valid secret name: use 1-128 characters from A-Z a-z 0-9 . _ - :")]
    BadName(String),
    #[error("the OS keychain refused the operation: {0}")]
    Failed(String),
}

/// What to do when there is no keychain, said once, for every platform's user.
const UNAVAILABLE_HINT: &str = if cfg!(target_os = "linux") {
    "no OS keychain is reachable: install and start a Secret Service provider (gnome-keyring, or KeePassXC with Secret Service enabled) in a D-Bus session; on a headless machine run the broker under `dbus-run-session` with an unlocked `gnome-keyring-daemon`. mcp-broker never falls back to storing secrets in a file"
} else {
    "the OS keychain is not reachable; mcp-broker never falls back to storing secrets in a file"
};

/// Secret names: safe in a keychain entry, a config file and a shell command line.
pub fn check_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadName(name.to_owned()))
    }
}

pub enum Vault {
    /// The OS keychain, one entry per secret: service `service`, user the secret name.
    Keyring { service: String },
    /// In-process storage for tests. Not `keyring::mock`: in keyring 3 its storage is per
    /// `Entry`, so a value set through one entry cannot be read through another.
    Memory(Mutex<HashMap<String, Secret<String>>>),
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Vault::Keyring { service } => {
                f.debug_struct("Keyring").field("service", service).finish()
            }
            Vault::Memory(_) => f.write_str("Memory"),
        }
    }
}

impl Vault {
    /// The OS keychain, under this build's service name (see [`SERVICE`], [`DEV_SERVICE`],
    /// [`SERVICE_ENV`]). Nothing is contacted until the first operation.
    pub fn system() -> Vault {
        let service = std::env::var(SERVICE_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                if cfg!(debug_assertions) {
                    DEV_SERVICE
                } else {
                    SERVICE
                }
                .to_owned()
            });
        Vault::Keyring { service }
    }

    pub fn memory() -> Vault {
        Vault::Memory(Mutex::new(HashMap::new()))
    }

    /// The secret, or `None` when there is no entry with this name.
    pub fn get(&self, name: &str) -> Result<Option<Secret<String>>, VaultError> {
        check_name(name)?;
        match self {
            Vault::Keyring { service } => match entry(service, name)?.get_password() {
                Ok(v) => Ok(Some(Secret(v))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(map_err(e)),
            },
            Vault::Memory(m) => Ok(m
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned()),
        }
    }

    /// Creates or replaces the entry.
    pub fn set(&self, name: &str, value: &Secret<String>) -> Result<(), VaultError> {
        check_name(name)?;
        match self {
            Vault::Keyring { service } => entry(service, name)?
                .set_password(value.expose())
                .map_err(map_err),
            Vault::Memory(m) => {
                m.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_owned(), value.clone());
                Ok(())
            }
        }
    }

    /// Removes the entry; `Ok(false)` when there was none.
    pub fn delete(&self, name: &str) -> Result<bool, VaultError> {
        check_name(name)?;
        match self {
            Vault::Keyring { service } => match entry(service, name)?.delete_credential() {
                Ok(()) => Ok(true),
                Err(keyring::Error::NoEntry) => Ok(false),
                Err(e) => Err(map_err(e)),
            },
            Vault::Memory(m) => Ok(m
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name)
                .is_some()),
        }
    }
}

fn entry(service: &str, name: &str) -> Result<keyring::Entry, VaultError> {
    keyring::Entry::new(service, name).map_err(map_err)
}

/// keyring's errors carry no secret values (only platform messages), so their text may be
/// shown; it is still cut to one line.
fn map_err(e: keyring::Error) -> VaultError {
    let text = e.to_string().replace('\n', " ");
    match e {
        // gnome-keyring answers a write to a locked collection it cannot prompt for
        // with a plain D-Bus error ("Cannot create an item in a locked collection").
        keyring::Error::PlatformFailure(_) if text.contains("locked collection") => {
            VaultError::Locked(text)
        }
        keyring::Error::PlatformFailure(_) => VaultError::Unavailable(text),
        keyring::Error::NoStorageAccess(_) => VaultError::Locked(text),
        _ => VaultError::Failed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2".to_owned());
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn memory_vault_set_get_delete() {
        let v = Vault::memory();
        assert_eq!(v.get("a").unwrap(), None);
        v.set("a", &Secret::new("1".into())).unwrap();
        assert_eq!(v.get("a").unwrap().unwrap().expose(), "1");
        v.set("a", &Secret::new("2".into())).unwrap();
        assert_eq!(v.get("a").unwrap().unwrap().expose(), "2");
        assert!(v.delete("a").unwrap());
        assert!(!v.delete("a").unwrap());
        assert_eq!(v.get("a").unwrap(), None);
    }

    #[test]
    fn names_are_checked() {
        for ok in ["github-token", "a", "oauth:linear", "A.b_c"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129)] {
            assert!(
                matches!(check_name(bad), Err(VaultError::BadName(_))),
                "{bad}"
            );
            assert!(Vault::memory().get(bad).is_err());
        }
    }

    #[test]
    fn unavailable_is_one_line_with_what_to_do() {
        let e = VaultError::Unavailable("no bus".into()).to_string();
        assert!(!e.contains('\n'));
        assert!(e.contains("never falls back"), "{e}");
        if cfg!(target_os = "linux") {
            assert!(
                e.contains("gnome-keyring") && e.contains("dbus-run-session"),
                "{e}"
            );
        }
    }
}
