//! Edges of the authorization server found by trying it as a new user would, against the
//! real binary over real HTTP: a client asking only for scopes the broker does not offer,
//! the consent screen's warning, `refresh_token_expires_in`, and a refresh token issued
//! for an address (port) the broker no longer serves.

mod support;

use serde_json::Value;
use support::*;

const CONFIG: &str = r#"
[servers.alpha]
command = "does-not-exist-alpha"
"#;

#[tokio::test]
async fn only_unoffered_scopes_get_mcp_and_consent_says_what_was_dropped() {
    let b = Broker::start(CONFIG);
    let c = http();
    let reg = register(&c, &b.base, "none").await;
    let (verifier, challenge) = pkce();
    let res = c
        .get(format!("{}/authorize", b.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", reg.client_id.as_str()),
            ("redirect_uri", reg.redirect_uri.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("scope", "openid email profile"),
            ("state", "s"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "a consent page, not an invalid_scope redirect"
    );
    let html = res.text().await.unwrap();
    assert!(
        html.contains("not offered, ignored: email openid profile"),
        "{html}"
    );
    // The warning is there although the redirect stays on this machine.
    assert!(
        html.contains("Approving gives Test &lt;Client&gt; access to the tools of alpha as you"),
        "{html}"
    );
    assert!(!html.contains("which is not on this computer"));
    let consent = Consent {
        consent_id: hidden(&html, "consent_id"),
        csrf: hidden(&html, "csrf_token"),
        html,
    };
    let code = query_param(&decide(&c, &b.base, &consent, "approve").await, "code").unwrap();
    let r = exchange_code(&c, &b.base, &reg, &code, &verifier).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scope"], "mcp");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["refresh_token_expires_in"], 30 * 24 * 3600);
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(access)).await.0,
        400
    );
}

#[tokio::test]
async fn a_refresh_token_for_an_old_address_is_invalid_grant() {
    let mut b = Broker::start(CONFIG);
    let c = http();
    let (reg, t) = authorize(&c, &b.base, "alpha").await;
    let port = b.port;
    let refresh = |base: String, token: String, resource: Option<String>| {
        let id = reg.client_id.clone();
        async move {
            let r = refresh_public(&http(), &base, &id, &token, resource.as_deref()).await;
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let old_resource = b.mcp_url("alpha");
    drop(c);
    assert!(b.terminate().success());
    let dir = std::mem::replace(&mut b.dir, tempfile::tempdir().unwrap());
    drop(b);

    // Same port: the refresh token still works.
    let mut b = Broker::start_in(dir, CONFIG, port);
    let (status, body) = refresh(b.base.clone(), t.refresh.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refresh_token_expires_in"], 30 * 24 * 3600);
    let rotated = body["refresh_token"].as_str().unwrap().to_owned();
    assert!(b.terminate().success());
    let dir = std::mem::replace(&mut b.dir, tempfile::tempdir().unwrap());
    drop(b);

    // Another port, same data dir: refused, with or without `resource`, and nothing
    // was rotated into tokens that could never work.
    let b = Broker::start_in(dir, CONFIG, 0);
    assert_ne!(b.port, port);
    for resource in [None, Some(old_resource.clone()), Some(b.mcp_url("alpha"))] {
        let (status, body) = refresh(b.base.clone(), rotated.clone(), resource.clone()).await;
        assert_eq!(status, 400, "{resource:?}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{resource:?}: {body}");
    }
    let grants: Vec<Value> =
        serde_json::from_slice(&b.cli(&["grants", "list", "--json"]).stdout).unwrap();
    assert_eq!(grants.len(), 1, "refused, not treated as a replay");
}
