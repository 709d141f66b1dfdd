//! The softAP subnet in network namespaces: the device at 192.168.4.1 as on the real chip, and a
//! "phone" in a second namespace whose resolver is 192.168.4.1.
//!
//! Runs only as root (CI is root); otherwise it prints why it skips. It creates two namespaces
//! (`espsim-ap-<pid>`, `espsim-cl-<pid>`) joined by a veth pair that exists only inside them,
//! and `/etc/netns/espsim-cl-<pid>/resolv.conf` (how `ip netns exec` gives a namespace its own
//! resolver). A guard removes all of it, also when an assertion fails. Needs `ip` (iproute2);
//! `dig`, `curl` and Python `websockets` are used when installed, `espsim client` always.
//! The binary is `target/debug/espsim` (see `espsim_tests::espsim_bin`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use espsim_tests::{
    CURL_STATUS_AND_LOCATION, Espsim, Finished, espsim_bin, is_root, on_path, repo_root,
    run_with_limit, skip,
};

const DEVICE: &str = "192.168.4.1";
const STEP: Duration = Duration::from_secs(15);

/// The namespaces and the resolver file; removed on drop.
#[derive(Debug)]
struct Namespaces {
    ap: String,
    client: String,
    created: Vec<String>,
    resolv_dir: PathBuf,
}

impl Namespaces {
    fn create() -> Namespaces {
        let pid = std::process::id();
        let mut ns = Namespaces {
            ap: format!("espsim-ap-{pid}"),
            client: format!("espsim-cl-{pid}"),
            created: Vec::new(),
            resolv_dir: PathBuf::from(format!("/etc/netns/espsim-cl-{pid}")),
        };
        for name in [ns.ap.clone(), ns.client.clone()] {
            ip(&["netns", "add", &name]);
            ns.created.push(name);
        }
        let (ap, cl) = (ns.ap.as_str(), ns.client.as_str());
        // Both ends are created inside the namespaces: nothing appears in the host's namespace.
        ip(&[
            "link", "add", "veth-ap", "netns", ap, "type", "veth", "peer", "name", "veth-cl",
            "netns", cl,
        ]);
        ip(&["-n", ap, "addr", "add", "192.168.4.1/24", "dev", "veth-ap"]);
        ip(&["-n", cl, "addr", "add", "192.168.4.2/24", "dev", "veth-cl"]);
        for (name, dev) in [(ap, "veth-ap"), (cl, "veth-cl"), (ap, "lo"), (cl, "lo")] {
            ip(&["-n", name, "link", "set", dev, "up"]);
        }
        std::fs::create_dir_all(&ns.resolv_dir).expect("create /etc/netns/<client>");
        std::fs::write(
            ns.resolv_dir.join("resolv.conf"),
            format!("nameserver {DEVICE}\noptions timeout:2 attempts:1\n"),
        )
        .expect("write the client's resolv.conf");
        ns
    }

    /// `cmd` run inside the client namespace (with its resolv.conf), bounded in time.
    fn in_client(&self, program: impl Into<PathBuf>, args: &[&str]) -> Finished {
        let program = program.into();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client])
            .arg(&program)
            .args(args);
        run_with_limit(&mut cmd, STEP).unwrap_or_else(|e| panic!("{}: {e}", program.display()))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.created {
            // Deleting a namespace removes the veth end inside it (and so its peer).
            let _ = run_with_limit(Command::new("ip").args(["netns", "del", name]), STEP);
        }
        let _ = std::fs::remove_dir_all(&self.resolv_dir);
        // /etc/netns itself only if this test was its last user (fails harmlessly otherwise).
        if let Some(parent) = self.resolv_dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn ip(args: &[&str]) {
    let finished = run_with_limit(Command::new("ip").args(args), STEP).expect("ip runs");
    assert!(
        finished.status.success(),
        "ip {args:?}: {}",
        finished.stderr
    );
}

#[test]
fn phone_on_the_softap_subnet_resolves_checks_and_talks_to_the_device() {
    const TEST: &str = "netns";
    if !is_root() {
        skip(
            TEST,
            "needs root to create network namespaces (CI runs as root)",
        );
        return;
    }
    if !on_path("ip") {
        skip(TEST, "`ip` (iproute2) is not installed");
        return;
    }
    let ns = Namespaces::create();
    // Declared after `ns`, so it is killed before the namespaces are removed.
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.ap])
        .arg(espsim_bin())
        .args(["run", "--http", "192.168.4.1:80", "--dns", "192.168.4.1:53"])
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
