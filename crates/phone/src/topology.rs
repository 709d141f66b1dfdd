//! The namespaces, links, addresses and routing tables of one phone, and their teardown.
//!
//! ```text
//!  ap namespace                 phone namespace                    carrier namespace
//!  ap0 192.168.4.1/24 ──veth── wlan0 192.168.4.2/24                (mobile data on)
//!  (the emulator)               rmnet0 100.64.0.2/30 ──veth── cell0 100.64.0.1/30
//!                                                                  resolver on :53, no forwarding
//! ```
//!
//! Like Android's netd, each network's routes live in their own table (wlan0: 100, rmnet0:
//! 200; addresses are added `noprefixroute`, so the main table stays empty) and `ip rule`s
//! choose the table: sockets bound to an interface use its table (`oif`), the app bound to
//! Wi-Fi uses the Wi-Fi's, iOS sends the softAP subnet to the Wi-Fi, and everything else uses
//! the default network's table. Nothing is created in the caller's namespace.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::PhoneError;
use crate::ip::{ip, ip_batch, netns_pids};
use crate::netns::sysctl;
use crate::policy::{Network, Routing};
use crate::spec::{Os, PhoneSpec};

/// The softAP's address: the emulator serves HTTP, WebSocket and DNS there.
pub const DEVICE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);
/// The phone's Wi-Fi address (ESP-IDF's DHCP server hands out .2 first).
pub const PHONE_WIFI_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 2);
/// The carrier's side of `rmnet0`, also its resolver.
pub const CARRIER_RESOLVER: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
/// The phone's cellular address (carrier-grade NAT space, as real carriers use).
pub const PHONE_CELL_IP: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
/// The phone's Wi-Fi interface.
pub const WIFI_IF: &str = "wlan0";
/// The phone's cellular interface.
pub const CELL_IF: &str = "rmnet0";

const WIFI_TABLE: &str = "100";
const CELL_TABLE: &str = "200";
/// Priority of the rule selecting the default network's table.
const DEFAULT_PRIO: u32 = 1000;

/// The names of one phone's namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// The phone.
    pub phone: String,
    /// The softAP (the device).
    pub ap: String,
    /// The carrier.
    pub carrier: String,
}

impl Namespaces {
    /// Fresh names for this process: `espsim-PID-N-phone` etc., so phones of concurrent
    /// processes (and several in one process) never clash.
    pub fn unique() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("espsim-{}-{n}", std::process::id());
        Namespaces {
            phone: format!("{base}-phone"),
            ap: format!("{base}-ap"),
            carrier: format!("{base}-carrier"),
        }
    }

    /// `/etc/netns/PHONE`: files there are mounted over `/etc` for `ip netns exec PHONE`.
    pub fn phone_etc(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.phone)
    }
}

/// The wired namespaces; [`Topology::teardown`] (or drop) removes everything.
#[derive(Debug)]
pub(crate) struct Topology {
    names: Namespaces,
    cellular: bool,
    /// Namespaces created so far (teardown deletes exactly these).
    created: Vec<String>,
    /// The table the default-network rule currently selects.
    default_table: Option<&'static str>,
    torn_down: bool,
}

impl Topology {
    /// Creates and wires the namespaces for `spec`. On error, what was made is removed.
    pub(crate) fn create(names: Namespaces, spec: &PhoneSpec) -> Result<Self, PhoneError> {
        let mut topology = Topology {
            names,
            cellular: spec.has_cellular(),
            created: Vec::new(),
            default_table: None,
            torn_down: false,
        };
        // On error `topology` drops here and tears down what exists.
        topology.build(spec)?;
        Ok(topology)
    }

