//! The activity log (issue 12): what each grant did, recorded once, in the core. Every MCP
//! request through a grant ([`Call`], sent by the proxy's sessions), every authorization
//! event (registration, consent, tokens, replay, revocation, sent by `gateway`), every
//! rate-limited request and every error rendered with a [`Reference`].
//!
//! The hot path only does a `try_send` of a small struct on a bounded channel; one writer
//! task, woken once per [`BATCH_WINDOW`] (sooner when [`BATCH_ROWS`] rows wait or a flush
//! does), not once per row, writes what waits into SQLite (`store::activity`), trims by age and row cap ([`Retention`]), and answers
//! [`ActivityLog::flush`] (a clean shutdown flushes before the store closes). A full channel
//! or a failing disk drops log rows — counted, and said once in the log — never a call
//! or a grant. Never a token or a secret: rows carry ids, names and outcomes only.

pub mod redact;
mod reference;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use crate::clock::now_ms;
use crate::oauth::GrantId;
use crate::store::Store;
use crate::store::activity::ActivityRow;

pub use reference::Reference;

/// Rows waiting for the writer; beyond this, rows are dropped (and counted).
const QUEUE: usize = 8192;
/// A batch is written after this long, or at [`BATCH_ROWS`], whichever comes first.
pub const BATCH_WINDOW: Duration = Duration::from_millis(200);
pub const BATCH_ROWS: usize = 256;
/// How often the writer trims old rows.
const TRIM_EVERY: Duration = Duration::from_secs(600);

/// How long rows are kept, and how many at most (the oldest go first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_rows: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            max_age: Duration::from_secs(90 * 24 * 3600),
            max_rows: 1_000_000,
        }
    }
}

/// How an MCP request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The upstream answered with a JSON-RPC error (its code).
    Error(i64),
    /// A `tools/call` answered with a result that says `"isError": true` (MCP: the tool
    /// ran and failed, as opposed to a protocol error).
    ToolError,
    /// The broker refused it (its JSON-RPC code): a repeated id, no session, bad input.
    Refused(i64),
    /// The upstream could not be reached, died, or misbehaved.
    UpstreamFailed,
    /// The upstream did not answer within `request_timeout_secs`.
    Timeout,
    /// The client cancelled it, or went away before the answer.
    Cancelled,
    /// Over `[broker] mcp_rate`.
    RateLimited,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error(_) => "error",
            Outcome::ToolError => "tool_error",
            Outcome::Refused(_) => "refused",
            Outcome::UpstreamFailed => "upstream_failed",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::RateLimited => "rate_limited",
        }
    }
    fn code(self) -> Option<i64> {
        match self {
            Outcome::Error(c) | Outcome::Refused(c) => Some(c),
            _ => None,
        }
    }
}

/// One MCP request through a grant, as the proxy reports it.
#[derive(Debug)]
pub struct Call {
    pub at_ms: i64,
    pub grant: GrantId,
    pub upstream: Arc<str>,
    pub method: Box<str>,
    /// `params.name` of tools/call and prompts/get, `params.uri` of resources/read.
    pub target: Option<Box<str>>,
    pub outcome: Outcome,
    pub duration: Duration,
    pub response_bytes: usize,
    pub reference: Option<Reference>,
    /// Redacted arguments, only for an upstream listed in `[broker] log_arguments`.
    pub arguments: Option<String>,
}

impl Call {
    fn into_row(self) -> ActivityRow {
        ActivityRow {
            at_ms: self.at_ms,
            event: "call".into(),
            grant_id: Some(self.grant),
            upstream: Some(self.upstream.to_string()),
            method: Some(self.method.into()),
            target: self.target.map(Into::into),
            outcome: self.outcome.as_str().into(),
            error_code: self.outcome.code(),
            duration_us: Some(self.duration.as_micros().min(i64::MAX as u128) as i64),
            response_bytes: Some(self.response_bytes as i64),
            reference: self.reference.map(|r| r.to_string()),
            detail: self
                .arguments
                .map(|a| serde_json::json!({ "arguments": a }).to_string()),
            ..ActivityRow::default()
        }
    }
}

