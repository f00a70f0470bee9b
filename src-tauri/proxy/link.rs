//! The upstream side of a session: a stdio child process or a remote Streamable HTTP
//! server. Both take client messages in and feed upstream messages to
//! [`Session::route`](super::session::Session::route).

use std::sync::Arc;

use super::message::Message;
use super::remote::HttpLink;
use super::session::Session;
use super::stdio::StdioLink;

pub enum Link {
    Stdio(StdioLink),
    Http(HttpLink),
}

impl Link {
    /// Sends one client message upstream. Errors end up as JSON-RPC errors on the
    /// session, not here.
    pub async fn send(&self, session: &Arc<Session>, msg: &Message) {
        match self {
            Link::Stdio(l) => l.send(session, msg).await,
            Link::Http(l) => l.send(session, msg),
        }
    }

    /// Stops the upstream (the child exits; the remote session is deleted).
    pub async fn shutdown(&self) {
        match self {
            Link::Stdio(l) => l.shutdown().await,
            Link::Http(l) => l.shutdown().await,
        }
    }
}
