//! The desktop windows' TypeScript types (`ui/src/api.ts`) are written by hand; this test
//! holds them to what the core serializes, so a renamed field fails here and not in a
//! window at runtime.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::GrantView;
use super::about::About;
use super::activity::GrantActivity;
use super::personal::CreatedToken;
use super::servers::{
    Applied, FormTransport, FormValue, ImportCandidate, ImportSource, ImportedView, ServerForm,
    ValueKind,
};
use super::tools::{GrantToolsView, ToolApprovalView, ToolView};
use super::upstreams::{AccountSignIn, Overview, SecretUse, SignInView, UpstreamView};
use crate::client_apps::import::{PlanView, SecretView, ServerView, SkippedView};
use crate::consent::{ConsentTool, ConsentView};
use crate::oauth::GrantId;
use crate::secrets::{SecretEntry, SecretStatus};
use crate::store::ToolRow;
use crate::store::activity::{ActivityRow, TargetCount};
use crate::store::{GrantKind, GrantSummary};
use crate::tool_policy::diff::definition_diff;
use crate::tool_policy::{ToolChoice, ToolDefinition, ToolStatus};

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
        tools: vec![ConsentTool {
            tool: ToolDefinition::of(&json!({"name": "t"})).unwrap(),
            choice: ToolChoice::Ask,
        }],
        tools_error: None,
        accounts: vec!["a".into()],
        suggested_account: None,
    };
    assert_eq!(keys(json!(view)), ts_fields("ConsentView"));
    assert_eq!(keys(json!(view.tools[0])), ts_fields("ConsentTool"));
    let approval = ToolApprovalView {
        grant_id: GrantId(1),
        client_name: "c".into(),
        upstream: "u".into(),
        tool: "t".into(),
        arguments: "{}".into(),
        timeout_secs: 50,
    };
    assert_eq!(keys(json!(approval)), ts_fields("ToolApprovalView"));
    let tools = GrantToolsView {
        grant_id: GrantId(1),
        client_name: "c".into(),
        upstream: "u".into(),
        pinned: true,
        tools: vec![ToolView {
            row: ToolRow {
                name: "t".into(),
                choice: ToolChoice::Allow,
                status: ToolStatus::Changed,
                definition: Some("{}".into()),
                served_definition: Some("{}".into()),
                allowed_until: None,
            },
            diff: definition_diff(Some("{}"), "{\"a\":1}"),
        }],
    };
    assert_eq!(keys(json!(tools)), ts_fields("GrantToolsView"));
    assert_eq!(keys(json!(tools.tools[0])), ts_fields("ToolView"));
    assert_eq!(keys(json!(tools.tools[0].diff[0])), ts_fields("DiffLine"));
    assert_eq!(json!(tools.tools[0])["status"], "changed");
    let secret_use = SecretUse {
        name: "s".into(),
        place: "env X".into(),
        account: Some("work".into()),
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
    let row = ActivityRow::default();
    assert_eq!(keys(json!(row)), ts_fields("ActivityRow"));
    let count = TargetCount {
        name: "t".into(),
        calls: 1,
        errors: 0,
    };
    assert_eq!(keys(json!(count)), ts_fields("TargetCount"));
    let detail = GrantActivity {
        grant_id: GrantId(1),
        calls: vec![],
        next_before: None,
        counts: vec![],
        errors: vec![],
        last_used_ms: None,
        history: vec![],
    };
    assert_eq!(keys(json!(detail)), ts_fields("GrantActivity"));
}

#[test]
fn the_server_and_import_types_match_too() {
    let value = FormValue {
        key: "K".into(),
        kind: ValueKind::Secret,
        value: String::new(),
        secret: "s".into(),
        prefix: String::new(),
    };
    assert_eq!(keys(json!(value)), ts_fields("FormValue"));
    assert!(API_TS.contains(r#"export type ValueKind = "literal" | "env" | "secret";"#));
    assert_eq!(json!(ValueKind::Env), "env");
    let form = ServerForm {
        name: "n".into(),
        transport: FormTransport::Remote,
        command: String::new(),
        args: vec![],
        cwd: String::new(),
        url: "https://x".into(),
        client_id: String::new(),
        values: vec![value],
    };
    assert_eq!(keys(json!(form)), ts_fields("ServerForm"));
    assert!(API_TS.contains(r#"export type FormTransport = "stdio" | "remote";"#));
    assert_eq!(json!(FormTransport::Remote), "remote");
    // The window sends the form back as it got it.
    let back: ServerForm = serde_json::from_value(json!(form)).unwrap();
    assert_eq!(back, form);
    let applied = Applied {
        added: vec![],
        changed: vec![],
        removed: vec![],
        restart_needed: false,
        warning: None,
    };
    assert_eq!(keys(json!(applied)), ts_fields("Applied"));
    let candidate = ImportCandidate {
        key: "k".into(),
        what: "stdio, runs x".into(),
        importable: true,
    };
    assert_eq!(keys(json!(candidate)), ts_fields("ImportCandidate"));
    let source = ImportSource {
        client: "cursor".into(),
        display_name: "Cursor".into(),
        file: "f".into(),
        found: true,
        error: None,
        servers: vec![candidate],
    };
    assert_eq!(keys(json!(source)), ts_fields("ImportSource"));
    let secret = SecretView {
        secret: "s".into(),
        place: "env K".into(),
        because: "its name".into(),
    };
    assert_eq!(keys(json!(secret)), ts_fields("PlanSecret"));
    let server = ServerView {
        client_key: "k".into(),
        name: "n".into(),
        what: "w".into(),
        secrets: vec![secret],
        warnings: vec![],
    };
    assert_eq!(keys(json!(server)), ts_fields("PlanServer"));
    let skipped = SkippedView {
        client_key: "k".into(),
        reason: "r".into(),
    };
    assert_eq!(keys(json!(skipped)), ts_fields("PlanSkipped"));
    let plan = PlanView {
        client: "Cursor".into(),
        servers: vec![server],
        skipped: vec![skipped],
    };
    assert_eq!(keys(json!(plan)), ts_fields("PlanView"));
    let imported = ImportedView {
        servers: vec![],
        secrets: vec![],
        client_file: "f".into(),
        backup: "b".into(),
        applied,
    };
    assert_eq!(keys(json!(imported)), ts_fields("ImportedView"));
}
