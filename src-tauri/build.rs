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
                    "revoke_all_grants",
                    "create_personal_token",
                    "set_secret",
                    "delete_secret",
                    "sign_in_upstream",
                    "sign_out_upstream",
                    "consent_details",
                    "decide_consent",
                ])),
        )
        .expect("tauri build script failed");
    }
}
