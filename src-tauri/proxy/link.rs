//! The upstream side of a session: a stdio child process or a remote Streamable HTTP
//! server. Both take client messages in and report what the upstream says to an
//! [`Inbox`], which `Upstreams` drains into the session's router. A link never holds its
//! session, so the two have no reference cycle and the session is plain state.

use tokio::sync::mpsc;

use super::era_bridge::ModernLink;
use super::message::Message;
use super::remote::HttpLink;
use super::stdio::StdioLink;

/// What a link reports, in the order it happened.
#[derive(Debug)]
pub enum Inbound {
    /// A message from the upstream (a response, notification or request).
    Message(Message),
    /// The upstream refused a request with an HTTP error status and a JSON-RPC error,
    /// which the client hears with that status where its answer is still plain JSON.
    Refused { message: Message, status: u16 },
    /// The upstream is gone or unusable; the session ends with this reason.
    Failed(String),
}

/// Where a link reports. Unbounded: routing never blocks, so the inbox stays short.
pub type Inbox = mpsc::UnboundedSender<Inbound>;

pub enum Link {
    Stdio(StdioLink),
    Http(HttpLink),
    /// A 2026-07-28 upstream behind a 2025-11-25 session (`proxy::era_bridge`).
    Modern(ModernLink),
}

impl Link {
    /// Sends one client message upstream. Failures come back through the inbox.
    pub async fn send(&self, msg: &Message) {
        match self {
            Link::Stdio(l) => l.send(msg).await,
            Link::Http(l) => l.send(msg),
            Link::Modern(l) => l.send(msg),
        }
    }

    /// Request `id` will not be answered to the client any more: the upstream stops
    /// spending on it. With `notify`, the broker gave up on its own (timeout, or the
    /// client went away) and tells the upstream with `notifications/cancelled`; without,
    /// the client's own cancellation is being relayed already.
    pub fn cancel(&self, id: &str, notify: Option<&str>) {
        match self {
            Link::Stdio(l) => {
                if let Some(reason) = notify {
                    l.notify_cancelled(id, reason);
                }
            }
            Link::Http(l) => l.cancel(id, notify),
            Link::Modern(l) => l.cancel(id, notify),
        }
    }

    /// A request that outlives its deadline means the upstream hung: a stdio child has
    /// one pipe for everything, so the session ends. A remote upstream answers each
    /// request on its own exchange, which is dropped alone.
    pub fn ends_on_timeout(&self) -> bool {
        matches!(self, Link::Stdio(_))
    }

    /// The `MCP-Protocol-Version` the client speaks; a remote upstream sees it too.
    pub fn set_protocol_version(&self, version: &str) {
        if let Link::Http(l) = self {
            l.set_protocol_version(version);
        }
    }

    /// Stops the upstream (the child exits; the remote session is deleted and every
    /// exchange still open is dropped).
    pub async fn shutdown(&self) {
        match self {
            Link::Stdio(l) => l.shutdown().await,
            Link::Http(l) => l.shutdown().await,
            Link::Modern(l) => l.shutdown().await,
        }
    }
}
