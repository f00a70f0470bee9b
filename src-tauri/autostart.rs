//! Starting mcp-broker at login, minimised to the tray (`mcp-broker serve --minimized`).
//! One module for every front end: `mcp-broker autostart on|off|status` and the desktop
//! app's switch both call it, so they always agree on whether it is on.
//!
//! Linux: an XDG autostart entry, `$XDG_CONFIG_HOME/autostart/mcp-broker.desktop`
//! (`~/.config/autostart` when the variable is unset; XDG Autostart Specification 0.5),
//! written here because the `auto-launch` crate ignores `XDG_CONFIG_HOME` and does not
//! quote the `Exec` line. Its path and name are the ones `auto-launch` (and so
//! `tauri-plugin-autostart`) uses, so an entry written by either is seen by the other.
//! macOS (a launch agent) and Windows (the `Run` registry key): the `auto-launch` crate.

use std::path::{Path, PathBuf};

/// The entry's name: the product name, as `tauri-plugin-autostart` names it.
pub const APP_NAME: &str = "mcp-broker";

#[derive(Debug, thiserror::Error)]
pub enum AutostartError {
    #[error("cannot find the configuration directory (is HOME set?)")]
    NoConfigDir,
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("cannot remove {0}: {1}")]
    Remove(PathBuf, std::io::Error),
    #[error("cannot find this program's path: {0}")]
    NoExe(std::io::Error),
    #[cfg(not(target_os = "linux"))]
    #[error("the login item could not be changed: {0}")]
    LoginItem(String),
}

/// Whether mcp-broker starts at login, and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub enabled: bool,
    /// Where the login item lives (the file on Linux).
    pub location: String,
    /// The command it runs, when it is on.
    pub command: Option<String>,
}

/// What the login item runs: this program, `serve --minimized`, and the data dir when it
/// is not the default one.
pub fn login_args(data_dir: Option<&Path>) -> Vec<String> {
    let mut args = vec!["serve".to_owned(), "--minimized".to_owned()];
    if let Some(d) = data_dir {
        args.push("--data-dir".to_owned());
        args.push(d.display().to_string());
    }
    args
}

fn this_exe() -> Result<PathBuf, AutostartError> {
    std::env::current_exe().map_err(AutostartError::NoExe)
}

#[cfg(target_os = "linux")]
mod platform {
    use super::*;

    pub fn entry_path() -> Result<PathBuf, AutostartError> {
        Ok(dirs::config_dir()
            .ok_or(AutostartError::NoConfigDir)?
            .join("autostart")
            .join(format!("{APP_NAME}.desktop")))
    }

    pub fn enable(data_dir: Option<&Path>) -> Result<(), AutostartError> {
        let path = entry_path()?;
        let exe = this_exe()?;
        let text = desktop_entry(&exe.display().to_string(), &login_args(data_dir));
        let write = |p: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(p.parent().unwrap_or(Path::new(".")))?;
            std::fs::write(p, &text)
        };
        write(&path).map_err(|e| AutostartError::Write(path, e))
    }

    pub fn disable() -> Result<(), AutostartError> {
        let path = entry_path()?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AutostartError::Remove(path, e)),
        }
    }

    pub fn status() -> Result<Status, AutostartError> {
        let path = entry_path()?;
        let command = std::fs::read_to_string(&path).ok().map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Exec="))
                .unwrap_or_default()
                .to_owned()
        });
        Ok(Status {
            enabled: command.is_some(),
            location: path.display().to_string(),
            command,
        })
    }

    /// Desktop Entry Specification 1.5: `Exec` arguments quoted where they hold reserved
    /// characters ("The Exec key"), then the value escaped as a string.
    pub fn desktop_entry(exe: &str, args: &[String]) -> String {
        let exec = std::iter::once(exe)
            .chain(args.iter().map(String::as_str))
            .map(exec_arg)
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "[Desktop Entry]\n\
             Type=Application\n\
             Version=1.0\n\
             Name={APP_NAME}\n\
             Comment=Start mcp-broker at login, minimised to the tray\n\
             Exec={exec}\n\
             Icon={APP_NAME}\n\
             Terminal=false\n\
             StartupNotify=false\n\
             X-GNOME-Autostart-enabled=true\n"
        )
    }

    fn exec_arg(arg: &str) -> String {
        const RESERVED: &[char] = &[
            ' ', '\t', '\n', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#',
            '(', ')', '`',
        ];
        let arg = arg.replace('%', "%%");
        let quoted = if arg.is_empty() || arg.contains(RESERVED) {
            let mut q = String::from("\"");
            for c in arg.chars() {
                if matches!(c, '"' | '`' | '$' | '\\') {
                    q.push('\\');
                }
                q.push(c);
            }
            q.push('"');
            q
        } else {
            arg
        };
        // The string escape comes on top of the quoting: a backslash is written twice.
        quoted.replace('\\', "\\\\")
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use super::*;
    use auto_launch::{AutoLaunch, AutoLaunchBuilder};

    fn login_item(data_dir: Option<&Path>) -> Result<AutoLaunch, AutostartError> {
        let exe = this_exe()?;
        AutoLaunchBuilder::new()
            .set_app_name(APP_NAME)
            .set_app_path(&exe.display().to_string())
            .set_args(&login_args(data_dir))
            .build()
            .map_err(|e| AutostartError::LoginItem(e.to_string()))
    }

    pub fn enable(data_dir: Option<&Path>) -> Result<(), AutostartError> {
        login_item(data_dir)?
            .enable()
            .map_err(|e| AutostartError::LoginItem(e.to_string()))
    }

    pub fn disable() -> Result<(), AutostartError> {
        login_item(None)?
            .disable()
            .map_err(|e| AutostartError::LoginItem(e.to_string()))
    }

    pub fn status() -> Result<Status, AutostartError> {
        let item = login_item(None)?;
        let enabled = item
            .is_enabled()
            .map_err(|e| AutostartError::LoginItem(e.to_string()))?;
        Ok(Status {
            enabled,
            location: if cfg!(windows) {
                format!("the Run key of the registry ({APP_NAME})")
            } else {
                format!("the login items ({APP_NAME})")
            },
            command: None,
        })
    }
}

/// Registers the login item (replacing an older one, for example after the program moved).
pub fn enable(data_dir: Option<&Path>) -> Result<(), AutostartError> {
    platform::enable(data_dir)
}

/// Removes the login item; nothing to do when there is none.
pub fn disable() -> Result<(), AutostartError> {
    platform::disable()
}

pub fn status() -> Result<Status, AutostartError> {
    platform::status()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::platform::desktop_entry;

    #[test]
    fn exec_quotes_what_the_spec_reserves() {
        let entry = desktop_entry(
            "/opt/My Apps/mcp-broker",
            &[
                "serve".into(),
                "--minimized".into(),
                "--data-dir".into(),
                "/home/a/100% \"data\"/$x\\y".into(),
            ],
        );
        let exec = entry.lines().find_map(|l| l.strip_prefix("Exec=")).unwrap();
        assert_eq!(
            exec,
            r#""/opt/My Apps/mcp-broker" serve --minimized --data-dir "/home/a/100%% \\"data\\"/\\$x\\\\y""#
        );
        assert!(entry.starts_with("[Desktop Entry]\nType=Application\n"));
        assert!(entry.contains("\nName=mcp-broker\n"));
    }
}
