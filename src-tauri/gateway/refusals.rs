//! How `/mcp/NAME` refuses tokens, and what that costs: made-up tokens are refused
//! without touching the database, unknown ones are looked up once, a token made by another
//! process works at once, and tokens from before the check keep working until they expire.
//! "Without touching the database" is proven by closing it (`Store::close`): a lookup would then fail as
//! an internal error instead of a refusal.

use std::borrow::Cow;
use std::sync::Arc;

use super::Gateway;
use super::mcp::McpRefusal;
use crate::clock::now;
use crate::consent::ConsentMode;
use crate::oauth::bearer::BearerError;
use crate::oauth::token_format::ACCESS_PREFIX;
use crate::oauth::{DEFAULT_SCOPE, Scopes, TokenHash, mint_secret};
use crate::store::{NewPersonalGrant, Store, TempDir};
use crate::vault::Vault;

const CONFIG: &str = "[servers.alpha]\ncommand = \"does-not-exist\"\n";

async fn gateway(dir: &std::path::Path) -> Gateway {
    let config = crate::config::parse(&dir.join("config.toml"), CONFIG).unwrap();
    let store = Store::open(dir).await.unwrap();
    Gateway::new(
        config,
        dir,
        7391,
        store,
        ConsentMode::Page,
        Arc::new(Vault::system()),
    )
}

async fn auth(g: &Gateway, token: &str) -> Result<(), String> {
    match g
        .authenticate("alpha", Some(&format!("Bearer {token}")))
        .await
    {
        Ok(_) => Ok(()),
        Err(McpRefusal::Bearer { error, .. }) => Err(format!("{error:?}")),
        Err(McpRefusal::Internal(e)) => Err(format!("internal: {e}")),
        Err(McpRefusal::UnknownUpstream) => Err("unknown upstream".into()),
        Err(McpRefusal::RemovedUpstream) => Err("removed upstream".into()),
        Err(McpRefusal::RateLimited(_)) => Err("rate limited".into()),
    }
}

