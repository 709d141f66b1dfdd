//! The event log: every observable thing the emulator does, as typed events.
//!
//! It is the single source of truth for `--events FILE` (JSON lines), the control API's live
//! stream, the harness's expectations and for tests, which wait on events instead of sleeping.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::internet::InternetMode;

/// Identifies one accepted TCP connection for the whole run (1, 2, 3, … in accept order).
pub type ConnId = u64;

/// One thing that happened, stamped with its order and time since the emulator started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log, starting at 0, without gaps.
    pub seq: u64,
    /// Milliseconds since the emulator started.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Which side ended something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The app (the emulator's peer).
    Client,
    /// The emulated device.
    Device,
}

/// Direction of a WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// App → device.
    In,
    /// Device → app.
    Out,
}

/// What an operating system concludes from a connectivity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckVerdict {
    /// The OS believes the network has internet access.
    Online,
    /// The OS shows "Sign in to network" (captive portal).
    SignIn,
    /// The OS marks the network "No internet" / "Limited".
    NoInternet,
}

/// Every kind of event. Serialized with an `event` tag, e.g. `{"event":"dns_query",…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// All services are bound and serving.
    Started {
        /// HTTP/WebSocket address.
        http: SocketAddr,
        /// HTTPS/wss address, if TLS is on.
        https: Option<SocketAddr>,
        /// DNS address (UDP and TCP), if DNS is on.
        dns: Option<SocketAddr>,
        /// The address DNS answers with.
        device_ip: String,
        /// The device profile's name.
        profile: String,
        /// The internet mode at start.
        internet: InternetMode,
        /// The run's seed (replay a run with the same seed and the same connections).
        seed: u64,
    },
    /// A DNS query was answered (or deliberately not).
    DnsQuery {
        /// `udp` or `tcp`.
        transport: String,
        /// Who asked.
        client: SocketAddr,
        /// The queried name as received (case preserved).
        name: String,
        /// Record type, e.g. `A`, `AAAA`.
        qtype: String,
        /// Response code sent, e.g. `NoError`; `None` when no reply was sent.
        rcode: Option<String>,
        /// The answers' data, e.g. `["192.168.4.1"]`.
        answers: Vec<String>,
    },
    /// A DNS packet that could not be parsed.
    DnsMalformed {
        /// `udp` or `tcp`.
        transport: String,
        /// Who sent it.
        client: SocketAddr,
        /// What went wrong.
        error: String,
        /// Response code sent (`FormErr`), or `None` when no reply was sent.
        rcode: Option<String>,
    },
    /// A TCP connection was accepted on the device port.
    TcpAccepted {
        /// The connection.
        conn: ConnId,
        /// The app's address.
        peer: SocketAddr,
        /// `http` or `https`.
        service: String,
    },
    /// The run clock started: fault windows (`at`/`for`) and the expectations' deadlines count
    /// from here. At start unless the run waits for the app (`start: { on: … }`).
    ClockStarted {
        /// What started it, e.g. `start`, `first_connection`, `signal: file`.
        reason: String,
    },
    /// A connection attempt while the device refused connections (`refuse`, `reboot`): the
    /// kernel answered the SYN with RST, and the device saw the SYN go by.
    TcpRefused {
        /// The app's address.
        peer: SocketAddr,
        /// `http` or `https`.
        service: String,
    },
    /// Refused attempts cannot be counted in this run (no permission to watch SYNs): attempts
    /// during a refusal are missing from the log.
    RefusedUnobserved {
        /// `http` or `https`.
        service: String,
        /// Why, with what would fix it.
        reason: String,
    },
    /// Every socket slot is in use: the connection is held open, unserved, until one frees.
    TcpWaiting {
        /// The connection.
        conn: ConnId,
        /// How many sockets are open.
        open: usize,
    },
    /// The app gave up on a connection that was waiting for a socket slot: it closed (FIN or
    /// RST) before the device served it. An abandoned attempt, never a session.
    TcpAbandoned {
        /// The connection.
        conn: ConnId,
        /// How long it had waited, in ms.
        waited_ms: u64,
    },
    /// A connection took a socket slot and is being served.
    TcpServed {
        /// The connection.
        conn: ConnId,
    },
    /// The least-recently-used session was closed to admit a new connection (no close frame).
    LruPurged {
        /// The purged connection.
        conn: ConnId,
        /// The connection it made room for.
        for_conn: ConnId,
    },
    /// A TCP connection ended.
    TcpClosed {
        /// The connection.
        conn: ConnId,
        /// Who closed it.
        by: Side,
        /// Why, in a few words.
        reason: String,
    },
    /// An HTTP request was answered.
    HttpRequest {
        /// The connection.
        conn: ConnId,
        /// Request method.
        method: String,
        /// `Host` header, if any.
        host: Option<String>,
        /// Request target as sent.
        target: String,
        /// Status sent.
        status: u16,
    },
    /// A request the device rejected before routing (header too long, bad syntax, timeout…).
    HttpError {
        /// The connection.
        conn: ConnId,
        /// Status sent, e.g. 431.
        status: u16,
        /// Why.
        reason: String,
    },
    /// An OS connectivity check was answered, with what that OS will conclude.
    ConnectivityProbe {
        /// The connection.
        conn: ConnId,
        /// The OS that sends this probe, e.g. `android`, `apple`, `windows`.
        os: String,
        /// The probe URL, e.g. `http://connectivitycheck.gstatic.com/generate_204`.
        url: String,
        /// The internet mode that shaped the answer.
        mode: InternetMode,
        /// Status sent.
        status: u16,
        /// What the OS concludes.
        verdict: CheckVerdict,
    },
    /// The internet mode changed at run time.
    InternetChanged {
        /// Before.
        from: InternetMode,
        /// After.
        to: InternetMode,
    },
    /// A WebSocket upgrade succeeded.
    WsOpened {
        /// The connection.
        conn: ConnId,
        /// Request path.
        path: String,
        /// Negotiated subprotocol, if any.
        subprotocol: Option<String>,
    },
    /// A WebSocket upgrade was refused.
    WsRejected {
        /// The connection.
        conn: ConnId,
        /// Which check failed, e.g. `missing Sec-WebSocket-Version`.
        reason: String,
        /// Status sent, or `None` for ESP-IDF's silent close.
        status: Option<u16>,
    },
    /// A WebSocket data message.
    WsMessage {
        /// The connection.
        conn: ConnId,
        /// In (app → device) or out.
        direction: Direction,
        /// The device's label for the message: the built-in protocol's `type`, the name of the
        /// device file's rule that matched it (`unmatched` when none did), a device process's
        /// `label`; `None` when the device gave none.
        msg_type: Option<String>,
        /// Payload size in bytes.
        bytes: usize,
        /// The first characters of the payload (binary as hex), secrets redacted
        /// (see `ws::preview`).
        #[serde(default)]
        preview: String,
        /// Which of [`crate::EmulatorConfig::watched_messages`] matched this app message, by
        /// index (absent when none did).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        watched: Vec<u16>,
    },
    /// A WebSocket ping or pong frame.
    WsControl {
        /// The connection.
        conn: ConnId,
        /// In or out.
        direction: Direction,
        /// `ping` or `pong`.
        frame: String,
    },
    /// A WebSocket session ended.
    WsClosed {
        /// The connection.
        conn: ConnId,
        /// Who ended it.
        by: Side,
        /// Close code received (client) or sent (device); `None` without a close frame.
        code: Option<u16>,
        /// Close reason text.
        reason: String,
        /// Whether a close frame was exchanged.
        clean: bool,
    },
    /// The device firmware asked for something outside the WebSocket (AP down, restart).
    DeviceAction {
        /// What, e.g. `ap_down`, `restart`.
        action: String,
        /// Details.
        detail: String,
    },
    /// A fault rule fired.
    FaultApplied {
        /// The connection it hit, if it hit one.
        conn: Option<ConnId>,
        /// The rule's id in the fault plan.
        rule: u64,
        /// The fault, as in the scenario (e.g. `{"handshake":"reset","at":"after_request"}`).
        fault: serde_json::Value,
        /// What was done, in a few words.
        detail: String,
    },
    /// Events that could not be queued for the `--events` file (the disk did not keep up for
    /// [`FILE_STALL`] with [`FILE_QUEUE`] events waiting). Written to the file before the next
    /// event that made it, so the file says what it misses; memory and the live stream had them.
    EventFileGap {
        /// How many events the file misses.
        missed: u64,
        /// Sequence number of the first missed event.
        first_seq: u64,
        /// Sequence number of the last missed event.
        last_seq: u64,
    },
    /// The simulated phone's OS sent its connectivity check over the Wi-Fi (scenarios with a
    /// `phone:` section): the answer and the verdict drawn from it. Emitted first and whenever
    /// the verdict changes.
    PhoneVerdict {
        /// `android` or `ios`.
        os: String,
        /// The probe URL.
        url: String,
        /// The HTTP status received, if any.
        status: Option<u16>,
        /// Why no HTTP answer arrived (DNS, connect, read), if none did.
        error: Option<String>,
        /// What the OS concludes (Android "validated" = `online`, "portal" = `sign_in`).
        verdict: CheckVerdict,
    },
    /// The phone's routing after a verdict: emitted first and whenever it changes.
    PhoneRouting {
        /// The OS's default network (what unbound sockets use).
        default_network: PhoneNetwork,
        /// What the app under test uses for the internet and for names.
        app_network: PhoneNetwork,
        /// What the app uses to reach the softAP subnet (192.168.4.0/24).
        device_subnet: PhoneNetwork,
        /// The resolver the app asks.
        app_dns: String,
    },
    /// A connection attempt that left the phone over cellular (seen arriving at the fake
    /// carrier, which drops it: the app's connect times out).
    CellularConnection {
        /// `tcp` (a SYN) or `udp`.
        proto: String,
        /// The phone's address.
        from: SocketAddr,
        /// Where it was going.
        to: SocketAddr,
    },
    /// The fake carrier's resolver answered a DNS question from the phone.
    CellularDns {
        /// The name asked.
        name: String,
        /// The record type.
        qtype: String,
        /// The fake-internet address given (A questions only).
        answer: Option<String>,
    },
    /// A line the app command printed (what it shows the user); bounded, see the harness.
    AppOutput {
        /// `stdout` or `stderr`.
        stream: String,
        /// The line, without its end, lossily UTF-8.
        line: String,
        /// The line was longer than kept and was cut.
        truncated: bool,
    },
    /// The emulator is shutting down.
    Stopping,
}