/// An error the broker rendered, carried in the response's extensions from where it was
/// rendered (`http::response`, `proxy::streamable`) to where it is recorded (the HTTP
/// front, which holds the gateway). It was logged with its reference when rendered.
#[derive(Debug, Clone)]
pub struct ErrorNote {
    pub reference: Reference,
    pub status: u16,
    pub summary: Box<str>,
    /// Set by `/mcp/NAME` once the caller is known: a refused call of this grant.
    pub grant: Option<GrantId>,
    pub upstream: Option<Box<str>>,
}

enum Entry {
    Call(Call),
    Row(ActivityRow),
    Flush(oneshot::Sender<()>),
}

/// The handle every recorder holds; cheap to clone. A disabled log (`[broker]
/// activity_log = false`, or no runtime) records nothing.
#[derive(Clone)]
pub struct ActivityLog {
    tx: Option<mpsc::Sender<Entry>>,
    dropped: Arc<Dropped>,
    /// Ends the writer's window early: a flush waits, or a batch is full.
    wake: Arc<Notify>,
}

#[derive(Default)]
struct Dropped {
    count: AtomicU64,
    said: AtomicBool,
}

impl Dropped {
    fn add(&self, n: u64, why: &str) {
        let total = self.count.fetch_add(n, Ordering::Relaxed) + n;
        if !self.said.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                dropped = total,
                "activity log rows dropped ({why}); calls and grants are unaffected"
            );
        }
    }
}

impl ActivityLog {
    /// Starts the writer over `store`; a log that records nothing when `enabled` is false
    /// or there is no Tokio runtime to run the writer on.
    pub fn start(store: Store, retention: Retention, enabled: bool) -> ActivityLog {
        let runtime = tokio::runtime::Handle::try_current();
        let dropped = Arc::new(Dropped::default());
        let wake = Arc::new(Notify::new());
        let (true, Ok(rt)) = (enabled, runtime) else {
            return ActivityLog {
                tx: None,
                dropped,
                wake,
            };
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        rt.spawn(write(store, rx, retention, dropped.clone(), wake.clone()));
        ActivityLog {
            tx: Some(tx),
            dropped,
            wake,
        }
    }

    /// A log that records nothing.
    pub fn off() -> ActivityLog {
        ActivityLog {
            tx: None,
            dropped: Arc::default(),
            wake: Arc::default(),
        }
    }

    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    fn send(&self, e: Entry) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(e).is_err() {
            self.dropped.add(1, "the writer is behind");
        } else if tx.max_capacity() - tx.capacity() == BATCH_ROWS {
            self.wake.notify_one();
        }
    }

    /// Records an MCP request; never waits.
    pub fn call(&self, c: Call) {
        self.send(Entry::Call(c));
    }

    /// Records an authorization event, a limited request or an error; never waits. The
    /// time is set here when the row has none.
    pub fn record(&self, mut row: ActivityRow) {
        if row.at_ms == 0 {
            row.at_ms = now_ms();
        }
        self.send(Entry::Row(row));
    }

    /// Waits until everything recorded so far is written (or dropped).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Entry::Flush(done)).await.is_ok() {
            self.wake.notify_one();
            let _ = wait.await;
        }
    }

    /// Rows dropped since start (a full queue or a failing disk).
    pub fn dropped(&self) -> u64 {
        self.dropped.count.load(Ordering::Relaxed)
    }
}

