//! The command line: `serve`, `activity`, `grants`, `tokens`, `registrations`, `secrets`, `upstream`,
//! `clients`, `connect`, `autostart`, `--version`. Thin: each command parses its
//! arguments, calls one core operation and prints the outcome. Exit status 2 for bad
//! usage or configuration, 1 for failures.

mod activity;
mod autostart;
mod clients;
mod connect;
mod grant_tools;
mod grants;
mod registrations;
mod secrets;
mod serve;
mod tokens;
mod upstream;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mcp-broker",
    about = "Local OAuth 2.1 consent and token broker for MCP servers",
    after_help = "With no command: the desktop app (`serve`), as the app menu, Finder or the Start menu launch it."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the broker (the desktop app, or with --headless the server alone).
    Serve(ServeArgs),
    /// What each grant did: MCP calls and authorization events (the activity log).
    Activity(activity::ActivityArgs),
    /// List or revoke the grants clients hold.
    Grants {
        #[command(subcommand)]
        command: GrantsCommand,
    },
    /// Create personal access tokens: bearer tokens for one upstream, for clients that
    /// cannot do OAuth (scripts, CLIs). They are listed and revoked as grants.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// List or delete the clients that registered with the broker.
    Registrations {
        #[command(subcommand)]
        command: RegistrationsCommand,
    },
    /// Sign the broker in to a remote upstream (OAuth), or out of it.
    Upstream {
        #[command(subcommand)]
        command: UpstreamCommand,
    },
    /// Store, list or delete upstream secrets in the OS keychain.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Run as a stdio MCP server that relays to the running broker's server NAME (for
    /// clients that only launch stdio servers, such as Claude Desktop); starts the
    /// broker when none runs.
    Connect(connect::ConnectArgs),
    /// Start mcp-broker at login (minimised to the tray), or not; or say whether it does.
    Autostart {
        #[command(subcommand)]
        command: autostart::AutostartCommand,
    },
    /// Add the broker's servers to an MCP client's configuration, remove them, or import
    /// the client's own servers into the broker.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Serve without the desktop app; consent is an HTML page.
    #[arg(long)]
    pub headless: bool,
    /// The configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArg,
    /// Port on 127.0.0.1 (0 picks a free one). Default: [broker] port, else 7391.
    #[arg(long)]
    pub port: Option<u16>,
    /// Start the desktop app minimised to the tray (at login, or started by `connect`).
    #[arg(long)]
    pub minimized: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DataDirArg {
    /// Where the broker keeps its database and logs.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArg {
    pub fn resolve(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }
}

