//! Every expectation on hand-built event logs: it passes where the client behaved and fails,
//! with evidence, where it did not.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use espsim_emulator::events::{CheckVerdict, EventKind, Side};
use espsim_emulator::internet::InternetMode;
use espsim_harness::Scenario;
use espsim_harness::expect::{Expectation, evaluate, validate, watched_messages};
use support::{Log, expectations, fails, faults, judge, passes};

#[test]
fn connected_within() {
    let mut log = Log::default();
    log.failed(100, 1).open(1200, 2).stop(5000);
    let o = judge("- connected: { within: 2s }", &[], &log);
    passes(&o);
    assert_eq!(o.evidence[0].at_ms, Some(1200));
    assert_eq!(o.evidence[0].conn, Some(2));
    fails(
        &judge("- connected: { within: 1s }", &[], &log),
        "first session only 1.200s after the clock started",
    );
    let mut never = Log::default();
    never.failed(100, 1).failed(600, 2).stop(5000);
    fails(
        &judge("- connected: { within: 1s }", &[], &never),
        "never connected (2 attempt(s)",
    );
}

#[test]
fn reconnects_after_a_named_fault_or_a_time() {
    let rules = faults("- { name: outage, when: { at: 2s, for: 2s }, fault: refuse }\n");
    let mut log = Log::default();
    log.open(10, 1)
        .ws_closed(2000, 1, Side::Device, None, false)
        .open(4600, 2)
        .stop(8000);
    passes(&judge(
        "- reconnects: { after: outage, within: 1s }",
        &rules,
        &log,
    ));
    fails(
        &judge(
            "- reconnects: { after: outage, within: 300ms }",
            &rules,
            &log,
        ),
        "no session between 2.000s and 4.300s",
    );
    passes(&judge("- reconnects: { at: 4s, within: 1s }", &rules, &log));
    fails(
        &judge("- reconnects: { at: 4s, within: 200ms }", &rules, &log),
        "no session",
    );

    // A fault without a time window: its window ends when it last fired.
    let rules = faults(
        "- { name: cut, when: { connections: 1-2 }, fault: { handshake: reset, at: after_request } }\n",
    );
    let mut log = Log::default();
    log.failed(10, 1)
        .fault(
            10,
            Some(1),
            1,
            r#"{"handshake":"reset","at":"after_request"}"#,
        )
        .failed(600, 2)
        .fault(
            600,
            Some(2),
            1,
            r#"{"handshake":"reset","at":"after_request"}"#,
        )
        .open(1700, 3)
        .stop(5000);
    passes(&judge(
        "- reconnects: { after: cut, within: 2s }",
        &rules,
        &log,
    ));
    fails(
        &judge("- reconnects: { after: cut, within: 900ms }", &rules, &log),
        "no session",
    );
    let mut silent = Log::default();
    silent.open(10, 1).stop(5000);
    fails(
        &judge("- reconnects: { after: cut, within: 1s }", &rules, &silent),
        "never fired",
    );
}

/// Attempts at the given accept times: each but the last is cut at once, the last connects.
fn retries(times: &[u64]) -> Log {
    let mut log = Log::default();
    let (last, failed) = times.split_last().expect("at least one attempt");
    for (i, t) in failed.iter().enumerate() {
        log.failed(*t, i as u64 + 1);
    }
    log.open(*last, times.len() as u64).stop(last + 5000);
    log
}

