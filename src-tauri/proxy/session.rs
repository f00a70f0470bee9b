//! One MCP session: the client-facing streams and the routing of upstream messages.
//!
//! Every POST that carries requests gets a stream; its responses go back on it, and so do
//! progress notifications whose token belongs to one of its requests. Other upstream
//! notifications and requests (sampling, elicitation, roots) go to the newest POST
//! stream still waiting for an answer, else to the standalone GET stream, else they
//! wait in that stream's buffer until a GET arrives. Each event carries an id
//! `STREAM-SEQ` and the last events of every stream are kept, so a client that lost a
//! stream resumes it with `Last-Event-ID` (MCP transport spec, "Resumability").
//!
//! Plain state, no I/O: the upstream link feeds [`Session::route`] from its inbox (see
//! `proxy::link`), and every method that needs the time is handed `now`, so the rules
//! below are unit-tested with a fixed clock.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::message::{
    INVALID_REQUEST, IdKey, Kind, Message, REQUEST_TIMEOUT, UPSTREAM_ERROR, error_response,
};
use crate::activity::{ActivityLog, Call, Outcome, Reference, redact};
use crate::clock::now_ms;
use crate::oauth::GrantId;

/// Events kept per stream for resumption.
const REPLAY_EVENTS: usize = 512;
/// The standalone stream is stream 0.
const STANDALONE: u64 = 0;
/// Finished POST streams stay resumable for this long.
const DONE_STREAM_TTL: Duration = Duration::from_secs(120);

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
    /// The HTTP status the upstream refused the request with, for a response that goes
    /// out as plain JSON (none: 200).
    pub status: Option<u16>,
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
    /// A `tools/list`: its answer passes the tool gate first.
    lists_tools: bool,
    /// What the activity log records when it ends (`None` with the log off).
    call: Option<Box<CallStart>>,
}

/// A request on its way, as the activity log will record it.
struct CallStart {
    method: Box<str>,
    target: Option<Box<str>>,
    at_ms: i64,
    started: Instant,
    arguments: Option<String>,
}

/// Where a session reports its requests: the activity log, and what it records.
pub struct CallSink {
    pub log: ActivityLog,
    pub upstream: Arc<str>,
    /// Record `tools/call` arguments, redacted (`[broker] log_arguments`).
    pub arguments: bool,
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
    state: Mutex<State>,
    last_active: Mutex<Instant>,
    closed: AtomicBool,
    request_timeout: Duration,
    activity: Option<CallSink>,
}

/// The stream a POST's answers go out on.
pub struct PostStream {
    pub id: u64,
    pub rx: mpsc::UnboundedReceiver<SseItem>,
    /// Indexes (into the POST's messages) of requests refused at once: their id repeats
    /// one earlier in the same POST or one still in flight, so their answers could not
    /// be told apart. Each got a -32600 on the stream already; none may go upstream.
    pub refused: Vec<usize>,
}

impl Session {
    pub fn new(
        id: String,
        upstream: String,
        grant: GrantId,
        request_timeout: Duration,
        now: Instant,
    ) -> Session {
        let mut state = State {
            next_stream: 1,
            ..State::default()
        };
        state.streams.insert(STANDALONE, Stream::new(0));
        Session {
            id,
            upstream,
            grant,
            state: Mutex::new(state),
            last_active: Mutex::new(now),
            closed: AtomicBool::new(false),
            request_timeout,
            activity: None,
        }
    }

    /// Reports every request's end to the activity log.
    pub fn with_activity(mut self, sink: CallSink) -> Session {
        if sink.log.is_on() {
            self.activity = Some(sink);
        }
        self
    }

    fn call_start(&self, m: &Message, now: Instant) -> Option<Box<CallStart>> {
        let sink = self.activity.as_ref()?;
        let Kind::Request { method, .. } = &m.kind else {
            return None;
        };
        Some(Box::new(CallStart {
            method: method.as_str().into(),
            target: m.target.clone(),
            at_ms: now_ms(),
            started: now,
            arguments: (sink.arguments && method == "tools/call")
                .then(|| redact::arguments(&m.raw))
                .flatten(),
        }))
    }

