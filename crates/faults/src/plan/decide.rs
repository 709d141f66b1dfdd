//! The plan's answers: one method per question a service asks (`refusing`, `on_connect`,
//! `stream_faults`, `on_handshake`, `on_ws_message`, `on_ws_tick`, `on_dns`), the device
//! timeline and the next time anything changes.

use std::time::Duration;

use super::rng::{conn_words, mix, tag};
use super::state::{Ctx, window};
use super::{
    Applied, ConnInfo, ConnRef, DeviceWindow, DnsInfo, FaultPlan, FrameKind, HandshakeInfo,
    MessageInfo, StreamFaults,
};
use crate::fault::{
    ConnectFault, DeviceFault, DnsFault, Fault, HandshakeFault, MessageDirection, WsFault,
};
use crate::limits::MAX_DURATION;
use crate::message::SeenMessage;
use crate::when::Service;

impl FaultPlan {
    /// Whether `service`'s listening socket must be closed now (an active `refuse` rule), and
    /// until when. The listener re-binds when this turns `None`.
    pub fn refusing(&self, service: Service, elapsed: Duration) -> Option<Applied<ConnectFault>> {
        let ctx = Ctx {
            elapsed,
            service: Some(service),
            ..Ctx::default()
        };
        self.lock().first(&ctx, |f| match f {
            Fault::Connect(ConnectFault::Refuse) => Some(ConnectFault::Refuse),
            _ => None,
        })
    }

    /// Decides what happens to an accepted connection: `reset_on_accept`, `close_on_accept`,
    /// `stall` (held until `until`, if any), or `None` = serve it.
    pub fn on_connect(&self, info: ConnInfo) -> Option<Applied<ConnectFault>> {
        let [service, ordinal] = conn_words(info.conn);
        let ctx = Ctx {
            elapsed: info.elapsed,
            occasion: Some([tag::CONNECT, service, ordinal, 0, 0]),
            conn: Some(info.conn),
            service: Some(info.conn.service),
            ..Ctx::default()
        };
        self.lock().first(&ctx, |f| match f {
            Fault::Connect(c) if *c != ConnectFault::Refuse => Some(*c),
            _ => None,
        })
    }

    /// The stream faults for a served connection (all rules that fire, in order) and the seed
    /// for its randomness. Decided once, at accept.
    pub fn stream_faults(&self, info: ConnInfo) -> StreamFaults {
        let [service, ordinal] = conn_words(info.conn);
        let ctx = Ctx {
            elapsed: info.elapsed,
            occasion: Some([tag::STREAM, service, ordinal, 0, 0]),
            conn: Some(info.conn),
            service: Some(info.conn.service),
            ..Ctx::default()
        };
        let mut s = self.lock();
        let mut faults = Vec::new();
        for i in 0..s.rules.len() {
            let Fault::Stream(f) = &s.rules[i].rule.fault else {
                continue;
            };
            let f = f.clone();
            if let Some(until) = s.fires(i, &ctx) {
                faults.push(Applied {
                    rule: s.rules[i].id,
                    fault: f,
                    until,
                });
            }
        }
        let seed = if faults.is_empty() {
            0
        } else {
            mix(&[s.seed, tag::STREAM_SEED, service, ordinal])
        };
        StreamFaults { faults, seed }
    }

    /// Decides what happens to an upgrade request (first matching rule), or `None` = upgrade.
    pub fn on_handshake(&self, info: HandshakeInfo<'_>) -> Option<Applied<HandshakeFault>> {
        let [service, ordinal] = conn_words(info.conn);
        let ctx = Ctx {
            elapsed: info.elapsed,
            occasion: Some([tag::HANDSHAKE, service, ordinal, 0, 0]),
            conn: Some(info.conn),
            service: Some(info.conn.service),
            host: info.host,
            path: Some(info.path),
            ..Ctx::default()
        };
        self.lock().first(&ctx, |f| match f {
            Fault::Handshake(h) => Some(h.clone()),
            _ => None,
        })
    }

