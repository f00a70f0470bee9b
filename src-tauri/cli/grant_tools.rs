//! `grants show ID` and `grants tools ID --allow/--ask/--block TOOL`: a grant's tools,
//! through the same core operations as the grants window. A change made here moves the
//! shared change counter, so a running broker applies it on the next request and tells
//! the grant's open sessions (`notifications/tools/list_changed`).

use std::path::Path;

use crate::gateway::tools::GrantToolsView;
use crate::gateway::{Gateway, GatewayError};
use crate::oauth::GrantId;
use crate::tool_policy::ToolChoice;
use crate::tool_policy::diff::DiffOp;

fn grant_id(id: &str) -> Result<GrantId, i32> {
    id.parse::<i64>().map(GrantId).map_err(|_| {
        eprintln!("mcp-broker: {id:?} is not a grant id (see `mcp-broker grants list`)");
        1
    })
}

async fn gateway(dir: &Path, id: GrantId) -> Result<Gateway, i32> {
    match super::grants::open(dir).await? {
        Some(g) => Ok(g),
        None => {
            eprintln!(
                "mcp-broker: no active grant with id {id} (no database in {})",
                dir.display()
            );
            Err(1)
        }
    }
}

pub(super) async fn show(dir: &Path, id: &str, json: bool) -> i32 {
    let id = match grant_id(id) {
        Ok(id) => id,
        Err(code) => return code,
    };
    let g = match gateway(dir, id).await {
        Ok(g) => g,
        Err(code) => return code,
    };
    let view = g.grant_tools(id).await;
    g.shutdown().await;
    match view {
        Ok(v) if json => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        Ok(v) => {
            print!("{}", render(&v));
            0
        }
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            1
        }
    }
}

fn render(v: &GrantToolsView) -> String {
    let mut out = format!(
        "grant {}: {} on {}\n",
        v.grant_id, v.client_name, v.upstream
    );
    if !v.pinned {
        out.push_str("all tools allowed (none were chosen at consent)\n");
        return out;
    }
    if v.tools.is_empty() {
        out.push_str("no tools\n");
    }
    for t in &v.tools {
        let state = match t.row.status {
            crate::tool_policy::ToolStatus::Approved => String::new(),
            crate::tool_policy::ToolStatus::Changed => {
                "  SUSPENDED: the server changed this tool; review the diff".to_owned()
            }
            crate::tool_policy::ToolStatus::New => {
                "  HIDDEN: new since consent; review it".to_owned()
            }
        };
        out.push_str(&format!(
            "{:<6} {}{state}\n",
            t.row.choice.as_str(),
            t.row.name
        ));
        for l in &t.diff {
            let mark = match l.op {
                DiffOp::Same => ' ',
                DiffOp::Removed => '-',
                DiffOp::Added => '+',
            };
            out.push_str(&format!("         {mark} {}\n", l.text));
        }
        if !t.diff.is_empty() {
            out.push_str(&format!(
                "         approve: mcp-broker grants tools {} --allow {}   keep blocked: --block {}\n",
                v.grant_id, t.row.name, t.row.name
            ));
        }
    }
    out
}

/// `[allow, ask, block]` tool names.
pub(super) async fn set(dir: &Path, id: &str, names: [Vec<String>; 3]) -> i32 {
    let id = match grant_id(id) {
        Ok(id) => id,
        Err(code) => return code,
    };
    if names.iter().all(Vec::is_empty) {
        eprintln!("mcp-broker: name a tool with --allow, --ask or --block");
        return 2;
    }
    let g = match gateway(dir, id).await {
        Ok(g) => g,
        Err(code) => return code,
    };
    let choices = [ToolChoice::Allow, ToolChoice::Ask, ToolChoice::Block];
    let mut status = 0;
    for (choice, tools) in choices.into_iter().zip(names) {
        for tool in tools {
            match g.set_tool_choice(id, &tool, choice).await {
                Ok(()) => println!("grant {id}: {tool} is now {}", choice.as_str()),
                Err(e @ (GatewayError::UnknownTool { .. } | GatewayError::UnknownGrant(_))) => {
                    eprintln!("mcp-broker: {e} (see `mcp-broker grants show {id}`)");
                    status = 1;
                }
                Err(e) => {
                    eprintln!("mcp-broker: {e}");
                    status = 1;
                }
            }
        }
    }
    g.shutdown().await;
    status
}
