//! Starting and stopping the broker: the one start-up path the headless server and the
//! desktop app share. [`start`] takes the data dir's `broker.lock` (one broker per data
//! dir: a second one refuses to start, naming the first), opens (and migrates) the store, binds 127.0.0.1, starts
//! maintenance, the watch on the configuration file (hand edits apply without a restart)
//! and the HTTP server, writes `DATA_DIR/broker.json` so that `mcp-broker
//! connect` finds this broker, and prints the ready line once every route answers.
//! [`Running::until`] serves until a stop signal or a server failure, then ends every
//! session (and so every upstream child) and removes `broker.json`.

use std::future::Future;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::bridge::locate::{self, BrokerInfo};
use crate::bridge::lock::{BrokerLock, LockError};
use crate::config::Config;
use crate::consent::ConsentMode;
use crate::gateway::Gateway;
use crate::store::Store;
use crate::vault::Vault;

/// How a front end runs the desktop app, handed in by `main` so that the command line
/// never imports the desktop shell.
pub type DesktopShell = fn(DesktopStart) -> i32;

/// What the desktop app starts with.
pub struct DesktopStart {
    pub config: Config,
    pub data_dir: PathBuf,
    pub port: u16,
    /// Start in the tray without showing the window (a start at login, or by
    /// `mcp-broker connect`).
    pub minimized: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another broker serves this data dir (or the lock file cannot be used).
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot open the data in {dir}: {source}")]
    Store { dir: PathBuf, source: crate::Error },
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
}

/// A broker that is serving.
pub struct Running {
    gateway: Gateway,
    server: JoinHandle<std::io::Result<()>>,
    /// Applies hand edits of the configuration file; `None` when the file cannot be
    /// watched (the broker serves, changes need a restart).
    config_watch: Option<JoinHandle<()>>,
    /// Released when the broker has shut down, not before: a successor waits for it.
    lock: BrokerLock,
}

/// Starts the broker on `127.0.0.1:port` (0 picks a free port). Only loopback: the
/// broker is for this machine.
pub async fn start(
    config: Config,
    data_dir: PathBuf,
    port: u16,
    consent: ConsentMode,
) -> Result<Running, StartError> {
    // Before the store: a second broker must not migrate or touch the data it serves.
    let lock = BrokerLock::take(&data_dir)?;
    let store = Store::open(&data_dir)
        .await
        .map_err(|source| StartError::Store {
            dir: data_dir.clone(),
            source,
        })?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|source| StartError::Bind { port, source })?;
    let port = listener
        .local_addr()
        .map_err(|source| StartError::Bind { port, source })?
        .port();
    let upstream_count = config.upstreams.len();
    let gateway = Gateway::new(
        config,
        &data_dir,
        port,
        store,
        consent,
        Arc::new(Vault::system()),
    );
    gateway.spawn_maintenance();
    let config_watch = gateway
        .watch_config()
        .inspect_err(|e| tracing::warn!("{e}; hand edits take effect after a restart"))
        .ok();
    let server = tokio::spawn(crate::http::serve(
        listener,
        gateway.clone(),
        std::future::pending(),
    ));
    let info = BrokerInfo {
        pid: std::process::id(),
        port,
        issuer: gateway.issuer().to_string(),
    };
    if let Err(e) = locate::write(&data_dir, &info) {
        tracing::warn!(
            "cannot write broker.json (mcp-broker connect will not find this broker): {e}"
        );
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", gateway.issuer());
        let _ = out.flush();
    }
    tracing::info!(upstreams = upstream_count, data_dir = %data_dir.display(), "ready");
    if upstream_count == 0 {
        tracing::info!(config = %gateway.config().path.display(), "no upstreams configured yet");
    }
    Ok(Running {
        gateway,
        server,
        config_watch,
        lock,
    })
}

impl Running {
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Serves until `stop` completes (or the server fails), then shuts down: every
    /// session and child ends and `broker.json` goes. Returns the exit status.
    pub async fn until(self, stop: impl Future<Output = ()>) -> i32 {
        let Running {
            gateway,
            server,
            config_watch,
            lock,
        } = self;
        let code = tokio::select! {
            _ = stop => {
                tracing::info!("shutting down");
                0
            }
            r = server => match r {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    tracing::error!("server failed: {e}");
                    1
                }
                Err(e) => {
                    tracing::error!("server task failed: {e}");
                    1
                }
            },
        };
        if let Some(w) = config_watch {
            w.abort();
        }
        locate::remove(gateway.data_dir(), std::process::id());
        gateway.shutdown().await;
        drop(lock);
        code
    }
}

/// SIGTERM or Ctrl-C: the ways a supervisor or a terminal ends the broker.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs to stderr; `MCP_BROKER_LOG` sets the filter (default `info`).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MCP_BROKER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
