//! `config.toml` on real files: a first start with no file (the headless server starts
//! with no upstreams), changes written by the app that keep the person's comments and
//! order and leave the file byte-identical when refused, and the watch that reports hand
//! edits (valid, invalid, by rename, removal) as the loader sees them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mcp_broker::config::ValueSource;
use mcp_broker::config_edit::{self, Draft, EditError, ServerEntry};
use mcp_broker::config_watch::{ConfigWatcher, Reload};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-broker");

const HAND_WRITTEN: &str = r#"# My broker.
[broker]
port = 7391 # fixed, clients saved it

# The one I use every day.
[servers.everything]
command = "npx" # via npm
args = ["-y", "@modelcontextprotocol/server-everything"]

# Work stuff.
[servers.remote]
url = "https://mcp.example.com/mcp"
headers = { "X-Api-Key" = { env = "EXAMPLE_KEY" } }

# Trailing notes stay at the end.
"#;

fn stdio(command: &str, env: &[(&str, ValueSource)]) -> ServerEntry {
    ServerEntry::Stdio {
        command: command.into(),
        args: vec!["--flag".into()],
        cwd: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

#[test]
fn add_replace_remove_keep_comments_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, HAND_WRITTEN).unwrap();

    let c = config_edit::add_server(
        &path,
        "github",
        &stdio(
            "github-mcp-server",
            &[(
                "GITHUB_TOKEN",
                ValueSource::Secret {
                    secret: "gh".into(),
                    prefix: None,
                },
            )],
        ),
    )
    .unwrap();
    assert_eq!(
        c.upstreams
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        ["everything", "github", "remote"],
        "the returned configuration is the file's"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(HAND_WRITTEN.trim_end_matches("# Trailing notes stay at the end.\n")),
        "everything before is untouched:\n{text}"
    );
    assert!(
        text.contains(
            "\n[servers.github]\ncommand = \"github-mcp-server\"\nargs = [\"--flag\"]\nenv = { GITHUB_TOKEN = { secret = \"gh\" } }\n"
        ),
        "{text}"
    );
    assert!(text.contains("# Trailing notes stay at the end."), "{text}");

    // Replace: position, the comment above and the comment beside a kept key survive.
    config_edit::replace_server(
        &path,
        "everything",
        &stdio("npx", &[("DEBUG", ValueSource::Literal("1".into()))]),
    )
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let expected_everything = "# The one I use every day.\n[servers.everything]\ncommand = \"npx\" # via npm\nargs = [\"--flag\"]\nenv = { DEBUG = \"1\" }\n";
    assert!(text.contains(expected_everything), "{text}");
    assert!(
        text.find("[servers.everything]") < text.find("[servers.remote]"),
        "order kept: {text}"
    );

    // Remove: the table and its own comment go, everything else stays.
    config_edit::remove_server(&path, "remote").unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("[servers.remote]") && !text.contains("X-Api-Key"));
    assert!(text.starts_with("# My broker.\n[broker]\nport = 7391 # fixed, clients saved it\n"));
    assert!(text.contains(expected_everything));
    assert!(text.contains("[servers.github]"));
    let c = mcp_broker::config::load(&path).unwrap();
    assert_eq!(c.upstreams.len(), 2);

    // Removing the last servers leaves a valid file with no upstreams.
    config_edit::remove_server(&path, "everything").unwrap();
    let c = config_edit::remove_server(&path, "github").unwrap();
    assert!(c.upstreams.is_empty());
    assert!(
        mcp_broker::config::load(&path)
            .unwrap()
            .upstreams
            .is_empty()
    );
}

