//! Helpers shared by the fuzz targets: the loopback DNS server they probe, and the checks every
//! parsed fault rule goes through.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::OnceLock;
use std::time::Duration;

use espsim_emulator::internet::InternetMode;
use espsim_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use espsim_faults::message::Payload as MessagePayload;
use espsim_faults::{
    ConnInfo, ConnRef, DnsInfo, FaultPlan, FaultRule, FrameKind, HandshakeInfo, MessageDirection,
    MessageInfo, SeenMessage, Service,
};

/// How long the DNS server may take to answer one input before the run counts as hung.
const DNS_WAIT: Duration = Duration::from_secs(10);

/// Makes a stack overflow a reported crash with its input saved, like any other.
///
/// Under libFuzzer's `main` the Rust runtime installs no guard-page handler, and libFuzzer's own
/// SIGSEGV handler runs on the overflowed stack unless the handler it replaces had `SA_ONSTACK`:
/// the process then dies silently and the input is lost (the HTTP head parser's unbounded
/// recursion of issue 12 did exactly that). Called from `LLVMFuzzerInitialize`, before libFuzzer
/// installs its handlers: gives the main thread an alternate signal stack and leaves SIGSEGV at
/// its default action with `SA_ONSTACK`, which libFuzzer keeps.
pub fn catch_stack_overflows() {
    const SIZE: usize = 1 << 18;
    let stack: &'static mut [u8] = Box::leak(vec![0u8; SIZE].into_boxed_slice());
    // SAFETY: the alternate stack is leaked, so it outlives every signal; the structs are
    // fully initialised; this runs once, on the main thread, before the fuzz loop.
    unsafe {
        let alt = libc::stack_t {
            ss_sp: stack.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: SIZE,
        };
        assert_eq!(
            libc::sigaltstack(&alt, std::ptr::null_mut()),
            0,
            "sigaltstack"
        );
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        action.sa_flags = libc::SA_ONSTACK;
        assert_eq!(
            libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()),
            0,
            "sigaction"
        );
    }
}

/// One emulator (DNS on loopback, UDP and TCP) for the whole fuzzing process: every input is
/// sent to the real receive loops, so what is fuzzed is exactly what serves a phone.
pub struct DnsServer {
    emulator: RunningEmulator,
    addr: SocketAddr,
    /// Sends the fuzz input and receives its reply.
    fuzz: UdpSocket,
    /// Sends a known query after each input: its answer proves the input was handled (the UDP
    /// loop answers datagrams in arrival order), so "no reply" needs no timeout.
    sentinel: UdpSocket,
    sentinel_query: Vec<u8>,
    _runtime: tokio::runtime::Runtime,
}

/// The process's DNS server, started on first use.
pub fn dns_server() -> &'static DnsServer {
    static SERVER: OnceLock<DnsServer> = OnceLock::new();
    SERVER.get_or_init(DnsServer::start)
}

impl DnsServer {
    fn start() -> DnsServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let emulator = runtime
            .block_on(Emulator::start(EmulatorConfig::default()))
            .expect("the emulator starts on loopback");
        let addr = emulator.dns_addr().expect("dns is served");
        let fuzz = UdpSocket::bind("127.0.0.1:0").expect("bind");
        fuzz.set_nonblocking(true).expect("nonblocking");
        let sentinel = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sentinel.set_read_timeout(Some(DNS_WAIT)).expect("timeout");
        // ID 0xbeef, RD, one question: sentinel.espsim. A IN.
        let mut sentinel_query = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["sentinel", "espsim"] {
            sentinel_query.push(label.len() as u8);
            sentinel_query.extend_from_slice(label.as_bytes());
        }
        sentinel_query.extend_from_slice(&[0, 0, 1, 0, 1]);
        DnsServer {
            emulator,
            addr,
            fuzz,
            sentinel,
            sentinel_query,
            _runtime: runtime,
        }
    }

    /// Switches the internet mode (it changes some answers) to the one `selector` picks.
    pub fn set_internet(&self, selector: u8) {
        let modes = InternetMode::ALL;
        self.emulator
            .set_internet(modes[usize::from(selector) % modes.len()]);
    }

    /// Sends `datagram` over UDP and returns the reply, if the server sent one.
    ///
    /// Panics when the server stops answering (the sentinel gets no reply in time) or answers
    /// one datagram twice.
    pub fn udp(&self, datagram: &[u8]) -> Option<Vec<u8>> {
        if retry(|| self.fuzz.send_to(datagram, self.addr)).is_err() {
            return None; // e.g. larger than a datagram can be
        }
        retry(|| self.sentinel.send_to(&self.sentinel_query, self.addr))
            .expect("send the sentinel");
        let mut buf = vec![0u8; 65_536];
        let n = retry(|| self.sentinel.recv(&mut buf))
            .unwrap_or_else(|e| panic!("the dns server stopped answering: {e}"));
        assert_eq!(buf.get(..2), Some(&[0xbe, 0xef][..]), "sentinel reply");
        assert!(n >= 12, "sentinel reply too short");
        let reply = match retry(|| self.fuzz.recv(&mut buf)) {
            Ok(n) => Some(buf[..n].to_vec()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => None,
            Err(e) => panic!("receiving the reply: {e}"),
        };
        match retry(|| self.fuzz.recv(&mut buf)) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("one datagram answered twice: {other:?}"),
        }
        reply
    }

    /// Writes `stream` to a fresh DNS-over-TCP connection, half-closes it, and returns every
    /// byte the server sent until it closed. Panics when the server does not close in time.
    pub fn tcp(&self, stream: &[u8]) -> Vec<u8> {
        let mut conn = TcpStream::connect(self.addr).expect("connect to dns over tcp");
        conn.set_read_timeout(Some(DNS_WAIT)).expect("timeout");
        // The server may close early (it never does today); what it sent is still read below.
        let _ = conn.write_all(stream);
        let _ = conn.shutdown(Shutdown::Write);
        let mut out = Vec::new();
        if let Err(e) = conn.read_to_end(&mut out) {
            assert!(
                e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::TimedOut,
                "the dns server kept the connection open after the client finished: {e}"
            );
        }
        // RST instead of FIN: no TIME_WAIT pile-up over millions of connections.
        let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
        out
    }
}

