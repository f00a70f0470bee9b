//! SQLite persistence through sqlx: clients, grants, codes, tokens, and the names (never
//! the values) of keychain secrets.
//!
//! Issued secrets are stored only as SHA-256 hashes. The database runs in WAL mode with
//! `synchronous=FULL`, so a committed grant survives a crash or power loss, and the
//! `grants` CLI can read and revoke while the server runs. Multi-row changes happen in one
//! transaction. Must not know about HTTP or OAuth rules; it only records decisions.

pub mod activity;
mod clients;
mod codes;
mod grants;
mod secrets;
mod token_cache;
mod tokens;
mod tool_policies;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use clients::{DeletedClient, RegisteredClient};
pub use codes::Redeemed;
pub use grants::{GrantKind, GrantSummary, NewCode, NewPersonalGrant, RevokedGrant};
pub use tokens::{IssuedTokens, Rotation};
pub use tool_policies::{ChoiceChange, ToolRow};

use crate::error::Result;

/// The database file inside the data dir.
pub const DB_FILE: &str = "broker.db";

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    tokens: std::sync::Arc<token_cache::TokenCache>,
    check: TokenCheck,
}

/// The key that issued access tokens are checked with, and how long tokens from before
/// the check may live (see `oauth::token_format` and migration 0004).
#[derive(Debug, Clone)]
pub struct TokenCheck {
    pub key: crate::oauth::token_format::CheckKey,
    pub legacy: crate::oauth::token_format::LegacyWindow,
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
        // Create the file, switch it to WAL and migrate on one connection before the pool
        // opens more: first connections racing for the journal-mode switch can fail with
        // SQLITE_BUSY, which the busy timeout does not cover.
        {
            use sqlx::Connection;
            let mut setup = sqlx::SqliteConnection::connect_with(&opts).await?;
            sqlx::migrate!("src-tauri/migrations")
                .run(&mut setup)
                .await?;
            setup.close().await?;
        }
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(4)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_release(|conn, _| Box::pin(outside_transaction(conn)))
            .connect_with(opts)
            .await?;
        restrict_permissions(&path);
        let tokens = std::sync::Arc::new(token_cache::TokenCache::new(dir));
        let check = load_token_check(&pool).await?;
        Ok(Store {
            pool,
            tokens,
            check,
        })
    }

    /// The token check's key and legacy window: read once at open (they never change).
    pub fn token_check(&self) -> &TokenCheck {
        &self.check
    }

    /// Notices a revocation counter file that was deleted or replaced under a running
    /// server (see `token_cache`); cheap enough for every maintenance tick.
    pub fn recheck_revocation_counter(&self) {
        self.tokens.recheck();
    }

    /// Moves whenever any process committed a revocation (`None` without a counter file):
    /// how the running broker notices what the CLI changed, with one atomic read.
    pub fn revocation_epoch(&self) -> token_cache::Epoch {
        self.tokens.epoch()
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
        // Stale registrations: `purge_stale_registrations` (clients.rs), on its own period.
        Ok(a.rows_affected() + b.rows_affected())
    }

    /// A write transaction that takes the write lock up front. A deferred `BEGIN` that
    /// reads first and writes later fails at once with SQLITE_BUSY when another writer got
    /// in between (the busy timeout cannot help a lock upgrade), so concurrent approvals
    /// would fail.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether a connection may go back to the pool: only outside any transaction. A
