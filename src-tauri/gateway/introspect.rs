//! `POST /introspect` (RFC 7662): authenticates the caller (a confidential client, or a
//! personal access token as a bearer) and answers from `oauth::introspect`, which tells a
//! caller about its own tokens only.

use crate::clock::now;
use crate::oauth::OAuthError;
use crate::oauth::TokenHash;
use crate::oauth::bearer::parse_bearer;
use crate::oauth::introspect::{
    Introspection, Introspector, confidential_caller, introspect, not_allowed, personal_caller,
};
use crate::oauth::token::{authenticate_client, client_credentials, single_params};

use super::{Gateway, GatewayError};

impl Gateway {
    /// The form's pairs and the `Authorization` header, if any.
    pub async fn introspect(
        &self,
        form: &[(String, String)],
        authorization: Option<&str>,
    ) -> Result<Introspection, GatewayError> {
        let params = single_params(form)?;
        let served = self.served_resources();
        let t = now();
        let caller = match authorization {
            Some(h)
                if h.get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case("bearer ")) =>
            {
                let token = parse_bearer(Some(h)).map_err(|_| not_allowed())?;
                let rec = self.inner.store.access_token(&TokenHash::of(token)).await?;
                personal_caller(rec.as_deref(), &served, t)?
            }
            _ => {
                let creds = client_credentials(&params, authorization)?;
                let client = self.inner.store.client(&creds.client_id).await?;
                let id = authenticate_client(client.as_ref(), &creds)?;
                confidential_caller(&creds, id)?
            }
        };
        let token = params
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        let facts = self.inner.store.token_facts(&TokenHash::of(token)).await?;
        let answer = introspect(&caller, facts.as_ref(), &served, &subject(), t);
        if let Introspector::PersonalToken(grant) = caller {
            self.touch_grant(grant);
        }
        Ok(answer)
    }
}

/// RFC 7662 `sub`: the resource owner, the one person this broker acts for: their login
/// name on this machine.
fn subject() -> String {
    ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "local-user".to_owned())
}
