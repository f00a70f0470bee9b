//! Build script: with the `desktop` feature, tauri-build reads `tauri.conf.json` and the
//! capability files and generates one `allow-<command>` permission per shell command, so
//! `src-tauri/capabilities/` decides which window may call what.

fn main() {
    #[cfg(feature = "desktop")]
    {
        println!("cargo:rerun-if-changed=src-tauri/capabilities");
        tauri_build::try_build(
            tauri_build::Attributes::new()
                .capabilities_path_pattern("src-tauri/capabilities/**/*")
                .app_manifest(tauri_build::AppManifest::new().commands(&[
                    "list_grants",
                    "grant_activity",
                    "list_upstreams",
                    "revoke_grant",
                    "switch_account",
                    "revoke_all_grants",
                    "create_personal_token",
                    "set_secret",
                    "delete_secret",
                    "sign_in_upstream",
                    "sign_out_upstream",
                    "about",
                    "set_start_at_login",
                    "dismiss_start_at_login_offer",
                    "server_form",
                    "add_server",
                    "update_server",
                    "remove_server",
                    "import_sources",
                    "import_preview",
                    "import_servers",
                    "consent_details",
                    "decide_consent",
                    "tool_approval_details",
                    "answer_tool_approval",
                    "grant_tools",
                    "set_tool_choice",
                ])),
        )
        .expect("tauri build script failed");
    }
}
