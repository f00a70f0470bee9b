//! `connect NAME`: the stdio bridge (see `crate::bridge`). Its stdout is the MCP channel,
//! so everything it has to say goes to stderr. Exit status 1 when no broker runs.

use std::time::Duration;

use super::DataDirArg;
use crate::bridge::{auth::Auth, locate, relay::Relay};

pub fn run(name: String, data: DataDirArg, client_name: String) -> i32 {
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
    let data_dir = data.resolve();
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
        let broker = match locate::locate(&data_dir, &http).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("mcp-broker connect: {e}");
                return 1;
            }
        };
        let prm = format!(
            "{}/.well-known/oauth-protected-resource/mcp/{name}",
            broker.issuer
        );
        match http.get(&prm).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                eprintln!(
                    "mcp-broker connect: the broker at {} has no server named {name:?}",
                    broker.issuer
                );
                return 1;
            }
            Ok(r) => {
                eprintln!(
                    "mcp-broker connect: the broker answered HTTP {}",
                    r.status()
                );
                return 1;
            }
            Err(e) => {
                eprintln!("mcp-broker connect: the broker did not answer: {e}");
                return 1;
            }
        }
        let auth = match Auth::load(
            http.clone(),
            &broker.issuer,
            broker.port,
            &name,
            &client_name,
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                eprintln!("mcp-broker connect: {e}");
                return 1;
            }
        };
        Relay::run(http, auth).await
    })
}
