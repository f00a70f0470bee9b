//! Opening a URL in the user's browser, for the sign-ins the broker starts itself
//! (`connect`, `upstream login`, the app's "Sign in" button).

/// Opens the URL in the user's browser: `$BROWSER` first (a `:`-separated list of
/// commands, `%s` for the URL), else the platform's opener. The browser's stdout never
/// reaches ours, which is the MCP channel.
pub fn open(url: &str) -> Result<(), String> {
    use std::process::{Command, Stdio};
    if let Ok(list) = std::env::var("BROWSER")
        && !list.trim().is_empty()
    {
        let mut last = String::new();
        for cand in list.split(':').filter(|c| !c.trim().is_empty()) {
            let mut parts: Vec<String> = cand.split_whitespace().map(str::to_owned).collect();
            if parts.iter().any(|p| p.contains("%s")) {
                for p in &mut parts {
                    *p = p.replace("%s", url);
                }
            } else {
                parts.push(url.to_owned());
            }
            match Command::new(&parts[0])
                .args(&parts[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
            {
                Ok(child) => {
                    reap(child);
                    return Ok(());
                }
                Err(e) => last = format!("{}: {e}", parts[0]),
            }
        }
        return Err(last);
    }
    let mut last = String::from("no opener found");
    for mut cmd in open::commands(url) {
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
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Waits for the opener off-thread: the desktop app runs for days, and an opener that
/// nobody waits for stays a zombie.
fn reap(mut child: std::process::Child) {
    let _ = std::thread::Builder::new()
        .name("browser-opener".into())
        .spawn(move || child.wait());
}
