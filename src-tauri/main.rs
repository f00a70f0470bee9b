//! The `mcp-broker` binary: all behaviour lives in the library.

use clap::Parser;

fn main() {
    let cli = mcp_broker::cli::Cli::parse();
    std::process::exit(mcp_broker::cli::run(cli));
}
