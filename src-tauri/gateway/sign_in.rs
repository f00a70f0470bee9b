//! The broker's own sign-in to a remote upstream, as an OAuth client (RFC 6749 §4.1 with
//! PKCE, RFC 8707 `resource`, RFC 9207 `iss`; the client side lives in
//! `proxy::upstream_oauth`): start it, finish it when
//! the browser comes back, sign out, and tell whether the broker holds a sign-in. The
//! `/upstream-login` routes (for `mcp-broker upstream`) and the desktop app's "Sign in"
//! button both go through here, so both announce the outcome the same way.

use std::collections::HashMap;

use crate::events::GatewayEvent;
use crate::proxy::upstream_oauth::{LoginState, UpstreamAuthError};

use super::{Gateway, GatewayError};

fn failed(upstream: &str, reason: UpstreamAuthError) -> GatewayError {
    GatewayError::SignIn {
        upstream: upstream.to_owned(),
        reason,
    }
}

impl Gateway {
    /// Discovers the upstream's authorization server, registers if needed (or uses the
    /// configured `client_id`), and returns the authorization URL to open in a browser.
    pub async fn start_upstream_sign_in(&self, name: &str) -> Result<String, GatewayError> {
        let upstreams = &self.inner.upstreams;
        let (url, client_id) = upstreams
            .remote(name)
            .ok_or_else(|| GatewayError::NotRemote(name.to_owned()))?;
        upstreams
            .oauth
            .start_login(name, &url, client_id.as_deref())
            .await
            .map_err(|e| {
                tracing::warn!(upstream = %name, "upstream sign-in could not start: {e}");
                failed(name, e)
            })
    }

    /// How a sign-in started here or by `mcp-broker upstream login` stands.
    pub fn upstream_sign_in_state(&self, name: &str) -> Option<LoginState> {
        self.inner.upstreams.oauth.login_state(name)
    }

    /// The browser's return to the callback: checks and exchanges, then tells listeners.
    pub async fn finish_upstream_sign_in(
        &self,
        name: &str,
        params: &HashMap<String, String>,
    ) -> Result<(), GatewayError> {
        let r = self.inner.upstreams.oauth.finish_login(name, params).await;
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
        r.map_err(|e| failed(name, e))
    }

    /// Revokes (RFC 7009, where offered) and deletes the upstream's tokens. Returns
    /// whether there was a sign-in.
    pub async fn upstream_sign_out(&self, name: &str) -> Result<bool, GatewayError> {
        let upstreams = &self.inner.upstreams;
        upstreams
            .remote(name)
            .ok_or_else(|| GatewayError::NotRemote(name.to_owned()))?;
        let was = upstreams
            .oauth
            .logout(name)
            .await
            .map_err(|e| failed(name, e))?;
        if was {
            self.emit(GatewayEvent::UpstreamSignIn {
                upstream: name.to_owned(),
                signed_in: false,
            });
        }
        Ok(was)
    }

    /// Whether the keychain holds a sign-in for this remote upstream.
    pub async fn upstream_signed_in(&self, name: &str) -> Result<bool, GatewayError> {
        let upstreams = &self.inner.upstreams;
        upstreams
            .remote(name)
            .ok_or_else(|| GatewayError::NotRemote(name.to_owned()))?;
        upstreams
            .oauth
            .signed_in(name)
            .await
            .map_err(|e| failed(name, e))
    }
}