#[test]
fn refused_changes_leave_the_file_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, HAND_WRITTEN).unwrap();
    let modified = || std::fs::metadata(&path).unwrap().modified().unwrap();
    let before = modified();

    let bad: Vec<(&str, ServerEntry, &str)> = vec![
        ("Bad Name", stdio("x", &[]), "servers.Bad Name"),
        ("ok", stdio("", &[]), "servers.ok.command"),
        (
            "ok",
            ServerEntry::Remote {
                url: "not a url".into(),
                headers: Default::default(),
                client_id: None,
            },
            "servers.ok.url",
        ),
        (
            "ok",
            stdio(
                "x",
                &[(
                    "K",
                    ValueSource::Secret {
                        secret: "no spaces allowed".into(),
                        prefix: None,
                    },
                )],
            ),
            "servers.ok.env.K",
        ),
    ];
    for (name, entry, key) in bad {
        let e = config_edit::add_server(&path, name, &entry).unwrap_err();
        let EditError::Invalid(ce) = &e else {
            panic!("{name}: {e}")
        };
        assert_eq!(ce.key, key, "{e}");
        assert_eq!(ce.file, path);
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
    let e = config_edit::add_server(&path, "everything", &stdio("x", &[])).unwrap_err();
    assert!(matches!(e, EditError::NameTaken { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("servers.everything: a server with this name already exists")
    );
    let e = config_edit::replace_server(&path, "nope", &stdio("x", &[])).unwrap_err();
    assert!(matches!(e, EditError::NoSuchServer { .. }), "{e}");
    let e = config_edit::remove_server(&path, "nope").unwrap_err();
    assert!(matches!(e, EditError::NoSuchServer { .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), HAND_WRITTEN);
    assert_eq!(modified(), before, "not even rewritten");

    // A hand edit between reading and writing is not undone.
    let mut d = Draft::open(&path).unwrap();
    d.add("new", &stdio("x", &[])).unwrap();
    let edited = format!("{HAND_WRITTEN}# edited by hand meanwhile\n");
    std::fs::write(&path, &edited).unwrap();
    assert!(matches!(
        d.commit(),
        Err(EditError::ChangedMeanwhile { .. })
    ));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);

    // A file that is already invalid is not edited further.
    let broken = "[servers.a]\ncommand = 'x'\nbogus = 1\n";
    std::fs::write(&path, broken).unwrap();
    let e = config_edit::add_server(&path, "b", &stdio("y", &[])).unwrap_err();
    assert!(e.to_string().contains("servers.a.bogus"), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
}

#[test]
fn the_first_change_creates_a_private_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcp-broker").join("config.toml");
    let c = mcp_broker::config::load(&path).unwrap();
    assert!(c.upstreams.is_empty());
    config_edit::add_server(&path, "a", &stdio("x", &[])).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[servers.a]\ncommand = \"x\"\nargs = [\"--flag\"]\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Nothing else left in the directory (no temporary files).
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
}

/// Headless `serve` with no configuration file starts, says so once, and serves no
/// upstream; an invalid file still exits 2 naming file, key and reason.
#[test]
fn headless_serve_starts_without_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("none").join("config.toml");
    let log = dir.path().join("serve.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--headless", "--port", "0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first:?}; log: {}", std::fs::read_to_string(&log).unwrap()))
        .to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let r = reqwest::get(format!("{base}/.well-known/oauth-authorization-server"))
            .await
            .unwrap();
        r.status()
    });
    assert!(status.is_success(), "metadata served: {status}");
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains(&format!("no config at {}", config.display()))
            && log.contains("mcp-broker clients import"),
        "{log}"
    );
    assert!(!config.exists(), "starting creates no file");

    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, "[servers.a]\nurl = 'http://example.com/mcp'\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--headless", "--port", "0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "config error in {}: servers.a.url: must be https",
            config.display()
        )),
        "{err}"
    );
}

async fn next(w: &mut ConfigWatcher) -> Reload {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .expect("a reload within 10 s")
        .expect("the watch is running")
}

async fn nothing_within(w: &mut ConfigWatcher, d: Duration) {
    if let Ok(r) = tokio::time::timeout(d, w.next()).await {
        panic!("unexpected reload: {r:?}");
    }
}

