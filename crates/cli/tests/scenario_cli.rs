//! `espsim validate`, `espsim run --scenario` and `espsim fault` through the real binary.

mod support;

use std::path::{Path, PathBuf};

use support::{Espsim, espsim, run_is_refused};

const GOOD: &str = "name: handshake-reset-then-recover
description: The first two handshakes are cut after the request.
seed: 7
device: { profile: esp-idf-v5.5, internet: offline }
faults:
  - { name: cut, when: { connections: 1-2 }, fault: { handshake: reset, at: after_request } }
  - { when: { at: 5s, for: 2s }, fault: refuse }
duration: 20s
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writes");
    path
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn validate_prints_ok_lines_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "good.yaml", GOOD);
    let (code, stdout, stderr) = espsim(&["validate", s(&good), s(&good)]).await;
    assert_eq!(code, 0, "{stderr}");
    let line = format!("ok  {}  (2 faults, 0 expectations, 20s)", good.display());
    assert_eq!(stdout, format!("{line}\n{line}\n"));
    assert!(stderr.is_empty(), "{stderr}");
}

#[tokio::test]
async fn validate_reports_every_error_of_every_file_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(dir.path(), "good.yaml", GOOD);
    let typo = write(dir.path(), "typo.yaml", &GOOD.replace("seed: 7", "sede: 7"));
    let late = write(
        dir.path(),
        "late.yaml",
        &GOOD
            .replace("at: 5s", "at: 25s")
            .replace("duration: 20s", "start: { timeout: 0s }\nduration: 20s"),
    );
    let (code, stdout, stderr) = espsim(&["validate", s(&typo), s(&good), s(&late)]).await;
    assert_eq!(code, 2, "{stderr}");
    // Every file is checked, not only up to the first bad one.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!("ok  {}", good.display())),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "error: {}:3:1: unknown field `sede`",
            typo.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: {}: faults[1]: starts at 25s but the scenario lasts 20s (hint:",
            late.display()
        )),
        "{stderr}"
    );
    // Both problems of late.yaml, each on a line of its own.
    assert!(
        stderr.contains(&format!(
            "error: {}: `start.timeout` must be more than 0 and at most 1h (got 0s)\n",
            late.display()
        )),
        "{stderr}"
    );
    let errors = stderr.lines().filter(|l| l.starts_with("error: /")).count();
    assert_eq!(errors, 3, "{stderr}");
}

#[tokio::test]
async fn validate_usage_and_unreadable_files_exit_2() {
    let (code, _, stderr) = espsim(&["validate"]).await;
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = espsim(&["validate", "/nonexistent/scenario.yaml"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot read /nonexistent/scenario.yaml"),
        "{stderr}"
    );
}

#[tokio::test]
async fn run_scenario_takes_device_faults_and_seed_from_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "s.yaml", GOOD);
    let em = Espsim::run(&["--scenario", s(&path)]).await;
    assert_eq!(em.ready["scenario"], "handshake-reset-then-recover");
    assert_eq!(em.ready["seed"], 7);
    assert_eq!(em.ready["profile"], "esp-idf-v5.5");
    assert_eq!(em.ready["internet"], "offline");
    assert_eq!(em.ready["faults"], 2);
    let control = em.addr("control");
    assert!(
        control.ip().is_loopback() && control.port() != 0,
        "{}",
        em.ready
    );

    // The scenario's rules are in the running plan, with their ids.
    let url = format!("http://{control}");
    let token = em.control_token();
    let (code, stdout, stderr) = espsim(&[
        "fault",
        "--control",
        &url,
        "--control-token",
        &token,
        "list",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[1].starts_with("1    cut "), "{stdout}");
    assert!(
        lines[2].ends_with(r#"{"when":{"at":"5s","for":"2s"},"fault":"refuse"}"#),
        "{stdout}"
    );
    em.terminate();
}

#[tokio::test]
async fn flags_override_the_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "s.yaml", GOOD);
    let em = Espsim::run(&[
        "--scenario",
        s(&path),
        "--seed",
        "99",
        "--internet",
        "online",
    ])
    .await;
    assert_eq!(em.ready["seed"], 99);
    assert_eq!(em.ready["internet"], "online");
    em.terminate();

    let (code, _, stderr) = espsim(&["run", "--scenario", "/nonexistent.yaml"]).await;
    assert_eq!(code, 2, "{stderr}");
}

