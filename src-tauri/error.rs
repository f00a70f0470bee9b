//! The plumbing error type: database, I/O, upstream. Protocol errors live in
//! `oauth::error`; `http::response` maps both to HTTP in one place.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("upstream {upstream}: {reason}")]
    Upstream { upstream: String, reason: String },
    #[error("{0}")]
    Keychain(#[from] crate::vault::VaultError),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
