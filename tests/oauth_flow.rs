//! The authorization server end to end, over real HTTP on 127.0.0.1:0 against the real
//! binary, with a real SQLite file: discovery, registration, consent, tokens,
//! revocation, the grants CLI, the Host/Origin guard, persistence and shutdown.

mod support;

use support::*;

/// Two upstreams that are never started: these tests only need the resources.
const CONFIG: &str = r#"
[servers.alpha]
command = "does-not-exist-alpha"
[servers.beta]
command = "does-not-exist-beta"
"#;

#[tokio::test]
async fn discovery_documents_and_challenge() {
    let b = Broker::start(CONFIG);
    let c = http();
    let asm: serde_json::Value = c
        .get(format!("{}/.well-known/oauth-authorization-server", b.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let prm: serde_json::Value = c
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp/alpha",
            b.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asm["issuer"], b.base.as_str());
    assert_eq!(prm["authorization_servers"][0], asm["issuer"]);
    assert_eq!(prm["resource"], b.mcp_url("alpha"));
    assert_eq!(prm["scopes_supported"], serde_json::json!(["mcp"]));
    assert_eq!(
        asm["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    let missing = c
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp/nope",
            b.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The scope a call needs, so that a client asks for just that (MCP 2026-07-28
    // basic/authorization §Scope Selection Strategy).
    let expected = format!(
        "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp/alpha\", scope=\"mcp\"",
        b.base
    );
    let (status, www) = mcp_status(&c, &b.mcp_url("alpha"), None).await;
    assert_eq!((status, www.as_str()), (401, expected.as_str()));
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let res = c
            .request(method.clone(), b.mcp_url("alpha"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{method}");
        assert_eq!(res.headers()["www-authenticate"], expected.as_str());
    }
    let (status, www) = mcp_status(&c, &b.mcp_url("alpha"), Some("not-a-real-token")).await;
    assert_eq!(status, 401);
    assert!(
        www.contains("error=\"invalid_token\"") && www.ends_with(", scope=\"mcp\""),
        "{www}"
    );
}

#[tokio::test]
async fn registration_rules() {
    let b = Broker::start(CONFIG);
    let c = http();
    let post = |body: serde_json::Value| c.post(format!("{}/register", b.base)).json(&body).send();

    let r = post(serde_json::json!({"redirect_uris": ["http://[::1]:9/cb"], "token_endpoint_auth_method": "none", "software_id": "x"})).await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["client_id"].is_string() && v.get("client_secret").is_none() && v["software_id"] == "x"
    );

    for method in ["client_secret_post", "client_secret_basic"] {
        let v: serde_json::Value = post(serde_json::json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": method}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            v["client_secret"].as_str().is_some_and(|s| s.len() >= 43),
            "{method}: {v}"
        );
    }

    let long = format!("https://a.example/{}", "x".repeat(490));
    let eleven: Vec<String> = (0..11).map(|i| format!("http://127.0.0.1/{i}")).collect();
    for (body, code) in [
        (
            serde_json::json!({"redirect_uris": ["http://example.com/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": [long]}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": eleven}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "tls_client_auth"}),
            "invalid_client_metadata",
        ),
    ] {
        let r = post(body.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], code, "{body}");
    }
    let r = c
        .post(format!("{}/register", b.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn authorize_errors_never_redirect_to_unverified_uris() {
    let b = Broker::start(CONFIG);
    let c = http();
    let reg = register(&c, &b.base, "none").await;
    let (_, challenge) = pkce();
    let base_q = |client: &str, redirect: &str| {
        vec![
            ("response_type".to_owned(), "code".to_owned()),
            ("client_id".to_owned(), client.to_owned()),
            ("redirect_uri".to_owned(), redirect.to_owned()),
            ("code_challenge".to_owned(), challenge.clone()),
            ("code_challenge_method".to_owned(), "S256".to_owned()),
            ("state".to_owned(), "s1".to_owned()),
            ("resource".to_owned(), b.mcp_url("alpha")),
        ]
    };
    // Unknown client, unregistered redirect: an error page, no Location.
    for q in [
        base_q("nobody", &reg.redirect_uri),
        base_q(&reg.client_id, "http://127.0.0.1:4567/other"),
        base_q(&reg.client_id, "https://evil.example/callback"),
    ] {
        let r = c
            .get(format!("{}/authorize", b.base))
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{q:?}");
        assert!(r.headers().get("location").is_none());
        assert_eq!(r.headers()["x-frame-options"], "DENY");
    }
    // Loopback redirect on another port is the same registered URI (RFC 8252 §7.3).
    let q = base_q(&reg.client_id, "http://127.0.0.1:9999/callback");
    let r = c
        .get(format!("{}/authorize", b.base))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Errors the client should hear about: 302 with error, state and iss.
    let mut plain = base_q(&reg.client_id, &reg.redirect_uri);
    plain[4].1 = "plain".into();
    let mut wrong_resource = base_q(&reg.client_id, &reg.redirect_uri);
    wrong_resource[6].1 = format!("{}/mcp/gamma", b.base);
    let mut no_resource = base_q(&reg.client_id, &reg.redirect_uri);
    no_resource.pop(); // two upstreams configured: resource is required
    for (q, code) in [
        (plain, "invalid_request"),
        (wrong_resource, "invalid_target"),
        (no_resource, "invalid_target"),
    ] {
        let r = c
            .get(format!("{}/authorize", b.base))
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(loc.starts_with(&reg.redirect_uri), "{loc}");
        assert_eq!(query_param(&loc, "error").as_deref(), Some(code), "{loc}");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("s1"));
        assert_eq!(query_param(&loc, "iss").as_deref(), Some(b.base.as_str()));
    }
}

#[tokio::test]
async fn consent_page_is_escaped_framed_and_single_use() {
    let b = Broker::start(CONFIG);
    let c = http();
    let reg = register(&c, &b.base, "none").await;
    let (_, challenge) = pkce();
    let consent = open_consent(
        &c,
        &b.base,
        &reg,
        &challenge,
        Some(&b.mcp_url("beta")),
        "xyz",
    )
    .await;
    assert!(
        consent.html.contains("Test &lt;Client&gt;"),
        "client name must be escaped"
    );
    assert!(!consent.html.contains("Test <Client>"));
    assert!(
        consent.html.contains("127.0.0.1:4567"),
        "redirect host shown"
    );
    assert!(
        consent.html.contains(">mcp<") || consent.html.contains("mcp</dd>"),
        "scope shown"
    );
    assert!(consent.html.contains(">Approve</button>") && consent.html.contains(">Deny</button>"));

    // A wrong CSRF token is refused and burns the question.
    let bad = Consent {
        csrf: "wrong".into(),
        ..consent
    };
    let r = c
        .post(format!("{}/authorize/consent", b.base))
        .form(&[
            ("consent_id", bad.consent_id.as_str()),
            ("csrf_token", "wrong"),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{}/authorize/consent", b.base))
        .form(&[
            ("consent_id", bad.consent_id.as_str()),
            (
                "csrf_token",
                bad.html
                    .split("csrf_token\" value=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap(),
            ),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "the question is gone after a bad token");

    // A cross-origin form post is refused (403 by the guard).
    let consent = open_consent(
        &c,
        &b.base,
        &reg,
        &challenge,
        Some(&b.mcp_url("beta")),
        "xyz",
    )
    .await;
    let r = c
        .post(format!("{}/authorize/consent", b.base))
        .header("origin", "http://localhost:1234")
        .form(&[
            ("consent_id", consent.consent_id.as_str()),
            ("csrf_token", consent.csrf.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Deny: access_denied, same state, iss; no grant. Then the form cannot be replayed.
    let loc = decide(&c, &b.base, &consent, "deny").await;
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&loc, "state").as_deref(), Some("xyz"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(b.base.as_str()));
    assert!(query_param(&loc, "code").is_none());
    let again = c
        .post(format!("{}/authorize/consent", b.base))
        .form(&[
            ("consent_id", consent.consent_id.as_str()),
            ("csrf_token", consent.csrf.as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    let out = b.cli(&["grants", "list", "--json"]);
    let grants: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(grants, serde_json::json!([]));
}

#[tokio::test]
async fn code_exchange_refresh_rotation_and_replay() {
    let b = Broker::start(CONFIG);
    let c = http();
    let reg = register(&c, &b.base, "none").await;
    let (verifier, challenge) = pkce();
    let resource = b.mcp_url("alpha");
    let consent = open_consent(&c, &b.base, &reg, &challenge, Some(&resource), "st").await;
    let loc = decide(&c, &b.base, &consent, "approve").await;
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(b.base.as_str()));
    let code = query_param(&loc, "code").unwrap();
    let exchange = |code: String, verifier: String| {
        c.post(format!("{}/token", b.base))
            .form(&[
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", reg.redirect_uri.clone()),
                ("client_id", reg.client_id.clone()),
                ("code_verifier", verifier),
                ("resource", resource.clone()),
            ])
            .send()
    };
    let r = exchange(code.clone(), verifier.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3600);
    assert_eq!(t["scope"], "mcp");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(&access)).await.0,
        400,
        "token accepted"
    );
    assert_eq!(
        mcp_status(&c, &b.mcp_url("beta"), Some(&access)).await.0,
        401,
        "audience is alpha only"
    );

    // The database holds no token in the clear.
    let db = std::fs::read(b.data_dir().join("broker.db")).unwrap();
    let wal = std::fs::read(b.data_dir().join("broker.db-wal")).unwrap_or_default();
    for secret in [&access, &refresh, &code] {
        assert!(
            !contains(&db, secret.as_bytes()) && !contains(&wal, secret.as_bytes()),
            "secret stored in clear"
        );
    }

    // Refresh rotates; the new pair works; the old refresh token is a replay.
    let refresh_with = |rt: String| {
        c.post(format!("{}/token", b.base))
            .form(&[
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", rt),
                ("client_id", reg.client_id.clone()),
                ("resource", resource.clone()),
            ])
            .send()
    };
    let t2: serde_json::Value = refresh_with(refresh.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access2 = t2["access_token"].as_str().unwrap().to_owned();
    let refresh2 = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(&access2)).await.0,
        400
    );
    let replay = refresh_with(refresh.clone()).await.unwrap();
    assert_eq!(replay.status(), 400);
    let e: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(e["error"], "invalid_grant");
    // Reuse detection revoked the grant: the newest tokens are dead too.
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(&access2)).await.0,
        401
    );
    let e: serde_json::Value = refresh_with(refresh2).await.unwrap().json().await.unwrap();
    assert_eq!(e["error"], "invalid_grant");
}

#[tokio::test]
async fn replayed_code_and_bad_verifier() {
    let b = Broker::start(CONFIG);
    let c = http();
    let reg = register(&c, &b.base, "none").await;
    let (verifier, challenge) = pkce();
    let resource = b.mcp_url("alpha");
    let form = |code: &str, verifier: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", reg.redirect_uri.clone()),
            ("client_id", reg.client_id.clone()),
            ("code_verifier", verifier.to_owned()),
        ]
    };
    // Wrong verifier: invalid_grant, and the code is burnt.
    let consent = open_consent(&c, &b.base, &reg, &challenge, Some(&resource), "a").await;
    let code = query_param(&decide(&c, &b.base, &consent, "approve").await, "code").unwrap();
    let wrong = format!("w{}", "y".repeat(50));
    let e: serde_json::Value = post_token(&c, &b.base, &form(&code, &wrong))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(e["error"], "invalid_grant");

    // A fresh code, used twice: the second use fails and revokes the first's tokens.
    let consent = open_consent(&c, &b.base, &reg, &challenge, Some(&resource), "b").await;
    let code = query_param(&decide(&c, &b.base, &consent, "approve").await, "code").unwrap();
    let t: serde_json::Value = post_token(&c, &b.base, &form(&code, &verifier))
        .await
        .json()
        .await
        .unwrap();
    let access = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(&access)).await.0,
        400
    );
    let r = post_token(&c, &b.base, &form(&code, &verifier)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(&access)).await.0,
        401
    );

    // Token endpoint input errors are RFC 6749 JSON.
    let r = c
        .post(format!("{}/token", b.base))
        .body("grant_type=password")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no client authentication");
    let r = post_token(
        &c,
        &b.base,
        &[
            ("grant_type", "password"),
            ("client_id", reg.client_id.as_str()),
        ],
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let r = c
        .post(format!("{}/token", b.base))
        .json(&serde_json::json!({"grant_type": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn confidential_clients_authenticate() {
    let b = Broker::start(CONFIG);
    let c = http();
    for method in ["client_secret_basic", "client_secret_post"] {
        let reg = register(&c, &b.base, method).await;
        let secret = reg.client_secret.clone().unwrap();
        let (verifier, challenge) = pkce();
        let consent = open_consent(
            &c,
            &b.base,
            &reg,
            &challenge,
            Some(&b.mcp_url("alpha")),
            "s",
        )
        .await;
        let code = query_param(&decide(&c, &b.base, &consent, "approve").await, "code").unwrap();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &reg.redirect_uri),
            ("code_verifier", &verifier),
        ];
        // Wrong secret first: 401 invalid_client, and the code is still unused.
        let r = c
            .post(format!("{}/token", b.base))
            .basic_auth(&reg.client_id, Some("nope"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "invalid_client"
        );
        let r = if method == "client_secret_basic" {
            c.post(format!("{}/token", b.base))
                .basic_auth(&reg.client_id, Some(&secret))
                .form(&form)
                .send()
                .await
                .unwrap()
        } else {
            let mut f = form.to_vec();
            f.push(("client_id", &reg.client_id));
            f.push(("client_secret", &secret));
            post_token(&c, &b.base, &f).await
        };
        assert_eq!(r.status(), 200, "{method}");
    }
}

#[tokio::test]
async fn revocation_endpoint_and_cli_take_effect_at_once() {
    let b = Broker::start(CONFIG);
    let c = http();
    let (reg, t) = authorize(&c, &b.base, "alpha").await;
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(&t.access)).await.0,
        400
    );

    // RFC 7009: a token of another client is ignored (200), an unknown one too.
    let other = register(&c, &b.base, "none").await;
    for (client, token) in [
        (&other.client_id, &t.access),
        (&reg.client_id, &"unknown".to_owned()),
    ] {
        let r = c
            .post(format!("{}/revoke", b.base))
            .form(&[("token", token.as_str()), ("client_id", client.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(&t.access)).await.0,
        400
    );
    let r = c
        .post(format!("{}/revoke", b.base))
        .form(&[
            ("token", t.access.as_str()),
            ("client_id", reg.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(&t.access)).await.0,
        401
    );

    // The CLI, while the server runs.
    let (reg2, t2) = authorize(&c, &b.base, "beta").await;
    let out = b.cli(&["grants", "list", "--json"]);
    assert!(out.status.success());
    let grants: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let grants = grants.as_array().unwrap();
    assert_eq!(grants.len(), 1, "the revoked grant is gone: {grants:?}");
    assert_eq!(grants[0]["client_id"], reg2.client_id.as_str());
    assert_eq!(grants[0]["client_name"], "Test <Client>");
    assert_eq!(grants[0]["upstream"], "beta");
    assert_eq!(grants[0]["scope"], "mcp");
    let id = grants[0]["id"].to_string();
    let text = String::from_utf8(b.cli(&["grants", "list"]).stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{id}\t{}", reg2.client_id))),
        "{text}"
    );

    let out = b.cli(&["grants", "revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        mcp_status(&c, &b.mcp_url("beta"), Some(&t2.access)).await.0,
        401,
        "next request after CLI revoke"
    );
    let r = post_token(
        &c,
        &b.base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", t2.refresh.as_str()),
            ("client_id", reg2.client_id.as_str()),
        ],
    )
    .await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    let out = b.cli(&["grants", "revoke", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no active grant"));
    let out = b.cli(&["grants", "revoke", "abc"]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn host_and_origin_guard_and_cors_scope() {
    let b = Broker::start(CONFIG);
    let c = http();
    let url = format!("{}/.well-known/oauth-authorization-server", b.base);
    for host in [
        "evil.example",
        &format!("evil.example:{}", b.port),
        "127.0.0.1:1",
        "localhost",
    ] {
        let r = c.get(&url).header("host", host).send().await.unwrap();
        assert!(r.status().is_client_error(), "Host {host}: {}", r.status());
    }
    let r = c
        .get(&url)
        .header("host", format!("localhost:{}", b.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for path in [
        "/.well-known/oauth-authorization-server",
        "/mcp/alpha",
        "/authorize",
        "/token",
    ] {
        let r = c
            .get(format!("{}{path}", b.base))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    // Loopback browser clients get CORS on the API, never on /authorize.
    let r = c
        .get(&url)
        .header("origin", "http://localhost:6274")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:6274"
    );
    // An MCP client in a browser: preflight, then the headers it may read.
    let pre = c
        .request(reqwest::Method::OPTIONS, format!("{}/mcp/alpha", b.base))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, mcp-session-id",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "http://localhost:6274"
    );
    let allowed = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("mcp-session-id"), "{allowed}");
    let r = c
        .post(format!("{}/mcp/alpha", b.base))
        .header("origin", "http://localhost:6274")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:6274"
    );
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
    // Without an Origin there is no CORS, but caches still learn the answer varies by it.
    let r = c
        .post(format!("{}/mcp/alpha", b.base))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let vary: Vec<_> = r.headers().get_all("vary").iter().collect();
    assert!(
        vary.iter().any(|v| v.to_str().unwrap().contains("origin")),
        "{vary:?}"
    );
    let pre = c
        .request(reqwest::Method::OPTIONS, format!("{}/authorize", b.base))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    let r = c
        .get(format!("{}/authorize", b.base))
        .header("origin", "http://localhost:6274")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn grants_survive_restart_on_same_port_and_die_on_another() {
    let mut b = Broker::start(CONFIG);
    let c = http();
    let (_, t) = authorize(&c, &b.base, "alpha").await;
    let port = b.port;
    assert!(b.terminate().success(), "SIGTERM exits cleanly");
    let dir = std::mem::replace(&mut b.dir, tempfile::tempdir().unwrap());
    drop(b);

    let b = Broker::start_in(dir, CONFIG, port);
    // A fresh client: the pooled connection went down with the old process.
    let c = http();
    assert_eq!(b.port, port);
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(&t.access)).await.0,
        400,
        "token survives a restart"
    );
    let mut b2 = b;
    b2.terminate();
    let dir = std::mem::replace(&mut b2.dir, tempfile::tempdir().unwrap());
    drop(b2);
    let b = Broker::start_in(dir, CONFIG, 0);
    let c = http();
    assert_ne!(b.port, port);
    assert_eq!(
        mcp_status(&c, &b.mcp_url("alpha"), Some(&t.access)).await.0,
        401,
        "another port is another resource"
    );
}

/// The broker's own sign-in to a remote upstream uses a configured `client_id` instead of
/// registering, and carries PKCE S256, `resource` and the loopback callback; only the CLI
/// (no `Origin`) may start it.
#[tokio::test]
async fn upstream_sign_in_uses_a_configured_client_id() {
    let b = Broker::start(CONFIG);
    let a = Broker::start(&format!(
        "[servers.p]\nurl = \"{}/mcp/alpha\"\nclient_id = \"hand-registered\"\n",
        b.base
    ));
    let c = http();
    let res = c
        .post(format!("{}/upstream-login/p", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    let au = url::Url::parse(body["authorize_url"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = au.query_pairs().into_owned().collect();
    assert_eq!(
        format!("{}{}", au.origin().ascii_serialization(), au.path()),
        format!("{}/authorize", b.base)
    );
    assert_eq!(q["client_id"], "hand-registered");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["resource"], format!("{}/mcp/alpha", b.base));
    assert_eq!(q["redirect_uri"], format!("{}/upstream-callback/p", a.base));
    assert!(q["state"].len() >= 22 && q["code_challenge"].len() == 43);

    // A web page cannot start a sign-in, and only remote upstreams have one.
    let res = c
        .post(format!("{}/upstream-login/p", a.base))
        .header("origin", &a.base)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = c
        .post(format!("{}/upstream-login/alpha", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // A callback with an unknown state changes nothing.
    let res = c
        .get(format!(
            "{}/upstream-callback/p?code=x&state=forged",
            a.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[test]
fn bad_config_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for (body, needle) in [
        ("[servers.Bad]\ncommand = 'x'\n", "servers.Bad"),
        ("[servers.a]\nurl = 'ftp://x'\n", "servers.a.url"),
        ("[servers.a\n", "line 1"),
    ] {
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, body).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["serve", "--headless", "--port", "0", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{body}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("c.toml") && err.contains(needle), "{err}");
    }
    // A file that exists but cannot be read (here: a directory) is an error too. A
    // missing file is a first start instead (tests/config_files.rs).
    let out = std::process::Command::new(BIN)
        .args(["serve", "--headless", "--port", "0", "--config"])
        .arg(dir.path())
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&dir.path().display().to_string()) && err.contains("cannot read file"),
        "{err}"
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