/// transaction dropped without commit has queued its ROLLBACK on the connection, and a
/// ping runs it. When that ROLLBACK fails, the connection is closed and the pool opens a
/// fresh one. That happens after a COMMIT failed on a full disk: SQLite has already rolled
/// the transaction back, sqlx still counts it open, and every later `BEGIN` on that
/// connection would fail ("begin_with at non-zero transaction depth") until a restart.
async fn outside_transaction(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    Ok(clean)
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

async fn load_token_check(pool: &SqlitePool) -> Result<TokenCheck> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT key, legacy_access_until, legacy_personal_until FROM token_check LIMIT 1",
    )
    .fetch_one(pool)
    .await?;
    let key = crate::oauth::token_format::CheckKey::from_slice(row.get::<&[u8], _>("key"))
        .ok_or_else(|| {
            crate::Error::Db(sqlx::Error::Protocol(
                "the token check key is damaged".into(),
            ))
        })?;
    Ok(TokenCheck {
        key,
        legacy: crate::oauth::token_format::LegacyWindow {
            access_until: row.get("legacy_access_until"),
            personal_until: row.get("legacy_personal_until"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::register::validate_registration;
    use crate::oauth::{ClientId, GrantId, Resource, Scopes, TokenHash};

    const NOW: i64 = 1_800_000_000;

    const SCOPE: &str = "mcp";

    fn new_code<'a>(client: &'a ClientId, r: &'a Resource, code: &'a TokenHash) -> NewCode<'a> {
        static SCOPES: std::sync::LazyLock<Scopes> =
            std::sync::LazyLock::new(|| Scopes::single(SCOPE));
        NewCode {
            client_id: client,
            upstream: "up",
            resource: r,
            scopes: &SCOPES,
            code,
            redirect_uri: "http://127.0.0.1/cb",
            code_challenge: "ch",
            expires_at: NOW + 60,
            now: NOW,
            account: None,
        }
    }

    async fn with_grant(store: &Store) -> (GrantId, TokenHash) {
        let reg = validate_registration(&serde_json::json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"})).unwrap();
        let client = ClientId("c1".into());
        store.insert_client(&client, &reg, None, NOW).await.unwrap();
        let code = TokenHash::of("code-1");
        let grant = store
            .approve(&new_code(
                &client,
                &Resource("http://127.0.0.1:1/mcp/up".into()),
                &code,
            ))
            .await
            .unwrap();
        (grant, code)
    }

    fn issued(n: &str) -> IssuedTokens {
        IssuedTokens {
            access: TokenHash::of(&format!("a-{n}")),
            access_expires_at: NOW + 3600,
            refresh: TokenHash::of(&format!("r-{n}")),
            refresh_expires_at: NOW + 7200,
            scopes: Scopes::single("mcp"),
            issued_at: NOW,
        }
    }

    #[tokio::test]
    async fn the_grants_generation_grows_with_approval_and_revocation() {
        let (store, dir) = Store::open_temp().await.unwrap();
        let g0 = store.grants_generation().await.unwrap();
        let (grant, _) = with_grant(&store).await;
        let g1 = store.grants_generation().await.unwrap();
        assert_eq!(g1, g0 + 1);
        // Revoked through another connection, as the CLI does from its own process.
        let other = Store::open(&dir.0).await.unwrap();
        other.revoke_grant(grant, NOW).await.unwrap().unwrap();
        assert_eq!(store.grants_generation().await.unwrap(), g1 + 1);
        assert!(store.active_grants().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_code_is_redeemed_once_even_under_a_race() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        let (grant, code) = with_grant(&store).await;
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = store.clone();
                let c = code.clone();
                tokio::spawn(async move { s.redeem_code(&c, NOW).await.unwrap() })
            })
            .collect();
        let mut fresh = 0;
        for t in tasks {
            match t.await.unwrap() {
                Redeemed::Fresh(rec) => {
                    assert_eq!(rec.grant_id, grant);
                    fresh += 1;
                }
                Redeemed::AlreadyUsed(g) => assert_eq!(g, grant),
                Redeemed::Unknown => panic!("code vanished"),
            }
        }
        assert_eq!(fresh, 1);
        assert!(matches!(
            store
                .redeem_code(&TokenHash::of("other"), NOW)
                .await
                .unwrap(),
            Redeemed::Unknown
        ));
    }

    #[tokio::test]
    async fn rotation_is_single_winner_and_revocation_removes_everything() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        let (grant, _) = with_grant(&store).await;
        store.insert_tokens(grant, &issued("1")).await.unwrap();
        assert!(
            store
                .access_token(&TokenHash::of("a-1"))
                .await
                .unwrap()
                .is_some()
        );
        let old = TokenHash::of("r-1");
        assert_eq!(
            store
                .rotate_refresh(&old, grant, &issued("2"), NOW)
                .await
                .unwrap(),
            Rotation::Rotated
        );
        assert_eq!(
            store
                .rotate_refresh(&old, grant, &issued("3"), NOW)
                .await
                .unwrap(),
            Rotation::Lost
        );
        assert!(
            store.refresh_token(&old).await.unwrap().unwrap().rotated,
            "kept for replay detection"
        );
        assert!(
            store
                .access_token(&TokenHash::of("a-3"))
                .await
                .unwrap()
                .is_none(),
            "the loser stored nothing"
        );

        assert_eq!(store.active_grants().await.unwrap().len(), 1);
        let revoked = store.revoke_grant(grant, NOW).await.unwrap().unwrap();
        assert_eq!(revoked.upstream, "up");
        assert!(
            store.revoke_grant(grant, NOW).await.unwrap().is_none(),
            "second revoke finds nothing"
        );
        for t in ["a-1", "a-2"] {
            assert!(
                store
                    .access_token(&TokenHash::of(t))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert!(
            store
                .refresh_token(&TokenHash::of("r-2"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.active_grants().await.unwrap().is_empty());
        assert_eq!(store.inactive_among(&[grant]).await.unwrap(), vec![grant]);
    }

    #[tokio::test]
    async fn concurrent_approvals_all_succeed() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        let reg =
            validate_registration(&serde_json::json!({"redirect_uris": ["http://127.0.0.1/cb"]}))
                .unwrap();
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let s = store.clone();
                let reg = reg.clone();
                tokio::spawn(async move {
                    let client = ClientId(format!("c{i}"));
                    s.insert_client(&client, &reg, None, NOW).await?;
                    let r = Resource("http://127.0.0.1:1/mcp/up".into());
                    let code = TokenHash::of(&format!("code-{i}"));
                    s.approve(&new_code(&client, &r, &code)).await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().expect("approval under contention");
        }
        assert_eq!(store.active_grants().await.unwrap().len(), 12);
    }

    #[tokio::test]
    async fn a_revocation_by_another_process_invalidates_the_token_cache() {
        let (store, dir) = Store::open_temp().await.unwrap();
        let (grant, _) = with_grant(&store).await;
        store.insert_tokens(grant, &issued("1")).await.unwrap();
        let hash = TokenHash::of("a-1");
        assert!(store.access_token(&hash).await.unwrap().is_some());
        assert!(
            store.access_token(&hash).await.unwrap().is_some(),
            "now cached"
        );
        // A second Store on the same directory stands for the CLI process.
        let cli = Store::open(&dir.0).await.unwrap();
        cli.revoke_grant(grant, NOW).await.unwrap().unwrap();
        assert!(
            store.access_token(&hash).await.unwrap().is_none(),
            "the very next lookup sees the revocation"
        );
    }

    /// Caches `a-1` in `store`, lets a second store on the same dir (the CLI) revoke,
    /// and checks that `store`'s very next lookup misses.
    async fn revoked_elsewhere_is_seen_next(store: &Store, dir: &Path) {
        let hash = TokenHash::of("a-1");
        assert!(store.access_token(&hash).await.unwrap().is_some());
        assert!(store.access_token(&hash).await.unwrap().is_some());
        let grant = store.active_grants().await.unwrap()[0].id;
        let cli = Store::open(dir).await.unwrap();
        cli.revoke_grant(grant, NOW).await.unwrap().unwrap();
        assert!(
            store.access_token(&hash).await.unwrap().is_none(),
            "the very next lookup sees the revocation"
        );
    }

    #[tokio::test]
    async fn a_truncated_revocation_counter_is_grown_back_and_owner_only() {
        let dir = TempDir::new().unwrap();
        let counter = dir.0.join(token_cache::COUNTER_FILE);
        std::fs::write(&counter, b"").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&counter, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let store = Store::open(&dir.0).await.unwrap();
        let meta = std::fs::metadata(&counter).unwrap();
        assert_eq!(meta.len(), 8);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        let (grant, _) = with_grant(&store).await;
        store.insert_tokens(grant, &issued("1")).await.unwrap();
        revoked_elsewhere_is_seen_next(&store, &dir.0).await;
    }

    #[tokio::test]
    async fn a_replaced_revocation_counter_is_mapped_again() {
        let (store, dir) = Store::open_temp().await.unwrap();
        let (grant, _) = with_grant(&store).await;
        store.insert_tokens(grant, &issued("1")).await.unwrap();
        let hash = TokenHash::of("a-1");
        assert!(store.access_token(&hash).await.unwrap().is_some());
        // Someone deletes the file; the maintenance tick maps the one made next.
        std::fs::remove_file(dir.0.join(token_cache::COUNTER_FILE)).unwrap();
        store.recheck_revocation_counter();
        revoked_elsewhere_is_seen_next(&store, &dir.0).await;
    }

    #[tokio::test]
    async fn without_a_revocation_counter_nothing_is_cached() {
        let dir = TempDir::new().unwrap();
        // A directory where the file should be: it can be neither created nor mapped.
        std::fs::create_dir_all(dir.0.join(token_cache::COUNTER_FILE)).unwrap();
        let store = Store::open(&dir.0).await.unwrap();
        let (grant, _) = with_grant(&store).await;
        store.insert_tokens(grant, &issued("1")).await.unwrap();
        let hash = TokenHash::of("a-1");
        assert!(store.access_token(&hash).await.unwrap().is_some());
        assert!(store.access_token(&hash).await.unwrap().is_some());
        // Another process revokes by SQL alone (it cannot bump either): still seen.
        let other = Store::open(&dir.0).await.unwrap();
        assert!(
            other.revoke_grant(grant, NOW).await.is_err(),
            "the counter cannot be bumped"
        );
        assert!(store.access_token(&hash).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_connection_whose_commit_failed_never_returns_inside_a_transaction() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        // More failures than the pool has connections, so each one is hit.
        for _ in 0..8 {
            let mut tx = store.write_tx().await.unwrap();
            // SQLite ends the transaction under sqlx, as a COMMIT failing on a full disk
            // does; sqlx's ROLLBACK on drop then fails too.
            sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
            assert!(tx.commit().await.is_err());
        }
        let reg =
            validate_registration(&serde_json::json!({"redirect_uris": ["http://127.0.0.1/cb"]}))
                .unwrap();
        let writes: Vec<_> = (0..8)
            .map(|i| {
                let (s, reg) = (store.clone(), reg.clone());
                tokio::spawn(async move {
                    s.insert_client(&ClientId(format!("c{i}")), &reg, None, NOW)
                        .await
                })
            })
            .collect();
        for w in writes {
            w.await.unwrap().expect("a write on any pooled connection");
        }
    }

    #[test]
    fn a_full_disk_is_its_own_error() {
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(crate::error::Error::from(io).is_disk_full());
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!crate::error::Error::from(other).is_disk_full());
    }

    #[tokio::test]
    async fn committed_grants_survive_reopening() {
        let (store, dir) = Store::open_temp().await.unwrap();
        let (grant, _) = with_grant(&store).await;
        store.insert_tokens(grant, &issued("1")).await.unwrap();
        store.close().await;
        let reopened = Store::open(&dir.0).await.unwrap();
        assert_eq!(reopened.active_grants().await.unwrap()[0].id, grant);
        assert!(
            reopened
                .access_token(&TokenHash::of("a-1"))
                .await
                .unwrap()
                .is_some()
        );
    }
}
