//! The desktop windows' TypeScript types (`ui/src/api.ts`) are written by hand; this test
//! holds them to what the core serializes, so a renamed field fails here and not in a
//! window at runtime.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::GrantView;
use super::about::About;
use super::personal::CreatedToken;
use super::upstreams::{AccountSignIn, Overview, SecretUse, SignInView, UpstreamView};
use crate::consent::ConsentView;
use crate::oauth::GrantId;
use crate::secrets::{SecretEntry, SecretStatus};
use crate::store::{GrantKind, GrantSummary};

const API_TS: &str = include_str!("../../ui/src/api.ts");

/// The field names of `export interface NAME { ... }` in api.ts.
fn ts_fields(name: &str) -> BTreeSet<String> {
    let start = API_TS
        .find(&format!("export interface {name} {{"))
        .unwrap_or_else(|| panic!("api.ts has no interface {name}"));
    let body = &API_TS[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find("\n}").unwrap()];
    body.lines()
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.trim().to_owned()))
        .filter(|k| !k.is_empty() && !k.starts_with("//"))
        .collect()
}

fn keys(v: Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn the_window_types_match_what_the_core_serializes() {
    let grant = GrantView {
        grant: GrantSummary {
            id: GrantId(1),
            client_id: "c".into(),
            client_name: "n".into(),
            upstream: "u".into(),
            resource: "r".into(),
            scope: "mcp".into(),
            created_at: 1,
            last_used_at: None,
            kind: GrantKind::PersonalToken,
            label: Some("l".into()),
            expires_at: None,
            tools: None,
            account: Some("work".into()),
        },
        sessions: 0,
        upstream_accounts: vec!["work".into()],
    };
    assert_eq!(keys(json!(grant)), ts_fields("Grant"));
    assert_eq!(json!(grant)["kind"], "personal_token");
    assert!(API_TS.contains(r#"export type GrantKind = "oauth" | "personal_token";"#));
    let created = CreatedToken {
        grant_id: GrantId(1),
        token: "mcpb_pat_x".into(),
        upstream: "u".into(),
        resource: "r".into(),
        label: "l".into(),
        expires_at: Some(2),
    };
    assert_eq!(keys(json!(created)), ts_fields("CreatedToken"));
    let view = ConsentView {
        client_name: "n".into(),
        client_id: "c".into(),
        described_by: None,
        redirect_host: "h".into(),
        redirect_is_loopback: true,
        upstream: "u".into(),
        scope: "mcp".into(),
        ignored_scopes: None,
        access_warning: "w".into(),
        accounts: vec!["a".into()],
        suggested_account: None,
    };
    assert_eq!(keys(json!(view)), ts_fields("ConsentView"));
    let secret_use = SecretUse {
        name: "s".into(),
        place: "env X".into(),
        status: SecretStatus::Stored,
    };
    assert_eq!(keys(json!(secret_use)), ts_fields("SecretUse"));
    let entry = SecretEntry {
        name: "s".into(),
        status: SecretStatus::Missing,
        used_by: vec![],
    };
    assert_eq!(keys(json!(entry)), ts_fields("SecretEntry"));
    let upstream = UpstreamView {
        name: "u".into(),
        endpoint: "stdio: x".into(),
        sessions: 0,
        last_error: None,
        secrets: vec![],
        sign_in: Some(SignInView {
            signed_in: None,
            login: None,
        }),
        account_sign_ins: vec![],
    };
    assert_eq!(keys(json!(upstream)), ts_fields("Upstream"));
    let account = AccountSignIn {
        account: "work".into(),
        sign_in_id: "u:work".into(),
        sign_in: SignInView {
            signed_in: Some(false),
            login: None,
        },
    };
    assert_eq!(keys(json!(account)), ts_fields("AccountSignIn"));
    let about = About {
        version: "0".into(),
        data_dir: "/d".into(),
        config_file: "/c".into(),
        start_at_login: Some(false),
        start_at_login_error: None,
        offer_start_at_login: true,
    };
    assert_eq!(keys(json!(about)), ts_fields("About"));
    let overview = Overview {
        issuer: "http://127.0.0.1:1".into(),
        upstreams: vec![],
        secrets: vec![],
        keychain_error: None,
    };
    assert_eq!(keys(json!(overview)), ts_fields("Overview"));
}
