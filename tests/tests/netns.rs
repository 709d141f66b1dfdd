//! The softAP subnet in network namespaces: the device at 192.168.4.1 as on the real chip, and a
//! "phone" in a second namespace whose resolver is 192.168.4.1.
//!
//! Runs only as root (CI is root); otherwise it prints why it skips (and fails with
//! `ESPSIM_REQUIRE_CLIENTS=1`). The namespaces are `espsim_tests::netns::SoftApNamespaces`,
//! removed on drop, also when an assertion fails. Needs `ip` (iproute2);
//! `dig`, `curl` and Python `websockets` are used when installed, `espsim client` always.
//! The binary is `target/debug/espsim` (see `espsim_tests::espsim_bin`).

use std::time::Duration;

use espsim_tests::netns::{DEVICE_IP as DEVICE, SoftApNamespaces};
use espsim_tests::{CURL_STATUS_AND_LOCATION, Espsim, espsim_bin, on_path, repo_root, skip};

#[test]
fn phone_on_the_softap_subnet_resolves_checks_and_talks_to_the_device() {
    const TEST: &str = "netns";
    if let Some(reason) = SoftApNamespaces::why_not_here() {
        skip(TEST, &reason);
        return;
    }
    let ns = SoftApNamespaces::create("timeout:2 attempts:1");
    // Declared after `ns`, so it is killed before the namespaces are removed.
    let mut cmd = ns.ap_command(espsim_bin());
    cmd.args(["run", "--http", "192.168.4.1:80", "--dns", "192.168.4.1:53"])
        .args([
            "--device-ip",
            DEVICE,
            "--internet",
            "captive",
            "--seed",
            "1",
        ]);
    let espsim = Espsim::start(cmd, Duration::from_secs(20));
    assert_eq!(espsim.ready["http"], "192.168.4.1:80");
    assert_eq!(espsim.ready["dns"], "192.168.4.1:53");

    // DNS: every name is the device, over UDP and TCP, from the client's own resolver config.
    if on_path("dig") {
        for transport in ["+notcp", "+tcp"] {
            let out = ns.in_client(
                "dig",
                &[
                    "+short",
                    "+time=2",
                    "+tries=1",
                    transport,
                    "connectivitycheck.gstatic.com",
                    "A",
                ],
            );
            assert_eq!(out.stdout.trim(), DEVICE, "dig {transport}: {out:?}");
        }
    } else {
        skip(
            TEST,
            "dig not installed: DNS checked only through curl and the WebSocket clients",
        );
    }

    // The OS connectivity checks, by name: captive, so each is sent to the portal.
    if on_path("curl") {
        for url in [
            "http://connectivitycheck.gstatic.com/generate_204",
            "http://captive.apple.com/hotspot-detect.html",
            "http://www.msftconnecttest.com/connecttest.txt",
        ] {
            let out = ns.in_client("curl", &[&CURL_STATUS_AND_LOCATION[..], &[url]].concat());
            assert_eq!(
                out.stdout,
                "302 /",
                "curl {url}: {out:?}\ndevice log:\n{}",
                espsim.stderr()
            );
        }
        // Following the redirect: `/` on the same name, which the DNS sends to the device.
        let portal = ns.in_client(
            "curl",
            &[
                "-sSL",
                "--max-time",
                "5",
                "http://connectivitycheck.gstatic.com/generate_204",
            ],
        );
        assert!(portal.status.success(), "portal: {portal:?}");
        assert!(
            portal.stdout.contains("ws://192.168.4.1"),
            "portal page names the WebSocket URL: {portal:?}"
        );
    } else {
        skip(TEST, "curl not installed: connectivity checks not fetched");
    }

    // A WebSocket session by name: espsim's reference client (always), Python websockets (if installed).
    let out = ns.in_client(
        espsim_bin(),
        &[
            "client",
            "ws://esp32.test/ws",
            "--duration",
            "2s",
            "--connect-timeout",
            "5s",
        ],
    );
    assert!(out.status.success(), "espsim client: {out:?}");
    assert!(
        out.stdout.contains("\"event\":\"ready\""),
        "espsim client: {out:?}"
    );

    let python = repo_root().join(".venv/bin/python");
    if python.is_file() {
        let script = repo_root().join("tests/clients/ws_python.py");
        let out = ns.in_client(
            &python,
            &[
                script.to_str().expect("utf-8 path"),
                "ws://esp32.test/ws",
                "session",
                "5",
            ],
        );
        let seen = out
            .json_line()
            .unwrap_or_else(|| panic!("python client: {out:?}"));
        assert_eq!(seen["opened"], true, "{seen}");
        assert_eq!(seen["received"][0], "welcome", "{seen}");
        assert_eq!(seen["close_code"], 1005, "{seen}");
    } else {
        skip(
            TEST,
            "no .venv/bin/python: the Python websockets session is not run",
        );
    }
}
