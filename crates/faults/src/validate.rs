//! Rule validation: which triggers make sense for which fault, with a hint naming the ones
//! that do. Runs when a plan is built and when a rule is added at run time.

use std::time::Duration;

use crate::fault::{ConnectFault, DeviceFault, Fault, WsFault};
use crate::plan::{FaultRule, RuleError};
use crate::when::Service;

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
    if let Fault::Ws(WsFault::Close(c)) = &rule.fault
        && c.reason.len() > 123
    {
        return Err(err(format!(
            "close reason is {} bytes; a close frame allows at most 123",
            c.reason.len()
        )));
    }
    Ok(())
}
