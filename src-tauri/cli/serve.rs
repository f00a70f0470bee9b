//! `serve`: the headless server, or the desktop app around it (handed in by `main`, so
//! the command line never imports the shell). Both start through [`crate::app`].

use super::ServeArgs;
use crate::app::{self, DesktopShell};
use crate::consent::ConsentMode;

pub fn run(args: ServeArgs, desktop: Option<DesktopShell>) -> i32 {
    // Before loading: a first start (no config file) says so in the log.
    app::init_tracing();
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
        return match desktop {
            Some(shell) => shell(app::DesktopStart {
                config,
                data_dir,
                port,
                minimized: args.minimized,
            }),
            None => {
                eprintln!(
                    "mcp-broker: built without the desktop app; run `mcp-broker serve --headless`"
                );
                2
            }
        };
    }
    let Some(rt) = super::runtime() else {
        return 1;
    };
    rt.block_on(async move {
        match app::start(config, data_dir, port, ConsentMode::Page).await {
            Ok(running) => running.until(app::shutdown_signal()).await,
            Err(e @ app::StartError::Lock(crate::bridge::lock::LockError::Held { .. })) => {
                eprintln!("mcp-broker: cannot start: {e}");
                2
            }
            Err(e) => {
                eprintln!("mcp-broker: cannot start: {e}");
                1
            }
        }
    })
}
