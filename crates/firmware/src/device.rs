//! [`Device`]: the request handlers, the auth gate, and the timers, over a [`Board`].
//!
//! What a client sees (every reply goes to the requesting connection and echoes its `id`):
//!
//! | request | reply |
//! |---|---|
//! | `hello` | `welcome`, then `provisioning` (current state) if a `provision` ran since boot |
//! | `ping` | `pong` (same `seq`) |
//! | `get_status` | `status` |
//! | `get_config` / `set_config` | `config` (whole config; `set_config` validates all fields first) |
//! | `set_output` | `ack`, or `error unknown_output` |
//! | `subscribe` | `ack`, then a `telemetry` at once and every interval (`error invalid_value` out of range) |
//! | `unsubscribe` | `ack` |
//! | `provision` | `ack`, then `provisioning{connecting}` to every client (see [`Device::on_tick`]) |
//! | `reboot` | `ack`, then [`Action::Restart`] |
//! | undecodable frame | `error` with the [`espsim_protocol::DecodeError::code`]; the connection stays open |
//!
//! Auth: with [`DeviceSettings::auth_token`] set, a connection's first message must be a `hello`
//! with that token (unless the host called [`Device::authorize`]); any other message, or a wrong
//! token, gets `error unauthorized` followed by [`Action::Close`] 1008. Undecodable frames are
//! answered with their decode `error` whether authorized or not (they reveal nothing).
//!
//! Provisioning, for a `provision` at time `t` (defaults: delay 500 ms, outage 3000 ms):
//!
//! 1. `t`: `ack` to the requester, then `provisioning{state: connecting}` to every client;
//!    `status.wifi` is `connecting`; another `provision` now gets `error busy`.
//! 2. `t + ap_down_delay_ms`: [`Action::ApDown`]; the device forgets every connection (the host
//!    drops them: the AP is gone, so no close frame).
//! 3. `t + ap_down_delay_ms + ap_down_duration_ms`: the AP is back and the join result is known:
//!    `provisioning{connected}` or `provisioning{failed, reason}` to every client already back;
//!    credentials are saved on success; `status.wifi` becomes `connected` (with `rssi`) or `failed`.
//! 4. Until the next restart, every `hello` gets `welcome` followed by that `provisioning` result,
//!    so an app that reconnects after the outage learns the outcome. A new `provision` is allowed.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use espsim_protocol::client::{Hello, Provision, SetConfig, SetOutput, Subscribe};
use espsim_protocol::device::{
    Ack, ConfigReport, DeviceEvent, ErrorReply, Pong, ProvisioningUpdate, Status, Welcome,
};
use espsim_protocol::{
    Capability, ClientMessage, ConfigPatch, DeviceConfig, DeviceEventKind, DeviceMessage,
    ErrorCode, FailureReason, PROTOCOL_VERSION, ProvisioningState, decode,
};

use crate::board::{Board, BoardEvent, WifiCredentials};
use crate::provisioning::{Phase, Station};
use crate::settings::DeviceSettings;
use crate::telemetry::{Subscription, telemetry};
use crate::{Action, ConnId, Recipient};

/// WebSocket close code for a failed auth ("policy violation").
pub const CLOSE_UNAUTHORIZED: u16 = 1008;

/// Longest `message` text in an `error` reply, so a reply quoting hostile input stays far below
/// [`espsim_protocol::MAX_MESSAGE_SIZE`].
pub const MAX_ERROR_MESSAGE: usize = 200;

/// Board events handled per tick, so a stuck button cannot starve the other timers.
const MAX_EVENTS_PER_TICK: usize = 16;

/// The device's application state machine. See the module docs for the request/reply table.
#[derive(Debug)]
pub struct Device<B: Board> {
    board: B,
    settings: DeviceSettings,
    config: DeviceConfig,
    boot_ms: u64,
    sessions: BTreeMap<ConnId, Session>,
    station: Station,
    /// A `provision` ran since boot: `hello` is followed by the provisioning state.
    provisioned_since_boot: bool,
}

/// What the device knows about one connection.
#[derive(Debug, Clone)]
struct Session {
    authorized: bool,
    telemetry: Option<Subscription>,
}

