//! The built-in firmware as a [`DeviceLogic`]: [`Device`] on the emulator's [`SimBoard`], its
//! protocol messages encoded as text frames labelled with their `type`.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use espsim_protocol::device::ErrorReply;
use espsim_protocol::{DecodeError, DeviceMessage, ErrorCode};

use crate::board::Board;
use crate::logic::{DeviceLogic, Effect, Frame, Payload, SessionStart, To};
use crate::{Action, ConnId, Device, Recipient, SimBoard};

impl DeviceLogic for Device<SimBoard> {
    fn on_connect(
        &mut self,
        session: ConnId,
        start: &SessionStart<'_>,
        now_ms: u64,
    ) -> Vec<Effect> {
        let actions = Device::on_connect(self, session, now_ms);
        if start.authorized {
            self.authorize(session);
        }
        effects(actions)
    }

    /// The message's `type`, when it has exactly one (the decoder's own reading).
    fn label(&self, _session: ConnId, frame: Frame<'_>) -> Option<String> {
        let payload = match frame {
            Frame::Text(text) => text.as_bytes(),
            Frame::Binary(bytes) => bytes,
        };
        espsim_protocol::message_type(payload)
    }

    fn on_message(&mut self, session: ConnId, frame: Frame<'_>, now_ms: u64) -> Vec<Effect> {
        let payload = match frame {
            Frame::Text(text) => text.as_bytes(),
            Frame::Binary(bytes) => bytes,
        };
        effects(self.on_frame(session, payload, now_ms))
    }

    /// Word for word what the protocol decoder says for its own limit, as an `error` reply.
    fn on_oversized(
        &mut self,
        session: ConnId,
        size: usize,
        max: usize,
        _now_ms: u64,
    ) -> Vec<Effect> {
        let message = DeviceMessage::Error(ErrorReply {
            id: None,
            code: ErrorCode::TooLarge,
            message: DecodeError::TooLarge { size, max }.to_string(),
        });
        effects(vec![Action::Send {
            to: Recipient::Conn(session),
            message,
        }])
    }

    fn on_disconnect(&mut self, session: ConnId, now_ms: u64) -> Vec<Effect> {
        effects(Device::on_disconnect(self, session, now_ms))
    }

    fn on_tick(&mut self, now_ms: u64) -> Vec<Effect> {
        effects(Device::on_tick(self, now_ms))
    }

    fn next_deadline(&self) -> Option<u64> {
        Device::next_deadline(self)
    }

    /// The button is an edge the board reports; the device broadcasts an `event` at once.
    fn on_button(&mut self, now_ms: u64) -> Vec<Effect> {
        self.board_mut().press_button();
        effects(Device::on_tick(self, now_ms))
    }

    /// GPIO outputs are off again (a reset puts every pin back to its default), the firmware
    /// boots from what its flash holds (saved config and Wi-Fi survive, uptime counts from
    /// `now_ms`).
    fn power_on(&mut self, now_ms: u64) {
        let board = self.board_mut();
        for name in board.outputs().into_keys() {
            let _ = board.set_output(&name, false);
        }
        self.restart(now_ms);
    }
}

/// The firmware's actions as effects: messages encoded (`espsim_protocol::encode`, always
/// UTF-8 JSON) and labelled with their `type`.
fn effects(actions: Vec<Action>) -> Vec<Effect> {
    actions
        .into_iter()
        .map(|action| match action {
            Action::Send { to, message } => Effect::Send {
                to: match to {
                    Recipient::Conn(conn) => To::Session(conn),
                    Recipient::All => To::All,
                },
                payload: text(&message),
                label: message.type_name().into(),
            },
            Action::Close { conn, code, reason } => Effect::Close {
                session: conn,
                code,
                reason,
            },
            Action::ApDown { duration_ms } => Effect::ApDown { duration_ms },
            Action::Restart { delay_ms } => Effect::Restart { delay_ms },
        })
        .collect()
}

/// The encoded message as a text payload; the encoder writes JSON, which is UTF-8.
fn text(message: &DeviceMessage) -> Payload {
    let bytes = espsim_protocol::encode(message);
    match String::from_utf8(bytes) {
        Ok(text) => Payload::Text(text),
        Err(e) => Payload::Binary(e.into_bytes()),
    }
}
