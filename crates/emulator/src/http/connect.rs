//! Accepted connections the device never serves: connect faults (`reset_on_accept`,
//! `close_on_accept`, `stall`, executed by `net::listener::apply_connect_fault`) and
//! connections that arrive while the access point is down. Each runs in its own task and ends
//! with a `tcp_closed` event.

use std::sync::Arc;
use std::time::Duration;

use espsim_faults::{Applied, ConnectFault, RuleId};
use serde::Serialize;
use socket2::SockRef;
use tokio::net::TcpStream;

use super::Handles;
use crate::device_host::Outage;
use crate::events::{ConnId, EventKind, Side};
use crate::net::Abort;
use crate::net::listener::apply_connect_fault;

use super::gate::Gate;

/// Records that a fault rule fired (`fault_applied`), with the fault as the scenario wrote it.
pub(crate) fn emit_applied<F: Serialize>(
    handles: &Handles,
    conn: Option<ConnId>,
    rule: RuleId,
    fault: &F,
    detail: String,
) {
    let fault = serde_json::to_value(fault).unwrap_or(serde_json::Value::Null);
    handles.events.emit(EventKind::FaultApplied {
        conn,
        rule: rule.0,
        fault,
        detail,
    });
}

/// Runs a connect fault on an accepted connection in its own task. A `stall` ends when its
/// rule's window ends, on shutdown, or with RST when an outage resets `gate`.
pub(crate) fn spawn_connect_fault(
    handles: &Arc<Handles>,
    tcp: TcpStream,
    conn: ConnId,
    applied: Applied<ConnectFault>,
    gate: Arc<Gate>,
) {
    let hold = applied
        .until
        .map(|until| until.saturating_sub(handles.events.elapsed()));
    let (detail, reason) = match applied.fault {
        ConnectFault::ResetOnAccept | ConnectFault::Refuse => (
            "accepted, then reset (RST) before any byte".to_owned(),
            "reset on accept (fault)",
        ),
        ConnectFault::CloseOnAccept => (
            "accepted, then closed (FIN) before any byte".to_owned(),
            "closed on accept (fault)",
        ),
        ConnectFault::Stall => (
            match hold {
                Some(h) => format!("accepted and held unanswered for {}", fmt_duration(h)),
                None => "accepted and held unanswered until shutdown".to_owned(),
            },
            "stall ended (fault)",
        ),
    };
    emit_applied(handles, Some(conn), applied.rule, &applied.fault, detail);
    let handles2 = handles.clone();
    handles.lifecycle.tracker.spawn(async move {
        // A second handle on the socket, so an outage can still turn the stall's close into RST
        // (SO_LINGER is per socket; the kernel closes when the last handle goes).
        let spare = match applied.fault {
            ConnectFault::Stall => SockRef::from(&tcp).try_clone().ok(),
            _ => None,
        };
        apply_connect_fault(tcp, applied.fault, hold, gate.kill()).await;
        let reason = if gate.is_reset() {
            if let Some(s) = &spare
                && let Err(e) = s.set_linger(Some(Duration::ZERO))
            {
                tracing::debug!("SO_LINGER 0 failed: {e}");
            }
            "reset by the device outage"
        } else if handles2.lifecycle.cancel.is_cancelled() {
            "shutdown"
        } else {
            reason
        };
        drop(spare);
        handles2.events.emit(EventKind::TcpClosed {
            conn,
            by: Side::Device,
            reason: reason.to_owned(),
        });
    });
}

/// A connection that arrived while the AP is down: the kernel accepted it, but the device never
/// answers. It is held silent (the app's connect succeeds on loopback, then its handshake times
/// out) and reset when the AP is back, as the device has no state for it.
pub(crate) fn spawn_unanswered(
    handles: &Arc<Handles>,
    tcp: TcpStream,
    conn: ConnId,
    gate: Arc<Gate>,
) {
    let handles2 = handles.clone();
    let mut outage = handles.device.outage();
    handles.lifecycle.tracker.spawn(async move {
        tokio::select! {
            () = gate.kill().cancelled() => {}
            _ = outage.wait_for(|o| *o != Outage::ApDown) => {}
        }
        let reason = if gate.is_reset() || *outage.borrow() != Outage::ApDown {
            tcp.abort();
            "unanswered while the access point was down; reset when it came back"
        } else {
            drop(tcp);
            "shutdown"
        };
        handles2.events.emit(EventKind::TcpClosed {
            conn,
            by: Side::Device,
            reason: reason.to_owned(),
        });
    });
}

/// `1.5s`, `200ms`: short and readable for event details.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}