    /// Decides what happens to a WebSocket message (first matching rule):
    /// - `drop` / `duplicate` / `delay` when the message is text or binary and travels in the
    ///   fault's direction;
    /// - `suppress_pong` when it is a ping from the app, or a device message whose protocol
    ///   `type` matches the fault's `messages` pattern (an app-level pong);
    /// - an action (`close`, `corrupt`, `oversize`, `garbage`, `lru_purge`) to perform right
    ///   after this message, at most once per connection and rule.
    pub fn on_ws_message(&self, info: MessageInfo<'_>) -> Option<Applied<WsFault>> {
        let [service, ordinal] = conn_words(info.conn);
        // The message number alone does not tell a ping from the data message before it.
        let kind = match info.kind {
            FrameKind::Text => 1,
            FrameKind::Binary => 2,
            FrameKind::Ping => 3,
            FrameKind::Pong => 4,
        } | match info.direction {
            MessageDirection::In => 0x10,
            MessageDirection::Out => 0x20,
        };
        let ctx = Ctx {
            elapsed: info.elapsed,
            occasion: Some([tag::MESSAGE, service, ordinal, info.messages, kind]),
            conn: Some(info.conn),
            service: Some(info.conn.service),
            messages: Some(info.messages),
            bytes: Some(info.bytes),
            message: info.message,
            ..Ctx::default()
        };
        let data = matches!(info.kind, FrameKind::Text | FrameKind::Binary);
        let mut s = self.lock();
        for i in 0..s.rules.len() {
            let Fault::Ws(f) = &s.rules[i].rule.fault else {
                continue;
            };
            let id = s.rules[i].id;
            let applies = match f {
                WsFault::Drop(p) | WsFault::Duplicate(p) => data && p.direction == info.direction,
                WsFault::Delay(p) => data && p.direction == info.direction,
                WsFault::SuppressPong(p) => {
                    let ping =
                        info.kind == FrameKind::Ping && info.direction == MessageDirection::In;
                    let pong_message = data
                        && info.direction == MessageDirection::Out
                        && p.messages.as_ref().is_some_and(|m| {
                            info.message
                                .and_then(SeenMessage::label)
                                .is_some_and(|t| m.matches(t))
                        });
                    ping || pong_message
                }
                _ => data && !s.fired.contains(&(id, info.conn)),
            };
            if !applies {
                continue;
            }
            let f = f.clone();
            if let Some(until) = s.fires(i, &ctx) {
                if !f.acts_on_message() {
                    s.fired.insert((id, info.conn));
                }
                return Some(Applied {
                    rule: id,
                    fault: f,
                    until,
                });
            }
        }
        None
    }

    /// Time-driven WebSocket actions for an open session: an action fault (`close`, `corrupt`,
    /// `oversize`, `garbage`, `lru_purge`) whose rule has no message conditions fires once per
    /// connection when its window opens. Call it when the session starts and at every
    /// [`next_boundary`](Self::next_boundary). A `probability` is drawn once per connection and
    /// rule: every tick of that connection draws the same number.
    pub fn on_ws_tick(&self, info: ConnInfo) -> Option<Applied<WsFault>> {
        let [service, ordinal] = conn_words(info.conn);
        let ctx = Ctx {
            elapsed: info.elapsed,
            occasion: Some([tag::TICK, service, ordinal, 0, 0]),
            conn: Some(info.conn),
            service: Some(info.conn.service),
            ..Ctx::default()
        };
        let mut s = self.lock();
        for i in 0..s.rules.len() {
            let r = &s.rules[i];
            let Fault::Ws(f) = &r.rule.fault else {
                continue;
            };
            let w = &r.rule.when;
            if f.acts_on_message()
                || w.messages.is_some()
                || w.bytes.is_some()
                || w.message_type.is_some()
                || s.fired.contains(&(r.id, info.conn))
            {
                continue;
            }
            let (id, f) = (r.id, f.clone());
            if let Some(until) = s.fires(i, &ctx) {
                s.fired.insert((id, info.conn));
                return Some(Applied {
                    rule: id,
                    fault: f,
                    until,
                });
            }
        }
        None
    }