    /// Records a request's end. Called under the state lock: a `try_send`, no waiting.
    fn record(
        &self,
        call: Option<Box<CallStart>>,
        outcome: Outcome,
        response_bytes: usize,
        reference: Option<Reference>,
        now: Instant,
    ) {
        let (Some(sink), Some(c)) = (&self.activity, call) else {
            return;
        };
        let c = *c;
        sink.log.call(Call {
            at_ms: c.at_ms,
            grant: self.grant,
            upstream: sink.upstream.clone(),
            method: c.method,
            target: c.target,
            outcome,
            duration: now.saturating_duration_since(c.started),
            response_bytes,
            reference,
            arguments: c.arguments,
        });
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn touch(&self, now: Instant) {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    pub fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(*self.last_active.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Opens the stream for a POST and registers its requests. A request whose id is
    /// already pending (earlier in this POST, or from another POST) is refused: its
    /// -32600 goes on the stream at once, so the POST never waits for an answer that
    /// could not be told apart from another.
    pub fn open_post_stream(&self, msgs: &[Message], now: Instant) -> PostStream {
        let mut st = self.state();
        let sid = st.next_stream;
        st.next_stream += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut stream = Stream::new(0);
        stream.live = Some(tx);
        st.streams.insert(sid, stream);
        let deadline = now + self.request_timeout;
        let mut refused = Vec::new();
        let mut accepted = 0;
        for (i, m) in msgs.iter().enumerate() {
            let Kind::Request { id, .. } = &m.kind else {
                continue;
            };
            if st.pending.contains_key(id) {
                refused.push(i);
                continue;
            }
            if let Some(t) = &m.progress_token {
                st.progress.insert(t.clone(), id.clone());
            }
            st.pending.insert(
                id.clone(),
                Pending {
                    stream: sid,
                    deadline,
                    progress: m.progress_token.clone(),
                    lists_tools: m.method() == Some("tools/list"),
                    call: self.call_start(m, now),
                },
            );
            accepted += 1;
        }
        for &i in &refused {
            if let Kind::Request { id, .. } = &msgs[i].kind {
                let reference = Reference::mint();
                tracing::info!(session = %self.id, %reference, "refused a request whose id is already in flight");
                let err = error_response(
                    Some(id),
                    INVALID_REQUEST,
                    "Invalid Request: a request with this id is already in flight",
                    &reference,
                );
                let size = err.len();
                deliver(&mut st, sid, err, true);
                let call = self.call_start(&msgs[i], now);
                self.record(
                    call,
                    Outcome::Refused(INVALID_REQUEST),
                    size,
                    Some(reference),
                    now,
                );
            }
        }
        if let Some(s) = st.streams.get_mut(&sid) {
            s.pending = accepted;
            if accepted == 0 {
                s.done_at = Some(now);
                s.live = None;
            }
        }
        if accepted > 0 {
            st.open_posts.push(sid);
        }
        PostStream {
            id: sid,
            rx,
            refused,
        }
    }

    /// Whether `id` is a pending `tools/list`.
    pub fn answers_tools_list(&self, id: &str) -> bool {
        self.state().pending.get(id).is_some_and(|p| p.lists_tools)
    }

    /// Forgets a stream whose single response went back as plain JSON.
    pub fn drop_stream(&self, sid: u64) {
        if sid != STANDALONE {
            self.state().streams.remove(&sid);
        }
    }

    /// Routes one message from the upstream to the right client stream.
    pub fn route(&self, msg: Message, now: Instant) {
        self.route_with_status(msg, None, now)
    }

    /// [`Session::route`] for a response the upstream gave with an HTTP error `status`.
    pub fn route_with_status(&self, msg: Message, status: Option<u16>, now: Instant) {
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
                let outcome = match msg.error_code {
                    Some(code) => Outcome::Error(code),
                    None if p.call.as_ref().is_some_and(|c| &*c.method == "tools/call")
                        && says_is_error(&msg.raw) =>
                    {
                        Outcome::ToolError
                    }
                    None => Outcome::Ok,
                };
                self.record(p.call, outcome, msg.raw.len(), None, now);
                deliver_with(&mut st, p.stream, msg.raw, true, status);
                finish_one(&mut st, p.stream, now);
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
                    p.deadline = now + self.request_timeout;
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

    /// No response will be relayed for this request any more (the client cancelled it,
    /// or can no longer receive the answer). Returns whether it was pending.
    pub fn cancel(&self, id: &str, now: Instant) -> bool {
        let mut st = self.state();
        let Some(p) = st.pending.remove(id) else {
            return false;
        };
        if let Some(t) = &p.progress {
            st.progress.remove(t);
        }
        self.record(p.call, Outcome::Cancelled, 0, None, now);
        finish_one(&mut st, p.stream, now);
        true
    }

    /// Request `id` is known to be alive (a person is answering it): its deadline starts
    /// over.
    pub fn extend(&self, id: &str, now: Instant) {
        if let Some(p) = self.state().pending.get_mut(id) {
            p.deadline = now + self.request_timeout;
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

    /// Requests past their deadline; each gets an error on its stream. The caller tells
    /// the upstream (or ends the session). Finished streams past their resume window go.
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
                let reference = Reference::mint();
                tracing::warn!(session = %self.id, upstream = %self.upstream, %reference, "the upstream did not answer in time");
                let err = error_response(
                    Some(id),
                    REQUEST_TIMEOUT,
                    "the upstream MCP server did not answer in time",
                    &reference,
                );
                self.record(p.call, Outcome::Timeout, err.len(), Some(reference), now);
                deliver(&mut st, p.stream, err, true);
                finish_one(&mut st, p.stream, now);
            }
        }
        st.streams.retain(|sid, s| {
            *sid == STANDALONE
                || s.done_at
                    .is_none_or(|t| now.saturating_duration_since(t) < DONE_STREAM_TTL)
        });
        late
    }

    /// Ends the session: pending requests get an error (unless revoked), streams close.
    pub fn end(&self, reason: &EndReason) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut st = self.state();
        let now = Instant::now();
        let reference = matches!(reason, EndReason::Failed(_)).then(Reference::mint);
        if let (EndReason::Failed(why), Some(r)) = (reason, &reference)
            && !st.pending.is_empty()
        {
            tracing::warn!(session = %self.id, upstream = %self.upstream, reference = %r, "{why}");
        }
        let ids: Vec<IdKey> = st.pending.keys().cloned().collect();
        for id in ids {
            let Some(p) = st.pending.remove(&id) else {
                continue;
            };
            match (reason, &reference) {
                (EndReason::Failed(why), Some(r)) => {
                    let err = error_response(Some(&id), UPSTREAM_ERROR, why, r);
                    self.record(p.call, Outcome::UpstreamFailed, err.len(), Some(*r), now);
                    deliver(&mut st, p.stream, err, true);
                }
                _ => self.record(p.call, Outcome::Cancelled, 0, None, now),
            }
        }
        st.pending.clear();
        st.progress.clear();
        st.open_posts.clear();
        for s in st.streams.values_mut() {
            s.live = None;
        }
    }

    pub fn pending_count(&self) -> usize {
        self.state().pending.len()
    }
}

/// Whether a tools/call result says `"isError": true`. Only the first and last bytes are
/// looked at, where the SDKs put the flag (before or after `content`), so a large result
/// costs nothing extra; a flag in the middle of a result is missed (logged as ok).
fn says_is_error(raw: &[u8]) -> bool {
    const EDGE: usize = 160;
    let has = |part: &[u8]| {
        part.windows(9).enumerate().any(|(i, w)| {
            w == b"\"isError\"" && {
                let rest = &part[i + 9..];
                let rest = rest.trim_ascii_start();
                rest.strip_prefix(b":")
                    .is_some_and(|r| r.trim_ascii_start().starts_with(b"true"))
            }
        })
    };
    let head = &raw[..raw.len().min(EDGE)];
    let tail = &raw[raw.len().saturating_sub(EDGE)..];
    has(head) || has(tail)
}

fn attach(s: &mut Stream, sid: u64, after: u64) -> mpsc::UnboundedReceiver<SseItem> {
    let (tx, rx) = mpsc::unbounded_channel();
    for (seq, data) in s.buffer.iter().filter(|(seq, _)| *seq > after) {
        let _ = tx.send(SseItem {
            stream: sid,
            seq: *seq,
            data: data.clone(),
            response: false,
            status: None,
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
    deliver_with(st, sid, data, response, None)
}

fn deliver_with(st: &mut State, sid: u64, data: Bytes, response: bool, status: Option<u16>) {
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
                status,
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

fn finish_one(st: &mut State, sid: u64, now: Instant) {
    let Some(s) = st.streams.get_mut(&sid) else {
        return;
    };
    s.pending = s.pending.saturating_sub(1);
    if s.pending == 0 && sid != STANDALONE {
        s.done_at = Some(now);
        s.live = None;
        st.open_posts.retain(|x| *x != sid);
    }
}

#[cfg(test)]
mod tests {
    //! The routing rules with a fixed clock: `T0` plus whole seconds.
    use super::*;
    use crate::proxy::message::parse_one;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    fn msg(s: &str) -> Message {
        parse_one(Bytes::from(s.to_owned())).unwrap()
    }
    fn call(id: &str) -> Message {
        msg(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call"}}"#
        ))
    }
    fn call_with_token(id: &str, token: &str) -> Message {
        msg(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"_meta":{{"progressToken":"{token}"}}}}}}"#
        ))
    }
    fn answer(id: &str) -> Message {
        msg(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#))
    }
    fn progress(token: &str) -> Message {
        msg(&format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":"{token}","progress":1}}}}"#
        ))
    }
    fn notification() -> Message {
        msg(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#)
    }
    fn sampling() -> Message {
        msg(r#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage"}"#)
    }

    fn session(t0: Instant) -> Session {
        Session::new("s".into(), "up".into(), GrantId(1), TIMEOUT, t0)
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<SseItem>) -> Vec<SseItem> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn a_tool_result_with_is_error_is_told_apart() {
        assert!(says_is_error(
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError": true}}"#
        ));
        assert!(says_is_error(
            br#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"content":[]}}"#
        ));
        assert!(!says_is_error(
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#
        ));
        assert!(!says_is_error(
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"isError"}]}}"#
        ));
    }

    /// Where one upstream message ends up.
    #[derive(Debug, PartialEq)]
    enum Target {
        /// On the live stream of the Nth POST.
        Post(usize),
        /// On the live standalone GET stream.
        Standalone,
        /// Buffered on the Nth POST's stream, for a resume.
        BufferedOnPost(usize),
        /// Buffered for the standalone stream's next GET.
        BufferedForGet,
    }

    struct RouteCase {
        why: &'static str,
        posts: Vec<Vec<Message>>,
        /// POSTs whose client went away (their receiver is dropped).
        gone: Vec<usize>,
        get: bool,
        upstream: Message,
        expect: Target,
    }

    #[test]
    fn each_upstream_message_goes_to_the_right_stream() {
        let cases = vec![
            RouteCase {
                why: "a response goes to the stream of its request",
                posts: vec![vec![call("1")], vec![call("2")]],
                gone: vec![],
                get: true,
                upstream: answer("1"),
                expect: Target::Post(0),
            },
            RouteCase {
                why: "progress goes to the stream whose request carries its token",
                posts: vec![vec![call_with_token("1", "a")], vec![call("2")]],
                gone: vec![],
                get: true,
                upstream: progress("a"),
                expect: Target::Post(0),
            },
            RouteCase {
                why: "a notification goes to the newest POST stream still waiting",
                posts: vec![vec![call("1")], vec![call("2")]],
                gone: vec![],
                get: true,
                upstream: notification(),
                expect: Target::Post(1),
            },
            RouteCase {
                why: "progress with an unknown token goes like any notification",
                posts: vec![vec![call_with_token("1", "a")], vec![call("2")]],
                gone: vec![],
                get: false,
                upstream: progress("zzz"),
                expect: Target::Post(1),
            },
            RouteCase {
                why: "an upstream request (sampling) goes like a notification",
                posts: vec![vec![call("1")]],
                gone: vec![],
                get: true,
                upstream: sampling(),
                expect: Target::Post(0),
            },
            RouteCase {
                why: "POST streams whose client went away are skipped",
                posts: vec![vec![call("1")], vec![call("2")]],
                gone: vec![1],
                get: true,
                upstream: notification(),
                expect: Target::Post(0),
            },
            RouteCase {
                why: "with no POST stream live, the standalone GET stream",
                posts: vec![vec![call("1")]],
                gone: vec![0],
                get: true,
                upstream: notification(),
                expect: Target::Standalone,
            },
            RouteCase {
                why: "nothing live: buffered on the newest waiting POST, for a resume",
                posts: vec![vec![call("1")], vec![call("2")]],
                gone: vec![0, 1],
                get: false,
                upstream: notification(),
                expect: Target::BufferedOnPost(1),
            },
            RouteCase {
                why: "nothing open at all: kept for the next GET",
                posts: vec![],
                gone: vec![],
                get: false,
                upstream: notification(),
                expect: Target::BufferedForGet,
            },
        ];
        let t0 = Instant::now();
        for case in cases {
            let s = session(t0);
            let mut streams: Vec<Option<PostStream>> = case
                .posts
                .iter()
                .map(|msgs| Some(s.open_post_stream(msgs, t0)))
                .collect();
            for &i in &case.gone {
                if let Some(p) = streams[i].as_mut() {
                    p.rx.close();
                    drain(&mut p.rx);
                }
            }
            let mut get = case.get.then(|| s.attach_standalone().unwrap());
            let raw = case.upstream.raw.clone();
            s.route(case.upstream, t0);

            let mut got = None;
            for (i, p) in streams.iter_mut().enumerate() {
                if let Some(p) = p
                    && !case.gone.contains(&i)
                    && let Some(item) = drain(&mut p.rx).pop()
                {
                    assert_eq!(item.data, raw, "{}", case.why);
                    got = Some(Target::Post(i));
                }
            }
            if let Some(item) = get.as_mut().and_then(|rx| drain(rx).pop()) {
                assert_eq!(item.data, raw, "{}", case.why);
                assert!(got.is_none(), "{}: delivered twice", case.why);
                got = Some(Target::Standalone);
            }
            if got.is_none() {
                for (i, p) in streams.iter_mut().enumerate() {
                    let sid = p.take().unwrap().id;
                    if let Some(mut rx) = s.resume(sid, 0)
                        && drain(&mut rx).iter().any(|it| it.data == raw)
                    {
                        got = Some(Target::BufferedOnPost(i));
                    }
                }
            }
            if got.is_none() && get.is_none() {
                let mut rx = s.attach_standalone().unwrap();
                if drain(&mut rx).iter().any(|it| it.data == raw) {
                    got = Some(Target::BufferedForGet);
                }
            }
            assert_eq!(got, Some(case.expect), "{}", case.why);
        }
    }

    enum Step {
        Progress(&'static str),
        Answer(&'static str),
        Cancel(&'static str),
    }

    struct DeadlineCase {
        why: &'static str,
        request: Message,
        /// What happens, and when (seconds after T0).
        steps: Vec<(u64, Step)>,
        /// `expire` at this second finds nothing late...
        alive_at: u64,
        /// ...and at this one, the request is late (`None`: never).
        late_at: Option<u64>,
    }

    #[test]
    fn deadlines_expire_and_progress_extends_them() {
        let cases = vec![
            DeadlineCase {
                why: "an unanswered request is late at exactly the timeout",
                request: call("1"),
                steps: vec![],
                alive_at: 9,
                late_at: Some(10),
            },
            DeadlineCase {
                why: "progress extends the deadline from the moment it arrives",
                request: call_with_token("1", "a"),
                steps: vec![(8, Step::Progress("a"))],
                alive_at: 17,
                late_at: Some(18),
            },
            DeadlineCase {
                why: "progress for another token extends nothing",
                request: call_with_token("1", "a"),
                steps: vec![(8, Step::Progress("b"))],
                alive_at: 9,
                late_at: Some(10),
            },
            DeadlineCase {
                why: "an answered request is never late",
                request: call("1"),
                steps: vec![(3, Step::Answer("1"))],
                alive_at: 9,
                late_at: None,
            },
            DeadlineCase {
                why: "a cancelled request is never late",
                request: call("1"),
                steps: vec![(3, Step::Cancel("1"))],
                alive_at: 9,
                late_at: None,
            },
        ];
        let t0 = Instant::now();
        for case in cases {
            let s = session(t0);
            let mut post = s.open_post_stream(std::slice::from_ref(&case.request), t0);
            for (secs, step) in case.steps {
                match step {
                    Step::Progress(t) => s.route(progress(t), at(t0, secs)),
                    Step::Answer(id) => s.route(answer(id), at(t0, secs)),
                    Step::Cancel(id) => assert!(s.cancel(id, at(t0, secs)), "{}", case.why),
                }
            }
            assert!(s.expire(at(t0, case.alive_at)).is_empty(), "{}", case.why);
            let late = s.expire(at(t0, case.late_at.unwrap_or(3600)));
            match case.late_at {
                Some(_) => {
                    assert_eq!(late, vec![IdKey::from("1")], "{}", case.why);
                    let last = drain(&mut post.rx).pop().expect(case.why);
                    assert!(last.response, "{}", case.why);
                    let v: serde_json::Value = serde_json::from_slice(&last.data).unwrap();
                    assert_eq!(v["error"]["code"], REQUEST_TIMEOUT, "{}", case.why);
                    assert_eq!(v["id"], 1, "{}", case.why);
                }
                None => assert!(late.is_empty(), "{}", case.why),
            }
            assert_eq!(s.pending_count(), 0, "{}", case.why);
            // Every case finished its only request: the stream is closed.
            drain(&mut post.rx);
            assert!(post.rx.is_closed(), "{}", case.why);
        }
    }

    #[test]
    fn a_lost_stream_resumes_after_any_event_it_still_holds() {
        let t0 = Instant::now();
        // (why, events before the resume, resume after seq, what the resume replays)
        let cases: &[(&str, usize, u64, Option<Vec<u64>>)] = &[
            ("from the start", 3, 0, Some(vec![1, 2, 3])),
            ("after the second of three", 3, 2, Some(vec![3])),
            (
                "after the last: nothing to replay, but live",
                3,
                3,
                Some(vec![]),
            ),
            (
                "the oldest kept event is 89: after 88 still works",
                REPLAY_EVENTS + 88,
                88,
                Some((89..=(REPLAY_EVENTS as u64 + 88)).collect()),
            ),
            (
                "events were dropped from the buffer: refused",
                REPLAY_EVENTS + 88,
                10,
                None,
            ),
        ];
        for (why, n, after, expect) in cases {
            let s = session(t0);
            let post = s.open_post_stream(&[call_with_token("1", "a")], t0);
            drop(post.rx);
            for _ in 0..*n {
                s.route(progress("a"), t0);
            }
            let Some(mut rx) = s.resume(post.id, *after) else {
                assert!(expect.is_none(), "{why}: refused");
                continue;
            };
            let seqs: Vec<u64> = drain(&mut rx).iter().map(|i| i.seq).collect();
            assert_eq!(Some(&seqs), expect.as_ref(), "{why}");
            // The resumed stream is live: the answer arrives on it, then it closes.
            s.route(answer("1"), at(t0, 1));
            let last = drain(&mut rx).pop().expect(why);
            assert!(last.response && last.seq == *n as u64 + 1, "{why}");
            assert!(rx.is_closed(), "{why}");
        }
    }

    #[test]
    fn a_finished_stream_stays_resumable_for_its_window_only() {
        let t0 = Instant::now();
        let s = session(t0);
        let post = s.open_post_stream(&[call("1")], t0);
        drop(post.rx);
        s.route(answer("1"), t0);
        s.expire(at(t0, 119));
        let mut rx = s.resume(post.id, 0).expect("still inside the window");
        assert_eq!(drain(&mut rx).len(), 1);
        s.expire(at(t0, 120));
        assert!(s.resume(post.id, 0).is_none(), "gone after the window");
    }

    #[test]
    fn repeated_ids_are_refused_at_once() {
        let t0 = Instant::now();
        /// (why, already in flight, this POST, refused indexes, requests left pending)
        type Case = (&'static str, Vec<Message>, Vec<Message>, Vec<usize>, usize);
        let cases: Vec<Case> = vec![
            (
                "distinct ids",
                vec![],
                vec![call("1"), notification(), call("2")],
                vec![],
                2,
            ),
            (
                "an id repeated in one batch: the second is refused",
                vec![],
                vec![call("1"), call("1")],
                vec![1],
                1,
            ),
            (
                "an id still in flight from another POST",
                vec![call("1")],
                vec![call("1")],
                vec![0],
                1,
            ),
            (
                "a string and a number are different ids",
                vec![call("1")],
                vec![call("\"1\"")],
                vec![],
                2,
            ),
            (
                "a notification never conflicts",
                vec![call("1")],
                vec![notification(), call("2")],
                vec![],
                2,
            ),
        ];
        for (why, before, msgs, refused, pending) in cases {
            let s = session(t0);
            let _first = (!before.is_empty()).then(|| s.open_post_stream(&before, t0));
            let mut post = s.open_post_stream(&msgs, t0);
            assert_eq!(post.refused, refused, "{why}");
            assert_eq!(s.pending_count(), pending, "{why}");
            let items = drain(&mut post.rx);
            assert_eq!(
                items.len(),
                refused.len(),
                "{why}: one error per refused request"
            );
            for item in items {
                let v: serde_json::Value = serde_json::from_slice(&item.data).unwrap();
                assert!(item.response, "{why}");
                assert_eq!(v["error"]["code"], INVALID_REQUEST, "{why}");
                assert_eq!(v["id"], 1, "{why}");
            }
            // A POST whose every request was refused waits for nothing.
            let all_refused = msgs.iter().filter(|m| m.is_request()).count() == refused.len();
            assert_eq!(post.rx.is_closed(), all_refused, "{why}");
        }
    }

    #[test]
    fn ending_answers_pending_requests_unless_revoked() {
        let t0 = Instant::now();
        for (reason, expect_error) in [
            (EndReason::Failed("child exited".into()), true),
            (EndReason::Revoked, false),
            (EndReason::Closed, false),
        ] {
            let s = session(t0);
            let mut post = s.open_post_stream(&[call("1")], t0);
            let mut get = s.attach_standalone().unwrap();
            s.end(&reason);
            assert!(s.is_closed());
            let items = drain(&mut post.rx);
            assert_eq!(items.len(), usize::from(expect_error), "{reason:?}");
            if let Some(item) = items.first() {
                let v: serde_json::Value = serde_json::from_slice(&item.data).unwrap();
                assert_eq!(v["error"]["message"], "child exited");
            }
            assert!(post.rx.is_closed() && get.try_recv().is_err() && get.is_closed());
            assert_eq!(s.pending_count(), 0);
        }
    }

    #[test]
    fn idleness_is_measured_from_the_last_touch() {
        let t0 = Instant::now();
        let s = session(t0);
        assert_eq!(s.idle_for(at(t0, 5)), Duration::from_secs(5));
        s.touch(at(t0, 4));
        assert_eq!(s.idle_for(at(t0, 5)), Duration::from_secs(1));
        // A clock read before the touch is not negative idleness.
        assert_eq!(s.idle_for(at(t0, 3)), Duration::ZERO);
    }
}