impl<B: Board> Device<B> {
    /// Boots the device: loads the saved config (or the settings' default) and Wi-Fi credentials.
    pub fn new(board: B, settings: DeviceSettings) -> Self {
        let mut device = Device {
            board,
            config: settings.default_config.clone(),
            settings,
            boot_ms: 0,
            sessions: BTreeMap::new(),
            station: Station::Unprovisioned,
            provisioned_since_boot: false,
        };
        device.boot(0);
        device
    }

    /// The host restarted the chip (after [`Action::Restart`]): every connection and subscription
    /// is forgotten, saved state is reloaded, and uptime counts from `now_ms`.
    pub fn restart(&mut self, now_ms: u64) {
        self.boot(now_ms);
    }

    fn boot(&mut self, now_ms: u64) {
        self.boot_ms = now_ms;
        self.sessions.clear();
        self.provisioned_since_boot = false;
        self.config = self
            .board
            .load_config()
            .filter(|c| validate_config(c, &self.settings).is_ok())
            .unwrap_or_else(|| self.settings.default_config.clone());
        // Saved credentials are joined at once (no AP outage at boot).
        self.station = match self.board.load_wifi() {
            None => Station::Unprovisioned,
            Some(credentials) => {
                let outcome = self.board.join_wifi(&credentials, &self.settings.networks);
                Station::joined(&credentials.ssid, outcome)
            }
        };
    }

    /// A WebSocket connection opened. Nothing is sent: the device waits for the app to speak.
    pub fn on_connect(&mut self, conn: ConnId, _now_ms: u64) -> Vec<Action> {
        self.sessions.insert(conn, new_session(&self.settings));
        Vec::new()
    }

    /// The token was already checked at the handshake (`Authorization: Bearer`, `?token=`):
    /// serve this connection without a `hello` token.
    pub fn authorize(&mut self, conn: ConnId) {
        let session = self.sessions.entry(conn).or_insert(Session {
            authorized: true,
            telemetry: None,
        });
        session.authorized = true;
    }

    /// A raw text frame: decoded, then handled by [`Device::on_message`]. A frame that does not
    /// decode gets an `error` reply (code from the [`espsim_protocol::DecodeError`], `id` echoed
    /// when readable) and the connection stays open.
    pub fn on_frame(&mut self, conn: ConnId, payload: &[u8], now_ms: u64) -> Vec<Action> {
        match decode(payload) {
            Ok(message) => self.on_message(conn, message, now_ms),
            Err(error) => vec![reply(
                conn,
                error_reply(error.id(), error.error_code(), error.to_string()),
            )],
        }
    }

    /// A decoded message from `conn`.
    pub fn on_message(&mut self, conn: ConnId, message: ClientMessage, now_ms: u64) -> Vec<Action> {
        let id = message.id();
        let session = self
            .sessions
            .entry(conn)
            .or_insert_with(|| new_session(&self.settings));
        if !session.authorized {
            match self.settings.auth_token.as_deref() {
                None => session.authorized = true,
                Some(expected) => match &message {
                    ClientMessage::Hello(Hello {
                        token: Some(token), ..
                    }) if tokens_match(token, expected) => session.authorized = true,
                    ClientMessage::Hello(Hello { token: Some(_), .. }) => {
                        return self.reject(conn, id, "invalid token");
                    }
                    _ => {
                        return self.reject(
                            conn,
                            id,
                            "a token is required: send it in `hello` or at the handshake",
                        );
                    }
                },
            }
        }
        match message {
            ClientMessage::Hello(_) => self.hello(conn, id),
            ClientMessage::Ping(ping) => {
                vec![reply(conn, DeviceMessage::Pong(Pong { id, seq: ping.seq }))]
            }
            ClientMessage::GetStatus(_) => vec![reply(conn, self.status(id, now_ms))],
            ClientMessage::GetConfig(_) => vec![reply(conn, self.config_report(id))],
            ClientMessage::SetConfig(SetConfig { config, .. }) => {
                vec![reply(conn, self.set_config(id, config))]
            }
            ClientMessage::SetOutput(request) => vec![reply(conn, self.set_output(request))],
            ClientMessage::Subscribe(request) => self.subscribe(conn, request, now_ms),
            ClientMessage::Unsubscribe(_) => {
                if let Some(session) = self.sessions.get_mut(&conn) {
                    session.telemetry = None;
                }
                vec![reply(conn, ack(id, "unsubscribe"))]
            }
            ClientMessage::Provision(request) => self.provision(conn, request, now_ms),
            ClientMessage::Reboot(_) => vec![
                reply(conn, ack(id, "reboot")),
                Action::Restart {
                    delay_ms: self.settings.restart_delay_ms,
                },
            ],
        }
    }

