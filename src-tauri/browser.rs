//! Opening a URL in the user's browser, for the sign-ins the broker starts itself
//! (`connect`, `upstream login`, the app's "Sign in" button).

use std::process::{Command, Stdio};

/// Opens the URL in the user's browser: `$BROWSER` first (a `:`-separated list of
/// commands, `%s` for the URL), else the platform's openers. The first command that
/// starts wins. The browser's stdout never reaches ours, which is the MCP channel.
pub fn open(url: &str) -> std::io::Result<()> {
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no browser opener found");
    for mut cmd in candidates(url) {
        let program = cmd.get_program().to_string_lossy().into_owned();
        match cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => {
                reap(child);
                return Ok(());
            }
            Err(e) => last = std::io::Error::new(e.kind(), format!("{program}: {e}")),
        }
    }
    Err(last)
}

fn candidates(url: &str) -> Vec<Command> {
    let list = std::env::var("BROWSER").unwrap_or_default();
    if list.trim().is_empty() {
        return open::commands(url);
    }
    list.split(':')
        .filter(|cand| !cand.trim().is_empty())
        .filter_map(|cand| {
            let mut parts: Vec<String> = cand.split_whitespace().map(str::to_owned).collect();
            if parts.iter().any(|p| p.contains("%s")) {
                for p in &mut parts {
                    *p = p.replace("%s", url);
                }
            } else {
                parts.push(url.to_owned());
            }
            let (program, args) = parts.split_first()?;
            let mut cmd = Command::new(program);
            cmd.args(args);
            Some(cmd)
        })
        .collect()
}

/// Waits for the opener off-thread: the desktop app runs for days, and an opener that
/// nobody waits for stays a zombie.
fn reap(mut child: std::process::Child) {
    let _ = std::thread::Builder::new()
        .name("browser-opener".into())
        .spawn(move || child.wait());
}
