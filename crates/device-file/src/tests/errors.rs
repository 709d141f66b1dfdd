use super::*;

const H: &str = "name: bad\n";

fn cases() -> Vec<(&'static str, String)> {
    let many_rules: String = (0..257).map(|i| format!("  - name: r{i}\n")).collect();
    vec![
        ("unknown top-level field", format!("{H}rulez: []\n")),
        (
            "unknown rule field",
            format!("{H}rules:\n  - name: a\n    replly: {{ text: x }}\n"),
        ),
        (
            "bad text regex",
            format!("{H}rules:\n  - name: a\n    match: {{ text: {{ regex: \"(\" }} }}\n"),
        ),
        (
            "bad json regex",
            format!(
                "{H}rules:\n  - name: a\n    match:\n      json: {{ pointer: /id, regex: \"[z-a]\" }}\n"
            ),
        ),
        (
            "bad template",
            format!(
                "{H}state: {{ led: false }}\nrules:\n  - name: a\n    reply: {{ json: {{ led: \"{{{{ state.led \" }} }}\n"
            ),
        ),
        (
            "bad hex prefix",
            format!("{H}rules:\n  - name: a\n    match: {{ binary: {{ prefix: \"a5 0\" }} }}\n"),
        ),
        (
            "bad hex reply",
            format!("{H}rules:\n  - name: a\n    reply: {{ binary: {{ hex: zz }} }}\n"),
        ),
        (
            "bad base64",
            format!("{H}rules:\n  - name: a\n    reply:\n      - binary: {{ base64: \"@@@\" }}\n"),
        ),
        (
            "pointer without slash",
            format!(
                "{H}rules:\n  - name: a\n    match: {{ json: {{ pointer: cmd, equals: x }} }}\n"
            ),
        ),
        (
            "unknown periodic",
            format!(
                "{H}periodic:\n  tele: {{ every: 1s, send: {{ text: t }} }}\nrules:\n  - name: a\n    start: telemetry\n"
            ),
        ),
        (
            "zero interval",
            format!("{H}periodic:\n  tele:\n    every: 0s\n    send: {{ text: t }}\n"),
        ),
        (
            "interval over a day",
            format!("{H}periodic:\n  tele:\n    every: 25h\n    send: {{ text: t }}\n"),
        ),
        (
            "delay over an hour",
            format!("{H}rules:\n  - name: a\n    reply: {{ text: t, after: 2h }}\n"),
        ),
        (
            "close code 1005",
            format!("{H}rules:\n  - name: a\n    close: {{ code: 1005 }}\n"),
        ),
        (
            "close code 5000",
            format!("{H}unmatched:\n  close: {{ code: 5000, reason: x }}\n"),
        ),
        (
            "duplicate rule",
            format!("{H}rules:\n  - name: a\n  - name: b\n  - name: a\n"),
        ),
        (
            "set unknown state",
            format!(
                "{H}state: {{ led: false }}\nrules:\n  - name: a\n    set: {{ led: true, lde: false }}\n"
            ),
        ),
        (
            "template reads unknown state",
            format!(
                "{H}state: {{ led: false }}\nrules:\n  - name: a\n    reply: {{ text: \"{{{{ state.lde }}}}\" }}\n"
            ),
        ),
        ("too many rules", format!("{H}rules:\n{many_rules}")),
        (
            "bad duration",
            format!("{H}rules:\n  - name: a\n    reply: {{ text: t, after: 5 s }}\n"),
        ),
        (
            "two bodies",
            format!(
                "{H}rules:\n  - name: a\n    reply: [ {{ text: t }}, {{ text: t, json: 1 }} ]\n"
            ),
        ),
        (
            "two matchers",
            format!(
                "{H}rules:\n  - name: a\n    match:\n      text: {{ exact: a }}\n      binary: {{ min_len: 1 }}\n"
            ),
        ),
        (
            "bad glob",
            format!("{H}rules:\n  - name: a\n    match: {{ text: {{ glob: \"[a\" }} }}\n"),
        ),
        (
            "lower-case method",
            format!("{H}http:\n  - {{ method: get, path: /x }}\n"),
        ),
        (
            "status 700",
            format!("{H}http:\n  - {{ method: GET, path: /x, status: 700 }}\n"),
        ),
        (
            "path without slash",
            format!("{H}http:\n  - {{ method: GET, path: x }}\n"),
        ),
        ("state name", format!("{H}state:\n  my-led: false\n")),
        (
            "to in periodic",
            format!("{H}periodic:\n  p:\n    every: 1s\n    send: {{ text: t, to: all }}\n"),
        ),
        (
            "msg in http",
            format!("{H}http:\n  - {{ method: GET, path: /x, text: \"{{{{ msg.a }}}}\" }}\n"),
        ),
        (
            "yes is not a bool",
            format!(
                "{H}rules:\n  - name: a\n    match: {{ json: {{ pointer: /a, exists: yes }} }}\n"
            ),
        ),
        (
            "two json tests",
            format!(
                "{H}rules:\n  - name: a\n    match:\n      json:\n        - {{ pointer: /a, equals: 1, exists: true }}\n"
            ),
        ),
        (
            "min above max",
            format!(
                "{H}rules:\n  - name: a\n    match: {{ binary: {{ min_len: 4, max_len: 2 }} }}\n"
            ),
        ),
        (
            "duplicate endpoint",
            format!("{H}websocket:\n  - {{ path: /ws }}\n  - {{ path: /ws }}\n"),
        ),
        (
            "unknown endpoint",
            format!("{H}websocket: {{ path: /ctl }}\nrules:\n  - {{ name: a, endpoint: /ws }}\n"),
        ),
    ]
}

