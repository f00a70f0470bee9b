//! `clients install` and `clients uninstall`: put the broker's entries into a client's own
//! configuration file (or take them out). The JSON edit is `crate::client_apps`; this file
//! finds the file, keeps a backup, and replaces the file in one rename so a crash never
//! leaves half a file behind.
//!
//! `clients import`: the client's own servers into the broker (`client_apps::import`
//! plans, `client_import` carries out). Each value to move into the keychain is
//! confirmed on the terminal, or all at once with `--yes`; without a terminal and
//! without `--yes` the import is refused. A name already configured in the broker is
//! refused; `--rename CLIENT-NAME=NEW` imports under another name.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{ClientFiles, ClientsCommand, DataDirArg};
use crate::client_apps::import::{self, ImportPlan, PlanError};
use crate::client_apps::{self, BrokerTarget, ClientApp, backup_path};
use crate::client_import::{self, ImportError, Imported};
use crate::config::Config;
use crate::config_edit::{Draft, EditError};
use crate::vault::Vault;

pub fn run(cmd: ClientsCommand) -> i32 {
    match cmd {
        ClientsCommand::Install {
            client,
            server,
            print,
            files,
        } => install(client, &server, print, files),
        ClientsCommand::Uninstall {
            client,
            server,
            client_config,
        } => uninstall(client, &server, client_config),
        ClientsCommand::Import {
            client,
            server,
            rename,
            dry_run,
            yes,
            files,
        } => import(client, &server, &rename, Answers { dry_run, yes }, files),
    }
}

fn client_file(app: ClientApp, flag: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = flag {
        return Ok(p);
    }
    app.user_config_file()
        .ok_or_else(|| "cannot find your home directory; pass --client-config".into())
}

fn install(app: ClientApp, only: &[String], print: bool, files: ClientFiles) -> i32 {
    let (config_path, config) = match load_config(&files) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let ClientFiles {
        data,
        port,
        client_config,
        config: config_flag,
    } = files;
    if config.upstreams.is_empty() {
        eprintln!(
            "mcp-broker: no servers in {} yet, so nothing to install: {}",
            config_path.display(),
            crate::config::FIRST_STEPS
        );
        return 2;
    }
    for name in only {
        if config.upstream(name).is_none() {
            eprintln!(
                "mcp-broker: no server named {name:?} in {} (configured: {})",
                config_path.display(),
                config
                    .upstreams
                    .iter()
                    .map(|u| u.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return 2;
        }
    }
    let target = match broker_target(
        &data,
        config_flag.as_deref(),
        port.unwrap_or_else(|| config.port()),
    ) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let entries: Vec<(String, serde_json::Value)> = config
        .upstreams
        .iter()
        .filter(|u| only.is_empty() || only.contains(&u.name))
        .map(|u| (u.name.clone(), client_apps::entry(app, &u.name, &target)))
        .collect();

    if print {
        print!("{}", client_apps::snippet(&entries));
        return 0;
    }
    let file = match located(app, client_config) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let existing = match read_existing(&file) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let names = entries
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match client_apps::install(existing.as_deref(), &entries) {
        Err(e) => {
            eprintln!("mcp-broker: not changing {}: {e}", file.display());
            1
        }
        Ok(None) => {
            println!(
                "{} already has {names} in {}; nothing changed",
                app.display_name(),
                file.display()
            );
            0
        }
        Ok(Some(text)) => match replace(&file, existing.is_some(), &text) {
            Ok(backup) => {
                println!(
                    "added {names} to {} ({})",
                    app.display_name(),
                    file.display()
                );
                if let Some(b) = backup {
                    println!("the previous file is saved as {}", b.display());
                }
                println!("restart {} to pick up the change", app.display_name());
                0
            }
            Err(e) => {
                eprintln!("mcp-broker: cannot write {}: {e}", file.display());
                1
            }
        },
    }
}

/// The broker's configuration (`--config`, else the default path; no file is an empty
/// one), or exit status 2 after printing the loader's error.
fn load_config(files: &ClientFiles) -> Result<(PathBuf, Config), i32> {
    let path = files.config.clone().unwrap_or_else(super::default_config);
    match crate::config::load(&path) {
        Ok(c) => Ok((path, c)),
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            Err(2)
        }
    }
}

/// How the client's entries reach this broker: this executable, the data dir and the
/// configuration file given (so the client's bridge uses this broker), and the port.
fn broker_target(data: &DataDirArg, config: Option<&Path>, port: u16) -> Result<BrokerTarget, i32> {
    let executable = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| {
            eprintln!("mcp-broker: cannot find this program's own path: {e}");
            1
        })?;
    let data_dir = data
        .data_dir
        .as_ref()
        .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()));
    let config = config.map(|c| std::path::absolute(c).unwrap_or_else(|_| c.to_owned()));
    Ok(BrokerTarget {
        executable,
        data_dir,
        config,
        base_url: format!("http://127.0.0.1:{port}"),
    })
}