    /// Forgets per-connection state (which once-per-connection actions fired). Call on close.
    pub fn connection_closed(&self, conn: ConnRef) {
        self.lock().fired.retain(|(_, c)| *c != conn);
    }

    /// True when some rule's fault satisfies `pred`, whatever its trigger (e.g. "can a DNS answer
    /// be delayed?", so a server can answer inline in its receive loop when none can).
    pub fn has_rule(&self, pred: impl Fn(&Fault) -> bool) -> bool {
        self.lock().rules.iter().any(|r| pred(&r.rule.fault))
    }

    /// Decides what happens to a DNS query (first matching rule), or `None` = answer normally.
    /// A rule's `probability` draw for the n-th query it matches is keyed by n, so queries it
    /// does not match (another name, another type) never change its decisions.
    pub fn on_dns(&self, info: DnsInfo<'_>) -> Option<Applied<DnsFault>> {
        let ctx = Ctx {
            elapsed: info.elapsed,
            service: Some(Service::Dns),
            name: Some(info.name),
            qtype: Some(info.qtype),
            ..Ctx::default()
        };
        self.lock().first(&ctx, |f| match f {
            Fault::Dns(d) => Some(d.clone()),
            _ => None,
        })
    }

    /// The device faults with known times, sorted by start: rules with `after` appear once their
    /// event has been observed, the others once the run clock has started (a rule without `at`
    /// starts with the clock). A reboot lasts `down`, an AP outage `for`; `internet` and
    /// `socket_exhaustion` last for the rule's `for` (or the rest of the run).
    pub fn device_timeline(&self) -> Vec<DeviceWindow> {
        let s = self.lock();
        let mut out: Vec<DeviceWindow> = s
            .rules
            .iter()
            .filter_map(|r| {
                let Fault::Device(f) = &r.rule.fault else {
                    return None;
                };
                let (start, end) = window(&r.rule.when, s.origins(), true)?;
                // An end past the clock's range never comes.
                let end = match f {
                    DeviceFault::Reboot(p) => start.checked_add(p.down),
                    DeviceFault::ApDown(p) => start.checked_add(p.duration),
                    DeviceFault::Internet(_) | DeviceFault::SocketExhaustion(_) => end,
                };
                Some(DeviceWindow {
                    rule: r.id,
                    fault: f.clone(),
                    start,
                    end,
                })
            })
            .collect();
        out.sort_by_key(|w| (w.start, w.rule));
        out
    }

    /// The device faults active at `elapsed`.
    pub fn device_faults_at(&self, elapsed: Duration) -> Vec<DeviceWindow> {
        self.device_timeline()
            .into_iter()
            .filter(|w| w.contains(elapsed))
            .collect()
    }

    /// The next time after `elapsed` at which some rule's window opens or closes (device
    /// windows included), so a service can sleep until then; `None` when nothing is scheduled.
    /// Never more than [`MAX_DURATION`] after `elapsed` (a later boundary is reported as that),
    /// so the answer can be added to any clock reading without overflow; waking early for
    /// nothing only means asking again.
    pub fn next_boundary(&self, elapsed: Duration) -> Option<Duration> {
        let mut times: Vec<Duration> = {
            let s = self.lock();
            s.rules
                .iter()
                .filter_map(|r| window(&r.rule.when, s.origins(), false))
                .flat_map(|(start, end)| [Some(start), end])
                .flatten()
                .collect()
        };
        times.extend(
            self.device_timeline()
                .into_iter()
                .flat_map(|w| [Some(w.start), w.end])
                .flatten(),
        );
        let horizon = elapsed.saturating_add(MAX_DURATION);
        times
            .into_iter()
            .filter(|t| *t > elapsed)
            .min()
            .map(|t| t.min(horizon))
    }
}