    /// Timers: provisioning phases, board events (button → `event` to every client), and due
    /// telemetry samples. Call it at [`Device::next_deadline`] (and after poking the board).
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Action> {
        let mut actions = self.provisioning_tick(now_ms);
        for _ in 0..MAX_EVENTS_PER_TICK {
            let Some(event) = self.board.poll_event() else {
                break;
            };
            let kind = match event {
                BoardEvent::ButtonPressed => DeviceEventKind::ButtonPressed,
            };
            let message = DeviceMessage::Event(DeviceEvent {
                event: kind,
                timestamp_ms: self.uptime(now_ms),
            });
            actions.extend(self.broadcast(message));
        }
        let due: Vec<(ConnId, u64)> = self
            .sessions
            .iter_mut()
            .filter(|(_, s)| s.authorized)
            .filter_map(|(conn, s)| Some((*conn, s.telemetry.as_mut()?.take_due(now_ms)?)))
            .collect();
        if !due.is_empty() {
            let reading = self.board.read_sensors(now_ms);
            let unit = self.config.temperature_unit;
            let uptime = self.uptime(now_ms);
            for (conn, seq) in due {
                let sample = telemetry(reading, unit, seq, uptime);
                actions.push(reply(conn, DeviceMessage::Telemetry(sample)));
            }
        }
        actions
    }

    /// The connection closed (either side). Its subscription ends. Unknown connections are ignored.
    pub fn on_disconnect(&mut self, conn: ConnId, _now_ms: u64) -> Vec<Action> {
        self.sessions.remove(&conn);
        Vec::new()
    }

    /// The earliest time [`Device::on_tick`] has scheduled work (telemetry, provisioning);
    /// `None` when idle. Board events (button) are not scheduled: tick after poking the board.
    pub fn next_deadline(&self) -> Option<u64> {
        let telemetry = self
            .sessions
            .values()
            .filter(|s| s.authorized)
            .filter_map(|s| s.telemetry.as_ref().map(Subscription::next_at));
        telemetry.chain(self.station.deadline()).min()
    }

    /// The board (e.g. to press the simulated button).
    pub fn board(&self) -> &B {
        &self.board
    }

    /// The board, mutably.
    pub fn board_mut(&mut self) -> &mut B {
        &mut self.board
    }

    /// The configuration in effect.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// The settings the device was created with.
    pub fn settings(&self) -> &DeviceSettings {
        &self.settings
    }

    /// Connections currently known (connected, authorized or not).
    pub fn connections(&self) -> usize {
        self.sessions.len()
    }

