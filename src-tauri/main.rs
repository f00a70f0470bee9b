//! The `mcp-broker` binary: all behaviour lives in the library. Here the command line
//! is handed the desktop shell, so that neither imports the other.

fn main() {
    let cli = mcp_broker::cli::parse();
    #[cfg(feature = "desktop")]
    let desktop: Option<mcp_broker::app::DesktopShell> = Some(mcp_broker::desktop::run);
    #[cfg(not(feature = "desktop"))]
    let desktop: Option<mcp_broker::app::DesktopShell> = None;
    std::process::exit(mcp_broker::cli::run(cli, desktop));
}
