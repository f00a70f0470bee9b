//! `grants list` and `grants revoke`: they work next to a running server (SQLite WAL lets
//! both read and write), through the same core operations the server uses. The server
//! notices a revocation on the next request and ends the grant's open sessions within a
//! second.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::GrantsCommand;
use crate::events::RevokeReason;
use crate::gateway::{Gateway, GatewayError};
use crate::oauth::GrantId;
use crate::store::DB_FILE;

pub fn run(cmd: GrantsCommand) -> i32 {
    let Some(rt) = super::runtime() else {
        return 1;
    };
    rt.block_on(async move {
        match cmd {
            GrantsCommand::List { data, json } => list(&data.resolve(), json).await,
            GrantsCommand::Revoke { id, data } => revoke(&data.resolve(), &id).await,
        }
    })
}

/// The core over the data dir, or `None` when there is no database yet.
async fn open(dir: &Path) -> Result<Option<Gateway>, i32> {
    if !dir.join(DB_FILE).exists() {
        return Ok(None);
    }
    let config = crate::config::Config::empty(&super::default_config());
    Gateway::offline(config, dir).await.map(Some).map_err(|e| {
        eprintln!(
            "mcp-broker: cannot open the database in {}: {e}",
            dir.display()
        );
        1
    })
}

fn time(t: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)).to_string()
}

async fn list(dir: &Path, json: bool) -> i32 {
    let grants = match open(dir).await {
        Ok(Some(g)) => match g.list_grants().await {
            Ok(list) => list,
            Err(e) => {
                eprintln!("mcp-broker: cannot read grants: {e}");
                return 1;
            }
        },
        Ok(None) => Vec::new(),
        Err(code) => return code,
    };
    if json {
        match serde_json::to_string_pretty(&grants) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("mcp-broker: {e}");
                return 1;
            }
        }
        return 0;
    }
    if grants.is_empty() {
        println!("no active grants");
        return 0;
    }
    println!("ID\tCLIENT_ID\tCLIENT_NAME\tUPSTREAM\tSCOPE\tCREATED\tLAST_USED");
    for g in grants.into_iter().map(|v| v.grant) {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            g.id,
            g.client_id,
            g.client_name.replace(['\t', '\n'], " "),
            g.upstream,
            g.scope,
            time(g.created_at),
            g.last_used_at.map(time).unwrap_or_else(|| "never".into())
        );
    }
    0
}

async fn revoke(dir: &Path, id: &str) -> i32 {
    let Ok(n) = id.parse::<i64>() else {
        eprintln!("mcp-broker: {id:?} is not a grant id (see `mcp-broker grants list`)");
        return 1;
    };
    let gateway = match open(dir).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            eprintln!(
                "mcp-broker: no active grant with id {n} (no database in {})",
                dir.display()
            );
            return 1;
        }
        Err(code) => return code,
    };
    let outcome = gateway.revoke_grant(GrantId(n), RevokeReason::User).await;
    gateway.shutdown().await;
    match outcome {
        Ok(g) => {
            println!(
                "revoked grant {n}: {} can no longer use {}",
                g.client_name, g.upstream
            );
            0
        }
        Err(GatewayError::UnknownGrant(_)) => {
            eprintln!("mcp-broker: no active grant with id {n}");
            1
        }
        Err(e) => {
            eprintln!("mcp-broker: revoking failed: {e}");
            1
        }
    }
}
