//! Starting the broker when a bridge finds none (Claude Desktop starts every configured
//! stdio server when it opens, often before the broker runs, and all at once).
//!
//! One bridge starts it, the others wait: whoever takes the lock file
//! `DATA_DIR/broker.lock` looks again for a running broker and, if there is still none,
//! starts one and waits until it answers; the others block on the lock and then find it.
//! The lock is an OS file lock (released when its holder exits, even by a crash), so a
//! stale lock file never blocks anyone.
//!
//! The broker started is the desktop app (minimised to the tray) where there is a display
//! session and the binary has it, else the headless server. Either way it runs detached
//! (its own session, no terminal, stdin closed) so it outlives the bridge and the client
//! that launched it, and writes its output to `DATA_DIR/logs/broker.log`. It is the same
//! `mcp-broker serve` a person would start, so it behaves like any other.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::locate::{self, BrokerInfo, LocateError};

pub const LOCK_FILE: &str = "broker.lock";
pub const LOG_FILE: &str = "logs/broker.log";

/// What to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// The desktop app, minimised to the tray.
    Desktop,
    /// `serve --headless`.
    Headless,
}

impl Launch {
    /// The desktop app when the binary has it and a display session is there.
    pub fn for_this_session() -> Launch {
        let display = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        if cfg!(feature = "desktop") && (display || cfg!(any(target_os = "macos", windows))) {
            Launch::Desktop
        } else {
            Launch::Headless
        }
    }

    pub fn args(self, data_dir: &Path, config: Option<&Path>) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["serve".into()];
        args.push(match self {
            Launch::Desktop => "--minimized".into(),
            Launch::Headless => "--headless".into(),
        });
        args.push("--data-dir".into());
        args.push(data_dir.into());
        if let Some(c) = config {
            args.push("--config".into());
            args.push(c.into());
        }
        args
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Locate(#[from] LocateError),
    #[error("cannot start the broker: {0}")]
    Spawn(std::io::Error),
    #[error("cannot use {0}: {1}")]
    Lock(PathBuf, std::io::Error),
    #[error(
        "the broker that was started exited ({status}) before it answered{last_line}; its log is {log}"
    )]
    Exited {
        status: String,
        last_line: String,
        log: PathBuf,
    },
    #[error(
        "no broker answered within {secs} seconds of starting one (or of waiting for another bridge to start it); its log is {log}"
    )]
    Timeout { secs: u64, log: PathBuf },
}

/// The running broker, after starting one if there is none. Bounded by `wait`.
pub async fn ensure_running(
    data_dir: &Path,
    config: Option<&Path>,
    launch: Launch,
    http: &reqwest::Client,
    wait: Duration,
) -> Result<BrokerInfo, StartError> {
    let deadline = Instant::now() + wait;
    let log = data_dir.join(LOG_FILE);
    match locate::locate(data_dir, http).await {
        Ok(b) => return Ok(b),
        Err(LocateError::NotRunning(_) | LocateError::Stale(..)) => {}
        // Its process lives but does not answer yet: it is starting. Wait for it.
        Err(LocateError::NoAnswer(..)) => return wait_for(data_dir, http, deadline, None).await,
        Err(e) => return Err(e.into()),
    }
    let _lock = take_lock(data_dir, deadline).await?;
    // Another bridge may have started it while this one waited for the lock.
    if let Ok(b) = locate::locate(data_dir, http).await {
        return Ok(b);
    }
    let child = spawn(launch, data_dir, config, &log)?;
    tracing::info!(
        pid = child.id(),
        ?launch,
        "started the broker; its log is {}",
        log.display()
    );
    wait_for(data_dir, http, deadline, Some(child)).await
}

/// Polls broker.json until a broker answers, the started one exits, or time runs out.
async fn wait_for(
    data_dir: &Path,
    http: &reqwest::Client,
    deadline: Instant,
    mut child: Option<tokio::process::Child>,
) -> Result<BrokerInfo, StartError> {
    let log = data_dir.join(LOG_FILE);
    let started = Instant::now();
    loop {
        if let Ok(b) = locate::locate(data_dir, http).await {
            return Ok(b);
        }
        if let Some(c) = child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            // The desktop app hands over to an instance already running and exits 0:
            // then that one is the broker to wait for.
            if !status.success() {
                return Err(StartError::Exited {
                    status: status.to_string(),
                    last_line: last_line(&log)
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default(),
                    log,
                });
            }
            child = None;
        }
        if Instant::now() >= deadline {
            return Err(StartError::Timeout {
                secs: started.elapsed().as_secs().max(1),
                log,
            });
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Takes `DATA_DIR/broker.lock`, waiting for another holder until `deadline`.
async fn take_lock(data_dir: &Path, deadline: Instant) -> Result<File, StartError> {
    let path = data_dir.join(LOCK_FILE);
    let lock_err = |e| StartError::Lock(path.clone(), e);
    std::fs::create_dir_all(data_dir).map_err(lock_err)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(lock_err)?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        if Instant::now() >= deadline {
            return Err(StartError::Timeout {
                secs: 0,
                log: data_dir.join(LOG_FILE),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spawn(
    launch: Launch,
    data_dir: &Path,
    config: Option<&Path>,
    log: &Path,
) -> Result<tokio::process::Child, StartError> {
    let exe = std::env::current_exe().map_err(StartError::Spawn)?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(StartError::Spawn)?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(StartError::Spawn)?;
    let err = out.try_clone().map_err(StartError::Spawn)?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(launch.args(data_dir, config))
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        // The broker outlives this bridge: never kill it when the handle goes.
        .kill_on_drop(false);
    #[cfg(unix)]
    // SAFETY: setsid is async-signal-safe and touches no memory of this process. A new
    // session: no controlling terminal, and no signal meant for the client's process
    // group (Claude Desktop ending its servers) reaches the broker.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().map_err(StartError::Spawn)
}

fn last_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_broker_is_started_as_serve_with_the_bridges_data_dir() {
        let d = Path::new("/tmp/d");
        assert_eq!(
            Launch::Headless.args(d, None),
            ["serve", "--headless", "--data-dir", "/tmp/d"]
                .map(std::ffi::OsString::from)
                .to_vec()
        );
        assert_eq!(
            Launch::Desktop.args(d, Some(Path::new("/c.toml"))),
            [
                "serve",
                "--minimized",
                "--data-dir",
                "/tmp/d",
                "--config",
                "/c.toml"
            ]
            .map(std::ffi::OsString::from)
            .to_vec()
        );
    }

    #[tokio::test]
    async fn one_holder_of_the_lock_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let first = take_lock(d.path(), Instant::now()).await.unwrap();
        let soon = Instant::now() + Duration::from_millis(300);
        assert!(matches!(
            take_lock(d.path(), soon).await,
            Err(StartError::Timeout { .. })
        ));
        drop(first);
        assert!(take_lock(d.path(), Instant::now()).await.is_ok());
    }
}