/// The one writer: batches, writes, trims. Ends when every handle is gone. It sleeps
/// through a window while rows queue up in the channel, so a busy broker wakes it once
/// per window rather than once per call.
async fn write(
    store: Store,
    mut rx: mpsc::Receiver<Entry>,
    retention: Retention,
    dropped: Arc<Dropped>,
    wake: Arc<Notify>,
) {
    let mut batch: Vec<ActivityRow> = Vec::with_capacity(BATCH_ROWS);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    let mut last_trim: Option<tokio::time::Instant> = None;
    let mut failing = false;
    loop {
        let Some(first) = rx.recv().await else { return };
        if take(first, &mut batch, &mut flushes) {
            tokio::select! {
                () = tokio::time::sleep(BATCH_WINDOW) => {}
                () = wake.notified() => {}
            }
        }
        // Everything queued by now, a flush included, goes in this round.
        while let Ok(e) = rx.try_recv() {
            take(e, &mut batch, &mut flushes);
        }
        for rows in batch.chunks(BATCH_ROWS) {
            match store.insert_activity(rows).await {
                Ok(()) => {
                    if failing {
                        failing = false;
                        tracing::info!("activity log writing again");
                    }
                }
                Err(e) => {
                    if !failing {
                        failing = true;
                        tracing::warn!("cannot write the activity log: {e}");
                    }
                    dropped.add(rows.len() as u64, "the database refused them");
                }
            }
        }
        batch.clear();
        let now = tokio::time::Instant::now();
        if last_trim.is_none_or(|t| now - t >= TRIM_EVERY) {
            last_trim = Some(now);
            trim(&store, retention).await;
        }
        for f in flushes.drain(..) {
            let _ = f.send(());
        }
    }
}

/// Adds an entry; false once a flush is waiting (the batch should be written now).
fn take(e: Entry, batch: &mut Vec<ActivityRow>, flushes: &mut Vec<oneshot::Sender<()>>) -> bool {
    match e {
        Entry::Call(c) => batch.push(c.into_row()),
        Entry::Row(r) => batch.push(r),
        Entry::Flush(f) => {
            flushes.push(f);
            return false;
        }
    }
    true
}

async fn trim(store: &Store, retention: Retention) {
    let cutoff = now_ms() - retention.max_age.as_millis().min(i64::MAX as u128) as i64;
    match store.trim_activity(cutoff, retention.max_rows).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(rows = n, "activity log trimmed"),
        Err(e) => tracing::warn!("cannot trim the activity log: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::activity::ActivityQuery;

    fn call(n: u32) -> Call {
        Call {
            at_ms: now_ms(),
            grant: GrantId(7),
            upstream: Arc::from("up"),
            method: "tools/call".into(),
            target: Some(format!("tool{n}").into()),
            outcome: Outcome::Ok,
            duration: Duration::from_micros(120),
            response_bytes: 42,
            reference: None,
            arguments: None,
        }
    }

    #[tokio::test]
    async fn calls_are_written_in_batches_and_a_flush_writes_everything_queued() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        let log = ActivityLog::start(store.clone(), Retention::default(), true);
        for n in 0..600 {
            log.call(call(n));
        }
        log.flush().await;
        let rows = store
            .activity(&ActivityQuery {
                limit: 1000,
                ..ActivityQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 600);
        assert_eq!(rows[0].target.as_deref(), Some("tool599"));
        assert_eq!(rows[0].duration_us, Some(120));
        assert_eq!(rows[0].response_bytes, Some(42));
        assert_eq!(log.dropped(), 0);
    }

    #[tokio::test]
    async fn retention_trims_by_age_and_by_row_cap_on_start() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        let old = ActivityRow {
            at_ms: now_ms() - 10_000,
            event: "call".into(),
            outcome: "ok".into(),
            ..ActivityRow::default()
        };
        store.insert_activity(&vec![old; 3]).await.unwrap();
        let retention = Retention {
            max_age: Duration::from_secs(5),
            max_rows: 2,
        };
        let log = ActivityLog::start(store.clone(), retention, true);
        for n in 0..4 {
            log.call(call(n));
        }
        log.flush().await;
        // The first batch is followed by a trim: the three old rows went for their age,
        // then the oldest two new ones for the cap.
        let rows = store
            .activity(&ActivityQuery {
                limit: 100,
                ..ActivityQuery::default()
            })
            .await
            .unwrap();
        let targets: Vec<_> = rows.iter().filter_map(|r| r.target.as_deref()).collect();
        assert_eq!(targets, vec!["tool3", "tool2"]);
    }

    #[tokio::test]
    async fn a_disabled_log_records_nothing_and_never_blocks() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        let log = ActivityLog::start(store.clone(), Retention::default(), false);
        log.call(call(1));
        log.flush().await;
        assert!(!log.is_on());
        assert!(
            store
                .activity(&ActivityQuery {
                    limit: 10,
                    ..ActivityQuery::default()
                })
                .await
                .unwrap()
                .is_empty()
        );
    }
}