/// One of a simulated phone's networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneNetwork {
    /// `wlan0`: the device's softAP.
    Wifi,
    /// `rmnet0`: the carrier.
    Cellular,
}

impl EventKind {
    /// The event's tag, e.g. `dns_query`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Started { .. } => "started",
            EventKind::DnsQuery { .. } => "dns_query",
            EventKind::DnsMalformed { .. } => "dns_malformed",
            EventKind::TcpAccepted { .. } => "tcp_accepted",
            EventKind::ClockStarted { .. } => "clock_started",
            EventKind::TcpRefused { .. } => "tcp_refused",
            EventKind::RefusedUnobserved { .. } => "refused_unobserved",
            EventKind::TcpWaiting { .. } => "tcp_waiting",
            EventKind::TcpAbandoned { .. } => "tcp_abandoned",
            EventKind::TcpServed { .. } => "tcp_served",
            EventKind::LruPurged { .. } => "lru_purged",
            EventKind::TcpClosed { .. } => "tcp_closed",
            EventKind::HttpRequest { .. } => "http_request",
            EventKind::HttpError { .. } => "http_error",
            EventKind::ConnectivityProbe { .. } => "connectivity_probe",
            EventKind::InternetChanged { .. } => "internet_changed",
            EventKind::WsOpened { .. } => "ws_opened",
            EventKind::WsRejected { .. } => "ws_rejected",
            EventKind::WsMessage { .. } => "ws_message",
            EventKind::WsControl { .. } => "ws_control",
            EventKind::WsClosed { .. } => "ws_closed",
            EventKind::DeviceAction { .. } => "device_action",
            EventKind::FaultApplied { .. } => "fault_applied",
            EventKind::EventFileGap { .. } => "event_file_gap",
            EventKind::PhoneVerdict { .. } => "phone_verdict",
            EventKind::PhoneRouting { .. } => "phone_routing",
            EventKind::CellularConnection { .. } => "cellular_connection",
            EventKind::CellularDns { .. } => "cellular_dns",
            EventKind::AppOutput { .. } => "app_output",
            EventKind::Stopping => "stopping",
        }
    }
}

