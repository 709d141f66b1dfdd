//! The [`Phone`] guard: namespaces made on creation, routing driven by the device's answers,
//! everything removed on [`Phone::teardown`] or drop.

use std::ffi::OsStr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::PhoneError;
use crate::events::{EventSink, PhoneEvent};
use crate::netns::netns_command;
use crate::policy::{Routing, decide};
use crate::spec::PhoneSpec;
use crate::topology::{Namespaces, Topology};
use crate::verdict::{ProbeOutcome, WifiVerdict};
use crate::{carrier, probe};

/// The shortest re-check interval accepted.
pub const MIN_RECHECK: Duration = Duration::from_millis(200);
/// The longest re-check interval accepted (Android's back-off ceiling: 10 minutes).
pub const MAX_RECHECK: Duration = Duration::from_secs(600);

/// A phone in a network namespace, joined to the device's softAP (and to a fake carrier when
/// mobile data is on), routing as its OS would.
///
/// The app under test runs in the phone's namespace ([`Phone::phone_command`]); the device
/// (the emulator) in the softAP's ([`Phone::ap_command`]), serving 192.168.4.1.
///
/// `bind_wifi` is the whole command being bound to the Wi-Fi: a rule makes every socket of
/// the namespace use the Wi-Fi's table and the resolver file names the Wi-Fi's resolver.
/// `bindProcessToNetwork(wifi)` does the same to one process (every socket it makes, and its
/// name lookups, go to that network); the phone runs that one process, so the effect the app
/// sees is identical. What is not modelled: other apps on the phone still using cellular.
pub struct Phone {
    spec: PhoneSpec,
    topology: Topology,
    events: EventSink,
    stop: CancellationToken,
    verdict: Option<ProbeOutcome>,
    routing: Option<Routing>,
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phone")
            .field("spec", &self.spec)
            .field("namespaces", self.topology.names())
            .field("verdict", &self.verdict)
            .field("routing", &self.routing)
            .finish_non_exhaustive()
    }
}

impl Phone {
    /// Creates the namespaces for `spec` under `names` and starts the carrier (must run inside
    /// a tokio runtime). Nothing routes until [`Phone::evaluate`]: start the device first.
    pub fn create(
        spec: PhoneSpec,
        names: Namespaces,
        events: EventSink,
    ) -> Result<Phone, PhoneError> {
        check_privileges()?;
        let topology = Topology::create(names, &spec)?;
        let stop = CancellationToken::new();
        let names = topology.names().clone();
        if spec.has_cellular() {
            carrier::start(&names.carrier, events.clone(), stop.clone())?;
        }
        events(PhoneEvent::NamespacesCreated {
            phone: names.phone.clone(),
            ap: names.ap.clone(),
            carrier: spec.has_cellular().then(|| names.carrier.clone()),
        });
        Ok(Phone {
            spec,
            topology,
            events,
            stop,
            verdict: None,
            routing: None,
        })
    }

    /// The namespace names.
    pub fn namespaces(&self) -> &Namespaces {
        self.topology.names()
    }

    /// The spec.
    pub fn spec(&self) -> &PhoneSpec {
        &self.spec
    }

    /// The last verdict, once [`Phone::evaluate`] ran.
    pub fn verdict(&self) -> Option<&ProbeOutcome> {
        self.verdict.as_ref()
    }

    /// The routing in force, once [`Phone::evaluate`] ran.
    pub fn routing(&self) -> Option<Routing> {
        self.routing
    }

    /// `ip netns exec PHONE program`: add the arguments and spawn to run it on the phone.
    pub fn phone_command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        netns_command(&self.namespaces().phone, program.as_ref())
    }

    /// `ip netns exec AP program`: runs it on the softAP's side (where the emulator belongs).
    pub fn ap_command(&self, program: impl AsRef<OsStr>) -> tokio::process::Command {
        netns_command(&self.namespaces().ap, program.as_ref())
    }

    /// Sends the connectivity check, decides the routing and applies it; emits `verdict` and
    /// `routing` events when they change (always the first time).
    pub async fn evaluate(&mut self) -> Result<Routing, PhoneError> {
        let outcome = probe::check(&self.namespaces().phone, self.spec.os).await?;
        let routing = decide(&self.spec, outcome.verdict);
        let changed_verdict = self.verdict.as_ref().map(|v| v.verdict) != Some(outcome.verdict);
        if changed_verdict {
            (self.events)(PhoneEvent::Verdict(outcome.clone()));
        }
        self.verdict = Some(outcome);
        if self.routing != Some(routing) {
            self.topology.apply(&routing)?;
            self.routing = Some(routing);
            (self.events)(PhoneEvent::Routing(routing));
        }
        Ok(routing)
    }

    /// Re-evaluates every `interval` (clamped to [`MIN_RECHECK`]..=[`MAX_RECHECK`]) forever,
    /// so a change of the device's internet mode flips the routing; returns only on error.
    /// Real Android re-evaluates an unvalidated network after 1 s, doubling up to 10 min.
    pub async fn follow(&mut self, interval: Duration) -> PhoneError {
        let interval = interval.clamp(MIN_RECHECK, MAX_RECHECK);
        loop {
            tokio::time::sleep(interval).await;
            if let Err(e) = self.evaluate().await {
                return e;
            }
        }
    }

    /// Whether the Wi-Fi is currently validated.
    pub fn is_validated(&self) -> bool {
        self.verdict
            .as_ref()
            .is_some_and(|v| v.verdict == WifiVerdict::Validated)
    }

    /// Stops the carrier, kills what still runs in the namespaces and removes them, their
    /// links and `/etc/netns/PHONE`. Dropping the phone does the same, ignoring errors.
    pub fn teardown(mut self) -> Result<(), PhoneError> {
        self.stop.cancel();
        self.topology.teardown()
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = self.topology.teardown();
    }
}

/// CAP_NET_ADMIN (12) and CAP_SYS_ADMIN (21): namespaces, links, mounts of `ip netns`.
pub fn check_privileges() -> Result<(), PhoneError> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let missing: Vec<&str> = [(12, "CAP_NET_ADMIN"), (21, "CAP_SYS_ADMIN")]
        .into_iter()
        .filter(|(bit, _)| effective & (1u64 << bit) == 0)
        .map(|(_, name)| name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PhoneError::NotPrivileged {
            missing: missing.join(", "),
        })
    }
}

/// Sends SIGTERM to process `pid` (e.g. the emulator or the app, for a clean shutdown before
/// teardown kills what is left). A process that is gone already is not an error.
pub fn terminate(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}
