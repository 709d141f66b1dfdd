//! Shared by the phone tests: the root check and the leftover check after teardown.

#![allow(dead_code, unreachable_pub)]

use std::process::Command;

/// Root check: false = skip (outside CI); panics under CI.
pub fn have_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|u| u.split_whitespace().nth(1))
        == Some("0");
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "the phone tests need root (network namespaces) and CI is set"
        );
        eprintln!("skipping: not root");
    }
    root
}

/// The namespaces and `/etc/netns` entries of espsim process `pid` still present, and any of
/// the phone's links in our namespace.
pub fn leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("espsim-{pid}-");
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip runs");
    let mut left: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    if let Ok(dir) = std::fs::read_dir("/etc/netns") {
        left.extend(
            dir.filter_map(Result::ok)
                .map(|e| format!("/etc/netns/{}", e.file_name().to_string_lossy()))
                .filter(|p| p.contains(&prefix)),
        );
    }
    for link in ["wlan0", "rmnet0", "ap0", "cell0"] {
        let shown = Command::new("ip")
            .args(["link", "show", link])
            .output()
            .expect("ip runs");
        if shown.status.success() {
            left.push(format!("link {link} in the host namespace"));
        }
    }
    left
}

/// `espsim` as user `nobody` with no capabilities at all (`setpriv`), for the no-root error.
pub fn espsim_as_nobody() -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        env!("CARGO_BIN_EXE_espsim"),
    ]);
    cmd
}