#[derive(Subcommand, Debug)]
pub enum GrantsCommand {
    /// Show active grants: id, client id, client name, upstream, scope, created, last used.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant, every grant of a client (--client), or every grant (--all); the
    /// running broker refuses their tokens from the next request on.
    Revoke {
        /// The grant id, as shown by `grants list`.
        #[arg(required_unless_present_any = ["all", "client"], conflicts_with_all = ["all", "client"])]
        id: Option<String>,
        /// Revoke every active grant, personal tokens included.
        #[arg(long, conflicts_with = "client")]
        all: bool,
        /// Revoke every active grant of this client id.
        #[arg(long, value_name = "CLIENT_ID")]
        client: Option<String>,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Show a grant's tools: each one's choice (allow, ask, block) and state; a tool the
    /// server changed since it was approved is shown as a diff.
    Show {
        /// The grant id, as shown by `grants list`.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Change a grant's tools; the running broker applies it on the next request.
    /// Allowing (or asking for) a changed or new tool approves what the server serves
    /// now; blocking keeps it hidden.
    Tools {
        /// The grant id, as shown by `grants list`.
        id: String,
        /// Allow this tool (repeatable).
        #[arg(long, value_name = "TOOL")]
        allow: Vec<String>,
        /// Ask each time this tool is called (desktop app; repeatable).
        #[arg(long, value_name = "TOOL")]
        ask: Vec<String>,
        /// Block this tool (repeatable).
        #[arg(long, value_name = "TOOL")]
        block: Vec<String>,
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Create a personal access token for one upstream and print it (shown only once).
    /// Use it as `Authorization: Bearer TOKEN` at http://127.0.0.1:PORT/mcp/NAME.
    Create {
        /// The upstream (server name in the configuration) the token is valid for.
        #[arg(long)]
        upstream: String,
        /// What the token is for, as `grants list` shows it.
        #[arg(long)]
        label: String,
        /// How long it works: a duration such as 30d, 12h, 90d, or never.
        #[arg(long, default_value = "30d")]
        expires: String,
        /// The tools it is meant for, comma-separated (its policy: no other tool is listed or called).
        #[arg(long, value_delimiter = ',', value_name = "TOOL,...")]
        tools: Vec<String>,
        /// The configuration file (for the upstream names and the port).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The port of the broker the token is for. Default: the running broker's, else
        /// [broker] port, else 7391.
        #[arg(long)]
        port: Option<u16>,
        #[command(flatten)]
        data: DataDirArg,
        /// Print a JSON object (with the token) instead of the token alone.
        #[arg(long)]
        json: bool,
    },
    /// Show active personal access tokens (never the tokens themselves).
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Print a JSON array (as `grants list --json`) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RegistrationsCommand {
    /// Show registered clients: id, name, kind, created, active grants, last used.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a registration: its grants are revoked and its next request is refused
    /// with invalid_client, so the client registers again.
    Delete {
        client_id: String,
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Store a secret in the OS keychain. The value is read from stdin, or typed at a
    /// hidden prompt when stdin is a terminal. Refer to it in the configuration as
    /// `{ secret = "NAME" }`.
    Set {
        /// The secret's name (A-Z a-z 0-9 . _ - :).
        name: String,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Show secret names, whether the keychain holds them, and which upstreams use them.
    /// Never shows values.
    List {
        #[command(flatten)]
        data: DataDirArg,
        /// The configuration file whose references to show.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a secret from the OS keychain.
    Delete {
        name: String,
        #[command(flatten)]
        data: DataDirArg,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct BrokerTarget {
    /// The configuration file (for the broker's port).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The running broker's port (default: from the configuration).
    #[arg(long)]
    pub port: Option<u16>,
}

#[derive(Subcommand, Debug)]
pub enum UpstreamCommand {
    /// Sign in to a remote upstream in the browser; the running broker keeps the tokens
    /// in the OS keychain and refreshes them.
    Login {
        name: String,
        /// Sign in as this account of the upstream (`[servers.NAME.accounts.ACCOUNT]`).
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        target: BrokerTarget,
        /// Print the URL instead of opening the browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Revoke (RFC 7009, where offered) and delete the broker's tokens for an upstream.
    Logout {
        name: String,
        /// Sign out of this account of the upstream only.
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        target: BrokerTarget,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientsCommand {
    /// Write an entry for each configured server into the client's config file.
    Install {
        /// claude-desktop (through `mcp-broker connect`), claude-code or cursor.
        #[arg(value_enum)]
        client: crate::client_apps::ClientApp,
        /// Only this server (repeatable). Default: every configured server.
        #[arg(long, value_name = "NAME")]
        server: Vec<String>,
        /// Print the entries instead of writing the client's file.
        #[arg(long)]
        print: bool,
        #[command(flatten)]
        files: ClientFiles,
    },
    /// Import the MCP servers a client already has: add them to the broker's
    /// configuration, move their secret-looking env and header values into the OS
    /// keychain, and make the client's entries go through the broker.
    Import {
        #[arg(value_enum)]
        client: crate::client_apps::ClientApp,
        /// Only this server, by the client's name for it (repeatable). Default: all.
        #[arg(long, value_name = "NAME")]
        server: Vec<String>,
        /// Import the client's server NAME as the broker's server NEW (repeatable): for
        /// a name already configured in the broker.
        #[arg(long, value_name = "NAME=NEW")]
        rename: Vec<String>,
        /// Show what would change, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Move every value listed into the keychain without asking (needed when stdin
        /// is not a terminal).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        files: ClientFiles,
    },
    /// Remove the entries `clients install` wrote; every other entry stays.
    Uninstall {
        #[arg(value_enum)]
        client: crate::client_apps::ClientApp,
        /// Only this server (repeatable). Default: every entry mcp-broker wrote.
        #[arg(long, value_name = "NAME")]
        server: Vec<String>,
        /// The client's config file, instead of its standard location.
        #[arg(long, value_name = "FILE", env = "MCP_BROKER_CLIENT_CONFIG")]
        client_config: Option<PathBuf>,
    },
}

/// Where `clients install` and `clients import` read and write.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientFiles {
    /// The broker's configuration file (TOML); a missing one is empty.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArg,
    /// The broker's port in the URLs. Default: [broker] port, else 7391.
    #[arg(long)]
    pub port: Option<u16>,
    /// The client's config file, instead of its standard location.
    #[arg(long, value_name = "FILE", env = "MCP_BROKER_CLIENT_CONFIG")]
    pub client_config: Option<PathBuf>,
}

/// What `mcp-broker --version` prints after the name: the version (set once, in
/// Cargo.toml) and the data dir used when `--data-dir` is not given.
pub fn version_text() -> String {
    format!(
        "{}\ndata dir: {}",
        crate::VERSION,
        default_data_dir().display()
    )
}

/// Parses the command line (exits on bad usage, `--help` and `--version`).
pub fn parse() -> Cli {
    let version = version_text();
    let matches = Cli::command()
        .version(version.clone())
        .long_version(version)
        .get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("mcp-broker")
}

pub fn default_config() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("mcp-broker")
        .join("config.toml")
}

/// The single-threaded runtime every command runs on (the server too: a local broker
/// serves a handful of clients, and one thread saves the cross-thread wake-ups that
/// dominated its CPU per proxied call; SQLite and the keychain have their own threads).
/// `None` after printing why it could not start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("mcp-broker: cannot start: {e}");
            None
        }
    }
}

/// Prints `value` as pretty JSON on stdout; returns the exit status.
fn print_json(value: &impl serde::Serialize) -> i32 {
    match serde_json::to_string_pretty(value) {
        Ok(s) => {
            println!("{s}");
            0
        }
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            1
        }
    }
}

/// Runs the command line; returns the process exit status. `desktop` runs the desktop
/// app (`None` in a build without it).
pub fn run(cli: Cli, desktop: Option<crate::app::DesktopShell>) -> i32 {
    let Some(command) = cli.command else {
        return serve::run(
            ServeArgs {
                headless: false,
                config: None,
                data: DataDirArg { data_dir: None },
                port: None,
                minimized: false,
            },
            desktop,
        );
    };
    match command {
        Command::Serve(args) => serve::run(args, desktop),
        Command::Activity(args) => activity::run(args),
        Command::Grants { command } => grants::run(command),
        Command::Tokens { command } => tokens::run(command),
        Command::Registrations { command } => registrations::run(command),
        Command::Secrets { command } => secrets::run(command),
        Command::Upstream { command } => upstream::run(command),
        Command::Clients { command } => clients::run(command),
        Command::Connect(args) => connect::run(args),
        Command::Autostart { command } => autostart::run(command),
    }
}
