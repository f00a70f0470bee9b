//! One broker per data dir, against the real binary: a second `serve` on a data dir that a
//! broker serves exits 2 naming the first one's pid and address, and a broker that the
//! stdio bridge (`connect`) starts in the background holds the lock it inherited from the
//! bridge (it serves, and a later `serve` is refused) without passing it to its upstreams,
//! and runs in its data dir with the session's environment, not the client app's.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

const CONFIG: &str = r#"
[servers.alpha]
command = "does-not-exist-alpha"
"#;

/// `serve --headless` on this data dir, run to its end (it must refuse at once).
fn second_serve(config: &Path, data_dir: &Path) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(["serve", "--headless", "--port", "0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn second broker");
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("a second broker on the same data dir kept running");
}

#[test]
fn a_second_broker_on_the_same_data_dir_is_refused_naming_the_first() {
    let mut first = Broker::start(CONFIG);
    let cfg = first.dir.path().join("config.toml");
    let out = second_serve(&cfg, &first.data_dir());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("already serves"), "{err}");
    assert!(err.contains(&format!("pid {}", first.child.id())), "{err}");
    assert!(err.contains(&first.base), "{err}");
    assert!(out.stdout.is_empty(), "it printed a ready line");
    // The first one was not disturbed.
    let broker_json = std::fs::read_to_string(first.data_dir().join("broker.json")).unwrap();
    assert!(broker_json.contains(&first.child.id().to_string()));

    // Once the first has stopped, the data dir is free again.
    assert!(first.terminate().success());
    let mut again = Command::new(BIN)
        .args(["serve", "--headless", "--port", "0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(first.data_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(again.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = again.kill();
    let _ = again.wait();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
}

/// A broker started in the background by a bridge: SIGTERM (it is in its own session, so
/// nothing else ends it) when the test is over.
pub struct Detached(pub u32);

impl Drop for Detached {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0 as i32, libc::SIGTERM);
        }
    }
}

/// Runs `connect NAME` with no broker running, until the broker it starts has written
/// broker.json; returns that broker's pid. `env` is added to the bridge's environment.
pub fn bridge_starts_broker(
    config: &Path,
    data_dir: &Path,
    home: &Path,
    env: &[(&str, &str)],
) -> Detached {
    let mut bridge = Command::new(BIN)
        .args(["connect", "alpha", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        // No display: the headless broker is the one started.
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("HOME", home)
        .env("BROWSER", "true")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bridge");
    let file = data_dir.join("broker.json");
    let mut pid = None;
    for _ in 0..400 {
        if let Ok(Some(info)) = std::fs::read_to_string(&file)
            .map(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .map(|v| v.and_then(|v| v["pid"].as_u64()))
        {
            pid = Some(info as u32);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = bridge.kill();
    let _ = bridge.wait();
    let log = std::fs::read_to_string(data_dir.join("logs/broker.log")).unwrap_or_default();
    Detached(pid.unwrap_or_else(|| panic!("the bridge started no broker; its log:\n{log}")))
}

/// A port free now: a broker that a bridge starts listens on its config's port.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Whether process `pid` has a descriptor open on `file`.
pub fn holds_open(pid: u32, file: &Path) -> bool {
    let want = std::fs::canonicalize(file).unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).ok() == Some(want.clone()))
        })
        .unwrap_or(false)
}

#[test]
fn a_broker_the_bridge_starts_holds_the_lock_it_inherited() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, format!("[broker]\nport = {}\n{CONFIG}", free_port())).unwrap();
    let data: PathBuf = dir.path().join("data");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let broker = bridge_starts_broker(&cfg, &data, &home, &[]);
    // It serves (it did not refuse its own lock) ...
    assert!(holds_open(broker.0, &data.join("broker.lock")));
    assert_eq!(
        std::fs::read_to_string(data.join("broker.lock")).unwrap(),
        broker.0.to_string()
    );
    // ... and holds the lock after the bridge has gone.
    let out = second_serve(&cfg, &data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("pid {}", broker.0)), "{err}");
}

/// The broker a bridge starts runs in its data dir with the session's environment only: a
/// variable that only the client app (the bridge's parent) set never reaches an upstream
/// the broker starts, PATH does, and the upstream holds no descriptor of the lock.
#[tokio::test]
async fn a_broker_the_bridge_starts_does_not_inherit_the_client_apps_environment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let upstream = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/env_upstream.py");
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nport = {}\n\n[servers.envy]\ncommand = \"python3\"\nargs = [{:?}]\n",
            free_port(),
            upstream.display().to_string()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let broker = bridge_starts_broker(
        &cfg,
        &data,
        &home,
        &[("CLIENT_APP_ONLY_SECRET", "from-the-client-app")],
    );
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", broker.0)).unwrap();
    assert_eq!(cwd, std::fs::canonicalize(&data).unwrap());

    let cfg_s = cfg.display().to_string();
    let data_s = data.display().to_string();
    let out = Command::new(BIN)
        .args(["tokens", "create", "--upstream", "envy", "--label", "t"])
        .args(["--config", &cfg_s, "--data-dir", &data_s])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("broker.json")).unwrap()).unwrap();
    let url = format!("{}/mcp/envy", info["issuer"].as_str().unwrap());
    let mut s = support::session::Session::open(&url, &token).await;
    let env: serde_json::Value =
        serde_json::from_str(&s.tool_text("environ", serde_json::json!({})).await).unwrap();
    let environ = &env["environ"];
    assert_eq!(environ["CLIENT_APP_ONLY_SECRET"], serde_json::Value::Null);
    // The upstream's PATH is the bridge's (python's launcher may put its own dirs first).
    let path = std::env::var("PATH").unwrap();
    assert!(
        environ["PATH"].as_str().unwrap().ends_with(&path),
        "{}",
        environ["PATH"]
    );
    assert_eq!(environ["HOME"].as_str(), home.to_str());
    assert_eq!(environ["MCP_BROKER_LOCK_FD"], serde_json::Value::Null);
    let child = env["pid"].as_u64().unwrap() as u32;
    assert!(!holds_open(child, &data.join("broker.lock")));
}