    fn build(&mut self, spec: &PhoneSpec) -> Result<(), PhoneError> {
        let n = self.names.clone();
        let mut spaces = vec![n.phone.as_str(), n.ap.as_str()];
        if self.cellular {
            spaces.push(n.carrier.as_str());
        }
        for ns in spaces {
            ip(&["netns", "add", ns])?;
            self.created.push(ns.to_owned());
            sysctl(ns, "ipv6/conf/all/disable_ipv6", "1")?;
            sysctl(ns, "ipv6/conf/default/disable_ipv6", "1")?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let (phone, ap, carrier) = (n.phone.as_str(), n.ap.as_str(), n.carrier.as_str());
        // The veth ends are created directly in their namespaces: never in ours.
        ip(&[
            "link", "add", WIFI_IF, "netns", phone, "type", "veth", "peer", "name", "ap0", "netns",
            ap,
        ])?;
        let wifi_addr = format!("{PHONE_WIFI_IP}/24");
        ip(&[
            "-n",
            phone,
            "addr",
            "add",
            &wifi_addr,
            "dev",
            WIFI_IF,
            "noprefixroute",
        ])?;
        ip(&[
            "-n",
            ap,
            "addr",
            "add",
            &format!("{DEVICE_IP}/24"),
            "dev",
            "ap0",
        ])?;
        ip(&["-n", ap, "link", "set", "ap0", "up"])?;
        ip(&["-n", phone, "link", "set", WIFI_IF, "up"])?;
        let subnet = "192.168.4.0/24";
        let device = DEVICE_IP.to_string();
        ip(&[
            "-n", phone, "route", "add", subnet, "dev", WIFI_IF, "table", WIFI_TABLE,
        ])?;
        ip(&[
            "-n", phone, "route", "add", "default", "via", &device, "dev", WIFI_IF, "table",
            WIFI_TABLE,
        ])?;
        ip(&[
            "-n", phone, "rule", "add", "prio", "100", "oif", WIFI_IF, "lookup", WIFI_TABLE,
        ])?;
        if self.cellular {
            // A new namespace forwards nothing; set it anyway: packets the carrier is not the
            // destination of are dropped without an ICMP error, so connects time out.
            sysctl(carrier, "ipv4/ip_forward", "0")?;
            ip(&[
                "link", "add", CELL_IF, "netns", phone, "type", "veth", "peer", "name", "cell0",
                "netns", carrier,
            ])?;
            let cell_addr = format!("{PHONE_CELL_IP}/30");
            ip(&[
                "-n",
                phone,
                "addr",
                "add",
                &cell_addr,
                "dev",
                CELL_IF,
                "noprefixroute",
            ])?;
            let carrier_addr = format!("{CARRIER_RESOLVER}/30");
            ip(&["-n", carrier, "addr", "add", &carrier_addr, "dev", "cell0"])?;
            ip(&["-n", carrier, "link", "set", "cell0", "up"])?;
            ip(&["-n", phone, "link", "set", CELL_IF, "up"])?;
            let gw = CARRIER_RESOLVER.to_string();
            ip(&[
                "-n",
                phone,
                "route",
                "add",
                "100.64.0.0/30",
                "dev",
                CELL_IF,
                "table",
                CELL_TABLE,
            ])?;
            ip(&[
                "-n", phone, "route", "add", "default", "via", &gw, "dev", CELL_IF, "table",
                CELL_TABLE,
            ])?;
            ip(&[
                "-n", phone, "rule", "add", "prio", "101", "oif", CELL_IF, "lookup", CELL_TABLE,
            ])?;
        }
        if spec.bind_wifi {
            // The app's sockets all use the Wi-Fi's table: see `Phone` docs for why this is
            // bindProcessToNetwork for the one app that runs on this phone.
            ip(&[
                "-n", phone, "rule", "add", "prio", "200", "lookup", WIFI_TABLE,
            ])?;
        }
        if spec.os == Os::Ios {
            ip(&[
                "-n", phone, "rule", "add", "prio", "300", "to", subnet, "lookup", WIFI_TABLE,
            ])?;
        }
        let etc = self.names.phone_etc();
        std::fs::create_dir_all(&etc).map_err(|source| PhoneError::Resolver {
            path: etc.clone(),
            source,
        })?;
        Ok(())
    }

    /// The names.
    pub(crate) fn names(&self) -> &Namespaces {
        &self.names
    }

    /// Points the default-network rule at `routing`'s default network and the phone's
    /// resolver at the app's. The rule is swapped without a moment where no rule matches.
    pub(crate) fn apply(&mut self, routing: &Routing) -> Result<(), PhoneError> {
        let table = match routing.default_network {
            Network::Wifi => WIFI_TABLE,
            Network::Cellular => CELL_TABLE,
        };
        let (main, spare) = (DEFAULT_PRIO, DEFAULT_PRIO + 1);
        match self.default_table {
            Some(current) if current == table => {}
            Some(_) => ip_batch(
                &["-n", &self.names.phone],
                &[
                    format!("rule add prio {spare} lookup {table}"),
                    format!("rule del prio {main}"),
                    format!("rule add prio {main} lookup {table}"),
                    format!("rule del prio {spare}"),
                ],
            )?,
            None => ip(&[
                "-n",
                &self.names.phone,
                "rule",
                "add",
                "prio",
                &main.to_string(),
                "lookup",
                table,
            ])?,
        }
        self.default_table = Some(table);
        self.write_resolver(routing.app_dns)
    }

    /// Rewrites `/etc/netns/PHONE/resolv.conf` in place: `ip netns exec` bind-mounts this
    /// file, so a running command sees the new resolver (glibc re-reads a changed file).
    fn write_resolver(&self, resolver: Ipv4Addr) -> Result<(), PhoneError> {
        let path = self.names.phone_etc().join("resolv.conf");
        let text = format!(
            "# written by espsim phone: the app's network's resolver\nnameserver {resolver}\noptions timeout:2 attempts:1\n"
        );
        std::fs::write(&path, text).map_err(|source| PhoneError::Resolver { path, source })
    }

    /// Kills what still runs in the namespaces (only processes the phone's user started end
    /// up there), deletes the links, the namespaces and `/etc/netns/PHONE`. Idempotent;
    /// returns the first error but always tries every step.
    pub(crate) fn teardown(&mut self) -> Result<(), PhoneError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut first_error = None;
        let mut note = |r: Result<(), PhoneError>| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "phone teardown");
                first_error.get_or_insert(e);
            }
        };
        for ns in &self.created {
            for pid in netns_pids(ns) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        if self.created.contains(&self.names.phone) {
            // Deleting one end of a veth deletes the pair; a link that was never made is fine.
            for link in [WIFI_IF, CELL_IF] {
                let _ = ip(&["-n", &self.names.phone, "link", "del", link]);
            }
        }
        for ns in self.created.drain(..).rev() {
            note(ip(&["netns", "del", &ns]));
        }
        let etc = self.names.phone_etc();
        if etc.exists() {
            note(
                std::fs::remove_dir_all(&etc)
                    .map_err(|source| PhoneError::Resolver { path: etc, source }),
            );
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