/// Stores `token` as a personal token of `alpha`, the way another process would.
async fn store_token(dir: &std::path::Path, token: &str) {
    let store = Store::open(dir).await.unwrap();
    let resource = crate::gateway::Issuer::loopback(7391).resource("alpha");
    store
        .create_personal_grant(&NewPersonalGrant {
            upstream: "alpha",
            resource: &resource,
            scopes: &Scopes::single(DEFAULT_SCOPE),
            label: "t",
            expires_at: None,
            tools: &[],
            token: &TokenHash::of(token),
            now: now(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn made_up_tokens_are_refused_without_a_lookup_and_unknown_ones_are_looked_up_once() {
    let dir = TempDir::new().unwrap();
    let g = gateway(&dir.0).await;
    let issued = g
        .create_personal_token("alpha", "ci", crate::oauth::personal::Expiry::Never, &[])
        .await
        .unwrap()
        .token;
    assert_eq!(auth(&g, &issued).await, Ok(()));
    // Shaped right and checked under this database's key, but never stored.
    let unknown = g.inner.store.token_check().key.mint_access();
    assert_eq!(auth(&g, &unknown).await, Err("InvalidToken".into()));

    g.inner.store.close().await;
    let made_up = [
        "garbage".to_owned(),
        mint_secret(), // a pre-check shape, with no pre-check tokens in this database
        format!("{ACCESS_PREFIX}{}", mint_secret()),
        format!("{ACCESS_PREFIX}{}AAAAAAAA", mint_secret()),
        format!(
            "{}{}",
            &issued[..issued.len() - 1],
            if issued.ends_with('A') { 'B' } else { 'A' }
        ),
    ];
    for t in &made_up {
        assert_eq!(auth(&g, t).await, Err("InvalidToken".into()), "{t}");
    }
    assert!(matches!(
        g.authenticate("alpha", None).await,
        Err(McpRefusal::Bearer {
            error: BearerError::Missing,
            ..
        })
    ));
    // The unknown token's refusal and the issued token's record come from the cache.
    assert_eq!(auth(&g, &unknown).await, Err("InvalidToken".into()));
    assert_eq!(auth(&g, &issued).await, Ok(()));
    // And a fresh checked token does need the database, which is closed.
    let fresh = g.inner.store.token_check().key.mint_access();
    assert!(auth(&g, &fresh).await.unwrap_err().starts_with("internal"));
}

#[tokio::test]
async fn a_token_stored_by_another_process_works_at_once_despite_an_earlier_refusal() {
    let dir = TempDir::new().unwrap();
    let g = gateway(&dir.0).await;
    let token = g.inner.store.token_check().key.mint_personal();
    assert_eq!(auth(&g, &token).await, Err("InvalidToken".into()));
    // Another store on the same directory (the CLI's `tokens create`) stores it.
    store_token(&dir.0, &token).await;
    assert_eq!(auth(&g, &token).await, Ok(()));
    // And revoking it there ends it here at once, although it is cached.
    let other = Store::open(&dir.0).await.unwrap();
    let grant = other.active_grants().await.unwrap()[0].id;
    other.revoke_grant(grant, now()).await.unwrap();
    assert_eq!(auth(&g, &token).await, Err("InvalidToken".into()));
}

#[tokio::test]
async fn tokens_from_before_the_check_work_until_they_expire() {
    let dir = TempDir::new().unwrap();
    let db = dir.0.join(crate::store::DB_FILE);
    let old_access = mint_secret();
    let old_personal = format!("{}{}", crate::oauth::personal::TOKEN_PREFIX, mint_secret());
    {
        // A database as the previous release left it: migrations up to 0003, tokens
        // without a check.
        use sqlx::Connection;
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        let mut m = sqlx::migrate!("src-tauri/migrations");
        m.migrations = Cow::Owned(
            m.migrations
                .iter()
                .filter(|m| m.version <= 3)
                .cloned()
                .collect(),
        );
        m.run(&mut conn).await.unwrap();
        let resource = "http://127.0.0.1:7391/mcp/alpha";
        let t = now();
        for (client, kind, token, expires) in [
            ("c1", "oauth", &old_access, t + 3600),
            (
                crate::oauth::personal::PERSONAL_CLIENT_ID,
                "personal_token",
                &old_personal,
                i64::MAX,
            ),
        ] {
            sqlx::query("INSERT OR IGNORE INTO clients (id, name, auth_method, redirect_uris, metadata, created_at) VALUES (?, 'c', 'none', '[]', '{}', ?)")
                .bind(client).bind(t).execute(&mut conn).await.unwrap();
            let grant: i64 = sqlx::query_scalar("INSERT INTO grants (client_id, upstream, resource, scope, created_at, kind) VALUES (?, 'alpha', ?, 'mcp', ?, ?) RETURNING id")
                .bind(client).bind(resource).bind(t).bind(kind).fetch_one(&mut conn).await.unwrap();
            sqlx::query("INSERT INTO tokens (hash, kind, grant_id, scope, expires_at) VALUES (?, 'access', ?, 'mcp', ?)")
                .bind(TokenHash::of(token).0.as_slice()).bind(grant).bind(expires).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
    }
    let g = gateway(&dir.0).await;
    let w = g.inner.store.token_check().legacy;
    assert!(w.access_until.is_some_and(|u| u > now()));
    assert_eq!(w.personal_until, Some(i64::MAX));
    assert_eq!(auth(&g, &old_access).await, Ok(()));
    assert_eq!(auth(&g, &old_personal).await, Ok(()));
    assert_eq!(auth(&g, &mint_secret()).await, Err("InvalidToken".into()));
    // New tokens carry the check.
    let new = g
        .create_personal_token("alpha", "new", crate::oauth::personal::Expiry::Never, &[])
        .await
        .unwrap()
        .token;
    assert_eq!(new.len(), old_personal.len() + 8);
    assert_eq!(auth(&g, &new).await, Ok(()));
}
