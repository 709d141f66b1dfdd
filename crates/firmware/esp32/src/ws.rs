//! The WebSocket endpoint (`/ws`) and the action dispatcher.
//!
//! httpd calls [`handle`] on its own task for every connect, frame and close. Replies to the
//! connection being served are sent inline with `ws.send`; every other action (broadcasts,
//! other connections, AP outage, restart) goes to the outbox, which the timer loop ([`run`])
//! executes with detached senders — a detached send queues work on the httpd task and waits for
//! it, so doing it from inside a handler would deadlock.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use esp_idf_svc::http::server::ws::{EspHttpWsConnection, EspHttpWsDetachedSender};
use esp_idf_svc::sys::EspError;
use esp_idf_svc::ws::FrameType;
use espsim_firmware::protocol::{MAX_MESSAGE_SIZE, encode};
use espsim_firmware::{Action, ConnId, Device, Recipient};

use crate::board::EspBoard;

/// The one device, shared by the httpd task and the timer loop.
pub type SharedDevice = Arc<Mutex<Device<EspBoard>>>;

/// A detached sender per open connection, for sends from outside the httpd task.
pub type Senders = Arc<Mutex<BTreeMap<ConnId, EspHttpWsDetachedSender>>>;

/// Frames up to this size are read and answered (`too_large` above MAX_MESSAGE_SIZE); larger ones
/// are not read into RAM: the connection is closed with 1009.
const MAX_READ: usize = 4 * MAX_MESSAGE_SIZE;

/// The timer loop also polls the button at this period.
const POLL: Duration = Duration::from_millis(50);

/// Milliseconds since boot: the device's clock.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Locks, surviving a panicked holder (the state machine is still consistent per call).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One httpd callback for `/ws`: a new connection, a data frame, or a close.
pub fn handle(
    ws: &mut EspHttpWsConnection,
    device: &SharedDevice,
    senders: &Senders,
    outbox: &Sender<Vec<Action>>,
) -> Result<(), EspError> {
    let conn = ws.session() as ConnId;
    let now = now_ms();
    if ws.is_new() {
        lock(senders).insert(conn, ws.create_detached_sender()?);
        let actions = lock(device).on_connect(conn, now);
        return deliver(ws, conn, actions, outbox);
    }
    if ws.is_closed() {
        lock(senders).remove(&conn);
        let actions = lock(device).on_disconnect(conn, now);
        let _ = outbox.send(actions);
        return Ok(());
    }
    let (frame_type, len) = ws.recv(&mut [])?;
    let is_text = match frame_type {
        FrameType::Text(_) => true,
        FrameType::Binary(_) => false,
        // Ping/pong/close are answered by ESP-IDF itself (handle_ws_control_frames = false).
        _ => return Ok(()),
    };
    if len > MAX_READ {
        lock(senders).remove(&conn);
        lock(device).on_disconnect(conn, now);
        return ws.send(FrameType::Close, &close_payload(1009, "message too big"));
    }
    let mut payload = vec![0u8; len];
    ws.recv(&mut payload)?;
    // esp-idf-svc reports text frames one byte longer, for the C string terminator.
    if is_text && payload.last() == Some(&0) {
        payload.pop();
    }
    let actions = lock(device).on_frame(conn, &payload, now);
    deliver(ws, conn, actions, outbox)
}

/// Sends what is for `conn` inline; queues the rest for the timer loop.
fn deliver(
    ws: &mut EspHttpWsConnection,
    conn: ConnId,
    actions: Vec<Action>,
    outbox: &Sender<Vec<Action>>,
) -> Result<(), EspError> {
    let mut later = Vec::new();
    for action in actions {
        match action {
            Action::Send {
                to: Recipient::Conn(to),
                message,
            } if to == conn => ws.send(FrameType::Text(false), &encode(&message))?,
            Action::Close {
                conn: to,
                code,
                reason,
            } if to == conn => ws.send(FrameType::Close, &close_payload(code, &reason))?,
            other => later.push(other),
        }
    }
    if !later.is_empty() {
        let _ = outbox.send(later);
    }
    Ok(())
}

/// The timer loop (runs forever on the main task): ticks the device at its deadline (and every
/// [`POLL`] for the button), and executes queued actions.
pub fn run(device: SharedDevice, senders: Senders, outbox: Receiver<Vec<Action>>) -> ! {
    loop {
        let (actions, deadline) = {
            let mut device = lock(&device);
            (device.on_tick(now_ms()), device.next_deadline())
        };
        dispatch(actions, &senders);
        let wait = deadline
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms())))
            .map_or(POLL, |until| until.min(POLL));
        match outbox.recv_timeout(wait) {
            Ok(actions) => dispatch(actions, &senders),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
    }
}

fn dispatch(actions: Vec<Action>, senders: &Senders) {
    for action in actions {
        match action {
            Action::Send { to, message } => {
                let bytes = encode(&message);
                let targets: Vec<EspHttpWsDetachedSender> = {
                    let senders = lock(senders);
                    match to {
                        Recipient::Conn(conn) => senders.get(&conn).cloned().into_iter().collect(),
                        Recipient::All => senders.values().cloned().collect(),
                    }
                };
                for mut sender in targets {
                    if let Err(e) = sender.send(FrameType::Text(false), &bytes) {
                        log::warn!("ws send to {}: {e}", sender.session());
                    }
                }
            }
            Action::Close { conn, code, reason } => {
                let sender = lock(senders).remove(&conn);
                if let Some(mut sender) = sender {
                    let _ = sender.send(FrameType::Close, &close_payload(code, &reason));
                }
            }
            Action::ApDown { duration_ms } => {
                // On the chip the outage is the station join itself (channel switch), which the
                // device starts via Board::join_wifi when this window ends.
                log::info!("provisioning: AP outage window of {duration_ms} ms begins");
            }
            Action::Restart { delay_ms } => {
                std::thread::sleep(Duration::from_millis(delay_ms));
                esp_idf_svc::hal::reset::restart();
            }
            other => log::warn!("unhandled device action {other:?}"),
        }
    }
}

/// A close frame's payload: the code (big-endian) then the UTF-8 reason (≤ 123 bytes).
fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}
