//! `mcp-broker autostart on|off|status` and `mcp-broker --version`, run as a person runs
//! them: the real binary, with `XDG_CONFIG_HOME` / `XDG_DATA_HOME` pointing at a fresh
//! directory, checking the XDG autostart entry on disk.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-broker");

fn run(config_home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("XDG_CONFIG_HOME", config_home)
        .env("XDG_DATA_HOME", config_home.join("data"))
        .output()
        .expect("run mcp-broker")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn exec_line(entry: &Path) -> String {
    std::fs::read_to_string(entry)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Exec="))
        .unwrap()
        .to_owned()
}

#[test]
fn autostart_on_writes_the_xdg_entry_and_off_removes_it() {
    let home = tempfile::tempdir().unwrap();
    let entry = home.path().join("autostart/mcp-broker.desktop");

    let s = stdout(&run(home.path(), &["autostart", "status"]));
    assert!(s.starts_with("autostart: off"), "{s}");
    assert!(!entry.exists());

    let s = stdout(&run(home.path(), &["autostart", "on"]));
    assert!(s.starts_with("autostart: on"), "{s}");
    assert!(s.contains(&entry.display().to_string()), "{s}");
    let text = std::fs::read_to_string(&entry).unwrap();
    assert!(
        text.starts_with("[Desktop Entry]\nType=Application\n"),
        "{text}"
    );
    assert_eq!(exec_line(&entry), format!("{BIN} serve --minimized"));
    let s = stdout(&run(home.path(), &["autostart", "status"]));
    assert!(s.starts_with("autostart: on"), "{s}");
    assert!(s.contains(&format!("runs: {BIN} serve --minimized")), "{s}");

    // A data dir with a space is quoted as the Desktop Entry spec says; `on` again
    // replaces the entry.
    let data = home.path().join("my data");
    let s = stdout(&run(
        home.path(),
        &["autostart", "on", "--data-dir", data.to_str().unwrap()],
    ));
    assert!(s.starts_with("autostart: on"), "{s}");
    assert_eq!(
        exec_line(&entry),
        format!("{BIN} serve --minimized --data-dir \"{}\"", data.display())
    );

    let s = stdout(&run(home.path(), &["autostart", "off"]));
    assert!(s.starts_with("autostart: off"), "{s}");
    assert!(!entry.exists());
    // Off when already off is fine; nothing else in the folder is touched.
    std::fs::write(home.path().join("autostart/other.desktop"), "x").unwrap();
    let s = stdout(&run(home.path(), &["autostart", "off"]));
    assert!(s.starts_with("autostart: off"), "{s}");
    assert!(home.path().join("autostart/other.desktop").exists());
}

#[test]
fn autostart_reports_an_entry_it_cannot_write() {
    let home = tempfile::tempdir().unwrap();
    // `autostart` is a file, so the folder cannot be made.
    std::fs::write(home.path().join("autostart"), "").unwrap();
    let o = run(home.path(), &["autostart", "on"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot write") && err.contains("mcp-broker.desktop"),
        "{err}"
    );
}

#[test]
fn version_names_the_cargo_version_and_the_data_dir() {
    let home = tempfile::tempdir().unwrap();
    let s = stdout(&run(home.path(), &["--version"]));
    assert_eq!(
        s,
        format!(
            "mcp-broker {}\ndata dir: {}\n",
            env!("CARGO_PKG_VERSION"),
            home.path().join("data/mcp-broker").display()
        )
    );
}
