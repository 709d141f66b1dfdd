use super::*;

const RULES: &str = r#"
name: rules
state: { led: false, temp: 21.5, label: "x" }
rules:
  - name: get-status
    match: { json: { pointer: /cmd, equals: status } }
    reply: { json: { ok: true, led: "{{ state.led }}", temp: "{{ state.temp }}" } }
  - name: set-led
    match: { json: [ { pointer: /cmd, equals: set }, { pointer: /value, exists: true } ] }
    set: { led: "{{ msg.value }}" }
    reply: { json: { ok: true, was_count: "{{ count }}" } }
  - name: glob
    match: { json: { pointer: /name, glob: "sensor-*" } }
    reply: { text: "glob {{ msg.name }}" }
  - name: regex
    match: { json: { pointer: /id, regex: "^[0-9]{3}$" } }
    reply: { text: "regex {{ msg.id }}" }
  - name: absent
    match: { json: { pointer: /x, exists: false } }
    reply: { text: "no x" }
"#;

#[test]
fn json_matchers_equals_glob_regex_exists_and_lists() {
    let mut d = device(RULES);
    d.on_connect(1, &start(), 0);
    assert_eq!(
        bodies(&mut d, 1, r#"{"cmd":"status"}"#, 1),
        [r#"{"ok":true,"led":false,"temp":21.5}"#]
    );
    // `set` without `value` fails the second condition and falls through to `absent`.
    assert_eq!(bodies(&mut d, 1, r#"{"cmd":"set"}"#, 1), ["no x"]);
    assert_eq!(
        bodies(&mut d, 1, r#"{"cmd":"set","value":true}"#, 1),
        [r#"{"ok":true,"was_count":1}"#]
    );
    assert_eq!(d.state()["led"], json!(true));
    assert_eq!(
        bodies(&mut d, 1, r#"{"name":"sensor-7","x":1}"#, 1),
        ["glob sensor-7"]
    );
    assert_eq!(bodies(&mut d, 1, r#"{"id":"123","x":1}"#, 1), ["regex 123"]);
    assert!(bodies(&mut d, 1, r#"{"id":"1234","x":1}"#, 1).is_empty());
    // Not JSON: no JSON rule matches.
    assert!(bodies(&mut d, 1, "status", 1).is_empty());
    // Numbers compare by value.
    let mut d = device(
        "name: n\nrules:\n  - name: one\n    match: { json: { pointer: /v, equals: 1 } }\n    reply: { text: one }\n",
    );
    assert_eq!(bodies(&mut d, 1, r#"{"v":1.0}"#, 0), ["one"]);
    assert!(bodies(&mut d, 1, r#"{"v":"1"}"#, 0).is_empty());
}

#[test]
fn state_carries_across_messages_and_replies_see_the_new_value() {
    let mut d = device(
        r#"
name: counter
state: { n: 0, name: "" }
rules:
  - name: inc
    match: { text: { exact: inc } }
    set: { n: "{{ state.n + 1 }}" }
    reply: { json: { n: "{{ state.n }}" } }
  - name: rename
    match: { json: { pointer: /name } }
    set: { name: "dev-{{ msg.name }}" }
    reply: { text: "{{ state.name }}" }
"#,
    );
    assert_eq!(bodies(&mut d, 1, "inc", 0), [r#"{"n":1}"#]);
    assert_eq!(bodies(&mut d, 1, "inc", 0), [r#"{"n":2}"#]);
    assert_eq!(bodies(&mut d, 2, r#"{"name":"a"}"#, 0), ["dev-a"]);
    assert_eq!(d.state()["n"], json!(2));
    d.set_state("n", json!(40)).unwrap();
    assert_eq!(bodies(&mut d, 1, "inc", 0), [r#"{"n":41}"#]);
    let err = d.set_state("nope", json!(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown state variable `nope` (hint: the file declares: n, name)"
    );
}

#[test]
fn typed_templates_keep_their_type_and_mixed_ones_are_strings() {
    let mut d = device(
        r#"
name: types
state: { n: 3, cfg: { a: [1, 2] } }
rules:
  - name: r
    reply:
      json:
        int: "{{ state.n }}"
        float: "{{ state.n / 2 }}"
        bool: "{{ state.n > 2 }}"
        object: "{{ state.cfg }}"
        mixed: "n={{ state.n }} {{ state.n > 2 }} {{ state.cfg }} {{ none }}"
        missing: "{{ msg.nothing.here }}"
        literal: [1, "two", null]
"#,
    );
    assert_eq!(
        bodies(&mut d, 1, "{}", 0),
        [
            r#"{"int":3,"float":1.5,"bool":true,"object":{"a":[1,2]},"mixed":"n=3 true {\"a\":[1,2]} null","missing":null,"literal":[1,"two",null]}"#
        ]
    );
}

#[test]
fn text_matchers_exact_glob_and_regex_with_captures() {
    let mut d = device(
        r#"
name: text
state: { led: 0 }
rules:
  - name: led-text
    match: { text: { regex: "^LED=(0|1)(?:;(x))?$" } }
    set: { led: "{{ msg.captures[1] | int }}" }
    reply: { text: "OK {{ msg.captures[0] }} {{ msg.captures[2] is none }} {{ msg.len }}" }
  - name: hello
    match: { text: { glob: "hel*o" } }
    reply: { text: "hi {{ msg.text }}" }
  - name: bye
    match: { text: { exact: bye } }
    close: { code: 1000, reason: bye }
"#,
    );
    d.on_connect(1, &start(), 0);
    assert_eq!(bodies(&mut d, 1, "LED=1", 0), ["OK LED=1 true 5"]);
    assert_eq!(d.state()["led"], json!(1));
    assert_eq!(bodies(&mut d, 1, "hello", 0), ["hi hello"]);
    assert!(bodies(&mut d, 1, "LED=2", 0).is_empty());
    assert_eq!(
        text(&mut d, 1, "bye", 0),
        [("s1".into(), "close 1000 bye".into(), "close".into())]
    );
}

#[test]
fn binary_matcher_and_binary_replies() {
    let mut d = device(
        r#"
name: bin
rules:
  - name: bin
    match: { binary: { prefix: "a5 01", min_len: 3, max_len: 4 } }
    reply:
      - binary: { hex: "a5 81 00" }
      - binary: { base64: "AQID" }
      - binary: { hex: "{{ msg.hex[4:] }}" }
      - text: "{{ msg.len }} {{ msg.bytes[2] }}"
"#,
    );
    let out = sends(&d.on_message(1, Frame::Binary(&[0xa5, 0x01, 0x7f]), 0));
    let bodies: Vec<_> = out.into_iter().map(|(_, b, l)| (b, l)).collect();
    assert_eq!(
        bodies,
        [
            ("hex:a58100".to_owned(), "bin".to_owned()),
            ("hex:010203".to_owned(), "bin".to_owned()),
            ("hex:7f".to_owned(), "bin".to_owned()),
            ("3 127".to_owned(), "bin".to_owned()),
        ]
    );
    assert!(
        d.on_message(1, Frame::Binary(&[0xa5, 0x01]), 0).is_empty(),
        "too short"
    );
    assert!(
        d.on_message(1, Frame::Binary(&[0xa5, 0x01, 0, 0, 0]), 0)
            .is_empty(),
        "too long"
    );
    assert!(
        d.on_message(1, Frame::Binary(&[0xa5, 0x02, 0]), 0)
            .is_empty(),
        "prefix"
    );
    assert!(d.on_message(1, Frame::Text("a5"), 0).is_empty(), "text");
}

#[test]
fn reply_broadcast_and_others_reach_their_recipients_in_order() {
    let mut d = device(
        r#"
name: fanout
rules:
  - name: r
    reply: [ { text: me }, { text: everyone, to: all }, { text: rest, to: others } ]
    broadcast: { text: b }
"#,
    );
    assert_eq!(
        text(&mut d, 4, "x", 0),
        [
            ("s4".into(), "me".into(), "r".into()),
            ("all".into(), "everyone".into(), "r".into()),
            ("others4".into(), "rest".into(), "r".into()),
            ("all".into(), "b".into(), "r".into()),
        ]
    );
}

#[test]
fn unmatched_policies_ignore_reply_and_close() {
    let base = "name: u\nrules:\n  - name: ok\n    match: { text: { exact: ok } }\n    reply: { text: fine }\n";
    let mut d = device(base);
    assert!(text(&mut d, 1, "what", 0).is_empty());
    let mut d = device(&format!("{base}unmatched: ignore\n"));
    assert!(text(&mut d, 1, "what", 0).is_empty());
    let mut d = device(&format!(
        "{base}unmatched:\n  reply: {{ json: {{ error: unknown, got: \"{{{{ msg.text }}}}\" }} }}\n"
    ));
    assert_eq!(
        text(&mut d, 1, "what", 0),
        [(
            "s1".into(),
            r#"{"error":"unknown","got":"what"}"#.into(),
            "unmatched".into()
        )]
    );
    let mut d = device(&format!(
        "{base}unmatched: {{ close: {{ code: 1003, reason: unsupported }} }}\n"
    ));
    d.on_connect(1, &start(), 0);
    assert_eq!(
        text(&mut d, 1, "what", 0),
        [("s1".into(), "close 1003 unsupported".into(), "close".into())]
    );
    assert_eq!(bodies(&mut d, 1, "ok", 0), ["fine"]);
}

#[test]
fn on_connect_messages_see_the_query_and_headers() {
    let mut d = device(
        r#"
name: hello
state: { fw: "1.0" }
websocket:
  path: /socket
  subprotocol: greenhouse.v1
  on_connect:
    - json: { event: hello, fw: "{{ state.fw }}", id: "{{ session }}", q: "{{ query.token }}", ua: "{{ headers['user-agent'] }}" }
"#,
    );
    let headers = [("User-Agent".to_owned(), "app/2".to_owned())];
    let s = SessionStart {
        path: "/socket",
        query: Some("token=a%20b"),
        headers: &headers,
        authorized: true,
    };
    assert_eq!(
        sends(&d.on_connect(9, &s, 0)),
        [(
            "s9".into(),
            r#"{"event":"hello","fw":"1.0","id":9,"q":"a b","ua":"app/2"}"#.into(),
            "on_connect".into()
        )]
    );
    let file = parse("name: d\n", Path::new("d.yaml")).unwrap();
    assert_eq!(
        file.endpoints(),
        [crate::Endpoint {
            path: "/ws".into(),
            subprotocol: None
        }]
    );
    assert_eq!(file.name(), "d");
}

#[test]
fn a_delayed_reply_is_released_by_the_tick_at_its_deadline_and_dropped_on_disconnect() {
    let yaml = r#"
name: slow
rules:
  - name: slow
    match: { text: { exact: slow } }
    reply: [ { text: now }, { text: "later {{ uptime_ms }}", after: 250ms } ]
"#;
    let mut d = device(yaml);
    d.power_on(1000);
    d.on_connect(1, &start(), 1000);
    assert_eq!(bodies(&mut d, 1, "slow", 1100), ["now"]);
    assert_eq!(d.next_deadline(), Some(1350));
    assert!(d.on_tick(1349).is_empty());
    assert_eq!(
        sends(&d.on_tick(1350)),
        [("s1".into(), "later 100".into(), "slow".into())]
    );
    assert_eq!(d.next_deadline(), None);
    assert!(d.on_tick(5000).is_empty());

    bodies(&mut d, 1, "slow", 2000);
    assert_eq!(d.next_deadline(), Some(2250));
    d.on_disconnect(1, 2100);
    assert_eq!(d.next_deadline(), None);
    assert!(d.on_tick(3000).is_empty());
}

const STREAM: &str = r#"
name: stream
periodic:
  telemetry:
    every: 1s
    send: { json: { seq: "{{ seq }}", s: "{{ session }}" } }
  beacon:
    every: 500ms
    start: on_connect
    scope: broadcast
    send: { text: "beacon {{ seq }}" }
rules:
  - name: start-stream
    match: { text: { exact: start } }
    start: telemetry
  - name: stop-stream
    match: { text: { exact: stop } }
    stop: telemetry
"#;

#[test]
fn a_periodic_sends_once_per_tick_counts_seq_and_stops() {
    let mut d = device(
        &STREAM
            .replace("    start: on_connect\n", "")
            .replace("scope: broadcast", "scope: session"),
    );
    d.on_connect(1, &start(), 0);
    assert_eq!(
        d.next_deadline(),
        None,
        "on_message periodics wait for `start:`"
    );
    assert!(bodies(&mut d, 1, "start", 100).is_empty());
    assert_eq!(d.next_deadline(), Some(1100));
    assert!(d.on_tick(1099).is_empty());
    assert_eq!(
        sends(&d.on_tick(1100)),
        [("s1".into(), r#"{"seq":0,"s":1}"#.into(), "telemetry".into())]
    );
    // A late tick sends once (no burst) and the next deadline is one interval after it.
    assert_eq!(
        sends(&d.on_tick(5000)),
        [("s1".into(), r#"{"seq":1,"s":1}"#.into(), "telemetry".into())]
    );
    assert_eq!(d.next_deadline(), Some(6000));
    // Starting again does not restart it.
    bodies(&mut d, 1, "start", 5500);
    assert_eq!(d.next_deadline(), Some(6000));
    assert_eq!(bodies_of(&d.on_tick(6000)), [r#"{"seq":2,"s":1}"#]);
    bodies(&mut d, 1, "stop", 6100);
    assert_eq!(d.next_deadline(), None);
}

fn bodies_of(effects: &[Effect]) -> Vec<String> {
    sends(effects).into_iter().map(|(_, b, _)| b).collect()
}

#[test]
fn session_and_broadcast_periodics_follow_their_sessions() {
    let mut d = device(STREAM);
    d.on_connect(1, &start(), 0);
    d.on_connect(2, &start(), 100);
    bodies(&mut d, 1, "start", 200);
    bodies(&mut d, 2, "start", 300);
    // The broadcast beacon runs once for the device, from the first connect.
    assert_eq!(
        sends(&d.on_tick(500)),
        [("all".into(), "beacon 0".into(), "beacon".into())]
    );
    assert_eq!(
        sends(&d.on_tick(1300)),
        [
            ("all".into(), "beacon 1".into(), "beacon".into()),
            ("s1".into(), r#"{"seq":0,"s":1}"#.into(), "telemetry".into()),
            ("s2".into(), r#"{"seq":0,"s":2}"#.into(), "telemetry".into()),
        ]
    );
    d.on_disconnect(1, 1400);
    assert_eq!(
        bodies_of(&d.on_tick(2300)),
        ["beacon 2", r#"{"seq":1,"s":2}"#]
    );
    d.on_disconnect(2, 2400);
    assert_eq!(
        d.next_deadline(),
        None,
        "the beacon ends with the last session"
    );
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
    let yaml = r#"
name: random
rules:
  - name: r
    reply: { json: { i: "{{ random(1, 1000000) }}", f: "{{ random(0.0, 1.0) }}", w: "{{ walk('t', 18, 26, 0.3) }}", s: "{{ sine(1000, 0, 10) }}" } }
"#;
    let run = |seed: u64| {
        let mut d = parse(yaml, Path::new("r.yaml"))
            .unwrap()
            .device(seed)
            .unwrap();
        d.power_on(0);
        (0..5)
            .flat_map(|i| bodies(&mut d, 1, "x", i * 250))
            .collect::<Vec<_>>()
    };
    let a = run(1);
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
    let first: serde_json::Value = serde_json::from_str(&a[0]).unwrap();
    let w = first["w"].as_f64().unwrap();
    assert!(
        (21.7..=22.3).contains(&w),
        "a walk starts in the middle: {w}"
    );
    assert_eq!(first["s"], json!(5.0), "sine at uptime 0 is the middle");
    let i = first["i"].as_i64().unwrap();
    assert!((1..=1_000_000).contains(&i));
}

#[test]
fn power_on_keeps_persistent_state_and_resets_the_rest() {
    let mut d = device(
        r#"
name: nvs
state:
  ram: 1
  fw: { value: "1.0", persist: true }
  cfg: { value: 1, other: 2 }
periodic:
  t: { every: 1s, start: on_connect, send: { text: t } }
rules:
  - name: set
    set: { ram: 2, fw: "2.0" }
    reply: { text: "{{ count }}", after: 1s }
"#,
    );
    assert_eq!(d.state()["cfg"], json!({"value": 1, "other": 2}));
    d.on_connect(1, &start(), 0);
    bodies(&mut d, 1, "x", 0);
    assert_eq!(d.state()["ram"], json!(2));
    assert!(d.next_deadline().is_some());
    d.power_on(10_000);
    assert_eq!(d.state()["ram"], json!(1));
    assert_eq!(d.state()["fw"], json!("2.0"));
    assert_eq!(d.next_deadline(), None, "timers are RAM");
    d.on_connect(1, &start(), 10_000);
    bodies(&mut d, 1, "x", 10_000);
    assert_eq!(
        bodies_of(&d.on_tick(11_000)),
        ["t", "1"],
        "the rule count restarted"
    );
}

const ROUTES: &str = r#"
name: web
state: { ssid: "", hits: 0 }
http:
  - name: status
    method: GET
    path: /api/status
    json: { ssid: "{{ state.ssid }}", hits: "{{ count }}" }
  - method: GET
    path: /api/q
    query: { mode: sta }
    headers: { X-Key: abc }
    text: "mode {{ query.mode }} key {{ headers['x-key'] }}"
  - name: save
    method: POST
    path: /wifi
    body: { json: { pointer: /ssid, exists: true } }
    set: { ssid: "{{ body.ssid }}" }
    status: 201
    text: saved
  - name: form
    method: POST
    path: /form
    set: { ssid: "{{ body.ssid }}" }
    response_headers: { Content-Type: text/html, Cache-Control: no-store }
    text: "<p>{{ body.ssid }}</p>"
  - name: raw
    method: PUT
    path: /raw
    body: { binary: { prefix: "00" } }
    binary: { base64: "AAE=" }
  - name: empty
    method: DELETE
    path: /api/status
    status: 204
"#;

#[test]
fn http_routes_match_method_path_query_headers_and_body() {
    let mut d = device(ROUTES);
    let none: &[(String, String)] = &[];
    let r = d
        .on_http(&http("GET", "/api/status", None, none, b""), 0)
        .unwrap();
    assert_eq!(
        (r.status, r.label.as_str(), r.body.as_slice()),
        (200, "status", br#"{"ssid":"","hits":1}"#.as_slice())
    );
    assert_eq!(
        r.headers,
        [("Content-Type".to_owned(), "application/json".to_owned())]
    );

    assert!(
        d.on_http(&http("GET", "/nope", None, none, b""), 0)
            .is_none()
    );
    assert!(
        d.on_http(&http("POST", "/api/status", None, none, b""), 0)
            .is_none()
    );

    let key = [("x-KEY".to_owned(), "abc".to_owned())];
    assert!(
        d.on_http(&http("GET", "/api/q", Some("mode=sta"), none, b""), 0)
            .is_none()
    );
    let r = d
        .on_http(&http("GET", "/api/q", Some("a=1&mode=sta"), &key, b""), 0)
        .unwrap();
    assert_eq!(r.label, "GET /api/q");
    assert_eq!(r.body, b"mode sta key abc");
    assert_eq!(
        r.headers,
        [("Content-Type".to_owned(), "text/plain".to_owned())]
    );

    assert!(
        d.on_http(&http("POST", "/wifi", None, none, br#"{"pass":"x"}"#), 0)
            .is_none()
    );
    let r = d
        .on_http(&http("POST", "/wifi", None, none, br#"{"ssid":"home"}"#), 0)
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (201, b"saved".as_slice()));
    assert_eq!(d.state()["ssid"], json!("home"));

    let form = [(
        "Content-Type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let r = d
        .on_http(&http("POST", "/form", None, &form, b"ssid=my+net%21"), 0)
        .unwrap();
    assert_eq!(r.body, b"<p>my net!</p>");
    assert_eq!(
        r.headers,
        [
            ("Content-Type".to_owned(), "text/html".to_owned()),
            ("Cache-Control".to_owned(), "no-store".to_owned())
        ]
    );

    let r = d
        .on_http(&http("PUT", "/raw", None, none, &[0, 9]), 0)
        .unwrap();
    assert_eq!(r.body, [0, 1]);
    assert_eq!(
        r.headers,
        [(
            "Content-Type".to_owned(),
            "application/octet-stream".to_owned()
        )]
    );
    assert!(
        d.on_http(&http("PUT", "/raw", None, none, &[1]), 0)
            .is_none()
    );

    let r = d
        .on_http(&http("DELETE", "/api/status", None, none, b""), 0)
        .unwrap();
    assert_eq!((r.status, r.body.len(), r.headers.len()), (204, 0, 0));

    let r = d
        .on_http(&http("GET", "/api/status", None, none, b""), 0)
        .unwrap();
    assert_eq!(r.body, br#"{"ssid":"my net!","hits":2}"#);
}

#[test]
fn a_template_that_fails_at_run_time_drops_its_message_and_is_reported() {
    let mut d = device(
        r#"
name: fail
rules:
  - name: boom
    reply: [ { text: "{{ msg.text + 1 }}" }, { text: still } ]
"#,
    );
    assert_eq!(bodies(&mut d, 1, "x", 0), ["still"]);
    let errors: Vec<&str> = d.render_errors().collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("boom: "), "{errors:?}");
}

#[test]
fn rules_are_tried_in_order_and_the_first_match_wins() {
    let mut d = device(
        r#"
name: order
rules:
  - name: first
    match: { text: { glob: "a*" } }
    reply: { text: first }
  - name: second
    match: { text: { exact: abc } }
    reply: { text: second }
  - name: catch-all
    reply: { text: "any {{ msg.text }}" }
"#,
    );
    assert_eq!(text(&mut d, 1, "abc", 0)[0].1, "first");
    assert_eq!(
        text(&mut d, 1, "zzz", 0)[0],
        ("s1".into(), "any zzz".into(), "catch-all".into())
    );
}

#[test]
fn the_greenhouse_example_parses_and_behaves() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/devices/greenhouse.yaml");
    let file = crate::load(&path).unwrap();
    assert_eq!(file.name(), "greenhouse");
    assert_eq!(file.endpoints()[0].path, "/ws");
    let mut d = file.device(42).unwrap();
    d.power_on(0);
    assert_eq!(
        bodies_of(&d.on_connect(1, &start(), 10)),
        [r#"{"event":"hello","fw":"1.4.2","relay":false}"#]
    );
    d.on_connect(2, &start(), 20);
    assert_eq!(
        bodies(&mut d, 1, r#"{"cmd":"status"}"#, 30),
        [r#"{"ok":true,"relay":false,"target":22}"#]
    );
    assert_eq!(
        text(&mut d, 1, r#"{"cmd":"relay","on":true}"#, 40),
        [
            ("s1".into(), r#"{"ok":true}"#.into(), "set-relay".into()),
            (
                "others1".into(),
                r#"{"event":"relay","on":true}"#.into(),
                "set-relay".into()
            ),
        ]
    );
    assert_eq!(bodies(&mut d, 2, "ping", 50), ["pong"]);
    assert_eq!(
        bodies(&mut d, 2, r#"{"cmd":"fly"}"#, 60),
        [r#"{"ok":false,"error":"unknown_command"}"#]
    );
    assert_eq!(
        bodies(&mut d, 1, r#"{"cmd":"subscribe"}"#, 100),
        [r#"{"ok":true,"every_ms":1000}"#]
    );
    let tick = sends(&d.on_tick(1100));
    assert_eq!(tick.len(), 1);
    assert_eq!(
        (tick[0].0.as_str(), tick[0].2.as_str()),
        ("s1", "telemetry")
    );
    let t: serde_json::Value = serde_json::from_str(&tick[0].1).unwrap();
    assert_eq!(
        (t["seq"].clone(), t["relay"].clone()),
        (json!(0), json!(true))
    );
    assert!((15.0..=35.0).contains(&t["temp"].as_f64().unwrap()));

    let none: &[(String, String)] = &[];
    let r = d
        .on_http(
            &http("POST", "/api/wifi", None, none, br#"{"ssid":"farm"}"#),
            200,
        )
        .unwrap();
    assert_eq!((r.status, r.label.as_str()), (200, "save-wifi"));
    assert_eq!(r.body, br#"{"ok":true,"ssid":"farm"}"#);
    let r = d
        .on_http(&http("POST", "/api/wifi", None, none, b"{}"), 200)
        .unwrap();
    assert_eq!((r.status, r.label.as_str()), (400, "bad-wifi"));
    let r = d
        .on_http(&http("GET", "/api/status", None, none, b""), 200)
        .unwrap();
    assert_eq!(r.body, br#"{"fw":"1.4.2","ssid":"farm"}"#);

    d.power_on(5000);
    assert_eq!(d.state()["relay"], json!(false));
    assert_eq!(d.state()["ssid"], json!(""));
    assert_eq!(d.state()["fw"], json!("1.4.2"));
}

#[test]
fn the_device_is_send_and_debug() {
    fn check<T: Send + std::fmt::Debug>() {}
    check::<FileDevice>();
}

#[test]
fn equals_null_and_the_whole_document_pointer_match() {
    let mut d = device(
        r#"
name: nulls
rules:
  - name: null-value
    match: { json: { pointer: /v, equals: null } }
    reply: { text: "null" }
  - name: any-string
    match: { json: { pointer: "", glob: "*" } }
    reply: { text: string }
  - name: any-json
    match: { json: {} }
    reply: { text: json }
"#,
    );
    assert_eq!(bodies(&mut d, 1, r#"{"v":null}"#, 0), ["null"]);
    assert_eq!(bodies(&mut d, 1, r#""hello""#, 0), ["string"]);
    assert_eq!(bodies(&mut d, 1, r#"{"v":1}"#, 0), ["json"]);
    assert!(bodies(&mut d, 1, "not json", 0).is_empty());
}

#[test]
fn an_http_template_that_fails_answers_500_with_the_reason() {
    let mut d = device(
        "name: h\nhttp:\n  - { name: boom, method: GET, path: /x, text: \"{{ body + 1 }}\" }\n",
    );
    let none: &[(String, String)] = &[];
    let r = d
        .on_http(&http("GET", "/x", None, none, b"abc"), 0)
        .unwrap();
    assert_eq!((r.status, r.label.as_str()), (500, "boom"));
    assert!(String::from_utf8_lossy(&r.body).starts_with("device file template error in boom: "));
    assert_eq!(d.render_errors().count(), 1);
}

/// Two endpoints: each has its own `on_connect`; a rule limited to one does not see (or label)
/// the other's messages; a broadcast periodic limited to one reaches only its sessions and ends
/// with the last of them.
#[test]
fn endpoints_have_their_own_greeting_rules_and_periodics() {
    let yaml = "name: two\n\
        websocket:\n\
        \x20 - { path: /ws, subprotocol: ctl.v1, on_connect: { text: control } }\n\
        \x20 - { path: /log, on_connect: { text: log } }\n\
        rules:\n\
        \x20 - { name: led, endpoint: /ws, match: { text: { exact: led } }, reply: { text: ok } }\n\
        unmatched: ignore\n\
        periodic:\n\
        \x20 lines: { every: 1s, start: on_connect, scope: broadcast, endpoint: /log, send: { text: \"line {{ seq }}\" } }\n";
    let file = parse(yaml, Path::new("t.yaml")).unwrap();
    let paths: Vec<(String, Option<String>)> = file
        .endpoints()
        .into_iter()
        .map(|e| (e.path, e.subprotocol))
        .collect();
    assert_eq!(
        paths,
        [("/ws".into(), Some("ctl.v1".into())), ("/log".into(), None)]
    );
    let mut d = file.device(1).unwrap();
    let on = |path| SessionStart {
        path,
        query: None,
        headers: &[],
        authorized: true,
    };
    assert_eq!(bodies_of(&d.on_connect(1, &on("/ws"), 0)), ["control"]);
    assert_eq!(bodies_of(&d.on_connect(2, &on("/log"), 10)), ["log"]);
    assert_eq!(d.label(1, Frame::Text("led")).as_deref(), Some("led"));
    assert_eq!(d.label(2, Frame::Text("led")).as_deref(), Some("unmatched"));
    assert_eq!(bodies(&mut d, 1, "led", 20), ["ok"]);
    assert!(bodies(&mut d, 2, "led", 30).is_empty(), "not on /log");
    assert_eq!(
        sends(&d.on_tick(1010)),
        [("s2".into(), "line 0".into(), "lines".into())],
        "the /log broadcast skips the /ws session"
    );
    d.on_disconnect(2, 1100);
    assert_eq!(
        d.next_deadline(),
        None,
        "no /log session left: the broadcast ends though /ws is open"
    );
}
