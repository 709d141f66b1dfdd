//! Running iproute2's `ip`.
//!
//! Why `ip` and not a netlink crate: `ip netns add/del/exec` is the one implementation of the
//! named-namespace conventions (`/run/netns/NAME` bind mounts, `/etc/netns/NAME/resolv.conf`
//! mounted over `/etc/resolv.conf` for the command) that users also type by hand, so a phone
//! made here can be inspected and entered with the same commands (`ip netns exec …`); every
//! command is short-lived and runs at setup, teardown or on a verdict change.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::PhoneError;

/// Runs `ip ARGS…`; an error carries what `ip` printed.
pub(crate) fn ip(args: &[&str]) -> Result<(), PhoneError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PhoneError::IpMissing { source })?;
    if out.status.success() {
        return Ok(());
    }
    Err(PhoneError::Ip {
        args: args.join(" "),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Runs `ip ARGS… -batch -` with `lines` on stdin: one process for a sequence of changes.
pub(crate) fn ip_batch(args: &[&str], lines: &[String]) -> Result<(), PhoneError> {
    let mut child = Command::new("ip")
        .args(args)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| PhoneError::IpMissing { source })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A write error shows up as ip's failure below.
        let _ = stdin.write_all(lines.join("\n").as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| PhoneError::IpMissing { source })?;
    if out.status.success() {
        return Ok(());
    }
    Err(PhoneError::Ip {
        args: format!("{} -batch: {}", args.join(" "), lines.join("; ")),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// The pids `ip netns pids NAME` lists (processes whose network namespace is NAME).
pub(crate) fn netns_pids(name: &str) -> Vec<i32> {
    Command::new("ip")
        .args(["netns", "pids", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