/// (case, line, column, the error's first line): every problem names its value's position.
const EXPECTED: &[(&str, u64, u64, &str)] = &[
    (
        "unknown top-level field",
        2,
        1,
        "t.yaml:2:1: unknown field `rulez`, expected one of name, description, websocket, state, rules, unmatched, periodic, http",
    ),
    (
        "unknown rule field",
        4,
        5,
        "t.yaml:4:5: unknown field `replly`, expected one of name, endpoint, match, set, reply, broadcast, close, start, stop",
    ),
    (
        "bad text regex",
        4,
        29,
        "t.yaml:4:29: invalid regex `(`: unclosed group (hint: the syntax is Rust's `regex` crate: https://docs.rs/regex)",
    ),
    (
        "bad json regex",
        5,
        36,
        "t.yaml:5:36: invalid regex `[z-a]`: invalid character class range, the start must be <= the end (hint: the syntax is Rust's `regex` crate: https://docs.rs/regex)",
    ),
    (
        "bad template",
        5,
        27,
        "t.yaml:5:27: invalid template: syntax error: unexpected end of input, expected end of variable block (hint: see https://docs.rs/minijinja for the template syntax)",
    ),
    (
        "bad hex prefix",
        4,
        32,
        "t.yaml:4:32: invalid hex `a5 0`: Odd number of digits (hint: write bytes as hex digits, optionally separated by spaces: \"a5 01\")",
    ),
    (
        "bad hex reply",
        4,
        29,
        "t.yaml:4:29: invalid hex `zz`: Invalid character 'z' at position 0",
    ),
    (
        "bad base64",
        5,
        27,
        "t.yaml:5:27: invalid base64 `@@@`: Invalid symbol 64, offset 0",
    ),
    (
        "pointer without slash",
        4,
        31,
        "t.yaml:4:31: invalid JSON pointer `cmd` (hint: a JSON pointer (RFC 6901) is empty or starts with `/`, e.g. `/cmd` or `/data/0/id`; `~` is written `~0`, `/` in a key `~1`)",
    ),
    (
        "unknown periodic",
        6,
        12,
        "t.yaml:6:12: unknown periodic message `telemetry` (hint: declared: tele)",
    ),
    (
        "zero interval",
        4,
        12,
        "t.yaml:4:12: interval 0ms is out of range (hint: a periodic message repeats every 10ms to 24h)",
    ),
    (
        "interval over a day",
        4,
        12,
        "t.yaml:4:12: interval 90000000ms is out of range (hint: a periodic message repeats every 10ms to 24h)",
    ),
    (
        "delay over an hour",
        4,
        30,
        "t.yaml:4:30: delay 7200000ms is more than 1h (hint: a delayed message waits at most 1h)",
    ),
    (
        "close code 1005",
        4,
        20,
        "t.yaml:4:20: close code 1005 cannot be sent (hint: use 1000–1003, 1007–1014 or 3000–4999 (1004–1006 and 1015 are never sent, 1016–2999 are reserved))",
    ),
    (
        "close code 5000",
        3,
        18,
        "t.yaml:3:18: close code 5000 cannot be sent (hint: use 1000–1003, 1007–1014 or 3000–4999 (1004–1006 and 1015 are never sent, 1016–2999 are reserved))",
    ),
    (
        "duplicate rule",
        5,
        11,
        "t.yaml:5:11: duplicate rule name `a` (hint: rule names label what a rule sends; rule 1 already has this one)",
    ),
    (
        "set unknown state",
        5,
        23,
        "t.yaml:5:23: `set` names unknown state variable `lde` (hint: declared: led; declare new ones under `state:`)",
    ),
    (
        "template reads unknown state",
        5,
        20,
        "t.yaml:5:20: unknown state variable `lde` in a template (hint: declared: led)",
    ),
    (
        "too many rules",
        3,
        3,
        "t.yaml:3:3: 257 rules, more than 256 (hint: merge rules that differ only in a value with a `regex` or `glob` matcher)",
    ),
    (
        "bad duration",
        4,
        30,
        "t.yaml:4:30: invalid duration `5 s`: no space between a number and its unit (write digits with a unit ms, s, m or h, e.g. \"500ms\", \"20s\", \"2m\", \"1h 30m\")",
    ),
    (
        "two bodies",
        4,
        27,
        "t.yaml:4:27: a message needs exactly one of `json`, `text` or `binary`",
    ),
    (
        "two matchers",
        5,
        7,
        "t.yaml:5:7: a matcher needs exactly one of `json`, `text` or `binary`",
    ),
    (
        "bad glob",
        4,
        28,
        "t.yaml:4:28: invalid glob: error parsing glob '[a': unclosed character class; missing ']' (hint: `*` any text, `?` one character, `[abc]` a class, `{a,b}` alternatives)",
    ),
    (
        "lower-case method",
        3,
        15,
        "t.yaml:3:15: invalid HTTP method `get` (hint: write it in upper case: GET, POST, PUT, DELETE, …)",
    ),
    (
        "status 700",
        3,
        38,
        "t.yaml:3:38: HTTP status 700 is out of range (hint: a status is 100–599)",
    ),
    (
        "path without slash",
        3,
        26,
        "t.yaml:3:26: invalid path `x` (hint: a path starts with `/` and has no spaces or query (match a query with `query:`))",
    ),
    (
        "state name",
        3,
        3,
        "t.yaml:3:3: invalid state variable name `my-led` (hint: templates read it as `state.NAME`: use letters, digits and `_`, not starting with a digit)",
    ),
    (
        "to in periodic",
        5,
        26,
        "t.yaml:5:26: a periodic message has no `to:` (hint: its `scope:` (session or broadcast) says who gets it)",
    ),
    (
        "msg in http",
        3,
        36,
        "t.yaml:3:36: unknown variable `msg` in a template of an HTTP route (hint: available here: body, query, headers, method, path, count, state, uptime_ms)",
    ),
    (
        "yes is not a bool",
        4,
        43,
        "t.yaml:4:43: invalid boolean (strict mode expects true/false)",
    ),
    (
        "two json tests",
        6,
        11,
        "t.yaml:6:11: a JSON condition has at most one of `equals`, `glob`, `regex`, `exists` (hint: write a list of conditions to test several things)",
    ),
    (
        "min above max",
        4,
        45,
        "t.yaml:4:45: max_len 2 is below min_len 4",
    ),
    (
        "duplicate endpoint",
        4,
        13,
        "t.yaml:4:13: duplicate WebSocket endpoint `/ws` (hint: each entry of `websocket:` needs its own `path` (the default is /ws))",
    ),
    (
        "unknown endpoint",
        4,
        26,
        "t.yaml:4:26: no WebSocket endpoint `/ws` (hint: the endpoints are /ctl)",
    ),
];

