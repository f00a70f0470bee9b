//! A cache of access-token lookups that every revocation invalidates, from any process.
//!
//! The hot path of every MCP request is "is this token valid for this resource". The
//! answer only changes when a grant is revoked (expiry is checked on every use anyway),
//! and every revocation, whether by the server itself or by `mcp-broker grants revoke`
//! in another process, goes through `Store::revoke_grant`, which commits and then
//! increments the revocation counter: 8 bytes at the start of `revocations.counter` in
//! the data dir, which every broker process on that dir maps into memory (a shared
//! file mapping, so all of them see the same physical page). A lookup first loads the
//! counter, one atomic read and no system call, and on any change drops the whole
//! cache. Because the counter moves after the commit and before the CLI exits, the
//! request after a revocation always reads the database again.
//!
//! An entry read before a revocation could land in the cache after it; entries carry the
//! counter value seen before their database read, and the next lookup's check drops them.
//!
//! Lookups that found nothing are remembered too (a bounded set of hashes, apart from the
//! records, so a flood of unknown tokens cannot push a real one out), under the same
//! counter: a revocation can only add refusals, and a token minted after the entry was
//! made (by this process, or by another that moves the counter, as creating a personal
//! token does) is never refused because of it. Tokens are 256-bit random, so an entry
//! for a token not yet minted is a guess that never comes true; the minting process also
//! forgets the hash outright.
//!
//! When the file cannot be created or mapped, nothing is cached and every lookup reads
//! the database. A file shorter than 8 bytes (truncated while no broker ran) is grown
//! back; the broker never shrinks it. A file deleted or replaced under a running server
//! is noticed by [`TokenCache::recheck`] (the server's maintenance tick), which maps the
//! new one and drops the cache; revoked grants' sessions end on the same tick through
//! the database check. A file truncated under a running server makes the next lookup
//! fault (SIGBUS): the process dies rather than serve a revoked token.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::oauth::TokenHash;
use crate::oauth::bearer::AccessRecord;

pub const COUNTER_FILE: &str = "revocations.counter";
const COUNTER_LEN: usize = std::mem::size_of::<u64>();
const MAX_ENTRIES: usize = 10_000;
const MAX_UNKNOWN: usize = 4_096;

/// The counter value a lookup saw; `None` when there is no counter (nothing is cached).
pub type Epoch = Option<u64>;

pub struct TokenCache {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    counter: Option<Counter>,
    epoch: Epoch,
    entries: HashMap<TokenHash, Arc<AccessRecord>>,
    unknown: HashSet<TokenHash>,
}

/// What the cache knows of a token.
pub enum Cached {
    Record(Arc<AccessRecord>),
    /// Looked up since the last revocation and not found (or its grant was revoked).
    Unknown,
    Miss,
}

/// The first 8 bytes of the counter file, mapped shared.
struct Counter {
    map: memmap2::MmapRaw,
    /// Which file is mapped, to notice it being replaced.
    #[cfg(unix)]
    file_id: (u64, u64),
}

impl Counter {
    fn open(dir: &Path) -> std::io::Result<Counter> {
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(dir.join(COUNTER_FILE))?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other(
                "the revocation counter is not a regular file",
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
        }
        // Growing only: a racing process that grew it already loses nothing. Real bytes,
        // not `set_len`: a sparse page would be allocated by the first increment through
        // the mapping, and on a full disk that is a SIGBUS instead of this clean error.
        if meta.len() < COUNTER_LEN as u64 {
            let have = meta.len() as usize;
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileExt;
                file.write_all_at(&[0u8; COUNTER_LEN][have..], have as u64)?;
            }
            #[cfg(not(unix))]
            {
                use std::io::{Seek, SeekFrom, Write};
                let mut f = &file;
                f.seek(SeekFrom::Start(have as u64))?;
                f.write_all(&[0u8; COUNTER_LEN][have..])?;
            }
            file.sync_data()?;
        }
        let map = memmap2::MmapOptions::new()
            .len(COUNTER_LEN)
            .map_raw(&file)?;
        Ok(Counter {
            map,
            #[cfg(unix)]
            file_id: file_id(&file)?,
        })
    }

    fn atomic(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned (so aligned for u64), COUNTER_LEN bytes
        // long, lives as long as `self`, and every process touches it only through
        // atomic operations.
        unsafe { &*self.map.as_mut_ptr().cast::<AtomicU64>() }
    }

    fn load(&self) -> u64 {
        self.atomic().load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.atomic().fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(unix)]
