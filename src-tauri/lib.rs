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
//! - [`cli`]: the `mcp-broker` command line; [`browser`]: opening a URL for the user.
//! - [`client_apps`]: entries for MCP client apps' own config files (`clients install`),
//!   and what importing their servers would do; [`client_import`] does it.
//! - [`config`], [`config_edit`], [`config_watch`]: `config.toml` loaded, changed by the
//!   app keeping the person's formatting, and watched for hand edits; [`upstream_edit`]:
//!   saving a server from the window, typed secrets into the keychain with it.
//! - `desktop` (feature `desktop`): the Tauri shell, the only importer of tauri.

// Handlers return `Result<_, Response>` to bail out early; the error path is cold.
#![allow(clippy::result_large_err)]

pub mod atomic_file;
pub mod bridge;
pub mod browser;
pub mod cli;
pub mod client_apps;
pub mod client_import;
pub mod client_metadata;
pub mod config;
pub mod config_edit;
pub mod config_watch;
pub mod consent;
#[cfg(feature = "desktop")]
pub mod desktop;
pub mod error;
pub mod events;
pub mod gateway;
pub mod http;
pub mod oauth;
pub mod proxy;
pub mod secrets;
pub mod store;
pub mod upstream_edit;
pub mod upstream_sign_in;
pub mod vault;

pub use error::{Error, Result};
pub use gateway::Gateway;
