//! `tokens list` shows the active ones (as grants; the tokens themselves are never
//! stored). `tokens create`: mints a personal access token through
//! [`Gateway::create_personal_token`] next to (or without) a running broker, and prints
//! it once. The token is bound to the resource `http://127.0.0.1:PORT/mcp/NAME`, so the
//! port is the running broker's (from `broker.json`) unless `--port` says otherwise.

use std::path::{Path, PathBuf};

use super::TokensCommand;
use super::grants::{read_list, time};
use crate::bridge::locate;
use crate::config::Config;
use crate::gateway::{Gateway, GatewayError};
use crate::oauth::personal::Expiry;

pub fn run(cmd: TokensCommand) -> i32 {
    let Some(rt) = super::runtime() else {
        return 1;
    };
    let (upstream, label, expires, tools, config, port, data, json) = match cmd {
        TokensCommand::List { data, json } => return rt.block_on(list(&data.resolve(), json)),
        TokensCommand::Create {
            upstream,
            label,
            expires,
            tools,
            config,
            port,
            data,
            json,
        } => (upstream, label, expires, tools, config, port, data, json),
    };
    let expiry = match Expiry::parse(&expires) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            return 2;
        }
    };
    let config = match load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let dir = data.resolve();
    rt.block_on(async move {
        let port = match port {
            Some(p) => p,
            None => running_port(&dir).await.unwrap_or_else(|| config.port()),
        };
        let config_path = config.path.clone();
        let gateway = match Gateway::offline_on(config, &dir, port).await {
            Ok(g) => g,
            Err(e) => {
                eprintln!(
                    "mcp-broker: cannot open the database in {}: {e}",
                    dir.display()
                );
                return 1;
            }
        };
        let outcome = gateway
            .create_personal_token(&upstream, &label, expiry, &tools)
            .await;
        gateway.shutdown().await;
        let created = match outcome {
            Ok(c) => c,
            Err(GatewayError::UnknownUpstream(name)) => {
                eprintln!(
                    "mcp-broker: no upstream named {name} in {} (pass --config FILE)",
                    config_path.display()
                );
                return 2;
            }
            Err(GatewayError::PersonalToken(e)) => {
                eprintln!("mcp-broker: {e}");
                return 2;
            }
            Err(e) => {
                eprintln!("mcp-broker: creating the token failed: {e}");
                return 1;
            }
        };
        if json {
            let code = super::print_json(&created);
            if code != 0 {
                return code;
            }
        } else {
            println!("{}", created.token);
        }
        let expires = created
            .expires_at
            .map(|t| format!("expires {}", time(t)))
            .unwrap_or_else(|| "never expires".into());
        eprintln!(
            "Personal access token for {} (grant {}, \"{}\", {expires}).\n\
             It is shown only this once. Send it as `Authorization: Bearer TOKEN` to {}.\n\
             Revoke it with `mcp-broker grants revoke {}`.",
            created.upstream, created.grant_id, created.label, created.resource, created.grant_id
        );
        if !tools.is_empty() {
            eprintln!(
                "It sees and calls only these tools: {}; `mcp-broker grants tools {}` changes that.",
                tools.join(", "),
                created.grant_id
            );
        }
        0
    })
}

/// The configuration named by `--config`, or the default file when it exists.
fn load_config(path: Option<PathBuf>) -> Result<Config, i32> {
    let explicit = path.is_some();
    let path = path.unwrap_or_else(super::default_config);
    match crate::config::load(&path) {
        Ok(c) => Ok(c),
        Err(_) if !explicit && !path.exists() => Ok(Config::empty(&path)),
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            Err(2)
        }
    }
}

/// The port of the broker running on this data dir, if one answers.
async fn running_port(dir: &Path) -> Option<u16> {
    let http = reqwest::Client::builder().build().ok()?;
    locate::locate(dir, &http).await.ok().map(|i| i.port)
}

async fn list(dir: &Path, json: bool) -> i32 {
    let read = read_list(dir, "personal tokens", async |g| g.personal_tokens().await);
    let tokens = match read.await {
        Ok(list) => list,
        Err(code) => return code,
    };
    if json {
        return super::print_json(&tokens);
    }
    if tokens.is_empty() {
        println!("no personal access tokens (create one with `mcp-broker tokens create`)");
        return 0;
    }
    println!("ID\tLABEL\tUPSTREAM\tCREATED\tEXPIRES\tLAST_USED\tTOOLS");
    for g in tokens.into_iter().map(|v| v.grant) {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            g.id,
            g.client_name.replace(['\t', '\n'], " "),
            g.upstream,
            time(g.created_at),
            g.expires_at.map(time).unwrap_or_else(|| "never".into()),
            g.last_used_at.map(time).unwrap_or_else(|| "never".into()),
            g.tools.map(|t| t.join(",")).unwrap_or_else(|| "all".into()),
        );
    }
    0
}
