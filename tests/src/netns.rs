//! The softAP subnet in two network namespaces: the device's side ("ap", where `espsim run`
//! binds 192.168.4.1 as on the real chip) and a phone's side ("client", 192.168.4.2) whose
//! resolver is the device, as DHCP on the softAP would set it.
//!
//! Needs root (CI is root) and `ip` (iproute2): [`SoftApNamespaces::why_not_here`] says when
//! they are missing. The names carry this process's id and a counter (other tests on the
//! machine create namespaces at the same time, and one test may create several pairs); the
//! veth pair exists only inside the two namespaces, and the phone's resolver is
//! `/etc/netns/<client>/resolv.conf` (how `ip netns exec` gives a namespace its own
//! `/etc/resolv.conf`). Dropping the value removes all of it, also when an assertion fails.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{Finished, is_root, on_path, run_with_limit};

/// The device's address on its softAP (ESP-IDF's default), in the "ap" namespace.
pub const DEVICE_IP: &str = "192.168.4.1";

/// How long one `ip` command, or one command run by [`SoftApNamespaces::in_client`], may take.
const STEP: Duration = Duration::from_secs(15);

/// Pairs created by this process so far (part of the names).
static CREATED: AtomicU32 = AtomicU32::new(0);

/// The two namespaces and the phone's resolver file; removed on drop.
#[derive(Debug)]
pub struct SoftApNamespaces {
    /// The device's namespace (`espsim-ap-<pid>-<n>`): run `espsim run` here on 192.168.4.1.
    pub ap: String,
    /// The phone's namespace (`espsim-cl-<pid>-<n>`), 192.168.4.2, resolver 192.168.4.1.
    pub client: String,
    created: Vec<String>,
    resolv_dir: PathBuf,
}

impl SoftApNamespaces {
    /// Why namespaces cannot be created here (`None`: they can).
    pub fn why_not_here() -> Option<String> {
        if !is_root() {
            Some("needs root to create network namespaces (CI runs as root)".to_owned())
        } else if !on_path("ip") {
            Some("`ip` (iproute2) is not installed".to_owned())
        } else {
            None
        }
    }

    /// Creates the pair and returns once the phone is online (its link has a carrier and no
    /// tentative address, about 2 s). `resolver_options` is the `options` line of the phone's
    /// resolv.conf (e.g. `timeout:1 attempts:1`; glibc's default is `timeout:5 attempts:2`).
    /// Panics when an `ip` command fails or the phone is not online within 15 s (a setup
    /// error), after removing what it created.
    pub fn create(resolver_options: &str) -> SoftApNamespaces {
        let id = format!(
            "{}-{}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed)
        );
        let client = format!("espsim-cl-{id}");
        let mut ns = SoftApNamespaces {
            ap: format!("espsim-ap-{id}"),
            resolv_dir: PathBuf::from(format!("/etc/netns/{client}")),
            client,
            created: Vec::new(),
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
        wait_until_online(cl, "veth-cl");
        std::fs::create_dir_all(&ns.resolv_dir).expect("create /etc/netns/<client>");
        std::fs::write(
            ns.resolv_dir.join("resolv.conf"),
            format!("nameserver {DEVICE_IP}\noptions {resolver_options}\n"),
        )
        .expect("write the client's resolv.conf");
        ns
    }

    /// `program` as a command in the device's namespace; add its arguments.
    pub fn ap_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ap]).arg(program);
        cmd
    }

    /// `cmd` (program and arguments; not its environment or directory) in the phone's
    /// namespace, with the phone's resolv.conf.
    pub fn client_command(&self, cmd: &Command) -> Command {
        let mut wrapped = Command::new("ip");
        wrapped
            .args(["netns", "exec", &self.client])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        wrapped
    }

    /// `program args` run to completion in the phone's namespace, bounded in time.
    pub fn in_client(&self, program: impl Into<PathBuf>, args: &[&str]) -> Finished {
        let program = program.into();
        let mut cmd = Command::new(&program);
        cmd.args(args);
        run_with_limit(&mut self.client_command(&cmd), STEP)
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
    }
}

impl Drop for SoftApNamespaces {
    fn drop(&mut self) {
        for name in &self.created {
            // Deleting a namespace removes the veth end inside it (and so its peer).
            let _ = run_with_limit(Command::new("ip").args(["netns", "del", name]), STEP);
        }
        let _ = std::fs::remove_dir_all(&self.resolv_dir);
        // /etc/netns itself only if this was its last user (fails harmlessly otherwise).
        if let Some(parent) = self.resolv_dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Waits until `dev` in namespace `ns` has its carrier and no tentative address: a phone is
/// on the network only once IPv6 duplicate address detection has finished for its link-local
/// address (about 2 s after the link comes up). Until then Chromium's network-change notifier
/// counts the phone as offline and reports a failed lookup as `net::ERR_INTERNET_DISCONNECTED`
/// instead of `net::ERR_NAME_NOT_RESOLVED` (it did in 9 of 20 runs without this wait).
/// Panics when that has not happened within [`STEP`].
fn wait_until_online(ns: &str, dev: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        let link = ip(&["-n", ns, "-o", "link", "show", "dev", dev]);
        let tentative = ip(&["-n", ns, "-o", "addr", "show", "dev", dev, "tentative"]);
        if link.contains("LOWER_UP") && tentative.trim().is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{dev} in {ns} is not online after {STEP:?}: {link}{tentative}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `ip args`, panicking when it fails; returns what it printed.
fn ip(args: &[&str]) -> String {
    let finished = run_with_limit(Command::new("ip").args(args), STEP).expect("ip runs");
    assert!(
        finished.status.success(),
        "ip {args:?}: {}",
        finished.stderr
    );
    finished.stdout
}
