//! Scenarios with a `phone:` section: the run happens on a simulated phone
//! ([`espsim_phone::Phone`]).
//!
//! The phone's namespaces are made first; then the emulator starts on a thread inside the
//! softAP's namespace with a runtime of its own ([`NamespaceThread`]), so every socket it ever
//! makes (listeners, the raw socket that sees refused SYNs, the DNS thread's) serves
//! 192.168.4.1 there: HTTP/WebSocket on 80, DNS on 53, the control API on an ephemeral port.
//! The runner drives it through its [`RunningEmulator`] handle from its own runtime, as
//! without a phone. Then the OS sends its connectivity check and routes ([`Phone::evaluate`]),
//! the app runs on the phone (`ip netns exec`; the built-in client on a thread inside the
//! phone's namespace), and the OS re-checks every [`RECHECK`] while it runs. The phone's
//! verdicts, routings and what left over cellular go into the run's event log
//! (`phone_verdict`, `phone_routing`, `cellular_connection`, `cellular_dns`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use espsim_emulator::events::{CheckVerdict, EventKind, EventLog, PhoneNetwork};
use espsim_emulator::{ControlOptions, Emulator, EmulatorConfig, RunningEmulator, StartError};
use espsim_phone::{
    DEVICE_IP, EventSink, NamespaceThread, Namespaces, Network, Phone, PhoneError, PhoneEvent,
    PhoneSpec,
};
use tokio::sync::oneshot;

use super::RunError;

/// How often the phone's OS re-sends its connectivity check while the app runs (a change of
/// the device's internet mode flips the routing, as on a real phone).
pub(super) const RECHECK: Duration = Duration::from_secs(2);

/// A phone with the emulator serving in its softAP namespace.
pub(super) struct PhoneRun {
    phone: Phone,
    /// The emulator's thread; told to end once the emulator has shut down.
    device: NamespaceThread<()>,
    device_done: oneshot::Sender<()>,
}

impl PhoneRun {
    /// Makes the phone, starts the emulator with `config` at 192.168.4.1 in its softAP
    /// namespace and lets the OS check the Wi-Fi and route.
    pub(super) async fn start(
        spec: PhoneSpec,
        mut config: EmulatorConfig,
        scenario: &str,
    ) -> Result<(PhoneRun, RunningEmulator), RunError> {
        let phone_error = |source| RunError::Phone {
            scenario: scenario.to_owned(),
            source,
        };
        let log: Arc<OnceLock<Arc<EventLog>>> = Arc::new(OnceLock::new());
        let sink_log = log.clone();
        let sink: EventSink = Arc::new(move |e: PhoneEvent| {
            if let (Some(log), Some(kind)) = (sink_log.get(), event_kind(e)) {
                log.emit(kind);
            }
        });
        let phone = Phone::create(spec, Namespaces::unique(), sink).map_err(phone_error)?;
        config.http = SocketAddr::from((DEVICE_IP, 80));
        config.dns = Some(SocketAddr::from((DEVICE_IP, 53)));
        config.device_ip = DEVICE_IP;
        config.control = config.control.map(|c| ControlOptions {
            addr: SocketAddr::from((DEVICE_IP, 0)),
            ..c
        });
        let (ready_tx, ready) = oneshot::channel::<Result<RunningEmulator, StartError>>();
        let (device_done, done) = oneshot::channel::<()>();
        let device = NamespaceThread::spawn(&phone.namespaces().ap, "espsim-ap", move || {
            async move {
                match Emulator::start(config).await {
                    Ok(emulator) => {
                        if ready_tx.send(Ok(emulator)).is_ok() {
                            // Serves until the runner has shut the emulator down.
                            let _ = done.await;
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            }
        })
        .map_err(phone_error)?;
        let emulator = match ready.await {
            Ok(Ok(emulator)) => emulator,
            Ok(Err(source)) => {
                return Err(RunError::Start {
                    scenario: scenario.to_owned(),
                    source,
                });
            }
            Err(_) => {
                let why = device
                    .join()
                    .await
                    .err()
                    .unwrap_or_else(|| PhoneError::Namespace {
                        namespace: phone.namespaces().ap.clone(),
                        what: "starting the device",
                        source: std::io::Error::other("the device's thread ended"),
                    });
                return Err(phone_error(why));
            }
        };
        let _ = log.set(emulator.events().clone());
        let mut run = PhoneRun {
            phone,
            device,
            device_done,
        };
        if let Err(e) = run.phone.evaluate().await {
            emulator.shutdown(Duration::ZERO).await;
            run.finish().await;
            return Err(phone_error(e));
        }
        Ok((run, emulator))
    }

    /// The phone's namespaces.
    pub(super) fn namespaces(&self) -> &Namespaces {
        self.phone.namespaces()
    }

    /// Re-checks every [`RECHECK`]; returns only on error.
    pub(super) async fn follow(&mut self) -> PhoneError {
        self.phone.follow(RECHECK).await
    }

    /// After the emulator's shutdown: ends its thread and removes the phone (namespaces,
    /// links, what still runs in them). A teardown problem is logged, not fatal: the run's
    /// verdict stands.
    pub(super) async fn finish(self) {
        let _ = self.device_done.send(());
        if let Err(e) = self.device.join().await {
            tracing::warn!(error = %e, "the device's thread");
        }
        if let Err(e) = self.phone.teardown() {
            tracing::warn!(error = %e, "phone teardown");
        }
    }
}

/// The event log's form of a phone event (`None`: not logged, e.g. `namespaces_created`).
fn event_kind(e: PhoneEvent) -> Option<EventKind> {
    let network = |n: Network| match n {
        Network::Wifi => PhoneNetwork::Wifi,
        Network::Cellular => PhoneNetwork::Cellular,
    };
    Some(match e {
        PhoneEvent::Verdict(v) => EventKind::PhoneVerdict {
            os: v.os.as_str().to_owned(),
            url: v.url,
            status: v.status,
            error: v.error,
            verdict: match v.verdict {
                espsim_phone::WifiVerdict::Validated => CheckVerdict::Online,
                espsim_phone::WifiVerdict::Portal => CheckVerdict::SignIn,
                espsim_phone::WifiVerdict::NoInternet => CheckVerdict::NoInternet,
            },
        },
        PhoneEvent::Routing(r) => EventKind::PhoneRouting {
            default_network: network(r.default_network),
            app_network: network(r.app_network),
            device_subnet: network(r.device_subnet),
            app_dns: r.app_dns.to_string(),
        },
        PhoneEvent::CellularConnection { proto, from, to } => EventKind::CellularConnection {
            proto: proto.to_owned(),
            from: from.into(),
            to: to.into(),
        },
        PhoneEvent::CellularDns {
            name,
            qtype,
            answer,
        } => EventKind::CellularDns {
            name,
            qtype,
            answer: answer.map(|a: Ipv4Addr| a.to_string()),
        },
        _ => return None,
    })
}
