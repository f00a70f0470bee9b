//! `mcp-broker activity`: the activity log (issue 12), read through the core next to a
//! running server: MCP calls per grant with their outcome, duration and size, and the
//! authorization events (registration, consent, tokens, replay, revocation), oldest of
//! the selection first, as a log reads. `--follow` keeps printing new rows.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::gateway::activity::ActivityFilter;
use crate::oauth::GrantId;
use crate::store::activity::ActivityRow;

#[derive(clap::Args, Debug)]
pub struct ActivityArgs {
    /// Only this grant's rows (see `grants list`).
    #[arg(long, value_name = "ID")]
    pub grant: Option<i64>,
    /// Only rows about this upstream.
    #[arg(long, value_name = "NAME")]
    pub upstream: Option<String>,
    /// Only rows since T: a duration back from now (`1h`, `30m`, `2days`) or a time
    /// (`2026-11-29T14:00:00Z`).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    /// At most this many rows (the newest).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print JSON (one array; with --follow, one object a line).
    #[arg(long)]
    pub json: bool,
    /// Keep printing rows as they are recorded (Ctrl-C stops).
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub data: super::DataDirArg,
}

/// `--since`: seconds since the epoch.
fn parse_since(s: &str, now: SystemTime) -> Option<i64> {
    let at = match humantime::parse_duration(s) {
        Ok(back) => now.checked_sub(back)?,
        Err(_) => humantime::parse_rfc3339_weak(s).ok()?,
    };
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64)
}

pub fn run(args: ActivityArgs) -> i32 {
    let since = match args
        .since
        .as_deref()
        .map(|s| (s, parse_since(s, SystemTime::now())))
    {
        Some((s, None)) => {
            eprintln!(
                "mcp-broker: --since {s}: expected a duration (1h, 30m) or a time (2026-11-29T14:00:00Z)"
            );
            return 2;
        }
        Some((_, t)) => t,
        None => None,
    };
    let Some(rt) = super::runtime() else {
        return 1;
    };
    rt.block_on(async move {
        let dir = args.data.resolve();
        let Some(g) = (match super::grants::open(&dir).await {
            Ok(g) => g,
            Err(code) => return code,
        }) else {
            if args.json {
                println!("[]");
            } else {
                println!("no activity yet (no database in {})", dir.display());
            }
            return 0;
        };
        let code = show(&g, &args, since, &dir).await;
        g.shutdown().await;
        code
    })
}

async fn show(
    g: &crate::gateway::Gateway,
    args: &ActivityArgs,
    since: Option<i64>,
    dir: &Path,
) -> i32 {
    let mut filter = ActivityFilter {
        grant: args.grant.map(GrantId),
        upstream: args.upstream.clone(),
        since,
        after_id: None,
        limit: args.limit,
    };
    let mut rows = match g.activity(&filter).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "mcp-broker: cannot read the activity log in {}: {e}",
                dir.display()
            );
            return 1;
        }
    };
    rows.reverse();
    if args.json && !args.follow {
        return super::print_json(&rows);
    }
    if rows.is_empty() && !args.follow {
        println!("no activity recorded");
        return 0;
    }
    let mut last = rows.last().map(|r| r.id).unwrap_or(0);
    for r in &rows {
        print_row(r, args.json);
    }
    if !args.follow {
        return 0;
    }
    filter.limit = 1000;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        filter.after_id = Some(last);
        match g.activity(&filter).await {
            Ok(new) => {
                for r in &new {
                    print_row(r, args.json);
                    last = r.id;
                }
            }
            Err(e) => {
                eprintln!("mcp-broker: cannot read the activity log: {e}");
                return 1;
            }
        }
    }
}

fn print_row(r: &ActivityRow, json: bool) {
    if json {
        if let Ok(s) = serde_json::to_string(r) {
            println!("{s}");
        }
        return;
    }
    println!("{}", line(r));
}

/// One row as a person reads it.
pub fn line(r: &ActivityRow) -> String {
    let at =
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(r.at_ms.max(0) as u64));
    let mut s = format!("{at}  {:<16}", r.event);
    if let Some(g) = r.grant_id {
        s.push_str(&format!("  grant {g}"));
    }
    if let Some(c) = &r.client_id {
        s.push_str(&format!("  client {c}"));
    }
    if let Some(u) = &r.upstream {
        s.push_str(&format!("  {u}"));
        if let Some(a) = &r.account {
            s.push_str(&format!(" ({a})"));
        }
    }
    if let Some(m) = &r.method {
        s.push_str(&format!("  {m}"));
    }
    if let Some(t) = &r.target {
        s.push_str(&format!(" {t}"));
    }
    s.push_str(&format!("  {}", r.outcome));
    if let Some(c) = r.error_code {
        s.push_str(&format!(" ({c})"));
    }
    if let Some(d) = r.duration_us {
        s.push_str(&format!("  {:.1} ms", d as f64 / 1000.0));
    }
    if let Some(b) = r.response_bytes {
        s.push_str(&format!("  {b} B"));
    }
    if let Some(x) = &r.reference {
        s.push_str(&format!("  ref {x}"));
    }
    if let Some(d) = &r.detail {
        s.push_str(&format!("  {d}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_back_or_a_time() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(parse_since("1h", now), Some(10_000 - 3600));
        assert_eq!(parse_since("1970-01-01T00:01:40Z", now), Some(100));
        assert_eq!(parse_since("yesterday-ish", now), None);
    }
}
