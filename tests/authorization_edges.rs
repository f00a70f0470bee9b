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

/// The authorization server's metadata, and a protected resource's.
async fn metadata(c: &reqwest::Client, base: &str, upstream: &str) -> (Value, Value) {
    let get = |url: String| {
        let c = c.clone();
        async move {
            c.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    (
        get(format!("{base}/.well-known/oauth-authorization-server")).await,
        get(format!(
            "{base}/.well-known/oauth-protected-resource/mcp/{upstream}"
        ))
        .await,
    )
}

/// RFC 9207 §2 on every error redirect of /authorize, byte for byte the metadata's
/// `issuer` (MCP 2026-07-28 basic/authorization §Authorization Response Validation: a
/// client that finds another string ignores even the `error`).
#[tokio::test]
async fn every_error_redirect_carries_the_issuer_of_the_metadata() {
    let b = Broker::start(CONFIG);
    let c = http();
    let (asm, prm) = metadata(&c, &b.base, "alpha").await;
    let issuer = asm["issuer"].as_str().unwrap().to_owned();
    assert_eq!(prm["authorization_servers"], serde_json::json!([issuer]));
    assert!(!issuer.ends_with('/'), "{issuer}");
    assert_eq!(asm["authorization_response_iss_parameter_supported"], true);

    let reg = register(&c, &b.base, "none").await;
    let (_, challenge) = pkce();
    let good = vec![
        ("response_type", "code".to_owned()),
        ("client_id", reg.client_id.clone()),
        ("redirect_uri", reg.redirect_uri.clone()),
        ("code_challenge", challenge.clone()),
        ("code_challenge_method", "S256".to_owned()),
        ("state", "st".to_owned()),
    ];
    let with = |k: &'static str, v: Option<&str>| {
        let mut q: Vec<(&str, String)> = good.iter().filter(|(n, _)| *n != k).cloned().collect();
        if let Some(v) = v {
            q.push((k, v.to_owned()));
        }
        q
    };
    let mut repeated = good.clone();
    repeated.push(("code_challenge", challenge.clone()));
    let cases = [
        (
            with("response_type", Some("token")),
            "unsupported_response_type",
        ),
        (with("response_type", None), "invalid_request"),
        (with("code_challenge", None), "invalid_request"),
        (
            with("code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (with("code_challenge", Some("short")), "invalid_request"),
        (with("scope", Some("mcp bad\"scope")), "invalid_scope"),
        (
            with("resource", Some("https://elsewhere.example/mcp")),
            "invalid_target",
        ),
        (repeated, "invalid_request"),
    ];
    for (q, code) in cases {
        let r = c
            .get(format!("{}/authorize", b.base))
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{code}: {q:?}");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(query_param(&loc, "error").as_deref(), Some(code), "{loc}");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("st"), "{loc}");
        assert_eq!(
            query_param(&loc, "iss").as_deref(),
            Some(issuer.as_str()),
            "{loc}"
        );
    }
    // Deny, the error redirect a person causes.
    let consent = open_consent(&c, &b.base, &reg, &challenge, None, "st").await;
    let loc = decide(&c, &b.base, &consent, "deny").await;
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(issuer.as_str()));
}

/// A valid token whose scope does not cover the operation: 403 with a step-up challenge
/// naming the scopes the operation needs (RFC 6750 §3.1; MCP 2026-07-28
/// basic/authorization §Runtime Insufficient Scope Errors), never `offline_access`,
/// which the protected resource metadata does not list either.
#[tokio::test]
async fn a_token_without_the_needed_scope_gets_a_step_up_challenge() {
    let b = Broker::start(CONFIG);
    let c = http();
    let (_, t) = authorize(&c, &b.base, "alpha").await;
    // A token from a time when the grant had other scopes: what a narrower grant looks
    // like from the resource's side.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        b.data_dir().join("broker.db").display()
    ))
    .await
    .unwrap();
    let changed =
        sqlx::query("UPDATE tokens SET scope = 'profile offline_access' WHERE kind = 'access'")
            .execute(&db)
            .await
            .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    db.close().await;

    let prm_url = format!("{}/.well-known/oauth-protected-resource/mcp/alpha", b.base);
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
    ] {
        let r = c
            .post(b.mcp_url("alpha"))
            .bearer_auth(&t.access)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header(
                "mcp-protocol-version",
                if body.contains("2026") {
                    "2026-07-28"
                } else {
                    "2025-11-25"
                },
            )
            .header(
                "mcp-method",
                if body.contains("2026") {
                    "tools/list"
                } else {
                    "initialize"
                },
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{body}");
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains(r#"error="insufficient_scope""#),
            "{challenge}"
        );
        assert!(challenge.contains(r#"scope="mcp""#), "{challenge}");
        assert!(
            challenge.contains(&format!(r#"resource_metadata="{prm_url}""#)),
            "{challenge}"
        );
        assert!(!challenge.contains("offline_access"), "{challenge}");
    }
    // Without a token: 401 naming the scope any call needs.
    let (status, www) = mcp_status(&c, &b.mcp_url("alpha"), None).await;
    assert_eq!(status, 401);
    assert!(
        www.contains(r#"scope="mcp""#) && !www.contains("offline_access"),
        "{www}"
    );
    let (asm, prm) = metadata(&c, &b.base, "alpha").await;
    assert_eq!(prm["scopes_supported"], serde_json::json!(["mcp"]));
    let listed = asm["scopes_supported"].as_array().unwrap();
    assert!(listed.contains(&serde_json::json!("mcp")), "{asm}");
}

/// The same configured port gives the same issuer string after a restart, whatever
/// host name a client uses to reach the broker: metadata, `iss` and tokens agree, and a
/// token from before still works (MCP 2026-07-28 basic/authorization §Authorization
/// Server Binding: a new issuer would make every client register again).
#[tokio::test]
async fn the_issuer_is_the_same_string_after_a_restart() {
    let mut b = Broker::start(CONFIG);
    let c = http();
    let (asm, _) = metadata(&c, &b.base, "alpha").await;
    let issuer = asm["issuer"].as_str().unwrap().to_owned();
    let (reg, t) = authorize(&c, &b.base, "alpha").await;
    let port = b.port;
    assert!(b.terminate().success());
    let dir = std::mem::replace(&mut b.dir, tempfile::tempdir().unwrap());
    drop(b);

    let b = Broker::start_in(dir, CONFIG, port);
    // A new client: the old one's pooled connections went with the old process.
    let c = http();
    let localhost = format!("http://localhost:{port}");
    for base in [b.base.as_str(), localhost.as_str()] {
        let (asm, prm) = metadata(&c, base, "alpha").await;
        assert_eq!(asm["issuer"], issuer.as_str(), "via {base}");
        assert_eq!(
            prm["authorization_servers"][0],
            issuer.as_str(),
            "via {base}"
        );
        assert_eq!(prm["resource"], format!("{issuer}/mcp/alpha"), "via {base}");
    }
    let (_, challenge) = pkce();
    let consent = open_consent(&c, &b.base, &reg, &challenge, None, "s").await;
    let loc = decide(&c, &b.base, &consent, "deny").await;
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(issuer.as_str()));
    let (status, _) = mcp_status(&c, &b.mcp_url("alpha"), Some(&t.access)).await;
    assert_ne!(
        status, 401,
        "the token from before the restart is still good"
    );
}
