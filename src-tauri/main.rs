//! The `mcp-broker` binary: all behaviour lives in the library.

fn main() {
    let cli = mcp_broker::cli::parse();
    std::process::exit(mcp_broker::cli::run(cli));
}
