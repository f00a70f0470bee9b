//! `connect NAME`: the stdio bridge (see `crate::bridge`). Its stdout is the MCP channel,
//! so everything it has to say goes to stderr. Exit status 1 when no broker runs and
//! none could be started.

use std::path::PathBuf;
use std::time::Duration;

use super::DataDirArg;
use crate::bridge::start::{Launch, StartError, ensure_running};
use crate::bridge::{auth::Auth, locate, relay::Relay};
use crate::oauth_client::OAuthClientError;

/// How long a bridge waits for a broker to start (its own, or another bridge's).
const START_WAIT: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// The server's name in the broker's configuration.
    pub name: String,
    #[command(flatten)]
    pub data: DataDirArg,
    /// The name the consent page shows for this connection.
    #[arg(long, default_value = "mcp-broker connect (stdio client)")]
    pub client_name: String,
    /// The configuration file for a broker this command starts (default: the usual one).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Fail when no broker is running instead of starting one.
    #[arg(long)]
    pub no_start: bool,
}

pub fn run(args: ConnectArgs) -> i32 {
    crate::app::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-broker connect: cannot start: {e}");
            return 1;
        }
    };
    let data_dir = args.data.resolve();
    let name = args.name;
    rt.block_on(async move {
        let http = match reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("mcp-broker connect: {e}");
                return 1;
            }
        };
        let found = if args.no_start {
            locate::locate(&data_dir, &http)
                .await
                .map_err(StartError::from)
        } else {
            ensure_running(
                &data_dir,
                args.config.as_deref(),
                Launch::for_this_session(),
                &http,
                START_WAIT,
            )
            .await
        };
        let broker = match found {
            Ok(b) => b,
            Err(e) => {
                eprintln!("mcp-broker connect: {e}");
                return 1;
            }
        };
        let auth = match Auth::load(
            http.clone(),
            &broker.issuer,
            broker.port,
            &name,
            &args.client_name,
        )
        .await
        {
            Ok(a) => a,
            Err(crate::bridge::auth::AuthError::OAuth(OAuthClientError::Status {
                status: reqwest::StatusCode::NOT_FOUND,
                ..
            })) => {
                eprintln!(
                    "mcp-broker connect: the broker at {} has no server named {name:?}",
                    broker.issuer
                );
                return 1;
            }
            Err(e) => {
                eprintln!("mcp-broker connect: {e}");
                return 1;
            }
        };
        Relay::run(http, auth).await
    })
}
