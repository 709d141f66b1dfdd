//! The judges on hand-built event logs: each rule of the run clock, abandoned and refused
//! attempts, heartbeat kinds and latency, dead links, and the scenario checks.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use espsim_emulator::events::{EventKind, Side};
use espsim_harness::expect::problems;
use support::{Log, expectations, fails, faults, judge, passes_saying as passes};

#[test]
fn deadlines_count_from_the_run_clock() {
    // The run waited 5 s for the app; its first session came 0.21 s after the clock started.
    let mut log = Log::default();
    log.clock(5000).open(5210, 1).stop(9000);
    let o = judge("- connected: { within: 1s }", &[], &log);
    passes(&o, "first session 0.210s after the clock started");
    assert_eq!(
        o.evidence[0].at_ms,
        Some(5210),
        "evidence keeps emulator time"
    );
    // Without the event the clock starts at 0.
    let mut late = Log::default();
    late.open(5210, 1).stop(9000);
    fails(
        &judge("- connected: { within: 1s }", &[], &late),
        "5.210s after the clock",
    );

    // `reconnects { at }` and a named fault's window are placed on the clock too.
    let mut log = Log::default();
    log.clock(5000)
        .open(5100, 1)
        .tcp_closed(7000, 1, Side::Device)
        .open(8500, 2)
        .stop(12000);
    passes(
        &judge("- reconnects: { at: 2s, within: 2s }", &[], &log),
        "session 3.500s after",
    );
    fails(
        &judge("- reconnects: { at: 4s, within: 1s }", &[], &log),
        "no session between 4.000s and 5.000s",
    );
    let rules = faults("- { name: out, when: { at: 2s, for: 1s }, fault: refuse }\n");
    passes(
        &judge("- reconnects: { after: out, within: 1s }", &rules, &log),
        "(0.500s after 3.000s)",
    );
}

#[test]
fn abandoned_connections_are_failed_attempts_not_sessions() {
    let mut log = Log::default();
    log.open(0, 1)
        .accept(100, 2)
        .abandoned(600, 2, 500)
        .tcp_closed(700, 1, Side::Client)
        .stop(5000);
    // Conn 2 never served: open from 100 to 600 only, so never two at once after 600.
    let o = judge("- max_concurrent_connections: { max: 1 }", &[], &log);
    fails(&o, "2 connections open at once at 0.100s");
    let mut apart = Log::default();
    apart
        .open(0, 1)
        .accept(100, 2)
        .abandoned(600, 2, 500)
        .open(600, 3)
        .stop(5000);
    // Conn 1 never closes: 1 and 3 overlap; conn 2 was gone at 600 (its socket closes later).
    passes(
        &judge("- max_concurrent_connections: { max: 2 }", &[], &apart),
        "at most 2 open at once",
    );
    let mut gone = Log::default();
    gone.accept(0, 1)
        .abandoned(400, 1, 400)
        .accept(400, 2)
        .abandoned(900, 2, 500)
        .open(900, 3)
        .stop(5000);
    passes(
        &judge("- max_concurrent_connections: { max: 1 }", &[], &gone),
        "at most 1",
    );
    // They count as attempts for no_storm, and as failures whose end starts the retry clock.
    fails(
        &judge("- no_storm: { max: 2, window: 1s }", &[], &gone),
        "3 attempts within 1.000s",
    );
    let o = judge("- backoff: { }", &[], &gone);
    assert!(
        o.evidence
            .iter()
            .any(|e| e.note == "retry after 0.000s" && e.since_ms == Some(400)),
        "{:?}",
        o.evidence
    );
    // Never a session: `connected` does not count it.
    let mut only = Log::default();
    only.accept(0, 1)
        .push(
            0,
            EventKind::WsOpened {
                conn: 1,
                path: "/ws".into(),
                subprotocol: None,
            },
        )
        .abandoned(300, 1, 300)
        .stop(2000);
    fails(
        &judge("- connected: { within: 1s }", &[], &only),
        "never connected",
    );
}

