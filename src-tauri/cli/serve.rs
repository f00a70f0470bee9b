//! `serve`: the headless server, or the desktop app around it.

use std::io::Write;

use super::ServeArgs;
use crate::consent::ConsentMode;
use crate::gateway::Gateway;

pub fn run(args: ServeArgs) -> i32 {
    // Before loading: a first start (no config file) says so in the log.
    init_tracing();
    let config_path = args.config.clone().unwrap_or_else(super::default_config);
    let config = match crate::config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            return 2;
        }
    };
    let data_dir = args.data.resolve();
    let port = args.port.unwrap_or_else(|| config.port());
    if !args.headless {
        #[cfg(feature = "desktop")]
        {
            return crate::desktop::run(config, data_dir, port);
        }
        #[cfg(not(feature = "desktop"))]
        {
            eprintln!(
                "mcp-broker: built without the desktop app; run `mcp-broker serve --headless`"
            );
            return 2;
        }
    }
    let Some(rt) = super::runtime() else {
        return 1;
    };
    rt.block_on(async move {
        let (gateway, listener) =
            match Gateway::bind(config, &data_dir, port, ConsentMode::Page).await {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("mcp-broker: cannot start on 127.0.0.1:{port}: {e}");
                    return 1;
                }
            };
        serve_until_signal(gateway, listener).await
    })
}

/// Serves, prints the ready line, and on SIGTERM or Ctrl-C ends every session (and so
/// every child) before exiting.
pub async fn serve_until_signal(gateway: Gateway, listener: tokio::net::TcpListener) -> i32 {
    gateway.spawn_maintenance();
    let server = tokio::spawn(crate::http::serve(
        listener,
        gateway.clone(),
        std::future::pending(),
    ));
    // Lets `mcp-broker connect` find this broker; removed again on the way out.
    let pid = std::process::id();
    let info = crate::bridge::locate::BrokerInfo {
        pid,
        port: gateway.port,
        issuer: gateway.issuer.clone(),
    };
    if let Err(e) = crate::bridge::locate::write(&gateway.data_dir, &info) {
        tracing::warn!(
            "cannot write broker.json (mcp-broker connect will not find this broker): {e}"
        );
    }
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", gateway.issuer);
        let _ = out.flush();
    }
    tracing::info!(upstreams = gateway.config.upstreams.len(), data_dir = %gateway.data_dir.display(), "ready");
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
        }
        r = server => {
            if let Ok(Err(e)) = r {
                tracing::error!("server failed: {e}");
                crate::bridge::locate::remove(&gateway.data_dir, pid);
                gateway.shutdown().await;
                return 1;
            }
        }
    }
    crate::bridge::locate::remove(&gateway.data_dir, pid);
    gateway.shutdown().await;
    0
}

/// SIGTERM or Ctrl-C: the ways a supervisor or a terminal ends the broker.
pub(crate) async fn shutdown_signal() {
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

pub(super) fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MCP_BROKER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
