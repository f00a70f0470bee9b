//! `clients install` and `clients uninstall`: put the broker's entries into a client's own
//! configuration file (or take them out). The JSON edit is `crate::clients`; this file
//! finds the file, keeps a backup, and replaces the file in one rename so a crash never
//! leaves half a file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{ClientsCommand, DataDirArg};
use crate::clients::{self, BrokerTarget, ClientApp};

pub fn run(cmd: ClientsCommand) -> i32 {
    match cmd {
        ClientsCommand::Install {
            client,
            server,
            print,
            config,
            data,
            port,
            client_config,
        } => install(client, &server, print, config, &data, port, client_config),
        ClientsCommand::Uninstall {
            client,
            server,
            client_config,
        } => uninstall(client, &server, client_config),
    }
}

fn client_file(app: ClientApp, flag: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = flag {
        return Ok(p);
    }
    let home = dirs::home_dir().ok_or("cannot find your home directory; pass --client-config")?;
    let config_dir = dirs::config_dir().unwrap_or_else(|| home.join(".config"));
    Ok(app.config_file(&home, &config_dir))
}

fn install(
    app: ClientApp,
    only: &[String],
    print: bool,
    config: Option<PathBuf>,
    data: &DataDirArg,
    port: Option<u16>,
    client_config: Option<PathBuf>,
) -> i32 {
    let config_path = config.unwrap_or_else(super::default_config);
    let config = match crate::config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            return 2;
        }
    };
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
    let executable = match std::env::current_exe().and_then(|p| p.canonicalize()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mcp-broker: cannot find this program's own path: {e}");
            return 1;
        }
    };
    let data_dir = data
        .data_dir
        .as_ref()
        .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()));
    let target = BrokerTarget {
        executable,
        data_dir,
        base_url: format!("http://127.0.0.1:{}", port.unwrap_or_else(|| config.port())),
    };
    let entries: Vec<(String, serde_json::Value)> = config
        .upstreams
        .iter()
        .filter(|u| only.is_empty() || only.contains(&u.name))
        .map(|u| (u.name.clone(), clients::entry(app, &u.name, &target)))
        .collect();

    if print {
        print!("{}", clients::snippet(&entries));
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
    match clients::install(existing.as_deref(), &entries) {
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
    match clients::uninstall(&existing, only) {
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

/// `FILE.mcp-broker.bak`: the file as it was before the last change this command made.
pub fn backup_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".mcp-broker.bak");
    file.with_file_name(name)
}

/// Writes a backup of the old file, then the new text through a temporary file and a
/// rename, keeping the old file's permissions (`~/.claude.json` is private).
fn replace(file: &Path, existed: bool, text: &str) -> std::io::Result<Option<PathBuf>> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let backup = if existed {
        let b = backup_path(file);
        std::fs::copy(file, &b)?;
        Some(b)
    } else {
        None
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    if existed {
        let perms = std::fs::metadata(file)?.permissions();
        std::fs::set_permissions(tmp.path(), perms)?;
    }
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(backup)
}
