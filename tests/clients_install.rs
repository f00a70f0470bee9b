//! `mcp-broker clients install|uninstall` on copies of real-looking client config files:
//! every other entry survives (same values, same order), a second run changes nothing
//! byte for byte, a backup is written, invalid JSON and foreign same-name entries are
//! refused with the file untouched, and uninstall removes only the broker's entries.

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

fn check_client(app: &str, fixture_name: &str, expect: impl Fn(&str) -> Value) {
    let s = setup();
    let file = s.copy(fixture_name, fixture_name);
    let original_bytes = std::fs::read(&file).unwrap();
    let original = parse(&file);

    let o = s.install(app, &file, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let after = parse(&file);
    assert_preserved(&original, &after);
    for name in ["everything", "notes"] {
        assert_eq!(after["mcpServers"][name], expect(name), "{app} {name}");
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
    assert_eq!(mid["mcpServers"]["everything"], expect("everything"));
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
        |name| json!({"command": exe.to_str().unwrap(), "args": ["connect", name]}),
    );
}

#[test]
fn claude_code_gets_http_entries() {
    check_client(
        "claude-code",
        "claude.json",
        |name| json!({"type": "http", "url": format!("http://127.0.0.1:7391/mcp/{name}")}),
    );
}

#[test]
fn cursor_gets_url_entries() {
    check_client(
        "cursor",
        "cursor-mcp.json",
        |name| json!({"url": format!("http://127.0.0.1:7391/mcp/{name}")}),
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