#[test]
fn malformed_files_are_refused_with_the_offending_values_line_and_column() {
    let cases = cases();
    assert!(cases.len() >= 15);
    assert_eq!(cases.len(), EXPECTED.len());
    for ((what, yaml), (want_what, line, column, message)) in cases.iter().zip(EXPECTED) {
        assert_eq!(what, want_what);
        let err = error(yaml);
        assert_eq!(err.line_column(), Some((*line, *column)), "{what}: {err}");
        let text = err.to_string();
        assert_eq!(text.lines().next(), Some(*message), "{what}");
        assert!(
            text.starts_with(&format!("t.yaml:{line}:{column}: ")),
            "{what}"
        );
    }
}

#[test]
fn a_missing_file_is_a_read_error_and_a_huge_one_is_refused() {
    let err = crate::load(Path::new("/nonexistent/device.yaml")).unwrap_err();
    assert!(matches!(err, DeviceFileError::Read { .. }), "{err:?}");
    assert_eq!(err.to_string(), "cannot read /nonexistent/device.yaml");
    let huge = format!(
        "name: x
description: \"{}\"\n",
        "a".repeat(crate::MAX_FILE_BYTES)
    );
    let err = error(&huge);
    assert!(
        matches!(err, DeviceFileError::FileTooLarge { .. }),
        "{err:?}"
    );
}

#[test]
fn a_yaml_error_names_the_file_in_its_snippet() {
    let err = error("name: x\nrulez: []\n");
    let text = err.to_string();
    assert!(text.contains("--> t.yaml:2:1"), "{text}");
    assert!(!text.contains("<input>"), "{text}");
}
