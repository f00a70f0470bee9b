//! Starting the broker when a bridge finds none (Claude Desktop starts every configured
//! stdio server when it opens, often before the broker runs, and all at once).
//!
//! One bridge starts it, the others wait: whoever takes the lock file
//! `DATA_DIR/broker.lock` ([`super::lock`]) looks again for a running broker and, if there
//! is still none, starts one and waits until it answers; the others poll for the broker
//! while the lock is taken. The lock is an OS file lock that the started broker inherits
//! and adopts (every broker holds it while it serves), so it is held from the moment one
//! bridge decides to start a broker until that broker exits: a bridge that is killed while
//! the broker starts does not let another bridge start a second one, and a broker that
//! crashed (or a lock file left behind) blocks nobody.
//!
//! The broker started is the desktop app (minimised to the tray) where there is a display
//! session and the binary has it, else the headless server. Either way it runs detached
//! (its own session, no terminal, stdin closed) so it outlives the bridge and the client
//! that launched it, and writes its output to `DATA_DIR/logs/broker.log`. It is the same
//! `mcp-broker serve` a person would start, so it behaves like any other.
//!
//! It does not take over the client app's process state: it runs in the data dir (not the
//! client's working directory) with only the session's environment ([`broker_env`]), not
//! the variables the client app set for itself or for the bridge, which would otherwise
//! reach every upstream the broker starts for anyone.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::locate::{self, BrokerInfo, LocateError};
use super::lock::{self, LockError};

pub use super::lock::LOCK_FILE;
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
    #[error(transparent)]
    Lock(#[from] LockError),
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
    let lock = match lock_or_find(data_dir, http, deadline).await? {
        Turn::Found(b) => return Ok(b),
        Turn::Start(lock) => lock,
    };
    let child = spawn(launch, data_dir, config, &log, &lock)?;
    drop(lock);
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

enum Turn {
    /// A broker runs (started by another bridge, or by hand).
    Found(BrokerInfo),
    /// This bridge holds the lock and no broker runs: start one.
    Start(File),
}

/// Takes `DATA_DIR/broker.lock`, or finds the broker that its holder started, by
/// `deadline`.
async fn lock_or_find(
    data_dir: &Path,
    http: &reqwest::Client,
    deadline: Instant,
) -> Result<Turn, StartError> {
    let path = data_dir.join(LOCK_FILE);
    let file = lock::open(data_dir)?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            // Look again: a broker may have come up while another bridge held the lock.
            Ok(()) => {
                // The pid in it was a broker's that has gone; the one started here
                // writes its own.
                let _ = file.set_len(0);
                return Ok(match locate::locate(data_dir, http).await {
                    Ok(b) => Turn::Found(b),
                    Err(_) => Turn::Start(file),
                });
            }
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LockError::Io(path.clone(), e).into());
            }
        }
        if let Ok(b) = locate::locate(data_dir, http).await {
            return Ok(Turn::Found(b));
        }
        if Instant::now() >= deadline {
            return Err(StartError::Timeout {
                secs: started.elapsed().as_secs().max(1),
                log: data_dir.join(LOG_FILE),
            });
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// Starts the broker, detached, holding `lock` for as long as it runs.
fn spawn(
    launch: Launch,
    data_dir: &Path,
    config: Option<&Path>,
    log: &Path,
    lock: &File,
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
    // Absolute: the broker runs in the data dir, not in the bridge's working directory.
    let data_dir = std::path::absolute(data_dir).map_err(StartError::Spawn)?;
    let config = config
        .map(std::path::absolute)
        .transpose()
        .map_err(StartError::Spawn)?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(launch.args(&data_dir, config.as_deref()))
        .current_dir(&data_dir)
        .env_clear()
        .envs(broker_env(std::env::vars_os()))
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        // The broker outlives this bridge: never kill it when the handle goes.
        .kill_on_drop(false);
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let lock_fd = lock.as_raw_fd();
        // The broker adopts this descriptor rather than locking the file again.
        cmd.env(lock::INHERITED_FD_VAR, lock_fd.to_string());
        // SAFETY: setsid and fcntl are async-signal-safe and touch no memory of this
        // process. A new session: no controlling terminal, and no signal meant for the
        // client's process group (Claude Desktop ending its servers) reaches the broker.
        // The lock's descriptor stays open across exec, so the broker holds the lock.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                if libc::fcntl(lock_fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    let _ = lock;
    cmd.spawn().map_err(StartError::Spawn)
}

/// Variables of the user's session that a broker (and the upstreams it starts) needs:
/// finding programs, the home and config dirs, the D-Bus session (keychain,
/// notifications), the display (the desktop app), locale and temp dir, the network's proxy
/// and CA settings, the SSH agent, the broker's own `MCP_BROKER_*` settings, and on Windows
/// the variables the system itself relies on.
const SESSION_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TMPDIR",
    "TZ",
    "LANG",
    "LANGUAGE",
    "DBUS_SESSION_BUS_ADDRESS",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "DESKTOP_SESSION",
    "SSH_AUTH_SOCK",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    // Windows
    "SYSTEMROOT",
    "SYSTEMDRIVE",
    "WINDIR",
    "COMSPEC",
    "PATHEXT",
    "USERPROFILE",
    "USERNAME",
    "APPDATA",
    "LOCALAPPDATA",
    "PROGRAMDATA",
    "PROGRAMFILES",
    "TEMP",
    "TMP",
];