/// The client's config file, or exit status 1 after saying why it cannot be found.
fn located(app: ClientApp, client_config: Option<PathBuf>) -> Result<PathBuf, i32> {
    client_file(app, client_config).map_err(|e| {
        eprintln!("mcp-broker: {e}");
        1
    })
}

fn uninstall(app: ClientApp, only: &[String], client_config: Option<PathBuf>) -> i32 {
    let file = match located(app, client_config) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let existing = match read_existing(&file) {
        Ok(Some(t)) => t,
        Ok(None) => {
            println!("{} does not exist; nothing to remove", file.display());
            return 0;
        }
        Err(code) => return code,
    };
    match client_apps::uninstall(&existing, only) {
        Err(e) => {
            eprintln!("mcp-broker: not changing {}: {e}", file.display());
            1
        }
        Ok(None) => {
            println!(
                "{} has no mcp-broker entries{}; nothing changed",
                file.display(),
                if only.is_empty() {
                    ""
                } else {
                    " of those names"
                }
            );
            0
        }
        Ok(Some((text, gone))) => match replace(&file, true, &text) {
            Ok(backup) => {
                println!(
                    "removed {} from {} ({})",
                    gone.join(", "),
                    app.display_name(),
                    file.display()
                );
                if let Some(b) = backup {
                    println!("the previous file is saved as {}", b.display());
                }
                0
            }
            Err(e) => {
                eprintln!("mcp-broker: cannot write {}: {e}", file.display());
                1
            }
        },
    }
}

fn read_existing(file: &Path) -> Result<Option<String>, i32> {
    match std::fs::read(file) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => Ok(Some(t)),
            Err(_) => {
                eprintln!(
                    "mcp-broker: not changing {}: it is not UTF-8 text",
                    file.display()
                );
                Err(1)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            eprintln!("mcp-broker: cannot read {}: {e}", file.display());
            Err(1)
        }
    }
}

/// Writes a backup of the old file, then the new text in one rename
/// (`atomic_file::replace`, which keeps the old file's permissions: `~/.claude.json` is
/// private).
fn replace(file: &Path, existed: bool, text: &str) -> std::io::Result<Option<PathBuf>> {
    let backup = if existed {
        let b = backup_path(file);
        std::fs::copy(file, &b)?;
        Some(b)
    } else {
        None
    };
    crate::atomic_file::replace(file, text.as_bytes())?;
    Ok(backup)
}

/// How `clients import` may proceed without asking.
struct Answers {
    dry_run: bool,
    yes: bool,
}

fn import(
    app: ClientApp,
    only: &[String],
    rename: &[String],
    answers: Answers,
    files: ClientFiles,
) -> i32 {
    let (config_path, config) = match load_config(&files) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let ClientFiles {
        data,
        port,
        client_config,
        config: config_flag,
    } = files;
    let mut renames = BTreeMap::new();
    for r in rename {
        match r.split_once('=') {
            Some((from, to)) if !from.is_empty() && !to.is_empty() => {
                renames.insert(from.to_owned(), to.to_owned());
            }
            _ => {
                eprintln!("mcp-broker: --rename takes CLIENT-NAME=NEW-NAME, not {r:?}");
                return 2;
            }
        }
    }
    let file = match located(app, client_config) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let text = match read_existing(&file) {
        Ok(Some(t)) => t,
        Ok(None) => {
            eprintln!(
                "mcp-broker: {} has no configuration at {}; nothing to import",
                app.display_name(),
                file.display()
            );
            return 1;
        }
        Err(code) => return code,
    };
    let Some(rt) = super::runtime() else {
        return 1;
    };
    let data_dir = data.resolve();
    let taken = rt.block_on(client_import::taken_secret_names(&config, &data_dir));
    let on_path = |c: &str| which::which(c).is_ok();
    let broker = import::Broker {
        config: &config,
        taken_secrets: &taken,
    };
    let mut plan = match import::plan(app, &text, only, &renames, &broker, &on_path) {
        Ok(p) => p,
        Err(PlanError::ClientFile(e)) => {
            eprintln!("mcp-broker: not changing {}: {e}", file.display());
            return 1;
        }
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            return 2;
        }
    };
    show_plan(&plan, &file);
    if plan.servers.is_empty() {
        println!("nothing to import");
        return 0;
    }
    let target = match broker_target(
        &data,
        config_flag.as_deref(),
        port.unwrap_or_else(|| config.port()),
    ) {
        Ok(t) => t,
        Err(code) => return code,
    };
    if answers.dry_run {
        return show_dry_run(&plan, &config_path, &target, &file);
    }
    if !answers.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "mcp-broker: not importing: confirmation is needed and stdin is not a terminal; run it in a terminal, pass --yes to move every value listed above into the keychain, or --dry-run to only see the plan"
            );
            return 2;
        }
        if let Err(e) = confirm_secrets(&mut plan) {
            eprintln!("mcp-broker: {e}");
            return 1;
        }
    }
    let vault = Arc::new(Vault::system());
    let done = rt.block_on(client_import::carry_out(
        &plan,
        &config_path,
        &file,
        &target,
        &vault,
        &data_dir,
    ));
    match done {
        Ok(done) => {
            show_imported(&plan, &done, &config_path, &file);
            0
        }
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            match e {
                ImportError::Config(EditError::Invalid(_)) => 2,
                _ => 1,
            }
        }
    }
}

