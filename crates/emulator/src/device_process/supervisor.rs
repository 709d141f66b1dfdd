//! Keeps the device process serving: reads its lines and carries them out through the device
//! host, and when it crashes, hangs or speaks only garbage, does what a crashed ESP32 does —
//! sessions drop without a close frame, the port refuses connections (`Outage::Rebooting`) —
//! while the process restarts with back-off, up to a budget per minute; past it the device
//! stays down and says so.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use espsim_firmware::Effect;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ProcessSpec;
use super::child::{EXIT_WAIT, Running, kill, start};
use super::lines::{Line, next_line};
use super::link::{Link, STDIN_QUEUE};
use super::protocol::{FromProcess, Garbage, MAX_LINE, decode};
use crate::device_host::DeviceHost;
use crate::events::{EventKind, EventLog};
use crate::lifecycle::Lifecycle;

/// A process that ran this long before it failed starts the back-off over.
const STABLE: Duration = Duration::from_secs(10);

/// The window of [`super::RestartPolicy::max_per_minute`].
const WINDOW: Duration = Duration::from_secs(60);

/// The first process, started and ready, and what the supervisor needs to keep one running.
#[derive(Debug)]
pub(crate) struct Supervisor {
    pub(crate) spec: ProcessSpec,
    pub(crate) seed: u64,
    pub(crate) max_message: usize,
    pub(crate) link: Arc<Link>,
    pub(crate) first: Running,
    pub(crate) events: Arc<EventLog>,
}

/// Why a run of the process ended.
enum Ended {
    /// Exited or closed its stdout.
    Exited(String),
    /// Its stdin queue overflowed.
    Hung,
    /// Too many garbage lines in a row.
    Garbage(u64),
    /// The emulator is stopping.
    Shutdown,
}

impl Supervisor {
    /// Serves until `cancel`, restarting the process as needed; kills it at the end.
    pub(crate) async fn run(self, host: Arc<DeviceHost>, lifecycle: Lifecycle) {
        let cancel = lifecycle.cancel.clone();
        let Supervisor {
            spec,
            seed,
            max_message,
            link,
            first,
            events,
        } = self;
        let mut running = first;
        let mut restarts: VecDeque<Instant> = VecDeque::new();
        let mut delay = spec.restart.first_delay;
        loop {
            let ended = serve(
                &mut running,
                &host,
                &link,
                &spec,
                max_message,
                &events,
                &cancel,
            )
            .await;
            link.detach();
            let pid = running.pid;
            kill(&mut running.child);
            let _ = tokio::time::timeout(EXIT_WAIT, running.child.wait()).await;
            let (action, why) = match ended {
                Ended::Shutdown => return,
                Ended::Exited(status) => ("process_exited", format!("exited ({status})")),
                Ended::Hung => (
                    "process_hung",
                    format!("does not read its stdin ({STDIN_QUEUE} lines queued); killed"),
                ),
                Ended::Garbage(n) => (
                    "process_garbage",
                    format!("{n} garbage lines in a row; treated as crashed, killed"),
                ),
            };
            // Like a crashed chip: refuse first, so a reconnect right after meets the outage.
            host.set_process_down(true);
            let dropped = host.drop_all_sessions("device process crashed");
            if running.since.elapsed() >= STABLE {
                delay = spec.restart.first_delay;
            }
            events.emit(EventKind::DeviceAction {
                action: action.to_owned(),
                detail: format!("pid {pid} {why}; {dropped} session(s) dropped"),
            });
            loop {
                let now = Instant::now();
                while restarts
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    restarts.pop_front();
                }
                if restarts.len() >= spec.restart.max_per_minute {
                    events.emit(EventKind::DeviceAction {
                        action: "process_gave_up".to_owned(),
                        detail: format!(
                            "{} restarts within a minute: the device stays down",
                            restarts.len()
                        ),
                    });
                    tracing::error!(target: "espsim::device_process", "the device process keeps failing ({} restarts within a minute); the device stays down", restarts.len());
                    return;
                }
                events.emit(EventKind::DeviceAction {
                    action: "process_restarting".to_owned(),
                    detail: format!("restart in {} ms", delay.as_millis()),
                });
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                restarts.push_back(Instant::now());
                let attempt = tokio::select! {
                    () = cancel.cancelled() => return,
                    r = start(&spec, seed, max_message, &events, &lifecycle) => r,
                };
                delay = (delay * 2).min(spec.restart.max_delay);
                match attempt {
                    Ok((next, wire)) => {
                        running = next;
                        link.attach(wire);
                        host.set_process_down(false);
                        break;
                    }
                    Err(e) => {
                        events.emit(EventKind::DeviceAction {
                            action: "process_start_failed".to_owned(),
                            detail: e.to_string(),
                        });
                    }
                }
            }
        }
    }
}

/// Carries out the process's lines until it ends.
async fn serve(
    running: &mut Running,
    host: &DeviceHost,
    link: &Link,
    spec: &ProcessSpec,
    max_message: usize,
    events: &EventLog,
    cancel: &CancellationToken,
) -> Ended {
    let Running {
        child,
        stdout,
        garbage,
        hung,
        ..
    } = running;
    loop {
        // Lines first: what a process printed before it exited is still carried out.
        let line = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ended::Shutdown,
            () = hung.cancelled() => return Ended::Hung,
            line = next_line(stdout, MAX_LINE) => line,
            status = child.wait() => {
                return Ended::Exited(status.map_or_else(|e| e.to_string(), |s| s.to_string()));
            }
        };
        let line = match line {
            Ok(Some(Line::Text(line))) => line,
            Ok(Some(Line::TooLong(head))) => {
                if garbage.record(&head, &Garbage::TooLong) >= spec.restart.garbage_in_a_row {
                    return Ended::Garbage(spec.restart.garbage_in_a_row);
                }
                continue;
            }
            Ok(None) | Err(_) => {
                let status = match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
                    Ok(Ok(status)) => status.to_string(),
                    _ => "closed its stdout".to_owned(),
                };
                return Ended::Exited(status);
            }
        };
        let message = match decode(&line, max_message) {
            Ok(m) => m,
            Err(why) => {
                if garbage.record(&line, &why) >= spec.restart.garbage_in_a_row {
                    return Ended::Garbage(spec.restart.garbage_in_a_row);
                }
                continue;
            }
        };
        garbage.valid();
        match message {
            FromProcess::Ready => {}
            FromProcess::Send { to, payload, label } => {
                host.apply(vec![Effect::Send { to, payload, label }]);
            }
            FromProcess::Close {
                session,
                code,
                reason,
            } => host.apply(vec![Effect::Close {
                session,
                code,
                reason,
            }]),
            FromProcess::HttpResponse { id, response } => {
                if !link.resolve(id, response) {
                    tracing::debug!(target: "espsim::device_process", id, "late or unknown http_response ignored");
                }
            }
            FromProcess::Log { message } => {
                tracing::info!(target: "espsim::device_process", "{message}");
                events.emit(EventKind::DeviceAction {
                    action: "process_log".to_owned(),
                    detail: message,
                });
            }
        }
    }
}
