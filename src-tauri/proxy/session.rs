//! One MCP session: the client-facing streams and the routing of upstream messages.
//!
//! Every POST that carries requests gets a stream; its responses go back on it, and so do
//! progress notifications whose token belongs to one of its requests. Other upstream
//! notifications and requests (sampling, elicitation, roots) go to the newest POST
//! stream still waiting for an answer, else to the standalone GET stream, else they
//! wait in that stream's buffer until a GET arrives. Each event carries an id
//! `STREAM-SEQ` and the last events of every stream are kept, so a client that lost a
//! stream resumes it with `Last-Event-ID` (MCP transport spec, "Resumability").

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::link::Link;
use super::message::{IdKey, Kind, Message, error_response};
use crate::oauth::GrantId;

/// Events kept per stream for resumption.
const REPLAY_EVENTS: usize = 512;
/// The standalone stream is stream 0.
const STANDALONE: u64 = 0;
/// Finished POST streams stay resumable for this long.
const DONE_STREAM_TTL: Duration = Duration::from_secs(120);

/// JSON-RPC error codes the broker itself produces.
pub const UPSTREAM_ERROR: i64 = -32603;
pub const REQUEST_TIMEOUT: i64 = -32001;

/// One SSE event for the client.
#[derive(Debug, Clone)]
pub struct SseItem {
    /// The stream and the event's place in it; the SSE id is `STREAM-SEQ`, formatted only
    /// when the event goes out as SSE (most answers go back as plain JSON).
    pub stream: u64,
    pub seq: u64,
    pub data: Bytes,
    /// The final response to a request (lets a single-request POST answer as JSON).
    pub response: bool,
}

struct Stream {
    next_seq: u64,
    buffer: VecDeque<(u64, Bytes)>,
    live: Option<mpsc::UnboundedSender<SseItem>>,
    /// Highest seq handed to a live connection.
    handed: u64,
    /// Requests on this stream still waiting for their response.
    pending: usize,
    done_at: Option<Instant>,
}

impl Stream {
    fn new(pending: usize) -> Stream {
        Stream {
            next_seq: 1,
            buffer: VecDeque::new(),
            live: None,
            handed: 0,
            pending,
            done_at: None,
        }
    }
}

struct Pending {
    stream: u64,
    deadline: Instant,
    progress: Option<Box<str>>,
}

#[derive(Default)]
struct State {
    streams: HashMap<u64, Stream>,
    next_stream: u64,
    pending: HashMap<IdKey, Pending>,
    progress: HashMap<Box<str>, IdKey>,
    /// POST streams with unanswered requests, oldest first.
    open_posts: Vec<u64>,
}

/// Why a session ended.
#[derive(Debug, Clone)]
pub enum EndReason {
    /// The client sent DELETE, or the session sat idle.
    Closed,
    /// The grant was revoked: streams close without an error; the next request gets 401.
    Revoked,
    /// The upstream died, hung or misbehaved: pending requests get this error.
    Failed(String),
}

pub struct Session {
    pub id: String,
    pub upstream: String,
    pub grant: GrantId,
    pub link: OnceLock<Link>,
    state: Mutex<State>,
    last_active: Mutex<Instant>,
    closed: AtomicBool,
    request_timeout: Duration,
    /// The `MCP-Protocol-Version` the client negotiated, for HTTP upstreams.
    pub protocol_version: Mutex<Option<String>>,
}

