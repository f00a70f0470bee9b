//! mcp-broker: a local OAuth 2.1 authorization server and MCP proxy.
//!
//! AI clients reach the MCP servers a person uses through `http://127.0.0.1:PORT/mcp/NAME`.
//! Each client registers (RFC 7591), the person approves it once per server (native
//! window or HTML page), and the client gets tokens bound to that one server (RFC 8707).
//! The broker relays MCP messages to the upstream (a stdio child per session, or a remote
//! Streamable HTTP server) and never forwards the client's token.
//!
//! Layout, from the inside out (a module imports only modules listed before it, except
//! that front ends import the core):
//! - [`oauth`]: pure protocol decisions; no I/O, `now` passed in. [`clock`]: the wall clock.
//! - [`oauth_client`]: the client side of OAuth (discovery, registration, PKCE, refresh,
//!   the loopback redirect), for the bridge and for remote upstreams; [`mcp_client`]: the
//!   client half of MCP Streamable HTTP.
//! - [`store`]: SQLite (sqlx); only hashes of issued secrets.
//! - [`activity`]: the activity log's writer, reference ids and argument redaction.
//! - [`vault`]: secrets the broker uses, in the OS keychain; `Secret` prints `<redacted>`.
//! - [`secrets`]: the rules for the user's upstream secrets (keychain plus index of names).
//! - [`atomic_file`]: replacing a file in one rename (config.toml, clients' files).
//! - [`config`], [`config_edit`], [`config_watch`]: `config.toml` loaded (a missing file is
//!   a first start), changed by the app keeping the person's formatting, and watched for
//!   hand edits; [`upstream_edit`]: saving a server from the window, typed secrets into
//!   the keychain with it.
//! - [`tool_policy`]: per-tool consent and pinned tool definitions, the pure rules (which
//!   tools a grant sees and calls, canonical definition hashes, diffs, masked arguments).
//! - [`consent`]: pending questions for the person and the one view of each.
//! - [`cimd_fetch`]: fetching Client ID Metadata Documents (SSRF-guarded; the rules are `oauth::cimd`).
//! - [`proxy`]: MCP sessions, upstream links, the Streamable HTTP transport.
//! - [`gateway`]: the core and its API: every user-level operation is one method there.
//! - [`app`]: the one start-up and shutdown path (headless and desktop alike).
//! - Front ends, each parsing input, calling one Gateway method and rendering the outcome:
//!   [`http`] (axum routes; errors rendered in `http::response`), [`cli`] (the command
//!   line), `desktop` (feature `desktop`: the Tauri shell, the only importer of tauri),
//!   [`bridge`] (`mcp-broker connect`, the stdio bridge for stdio-only clients, which
//!   starts the broker when none runs).
//! - [`autostart`]: starting at login (the XDG autostart entry, or the OS's login item).
//! - [`client_apps`]: entries for MCP client apps' own config files (`clients install`),
//!   and what importing their servers would do; [`client_import`] does it;
//!   [`browser`]: opening a URL for the user.

pub mod activity;
pub mod app;
pub mod atomic_file;
pub mod autostart;
pub mod bridge;
pub mod browser;
pub mod cimd_fetch;
pub mod cli;
pub mod client_apps;
pub mod client_import;
pub mod clock;
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
pub mod mcp_client;
pub mod oauth;
pub mod oauth_client;
pub mod proxy;
pub mod secrets;
pub mod store;
pub mod tool_policy;
pub mod upstream_edit;
pub mod vault;

pub use error::{Error, Result};

/// The version, from Cargo.toml (the one place it is set; Tauri's bundle takes it too).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub use gateway::Gateway;