/// Errors opening the JSON-lines event file.
#[derive(Debug, thiserror::Error)]
#[error("cannot create event file {path}")]
pub struct EventFileError {
    /// The file.
    pub path: String,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Capacity of the live broadcast; a subscriber that falls this far behind sees `Lagged`
/// (the history keeps them; the file gets them unless a stuck disk made it report a gap).
const LIVE_CAPACITY: usize = 4096;

/// Events kept in memory by a long-running emulator ([`History::default`]): at a few hundred
/// bytes each, about 10 MB. The JSON-lines file gets every event (or an
/// [`EventKind::EventFileGap`] for those a stuck disk made it miss).
pub const DEFAULT_HISTORY: usize = 20_000;

/// How much of the past an [`EventLog`] keeps in memory (for [`EventLog::snapshot`], the
/// control API's `GET /events?from=` and [`EventLog::wait_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Every event of the run: for bounded runs whose events are evaluated at the end
    /// (`espsim test`). Grows by a few hundred bytes per DNS query, HTTP request or message.
    All,
    /// The most recent N events; older ones are forgotten (the file, if any, keeps them).
    Last(usize),
}

impl Default for History {
    fn default() -> Self {
        History::Last(DEFAULT_HISTORY)
    }
}

/// Most events waiting for the `--events` file writer. An emitter that finds the queue full
/// waits for room (backpressure: the emulator slows down to the disk's pace) up to
/// [`FILE_STALL`]. The writer takes the whole queue at once, so at most twice this many events
/// are in memory for the file: at a few hundred bytes each, a few MB.
pub const FILE_QUEUE: usize = 16_384;