#[test]
fn backoff_spreads_with_jitter_and_a_cap() {
    let good = "- backoff: { min_factor: 1.5, first_retry_within: 1s, max: 4s, jitter: true }";
    // Gaps 0.5 s, 0.9 s, 2.1 s: they spread ×4.2, no fixed schedule fits them, under the cap.
    let o = judge(good, &[], &retries(&[0, 500, 1400, 3500]));
    passes(&o);
    assert!(
        o.message.contains("0.500s → 0.900s → 2.100s"),
        "{}",
        o.message
    );
    // Full jitter shrinks now and then: a shorter gap after a longer one is still a backoff.
    passes(&judge(good, &[], &retries(&[0, 300, 1900, 2600, 5600])));
    // No backoff at all, over enough failures to judge: gaps of a few ms.
    let hammer: Vec<u64> = (0..12).map(|i| i * 3).collect();
    fails(
        &judge(good, &[], &retries(&hammer)),
        "no backoff: no delay: 11 retries in a row each came within 0.100s",
    );
    // A constant 1 s delay with jitter, over enough failures: not a backoff.
    let constant = [
        0, 1000, 2100, 3000, 4150, 5050, 6100, 7000, 8120, 9050, 10100, 11000,
    ];
    fails(
        &judge(good, &[], &retries(&constant)),
        "no backoff: the gaps stay within ×2 of each other: a constant delay",
    );
    // The same over only three failures: not enough to call it.
    fails(
        &judge(good, &[], &retries(&constant[..4])),
        "cannot judge: 3 failed attempts, need 10",
    );
    // Doubling exactly, capped: no jitter, once there are enough failures to say so.
    let exact = [
        0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ];
    fails(
        &judge(good, &[], &retries(&exact)),
        "no jitter: the gaps fit a fixed schedule",
    );
    // ...which is fine when jitter is not asked for.
    passes(&judge(
        "- backoff: { min_factor: 1.5 }",
        &[],
        &retries(&[0, 500, 1500, 3500]),
    ));
    // First retry too late.
    fails(
        &judge(good, &[], &retries(&[0, 3000, 9000, 21000])),
        "first retry after 3.000s",
    );
    // Past the cap.
    fails(
        &judge(
            "- backoff: { min_factor: 1.5, max: 1s }",
            &[],
            &retries(&[0, 500, 1500, 3500]),
        ),
        "more than the cap",
    );
    // Gaps at the cap may stay flat.
    passes(&judge(
        "- backoff: { min_factor: 1.5, max: 2s }",
        &[],
        &retries(&[0, 500, 1500, 3500, 5450, 7450]),
    ));
    // Still waiting at the end, longer than the cap: the wait already breaks it.
    let waiting = |end: u64| {
        let mut log = Log::default();
        for (i, t) in [0u64, 500, 1500, 3500].iter().enumerate() {
            log.failed(*t, i as u64 + 1);
        }
        log.stop(end);
        log
    };
    let capped = "- backoff: { min_factor: 1.5, max: 4s }";
    fails(
        &judge(capped, &[], &waiting(9000)),
        "no retry for 5.500s after the last failed attempt at 3.500s (the run ended at 9.000s), more than the cap 4.000s",
    );
    passes(&judge(capped, &[], &waiting(7500)));
    let mut none = Log::default();
    none.open(10, 1).stop(3000);
    fails(
        &judge(good, &[], &none),
        "cannot judge: no retry after a failed attempt",
    );
}

#[test]
fn no_storm_counts_attempts_in_a_sliding_window() {
    let storm = retries(&[0, 50, 100, 150, 200, 250, 300]);
    let o = judge("- no_storm: { max: 5, window: 1s }", &[], &storm);
    fails(&o, "7 attempts within 1.000s from 0.000s");
    assert_eq!(o.evidence[0].conn, Some(1));
    passes(&judge(
        "- no_storm: { max: 3, window: 1s }",
        &[],
        &retries(&[0, 500, 1400, 3500]),
    ));
}

#[test]
fn heartbeat_every_with_tolerance() {
    let hb = "- heartbeat: { every: 1s, tolerance: 200ms }";
    let mut log = Log::default();
    log.open(0, 1);
    for t in [1000, 2000, 3010, 4000] {
        log.ping(t, 1);
    }
    log.ws_closed(4500, 1, Side::Client, Some(1000), true)
        .stop(4600);
    passes(&judge(hb, &[], &log));

    let mut gap = Log::default();
    gap.open(0, 1).ping(1000, 1).ping(4000, 1).stop(4500);
    fails(
        &judge(hb, &[], &gap),
        "3.000s without a heartbeat on conn 1",
    );

    let mut eager = Log::default();
    eager.open(0, 1).ping(1000, 1).ping(1100, 1).stop(1500);
    fails(&judge(hb, &[], &eager), "only 0.100s apart");

    let mut silent = Log::default();
    silent.open(0, 1).stop(900);
    fails(&judge(hb, &[], &silent), "no heartbeat seen");

    // App-level `ping` messages count too.
    let mut app = Log::default();
    app.open(0, 1)
        .send(900, 1, "ping")
        .send(1900, 1, "ping")
        .stop(2500);
    passes(&judge(hb, &[], &app));

    // A lone `hello` does not save a session that never pings, and a late first frame moves
    // nothing: the heartbeat clock starts at the `101` (plus the downstream latency of a
    // latency fault on the connection, tested in the judge's unit tests).
    let mut hello_only = Log::default();
    hello_only.open(0, 1).send(150, 1, "hello").stop(1900);
    fails(
        &judge(hb, &[], &hello_only),
        "1.900s without a heartbeat on conn 1 (from 0.000s until the session ended at 1.900s)",
    );
    let mut late_hello = Log::default();
    late_hello
        .open(0, 1)
        .send(2000, 1, "hello")
        .ping(2900, 1)
        .stop(3500);
    fails(
        &judge(hb, &[], &late_hello),
        "2.900s without a heartbeat on conn 1 (until 2.900s)",
    );
    let mut stalls = Log::default();
    stalls
        .open(0, 1)
        .send(400, 1, "hello")
        .ping(1000, 1)
        .stop(3000);
    fails(
        &judge(hb, &[], &stalls),
        "2.000s without a heartbeat on conn 1 (from 1.000s until the session ended at 3.000s)",
    );
}