fn file_id(f: &File) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok((m.dev(), m.ino()))
}

impl TokenCache {
    /// Maps the counter file in `dir`, creating it if needed. Without it nothing is
    /// cached, which is slower but correct.
    pub fn new(dir: &Path) -> TokenCache {
        let counter = match Counter::open(dir) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    "cannot map the revocation counter; access tokens are not cached: {e}"
                );
                None
            }
        };
        TokenCache {
            dir: dir.to_owned(),
            inner: Mutex::new(Inner {
                counter,
                epoch: None,
                entries: HashMap::new(),
                unknown: HashSet::new(),
            }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A cached record, after checking the counter. Returns the epoch to tag a database
    /// read with, for [`insert`](Self::insert).
    pub fn get(&self, hash: &TokenHash) -> (Cached, Epoch) {
        let mut inner = self.inner();
        let now = inner.counter.as_ref().map(Counter::load);
        if now.is_none() || inner.epoch != now {
            inner.entries.clear();
            inner.unknown.clear();
            inner.epoch = now;
            return (Cached::Miss, now);
        }
        let found = match inner.entries.get(hash) {
            Some(r) => Cached::Record(r.clone()),
            None if inner.unknown.contains(hash) => Cached::Unknown,
            None => Cached::Miss,
        };
        (found, now)
    }

    /// Remembers that a lookup tagged `seen` found nothing.
    pub fn insert_unknown(&self, hash: TokenHash, seen: Epoch) {
        let mut inner = self.inner();
        if seen.is_none() || inner.epoch != seen {
            return;
        }
        if inner.unknown.len() >= MAX_UNKNOWN {
            inner.unknown.clear();
        }
        inner.unknown.insert(hash);
    }

    /// Forgets a "not found" for a token just minted here.
    pub fn minted(&self, hash: &TokenHash) {
        self.inner().unknown.remove(hash);
    }

    /// The counter as it stands: moves on every committed revocation by any process.
    pub fn epoch(&self) -> Epoch {
        self.inner().counter.as_ref().map(Counter::load)
    }

    pub fn insert(&self, hash: TokenHash, rec: Arc<AccessRecord>, seen: Epoch) {
        let mut inner = self.inner();
        if seen.is_none() || inner.epoch != seen {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(hash, rec);
    }

    /// Marks a committed revocation: this process forgets at once, every other process
    /// on its next lookup. Fails only if there is no counter and none can be made.
    pub fn revoked(&self) -> std::io::Result<()> {
        let mut inner = self.inner();
        inner.entries.clear();
        if inner.counter.is_none() {
            inner.counter = Some(Counter::open(&self.dir)?);
        }
        if let Some(c) = &inner.counter {
            c.bump();
        }
        Ok(())
    }

    /// Maps the counter file again if it was deleted or replaced since it was mapped
    /// (or could not be mapped before), dropping the cache. A few `stat`s per second
    /// from the server's maintenance tick, instead of one per request.
    pub fn recheck(&self) {
        let current = {
            let inner = self.inner();
            match &inner.counter {
                None => false,
                #[cfg(unix)]
                Some(c) => {
                    use std::os::unix::fs::MetadataExt;
                    std::fs::metadata(self.dir.join(COUNTER_FILE)).is_ok_and(|m| {
                        (m.dev(), m.ino()) == c.file_id && m.len() >= COUNTER_LEN as u64
                    })
                }
                // Elsewhere a mapped file cannot be deleted or replaced.
                #[cfg(not(unix))]
                Some(_) => true,
            }
        };
        if current {
            return;
        }
        let fresh = Counter::open(&self.dir).ok();
        let mut inner = self.inner();
        if fresh.is_none() && inner.counter.is_some() {
            tracing::warn!("the revocation counter is gone; access tokens are not cached");
        }
        inner.counter = fresh;
        inner.epoch = None;
        inner.entries.clear();
        inner.unknown.clear();
    }
}
