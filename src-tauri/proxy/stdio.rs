//! A stdio upstream: one child process per MCP session, newline-delimited JSON-RPC on
//! its stdin and stdout (MCP transport spec, "stdio"), stderr appended to a log file
//! per upstream in the data dir. The broker writes that log, not the child: when the disk
//! is full, log lines are lost but the server, which might exit on a failed write to its
//! stderr, keeps running.
//!
//! The child gets an explicit environment (PATH, HOME, locale and temp settings, and the
//! configured `env`), never the broker's whole environment: the broker's own secrets
//! must not leak into every MCP server (design §6). A child that exits, writes something
//! that is not JSON-RPC, or stops answering ends its session only.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

use super::link::{Inbound, Inbox};
use super::message::{Message, cancelled_notification, parse_one, to_single_line};
use crate::events::GatewayEvent;
use crate::vault::Secret;

/// A line longer than this is treated as garbage (a runaway child).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Variables passed through from the broker's environment, besides `PATH` and `HOME`,
/// because programs misbehave without them. Nothing secret lives in these.
const PASS_THROUGH: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    // Windows needs these to start most programs at all.
    "SYSTEMROOT",
    "WINDIR",
    "PATHEXT",
    "TEMP",
    "TMP",
    "USERPROFILE",
    "APPDATA",
    "LOCALAPPDATA",
    "PROGRAMDATA",
    "PROGRAMFILES",
    "COMSPEC",
];

pub struct StdioLink {
    tx: mpsc::Sender<Bytes>,
    inbox: Inbox,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    exited: watch::Receiver<bool>,
}

pub struct Spawn<'a> {
    pub command: &'a str,
    pub args: &'a [String],
    pub env: BTreeMap<String, Secret<String>>,
    pub cwd: Option<&'a Path>,
    pub log_file: Option<std::fs::File>,
    pub events: tokio::sync::broadcast::Sender<GatewayEvent>,
    /// For the log and the desktop's "last error".
    pub upstream: &'a str,
    pub session: &'a str,
}

impl StdioLink {
    pub fn spawn(spec: Spawn<'_>, inbox: Inbox) -> std::io::Result<StdioLink> {
        let mut cmd = Command::new(spec.command);
        cmd.args(spec.args).env_clear();
        for k in PASS_THROUGH {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v.expose())));
        if let Some(d) = spec.cwd {
            cmd.current_dir(d);
        }
        // Its own process group, so that stopping it also stops what it started: a
        // wrapper (`npx`, `uvx`, a shell) whose own children would otherwise keep the
        // server's pipes, and the broker's tasks reading them, alive.
        #[cfg(unix)]
        cmd.process_group(0);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if spec.log_file.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            // If the broker dies without cleaning up (SIGKILL), the kernel ends the child.
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("child has no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("child has no stdout"))?;

        let mut readers = Vec::with_capacity(2);
        if let (Some(stderr), Some(log)) = (child.stderr.take(), spec.log_file) {
            readers.push(tokio::spawn(keep_log(
                stderr,
                log,
                spec.upstream.to_owned(),
            )));
        }
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        tokio::spawn(write_loop(stdin, rx));
        let (stop_tx, stop_rx) = oneshot::channel();
        let (exited_tx, exited_rx) = watch::channel(false);
        let names = Names {
            upstream: spec.upstream.to_owned(),
            session: spec.session.to_owned(),
        };
        readers.push(tokio::spawn(read_loop(
            stdout,
            inbox.clone(),
            names.clone(),
        )));
        tokio::spawn(wait_loop(
            Watched {
                pid: child.id(),
                child,
                readers,
                inbox: inbox.clone(),
                events: spec.events,
                names,
            },
            stop_rx,
            exited_tx,
        ));
        Ok(StdioLink {
            tx,
            inbox,
            stop: Mutex::new(Some(stop_tx)),
            exited: exited_rx,
        })
    }

    pub async fn send(&self, msg: &Message) {
        // A child that stops reading its stdin fills the pipe; that is a hang.
        let why = match tokio::time::timeout(Duration::from_secs(30), self.tx.send(line(&msg.raw)))
            .await
        {
            Ok(Ok(())) => return,
            Ok(Err(_)) => "the upstream MCP server is not running",
            Err(_) => "the upstream MCP server stopped reading its input",
        };
        let _ = self.inbox.send(Inbound::Failed(why.into()));
    }

    /// Tells the child the broker gave up on request `id`. Best effort: when its input
    /// is full, the child is busy enough that the note would come too late anyway.
    pub fn notify_cancelled(&self, id: &str, reason: &str) {
        let _ = self.tx.try_send(line(&cancelled_notification(id, reason)));
    }

    /// Asks the child to stop (SIGTERM, stdin closed), kills it after a grace period,
    /// and waits until it is gone.
    pub async fn shutdown(&self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
        let mut exited = self.exited.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), exited.wait_for(|e| *e)).await;
    }
}