#[test]
fn refused_syns_are_attempts() {
    let mut storm = Log::default();
    storm.open(0, 1).tcp_closed(1000, 1, Side::Device);
    for t in [1010, 1020, 1030, 1040, 1050] {
        storm.refused(t);
    }
    storm.open(2100, 2).stop(4000);
    fails(
        &judge("- no_storm: { max: 3, window: 1s }", &[], &storm),
        "5 attempts within 1.000s from 1.010s (at most 3 allowed; 7 in total, 5 of them refused)",
    );
    // Backoff gaps run from each refused SYN to the next attempt.
    let mut backoff = Log::default();
    backoff
        .failed(0, 1)
        .refused(500)
        .refused(1500)
        .refused(3500)
        .open(7500, 2)
        .stop(9000);
    let o = judge("- backoff: { first_retry_within: 1s }", &[], &backoff);
    passes(&o, "gaps 0.500s → 1.000s → 2.000s → 4.000s");
    // …and `refused_unobserved` makes both untrustworthy.
    let mut blind = Log::default();
    blind
        .push(
            0,
            EventKind::RefusedUnobserved {
                service: "http".into(),
                reason: "no CAP_NET_RAW".into(),
            },
        )
        .failed(0, 1)
        .fault(400, None, 1, r#""refuse""#)
        .failed(500, 2)
        .failed(1500, 3)
        .open(3500, 4)
        .stop(9000);
    let rules = faults("- { when: { at: 400ms, for: 3s }, fault: refuse }\n");
    fails(
        &judge("- no_storm: { max: 3, window: 1s }", &rules, &blind),
        "no CAP_NET_RAW",
    );
    fails(
        &judge("- backoff: { }", &rules, &blind),
        "cannot judge: refused attempts during the retries were not observed (http: no CAP_NET_RAW)",
    );
    // A refused SYN is the app retrying after a dead link, and counts in `reconnects`.
    let mut retry = Log::default();
    retry
        .open(0, 1)
        .fault(1000, Some(1), 1, r#"{"stream":"half_open"}"#)
        .refused(2500)
        .stop(8000);
    let o = judge("- detects_dead_link: { within: 2s }", &[], &retry);
    passes(&o, "1 dead link(s) detected");
    fails(
        &judge("- reconnects: { at: 2s, within: 3s }", &[], &retry),
        "(1 attempt(s) since 2.000s, 1 of them refused)",
    );
}

#[test]
fn heartbeat_of_any_kind_clocked_from_when_the_app_could_send() {
    let hb = "- heartbeat: { every: 1s, tolerance: 300ms }";
    // The repro: 250 ms downstream latency, the app pings every second after `welcome`.
    let latency = r#"{"stream":"latency","latency":"250ms"}"#;
    let mut log = Log::default();
    log.accept(0, 1).fault(0, Some(1), 1, latency).push(
        0,
        EventKind::WsOpened {
            conn: 1,
            path: "/ws".into(),
            subprotocol: None,
        },
    );
    log.send(250, 1, "hello");
    for t in [1500, 2500, 3500, 4500] {
        log.ping(t, 1);
    }
    log.stop(5000);
    passes(
        &judge(hb, &[], &log),
        "4 heartbeat(s), longest gap 1.250s (bound 1.300s)",
    );
    // Longer than the tolerance: 800 ms until the app even saw the `101`.
    let slow = r#"{"stream":"latency","latency":"700ms","jitter":"100ms"}"#;
    let mut log = Log::default();
    log.accept(0, 1).fault(0, Some(1), 1, slow).push(
        0,
        EventKind::WsOpened {
            conn: 1,
            path: "/ws".into(),
            subprotocol: None,
        },
    );
    for t in [1800, 2800, 3800] {
        log.ping(t, 1);
    }
    log.stop(4200);
    passes(&judge(hb, &[], &log), "longest gap 1.000s");
    // Upstream latency: the first ping left the app 600 ms before it arrived.
    let up = r#"{"stream":"latency","latency":"600ms","direction":"upstream"}"#;
    let mut log = Log::default();
    log.accept(0, 1).fault(0, Some(1), 1, up).push(
        0,
        EventKind::WsOpened {
            conn: 1,
            path: "/ws".into(),
            subprotocol: None,
        },
    );
    for t in [1600, 2600, 3600] {
        log.ping(t, 1);
    }
    log.stop(4000);
    passes(&judge(hb, &[], &log), "3 heartbeat(s)");
    // Without latency a late first frame hides nothing (the old rule trusted it up to `tolerance`).
    let mut late = Log::default();
    late.open(0, 1)
        .send(250, 1, "hello")
        .ping(1500, 1)
        .ping(2500, 1)
        .stop(3000);
    fails(
        &judge("- heartbeat: { every: 1s, tolerance: 200ms }", &[], &late),
        "1.500s without a heartbeat on conn 1",
    );
    // App-level heartbeats of another type, by glob.
    let mut app = Log::default();
    app.open(0, 1)
        .send(900, 1, "keepalive")
        .send(1900, 1, "keepalive")
        .stop(2500);
    fails(
        &judge(hb, &[], &app),
        "2.500s without a heartbeat on conn 1",
    );
    passes(
        &judge(
            "- heartbeat: { every: 1s, tolerance: 300ms, message: \"keep*\" }",
            &[],
            &app,
        ),
        "2 heartbeat(s), longest gap 1.000s",
    );
}

#[test]
fn dead_link_armed_by_every_fault_that_silences_the_apps_heartbeat() {
    let within = "- detects_dead_link: { within: 2s }";
    // ap_down (no conn on the event) arms every open session; the app reacts by reconnecting.
    let mut ap = Log::default();
    ap.open(0, 1)
        .ping(1000, 1)
        .fault(1500, None, 1, r#"{"device":"ap_down","for":"10s"}"#)
        .refused(2800)
        .stop(9000);
    passes(&judge(within, &[], &ap), "1 dead link(s) detected");
    let mut ap_blind = Log::default();
    ap_blind
        .open(0, 1)
        .ping(1000, 1)
        .fault(1500, None, 1, r#"{"device":"ap_down","for":"10s"}"#)
        .stop(9000);
    fails(
        &judge(within, &[], &ap_blind),
        "link dead from 1.500s on conn 1 (device: ap_down)",
    );
    // ws drop (out) silences an app-level heartbeat, not ping frames.
    let drop = r#"{"ws":"drop","direction":"out"}"#;
    let mut msgs = Log::default();
    msgs.open(0, 1)
        .send(1000, 1, "ping")
        .fault(1000, Some(1), 1, drop)
        .fault(2000, Some(1), 1, drop)
        .stop(9000);
    fails(
        &judge(within, &[], &msgs),
        "link dead from 1.000s on conn 1 (ws: drop)",
    );
    let mut frames = Log::default();
    frames
        .open(0, 1)
        .ping(1000, 1)
        .fault(1000, Some(1), 1, drop)
        .stop(9000);
    let o = judge(within, &[], &frames);
    fails(
        &o,
        "no dead link lasted long enough to judge: 1 silencing fault(s) hit a heartbeat they do not silence",
    );
    assert!(
        o.evidence.iter().any(|e| e
            .note
            .contains("does not silence this app's heartbeat (ping frames)")),
        "{:?}",
        o.evidence
    );
    // suppress_pong silences ping frames; app pings only with `messages:`.
    let mut app = Log::default();
    app.open(0, 1)
        .send(1000, 1, "ping")
        .fault(1200, Some(1), 1, r#"{"ws":"suppress_pong"}"#)
        .stop(9000);
    fails(
        &judge(within, &[], &app),
        "no dead link lasted long enough to judge",
    );
    app.0.clear();
    app.open(0, 1)
        .send(1000, 1, "ping")
        .fault(
            1200,
            Some(1),
            1,
            r#"{"ws":"suppress_pong","messages":"pong"}"#,
        )
        .ws_close_by_client(2500, 1)
        .stop(9000);
    passes(&judge(within, &[], &app), "1 dead link(s) detected");
    // An app with no heartbeat is judged on any silencing fault, and fails when it never notices.
    let mut none = Log::default();
    none.open(0, 1)
        .fault(1200, Some(1), 1, r#"{"ws":"suppress_pong"}"#)
        .stop(9000);
    fails(&judge(within, &[], &none), "neither closed nor reconnected");
    // Nothing armed: the message lists what would.
    let mut nothing = Log::default();
    nothing.open(0, 1).stop(9000);
    fails(
        &judge(within, &[], &nothing),
        "it is armed by `{ device: ap_down }`, `{ stream: half_open }`",
    );
}

#[test]
fn time_windowed_silencing_arms_every_open_session_from_its_start() {
    let within = "- detects_dead_link: { within: 2500ms }";
    let mute = faults("- { name: mute, when: { at: 3s, for: 3s }, fault: { ws: suppress_pong } }");
    // An app that never pings: `suppress_pong` never fires, the link is dead from 3 s anyway.
    let mut silent = Log::default();
    silent.clock(500).open(600, 1).stop(9500);
    let o = judge(within, &mute, &silent);
    fails(
        &o,
        "link dead from 3.000s on conn 1 (ws: suppress_pong); the client neither closed nor reconnected within 2.500s (run ended at 9.000s)",
    );
    // Noticing in time passes (the close comes 2.4 s after the window opened at 3.5 s).
    let mut noticed = Log::default();
    noticed
        .clock(500)
        .open(600, 1)
        .ws_close_by_client(5900, 1)
        .stop(9500);
    passes(&judge(within, &mute, &noticed), "1 dead link(s) detected");
    // A session that opens inside the window is not armed by the window (only a fire would).
    let mut later = Log::default();
    later.clock(500).open(4000, 1).stop(9500);
    fails(&judge(within, &mute, &later), "no fault silenced a link");
    // A rule that picks connections is armed only where it fired.
    let picky =
        faults("- { when: { at: 3s, for: 3s, connections: 2 }, fault: { ws: suppress_pong } }");
    fails(&judge(within, &picky, &silent), "no fault silenced a link");
    // Stream faults are decided at accept: a window does not reach open sessions.
    let stream = faults("- { when: { at: 3s }, fault: { stream: half_open } }");
    fails(&judge(within, &stream, &silent), "no fault silenced a link");
}

impl Log {
    fn ws_close_by_client(&mut self, at: u64, conn: u64) -> &mut Self {
        self.push(
            at,
            EventKind::WsClosed {
                conn,
                by: Side::Client,
                code: Some(1000),
                reason: String::new(),
                clean: true,
            },
        )
    }
}

#[test]
fn scenario_checks_return_every_problem() {
    let none = BTreeMap::new();
    let d = Duration::from_secs(10);
    let e = expectations(
        "- connected: { within: 12s }\n- reconnects: { at: 8s, within: 3s }\n- backoff: {}\n- detects_dead_link: { within: 2s }\n",
    );
    let rules = faults("- { fault: { stream: latency, latency: 100ms } }\n");
    let found = problems(&e, &rules, &none, d);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found[0].starts_with(
            "expect `connected`: `within: 12s` is longer than the scenario's duration"
        ),
        "{}",
        found[0]
    );
    assert!(
        found[1].contains("`at: 8s` + `within: 3s` ends after the scenario's duration"),
        "{}",
        found[1]
    );
    assert!(
        found[2].contains("no fault makes connection attempts fail"),
        "{}",
        found[2]
    );
    assert!(
        found[3].contains("no fault silences a link"),
        "{}",
        found[3]
    );
    // The faults that make them judgeable.
    let rules = faults("- { fault: refuse }\n- { fault: { ws: drop, direction: out } }\n");
    let e = expectations("- backoff: {}\n- detects_dead_link: { within: 2s }\n");
    assert!(problems(&e, &rules, &none, d).is_empty());
    let rules = faults("- { fault: { ws: drop, direction: in } }\n");
    assert_eq!(problems(&e, &rules, &none, d).len(), 2);
}
