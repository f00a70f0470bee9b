//! `secrets set`, `secrets list`, `secrets delete`: the user's upstream secrets in the OS
//! keychain. Values go from stdin (or the terminal, without echo) straight to the
//! keychain; the data dir keeps only an index of names for `list`, which also shows where
//! the configuration uses each name. Nothing here prints a value.

use std::io::{IsTerminal, Read};
use std::path::Path;

use super::SecretsCommand;
use crate::gateway::{Gateway, GatewayError};
use crate::secrets::SecretsError;
use crate::vault::{Secret, VaultError};

/// Longer values are almost certainly a mistake (a file piped in by accident).
const MAX_VALUE: usize = 64 * 1024;

pub fn run(cmd: SecretsCommand) -> i32 {
    let Some(rt) = super::runtime() else {
        return 1;
    };
    match cmd {
        SecretsCommand::Set { name, data } => rt.block_on(set(&data.resolve(), &name)),
        SecretsCommand::List { data, config, json } => {
            rt.block_on(list(&data.resolve(), config.as_deref(), json))
        }
        SecretsCommand::Delete { name, data } => rt.block_on(delete(&data.resolve(), &name)),
    }
}

/// Prints why; exit status 2 for a name that can never be valid, else 1.
fn fail(e: &GatewayError) -> i32 {
    eprintln!("mcp-broker: {e}");
    match e {
        GatewayError::Secrets(SecretsError::Vault(VaultError::BadName(_))) => 2,
        _ => 1,
    }
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

async fn set(dir: &Path, name: &str) -> i32 {
    // A bad name is refused before asking for the value.
    if let Err(e) = crate::vault::check_name(name) {
        return fail(&SecretsError::Vault(e).into());
    }
    let value = match read_value(name) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            return 1;
        }
    };
    match Gateway::set_secret_offline(dir, name, value).await {
        Ok(()) => {
            println!("stored {name} in the OS keychain");
            0
        }
        Err(e) => fail(&e),
    }
}

async fn delete(dir: &Path, name: &str) -> i32 {
    match Gateway::delete_secret_offline(dir, name).await {
        Ok(true) => {
            println!("deleted {name} from the OS keychain");
            0
        }
        Ok(false) => {
            eprintln!("mcp-broker: no secret named {name}");
            1
        }
        Err(e) => fail(&e),
    }
}

async fn list(dir: &Path, config: Option<&Path>, json: bool) -> i32 {
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
    let (rows, keychain_error) = match Gateway::secrets_offline(dir, config.as_ref()).await {
        Ok(x) => x,
        Err(e) => return fail(&e),
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
        Some(e) => fail(&SecretsError::Vault(e).into()),
        None => 0,
    }
}
