//! SQLite persistence through sqlx: clients, grants, codes and tokens.
//!
//! Issued secrets are stored only as SHA-256 hashes. The database runs in WAL mode with
//! `synchronous=FULL`, so a committed grant survives a crash or power loss, and the
//! `grants` CLI can read and revoke while the server runs. Multi-row changes happen in one
//! transaction. Must not know about HTTP or OAuth rules; it only records decisions.

mod clients;
mod codes;
mod grants;
mod tokens;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use codes::Redeemed;
pub use grants::{GrantSummary, RevokedGrant};
pub use tokens::{IssuedTokens, Rotation};

use crate::error::Result;

/// The database file inside the data dir.
pub const DB_FILE: &str = "broker.db";

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database in `dir` and runs the migrations.
    pub async fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)?;
        restrict_permissions(dir);
        let path = dir.join(DB_FILE);
        let opts = SqliteConnectOptions::from_str("sqlite:")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(4)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("src-tauri/migrations").run(&pool).await?;
        restrict_permissions(&path);
        Ok(Store { pool })
    }

    /// A store in a fresh temporary directory, for tests. The directory lives as long
    /// as the returned guard.
    pub async fn open_temp() -> Result<(Store, TempDir)> {
        let dir = TempDir::new()?;
        let store = Store::open(&dir.0).await?;
        Ok((store, dir))
    }

    /// Removes codes and tokens that can no longer be used.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        let a = sqlx::query("DELETE FROM codes WHERE expires_at < ?")
            .bind(now - 3600)
            .execute(&self.pool)
            .await?;
        let b = sqlx::query("DELETE FROM tokens WHERE expires_at < ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(a.rows_affected() + b.rows_affected())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A temporary directory removed on drop (tests and benchmarks).
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> std::io::Result<TempDir> {
        let p = std::env::temp_dir().join(format!("mcp-broker-{}", crate::oauth::mint_id(9)));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The data dir holds hashes only, but its listing still says who uses what: owner only.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o700 } else { 0o600 };
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = path;
}
