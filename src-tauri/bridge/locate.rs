//! `broker.json`: a running broker writes its port, pid and issuer into its data dir at
//! start and removes the file on exit, so `mcp-broker connect` can find it. A file left
//! behind by a crash is recognised by its dead pid or an issuer that does not answer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const BROKER_FILE: &str = "broker.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub pid: u32,
    pub port: u16,
    /// `http://127.0.0.1:PORT`
    pub issuer: String,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(BROKER_FILE)
}

/// Written through a temporary file and a rename: a reader never sees half of it.
pub fn write(data_dir: &Path, info: &BrokerInfo) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(data_dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(data_dir)?;
    tmp.write_all(
        serde_json::to_string_pretty(info)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    tmp.persist(path(data_dir)).map_err(|e| e.error)?;
    Ok(())
}

/// Removes the file if it is still this process's.
pub fn remove(data_dir: &Path, pid: u32) {
    if let Ok(Some(info)) = read(data_dir)
        && info.pid == pid
    {
        let _ = std::fs::remove_file(path(data_dir));
    }
}

pub fn read(data_dir: &Path) -> std::io::Result<Option<BrokerInfo>> {
    match std::fs::read(path(data_dir)) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error(
        "no mcp-broker is running for {0} (no broker.json there); start it with `mcp-broker serve` (or the desktop app) and try again"
    )]
    NotRunning(PathBuf),
    #[error(
        "no mcp-broker is running for {0}: the broker that wrote broker.json (pid {1}) has exited; start it again"
    )]
    Stale(PathBuf, u32),
    #[error("the mcp-broker at {0} does not answer ({1}); is it still starting or stuck?")]
    NoAnswer(String, String),
    #[error("cannot read {0}: {1}")]
    Unreadable(PathBuf, std::io::Error),
}

fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        // Signal 0 checks existence; EPERM means it exists but belongs to someone else.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Finds the running broker and checks that it answers.
pub async fn locate(data_dir: &Path, http: &reqwest::Client) -> Result<BrokerInfo, LocateError> {
    let info = match read(data_dir) {
        Ok(Some(i)) => i,
        Ok(None) => return Err(LocateError::NotRunning(data_dir.to_owned())),
        Err(e) => return Err(LocateError::Unreadable(path(data_dir), e)),
    };
    if !alive(info.pid) {
        return Err(LocateError::Stale(data_dir.to_owned(), info.pid));
    }
    let url = format!("{}/.well-known/oauth-authorization-server", info.issuer);
    match http.get(&url).timeout(Duration::from_secs(5)).send().await {
        Ok(r) if r.status().is_success() => Ok(info),
        Ok(r) => Err(LocateError::NoAnswer(
            info.issuer,
            format!("HTTP {}", r.status()),
        )),
        Err(e) => Err(LocateError::NoAnswer(info.issuer, e.to_string())),
    }
}