/// Writes the way an editor that saves through a temporary file does.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn the_watch_reports_hand_edits_as_the_loader_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conf").join("config.toml");
    // No directory and no file yet: a first start.
    let mut w = ConfigWatcher::start(&path, Duration::from_millis(150)).unwrap();

    // A valid edit: the new configuration.
    std::fs::write(&path, "[servers.a]\ncommand = \"x\"\n").unwrap();
    let c = next(&mut w).await.expect("valid");
    assert_eq!(c.upstreams[0].name, "a");

    // An invalid edit: the loader's error, with file, key and reason.
    std::fs::write(&path, "[servers.a]\ncommand = \"x\"\ncomand = \"y\"\n").unwrap();
    let e = next(&mut w).await.expect_err("invalid");
    assert_eq!(e.file, std::path::absolute(&path).unwrap());
    assert_eq!(e.key, "servers.a.comand");
    assert!(e.reason.contains("unknown field"), "{e}");

    // Fixed, saved through a rename (as editors and config_edit do).
    save_by_rename(
        &path,
        "[servers.a]\ncommand = \"x\"\n[servers.b]\nurl = \"https://b.example/mcp\"\n",
    );
    let c = next(&mut w).await.expect("valid again");
    assert_eq!(c.upstreams.len(), 2);

    // A write of the same text is not a change; an edit by the app is one.
    std::fs::write(
        &path,
        "[servers.a]\ncommand = \"x\"\n[servers.b]\nurl = \"https://b.example/mcp\"\n",
    )
    .unwrap();
    nothing_within(&mut w, Duration::from_millis(1200)).await;
    config_edit::remove_server(&path, "b").unwrap();
    let c = next(&mut w).await.expect("edit by the app");
    assert_eq!(c.upstreams.len(), 1);

    // Other files in the directory are not the configuration.
    std::fs::write(path.with_file_name("notes.txt"), "x").unwrap();
    nothing_within(&mut w, Duration::from_millis(1200)).await;

    // Removing the file is reported, not taken for an empty configuration.
    std::fs::remove_file(&path).unwrap();
    let e = next(&mut w).await.expect_err("removed");
    assert!(e.reason.contains("removed"), "{e}");
}

mod window_saves {
    //! `upstream_edit::save`, as the window calls it: a real `config.toml`, a real
    //! SQLite index, and the in-process keychain (`Vault::memory`; the real keychain is
    //! covered by tests/keychain.rs through the same `secrets` calls).

    use std::sync::Arc;

    use mcp_broker::config::ValueSource;
    use mcp_broker::config_edit::{EditError, ServerEntry};
    use mcp_broker::store::Store;
    use mcp_broker::upstream_edit::{KeychainWrites, SaveError, SaveMode, TypedSecret, save};
    use mcp_broker::vault::{Secret, Vault};

    fn with_secret(url: &str, secret: &str) -> ServerEntry {
        ServerEntry::Remote {
            url: url.into(),
            headers: [(
                "Authorization".to_owned(),
                ValueSource::Secret {
                    secret: secret.into(),
                    prefix: Some("Bearer ".into()),
                },
            )]
            .into(),
            client_id: None,
        }
    }

    fn typed(name: &str, value: &str) -> Vec<TypedSecret> {
        vec![TypedSecret {
            name: name.into(),
            value: Secret::new(value.into()),
        }]
    }

    fn held(vault: &Vault, name: &str) -> Option<String> {
        vault.get(name).unwrap().map(|s| s.expose().clone())
    }

