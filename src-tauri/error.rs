//! The plumbing error type: database, I/O, upstream. Protocol errors live in
//! `oauth::error`; `http::response` maps both to HTTP in one place.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// The disk holding the data dir is full (SQLITE_FULL, ENOSPC). Writes fail until
    /// space is freed; reads and proxying go on, and nothing committed is lost.
    #[error("the disk holding the broker's data is full ({0})")]
    DiskFull(Box<dyn std::error::Error + Send + Sync>),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("upstream {upstream}: {reason}")]
    Upstream { upstream: String, reason: String },
    #[error("{0}")]
    Keychain(#[from] crate::vault::VaultError),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

impl Error {
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::DiskFull(_))
    }
}

/// SQLite's primary result code SQLITE_FULL; the extended codes keep it in the low byte.
const SQLITE_FULL: i32 = 13;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        let full = match &e {
            sqlx::Error::Database(d) => d
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(|c| c & 0xff == SQLITE_FULL),
            sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        };
        if full {
            Error::DiskFull(Box::new(e))
        } else {
            Error::Db(e)
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::StorageFull {
            Error::DiskFull(Box::new(e))
        } else {
            Error::Io(e)
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
