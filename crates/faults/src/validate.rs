//! Rule validation: which triggers make sense for which fault, with a hint naming the ones
//! that do, and the bounds of [`crate::limits`] on every value a rule carries. Runs when a plan
//! is built and when a rule is added at run time (and so for scenario files, `espsim validate`
//! and the control API).

use std::time::Duration;

use crate::fault::{
    ConnectFault, CutPoint, DeviceFault, DnsFault, Fault, HandshakeFault, StreamFault, WsFault,
};
use crate::limits::{
    MAX_BODY_BYTES, MAX_BYTE_COUNT, MAX_CLOSE_REASON_BYTES, MAX_COUNT, MAX_CUT_BYTES, MAX_DURATION,
    MAX_OVERSIZE_BYTES, MAX_RATE_KBPS, MAX_SLICE_BYTES, MAX_SOCKETS, MAX_TEXT_BYTES,
};
use crate::plan::{FaultRule, RuleError};
use crate::when::{CountRange, Service};

/// Checks `rule`; the error names the fault and the first trigger that does not apply.
pub(crate) fn validate(rule: &FaultRule) -> Result<(), RuleError> {
    let w = &rule.when;
    let err = |reason: String| RuleError {
        fault: rule.fault.to_string(),
        reason,
    };
    let present: [(&str, bool); 12] = [
        ("connections", w.connections.is_some()),
        ("every", w.every.is_some()),
        ("messages", w.messages.is_some()),
        ("bytes", w.bytes.is_some()),
        ("probability", w.probability.is_some()),
        ("service", w.service.is_some()),
        ("name", w.name.is_some()),
        ("qtype", w.qtype.is_some()),
        ("host", w.host.is_some()),
        ("path", w.path.is_some()),
        ("message_type", w.message_type.is_some()),
        ("for", w.duration.is_some()),
    ];
    let (allowed, hint): (&[&str], &str) = match &rule.fault {
        Fault::Connect(ConnectFault::Refuse) => (
            &["service", "for"],
            "refuse closes the listener for a time window (at/for/after); to reject \
             particular connections use reset_on_accept or close_on_accept",
        ),
        Fault::Connect(_) | Fault::Stream(_) => (
            &["connections", "service", "every", "probability", "for"],
            "connection faults match at/for/after, connections, every, probability, service",
        ),
        Fault::Handshake(_) => (
            &[
                "connections",
                "service",
                "host",
                "path",
                "every",
                "probability",
                "for",
            ],
            "handshake faults match at/for/after, connections, service, host, path, every, probability",
        ),
        Fault::Ws(_) => (
            &[
                "connections",
                "service",
                "messages",
                "bytes",
                "message_type",
                "every",
                "probability",
                "for",
            ],
            "websocket faults match at/for/after, connections, messages, bytes, message_type, \
             service, every, probability",
        ),
        Fault::Dns(_) => (
            &["name", "qtype", "every", "probability", "for"],
            "dns faults match at/for/after, name, qtype, every, probability",
        ),
        Fault::Device(DeviceFault::Reboot(_) | DeviceFault::ApDown(_)) => (
            &[],
            "reboot and ap_down are placed with at/after; their length is the fault's own \
             `down`/`for`",
        ),
        Fault::Device(_) => (
            &["for"],
            "device faults are placed on the timeline with at/for/after",
        ),
    };
    if let Some((field, _)) = present.iter().find(|(f, on)| *on && !allowed.contains(f)) {
        return Err(err(format!("`{field}` does not apply here ({hint})")));
    }
    if w.every == Some(0) {
        return Err(err("`every` must be at least 1".into()));
    }
    if w.duration == Some(Duration::ZERO) {
        return Err(err("`for` must be longer than 0".into()));
    }
    if let Some(s) = w.service
        && s == Service::Dns
    {
        return Err(err(
            "`service: dns` only goes with dns faults, which need no service".into(),
        ));
    }
    bounds(rule).map_err(err)
}

/// Checks every duration, size, count, rate and text of `rule` against [`crate::limits`]; the
/// error names the field, its value and the bound.
fn bounds(rule: &FaultRule) -> Result<(), String> {
    let w = &rule.when;
    if let Some(name) = &rule.name {
        text("name", name)?;
    }
    duration_opt("when.at", w.at)?;
    duration_opt("when.for", w.duration)?;
    if let Some(r) = w.connections {
        range("when.connections", r, MAX_COUNT)?;
    }
    if let Some(r) = w.messages {
        range("when.messages", r, MAX_COUNT)?;
    }
    if let Some(r) = w.bytes {
        range("when.bytes", r, MAX_BYTE_COUNT)?;
    }
    if let Some(n) = w.every {
        count("when.every", n, 1, MAX_COUNT)?;
    }
    if let Some(p) = w.probability
        && !(0.0..=1.0).contains(&p.get())
    {
        return Err(format!(
            "`when.probability` is {}; it must lie in 0-1",
            p.get()
        ));
    }
    if let Some(after) = &w.after {
        text("when.after", after)?;
    }
    for (field, p) in [
        ("when.name", &w.name),
        ("when.host", &w.host),
        ("when.path", &w.path),
    ] {
        if let Some(p) = p {
            text(field, p.as_str())?;
        }
    }
    if let Some(q) = &w.qtype {
        text("when.qtype", q)?;
    }
    fault_bounds(&rule.fault)
}

