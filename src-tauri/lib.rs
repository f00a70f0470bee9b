//! mcp-broker: a local OAuth 2.1 authorization server and MCP proxy.
//!
//! AI clients reach the MCP servers a person uses through `http://127.0.0.1:PORT/mcp/NAME`.
//! Each client registers (RFC 7591), the person approves it once per server (native
//! window or HTML page), and the client gets tokens bound to that one server (RFC 8707).
//! The broker relays MCP messages to the upstream (a stdio child per session, or a remote
//! Streamable HTTP server) and never forwards the client's token.
//!
//! Layout, from the inside out:
//! - [`oauth`]: pure protocol decisions; no I/O, `now` passed in.
//! - [`oauth_client`]: the client side of OAuth (discovery, registration, PKCE, refresh,
//!   the loopback redirect), for the bridge and for remote upstreams.
//! - [`mcp_client`]: the client half of MCP Streamable HTTP.
//! - [`store`]: SQLite (sqlx); only hashes of issued secrets.
//! - [`vault`]: secrets the broker uses, in the OS keychain; `Secret` prints `<redacted>`.
//! - [`secrets`]: the user's upstream secrets: set, delete, list with where each is used.
//! - [`consent`]: pending questions for the person.
//! - [`client_metadata`]: fetching Client ID Metadata Documents (SSRF-guarded).
//! - [`proxy`]: MCP sessions, upstream links, Streamable HTTP.
//! - [`http`]: axum routes, the Host/Origin guard, error rendering in one place.
//! - [`gateway`]: the handle everything else holds; user-level operations
//!   ([`upstream_sign_in`]: the broker's own sign-in to remote upstreams).
//! - [`bridge`]: `mcp-broker connect`, the stdio bridge for stdio-only clients.
//! - [`autostart`]: starting at login (the XDG autostart entry, or the OS's login item).
//! - [`cli`]: the `mcp-broker` command line; [`browser`]: opening a URL for the user.
//! - [`clients`]: entries for MCP clients' own config files (`clients install`).
//! - `desktop` (feature `desktop`): the Tauri shell, the only importer of tauri.

// Handlers return `Result<_, Response>` to bail out early; the error path is cold.
#![allow(clippy::result_large_err)]

pub mod autostart;
pub mod bridge;
pub mod browser;
pub mod cli;
pub mod client_metadata;
pub mod clients;
pub mod config;
pub mod consent;
#[cfg(feature = "desktop")]
pub mod desktop;
pub mod error;
pub mod events;
pub mod gateway;
pub mod http;
pub mod mcp_client;
pub mod oauth;
pub mod oauth_client;
pub mod proxy;
pub mod secrets;
pub mod store;
pub mod upstream_sign_in;
pub mod vault;

pub use error::{Error, Result};

/// The version, from Cargo.toml (the one place it is set; Tauri's bundle takes it too).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub use gateway::Gateway;