#[test]
fn detects_dead_link_after_half_open_or_suppressed_pongs() {
    let mut reacted = Log::default();
    reacted
        .open(0, 1)
        .fault(2000, Some(1), 1, r#"{"stream":"half_open"}"#)
        .open(3500, 2)
        .stop(6000);
    let o = judge("- detects_dead_link: { within: 2s }", &[], &reacted);
    passes(&o);
    assert!(
        o.evidence
            .iter()
            .any(|e| e.note.contains("reacted after 1.500s")),
        "{:?}",
        o.evidence
    );
    fails(
        &judge("- detects_dead_link: { within: 1s }", &[], &reacted),
        "reacted only after 1.500s",
    );

    let mut closed = Log::default();
    closed
        .open(0, 1)
        .fault(2000, Some(1), 1, r#"{"ws":"suppress_pong"}"#)
        .ws_closed(3000, 1, Side::Client, Some(1000), true)
        .stop(6000);
    passes(&judge("- detects_dead_link: { within: 2s }", &[], &closed));

    let mut oblivious = Log::default();
    oblivious
        .open(0, 1)
        .fault(2000, Some(1), 1, r#"{"ws":"suppress_pong"}"#)
        .stop(9000);
    fails(
        &judge("- detects_dead_link: { within: 2s }", &[], &oblivious),
        "neither closed nor reconnected",
    );

    // A link that comes back (the rule's window ends) before the deadline need not be noticed.
    let rules =
        faults("- { name: mute, when: { at: 2s, for: 1s }, fault: { ws: suppress_pong } }\n");
    let mut healed = Log::default();
    healed
        .open(0, 1)
        .fault(2000, Some(1), 1, r#"{"ws":"suppress_pong"}"#)
        .stop(9000);
    fails(
        &judge("- detects_dead_link: { within: 2s }", &rules, &healed),
        "no dead link lasted long enough to judge",
    );
    let rules =
        faults("- { name: mute, when: { at: 2s, for: 5s }, fault: { ws: suppress_pong } }\n");
    fails(
        &judge("- detects_dead_link: { within: 2s }", &rules, &healed),
        "neither closed nor reconnected",
    );

    let mut nothing = Log::default();
    nothing.open(0, 1).stop(9000);
    fails(
        &judge("- detects_dead_link: { within: 2s }", &[], &nothing),
        "no dead link to detect",
    );
}

#[test]
fn sessions_count_in_the_order_they_opened() {
    // A delayed handshake completes on conn 1 after conn 2 opened and the client left conn 1.
    let mut log = Log::default();
    log.accept(0, 1)
        .open(3500, 2)
        .push(
            6000,
            EventKind::WsOpened {
                conn: 1,
                path: "/ws".into(),
                subprotocol: None,
            },
        )
        .ws_closed(6001, 1, Side::Client, None, false)
        .ws_closed(8000, 2, Side::Client, Some(1000), true)
        .stop(8001);
    let o = judge("- connected: { within: 4s }", &[], &log);
    passes(&o);
    assert_eq!(o.evidence[0].conn, Some(2));
    passes(&judge("- closes_cleanly: { code: 1000 }", &[], &log));
}

#[test]
fn closes_cleanly_with_the_code() {
    let mut good = Log::default();
    good.open(0, 1)
        .ws_closed(3000, 1, Side::Client, Some(1000), true)
        .stop(3100);
    passes(&judge("- closes_cleanly: { code: 1000 }", &[], &good));
    fails(
        &judge("- closes_cleanly: { code: 1001 }", &[], &good),
        "expected the client to close with 1001",
    );

    let mut dropped = Log::default();
    dropped
        .open(0, 1)
        .ws_closed(3000, 1, Side::Client, None, false)
        .stop(3100);
    fails(
        &judge("- closes_cleanly: {}", &[], &dropped),
        "ended by the client with no close frame, not clean",
    );

    let mut by_device = Log::default();
    by_device
        .open(0, 1)
        .ws_closed(3000, 1, Side::Device, Some(1001), true)
        .stop(3100);
    fails(
        &judge("- closes_cleanly: {}", &[], &by_device),
        "ended by the device with code 1001",
    );
}

#[test]
fn sends_and_sends_in_order() {
    let mut log = Log::default();
    log.open(1000, 1)
        .send(1010, 1, "hello")
        .send(1500, 1, "get_state")
        .send(3000, 1, "set_config")
        .stop(4000);
    passes(&judge("- sends: { type: hello, within: 100ms }", &[], &log));
    fails(
        &judge("- sends: { type: set_config, within: 1s }", &[], &log),
        "sent only 2.000s after",
    );
    fails(
        &judge("- sends: { type: provision }", &[], &log),
        "`provision` never sent (sent: hello, get_state, set_config)",
    );
    passes(&judge("- sends_in_order: [hello, set_config]", &[], &log));
    fails(
        &judge("- sends_in_order: [set_config, hello]", &[], &log),
        "matched 1",
    );
}

/// Payload matchers are judged by the index the emulator was given them at
/// (`watched_messages`: each distinct one once, in order), so unlabelled messages count.
#[test]
fn payload_matchers_are_judged_by_what_the_emulator_watched() {
    let expect = expectations(
        "- sends: { type: { text: { regex: '^LED=' } }, within: 1s }\n\
         - sends_in_order: [ { text: { regex: '^LED=' } }, { json: { pointer: /cmd, equals: bye } } ]\n\
         - heartbeat: { every: 1s, tolerance: 200ms, message: { text: { exact: PING } } }\n",
    );
    let watched = watched_messages(&expect);
    assert_eq!(
        watched.len(),
        3,
        "the repeated regex is watched once: {watched:?}"
    );
    let mut log = Log::default();
    log.open(0, 1)
        .send_unlabelled(500, 1, &[0])
        .send_unlabelled(1000, 1, &[2])
        .send_unlabelled(2000, 1, &[2])
        .send_unlabelled(2500, 1, &[1])
        .send_unlabelled(3000, 1, &[2])
        .stop(3500);
    let verdicts = evaluate(&expect, &[], &log.0);
    for v in &verdicts {
        assert!(v.passed, "{}: {}", v.name, v.message);
    }
    let mut wrong = Log::default();
    wrong
        .open(0, 1)
        .send_unlabelled(500, 1, &[1])
        .send(900, 1, "LED=1")
        .stop(1500);
    let verdicts = evaluate(&expect, &[], &wrong.0);
    assert!(
        verdicts[0]
            .message
            .contains("never sent (sent: (unlabelled), LED=1)"),
        "a label is no payload: {}",
        verdicts[0].message
    );
    assert!(
        verdicts[1].message.contains("matched 0"),
        "{}",
        verdicts[1].message
    );
    assert!(
        verdicts[2]
            .message
            .contains("1.500s without a heartbeat on conn 1"),
        "{}",
        verdicts[2].message
    );
}

#[test]
fn max_concurrent_connections_counts_open_sockets() {
    let mut log = Log::default();
    for c in 1..=8 {
        log.accept(c * 10, c);
    }
    log.stop(1000);
    fails(
        &judge("- max_concurrent_connections: { max: 7 }", &[], &log),
        "8 connections open at once at 0.080s",
    );
    let mut serial = Log::default();
    serial
        .open(0, 1)
        .ws_closed(500, 1, Side::Client, Some(1000), true)
        .open(500, 2)
        .stop(900);
    passes(&judge(
        "- max_concurrent_connections: { max: 1 }",
        &[],
        &serial,
    ));
}

#[test]
fn dns_queried_and_probed() {
    let mut log = Log::default();
    log.push(
        10,
        EventKind::DnsQuery {
            transport: "udp".into(),
            client: "127.0.0.1:5000".parse().expect("addr"),
            name: "connectivitycheck.gstatic.com.".into(),
            qtype: "A".into(),
            rcode: Some("NoError".into()),
            answers: vec!["192.168.4.1".into()],
        },
    )
    .accept(20, 1)
    .push(
        25,
        EventKind::ConnectivityProbe {
            conn: 1,
            os: "android".into(),
            url: "http://connectivitycheck.gstatic.com/generate_204".into(),
            mode: InternetMode::Captive,
            status: 302,
            verdict: CheckVerdict::SignIn,
        },
    )
    .stop(100);
    passes(&judge(
        "- dns_queried: { name: \"*.gstatic.com\" }",
        &[],
        &log,
    ));
    fails(
        &judge("- dns_queried: { name: esp32.local }", &[], &log),
        "no query matched",
    );
    let o = judge("- probed: { os: android }", &[], &log);
    passes(&o);
    assert!(o.message.contains("concluded sign_in"), "{}", o.message);
    fails(
        &judge("- probed: { os: apple }", &[], &log),
        "no apple connectivity check",
    );
    // A probe is not a WebSocket attempt.
    fails(
        &judge("- connected: { within: 1s }", &[], &log),
        "never connected (0 attempt(s)",
    );
}

#[test]
fn repeated_keys_get_numbered_names() {
    let e = expectations(
        "- sends: { type: hello }\n- sends: { type: ping }\n- connected: { within: 1s }\n",
    );
    assert_eq!(
        espsim_harness::expect::names(&e),
        ["sends", "sends#2", "connected"]
    );
}

#[test]
fn bad_expectations_are_rejected_with_position() {
    let err = espsim_harness::yaml::parse::<Vec<Expectation>>(
        "- connected: { within: 2s }\n- heartbeat: { every: 1s, tolerence: 1s }\n",
        Path::new("e.yaml"),
    )
    .expect_err("unknown field");
    assert_eq!(err.line_column().map(|(l, _)| l), Some(2), "{err}");
    let err = espsim_harness::yaml::parse::<Vec<Expectation>>(
        "- connected: { within: soon }\n",
        Path::new("e.yaml"),
    )
    .expect_err("bad duration");
    assert!(err.to_string().contains("invalid duration `soon`"), "{err}");
    // Expectations read durations with the grammar of every other file (they used to accept
    // humantime's `10 seconds`, `2min`, `1day`).
    for lenient in ["10 seconds", "5 s", "2min", "1day"] {
        let err = espsim_harness::yaml::parse::<Vec<Expectation>>(
            &format!("- connected: {{ within: {lenient} }}\n"),
            Path::new("e.yaml"),
        )
        .expect_err(lenient);
        assert!(
            err.to_string()
                .contains(&format!("invalid duration `{lenient}`")),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("write digits with a unit ms, s, m or h"),
            "{err}"
        );
    }
    let ok = espsim_harness::yaml::parse::<Vec<Expectation>>(
        "- connected: { within: 1m 30s }\n- reconnects: { at: 0, within: 500ms }\n",
        Path::new("e.yaml"),
    )
    .expect("strict durations");
    assert_eq!(ok.len(), 2);
    let err = espsim_harness::yaml::parse::<Vec<Expectation>>(
        "- conected: { within: 1s }\n",
        Path::new("e.yaml"),
    )
    .expect_err("unknown expectation");
    assert!(err.to_string().contains("conected"), "{err}");
}

#[test]
fn references_are_validated() {
    let rules = faults("- { name: outage, when: { at: 1s, for: 1s }, fault: refuse }\n");
    let d = std::time::Duration::from_secs(10);
    let none = BTreeMap::new();
    let err = validate(
        &expectations("- reconnects: { after: outge, within: 1s }"),
        &rules,
        &none,
        d,
    )
    .expect_err("unknown fault");
    assert!(
        err.contains("no fault is named `outge` (named faults: outage"),
        "{err}"
    );
    let err = validate(
        &expectations("- reconnects: { within: 1s }"),
        &rules,
        &none,
        d,
    )
    .expect_err("neither");
    assert!(err.contains("exactly one of"), "{err}");
    let e = expectations("- connected: { within: 1s }");
    let catches = BTreeMap::from([("naive".to_owned(), "backoff".to_owned())]);
    let err = validate(&e, &rules, &catches, d).expect_err("unknown expectation");
    assert!(
        err.contains("no expectation named `backoff` (this scenario has: connected)"),
        "{err}"
    );
    let catches = BTreeMap::from([("sloppy".to_owned(), "connected".to_owned())]);
    assert!(
        validate(&e, &rules, &catches, d)
            .expect_err("profile")
            .contains("unknown client profile `sloppy`")
    );
    let catches = BTreeMap::from([("good".to_owned(), "connected".to_owned())]);
    assert!(validate(&e, &rules, &catches, d).is_err());

    // Through Scenario::parse: the file name is in the message.
    let text = "name: x\ndescription: y\nfaults: []\nexpect:\n  - reconnects: { after: gone, within: 1s }\nduration: 5s\n";
    let err = Scenario::parse(text, Path::new("s.yaml")).expect_err("semantic");
    assert!(
        err.to_string()
            .starts_with("s.yaml: expect `reconnects`: no fault is named `gone`"),
        "{err}"
    );
}