impl Session {
    pub fn new(id: String, upstream: String, grant: GrantId, request_timeout: Duration) -> Session {
        let mut state = State {
            next_stream: 1,
            ..State::default()
        };
        state.streams.insert(STANDALONE, Stream::new(0));
        Session {
            id,
            upstream,
            grant,
            link: OnceLock::new(),
            state: Mutex::new(state),
            last_active: Mutex::new(Instant::now()),
            closed: AtomicBool::new(false),
            request_timeout,
            protocol_version: Mutex::new(None),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    pub fn idle_for(&self) -> Duration {
        self.last_active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    /// Opens the stream for a POST carrying `requests`; returns its id and receiver.
    /// Fails if a request id is already in flight (ids must be unique per session).
    pub fn open_post_stream(
        &self,
        requests: &[&Message],
    ) -> Result<(u64, mpsc::UnboundedReceiver<SseItem>), IdKey> {
        let mut st = self.state();
        for m in requests {
            if let Kind::Request { id, .. } = &m.kind
                && st.pending.contains_key(id)
            {
                return Err(id.clone());
            }
        }
        let sid = st.next_stream;
        st.next_stream += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut stream = Stream::new(requests.len());
        stream.live = Some(tx);
        st.streams.insert(sid, stream);
        st.open_posts.push(sid);
        let deadline = Instant::now() + self.request_timeout;
        for m in requests {
            if let Kind::Request { id, .. } = &m.kind {
                if let Some(t) = &m.progress_token {
                    st.progress.insert(t.clone(), id.clone());
                }
                st.pending.insert(
                    id.clone(),
                    Pending {
                        stream: sid,
                        deadline,
                        progress: m.progress_token.clone(),
                    },
                );
            }
        }
        Ok((sid, rx))
    }

    /// Forgets a stream whose single response went back as plain JSON.
    pub fn drop_stream(&self, sid: u64) {
        if sid != STANDALONE {
            self.state().streams.remove(&sid);
        }
    }

    /// Routes one message from the upstream to the right client stream.
    pub fn route(&self, msg: Message) {
        let mut st = self.state();
        match &msg.kind {
            Kind::Response { id } => {
                let Some(p) = st.pending.remove(id) else {
                    tracing::debug!(session = %self.id, "dropping a response to an unknown request id");
                    return;
                };
                if let Some(t) = &p.progress {
                    st.progress.remove(t);
                }
                deliver(&mut st, p.stream, msg.raw, true);
                finish_one(&mut st, p.stream);
            }
            Kind::Notification { method } if method == "notifications/progress" => {
                let target = msg
                    .progress_token
                    .as_ref()
                    .and_then(|t| st.progress.get(t))
                    .cloned();
                let stream = target.and_then(|id| {
                    let p = st.pending.get_mut(&id)?;
                    // Progress shows the upstream is alive: extend the deadline.
                    p.deadline = Instant::now() + self.request_timeout;
                    Some(p.stream)
                });
                let stream = stream.unwrap_or_else(|| fallback_stream(&st));
                deliver(&mut st, stream, msg.raw, false);
            }
            _ => {
                let stream = fallback_stream(&st);
                deliver(&mut st, stream, msg.raw, false);
            }
        }
    }

    /// The client cancelled one of its requests: no response will come for it.
    pub fn cancel(&self, id: &str) {
        let mut st = self.state();
        if let Some(p) = st.pending.remove(id) {
            if let Some(t) = &p.progress {
                st.progress.remove(t);
            }
            finish_one(&mut st, p.stream);
        }
    }

    /// Attaches a GET to the standalone stream, handing over what waited for it.
    pub fn attach_standalone(&self) -> Option<mpsc::UnboundedReceiver<SseItem>> {
        let mut st = self.state();
        let s = st.streams.get_mut(&STANDALONE)?;
        if s.live.as_ref().is_some_and(|l| !l.is_closed()) {
            return None;
        }
        let from = s.handed;
        Some(attach(s, STANDALONE, from))
    }

    /// Resumes stream `sid` after event `seq` (a `Last-Event-ID`).
    pub fn resume(&self, sid: u64, seq: u64) -> Option<mpsc::UnboundedReceiver<SseItem>> {
        let mut st = self.state();
        let s = st.streams.get_mut(&sid)?;
        if s.buffer.front().is_some_and(|(first, _)| *first > seq + 1) {
            // Events were dropped from the buffer: cannot resume faithfully.
            return None;
        }
        if let Some(old) = s.live.take() {
            drop(old);
        }
        Some(attach(s, sid, seq))
    }

    /// Requests past their deadline; each gets an error, and the upstream is told.
    pub fn expire(&self, now: Instant) -> Vec<IdKey> {
        let mut st = self.state();
        let late: Vec<IdKey> = st
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &late {
            if let Some(p) = st.pending.remove(id) {
                if let Some(t) = &p.progress {
                    st.progress.remove(t);
                }
                let err = error_response(
                    Some(id),
                    REQUEST_TIMEOUT,
                    "the upstream MCP server did not answer in time",
                );
                deliver(&mut st, p.stream, err, true);
                finish_one(&mut st, p.stream);
            }
        }
        st.streams.retain(|sid, s| {
            *sid == STANDALONE || s.done_at.is_none_or(|t| t.elapsed() < DONE_STREAM_TTL)
        });
        late
    }

    /// Ends the session: pending requests get an error (unless revoked), streams close.
    pub fn end(&self, reason: &EndReason) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut st = self.state();
        if let EndReason::Failed(why) = reason {
            let ids: Vec<IdKey> = st.pending.keys().cloned().collect();
            for id in ids {
                if let Some(p) = st.pending.remove(&id) {
                    let err = error_response(Some(&id), UPSTREAM_ERROR, why);
                    deliver(&mut st, p.stream, err, true);
                }
            }
        }
        st.pending.clear();
        st.progress.clear();
        for s in st.streams.values_mut() {
            s.live = None;
        }
    }

    pub fn pending_count(&self) -> usize {
        self.state().pending.len()
    }
}

fn attach(s: &mut Stream, sid: u64, after: u64) -> mpsc::UnboundedReceiver<SseItem> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (seq, data) in s.buffer.iter().filter(|(seq, _)| *seq > after) {
        let _ = tx.send(SseItem {
            stream: sid,
            seq: *seq,
            data: data.clone(),
            response: false,
        });
        s.handed = s.handed.max(*seq);
    }
    // A finished POST stream closes after the replay.
    if sid == STANDALONE || s.pending > 0 {
        s.live = Some(tx);
    }
    rx
}

fn fallback_stream(st: &State) -> u64 {
    st.open_posts
        .iter()
        .rev()
        .copied()
        .find(|sid| {
            st.streams
                .get(sid)
                .is_some_and(|s| s.live.as_ref().is_some_and(|l| !l.is_closed()))
        })
        .or_else(|| {
            let standalone = st.streams.get(&STANDALONE)?;
            standalone
                .live
                .as_ref()
                .filter(|l| !l.is_closed())
                .map(|_| STANDALONE)
        })
        .or_else(|| st.open_posts.last().copied())
        .unwrap_or(STANDALONE)
}

fn deliver(st: &mut State, sid: u64, data: Bytes, response: bool) {
    let Some(s) = st.streams.get_mut(&sid) else {
        return;
    };
    let seq = s.next_seq;
    s.next_seq += 1;
    s.buffer.push_back((seq, data.clone()));
    if s.buffer.len() > REPLAY_EVENTS {
        s.buffer.pop_front();
    }
    if let Some(live) = &s.live {
        if live
            .send(SseItem {
                stream: sid,
                seq,
                data,
                response,
            })
            .is_ok()
        {
            s.handed = seq;
        } else {
            // The client went away; keep buffering for a resume.
            s.live = None;
        }
    }
}

fn finish_one(st: &mut State, sid: u64) {
    let Some(s) = st.streams.get_mut(&sid) else {
        return;
    };
    s.pending = s.pending.saturating_sub(1);
    if s.pending == 0 && sid != STANDALONE {
        s.done_at = Some(Instant::now());
        s.live = None;
        st.open_posts.retain(|x| *x != sid);
    }
}