const SESSION_PREFIXES: &[&str] = &["XDG_", "LC_", "MCP_BROKER_"];

/// The part of `vars` (the bridge's environment) that the broker it starts gets.
pub fn broker_env<K: AsRef<std::ffi::OsStr>, V>(
    vars: impl IntoIterator<Item = (K, V)>,
) -> Vec<(K, V)> {
    vars.into_iter()
        .filter(|(k, _)| {
            let Some(k) = k.as_ref().to_str() else {
                return false;
            };
            // Windows' names are case-insensitive.
            let upper = k.to_ascii_uppercase();
            let name = if cfg!(windows) { upper.as_str() } else { k };
            SESSION_VARS.contains(&name) || SESSION_PREFIXES.iter().any(|p| name.starts_with(p))
        })
        // The lock's descriptor is this bridge's to hand over, set for the one child.
        .filter(|(k, _)| k.as_ref() != super::lock::INHERITED_FD_VAR)
        .collect()
}

/// The line of the log that says why the broker stopped: the last one that reads like an
/// error (a panic is followed by backtrace notes), else the last one.
fn last_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let lines = || text.lines().rev().filter(|l| !l.trim().is_empty());
    let why = |l: &&str| {
        let l = l.to_ascii_lowercase();
        ["error", "cannot", "failed"].iter().any(|w| l.contains(w))
    };
    lines()
        .find(why)
        .or_else(|| lines().next())
        .map(|l| l.trim().chars().take(300).collect())
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

    #[test]
    fn the_broker_gets_the_session_not_the_client_apps_variables() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/p"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1/bus"),
            ("LC_ALL", "C.UTF-8"),
            ("MCP_BROKER_KEYCHAIN_SERVICE", "t"),
            ("MCP_BROKER_LOCK_FD", "9"),
            ("ANTHROPIC_API_KEY", "sk-secret"),
            ("ELECTRON_RUN_AS_NODE", "1"),
            ("NODE_OPTIONS", "--inspect"),
            ("PWD", "/home/p/somewhere"),
        ];
        let kept: Vec<&str> = broker_env(vars).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kept,
            [
                "PATH",
                "HOME",
                "XDG_RUNTIME_DIR",
                "DBUS_SESSION_BUS_ADDRESS",
                "LC_ALL",
                "MCP_BROKER_KEYCHAIN_SERVICE"
            ]
        );
    }

    #[test]
    fn the_log_line_that_says_why() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("broker.log");
        std::fs::write(
            &log,
            "listening on x\n\nthread 'main' panicked at app.rs:1:1:\nFailed to setup app: cannot start on 127.0.0.1:7391: Address already in use\nstack backtrace:\nnote: Some details are omitted\n\n",
        )
        .unwrap();
        assert_eq!(
            last_line(&log).unwrap(),
            "Failed to setup app: cannot start on 127.0.0.1:7391: Address already in use"
        );
        std::fs::write(&log, "one\ntwo\n").unwrap();
        assert_eq!(last_line(&log).unwrap(), "two");
        assert_eq!(last_line(&d.path().join("none")), None);
    }

    /// While another process holds the lock, a bridge waits (and gives up at the
    /// deadline); once it is free, the bridge takes it.
    #[tokio::test]
    async fn one_holder_of_the_lock_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let http = reqwest::Client::new();
        let first = lock_or_find(d.path(), &http, Instant::now()).await.unwrap();
        assert!(matches!(first, Turn::Start(_)));
        let soon = Instant::now() + Duration::from_millis(400);
        assert!(matches!(
            lock_or_find(d.path(), &http, soon).await,
            Err(StartError::Timeout { .. })
        ));
        drop(first);
        assert!(matches!(
            lock_or_find(d.path(), &http, Instant::now()).await,
            Ok(Turn::Start(_))
        ));
    }
}