/// Repeats a socket call cut short by a signal: libFuzzer's timeout timer (SIGALRM) interrupts
/// blocking calls, and `recv` / `send_to` report that as `Interrupted` instead of retrying.
fn retry<T>(mut call: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// The moments (since the run started) a plan is asked about: the start, ordinary times, and a
/// year (the longest soak anyone runs; later moments cannot occur).
const MOMENTS: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(1),
    Duration::from_secs(61),
    Duration::from_secs(3600),
    Duration::from_secs(365 * 24 * 3600),
];

/// What a run does with rules that passed validation: serialize them back (the control API
/// lists them), build the plan, and ask it every question the services ask, at every moment.
/// Nothing may panic; a listed rule reads back as the same rule.
pub fn exercise_rules(rules: Vec<FaultRule>, seed: u64) {
    let valid: Vec<FaultRule> = rules.into_iter().filter(|r| r.validate().is_ok()).collect();
    for rule in &valid {
        let json = serde_json::to_string(rule).expect("a rule serializes");
        let back: FaultRule = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("a listed rule does not read back: {json}: {e}"));
        assert_eq!(&back, rule, "{json}");
    }
    let afters: Vec<String> = valid.iter().filter_map(|r| r.when.after.clone()).collect();
    let plan = FaultPlan::new(valid, Some(seed)).expect("validated rules build a plan");
    let _ = plan.rules();
    let _ = plan.device_timeline();
    for (i, elapsed) in MOMENTS.into_iter().enumerate() {
        for event in &afters {
            plan.observe(event, elapsed);
        }
        let _ = plan.device_faults_at(elapsed);
        let _ = plan.next_boundary(elapsed);
        for service in [Service::Http, Service::Https, Service::Dns] {
            let conn = ConnRef {
                service,
                ordinal: i as u64 + 1,
            };
            let info = ConnInfo { conn, elapsed };
            let _ = plan.refusing(service, elapsed);
            let _ = plan.on_connect(info);
            let _ = plan.stream_faults(info);
            let _ = plan.on_handshake(HandshakeInfo {
                conn,
                elapsed,
                host: Some("192.168.4.1"),
                path: "/ws",
            });
            // A labelled JSON message, so that label patterns and payload tests both get asked.
            let seen = SeenMessage::new(
                Some("ping"),
                MessagePayload::Text(r#"{"type":"ping","cmd":"get","seq":1}"#),
            );
            for direction in [MessageDirection::In, MessageDirection::Out] {
                for kind in [FrameKind::Text, FrameKind::Ping] {
                    let _ = plan.on_ws_message(MessageInfo {
                        conn,
                        elapsed,
                        direction,
                        kind,
                        message: (kind == FrameKind::Text).then_some(&seen),
                        messages: i as u64 + 1,
                        bytes: 1 << (i * 10),
                    });
                }
            }
            let _ = plan.on_ws_tick(info);
            plan.connection_closed(conn);
        }
        let _ = plan.on_dns(DnsInfo {
            name: "connectivitycheck.gstatic.com",
            qtype: "A",
            elapsed,
        });
    }
}
