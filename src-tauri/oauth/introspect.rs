//! Token introspection (RFC 7662): who may ask, and what they are told.
//!
//! Only an authenticated caller may ask (§2.1, §4: to stop token scanning): a
//! confidential client, with `client_secret_basic` or `client_secret_post`, about its own
//! tokens; or the holder of a personal access token, as a bearer, about that token. Any
//! other token, whether unknown, expired, revoked, rotated out, issued for another
//! address of this broker or issued to someone else, is `{"active": false}` and
//! nothing more (§2.2), so the answer never tells a caller about another client's
//! tokens.

use serde::Serialize;

use super::bearer::AccessRecord;
use super::personal::{NEVER_EXPIRES, PERSONAL_CLIENT_ID};
use super::token::{ClientCredentials, CredentialsVia};
use super::{ClientId, GrantId, OAuthError, Resource, Scopes, UnixTime};

/// An authenticated introspection caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspector {
    /// A confidential client: may introspect the tokens issued to it.
    Client(ClientId),
    /// A personal access token's holder: may introspect that token's grant.
    PersonalToken(GrantId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// A stored token of either kind, joined with its unrevoked grant.
#[derive(Debug, Clone)]
pub struct TokenFacts {
    pub grant_id: GrantId,
    pub client_id: ClientId,
    pub kind: TokenKind,
    pub resource: Resource,
    pub scopes: Scopes,
    /// [`NEVER_EXPIRES`] for a personal token without an expiry.
    pub expires_at: UnixTime,
    /// Unknown for tokens issued before the broker recorded it.
    pub issued_at: Option<UnixTime>,
    /// A refresh token already exchanged for a newer one.
    pub rotated: bool,
}

/// The introspection response (RFC 7662 §2.2). An inactive token is `active: false`
/// alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<UnixTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<UnixTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

/// A client authenticating with its secret. A public client has none to show and is
/// refused: anyone can claim a public client's id.
pub fn confidential_caller(
    creds: &ClientCredentials,
    authenticated: ClientId,
) -> Result<Introspector, OAuthError> {
    match (creds.via, &creds.secret) {
        (CredentialsVia::Basic | CredentialsVia::Post, Some(_)) => {
            Ok(Introspector::Client(authenticated))
        }
        _ => Err(not_allowed()),
    }
}

/// A caller presenting a bearer token: only a live personal access token, served at this
/// broker's current address, is accepted.
pub fn personal_caller(
    rec: Option<&AccessRecord>,
    served: &[Resource],
    now: UnixTime,
) -> Result<Introspector, OAuthError> {
    match rec {
        Some(r)
            if r.client_id.0 == PERSONAL_CLIENT_ID
                && now < r.expires_at
                && served.contains(&r.resource) =>
        {
            Ok(Introspector::PersonalToken(r.grant_id))
        }
        _ => Err(OAuthError::invalid_client(
            "the bearer token is not a valid personal access token",
        )),
    }
}

pub fn not_allowed() -> OAuthError {
    OAuthError::invalid_client(
        "introspection needs a confidential client's credentials or a personal access token",
    )
}

/// What `caller` is told about `token`. `served` are the resources this broker serves
/// now; `subject` names the person who granted access (`sub`).
pub fn introspect(
    caller: &Introspector,
    token: Option<&TokenFacts>,
    served: &[Resource],
    subject: &str,
    now: UnixTime,
) -> Introspection {
    let Some(t) = token else {
        return Introspection::default();
    };
    let owned = match caller {
        Introspector::Client(id) => &t.client_id == id,
        Introspector::PersonalToken(g) => t.grant_id == *g,
    };
    let live = !t.rotated && now < t.expires_at && served.contains(&t.resource);
    if !(owned && live) {
        return Introspection::default();
    }
    Introspection {
        active: true,
        client_id: Some(t.client_id.0.clone()),
        scope: Some(t.scopes.to_string()),
        aud: Some(t.resource.0.clone()),
        exp: (t.expires_at < NEVER_EXPIRES).then_some(t.expires_at),
        iat: t.issued_at,
        sub: Some(subject.to_owned()),
        token_type: match t.kind {
            TokenKind::Access => Some("Bearer"),
            TokenKind::Refresh => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_800_000_000;

    fn served() -> Vec<Resource> {
        vec![Resource("http://127.0.0.1:9/mcp/a".into())]
    }

    fn facts() -> TokenFacts {
        TokenFacts {
            grant_id: GrantId(3),
            client_id: ClientId("c1".into()),
            kind: TokenKind::Access,
            resource: served()[0].clone(),
            scopes: Scopes::single("mcp"),
            expires_at: NOW + 60,
            issued_at: Some(NOW - 10),
            rotated: false,
        }
    }

    #[test]
    fn the_owner_learns_everything_about_a_live_token() {
        let c1 = Introspector::Client(ClientId("c1".into()));
        let r = introspect(&c1, Some(&facts()), &served(), "me", NOW);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"active": true, "client_id": "c1", "scope": "mcp",
                "aud": "http://127.0.0.1:9/mcp/a", "exp": NOW + 60, "iat": NOW - 10,
                "sub": "me", "token_type": "Bearer"})
        );
    }

    #[test]
    fn everything_else_is_only_inactive() {
        let c1 = Introspector::Client(ClientId("c1".into()));
        let inactive = serde_json::json!({"active": false});
        let other = Introspector::Client(ClientId("c2".into()));
        let other_pat = Introspector::PersonalToken(GrantId(4));
        let cases: Vec<(&Introspector, Option<TokenFacts>, UnixTime)> = vec![
            (&c1, None, NOW),
            (&other, Some(facts()), NOW),
            (&other_pat, Some(facts()), NOW),
            (&c1, Some(facts()), NOW + 60),
            (
                &c1,
                Some(TokenFacts {
                    rotated: true,
                    kind: TokenKind::Refresh,
                    ..facts()
                }),
                NOW,
            ),
            (
                &c1,
                Some(TokenFacts {
                    resource: Resource("http://127.0.0.1:8/mcp/a".into()),
                    ..facts()
                }),
                NOW,
            ),
        ];
        for (i, (caller, t, now)) in cases.into_iter().enumerate() {
            let r = introspect(caller, t.as_ref(), &served(), "me", now);
            assert_eq!(serde_json::to_value(&r).unwrap(), inactive, "case {i}");
        }
    }

    #[test]
    fn a_personal_token_sees_itself_and_never_has_exp_when_it_never_expires() {
        let pat = TokenFacts {
            client_id: ClientId(PERSONAL_CLIENT_ID.into()),
            expires_at: NEVER_EXPIRES,
            ..facts()
        };
        let r = introspect(
            &Introspector::PersonalToken(GrantId(3)),
            Some(&pat),
            &served(),
            "me",
            NOW,
        );
        assert!(r.active);
        assert_eq!(r.exp, None);
    }

    #[test]
    fn who_may_ask() {
        let creds = |via, secret: Option<&str>| ClientCredentials {
            client_id: "c1".into(),
            secret: secret.map(str::to_owned),
            via,
        };
        let c1 = ClientId("c1".into());
        assert!(confidential_caller(&creds(CredentialsVia::Basic, Some("s")), c1.clone()).is_ok());
        assert!(confidential_caller(&creds(CredentialsVia::Post, Some("s")), c1.clone()).is_ok());
        assert!(confidential_caller(&creds(CredentialsVia::IdOnly, None), c1).is_err());
        let pat = AccessRecord {
            account: None,
            grant_id: GrantId(3),
            client_id: ClientId(PERSONAL_CLIENT_ID.into()),
            resource: served()[0].clone(),
            scopes: Scopes::single("mcp"),
            expires_at: NOW + 1,
        };
        assert_eq!(
            personal_caller(Some(&pat), &served(), NOW),
            Ok(Introspector::PersonalToken(GrantId(3)))
        );
        assert!(personal_caller(Some(&pat), &served(), NOW + 1).is_err());
        assert!(personal_caller(Some(&pat), &[], NOW).is_err());
        let oauth = AccessRecord {
            account: None,
            client_id: ClientId("c1".into()),
            ..pat
        };
        assert!(personal_caller(Some(&oauth), &served(), NOW).is_err());
        assert!(personal_caller(None, &served(), NOW).is_err());
    }
}
