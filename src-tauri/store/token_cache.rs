//! A cache of access-token lookups that every revocation invalidates, from any process.
//!
//! The hot path of every MCP request is "is this token valid for this resource". The
//! answer only changes when a grant is revoked (expiry is checked on every use anyway),
//! and every revocation, whether by the server itself or by `mcp-broker grants revoke`
//! in another process, goes through `Store::revoke_grant`, which commits and then
//! touches the revocation epoch file in the data dir. A lookup first compares that
//! file's metadata with what it saw last time (one `stat`), and on any change drops the
//! whole cache. Because the file is touched after the commit and before the CLI exits,
//! the request after a revocation always reads the database again.
//!
//! An entry read before a revocation could land in the cache after it; entries carry the
//! epoch seen before their database read, and the next lookup's check drops them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::oauth::TokenHash;
use crate::oauth::bearer::AccessRecord;

pub const EPOCH_FILE: &str = "revocations.epoch";
const MAX_ENTRIES: usize = 10_000;

/// What the epoch file looked like: (length, modification time).
pub type Epoch = Option<(u64, SystemTime)>;

pub struct TokenCache {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    epoch: Epoch,
    entries: HashMap<TokenHash, Arc<AccessRecord>>,
}

impl TokenCache {
    pub fn new(dir: &Path) -> TokenCache {
        TokenCache {
            path: dir.join(EPOCH_FILE),
            inner: Mutex::new(Inner {
                epoch: None,
                entries: HashMap::new(),
            }),
        }
    }

    fn read_epoch(&self) -> Epoch {
        let m = std::fs::metadata(&self.path).ok()?;
        Some((m.len(), m.modified().ok()?))
    }

    /// A cached record, after checking the epoch. Returns the epoch to tag a database
    /// read with, for [`insert`](Self::insert).
    pub fn get(&self, hash: &TokenHash) -> (Option<Arc<AccessRecord>>, Epoch) {
        let now = self.read_epoch();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_none() || inner.epoch != now {
            inner.entries.clear();
            inner.epoch = now;
            return (None, now);
        }
        (inner.entries.get(hash).cloned(), now)
    }

    pub fn insert(&self, hash: TokenHash, rec: Arc<AccessRecord>, seen: Epoch) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_none() || inner.epoch != seen {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(hash, rec);
    }

    /// Marks a revocation: appends a byte to the epoch file (restarting it when it grows),
    /// which changes its length and modification time for every process watching it. On a
    /// full disk the append fails; setting the modification time needs no new block.
    pub fn bump(dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let path = dir.join(EPOCH_FILE);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        if f.metadata()?.len() >= 4096 {
            f.set_len(0)?;
        }
        if f.write_all(b".").is_err() {
            f.set_modified(SystemTime::now())?;
        }
        Ok(())
    }

    /// Forgets everything (this process's own revocations).
    pub fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .clear();
    }
}
