//! `grants list` and `grants revoke` (one grant, `--client`, `--all`): they work next to a
//! running server (SQLite WAL lets both read and write), through the same core
//! operations the server uses. The server notices a revocation on the next request and
//! ends the grant's open sessions within a second.

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::GrantsCommand;
use crate::events::RevokeReason;
use crate::gateway::{Gateway, GatewayError};
use crate::oauth::GrantId;
use crate::store::{DB_FILE, GrantKind};

pub fn run(cmd: GrantsCommand) -> i32 {
    let Some(rt) = super::runtime() else {
        return 1;
    };
    rt.block_on(async move {
        match cmd {
            GrantsCommand::List { data, json } => list(&data.resolve(), json).await,
            GrantsCommand::Revoke {
                id: Some(id), data, ..
            } => revoke(&data.resolve(), &id).await,
            GrantsCommand::Revoke { client, data, .. } => {
                revoke_all(&data.resolve(), client.as_deref()).await
            }
            GrantsCommand::Show { id, json, data } => {
                super::grant_tools::show(&data.resolve(), &id, json).await
            }
            GrantsCommand::Tools {
                id,
                allow,
                ask,
                block,
                data,
            } => super::grant_tools::set(&data.resolve(), &id, [allow, ask, block]).await,
        }
    })
}

/// The core over the data dir, or `None` when there is no database yet.
pub(super) async fn open(dir: &Path) -> Result<Option<Gateway>, i32> {
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

/// A list read through the core: empty when there is no database yet; on failure, the
/// exit status after saying what could not be read.
pub(super) async fn read_list<T>(
    dir: &Path,
    what: &str,
    op: impl AsyncFnOnce(&Gateway) -> Result<Vec<T>, GatewayError>,
) -> Result<Vec<T>, i32> {
    let Some(g) = open(dir).await? else {
        return Ok(Vec::new());
    };
    let r = op(&g).await;
    g.shutdown().await;
    r.map_err(|e| {
        eprintln!("mcp-broker: cannot read {what}: {e}");
        1
    })
}

pub(super) fn time(t: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)).to_string()
}

async fn list(dir: &Path, json: bool) -> i32 {
    let grants = match read_list(dir, "grants", async |g| g.list_grants().await).await {
        Ok(list) => list,
        Err(code) => return code,
    };
    if json {
        return super::print_json(&grants);
    }
    if grants.is_empty() {
        println!("no active grants");
        return 0;
    }
    // New columns go at the end, so scripts that cut fields keep working.
    println!(
        "ID\tCLIENT_ID\tCLIENT_NAME\tUPSTREAM\tSCOPE\tCREATED\tLAST_USED\tKIND\tEXPIRES\tACCOUNT"
    );
    for g in grants.into_iter().map(|v| v.grant) {
        let expires = match (g.kind, g.expires_at) {
            (_, Some(t)) => time(t),
            (GrantKind::PersonalToken, None) => "never".into(),
            (GrantKind::Oauth, None) => "-".into(),
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            g.id,
            g.client_id,
            g.client_name.replace(['\t', '\n'], " "),
            g.upstream,
            g.scope,
            time(g.created_at),
            g.last_used_at.map(time).unwrap_or_else(|| "never".into()),
            g.kind.describe(),
            expires,
            g.account.as_deref().unwrap_or("-"),
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
    let outcome = gateway.revoke_grant(GrantId(n), RevokeReason::Cli).await;
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

/// `--all` (`client: None`) or `--client CLIENT_ID`: one transaction, through
/// [`Gateway::revoke_all`].
async fn revoke_all(dir: &Path, client: Option<&str>) -> i32 {
    let what = match client {
        Some(c) => format!("no active grant of client {c}"),
        None => "no active grants".to_owned(),
    };
    let gateway = match open(dir).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            println!("{what}");
            return i32::from(client.is_some());
        }
        Err(code) => return code,
    };
    let outcome = gateway.revoke_all(client, RevokeReason::Cli).await;
    gateway.shutdown().await;
    match outcome {
        Ok(revoked) if revoked.is_empty() => {
            println!("{what}");
            // Naming a client that holds nothing is likely a typo; "all" of nothing is not.
            i32::from(client.is_some())
        }
        Ok(revoked) => {
            for g in &revoked {
                println!(
                    "revoked grant {}: {} can no longer use {}",
                    g.id, g.client_name, g.upstream
                );
            }
            0
        }
        Err(e) => {
            eprintln!("mcp-broker: revoking failed: {e}");
            1
        }
    }
}
