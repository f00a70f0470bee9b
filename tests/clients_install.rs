//! `mcp-broker clients install|uninstall` on copies of real-looking client config files:
//! every other entry survives (same values, same order), a second run changes nothing
//! byte for byte, a backup is written, invalid JSON and foreign same-name entries are
//! refused with the file untouched, and uninstall removes only the broker's entries.
//!
//! `clients import` where no keychain is needed: a dry run prints the plan (never a
//! value) and writes nothing; without a terminal and without `--yes` it is refused;
//! invalid JSON and a clashing name are refused with every file untouched; an import
//! with no secrets to move goes all the way. Imports that move keys into the keychain
//! are in tests/keychain.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-broker");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clients")
        .join(name)
}

struct Setup {
    dir: tempfile::TempDir,
    broker_config: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let broker_config = dir.path().join("broker.toml");
    std::fs::write(
        &broker_config,
        "[broker]\nport = 7391\n[servers.everything]\ncommand = \"node\"\n[servers.notes]\nurl = \"https://notes.example.com/mcp\"\n",
    )
    .unwrap();
    Setup { dir, broker_config }
}

impl Setup {
    fn copy(&self, fixture_name: &str, as_name: &str) -> PathBuf {
        let to = self.dir.path().join(as_name);
        std::fs::copy(fixture(fixture_name), &to).unwrap();
        to
    }
    fn run(&self, args: &[&str], client_config: &Path) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--client-config")
            .arg(client_config)
            .env_remove("MCP_BROKER_CLIENT_CONFIG")
            .output()
            .unwrap()
    }
    fn install(&self, app: &str, file: &Path, extra: &[&str]) -> Output {
        let cfg = self.broker_config.to_str().unwrap().to_owned();
        let mut args = vec!["clients", "install", app, "--config", &cfg];
        args.extend_from_slice(extra);
        self.run(&args, file)
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn parse(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

/// Every key of `original` is in `after` with an equal value (apart from `mcpServers`,
/// whose original entries are checked one by one), in the same order.
fn assert_preserved(original: &Value, after: &Value) {
    assert_eq!(keys(original), keys(after)[..keys(original).len()].to_vec());
    for (k, v) in original.as_object().unwrap() {
        if k == "mcpServers" {
            let servers = &after["mcpServers"];
            for (name, entry) in v.as_object().unwrap() {
                assert_eq!(&servers[name], entry, "entry {name} changed");
            }
            let before: Vec<String> = keys(v);
            assert_eq!(
                before,
                keys(servers)[..before.len()].to_vec(),
                "entry order"
            );
        } else {
            assert_eq!(&after[k], v, "key {k} changed");
        }
    }
}

fn check_client(app: &str, fixture_name: &str, expect: impl Fn(&str, &str) -> Value) {
    let s = setup();
    let cfg = s.broker_config.to_str().unwrap();
    let file = s.copy(fixture_name, fixture_name);
    let original_bytes = std::fs::read(&file).unwrap();
    let original = parse(&file);

    let o = s.install(app, &file, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let after = parse(&file);
    assert_preserved(&original, &after);
    for name in ["everything", "notes"] {
        assert_eq!(after["mcpServers"][name], expect(name, cfg), "{app} {name}");
    }
    let backup = file.with_file_name(format!("{fixture_name}.mcp-broker.bak"));
    assert_eq!(std::fs::read(&backup).unwrap(), original_bytes, "backup");

    // Second run: nothing changes, byte for byte, and the backup stays the original.
    let first_bytes = std::fs::read(&file).unwrap();
    let o = s.install(app, &file, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing changed"), "{}", text(&o));
    assert_eq!(std::fs::read(&file).unwrap(), first_bytes);
    assert_eq!(std::fs::read(&backup).unwrap(), original_bytes);

    // Uninstall of one server, then of the rest: the original content comes back.
    let o = s.run(&["clients", "uninstall", app, "--server", "notes"], &file);
    assert!(o.status.success(), "{}", text(&o));
    let mid = parse(&file);
    assert!(mid["mcpServers"].get("notes").is_none());
    assert_eq!(mid["mcpServers"]["everything"], expect("everything", cfg));
    let o = s.run(&["clients", "uninstall", app], &file);
    assert!(o.status.success(), "{}", text(&o));
    let restored = parse(&file);
    assert_eq!(restored, original);
    assert_eq!(keys(&restored), keys(&original));
    assert_eq!(keys(&restored["mcpServers"]), keys(&original["mcpServers"]));
    let o = s.run(&["clients", "uninstall", app], &file);
    assert!(
        o.status.success() && text(&o).contains("nothing changed"),
        "{}",
        text(&o)
    );
}

#[test]
fn claude_desktop_gets_stdio_bridge_entries() {
    let exe = std::fs::canonicalize(BIN).unwrap();
    check_client(
        "claude-desktop",
        "claude_desktop_config.json",
        // check_client passes the broker's --config; the entry carries it on.
        |name, cfg| json!({"command": exe.to_str().unwrap(), "args": ["connect", name, "--config", cfg]}),
    );
}

/// Given `--config` and `--data-dir` (relative, in another working directory), the Claude
/// Desktop entry written into the standard file under HOME passes both on, absolute, so
/// the client's bridge finds (or starts) this broker with these servers.
#[test]
fn claude_desktop_entries_carry_the_config_and_data_dir_given() {
    let s = setup();
    let home = s.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy(&s.broker_config, s.dir.path().join("mine.toml")).unwrap();
    let o = Command::new(BIN)
        .args([
            "clients",
            "install",
            "claude-desktop",
            "--server",
            "everything",
        ])
        .args(["--config", "mine.toml", "--data-dir", "d"])
        .current_dir(s.dir.path())
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("MCP_BROKER_CLIENT_CONFIG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let written = parse(&home.join(".config/Claude/claude_desktop_config.json"));
    let dir = std::fs::canonicalize(s.dir.path()).unwrap();
    assert_eq!(
        written["mcpServers"]["everything"]["args"],
        json!([
            "connect",
            "everything",
            "--data-dir",
            dir.join("d").to_str().unwrap(),
            "--config",
            dir.join("mine.toml").to_str().unwrap()
        ])
    );
    // Uninstall recognises the entry as its own despite the extra arguments.
    let o = Command::new(BIN)
        .args(["clients", "uninstall", "claude-desktop"])
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("MCP_BROKER_CLIENT_CONFIG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let after = parse(&home.join(".config/Claude/claude_desktop_config.json"));
    assert!(after["mcpServers"].get("everything").is_none(), "{after}");
}

#[test]
fn claude_code_gets_http_entries() {
    check_client(
        "claude-code",
        "claude.json",
        |name, _| json!({"type": "http", "url": format!("http://127.0.0.1:7391/mcp/{name}")}),
    );
}

#[test]
fn cursor_gets_url_entries() {
    check_client(
        "cursor",
        "cursor-mcp.json",
        |name, _| json!({"url": format!("http://127.0.0.1:7391/mcp/{name}")}),
    );
}

#[test]
fn invalid_json_is_left_untouched() {
    let s = setup();
    let file = s.copy("broken.json", "mcp.json");
    let before = std::fs::read(&file).unwrap();
    for args in [
        vec![
            "clients",
            "install",
            "cursor",
            "--config",
            s.broker_config.to_str().unwrap(),
        ],
        vec!["clients", "uninstall", "cursor"],
    ] {
        let o = s.run(&args, &file);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("not valid JSON"), "{err}");
        assert!(err.contains("mcp.json"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), before);
    }
    let names: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".bak")), "{names:?}");
}

#[test]
fn a_foreign_entry_of_the_same_name_is_not_overwritten() {
    let s = setup();
    let file = s.dir.path().join("mcp.json");
    let original = r#"{"mcpServers":{"notes":{"command":"npx","args":["-y","mcp-remote","https://notes.example.com/mcp"]}}}"#;
    std::fs::write(&file, original).unwrap();
    let o = s.install("cursor", &file, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("\"notes\""), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    // Limited to the other server, it goes through and leaves "notes" alone.
    let o = s.install("cursor", &file, &["--server", "everything"]);
    assert!(o.status.success(), "{}", text(&o));
    let after = parse(&file);
    assert_eq!(after["mcpServers"]["notes"]["command"], "npx");
    assert_eq!(
        after["mcpServers"]["everything"]["url"],
        "http://127.0.0.1:7391/mcp/everything"
    );
    // Uninstall never touches it.
    let o = s.run(&["clients", "uninstall", "cursor"], &file);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        parse(&file),
        serde_json::from_str::<Value>(original).unwrap()
    );
}

#[test]
fn missing_file_is_created_and_print_writes_nothing() {
    let s = setup();
    let file = s.dir.path().join("sub/dir/.claude.json");
    let o = s.install("claude-code", &file, &["--print", "--server", "notes"]);
    assert!(o.status.success(), "{}", text(&o));
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        printed,
        json!({"mcpServers": {"notes": {"type": "http", "url": "http://127.0.0.1:7391/mcp/notes"}}})
    );
    assert!(!file.exists());

    let o = s.install("claude-code", &file, &["--server", "notes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(parse(&file), printed);

    let o = s.install("claude-code", &file, &["--server", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("no server named \"nope\""),
        "{}",
        text(&o)
    );
}

fn import_fixture(name: &str) -> PathBuf {
    fixture(&format!("import/{name}"))
}

impl Setup {
    fn import(&self, app: &str, file: &Path, extra: &[&str]) -> Output {
        let cfg = self.broker_config.to_str().unwrap().to_owned();
        let data = self.dir.path().join("data");
        let mut args = vec![
            "clients",
            "import",
            app,
            "--config",
            &cfg,
            "--data-dir",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut cmd = Command::new(BIN);
        cmd.args(&args)
            .arg("--client-config")
            .arg(file)
            .env_remove("MCP_BROKER_CLIENT_CONFIG")
            // No keychain: any attempt to use one would fail the import.
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
            .stdin(std::process::Stdio::null());
        cmd.output().unwrap()
    }
}

/// Every file in the temp dir, by name, with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn import_dry_run_shows_the_plan_and_writes_nothing() {
    let s = setup();
    let file = s.dir.path().join("claude_desktop_config.json");
    std::fs::copy(import_fixture("claude_desktop_config.json"), &file).unwrap();
    let before = snapshot(s.dir.path());
    let o = s.import("claude-desktop", &file, &["--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    for expected in [
        "import github (stdio, runs docker)",
        "env GITHUB_PERSONAL_ACCESS_TOKEN -> OS keychain as github.GITHUB_PERSONAL_ACCESS_TOKEN (a secret by its name)",
        "import \"Brave_Search\" as brave-search",
        "env BRAVE_API_KEY -> OS keychain as brave-search.BRAVE_API_KEY",
        "[servers.brave-search]",
        "env = { BRAVE_API_KEY = { secret = \"brave-search.BRAVE_API_KEY\" }, LOG_LEVEL = \"info\" }",
        "\"connect\"",
        "dry run: nothing was written",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in {out}");
    }
    assert!(
        !out.contains("ghp_Fixture") && !out.contains("BSAfixture"),
        "{out}"
    );
    assert_eq!(snapshot(s.dir.path()), before, "nothing written");
    assert!(!s.dir.path().join("data").exists());
}

#[test]
fn import_without_a_terminal_or_yes_is_refused() {
    let s = setup();
    let file = s.dir.path().join("claude.json");
    std::fs::copy(import_fixture("claude.json"), &file).unwrap();
    let before = snapshot(s.dir.path());
    let o = s.import("claude-code", &file, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stdin is not a terminal") && err.contains("--yes"),
        "{err}"
    );
    assert_eq!(snapshot(s.dir.path()), before);
}

#[test]
fn import_refuses_invalid_json_and_clashing_names() {
    let s = setup();
    let file = s.copy("broken.json", "mcp.json");
    let before = snapshot(s.dir.path());
    let o = s.import("cursor", &file, &["--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not valid JSON"), "{}", text(&o));
    assert_eq!(snapshot(s.dir.path()), before);

    // The broker already has "notes"; the client has its own "notes".
    let file = s.dir.path().join("cursor.json");
    std::fs::write(
        &file,
        r#"{"mcpServers": {"notes": {"url": "https://other.example/mcp"}, "nope": {"args": []}}}"#,
    )
    .unwrap();
    let before = snapshot(s.dir.path());
    let o = s.import("cursor", &file, &["--yes"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("a server named \"notes\" is already configured")
            && text(&o).contains("--rename notes=NEW-NAME"),
        "{}",
        text(&o)
    );
    let o = s.import("cursor", &file, &["--yes", "--server", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot be imported"), "{}", text(&o));
    let o = s.import("cursor", &file, &["--yes", "--server", "missing"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("no server named \"missing\""),
        "{}",
        text(&o)
    );
    assert_eq!(snapshot(s.dir.path()), before);

    // Renamed, it goes through (no secret to move, so no keychain needed).
    let o = s.import("cursor", &file, &["--yes", "--rename", "notes=other-notes"]);
    assert!(o.status.success(), "{}", text(&o));
    let after = parse(&file);
    assert_eq!(
        after["mcpServers"]["other-notes"],
        json!({"url": "http://127.0.0.1:7391/mcp/other-notes"})
    );
    assert!(after["mcpServers"].get("notes").is_none());
    assert_eq!(after["mcpServers"]["nope"], json!({"args": []}));
    let c = mcp_broker::config::load(&s.broker_config).unwrap();
    assert!(c.upstream("other-notes").is_some() && c.upstream("notes").is_some());
}

/// The original fixtures hold no plaintext keys: the import needs no keychain, and goes
/// all the way on a first start (no broker config yet).
#[test]
fn import_without_secrets_needs_no_keychain() {
    let s = setup();
    std::fs::remove_file(&s.broker_config).unwrap();
    let file = s.copy("cursor-mcp.json", "mcp.json");
    let original = std::fs::read(&file).unwrap();
    let o = s.import("cursor", &file, &["--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("is not on the broker's PATH") || which_uvx(),
        "warns about uvx: {}",
        text(&o)
    );
    let c = mcp_broker::config::load(&s.broker_config).unwrap();
    assert_eq!(
        c.upstreams
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        ["linear", "time"]
    );
    let after = parse(&file);
    assert_eq!(
        after,
        json!({"mcpServers": {
            "linear": {"url": "http://127.0.0.1:7391/mcp/linear"},
            "time": {"url": "http://127.0.0.1:7391/mcp/time"}
        }})
    );
    // With nothing moved, the backup is the file as it was.
    let backup = s.dir.path().join("mcp.json.mcp-broker.bak");
    assert_eq!(std::fs::read(&backup).unwrap(), original);
}

fn which_uvx() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("uvx").is_file()))
}

#[test]
fn install_with_no_servers_yet_says_what_to_do() {
    let s = setup();
    std::fs::remove_file(&s.broker_config).unwrap();
    let file = s.copy("cursor-mcp.json", "mcp.json");
    let before = std::fs::read(&file).unwrap();
    let o = s.install("cursor", &file, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("no servers in") && text(&o).contains("clients import"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
}
