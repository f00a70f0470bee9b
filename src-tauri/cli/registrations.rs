//! `registrations list` and `registrations delete CLIENT_ID`, through
//! [`Gateway::registrations`] and [`Gateway::delete_registration`]; they work next to a
//! running broker, which refuses a deleted client's next request with `invalid_client`.

use std::path::Path;

use super::RegistrationsCommand;
use super::grants::{open, read_list, time};
use crate::gateway::GatewayError;

pub fn run(cmd: RegistrationsCommand) -> i32 {
    let Some(rt) = super::runtime() else {
        return 1;
    };
    rt.block_on(async move {
        match cmd {
            RegistrationsCommand::List { data, json } => list(&data.resolve(), json).await,
            RegistrationsCommand::Delete { client_id, data } => {
                delete(&data.resolve(), &client_id).await
            }
        }
    })
}

async fn list(dir: &Path, json: bool) -> i32 {
    let regs = match read_list(dir, "registrations", async |g| g.registrations().await).await {
        Ok(list) => list,
        Err(code) => return code,
    };
    if json {
        return super::print_json(&regs);
    }
    if regs.is_empty() {
        println!("no registered clients");
        return 0;
    }
    println!("CLIENT_ID\tCLIENT_NAME\tKIND\tAUTH\tCREATED\tACTIVE_GRANTS\tLAST_USED");
    for r in regs {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.client_id,
            r.client_name.replace(['\t', '\n'], " "),
            r.kind,
            r.auth_method,
            time(r.created_at),
            r.active_grants,
            r.last_used_at.map(time).unwrap_or_else(|| "never".into()),
        );
    }
    0
}

async fn delete(dir: &Path, client_id: &str) -> i32 {
    let gateway = match open(dir).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            eprintln!("mcp-broker: no client registration with id {client_id}");
            return 1;
        }
        Err(code) => return code,
    };
    let outcome = gateway.delete_registration(client_id).await;
    gateway.shutdown().await;
    match outcome {
        Ok(d) => {
            println!(
                "deleted registration {client_id} ({}); {} grant(s) revoked",
                d.client_name,
                d.revoked.len()
            );
            0
        }
        Err(e @ GatewayError::UnknownClient(_)) => {
            eprintln!("mcp-broker: {e} (see `mcp-broker registrations list`)");
            1
        }
        Err(e) => {
            eprintln!("mcp-broker: deleting failed: {e}");
            1
        }
    }
}