/// Longest an emitter waits for room in a full file queue. A disk that takes no event for this
/// long is treated as stuck: events that find the queue full are then counted, not queued
/// (memory stays bounded and the device keeps serving), until the writer takes the queue again.
/// The file then gets an [`EventKind::EventFileGap`] saying which sequence numbers it misses.
pub const FILE_STALL: Duration = Duration::from_secs(1);

/// Records events, fans them out live, keeps the history and writes the JSON-lines file.
#[derive(Debug)]
pub struct EventLog {
    /// Tokio's clock, so a test on paused time (`start_paused`) controls every event's `at_ms`
    /// and the run clock the fault plan and the device read from [`EventLog::elapsed`].
    start: tokio::time::Instant,
    /// The history, and under the same lock the next sequence number: numbering, the file
    /// queue, the live stream and the history see events in one order.
    history: Mutex<Kept>,
    keep: History,
    live: broadcast::Sender<Event>,
    file: Option<FileSink>,
    /// Whether [`EventLog::emit_earlier`] backdates by its `ago` (off on virtual time).
    backdating: bool,
}

/// The in-memory history and the next sequence number.
#[derive(Debug, Default)]
struct Kept {
    events: VecDeque<Event>,
    next_seq: u64,
}

/// What became of the `--events` file so far ([`EventLog::file_status`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileStatus {
    /// Events the file does not hold: counted when the queue stayed full past [`FILE_STALL`],
    /// and, after a write error, every event from the one that failed on.
    pub missed: u64,
    /// The write error that stopped the writer, if one did.
    pub error: Option<String>,
}

/// The emitting side of the file writer: a bounded queue shared with the writer thread.
#[derive(Debug)]
struct FileSink {
    queue: Arc<FileQueue>,
    /// Most events queued ([`FILE_QUEUE`]).
    capacity: usize,
    /// Longest wait for room ([`FILE_STALL`]).
    stall: Duration,
}

/// The queue between emitters and the writer thread.
#[derive(Debug, Default)]
struct FileQueue {
    state: Mutex<FileState>,
    /// Signalled when the writer took the queue (there is room).
    room: Condvar,
    /// Signalled when there is something to write or flush, or the log is gone.
    work: Condvar,
}