    #[tokio::test]
    async fn a_typed_secret_goes_to_the_keychain_and_the_file_references_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "# mine\n[servers.a]\ncommand = \"x\"\n").unwrap();
        let vault = Arc::new(Vault::memory());
        let store = Store::open(&dir.path().join("data")).await.unwrap();

        // Refused as the loader refuses it: nothing stored, the file as it was.
        let e = save(
            &path,
            "linear",
            &with_secret("http://linear.example/mcp", "linear"),
            SaveMode::Add,
            typed("linear", "lin-first"),
            &vault,
            &store,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&e, SaveError::Config(EditError::Invalid(c)) if c.key == "servers.linear.url"),
            "{e}"
        );
        assert_eq!(held(&vault, "linear"), None);
        let e = save(
            &path,
            "linear",
            &with_secret("https://linear.example/mcp", "linear"),
            SaveMode::Add,
            typed("other", "v"),
            &vault,
            &store,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, SaveError::Unreferenced(ref n) if n == "other"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# mine\n[servers.a]\ncommand = \"x\"\n"
        );
        assert!(store.secret_names().await.unwrap().is_empty());

        let saved = save(
            &path,
            "linear",
            &with_secret("https://linear.example/mcp", "linear"),
            SaveMode::Add,
            typed("linear", "lin-first"),
            &vault,
            &store,
        )
        .await
        .unwrap();
        assert!(saved.index_warning.is_none());
        assert_eq!(saved.config.upstreams.len(), 2);
        assert_eq!(held(&vault, "linear").as_deref(), Some("lin-first"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\n"), "{text}");
        assert!(
            text.contains(
                "headers = { Authorization = { secret = \"linear\", prefix = \"Bearer \" } }"
            ),
            "{text}"
        );
        assert!(!text.contains("lin-first"));
        let names: Vec<String> = store
            .secret_names()
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["linear"]);

        // A new value typed for the same server replaces the old one.
        save(
            &path,
            "linear",
            &with_secret("https://linear.example/v2/mcp", "linear"),
            SaveMode::Replace,
            typed("linear", "lin-second"),
            &vault,
            &store,
        )
        .await
        .unwrap();
        assert_eq!(held(&vault, "linear").as_deref(), Some("lin-second"));
        // Adding the same name again is a clash, and stores nothing.
        let e = save(
            &path,
            "linear",
            &with_secret("https://x.example/mcp", "linear"),
            SaveMode::Add,
            typed("linear", "lin-third"),
            &vault,
            &store,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, SaveError::Config(EditError::NameTaken { .. })),
            "{e}"
        );
        assert_eq!(held(&vault, "linear").as_deref(), Some("lin-second"));
    }

    #[tokio::test]
    async fn keychain_writes_are_taken_back_as_they_were() {
        let vault = Arc::new(Vault::memory());
        vault.set("kept", &Secret::new("old".into())).unwrap();
        let mut w = KeychainWrites::new(&vault);
        w.put("kept", Secret::new("new".into())).await.unwrap();
        w.put("fresh", Secret::new("v".into())).await.unwrap();
        assert_eq!(held(&vault, "kept").as_deref(), Some("new"));
        // A refused write (an empty value) takes back the earlier ones.
        assert!(w.put("empty", Secret::new(String::new())).await.is_err());
        assert_eq!(held(&vault, "kept").as_deref(), Some("old"));
        assert_eq!(held(&vault, "fresh"), None);

        let mut w = KeychainWrites::new(&vault);
        w.put("fresh", Secret::new("v".into())).await.unwrap();
        assert_eq!(w.names().collect::<Vec<_>>(), ["fresh"]);
        assert!(w.undo().await.is_empty());
        assert_eq!(held(&vault, "fresh"), None);
    }
}

/// A config kept elsewhere (a dotfiles repository) and linked into place: edits of the
/// real file are seen, and the app's own writes keep the link.
#[cfg(unix)]
#[tokio::test]
async fn a_symlinked_config_is_watched_and_edited_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("dotfiles").join("mcp-broker.toml");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, "# kept in git\n").unwrap();
    let link = dir.path().join("conf").join("config.toml");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut w = ConfigWatcher::start(&link, Duration::from_millis(150)).unwrap();

    std::fs::write(&real, "# kept in git\n[servers.a]\ncommand = \"x\"\n").unwrap();
    assert_eq!(next(&mut w).await.expect("valid").upstreams.len(), 1);

    config_edit::add_server(&link, "b", &stdio("y", &[])).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .starts_with("# kept in git\n")
    );
    assert_eq!(next(&mut w).await.expect("app edit").upstreams.len(), 2);
}
