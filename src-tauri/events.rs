//! What happened inside the broker, for whoever shows it to the user (the desktop
//! shell's tray, grants window and notifications). Sent on a broadcast channel; a slow
//! listener misses events rather than slowing the broker. Each fact is one event: a
//! replayed token is one `GrantRevoked` with `RevokeReason::Replay`, never two.

use crate::oauth::GrantId;

#[derive(Debug, Clone, PartialEq)]
pub enum GatewayEvent {
    GrantApproved {
        grant_id: GrantId,
        client_name: String,
        upstream: String,
    },
    GrantRevoked {
        grant_id: GrantId,
        client_name: String,
        upstream: String,
        reason: RevokeReason,
    },
    /// The set of active grants changed behind this process's back (the CLI revoked one
    /// in the database); listeners re-read the grants. Each revocation found this way was
    /// announced just before as a `GrantRevoked` with `RevokeReason::External`.
    GrantsChanged,
    SessionsChanged {
        upstream: String,
    },
    UpstreamFailed {
        upstream: String,
        reason: String,
    },
    /// The broker signed in to a remote upstream (true) or out of it (false).
    UpstreamSignIn {
        upstream: String,
        signed_in: bool,
    },
    /// A secret was stored or deleted; the upstream list shows where each is used.
    SecretsChanged,
    /// A new configuration is in force (a change made in the window, an import, or a
    /// hand edit of the file picked up while running). `added` upstreams are served,
    /// `changed` ones had their sessions ended, `removed` ones refuse requests.
    /// `restart_needed`: `[broker]` settings differ from the ones in force, which only
    /// a restart applies.
    UpstreamsChanged {
        added: Vec<String>,
        changed: Vec<String>,
        removed: Vec<String>,
        restart_needed: bool,
    },
    /// A hand edit of the configuration file was refused: the last good configuration
    /// stays in force. `key` is empty when the problem is not one key's (TOML syntax).
    ConfigRejected {
        file: String,
        key: String,
        reason: String,
    },
    /// A decision about a grant's tools: the choices at consent, an answer in the
    /// approval window, a choice changed later (for the activity log).
    ToolDecision(crate::tool_policy::ToolDecision),
    /// An upstream served changed definitions of pinned tools (`changed`) or tools the
    /// grant never approved (`new`): hidden from that grant until the person approves.
    ToolsSuspended {
        grant_id: GrantId,
        upstream: String,
        changed: Vec<String>,
        new: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The person revoked it in the grants window.
    Window,
    /// The person revoked it from the tray menu.
    Tray,
    /// The person revoked it with `mcp-broker grants revoke`.
    Cli,
    /// Its client registration was deleted (window or CLI).
    RegistrationDeleted,
    /// The client revoked its own token (RFC 7009).
    Client,
    /// A replayed code or refresh token: possible token theft.
    Replay,
    /// Another process (the CLI) revoked it in the database.
    External,
}