    fn uptime(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.boot_ms)
    }

    fn reject(&mut self, conn: ConnId, id: Option<u64>, why: &str) -> Vec<Action> {
        self.sessions.remove(&conn);
        vec![
            reply(
                conn,
                error_reply(id, ErrorCode::Unauthorized, why.to_string()),
            ),
            Action::Close {
                conn,
                code: CLOSE_UNAUTHORIZED,
                reason: "unauthorized".to_string(),
            },
        ]
    }

    fn hello(&self, conn: ConnId, id: Option<u64>) -> Vec<Action> {
        let mut actions = vec![reply(
            conn,
            DeviceMessage::Welcome(Welcome {
                id,
                device_id: self.settings.device_id.clone(),
                firmware_version: self.settings.firmware_version.clone(),
                protocol_version: PROTOCOL_VERSION,
                capabilities: vec![
                    Capability::Telemetry,
                    Capability::Outputs,
                    Capability::Config,
                    Capability::Provisioning,
                    Capability::Reboot,
                    Capability::Events,
                ],
            }),
        )];
        if self.provisioned_since_boot
            && let Some(update) = self.station.report()
        {
            actions.push(reply(conn, DeviceMessage::Provisioning(update)));
        }
        actions
    }

    fn status(&self, id: Option<u64>, now_ms: u64) -> DeviceMessage {
        let connected = matches!(self.station, Station::Connected { .. });
        DeviceMessage::Status(Status {
            id,
            uptime_ms: self.uptime(now_ms),
            free_heap: self.board.free_heap(),
            rssi: if connected { self.board.rssi() } else { None },
            wifi: self.station.wifi_state(),
            outputs: self.board.outputs(),
            clients: u32::try_from(self.sessions.len()).unwrap_or(u32::MAX),
        })
    }

    fn config_report(&self, id: Option<u64>) -> DeviceMessage {
        DeviceMessage::Config(ConfigReport {
            id,
            config: self.config.clone(),
        })
    }

    fn set_config(&mut self, id: Option<u64>, patch: ConfigPatch) -> DeviceMessage {
        let mut next = self.config.clone();
        if let Some(name) = patch.name {
            next.name = name;
        }
        if let Some(interval) = patch.telemetry_interval_ms {
            next.telemetry_interval_ms = interval;
        }
        if let Some(unit) = patch.temperature_unit {
            next.temperature_unit = unit;
        }
        if let Err(why) = validate_config(&next, &self.settings) {
            return error_reply(id, ErrorCode::InvalidValue, why);
        }
        if next != self.config {
            if let Err(error) = self.board.save_config(&next) {
                return error_reply(id, ErrorCode::StorageFailed, error.to_string());
            }
            self.config = next;
        }
        self.config_report(id)
    }

    fn set_output(&mut self, request: SetOutput) -> DeviceMessage {
        match self.board.set_output(&request.name, request.on) {
            Ok(()) => ack(request.id, "set_output"),
            Err(error) => error_reply(request.id, ErrorCode::UnknownOutput, error.to_string()),
        }
    }

    fn subscribe(&mut self, conn: ConnId, request: Subscribe, now_ms: u64) -> Vec<Action> {
        let interval = request
            .interval_ms
            .unwrap_or(self.config.telemetry_interval_ms);
        if let Err(why) = check_interval(interval, &self.settings) {
            return vec![reply(
                conn,
                error_reply(request.id, ErrorCode::InvalidValue, why),
            )];
        }
        let mut subscription = Subscription::new(interval, now_ms);
        // The first sample goes out at once so the app sees data without waiting an interval.
        let first = subscription.take_due(now_ms);
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.telemetry = Some(subscription);
        }
        let mut actions = vec![reply(conn, ack(request.id, "subscribe"))];
        if let Some(seq) = first {
            let reading = self.board.read_sensors(now_ms);
            let sample = telemetry(
                reading,
                self.config.temperature_unit,
                seq,
                self.uptime(now_ms),
            );
            actions.push(reply(conn, DeviceMessage::Telemetry(sample)));
        }
        actions
    }

    fn provision(&mut self, conn: ConnId, request: Provision, now_ms: u64) -> Vec<Action> {
        if matches!(self.station, Station::Joining { .. }) {
            return vec![reply(
                conn,
                error_reply(
                    request.id,
                    ErrorCode::Busy,
                    "provisioning already in progress".to_string(),
                ),
            )];
        }
        if let Err(why) = check_credentials(&request.ssid, &request.password) {
            return vec![reply(
                conn,
                error_reply(request.id, ErrorCode::InvalidValue, why),
            )];
        }
        self.provisioned_since_boot = true;
        self.station = Station::Joining {
            credentials: WifiCredentials {
                ssid: request.ssid.clone(),
                password: request.password,
            },
            phase: Phase::AwaitingApDown {
                at: now_ms.saturating_add(self.settings.ap_down_delay_ms),
            },
        };
        let mut actions = vec![reply(conn, ack(request.id, "provision"))];
        actions.extend(
            self.broadcast(DeviceMessage::Provisioning(ProvisioningUpdate {
                id: None,
                state: ProvisioningState::Connecting,
                ssid: request.ssid,
                reason: None,
            })),
        );
        actions
    }

    fn provisioning_tick(&mut self, now_ms: u64) -> Vec<Action> {
        let Station::Joining { credentials, phase } = &self.station else {
            return Vec::new();
        };
        match *phase {
            Phase::AwaitingApDown { at } if now_ms >= at => {
                let duration_ms = self.settings.ap_down_duration_ms;
                self.station = Station::Joining {
                    credentials: credentials.clone(),
                    phase: Phase::ApDown {
                        until: now_ms.saturating_add(duration_ms),
                    },
                };
                // Every client drops with the AP.
                self.sessions.clear();
                vec![Action::ApDown { duration_ms }]
            }
            Phase::ApDown { until } if now_ms >= until => {
                let credentials = credentials.clone();
                let outcome = self.board.join_wifi(&credentials, &self.settings.networks);
                let mut station = Station::joined(&credentials.ssid, outcome);
                if matches!(station, Station::Connected { .. })
                    && self.board.save_wifi(&credentials).is_err()
                {
                    station = Station::Failed {
                        ssid: credentials.ssid.clone(),
                        reason: FailureReason::StorageFailed,
                    };
                }
                self.station = station;
                match self.station.report() {
                    Some(update) => self.broadcast(DeviceMessage::Provisioning(update)),
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// A message for every client: [`Recipient::All`] without auth, else one send per authorized
    /// connection.
    fn broadcast(&self, message: DeviceMessage) -> Vec<Action> {
        if self.settings.auth_token.is_none() {
            return vec![Action::Send {
                to: Recipient::All,
                message,
            }];
        }
        self.sessions
            .iter()
            .filter(|(_, s)| s.authorized)
            .map(|(conn, _)| reply(*conn, message.clone()))
            .collect()
    }
}

fn new_session(settings: &DeviceSettings) -> Session {
    Session {
        authorized: settings.auth_token.is_none(),
        telemetry: None,
    }
}

fn reply(conn: ConnId, message: DeviceMessage) -> Action {
    Action::Send {
        to: Recipient::Conn(conn),
        message,
    }
}

fn ack(id: Option<u64>, of: &str) -> DeviceMessage {
    DeviceMessage::Ack(Ack {
        id,
        of: of.to_string(),
    })
}

/// An `error` reply; the text is cut to [`MAX_ERROR_MESSAGE`] bytes (on a char boundary).
fn error_reply(id: Option<u64>, code: ErrorCode, mut message: String) -> DeviceMessage {
    if message.len() > MAX_ERROR_MESSAGE {
        let mut end = MAX_ERROR_MESSAGE - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    DeviceMessage::Error(ErrorReply { id, code, message })
}

/// Constant-time comparison (for equal lengths), so response timing does not leak the token.
fn tokens_match(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn validate_config(config: &DeviceConfig, settings: &DeviceSettings) -> Result<(), String> {
    let name = config.name.as_str();
    if name.is_empty() || name.len() > 32 || name.chars().any(char::is_control) {
        return Err("`name` must be 1-32 bytes without control characters".to_string());
    }
    check_interval(config.telemetry_interval_ms, settings)
        .map_err(|why| why.replace("interval", "telemetry_interval_ms"))
}

fn check_interval(interval_ms: u64, settings: &DeviceSettings) -> Result<(), String> {
    let (min, max) = (
        settings.min_telemetry_interval_ms,
        settings.max_telemetry_interval_ms,
    );
    if (min..=max).contains(&interval_ms) {
        Ok(())
    } else {
        Err(alloc::format!(
            "interval {interval_ms} ms is outside {min}-{max} ms"
        ))
    }
}

/// 802.11 / WPA2 limits, as `esp_wifi_set_config` enforces them.
fn check_credentials(ssid: &str, password: &str) -> Result<(), String> {
    if ssid.is_empty() || ssid.len() > 32 {
        return Err("`ssid` must be 1-32 bytes".to_string());
    }
    if !password.is_empty() && !(8..=63).contains(&password.len()) {
        return Err("`password` must be empty (open network) or 8-63 bytes".to_string());
    }
    Ok(())
}
