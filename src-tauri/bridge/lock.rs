//! `DATA_DIR/broker.lock`: one broker per data dir. The broker that serves a data dir holds
//! an OS file lock (`flock`) on this file for as long as it runs, so a second broker on the
//! same data dir (by hand, at login, or started by a bridge) refuses to start instead of
//! sharing the SQLite store and racing on `broker.json`. The holder writes its pid into the
//! file, so the refusal can name it even before `broker.json` is written.
//!
//! Bridges use the same lock to decide which one of them starts the broker
//! ([`super::start`]): the bridge that takes it hands the locked descriptor to the broker
//! it starts (the descriptor stays open across `exec`, and its number is in
//! [`INHERITED_FD_VAR`]), and the broker adopts it instead of locking again. An `flock`
//! belongs to the open file, not to the process, so a second `open` + lock in the broker
//! would find the lock taken by itself; adopting the descriptor is what keeps the start
//! free of a gap in which another bridge could start a second broker.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "broker.lock";

/// The number of the locked descriptor a bridge hands to the broker it starts.
pub const INHERITED_FD_VAR: &str = "MCP_BROKER_LOCK_FD";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another mcp-broker already serves {dir} ({holder}); stop it first, or give this one another --data-dir"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot use {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

/// Opens (creating) the lock file without taking the lock.
pub fn open(data_dir: &Path) -> Result<File, LockError> {
    let path = data_dir.join(LOCK_FILE);
    let io = |e| LockError::Io(path.clone(), e);
    std::fs::create_dir_all(data_dir).map_err(io)?;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)
}

/// The lock of the broker that serves a data dir, held until it is dropped.
#[derive(Debug)]
pub struct BrokerLock {
    _file: File,
}

impl BrokerLock {
    /// Takes the data dir's lock for this process (adopting the one a bridge handed
    /// over), or says who holds it.
    pub fn take(data_dir: &Path) -> Result<BrokerLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |e| LockError::Io(path.clone(), e);
        let mut file = match inherited(&path) {
            Some(f) => f,
            None => open(data_dir)?,
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: data_dir.to_owned(),
                    holder: holder(data_dir, &path),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.write_all(std::process::id().to_string().as_bytes())
            .map_err(io)?;
        Ok(BrokerLock { _file: file })
    }
}

/// Who holds the lock, as far as the data dir tells: the pid in the lock file and the
/// port in `broker.json` (absent while that broker is still starting).
fn holder(data_dir: &Path, path: &Path) -> String {
    let info = super::locate::read(data_dir).ok().flatten();
    let pid = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .or(info.as_ref().map(|i| i.pid));
    match (pid, info) {
        (Some(pid), Some(i)) if i.pid == pid => format!("pid {pid}, {}", i.issuer),
        (Some(pid), _) => format!("pid {pid}, still starting"),
        (None, _) => "a process that is still starting".to_owned(),
    }
}

/// The locked descriptor a bridge handed to this process, if [`INHERITED_FD_VAR`] names
/// one that is open on this very lock file. Taken once; the descriptor is closed on exec
/// again, so upstream children never hold the lock.
#[cfg(unix)]
fn inherited(path: &Path) -> Option<File> {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    static ADOPTED: AtomicBool = AtomicBool::new(false);
    let fd: libc::c_int = std::env::var(INHERITED_FD_VAR).ok()?.trim().parse().ok()?;
    if fd < 0 {
        return None;
    }
    let want = std::fs::metadata(path).ok()?;
    // SAFETY: fstat only writes into the zeroed struct; an fd that is not open fails.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0
        || st.st_dev as u64 != want.dev()
        || st.st_ino as u64 != want.ino()
    {
        return None;
    }
    if ADOPTED.swap(true, Ordering::SeqCst) {
        return None;
    }
    // SAFETY: the descriptor is open on the lock file (checked above), nothing else in
    // this process owns it (it came across exec), and it is adopted at most once.
    let file = unsafe { File::from_raw_fd(fd) };
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Some(file)
}

#[cfg(not(unix))]
fn inherited(_path: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let d = tempfile::tempdir().unwrap();
        let first = BrokerLock::take(d.path()).unwrap();
        let err = BrokerLock::take(d.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        BrokerLock::take(d.path()).unwrap();
    }
}
