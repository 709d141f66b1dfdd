//! Device files (`espsim run --device FILE`): YAML text through `espsim_device_file::parse`, then
//! the device it describes driven through `DeviceLogic` with messages and requests taken from the
//! input.
//!
//! The input is the file, optionally followed by a NUL byte and a *script*: NUL-separated steps,
//! each one selector byte and a payload (a text or binary message, a connect with a query, a
//! disconnect, time passing, an HTTP request, a state write, a reboot). Whatever the script, a
//! fixed warm-up runs first (two sessions, a JSON, a text and a binary message, HTTP requests,
//! time passing), so a bare device file (the seeds) already runs its rules, timers and routes.
//!
//! Checks: no panic, whatever the text; a file that parses builds a device; two devices built
//! with the same seed and driven alike produce the same effects (the crate promises
//! determinism); every message sent is within `MAX_MESSAGE_BYTES`; the device never asks for a
//! deadline in the past after a tick at that time.
#![no_main]

use std::path::Path;

use espsim_device_file::{FileDevice, MAX_MESSAGE_BYTES};
use espsim_firmware::{DeviceLogic, Effect, Frame, HttpRequest, HttpResponse, SessionStart};
use libfuzzer_sys::fuzz_target;

/// At most this many script steps per input (each may render many templates).
const MAX_STEPS: usize = 64;

