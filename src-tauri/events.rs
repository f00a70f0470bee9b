//! What happened inside the broker, for whoever shows it to the user (the desktop
//! shell's tray, grants window and notifications). Sent on a broadcast channel; a slow
//! listener misses events rather than slowing the broker.

use crate::oauth::GrantId;

#[derive(Debug, Clone, PartialEq)]
pub enum GatewayEvent {
    ClientRegistered {
        client_id: String,
        client_name: String,
    },
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
    /// A rotated-out refresh token came back: possible token theft.
    RefreshReplayed {
        grant_id: GrantId,
        client_name: String,
        upstream: String,
    },
    /// The set of active grants may have changed behind the broker's back (the CLI
    /// revoked one in the database); listeners re-read the grants.
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The user revoked it (CLI, window, tray).
    User,
    /// The client revoked its own token (RFC 7009).
    Client,
    /// A replayed code or refresh token.
    Replay,
    /// Another process (the CLI) revoked it in the database.
    External,
}
