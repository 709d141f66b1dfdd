//! [`ProcessDevice`]: the device seam (`DeviceLogic`) for a device process. Each call becomes
//! one protocol line queued for the process's stdin, and returns no effects: what the process
//! answers comes back asynchronously through the supervisor (`DeviceHost::apply`).

use std::sync::Arc;

use espsim_firmware::{ConnId, DeviceLogic, Effect, Frame, Payload, SessionStart};

use super::link::Link;
use super::protocol::ToProcess;

/// The device logic of a device process.
#[derive(Debug)]
pub(crate) struct ProcessDevice {
    link: Arc<Link>,
}

impl ProcessDevice {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        ProcessDevice { link }
    }
}

impl DeviceLogic for ProcessDevice {
    fn on_connect(&mut self, session: ConnId, start: &SessionStart<'_>, _now: u64) -> Vec<Effect> {
        if self.link.send(&ToProcess::SessionOpened { session, start }) {
            return Vec::new();
        }
        // No process serves (it is restarting, or hung): nobody will ever answer this session.
        vec![Effect::Close {
            session,
            code: 1011,
            reason: "device process not running".to_owned(),
        }]
    }

    fn on_message(&mut self, session: ConnId, frame: Frame<'_>, _now: u64) -> Vec<Effect> {
        let payload = match frame {
            Frame::Text(t) => Payload::Text(t.to_owned()),
            Frame::Binary(b) => Payload::Binary(b.to_vec()),
        };
        self.link.send(&ToProcess::Message { session, payload });
        Vec::new()
    }

    fn on_disconnect(&mut self, session: ConnId, _now: u64) -> Vec<Effect> {
        self.link.send(&ToProcess::SessionClosed { session });
        Vec::new()
    }

    fn on_tick(&mut self, _now: u64) -> Vec<Effect> {
        Vec::new()
    }

    fn next_deadline(&self) -> Option<u64> {
        None
    }

    fn serves_http(&self) -> bool {
        true
    }

    // `on_http` keeps its default: the host asks the process asynchronously (`Link::http`).

    fn power_on(&mut self, _now: u64) {
        // A `reboot` fault; after a crash the process is new and needs no telling.
        if self.link.is_up() {
            self.link.send(&ToProcess::Reboot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_process::link::Wire;
    use crate::events::EventLog;
    use std::time::Duration;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn device() -> (ProcessDevice, Arc<Link>) {
        let link = Arc::new(Link::new(Duration::from_secs(1), Arc::new(EventLog::new())));
        (ProcessDevice::new(link.clone()), link)
    }

    #[test]
    fn a_reboot_reaches_a_running_process_and_sessions_without_one_are_closed() {
        let (mut device, link) = device();
        let start = SessionStart {
            path: "/ws",
            query: None,
            headers: &[],
            authorized: false,
        };
        assert!(
            matches!(
                &device.on_connect(1, &start, 0)[..],
                [Effect::Close {
                    session: 1,
                    code: 1011,
                    ..
                }]
            ),
            "no process: nobody would answer"
        );
        device.power_on(0); // nothing to tell, nothing panics

        let (tx, mut rx) = mpsc::channel(4);
        link.attach(Wire {
            tx,
            hung: CancellationToken::new(),
        });
        assert!(device.on_connect(2, &start, 0).is_empty());
        device.power_on(0);
        let opened: serde_json::Value =
            serde_json::from_str(&rx.try_recv().expect("session_opened")).expect("json");
        assert_eq!(opened["type"], "session_opened");
        assert_eq!(opened["session"], 2);
        assert_eq!(rx.try_recv().expect("reboot"), r#"{"type":"reboot"}"#);
    }

    #[test]
    fn a_full_stdin_queue_marks_the_process_hung() {
        let (mut device, link) = device();
        let (tx, _rx) = mpsc::channel(1);
        let hung = CancellationToken::new();
        link.attach(Wire {
            tx,
            hung: hung.clone(),
        });
        device.on_message(1, Frame::Text("a"), 0);
        assert!(!hung.is_cancelled());
        device.on_message(1, Frame::Binary(&[1]), 0);
        assert!(hung.is_cancelled());
    }
}