/// One thing that happens to the device.
#[derive(Debug)]
enum Step<'a> {
    Text(u64, String),
    Binary(u64, &'a [u8]),
    Connect(u64, String),
    Disconnect(u64),
    Wait(u64),
    Http(String, String, Option<String>, &'a [u8]),
    SetState(String, String),
    PowerOn,
}

/// Everything the device did, for comparing two runs.
#[derive(Debug, PartialEq)]
enum Out {
    Effects(Vec<Effect>),
    Http(Option<HttpResponse>),
    SetState(Result<Vec<Effect>, String>),
    Label(Option<String>),
    Deadline(Option<u64>),
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The fixed warm-up, then the script.
fn steps(script: &[u8]) -> Vec<Step<'_>> {
    let mut steps = vec![
        Step::Connect(1, "mode=sta&x=%41".to_owned()),
        Step::Connect(2, String::new()),
        Step::Text(1, r#"{"cmd":"status"}"#.to_owned()),
        Step::Text(1, r#"{"cmd":"set","led":true,"on":1}"#.to_owned()),
        Step::Text(2, r#"{"cmd":"subscribe"}"#.to_owned()),
        Step::Text(2, r#"{"cmd":"stream","key":"led"}"#.to_owned()),
        Step::Text(1, "ping".to_owned()),
        Step::Text(1, "LED=1".to_owned()),
        Step::Binary(2, &[0xa5, 0x01, 0x02, 0x03]),
        Step::Wait(60),
        Step::Http(
            "GET".to_owned(),
            "/api/status".to_owned(),
            Some("a=1".to_owned()),
            b"",
        ),
        Step::Http(
            "POST".to_owned(),
            "/api/wifi".to_owned(),
            None,
            br#"{"ssid":"home","value":5}"#,
        ),
        Step::Wait(1500),
    ];
    if script.is_empty() {
        return steps;
    }
    for chunk in script.split(|b| *b == 0).take(MAX_STEPS) {
        let Some((&selector, payload)) = chunk.split_first() else {
            continue;
        };
        let session = u64::from(selector >> 4) % 4;
        steps.push(match selector % 8 {
            0 => Step::Text(session, text(payload)),
            1 => Step::Binary(session, payload),
            2 => Step::Connect(session, text(payload)),
            3 => Step::Disconnect(session),
            4 => {
                let mut ms = [0u8; 4];
                for (m, p) in ms.iter_mut().zip(payload) {
                    *m = *p;
                }
                Step::Wait(u64::from(u32::from_le_bytes(ms)))
            }
            5 => {
                // `METHOD target body…`, the target's query after `?`.
                let mut parts = payload.splitn(3, |b| *b == b' ');
                let method = text(parts.next().unwrap_or_default());
                let target = text(parts.next().unwrap_or_default());
                let body = parts.next().unwrap_or_default();
                let (path, query) = match target.split_once('?') {
                    Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                    None => (target, None),
                };
                Step::Http(method, path, query, body)
            }
            6 => {
                let s = text(payload);
                let (name, json) = s.split_once('=').unwrap_or((&s, "null"));
                Step::SetState(name.to_owned(), json.to_owned())
            }
            _ => Step::PowerOn,
        });
    }
    steps
}

fn check_effects(effects: &[Effect]) {
    for effect in effects {
        if let Effect::Send { payload, .. } = effect {
            assert!(
                payload.len() <= MAX_MESSAGE_BYTES,
                "a message of {} bytes",
                payload.len()
            );
        }
    }
}

/// Drives `device` through `steps`; returns everything it answered.
fn drive(device: &mut FileDevice, steps: &[Step<'_>]) -> Vec<Out> {
    let mut out = Vec::new();
    let mut now: u64 = 1_000;
    device.power_on(now);
    let headers = vec![
        ("Host".to_owned(), "192.168.4.1".to_owned()),
        (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ];
    for step in steps {
        now += 3;
        let effects = match step {
            Step::Text(session, t) => {
                out.push(Out::Label(device.label(*session, Frame::Text(t))));
                device.on_message(*session, Frame::Text(t), now)
            }
            Step::Binary(session, b) => {
                out.push(Out::Label(device.label(*session, Frame::Binary(b))));
                device.on_message(*session, Frame::Binary(b), now)
            }
            Step::Connect(session, query) => {
                let start = SessionStart {
                    path: "/ws",
                    query: Some(query),
                    headers: &headers,
                    authorized: true,
                };
                device.on_connect(*session, &start, now)
            }
            Step::Disconnect(session) => device.on_disconnect(*session, now),
            Step::Wait(ms) => {
                // Time passes in ticks, as the host would deliver them (bounded per step).
                let until = now.saturating_add(*ms % 100_000);
                let mut effects = Vec::new();
                for _ in 0..256 {
                    match device.next_deadline() {
                        Some(at) if at <= until => {
                            now = now.max(at);
                            effects.extend(device.on_tick(now));
                            if let Some(next) = device.next_deadline() {
                                assert!(next > now, "deadline {next} not after tick at {now}");
                            }
                        }
                        _ => break,
                    }
                }
                now = until;
                effects
            }
            Step::Http(method, path, query, body) => {
                let request = HttpRequest {
                    method,
                    path,
                    query: query.as_deref(),
                    headers: &headers,
                    body,
                };
                let _ = device.serves_http();
                out.push(Out::Http(device.on_http(&request, now)));
                Vec::new()
            }
            Step::SetState(name, json) => {
                let result = DeviceLogic::set_state(device, name, json, now);
                if let Ok(effects) = &result {
                    check_effects(effects);
                }
                out.push(Out::SetState(result));
                Vec::new()
            }
            Step::PowerOn => {
                device.power_on(now);
                Vec::new()
            }
        };
        check_effects(&effects);
        out.push(Out::Effects(effects));
        out.push(Out::Deadline(device.next_deadline()));
    }
    let _ = DeviceLogic::state(device);
    out
}

fuzz_target!(init: espsim_fuzz::catch_stack_overflows(), |data: &[u8]| {
    let (file, script) = match data.iter().position(|b| *b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(file) else {
        return;
    };
    let Ok(parsed) = espsim_device_file::parse(text, Path::new("fuzz.yaml")) else {
        return;
    };
    let seed = data.len() as u64;
    let mut a = parsed.device(seed).expect("a parsed file builds a device");
    let mut b = parsed.device(seed).expect("a parsed file builds a device");
    let steps = steps(script);
    let first = drive(&mut a, &steps);
    let second = drive(&mut b, &steps);
    assert_eq!(first, second, "same seed, same calls, different effects");
});