/// One message as one line: the stdio transport's framing.
fn line(raw: &Bytes) -> Bytes {
    let mut line = Vec::with_capacity(raw.len() + 1);
    line.extend_from_slice(&to_single_line(raw));
    line.push(b'\n');
    Bytes::from(line)
}

/// Which session a child serves, for the log.
#[derive(Clone)]
struct Names {
    upstream: String,
    session: String,
}

/// Appends the child's stderr to its log until the child closes it. Lines that cannot be
/// written (a full disk) are dropped, with one warning per spell of failures.
async fn keep_log(mut stderr: tokio::process::ChildStderr, log: std::fs::File, upstream: String) {
    use tokio::io::AsyncReadExt;
    let mut log = tokio::fs::File::from_std(log);
    let mut buf = vec![0u8; 16 * 1024];
    let mut failing = false;
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let written = match log.write_all(&buf[..n]).await {
            Ok(()) => log.flush().await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(
                    upstream,
                    "cannot write the upstream log, dropping its lines: {e}"
                );
            }
            Err(_) => {}
        }
    }
}

async fn write_loop(mut stdin: tokio::process::ChildStdin, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(line) = rx.recv().await {
        // One write per message: the line and its newline together.
        if stdin.write_all(&line).await.is_err() {
            break;
        }
    }
}

async fn read_loop(stdout: tokio::process::ChildStdout, inbox: Inbox, names: Names) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match read_line(&mut reader, &mut line).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                let _ = inbox.send(Inbound::Failed(format!(
                    "the upstream MCP server's output could not be read: {e}"
                )));
                return;
            }
        }
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let sent = match parse_one(Bytes::copy_from_slice(trimmed)) {
            Ok(msg) => inbox.send(Inbound::Message(msg)),
            Err(_) => {
                tracing::warn!(upstream = %names.upstream, session = %names.session, "upstream wrote a line that is not JSON-RPC; ending the session");
                let _ = inbox.send(Inbound::Failed(
                    "the upstream MCP server wrote invalid JSON-RPC".into(),
                ));
                return;
            }
        };
        if sent.is_err() {
            // The session is gone.
            return;
        }
    }
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(out.len());
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                out.extend_from_slice(&buf[..=i]);
                r.consume(i + 1);
                return Ok(out.len());
            }
            None => {
                let n = buf.len();
                out.extend_from_slice(buf);
                r.consume(n);
            }
        }
        if out.len() > MAX_LINE {
            return Err(std::io::Error::other("a message longer than 64 MiB"));
        }
    }
}

/// A running child and the tasks reading its output.
struct Watched {
    child: Child,
    /// Also its process group's id; kept because `Child::id` forgets it once reaped.
    pid: Option<u32>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    inbox: Inbox,
    events: tokio::sync::broadcast::Sender<GatewayEvent>,
    names: Names,
}

/// How long the output of a child that is gone may still be read.
const DRAIN: Duration = Duration::from_secs(2);

async fn wait_loop(mut w: Watched, stop: oneshot::Receiver<()>, exited: watch::Sender<bool>) {
    tokio::select! {
        status = w.child.wait() => {
            // Exiting on its own (not asked to stop): the session fails.
            let why = match status {
                Ok(st) => format!("the upstream MCP server exited ({st})"),
                Err(e) => format!("the upstream MCP server could not be watched: {e}"),
            };
            tracing::warn!(upstream = %w.names.upstream, session = %w.names.session, "{why}");
            let _ = w.events.send(GatewayEvent::UpstreamFailed { upstream: w.names.upstream.clone(), reason: why.clone() });
            let _ = w.inbox.send(Inbound::Failed(why));
        }
        _ = stop => {
            terminate(&mut w.child, w.pid).await;
        }
    }
    // Whatever the child started goes with it.
    #[cfg(unix)]
    if let Some(pid) = w.pid {
        // SAFETY: signalling the process group our own child led; the group id cannot
        // be reused while any member is left.
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    let _ = exited.send(true);
    // Its last words are read; a pipe someone else still holds is not waited for.
    for mut reader in w.readers {
        if tokio::time::timeout(DRAIN, &mut reader).await.is_err() {
            reader.abort();
        }
    }
}

/// SIGTERM to the child's process group, then SIGKILL to the child after a grace period.
async fn terminate(child: &mut Child, pid: Option<u32>) {
    #[cfg(not(unix))]
    let _ = pid;
    #[cfg(unix)]
    if let Some(pid) = pid {
        // SAFETY: signalling the process group our own child leads.
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(2), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}
