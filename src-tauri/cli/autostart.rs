//! `autostart on|off|status`: start mcp-broker at login, minimised to the tray (see
//! `crate::autostart`, which the desktop app's switch uses too).

use super::DataDirArg;
use crate::autostart;

#[derive(clap::Subcommand, Debug)]
pub enum AutostartCommand {
    /// Start mcp-broker at login (the desktop app, minimised to the tray).
    On {
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Do not start it at login any more.
    Off,
    /// Say whether it starts at login, and what runs.
    Status,
}

pub fn run(command: AutostartCommand) -> i32 {
    let done = match command {
        AutostartCommand::On { data } => autostart::enable(data.data_dir.as_deref()),
        AutostartCommand::Off => autostart::disable(),
        AutostartCommand::Status => Ok(()),
    };
    if let Err(e) = done {
        eprintln!("mcp-broker: {e}");
        return 1;
    }
    match autostart::status() {
        Ok(s) => {
            let state = if s.enabled { "on" } else { "off" };
            println!("autostart: {state} ({})", s.location);
            if let Some(c) = s.command {
                println!("runs: {c}");
            }
            0
        }
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            1
        }
    }
}