#[derive(Debug, Default)]
struct FileState {
    events: VecDeque<Event>,
    /// Flush requests, answered once everything queued before them is written.
    flushes: Vec<tokio::sync::oneshot::Sender<()>>,
    /// The log is gone: write what is queued, then end.
    closed: bool,
    /// Set after a wait for room timed out: no further waits until the writer takes the queue,
    /// so a stuck disk costs one stall, not one per event.
    shedding: bool,
    /// Events not queued and not yet reported by a gap event: (first seq, last seq, count).
    gap: Option<(u64, u64, u64)>,
    status: FileStatus,
}

impl FileState {
    fn miss(&mut self, seq: u64) {
        self.status.missed += 1;
        self.gap = Some(match self.gap {
            Some((first, _, n)) => (first, seq, n + 1),
            None => (seq, seq, 1),
        });
    }
}

impl FileQueue {
    fn lock(&self) -> MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `event`, waiting up to `stall` for room; counts it as missed when there is none.
    /// The wait is on the wall clock (`std::time::Instant`, a condition variable): it measures a
    /// disk that stopped, which paused tokio time cannot speed up.
    fn push(&self, event: Event, capacity: usize, stall: Duration) {
        let mut state = self.lock();
        if state.status.error.is_none() && state.events.len() >= capacity && !state.shedding {
            let deadline = Instant::now() + stall;
            while state.events.len() >= capacity && state.status.error.is_none() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                state = self
                    .room
                    .wait_timeout(state, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        if state.status.error.is_some() || state.events.len() >= capacity {
            if !state.shedding && state.status.error.is_none() {
                tracing::error!(
                    "the event file took no event for {stall:?} with {capacity} waiting; \
                     events are counted as missed until it catches up"
                );
            }
            state.shedding = true;
            state.miss(event.seq);
            return;
        }
        state.events.push_back(event);
        drop(state);
        self.work.notify_one();
    }

    /// The unreported gap, taken if a gap event can be queued now or, when it has to, after
    /// waiting up to `wait` for room.
    fn take_gap(&self, capacity: usize, wait: Duration) -> Option<(u64, u64, u64)> {
        let mut state = self.lock();
        state.gap?;
        let deadline = Instant::now() + wait;
        while state.status.error.is_none() && state.events.len() >= capacity {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self
                .room
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if state.status.error.is_some() {
            return None;
        }
        state.gap.take()
    }

    /// The writer thread: takes everything queued, writes it, flushes, answers flush requests.
    fn write_loop(&self, mut out: BufWriter<File>) {
        loop {
            let (batch, flushes, closed) = {
                let mut state = self.lock();
                while state.events.is_empty() && state.flushes.is_empty() && !state.closed {
                    state = self.work.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                state.shedding = false;
                (
                    std::mem::take(&mut state.events),
                    std::mem::take(&mut state.flushes),
                    state.closed,
                )
            };
            self.room.notify_all();
            let failed = write_batch(&mut out, &batch);
            if let Some((index, error)) = failed {
                tracing::error!(
                    "writing the event file failed: {error}; no further events are written"
                );
                let mut state = self.lock();
                state.status.missed += (batch.len() - index) as u64;
                state.status.error = Some(error.to_string());
                state.gap = None;
                // Nothing queued from now on: what waits is missed too.
                state.status.missed += state.events.len() as u64;
                state.events.clear();
                let pending = std::mem::take(&mut state.flushes);
                drop(state);
                self.room.notify_all();
                for done in flushes.into_iter().chain(pending) {
                    let _ = done.send(());
                }
                return;
            }
            for done in flushes {
                let _ = done.send(());
            }
            if closed && self.lock().events.is_empty() {
                return;
            }
        }
    }
}

/// Writes `batch` as JSON lines and flushes; on failure, the index of the first event that may
/// not be in the file, and the error.
fn write_batch(
    out: &mut BufWriter<File>,
    batch: &VecDeque<Event>,
) -> Option<(usize, std::io::Error)> {
    for (i, event) in batch.iter().enumerate() {
        let line = serde_json::to_writer(&mut *out, event)
            .map_err(std::io::Error::other)
            .and_then(|()| out.write_all(b"\n"));
        if let Err(e) = line {
            return Some((i, e));
        }
    }
    // Flushed per batch, so a reader sees complete lines promptly.
    out.flush().err().map(|e| (0, e))
}

impl Drop for FileSink {
    /// Tells the writer to write what is queued and end (it is not waited for).
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.work.notify_all();
    }
}

impl EventLog {
    /// A log without a file that keeps every event ([`History::All`]). Its clock starts now, on
    /// tokio's clock ([`EventLog::elapsed`]): create it on the runtime that will use it.
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        EventLog {
            start: tokio::time::Instant::now(),
            history: Mutex::new(Kept::default()),
            keep: History::All,
            live,
            file: None,
            backdating: true,
        }
    }

    /// A log that also appends every event as one JSON line to `path` (created or truncated);
    /// see [`FILE_QUEUE`] and [`FILE_STALL`] for a disk that falls behind.
    /// A thread of its own does the writing, behind a queue of at most [`FILE_QUEUE`] events;
    /// it ends once the log is dropped and what was queued is written.
    pub fn with_file(path: &Path) -> Result<Self, EventFileError> {
        Self::with_bounded_file(path, FILE_QUEUE, FILE_STALL)
    }

    /// [`EventLog::with_file`] with another queue bound and stall (tests use small ones).
    fn with_bounded_file(
        path: &Path,
        capacity: usize,
        stall: Duration,
    ) -> Result<Self, EventFileError> {
        let error = |source| EventFileError {
            path: path.display().to_string(),
            source,
        };
        let file = File::create(path).map_err(error)?;
        let queue = Arc::new(FileQueue::default());
        let writer = queue.clone();
        std::thread::Builder::new()
            .name("espsim-events".to_owned())
            .spawn(move || writer.write_loop(BufWriter::new(file)))
            .map_err(error)?;
        let mut log = EventLog::new();
        log.file = Some(FileSink {
            queue,
            capacity,
            stall,
        });
        Ok(log)
    }

    /// Waits until every event emitted so far is in the file (at most `timeout`); returns at
    /// once without a file. Reports a pending gap first ([`EventKind::EventFileGap`]).
    pub async fn flush_file(&self, timeout: Duration) {
        let Some(file) = &self.file else { return };
        {
            let mut kept = self.lock();
            self.report_gap(&mut kept, file.stall);
        }
        let (done, flushed) = tokio::sync::oneshot::channel();
        {
            let mut state = file.queue.lock();
            if state.status.error.is_some() {
                return;
            }
            state.flushes.push(done);
        }
        file.queue.work.notify_one();
        let _ = tokio::time::timeout(timeout, flushed).await;
    }

    /// What became of the `--events` file so far; `None` without a file.
    pub fn file_status(&self) -> Option<FileStatus> {
        self.file.as_ref().map(|f| f.queue.lock().status.clone())
    }

    /// The same log keeping only as much history as `keep` says.
    pub fn keeping(mut self, keep: History) -> Self {
        self.keep = keep;
        self
    }

    /// Stamps every event when it is recorded: [`EventLog::emit_earlier`] ignores its `ago`.
    /// For a log on virtual (paused) time, where an age read off the wall clock means nothing
    /// and its rounding would make two runs of one seed differ.
    pub fn stamped_when_read(mut self) -> Self {
        self.backdating = false;
        self
    }

    /// Time since the log (and so the emulator) started, on tokio's clock: in a runtime whose
    /// time is paused it moves only with `tokio::time::advance` (or the runtime's auto-advance);
    /// outside a runtime, and in every build without tokio's `test-util`, it is the wall clock.
    /// The clock read is that of the runtime calling: the UDP DNS thread's own runtime is never
    /// paused, so a run on paused time serves DNS on its own runtime
    /// ([`EmulatorConfig::virtual_time`](crate::EmulatorConfig::virtual_time)).
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records `kind` now; returns its sequence number. With a file whose queue is full this
    /// waits for room (see [`FILE_QUEUE`], [`FILE_STALL`]).
    pub fn emit(&self, kind: EventKind) -> u64 {
        self.emit_earlier(kind, Duration::ZERO)
    }

    /// Records `kind` as having happened `ago` before now (a packet the kernel stamped on
    /// arrival and espsim read later); returns its sequence number. Its `at_ms` may then be
    /// earlier than that of the event before it. A log [`stamped_when_read`] records it now.
    ///
    /// [`stamped_when_read`]: EventLog::stamped_when_read
    pub fn emit_earlier(&self, kind: EventKind, ago: Duration) -> u64 {
        let mut kept = self.lock();
        self.report_gap(&mut kept, Duration::ZERO);
        let ago = if self.backdating { ago } else { Duration::ZERO };
        let at = self.start.elapsed().saturating_sub(ago);
        self.record_at(&mut kept, kind, at)
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an [`EventKind::EventFileGap`] for events the file missed, once the queue has
    /// room for it (waiting up to `wait`).
    fn report_gap(&self, kept: &mut Kept, wait: Duration) {
        let Some(file) = &self.file else { return };
        if let Some((first_seq, last_seq, missed)) = file.queue.take_gap(file.capacity, wait) {
            self.record(
                kept,
                EventKind::EventFileGap {
                    missed,
                    first_seq,
                    last_seq,
                },
            );
        }
    }

    /// Numbers `kind`, stamps it now, queues it for the file, sends it live and keeps it.
    fn record(&self, kept: &mut Kept, kind: EventKind) -> u64 {
        self.record_at(kept, kind, self.start.elapsed())
    }

    /// [`EventLog::record`] with the time since start given.
    fn record_at(&self, kept: &mut Kept, kind: EventKind, at: Duration) -> u64 {
        let event = Event {
            seq: kept.next_seq,
            at_ms: u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
            kind,
        };
        kept.next_seq += 1;
        tracing::debug!(event = event.kind.name(), seq = event.seq, "event");
        if let History::Last(max) = self.keep {
            while kept.events.len() >= max.max(1) {
                kept.events.pop_front();
            }
        }
        let seq = event.seq;
        if let Some(file) = &self.file {
            file.queue.push(event.clone(), file.capacity, file.stall);
        }
        if self.live.receiver_count() > 0 {
            let _ = self.live.send(event.clone());
        }
        kept.events.push_back(event);
        seq
    }

    /// A live receiver of every event emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// Every event still kept (all of them with [`History::All`]), in order.
    pub fn snapshot(&self) -> Vec<Event> {
        self.lock().events.iter().cloned().collect()
    }

    /// The kept history from `seq` on, plus a receiver for what follows, without gap or overlap
    /// (events older than the kept window are gone; see [`History`]).
    pub fn snapshot_and_subscribe(
        &self,
        from_seq: u64,
    ) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let kept = self.lock();
        let rx = self.live.subscribe();
        let past = kept
            .events
            .iter()
            .filter(|e| e.seq >= from_seq)
            .cloned()
            .collect();
        (past, rx)
    }

    /// Waits until an event matching `pred` has been emitted (including before the call),
    /// or `timeout` passes. Returns the first match.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let (past, mut rx) = self.snapshot_and_subscribe(0);
        if let Some(e) = past.into_iter().find(|e| pred(e)) {
            return Some(e);
        }
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(e) if pred(&e) => return Some(e),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Fall back to the history, which keeps far more than the live channel.
                        if let Some(e) = self.snapshot().into_iter().find(|e| pred(e)) {
                            return Some(e);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_with_a_tag_and_flat_fields() {
        let log = EventLog::new();
        let seq = log.emit(EventKind::InternetChanged {
            from: InternetMode::Captive,
            to: InternetMode::Online,
        });
        let e = log.snapshot().remove(0);
        assert_eq!(e.seq, seq);
        let json = serde_json::to_string(&e).expect("serializes");
        assert!(
            json.starts_with(r#"{"seq":0,"at_ms":"#),
            "unexpected json {json}"
        );
        assert!(json.ends_with(r#""event":"internet_changed","from":"captive","to":"online"}"#));
        let back: Event = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, e);
    }

    #[tokio::test]
    async fn wait_for_sees_past_and_future_events() {
        let log = std::sync::Arc::new(EventLog::new());
        log.emit(EventKind::Stopping);
        let past = log
            .wait_for(Duration::from_secs(1), |e| e.kind == EventKind::Stopping)
            .await;
        assert_eq!(past.map(|e| e.seq), Some(0));

        let log2 = log.clone();
        let waiter =
            tokio::spawn(
                async move { log2.wait_for(Duration::from_secs(5), |e| e.seq == 1).await },
            );
        log.emit(EventKind::Stopping);
        assert_eq!(waiter.await.expect("joins").map(|e| e.seq), Some(1));
    }

    #[test]
    fn a_bounded_history_keeps_the_most_recent_events() {
        let log = EventLog::new().keeping(History::Last(3));
        for _ in 0..5 {
            log.emit(EventKind::Stopping);
        }
        let kept: Vec<u64> = log.snapshot().iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![2, 3, 4]);
        let (from_one, _rx) = log.snapshot_and_subscribe(1);
        assert_eq!(from_one.first().map(|e| e.seq), Some(2));
        assert_eq!(EventLog::new().snapshot().len(), 0);
        let all = EventLog::new();
        for _ in 0..5 {
            all.emit(EventKind::Stopping);
        }
        assert_eq!(all.snapshot().len(), 5);
    }

    #[tokio::test]
    async fn event_file_gets_one_json_line_per_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let log = EventLog::with_file(&path).expect("file");
        log.emit(EventKind::Stopping);
        log.emit(EventKind::Stopping);
        drop(log);
        // The writer drains and exits once the log (its only sender) is gone.
        let read_both = async {
            loop {
                let text = std::fs::read_to_string(&path).expect("readable");
                if text.lines().count() == 2 {
                    break text;
                }
                tokio::task::yield_now().await;
            }
        };
        let text = tokio::time::timeout(Duration::from_secs(5), read_both)
            .await
            .expect("both lines written within 5 s");
        for (i, line) in text.lines().enumerate() {
            let e: Event = serde_json::from_str(line).expect("json line");
            assert_eq!(e.seq, i as u64);
        }
    }

    /// A FIFO whose reader opens it and then reads nothing until told: a disk that stopped.
    fn stuck_reader(path: &Path) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<String>) {
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(made.success(), "mkfifo failed");
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let path = path.to_owned();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            // Blocks until the writer opens its end.
            let mut fifo = File::open(&path).expect("fifo opens for reading");
            wait.recv().expect("told to read");
            let mut text = String::new();
            fifo.read_to_string(&mut text).expect("fifo reads");
            text
        });
        (go, reader)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_event_file_costs_one_stall_then_counts_the_loss_and_reports_the_gap() {
        const EVENTS: u64 = 5_000;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.fifo");
        let (go, reader) = stuck_reader(&path);
        let stall = Duration::from_millis(200);
        let log = EventLog::with_bounded_file(&path, 8, stall).expect("fifo opens for writing");
        // A pipe holds 64 KiB, about 1,600 of these lines; the rest must wait in the queue.
        let started = Instant::now();
        for _ in 0..EVENTS {
            log.emit(EventKind::Stopping);
        }
        let took = started.elapsed();
        // One stall, not one per event (5,000 × 200 ms).
        assert!(
            took < stall * 10,
            "emitting took {took:?} with the file stuck"
        );
        let status = log.file_status().expect("a file");
        assert!(status.missed > 0, "nothing counted as missed: {status:?}");
        assert_eq!(status.error, None);

        go.send(()).expect("reader waits");
        log.flush_file(Duration::from_secs(10)).await;
        drop(log);
        let text = reader.join().expect("reader ends at the writer's close");

        // Every sequence number is either a line or inside a reported gap, in order.
        let mut next = 0;
        let mut gaps = 0;
        let mut missed = 0;
        for line in text.lines() {
            let e: Event = serde_json::from_str(line).expect("json line");
            if let EventKind::EventFileGap {
                missed: n,
                first_seq,
                last_seq,
            } = e.kind
            {
                assert_eq!(first_seq, next, "gap starts where the file stopped");
                assert_eq!(last_seq - first_seq + 1, n, "a gap is contiguous");
                gaps += 1;
                missed += n;
                next = last_seq + 1;
            }
            assert_eq!(e.seq, next, "line after seq {}", next.saturating_sub(1));
            next += 1;
        }
        assert!(gaps >= 1, "no event_file_gap line in the file");
        assert_eq!(
            missed, status.missed,
            "the gap lines account for every miss"
        );
        assert_eq!(next, EVENTS + gaps, "the file ends with the last event");
    }
}