fn show_imported(plan: &ImportPlan, done: &Imported, config_path: &Path, file: &Path) {
    let app = plan.app;
    for s in &plan.servers {
        println!(
            "imported {:?} as the broker's server {}",
            s.client_key, s.name
        );
    }
    if !done.secrets.is_empty() {
        println!(
            "moved {} value(s) into the OS keychain: {}",
            done.secrets.len(),
            done.secrets.join(", ")
        );
    }
    if let Some(w) = &done.index_warning {
        eprintln!("mcp-broker: warning: `secrets list` will not show them: {w}");
    }
    println!("wrote {}", config_path.display());
    println!(
        "{} now reaches them through the broker ({}); the previous file is saved as {}{}",
        app.display_name(),
        file.display(),
        done.backup.display(),
        if done.secrets.is_empty() {
            ""
        } else {
            " without the moved values"
        }
    );
    println!("restart {} to pick up the change", app.display_name());
}

fn show_plan(plan: &ImportPlan, file: &Path) {
    let view = plan.view();
    println!("{} ({}):", view.client, file.display());
    for s in &view.servers {
        if s.name == s.client_key {
            println!("  import {} ({})", s.name, s.what);
        } else {
            println!("  import {:?} as {} ({})", s.client_key, s.name, s.what);
        }
        for m in &s.secrets {
            println!(
                "    {} -> OS keychain as {} (a secret by {})",
                m.place, m.secret, m.because
            );
        }
        for w in &s.warnings {
            println!("    warning: {w}");
        }
    }
    for s in &view.skipped {
        println!("  skip {:?}: {}", s.client_key, s.reason);
    }
}

/// Prints the TOML that would be added and the client's new entries; checks the result
/// as the loader would.
fn show_dry_run(plan: &ImportPlan, config_path: &Path, target: &BrokerTarget, file: &Path) -> i32 {
    let check = Draft::open(config_path).and_then(|mut d| {
        for s in &plan.servers {
            d.add(&s.name, &s.entry)?;
        }
        d.check()
    });
    if let Err(e) = check {
        eprintln!("mcp-broker: {e}");
        return 2;
    }
    let mut added = match Draft::from_text(config_path, None) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            return 2;
        }
    };
    for s in &plan.servers {
        if let Err(e) = added.add(&s.name, &s.entry) {
            eprintln!("mcp-broker: {e}");
            return 2;
        }
    }
    println!(
        "\nwould add to {}:\n{}",
        config_path.display(),
        added.text()
    );
    let entries: Vec<(String, serde_json::Value)> = plan
        .servers
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                client_apps::entry(plan.app, &s.name, target),
            )
        })
        .collect();
    println!(
        "would change these entries in {}:\n{}",
        file.display(),
        client_apps::snippet(&entries)
    );
    println!("dry run: nothing was written");
    0
}

/// Asks about each value on the terminal; a value declined stays a literal in
/// config.toml (a private file) instead of moving to the keychain.
fn confirm_secrets(plan: &mut ImportPlan) -> Result<(), String> {
    for s in &mut plan.servers {
        let mut i = 0;
        while i < s.secrets.len() {
            let m = &s.secrets[i];
            let question = format!(
                "Move {} of {} into the OS keychain as {}? [Y/n] ",
                m.place, s.name, m.secret
            );
            if ask(&question)? {
                i += 1;
            } else {
                println!("    kept as a literal value in the broker's config.toml");
                s.keep_literal(i);
            }
        }
    }
    Ok(())
}

fn ask(question: &str) -> Result<bool, String> {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(question.as_bytes());
    let _ = out.flush();
    let mut line = String::new();
    let n = std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    if n == 0 {
        // Ctrl-D is not a yes.
        return Err("no answer (end of input); nothing was imported".into());
    }
    let a = line.trim().to_ascii_lowercase();
    Ok(!(a == "n" || a == "no"))
}
