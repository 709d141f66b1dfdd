//! Device files through the real binary: `espsim validate --device`, and `espsim run --device`
//! refusing every malformed file with its `file:line:col` before anything listens.

mod support;

use std::path::Path;

use support::{espsim, run_is_refused, write};

const GOOD: &str = "name: lamp
websocket: { path: /lamp }
state: { on: false }
rules:
  - name: toggle
    match: { text: { exact: toggle } }
    set: { on: \"{{ not state.on }}\" }
    reply: { json: { on: \"{{ state.on }}\" } }
periodic:
  beat: { every: 1s, send: { text: beat } }
";

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn validate_checks_device_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "lamp.yaml", GOOD);
    let bad = write(
        dir.path(),
        "bad.yaml",
        &GOOD.replace("every: 1s", "every: 0s"),
    );
    let (code, stdout, stderr) = espsim(&["validate", "--device", s(&good)]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "ok  {}  (device lamp, WebSocket endpoint /lamp)\n",
            good.display()
        )
    );
    let (code, stdout, stderr) =
        espsim(&["validate", "--device", s(&bad), "--device", s(&good)]).await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "the good one is still checked: {stdout}"
    );
    assert!(
        stderr.starts_with(&format!("error: {}:10:", bad.display())),
        "{stderr}"
    );
}

/// Each malformed file: (what is wrong, the file, its line, words of the message). `run`
/// refuses it (exit 2, no ready line) and names the file, line and column.
const MALFORMED: &[(&str, &str, u64, &str)] = &[
    ("unknown field", "name: x\nrulez: []\n", 2, "rulez"),
    ("no name", "rules: []\n", 1, "name"),
    (
        "bad regex",
        "name: x\nrules:\n  - name: r\n    match: { text: { regex: \"(\" } }\n",
        4,
        "regex",
    ),
    (
        "bad template",
        "name: x\nrules:\n  - name: r\n    reply: { text: \"{{ state. }}\" }\n",
        4,
        "template",
    ),
    (
        "bad hex",
        "name: x\nrules:\n  - name: r\n    reply: { binary: { hex: \"zz\" } }\n",
        4,
        "hex",
    ),
    (
        "pointer without /",
        "name: x\nrules:\n  - name: r\n    match: { json: { pointer: cmd, equals: 1 } }\n",
        4,
        "pointer",
    ),
    (
        "unknown periodic",
        "name: x\nrules:\n  - name: r\n    start: nope\n",
        4,
        "nope",
    ),
    (
        "zero interval",
        "name: x\nperiodic:\n  p: { every: 0s, send: { text: t } }\n",
        3,
        "every",
    ),
    (
        "duplicate rule",
        "name: x\nrules:\n  - name: r\n  - name: r\n",
        4,
        "r",
    ),
    (
        "reserved close code",
        "name: x\nrules:\n  - name: r\n    close: { code: 1005 }\n",
        4,
        "1005",
    ),
    (
        "undeclared state",
        "name: x\nrules:\n  - name: r\n    set: { led: 1 }\n",
        4,
        "led",
    ),
    ("YAML syntax", "name: x\nrules: [\n", 2, "bracket"),
    (
        "humantime duration",
        "name: x\nperiodic:\n  p: { every: 2 seconds, send: { text: t } }\n",
        3,
        "every",
    ),
    (
        "route without slash",
        "name: x\nhttp:\n  - { method: GET, path: api }\n",
        3,
        "path",
    ),
];

#[tokio::test]
async fn run_refuses_every_malformed_device_file_with_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (n, (what, text, line, words)) in MALFORMED.iter().enumerate() {
        let path = write(dir.path(), &format!("bad{n}.yaml"), text);
        let stderr = run_is_refused(&["--device", s(&path)]).await;
        let prefix = format!("{}:{line}:", path.display());
        assert!(
            stderr.contains(&prefix),
            "{what}: expected `{prefix}<col>` in\n{stderr}"
        );
        let after = &stderr[stderr.find(&prefix).unwrap_or(0) + prefix.len()..];
        assert!(
            after
                .split(':')
                .next()
                .is_some_and(|c| c.parse::<u64>().is_ok()),
            "{what}: a column follows the line: {stderr}"
        );
        assert!(stderr.contains(words), "{what}: `{words}` in\n{stderr}");
    }
    let missing = run_is_refused(&["--device", "/nonexistent/device.yaml"]).await;
    assert!(missing.contains("/nonexistent/device.yaml"), "{missing}");
}

#[tokio::test]
async fn a_scenarios_device_file_is_checked_and_cannot_be_combined_with_ws() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "lamp.yaml",
        &GOOD.replace("every: 1s", "every: 0s"),
    );
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: s\nduration: 5s\ndevice: { file: lamp.yaml }\n",
    );
    let (code, _, stderr) = espsim(&["validate", s(&scenario)]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("device.file: "), "{stderr}");
    assert!(
        stderr.contains("lamp.yaml:10:"),
        "relative to the scenario: {stderr}"
    );

    write(dir.path(), "lamp.yaml", GOOD);
    let both = write(
        dir.path(),
        "both.yaml",
        "name: s\nduration: 5s\ndevice: { file: lamp.yaml, ws: { path: /ws } }\n",
    );
    let stderr = run_is_refused(&["--scenario", s(&both)]).await;
    assert!(
        stderr.contains("`ws:` cannot be combined with `file:`"),
        "{stderr}"
    );
}

/// A device written inline in a scenario: its errors name the scenario's line and column; a
/// good one serves its endpoint; `file:` and `inline:` together are refused.
#[tokio::test]
async fn an_inline_device_is_checked_in_its_scenario_and_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = |periodic_every: &str| {
        format!(
            "name: s\nduration: 5s\ndevice:\n  inline:\n    name: lamp\n    websocket: {{ path: /lamp }}\n    \
             periodic:\n      beat: {{ every: {periodic_every}, send: {{ text: beat }} }}\n"
        )
    };
    let bad = write(dir.path(), "bad.yaml", &scenario("0s"));
    let (code, _, stderr) = espsim(&["validate", s(&bad)]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("device.inline: {}:8:", bad.display())),
        "the scenario's line: {stderr}"
    );

    let good = write(dir.path(), "good.yaml", &scenario("1s"));
    let espsim = support::Espsim::run(&["--no-control", "--scenario", s(&good)]).await;
    let ws_url = espsim.ready["ws_url"].as_str().expect("ws_url").to_owned();
    assert!(ws_url.ends_with("/lamp"), "{ws_url}");
    espsim.terminate();

    write(dir.path(), "lamp.yaml", GOOD);
    let both = write(
        dir.path(),
        "both.yaml",
        &scenario("1s").replace("device:\n", "device:\n  file: lamp.yaml\n"),
    );
    let stderr = run_is_refused(&["--scenario", s(&both)]).await;
    assert!(
        stderr.contains("`file:` and `inline:` cannot both be given"),
        "{stderr}"
    );
}
