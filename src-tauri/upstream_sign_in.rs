//! The user-level operations around the broker's own sign-in to a remote upstream
//! (the OAuth client side lives in `proxy::upstream_oauth`): start it, finish it when
//! the browser comes back, sign out, and tell whether the broker holds a sign-in. The
//! `/upstream-login` routes (for `mcp-broker upstream`) and the desktop app's "Sign in"
//! button both go through here, so both announce the outcome the same way.

use std::collections::HashMap;

use crate::events::GatewayEvent;
use crate::gateway::Gateway;

#[derive(Debug, PartialEq)]
pub enum SignInError {
    /// No remote (HTTP) upstream has this name.
    NotRemote,
    Failed(String),
}

impl std::fmt::Display for SignInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignInError::NotRemote => f.write_str("no remote upstream has this name"),
            SignInError::Failed(e) => f.write_str(e),
        }
    }
}

impl Gateway {
    /// Discovers the upstream's authorization server, registers if needed (or uses the
    /// configured `client_id`), and returns the authorization URL to open in a browser.
    pub async fn start_upstream_sign_in(&self, name: &str) -> Result<String, SignInError> {
        let (url, client_id) = self.upstreams.remote(name).ok_or(SignInError::NotRemote)?;
        self.upstreams
            .oauth
            .start_login(name, url, client_id)
            .await
            .map_err(|e| {
                tracing::warn!(upstream = %name, "upstream sign-in could not start: {e}");
                SignInError::Failed(e)
            })
    }

    /// The browser's return to the callback: checks and exchanges, then tells listeners.
    pub async fn finish_upstream_sign_in(
        &self,
        name: &str,
        params: &HashMap<String, String>,
    ) -> Result<(), String> {
        let r = self.upstreams.oauth.finish_login(name, params).await;
        match &r {
            Ok(()) => self.emit(GatewayEvent::UpstreamSignIn {
                upstream: name.to_owned(),
                signed_in: true,
            }),
            Err(e) => {
                tracing::warn!(upstream = %name, "upstream sign-in failed: {e}");
                self.emit(GatewayEvent::UpstreamFailed {
                    upstream: name.to_owned(),
                    reason: format!("sign-in failed: {e}"),
                });
            }
        }
        r
    }

    /// Revokes (RFC 7009, where offered) and deletes the upstream's tokens. Returns
    /// whether there was a sign-in.
    pub async fn upstream_sign_out(&self, name: &str) -> Result<bool, SignInError> {
        self.upstreams.remote(name).ok_or(SignInError::NotRemote)?;
        let was = self
            .upstreams
            .oauth
            .logout(name)
            .await
            .map_err(SignInError::Failed)?;
        if was {
            self.emit(GatewayEvent::UpstreamSignIn {
                upstream: name.to_owned(),
                signed_in: false,
            });
        }
        Ok(was)
    }

    /// Whether the keychain holds a sign-in for this remote upstream.
    pub async fn upstream_signed_in(&self, name: &str) -> Result<bool, SignInError> {
        self.upstreams.remote(name).ok_or(SignInError::NotRemote)?;
        self.upstreams
            .oauth
            .signed_in(name)
            .await
            .map_err(SignInError::Failed)
    }
}
