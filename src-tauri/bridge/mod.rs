//! `mcp-broker connect NAME`: a stdio MCP server for clients that can only launch stdio
//! servers (Claude Desktop). It is an OAuth client of the running broker like any other
//! (RFC 7591 registration as a public client, authorization code + PKCE S256 with a
//! loopback redirect, RFC 8252), keeps its tokens in the OS keychain, and relays every
//! JSON-RPC message between its stdin/stdout and the broker's Streamable HTTP endpoint
//! `/mcp/NAME`, in both directions, without interpreting them. When no broker runs, it
//! starts one.
//!
//! Must not import sqlx, tauri or the broker's server side (`gateway`, `http`, `store`,
//! `proxy`): it talks to the broker over HTTP only, so it works with a broker in another
//! process (or the desktop app). Its OAuth and HTTP clients are the shared ones,
//! [`crate::oauth_client`] and [`crate::mcp_client`].
//!
//! - [`locate`]: `broker.json` in the data dir: which broker runs, on which port.
//! - [`lock`]: `broker.lock`, held by the one broker that serves a data dir.
//! - [`start`]: starting a broker when none runs, one for many bridges.
//! - [`auth`]: registration, consent in the browser, token exchange and refresh.
//! - [`relay`]: stdin lines to POSTs, JSON and SSE answers and the GET stream to stdout.
//! - [`modern`]: what a 2026-07-28 client's request needs to go out statelessly.

pub mod auth;
pub mod locate;
pub mod lock;
pub mod modern;
pub mod relay;
pub mod start;
