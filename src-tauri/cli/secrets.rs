//! `secrets set`, `secrets list`, `secrets delete`: the user's upstream secrets in the OS
//! keychain. Values go from stdin (or the terminal, without echo) straight to the
//! keychain; the data dir keeps only an index of names for `list`, which also shows where
//! the configuration uses each name. Nothing here prints a value.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::Arc;

use super::SecretsCommand;
use crate::secrets::{self, SecretsError};
use crate::store::Store;
use crate::vault::{Secret, Vault, VaultError, check_name};

/// Longer values are almost certainly a mistake (a file piped in by accident).
const MAX_VALUE: usize = 64 * 1024;

pub fn run(cmd: SecretsCommand) -> i32 {
    let Some(rt) = super::runtime() else {
        return 1;
    };
    let vault = Arc::new(Vault::system());
    match cmd {
        SecretsCommand::Set { name, data } => rt.block_on(set(&vault, &data.resolve(), &name)),
        SecretsCommand::List { data, config, json } => {
            rt.block_on(list(&vault, &data.resolve(), config.as_deref(), json))
        }
        SecretsCommand::Delete { name, data } => {
            rt.block_on(delete(&vault, &data.resolve(), &name))
        }
    }
}

fn fail(e: &VaultError) -> i32 {
    eprintln!("mcp-broker: {e}");
    match e {
        VaultError::BadName(_) => 2,
        _ => 1,
    }
}

async fn open(dir: &Path) -> Result<Store, i32> {
    Store::open(dir).await.map_err(|e| {
        eprintln!(
            "mcp-broker: cannot open the database in {}: {e}",
            dir.display()
        );
        1
    })
}

/// The value: all of stdin when it is not a terminal (one trailing newline dropped),
/// else typed at a prompt without echo.
fn read_value(name: &str) -> Result<Secret<String>, String> {
    let stdin = std::io::stdin();
    let mut value = if stdin.is_terminal() {
        rpassword::prompt_password(format!("Value for {name} (input is hidden): "))
            .map_err(|e| format!("cannot read from the terminal: {e}"))?
    } else {
        let mut buf = Vec::new();
        stdin
            .lock()
            .take(MAX_VALUE as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        if buf.len() > MAX_VALUE {
            return Err(format!("the value is longer than {MAX_VALUE} bytes"));
        }
        String::from_utf8(buf).map_err(|_| "the value is not UTF-8 text".to_owned())?
    };
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(Secret::new(value))
}

async fn set(vault: &Arc<Vault>, dir: &Path, name: &str) -> i32 {
    if let Err(e) = check_name(name) {
        return fail(&e);
    }
    let value = match read_value(name) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            return 1;
        }
    };
    // The keychain first, so that without one nothing is created in the data dir.
    if let Err(e) = secrets::put_value(vault, name, value).await {
        return fail_secrets(&e);
    }
    let store = match open(dir).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(e) = secrets::record(&store, name).await {
        eprintln!("mcp-broker: stored {name} in the keychain, but {e}");
        return 1;
    }
    println!("stored {name} in the OS keychain");
    0
}

fn fail_secrets(e: &SecretsError) -> i32 {
    match e {
        SecretsError::Vault(e) => fail(e),
        e => {
            eprintln!("mcp-broker: {e}");
            1
        }
    }
}

async fn delete(vault: &Arc<Vault>, dir: &Path, name: &str) -> i32 {
    if let Err(e) = check_name(name) {
        return fail(&e);
    }
    let existed = match secrets::remove_value(vault, name).await {
        Ok(b) => b,
        Err(e) => return fail_secrets(&e),
    };
    let store = match open(dir).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let indexed = secrets::forget(&store, name).await.unwrap_or_else(|e| {
        eprintln!("mcp-broker: could not update {e}");
        false
    });
    if existed || indexed {
        println!("deleted {name} from the OS keychain");
        0
    } else {
        eprintln!("mcp-broker: no secret named {name}");
        1
    }
}

async fn list(vault: &Arc<Vault>, dir: &Path, config: Option<&Path>, json: bool) -> i32 {
    // Usage comes from the configuration; a missing default config just means no usage.
    let config_path = config
        .map(Path::to_owned)
        .unwrap_or_else(super::default_config);
    let config = if config.is_some() || config_path.exists() {
        match crate::config::load(&config_path) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("mcp-broker: {e}");
                return 2;
            }
        }
    } else {
        None
    };
    let store = if dir.join(crate::store::DB_FILE).exists() {
        match open(dir).await {
            Ok(s) => Some(s),
            Err(code) => return code,
        }
    } else {
        None
    };
    let (rows, keychain_error) =
        match secrets::inventory(vault, store.as_ref(), config.as_ref()).await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("mcp-broker: {e}");
                return 1;
            }
        };
    if json {
        match serde_json::to_string_pretty(&rows) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("mcp-broker: {e}");
                return 1;
            }
        }
    } else if rows.is_empty() {
        println!("no secrets (add one with `mcp-broker secrets set NAME`)");
    } else {
        println!("NAME\tSTATUS\tUSED_BY");
        for r in &rows {
            let used = if r.used_by.is_empty() {
                "-".to_owned()
            } else {
                r.used_by.join(", ")
            };
            println!("{}\t{}\t{}", r.name, r.status.as_str(), used);
        }
    }
    match keychain_error {
        Some(e) => fail(&e),
        None => 0,
    }
}
