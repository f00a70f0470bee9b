//! The upstreams as a person sees them: how each is reached, its open sessions, the
//! keychain secrets it reads, whether the broker holds a sign-in, and its last failure.
//! One overview for the desktop window and any other front end.

use serde::Serialize;

use crate::config::Transport;
use crate::proxy::upstream_oauth::LoginState;
use crate::secrets::{SecretEntry, SecretStatus};

use super::{Gateway, GatewayError};

#[derive(Debug, Serialize)]
pub struct UpstreamView {
    pub name: String,
    /// How it is reached, without anything that could be a secret.
    pub endpoint: String,
    pub sessions: usize,
    pub last_error: Option<String>,
    /// The keychain secrets this upstream reads, with their status.
    pub secrets: Vec<SecretUse>,
    /// For a remote upstream that may sign in with OAuth (no `Authorization` header
    /// configured): whether the broker holds a sign-in. `None` for an upstream with
    /// named accounts: each signs in on its own (`account_sign_ins`).
    pub sign_in: Option<SignInView>,
    /// Per named account of a remote upstream that signs in with OAuth (its headers set
    /// no `Authorization`): whether the broker holds that account's sign-in.
    pub account_sign_ins: Vec<AccountSignIn>,
}

#[derive(Debug, Serialize)]
pub struct AccountSignIn {
    pub account: String,
    /// What `sign_in_upstream` / `upstream login` take for this account: `NAME:ACCOUNT`.
    pub sign_in_id: String,
    pub sign_in: SignInView,
}

#[derive(Debug, Serialize)]
pub struct SecretUse {
    pub name: String,
    /// `env GITHUB_TOKEN`, `header Authorization`.
    pub place: String,
    /// The account whose value reads it (`None`: the server's own, every account's).
    pub account: Option<String>,
    pub status: SecretStatus,
}

#[derive(Debug, Serialize)]
pub struct SignInView {
    /// `None`: the keychain could not be asked.
    pub signed_in: Option<bool>,
    /// A sign-in started here or by `mcp-broker upstream login`, and how it ended.
    pub login: Option<LoginState>,
}

#[derive(Debug, Serialize)]
pub struct Overview {
    pub issuer: String,
    pub upstreams: Vec<UpstreamView>,
    /// Every secret name the configuration uses or the keychain index knows. Names and
    /// statuses only: no value ever leaves the keychain through here.
    pub secrets: Vec<SecretEntry>,
    /// Why the keychain could not be asked, in one line with what to do.
    pub keychain_error: Option<String>,
}

impl Gateway {
    pub async fn overview(&self) -> Result<Overview, GatewayError> {
        let (secrets, keychain_error) = self.secrets().await?;
        let mut keychain_error = keychain_error.map(|e| e.to_string());
        let status = self.inner.upstreams.status();
        let config = self.config();
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for u in &config.upstreams {
            let uses = u
                .secret_uses()
                .into_iter()
                .map(|(name, place, account)| SecretUse {
                    account: account.map(str::to_owned),
                    status: secrets
                        .iter()
                        .find(|e| e.name == name)
                        .map_or(SecretStatus::Unknown, |e| e.status),
                    name: name.to_owned(),
                    place,
                })
                .collect();
            let signs_in = |headers: &std::collections::BTreeMap<String, _>| {
                matches!(u.transport, Transport::Http { .. })
                    && !headers
                        .keys()
                        .any(|h: &String| h.eq_ignore_ascii_case("authorization"))
            };
            let own = match &u.transport {
                Transport::Http { headers, .. } => headers.clone(),
                Transport::Stdio { .. } => Default::default(),
            };
            let sign_in = if u.accounts.is_empty() && signs_in(&own) {
                Some(self.sign_in_view(&u.name, &mut keychain_error).await)
            } else {
                None
            };
            let mut account_sign_ins = Vec::new();
            for a in u.accounts.keys() {
                if signs_in(&u.values_for(Some(a)).unwrap_or_default()) {
                    let id = crate::config::sign_in_id(&u.name, Some(a));
                    account_sign_ins.push(AccountSignIn {
                        account: a.clone(),
                        sign_in: self.sign_in_view(&id, &mut keychain_error).await,
                        sign_in_id: id,
                    });
                }
            }
            upstreams.push(UpstreamView {
                name: u.name.clone(),
                endpoint: endpoint(&u.transport),
                sessions: status
                    .iter()
                    .find(|s| s.name == u.name)
                    .map_or(0, |s| s.sessions),
                last_error: self.last_errors().get(&u.name).cloned(),
                secrets: uses,
                sign_in,
                account_sign_ins,
            });
        }
        Ok(Overview {
            issuer: self.issuer().to_string(),
            upstreams,
            secrets,
            keychain_error,
        })
    }
}

/// How an upstream is reached, without anything that could be a secret: the program's
/// file name (not its arguments), or the URL without query or credentials.
fn endpoint(t: &Transport) -> String {
    match t {
        Transport::Stdio { command, .. } => {
            let name = std::path::Path::new(command)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| command.clone());
            format!("stdio: {name}")
        }
        Transport::Http { url, .. } => {
            let mut u = url.clone();
            u.set_query(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
    }
}

impl Gateway {
    /// Whether the broker holds sign-in `id` (`NAME` or `NAME:ACCOUNT`); a keychain that
    /// cannot be asked is noted once in `keychain_error`.
    async fn sign_in_view(&self, id: &str, keychain_error: &mut Option<String>) -> SignInView {
        let signed_in = match self.upstream_signed_in(id).await {
            Ok(b) => Some(b),
            Err(e) => {
                keychain_error.get_or_insert_with(|| e.to_string());
                None
            }
        };
        SignInView {
            signed_in,
            login: self.inner.upstreams.oauth.login_state(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_never_shows_arguments_or_credentials() {
        let stdio = Transport::Stdio {
            command: "/usr/bin/npx".into(),
            args: vec!["--token=secret".into()],
            env: Default::default(),
            cwd: None,
        };
        assert_eq!(endpoint(&stdio), "stdio: npx");
        let http = Transport::Http {
            url: url::Url::parse("https://user:pw@mcp.example.com/mcp?key=secret").unwrap(),
            headers: Default::default(),
            client_id: None,
        };
        assert_eq!(endpoint(&http), "https://mcp.example.com/mcp");
    }
}