/// The bounds on the fault's own parameters.
fn fault_bounds(fault: &Fault) -> Result<(), String> {
    match fault {
        Fault::Connect(_) => Ok(()),
        Fault::Handshake(h) => handshake_bounds(h),
        Fault::Stream(s) => stream_bounds(s),
        Fault::Ws(w) => ws_bounds(w),
        Fault::Dns(DnsFault::Delay(d)) => duration("delay", d.delay),
        Fault::Dns(_) => Ok(()),
        Fault::Device(d) => device_bounds(d),
    }
}

fn handshake_bounds(h: &HandshakeFault) -> Result<(), String> {
    match h {
        HandshakeFault::Reset(c) | HandshakeFault::Close(c) => match c.at {
            CutPoint::MidResponse { bytes } => {
                count("bytes", bytes as u64, 0, MAX_CUT_BYTES as u64)
            }
            CutPoint::AfterRequest => Ok(()),
        },
        HandshakeFault::Status(s) => {
            if s.code == 101 || !(100..=599).contains(&s.code) {
                return Err(format!(
                    "`code` is {}; use an HTTP status 100-599 other than 101",
                    s.code
                ));
            }
            match &s.body {
                Some(body) if body.len() > MAX_BODY_BYTES => Err(format!(
                    "`body` is {} bytes; at most {MAX_BODY_BYTES} bytes",
                    body.len()
                )),
                _ => Ok(()),
            }
        }
        HandshakeFault::Delay(d) => duration("delay", d.delay),
        HandshakeFault::BadAccept
        | HandshakeFault::MissingUpgradeHeader
        | HandshakeFault::SilentClose => Ok(()),
    }
}

fn stream_bounds(s: &StreamFault) -> Result<(), String> {
    match s {
        StreamFault::Latency(l) => {
            duration("latency", l.latency)?;
            duration("jitter", l.jitter)
        }
        StreamFault::Bandwidth(b) => count("rate", b.rate, 1, MAX_RATE_KBPS),
        StreamFault::Slicer(s) => {
            let max = MAX_SLICE_BYTES as u64;
            count("average_size", s.average_size as u64, 1, max)?;
            count("size_variation", s.size_variation as u64, 0, max)?;
            duration("delay", s.delay)
        }
        StreamFault::LimitData(l) => count("bytes", l.bytes, 0, MAX_BYTE_COUNT),
        StreamFault::ResetPeer(r) => duration("timeout", r.timeout),
        StreamFault::Timeout(t) => duration("timeout", t.timeout),
        StreamFault::SlowClose(s) => duration("delay", s.delay),
        StreamFault::HalfOpen => Ok(()),
    }
}

fn ws_bounds(w: &WsFault) -> Result<(), String> {
    match w {
        WsFault::Close(c) => {
            if matches!(c.code, 1005 | 1006 | 1015) || !(1000..=4999).contains(&c.code) {
                return Err(format!(
                    "close `code` is {}; use 1000-4999 except 1005, 1006 and 1015",
                    c.code
                ));
            }
            if c.reason.len() > MAX_CLOSE_REASON_BYTES {
                return Err(format!(
                    "close reason is {} bytes; a close frame allows at most {MAX_CLOSE_REASON_BYTES}",
                    c.reason.len()
                ));
            }
            Ok(())
        }
        WsFault::Delay(d) => duration("delay", d.delay),
        WsFault::Oversize(o) => match o.bytes {
            Some(bytes) => count("bytes", bytes as u64, 0, MAX_OVERSIZE_BYTES as u64),
            None => Ok(()),
        },
        WsFault::SuppressPong(p) => match &p.messages {
            Some(m) => text("messages", m.as_str()),
            None => Ok(()),
        },
        WsFault::Drop(_)
        | WsFault::Duplicate(_)
        | WsFault::Corrupt(_)
        | WsFault::Garbage
        | WsFault::LruPurge => Ok(()),
    }
}

fn device_bounds(d: &DeviceFault) -> Result<(), String> {
    match d {
        DeviceFault::Internet(_) => Ok(()),
        DeviceFault::Reboot(r) => duration("down", r.down),
        DeviceFault::ApDown(a) => duration("for", a.duration),
        DeviceFault::SocketExhaustion(s) => {
            count("sockets", s.sockets as u64, 1, MAX_SOCKETS as u64)
        }
    }
}

fn duration(field: &str, d: Duration) -> Result<(), String> {
    if d > MAX_DURATION {
        return Err(format!(
            "`{field}` is {}; at most {}h",
            crate::duration::format(d),
            MAX_DURATION.as_secs() / 3600
        ));
    }
    Ok(())
}

fn duration_opt(field: &str, d: Option<Duration>) -> Result<(), String> {
    d.map_or(Ok(()), |d| duration(field, d))
}

fn count(field: &str, n: u64, min: u64, max: u64) -> Result<(), String> {
    if n < min || n > max {
        return Err(format!("`{field}` is {n}; it must lie in {min}-{max}"));
    }
    Ok(())
}

fn range(field: &str, r: CountRange, max: u64) -> Result<(), String> {
    let last = r.last.unwrap_or(r.first);
    if r.first == 0 || r.first > max || last > max || last < r.first {
        return Err(format!(
            "`{field}` is `{r}`; counts lie in 1-{max}, the end not before the start"
        ));
    }
    Ok(())
}

/// `t` is at most [`MAX_TEXT_BYTES`] long.
pub(crate) fn text(field: &str, t: &str) -> Result<(), String> {
    if t.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "`{field}` is {} bytes long; at most {MAX_TEXT_BYTES} bytes",
            t.len()
        ));
    }
    Ok(())
}