#[tokio::test]
async fn fault_add_list_remove_reset_against_a_running_emulator() {
    let em = Espsim::run(&[]).await;
    assert!(em.ready["scenario"].is_null());
    let url = format!("http://{}", em.addr("control"));
    let token = em.control_token();
    let fault = async |args: &[&str]| {
        let mut all = vec![
            "fault",
            "--control",
            url.as_str(),
            "--control-token",
            &token,
        ];
        all.extend_from_slice(args);
        espsim(&all).await
    };

    let (code, stdout, stderr) = fault(&["list"]).await;
    assert_eq!((code, stdout.as_str()), (0, "no fault rules\n"), "{stderr}");

    let (code, stdout, stderr) = fault(&[
        "add",
        "{ name: flaky, when: { connections: 1-2 }, fault: { ws: drop } }",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "added rule 1: {\"when\":{\"connections\":\"1-2\"},\"fault\":{\"direction\":\"out\",\"ws\":\"drop\"}}\n"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "rules.yaml",
        "- fault: { dns: nxdomain }\n- { when: { at: 30s, for: 5s }, fault: refuse }\n",
    );
    let (code, stdout, stderr) = fault(&["add", "--file", s(&file)]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.starts_with("added rule 2: "), "{stdout}");

    let (code, stdout, _) = fault(&["list"]).await;
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 4, "header + 3 rules: {stdout}");
    assert!(stdout.contains("flaky"), "{stdout}");

    // The API's refusals: exit 1 with its message, the file position for --file.
    let bad = write(dir.path(), "bad.yaml", "fault: refuse\nwhne: {}\n");
    let (code, _, stderr) = fault(&["add", "--file", s(&bad)]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(&format!(
            "error: {}:2:1: unknown field `whne`",
            bad.display()
        )),
        "{stderr}"
    );
    let (code, _, stderr) = fault(&[
        "add",
        r#"{"when":{"messages":"3"},"fault":{"dns":"nxdomain"}}"#,
    ])
    .await;
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error: dns"), "{stderr}");
    let (code, _, stderr) = fault(&["remove", "42"]).await;
    assert_eq!(
        (code, stderr.as_str()),
        (1, "error: no fault rule with id 42\n")
    );

    let (code, stdout, _) = fault(&["remove", "2"]).await;
    assert_eq!((code, stdout.as_str()), (0, "removed rule 2\n"));
    let (code, stdout, _) = fault(&["reset"]).await;
    assert_eq!(
        (code, stdout.as_str()),
        (0, "removed 2 rule(s); internet is captive\n")
    );
    let (_, stdout, _) = fault(&["list", "--json"]).await;
    assert_eq!(stdout, "[]\n");
    em.terminate();
}

#[tokio::test]
async fn fault_without_a_control_api_exits_2() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("addr")
        .port();
    let (code, _, stderr) =
        espsim(&["fault", "--control", &format!("127.0.0.1:{port}"), "list"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot reach the control API"), "{stderr}");
    let (code, _, stderr) = espsim(&["fault", "add"]).await;
    assert_eq!(code, 2, "{stderr}");
}

#[tokio::test]
async fn a_non_loopback_control_needs_a_token() {
    let stderr = run_is_refused(&["--control", "0.0.0.0:0", "--control-insecure"]).await;
    assert!(
        stderr.contains("would be reachable from the network without a token"),
        "{stderr}"
    );
    assert!(stderr.contains("--control-token"), "{stderr}");
}

#[tokio::test]
async fn with_a_control_token_the_cli_must_send_it() {
    let em = Espsim::run(&["--control-token", "s3cret"]).await;
    let url = format!("http://{}", em.addr("control"));
    let (code, _, stderr) = espsim(&["fault", "--control", &url, "list"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("missing token") && stderr.contains("--control-token"),
        "{stderr}"
    );
    // A given token is not repeated on stdout.
    assert!(em.ready["control_token"].is_null(), "{}", em.ready);
    let (code, stdout, stderr) = espsim(&[
        "fault",
        "--control",
        &url,
        "--control-token",
        "s3cret",
        "list",
    ])
    .await;
    assert_eq!((code, stdout.as_str()), (0, "no fault rules\n"), "{stderr}");
    // `--token`, the old name, still works.
    let (code, stdout, stderr) =
        espsim(&["fault", "--control", &url, "--token", "s3cret", "list"]).await;
    assert_eq!((code, stdout.as_str()), (0, "no fault rules\n"), "{stderr}");
    em.terminate();
}

#[tokio::test]
async fn no_control_serves_none() {
    let em = Espsim::run(&["--no-control"]).await;
    assert!(em.ready["control"].is_null(), "{}", em.ready);
    em.terminate();
}
