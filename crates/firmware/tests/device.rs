//! The device as an app sees it: the exact JSON of every reply, every error code, auth, telemetry
//! and provisioning timing — all on an explicit clock, no sleeps.

use espsim_firmware::protocol::{MAX_MESSAGE_SIZE, encode};
use espsim_firmware::{Action, Board, ConnId, Device, DeviceSettings, Recipient, SimBoard};

/// Renders actions the way a host would execute them, so assertions read like the wire.
fn render(actions: Vec<Action>) -> Vec<String> {
    actions
        .into_iter()
        .map(|action| match action {
            Action::Send { to, message } => {
                let json = String::from_utf8(encode(&message)).expect("utf-8");
                match to {
                    Recipient::Conn(conn) => format!("to {conn}: {json}"),
                    Recipient::All => format!("all: {json}"),
                }
            }
            Action::Close { conn, code, reason } => format!("close {conn} {code} {reason}"),
            Action::ApDown { duration_ms } => format!("ap_down {duration_ms}"),
            Action::Restart { delay_ms } => format!("restart {delay_ms}"),
            other => format!("{other:?}"),
        })
        .collect()
}

struct Harness {
    device: Device<SimBoard>,
}

impl Harness {
    fn new(settings: DeviceSettings) -> Self {
        Harness {
            device: Device::new(SimBoard::new(7), settings),
        }
    }

    fn connect(&mut self, conn: ConnId, now: u64) -> Vec<String> {
        render(self.device.on_connect(conn, now))
    }

    fn send(&mut self, conn: ConnId, json: &str, now: u64) -> Vec<String> {
        render(self.device.on_frame(conn, json.as_bytes(), now))
    }

    fn tick(&mut self, now: u64) -> Vec<String> {
        render(self.device.on_tick(now))
    }
}

fn open() -> Harness {
    let mut h = Harness::new(DeviceSettings::default());
    assert!(
        h.connect(1, 0).is_empty(),
        "the device speaks only when spoken to"
    );
    h
}

#[test]
fn hello_is_answered_by_welcome() {
    let mut h = open();
    assert_eq!(
        h.send(
            1,
            r#"{"type":"hello","id":1,"client":"app","version":"1.0"}"#,
            10
        ),
        [format!(
            r#"to 1: {{"type":"welcome","id":1,"device_id":"espsim-000001","firmware_version":"{}","protocol_version":1,"capabilities":["telemetry","outputs","config","provisioning","reboot","events"]}}"#,
            env!("CARGO_PKG_VERSION")
        )]
    );
}

#[test]
fn ping_is_answered_by_pong_with_the_same_seq() {
    let mut h = open();
    assert_eq!(
        h.send(1, r#"{"type":"ping","id":2,"seq":41}"#, 10),
        [r#"to 1: {"type":"pong","id":2,"seq":41}"#]
    );
    assert_eq!(
        h.send(1, r#"{"type":"ping","seq":42}"#, 10),
        [r#"to 1: {"type":"pong","seq":42}"#]
    );
}

#[test]
fn get_status_reports_uptime_heap_wifi_outputs_and_clients() {
    let mut h = open();
    h.connect(2, 0);
    assert_eq!(
        h.send(1, r#"{"type":"get_status","id":3}"#, 12_345),
        [
            r#"to 1: {"type":"status","id":3,"uptime_ms":12345,"free_heap":180007,"wifi":"unprovisioned","outputs":{"led":false,"relay":false},"clients":2}"#
        ]
    );
}

#[test]
fn get_config_and_partial_set_config() {
    let mut h = open();
    assert_eq!(
        h.send(1, r#"{"type":"get_config","id":4}"#, 0),
        [
            r#"to 1: {"type":"config","id":4,"config":{"name":"espsim","telemetry_interval_ms":1000,"temperature_unit":"celsius"}}"#
        ]
    );
    // Only the given field changes; the reply is the whole config; it is persisted.
    assert_eq!(
        h.send(
            1,
            r#"{"type":"set_config","id":5,"config":{"name":"kitchen"}}"#,
            0
        ),
        [
            r#"to 1: {"type":"config","id":5,"config":{"name":"kitchen","telemetry_interval_ms":1000,"temperature_unit":"celsius"}}"#
        ]
    );
    assert_eq!(
        h.device.board().saved_config().map(|c| c.name.as_str()),
        Some("kitchen")
    );
    // Saved config survives a restart.
    h.device.restart(50_000);
    assert_eq!(h.device.config().name, "kitchen");
}

#[test]
fn set_config_validates_every_field_before_applying_any() {
    let mut h = open();
    assert_eq!(
        h.send(
            1,
            r#"{"type":"set_config","id":6,"config":{"name":"ok","telemetry_interval_ms":50}}"#,
            0
        ),
        [
            r#"to 1: {"type":"error","id":6,"code":"invalid_value","message":"telemetry_interval_ms 50 ms is outside 100-3600000 ms"}"#
        ]
    );
    assert_eq!(
        h.send(1, r#"{"type":"set_config","id":7,"config":{"name":""}}"#, 0),
        [
            r#"to 1: {"type":"error","id":7,"code":"invalid_value","message":"`name` must be 1-32 bytes without control characters"}"#
        ]
    );
    assert_eq!(h.device.config().name, "espsim", "nothing applied");
    assert_eq!(h.device.board().saved_config(), None);
}

#[test]
fn storage_failure_leaves_config_unchanged() {
    let mut h = open();
    h.device.board_mut().set_storage_fault(true);
    assert_eq!(
        h.send(
            1,
            r#"{"type":"set_config","id":8,"config":{"temperature_unit":"fahrenheit"}}"#,
            0
        ),
        [
            r#"to 1: {"type":"error","id":8,"code":"storage_failed","message":"storage failed: simulated storage fault"}"#
        ]
    );
    assert_eq!(
        h.device.config().temperature_unit,
        espsim_firmware::protocol::TemperatureUnit::Celsius
    );
}

#[test]
fn set_output_switches_a_named_output() {
    let mut h = open();
    assert_eq!(
        h.send(
            1,
            r#"{"type":"set_output","id":9,"name":"led","on":true}"#,
            0
        ),
        [r#"to 1: {"type":"ack","id":9,"of":"set_output"}"#]
    );
    assert_eq!(h.device.board().outputs().get("led"), Some(&true));
    let status = h.send(1, r#"{"type":"get_status"}"#, 0);
    assert!(status[0].contains(r#""outputs":{"led":true,"relay":false}"#));
    assert_eq!(
        h.send(
            1,
            r#"{"type":"set_output","id":10,"name":"fan","on":true}"#,
            0
        ),
        [
            r#"to 1: {"type":"error","id":10,"code":"unknown_output","message":"no output named `fan`"}"#
        ]
    );
}

#[test]
fn subscribe_sends_a_sample_at_once_then_every_interval() {
    let mut h = open();
    let first = h.send(
        1,
        r#"{"type":"subscribe","id":11,"interval_ms":500}"#,
        1_000,
    );
    assert_eq!(first.len(), 2);
    assert_eq!(first[0], r#"to 1: {"type":"ack","id":11,"of":"subscribe"}"#);
    assert!(
        first[1]
            .starts_with(r#"to 1: {"type":"telemetry","seq":1,"timestamp_ms":1000,"temperature":"#),
        "{}",
        first[1]
    );
    let sample: serde_json::Value =
        serde_json::from_str(first[1].trim_start_matches("to 1: ")).expect("json");
    let keys: Vec<&str> = sample
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "humidity",
            "seq",
            "temperature",
            "timestamp_ms",
            "type",
            "unit"
        ]
    );
    assert!(sample["temperature"].is_f64() && sample["humidity"].is_f64());
    assert_eq!(h.device.next_deadline(), Some(1_500));
    assert!(h.tick(1_499).is_empty());
    let second = h.tick(1_500);
    assert_eq!(second.len(), 1);
    assert!(second[0].starts_with(r#"to 1: {"type":"telemetry","seq":2,"timestamp_ms":1500,"#));
    assert_eq!(h.device.next_deadline(), Some(2_000));
    // A late tick sends one sample, not a burst, and re-anchors the schedule.
    let late = h.tick(3_700);
    assert_eq!(late.len(), 1);
    assert!(late[0].contains(r#""seq":3,"timestamp_ms":3700"#));
    assert_eq!(h.device.next_deadline(), Some(4_200));
}

#[test]
fn telemetry_values_are_the_boards_readings_in_the_configured_unit() {
    let mut h = open();
    h.send(
        1,
        r#"{"type":"set_config","config":{"temperature_unit":"fahrenheit"}}"#,
        0,
    );
    let reading = SimBoard::new(7).read_sensors(2_000);
    let c = reading.temperature_c.expect("sim reads");
    let out = h.send(1, r#"{"type":"subscribe"}"#, 2_000);
    let json: serde_json::Value =
        serde_json::from_str(out[1].trim_start_matches("to 1: ")).expect("json");
    let f = json["temperature"].as_f64().expect("temperature") as f32;
    assert!((f - (c * 9.0 / 5.0 + 32.0)).abs() <= 0.051, "{f} vs {c} °C");
    assert_eq!(json["unit"], "fahrenheit");
    // Default interval = config's telemetry_interval_ms.
    assert_eq!(h.device.next_deadline(), Some(3_000));
    // A failing sensor is reported by omission, not as null or NaN.
    h.device.board_mut().set_sensor_fault(true);
    assert_eq!(
        h.tick(3_000),
        [r#"to 1: {"type":"telemetry","seq":2,"timestamp_ms":3000,"unit":"fahrenheit"}"#]
    );
}

#[test]
fn subscribe_interval_is_bounded() {
    let mut h = open();
    assert_eq!(
        h.send(1, r#"{"type":"subscribe","id":12,"interval_ms":99}"#, 0),
        [
            r#"to 1: {"type":"error","id":12,"code":"invalid_value","message":"interval 99 ms is outside 100-3600000 ms"}"#
        ]
    );
    assert_eq!(
        h.send(
            1,
            r#"{"type":"subscribe","id":13,"interval_ms":3600001}"#,
            0
        )[0],
        r#"to 1: {"type":"error","id":13,"code":"invalid_value","message":"interval 3600001 ms is outside 100-3600000 ms"}"#
    );
    assert_eq!(h.device.next_deadline(), None);
    assert_eq!(
        h.send(1, r#"{"type":"subscribe","interval_ms":100}"#, 0)
            .len(),
        2
    );
    assert_eq!(h.device.next_deadline(), Some(100));
}

#[test]
fn subscriptions_are_per_connection_and_end_with_unsubscribe_or_disconnect() {
    let mut h = open();
    h.connect(2, 0);
    h.send(1, r#"{"type":"subscribe","interval_ms":1000}"#, 0);
    h.send(2, r#"{"type":"subscribe","interval_ms":300}"#, 0);
    assert_eq!(h.device.next_deadline(), Some(300));
    let at_300 = h.tick(300);
    assert_eq!(at_300.len(), 1);
    assert!(at_300[0].starts_with("to 2: "));
    assert_eq!(
        h.send(2, r#"{"type":"unsubscribe","id":14}"#, 400),
        [r#"to 2: {"type":"ack","id":14,"of":"unsubscribe"}"#]
    );
    assert_eq!(h.device.next_deadline(), Some(1_000));
    let at_1000 = h.tick(1_000);
    assert_eq!(at_1000.len(), 1);
    assert!(at_1000[0].starts_with(r#"to 1: {"type":"telemetry","seq":2,"#));
    assert!(render(h.device.on_disconnect(1, 1_500)).is_empty());
    assert_eq!(h.device.next_deadline(), None);
    assert!(h.tick(2_000).is_empty());
}

#[test]
fn reboot_is_acked_then_restart_is_requested() {
    let mut h = open();
    h.send(1, r#"{"type":"subscribe"}"#, 0);
    assert_eq!(
        h.send(1, r#"{"type":"reboot","id":15}"#, 5_000),
        [
            r#"to 1: {"type":"ack","id":15,"of":"reboot"}"#,
            "restart 200"
        ]
    );
    h.device.restart(5_200);
    assert_eq!(h.device.connections(), 0);
    assert_eq!(h.device.next_deadline(), None, "subscriptions are gone");
    h.connect(1, 6_000);
    let status = h.send(1, r#"{"type":"get_status"}"#, 6_000);
    assert!(status[0].contains(r#""uptime_ms":800,"#), "{}", status[0]);
}

#[test]
fn malformed_frames_get_the_right_error_and_the_connection_stays() {
    let mut h = open();
    let big = format!(
        r#"{{"type":"ping","seq":1,"pad":"{}"}}"#,
        "x".repeat(MAX_MESSAGE_SIZE)
    );
    assert_eq!(
        h.send(1, &big, 0),
        [
            r#"to 1: {"type":"error","code":"too_large","message":"message of 4128 bytes exceeds the limit of 4096 bytes"}"#
        ]
    );
    assert_eq!(
        h.send(1, "not json", 0),
        [
            r#"to 1: {"type":"error","code":"invalid_json","message":"invalid json at line 1 column 2: expected ident"}"#
        ]
    );
    assert_eq!(
        h.send(1, "[1]", 0),
        [
            r#"to 1: {"type":"error","code":"invalid_message","message":"expected a json object, found array"}"#
        ]
    );
    assert_eq!(
        h.send(1, r#"{"id":16}"#, 0),
        [
            r#"to 1: {"type":"error","id":16,"code":"missing_type","message":"missing field `type`"}"#
        ]
    );
    assert_eq!(
        h.send(1, r#"{"type":"frobnicate","id":17}"#, 0),
        [
            r#"to 1: {"type":"error","id":17,"code":"unknown_type","message":"unknown message type `frobnicate`"}"#
        ]
    );
    assert_eq!(
        h.send(1, r#"{"type":"set_output","id":18,"name":"led"}"#, 0),
        [
            r#"to 1: {"type":"error","id":18,"code":"invalid_message","message":"`set_output` is missing field `on`"}"#
        ]
    );
    assert_eq!(
        h.send(1, r#"{"type":"ping","id":19,"seq":1,"extra":true}"#, 0),
        [
            r#"to 1: {"type":"error","id":19,"code":"invalid_message","message":"`ping` has no field `extra`"}"#
        ]
    );
    // Still connected and served.
    assert_eq!(
        h.send(1, r#"{"type":"ping","id":20,"seq":2}"#, 0),
        [r#"to 1: {"type":"pong","id":20,"seq":2}"#]
    );
}

#[test]
fn error_messages_quoting_hostile_input_are_truncated() {
    let mut h = open();
    let name = "y".repeat(3_000);
    let out = h.send(1, &format!(r#"{{"type":"{name}","id":21}}"#), 0);
    let json: serde_json::Value =
        serde_json::from_str(out[0].trim_start_matches("to 1: ")).expect("json");
    assert_eq!(json["code"], "unknown_type");
    assert_eq!(json["id"], 21);
    let message = json["message"].as_str().expect("message");
    assert_eq!(message.len(), 200);
    assert!(message.ends_with("..."));
}

fn with_token() -> Harness {
    let mut h = Harness::new(DeviceSettings {
        auth_token: Some("s3cret".into()),
        ..DeviceSettings::default()
    });
    h.connect(1, 0);
    h
}

#[test]
fn with_a_token_anything_before_hello_is_unauthorized_and_closed() {
    let mut h = with_token();
    assert_eq!(
        h.send(1, r#"{"type":"get_status","id":22}"#, 0),
        [
            r#"to 1: {"type":"error","id":22,"code":"unauthorized","message":"a token is required: send it in `hello` or at the handshake"}"#,
            "close 1 1008 unauthorized"
        ]
    );
    assert_eq!(h.device.connections(), 0);
}

#[test]
fn with_a_token_hello_without_or_with_a_wrong_token_is_closed() {
    let mut h = with_token();
    assert_eq!(
        h.send(
            1,
            r#"{"type":"hello","id":23,"client":"a","version":"1"}"#,
            0
        ),
        [
            r#"to 1: {"type":"error","id":23,"code":"unauthorized","message":"a token is required: send it in `hello` or at the handshake"}"#,
            "close 1 1008 unauthorized"
        ]
    );
    h.connect(2, 0);
    assert_eq!(
        h.send(
            2,
            r#"{"type":"hello","id":24,"client":"a","version":"1","token":"s3cre"}"#,
            0
        ),
        [
            r#"to 2: {"type":"error","id":24,"code":"unauthorized","message":"invalid token"}"#,
            "close 2 1008 unauthorized"
        ]
    );
}

#[test]
fn with_a_token_hello_with_it_or_authorize_unlocks_the_connection() {
    let mut h = with_token();
    let welcome = h.send(
        1,
        r#"{"type":"hello","id":25,"client":"a","version":"1","token":"s3cret"}"#,
        0,
    );
    assert!(welcome[0].starts_with(r#"to 1: {"type":"welcome","id":25,"#));
    assert_eq!(
        h.send(1, r#"{"type":"ping","seq":1}"#, 0),
        [r#"to 1: {"type":"pong","seq":1}"#]
    );
    // Token checked at the handshake by the host.
    h.connect(2, 0);
    h.device.authorize(2);
    assert_eq!(
        h.send(2, r#"{"type":"ping","seq":2}"#, 0),
        [r#"to 2: {"type":"pong","seq":2}"#]
    );
    // Malformed frames are answered with their decode error, authorized or not.
    h.connect(3, 0);
    assert_eq!(
        h.send(3, "{", 0),
        [
            r#"to 3: {"type":"error","code":"invalid_json","message":"invalid json at line 1 column 1: EOF while parsing an object"}"#
        ]
    );
    // Broadcasts go only to authorized connections (not to 3).
    h.device.board_mut().press_button();
    assert_eq!(
        h.tick(1_000),
        [
            r#"to 1: {"type":"event","event":"button_pressed","timestamp_ms":1000}"#,
            r#"to 2: {"type":"event","event":"button_pressed","timestamp_ms":1000}"#
        ]
    );
}

#[test]
fn button_press_is_broadcast_on_the_next_tick() {
    let mut h = open();
    assert!(h.tick(100).is_empty());
    h.device.board_mut().press_button();
    assert_eq!(
        h.tick(250),
        [r#"all: {"type":"event","event":"button_pressed","timestamp_ms":250}"#]
    );
    assert!(h.tick(300).is_empty());
}

#[test]
fn provisioning_timeline_success() {
    let mut h = open();
    h.connect(2, 0);
    // t=1000: ack to the requester, `connecting` to everyone.
    assert_eq!(
        h.send(
            1,
            r#"{"type":"provision","id":26,"ssid":"espsim-home","password":"espsim-password"}"#,
            1_000
        ),
        [
            r#"to 1: {"type":"ack","id":26,"of":"provision"}"#,
            r#"all: {"type":"provisioning","state":"connecting","ssid":"espsim-home"}"#
        ]
    );
    assert!(h.send(2, r#"{"type":"get_status"}"#, 1_100)[0].contains(r#""wifi":"connecting""#));
    // t=1500 (ap_down_delay_ms later): the AP goes down for 3 s, every client is gone.
    assert_eq!(h.device.next_deadline(), Some(1_500));
    assert!(h.tick(1_499).is_empty());
    assert_eq!(h.tick(1_500), ["ap_down 3000"]);
    assert_eq!(h.device.connections(), 0);
    // t=4500: AP back, result known (broadcast reaches whoever is already back).
    assert_eq!(h.device.next_deadline(), Some(4_500));
    assert!(h.tick(4_499).is_empty());
    assert_eq!(
        h.tick(4_500),
        [r#"all: {"type":"provisioning","state":"connected","ssid":"espsim-home"}"#]
    );
    assert_eq!(h.device.next_deadline(), None);
    // A client reconnecting learns the result right after `welcome`.
    h.connect(3, 5_000);
    let hello = h.send(
        3,
        r#"{"type":"hello","id":27,"client":"a","version":"1"}"#,
        5_000,
    );
    assert_eq!(hello.len(), 2);
    assert!(hello[0].starts_with(r#"to 3: {"type":"welcome","id":27,"#));
    assert_eq!(
        hello[1],
        r#"to 3: {"type":"provisioning","state":"connected","ssid":"espsim-home"}"#
    );
    assert_eq!(
        h.send(3, r#"{"type":"get_status"}"#, 5_000),
        [
            r#"to 3: {"type":"status","uptime_ms":5000,"free_heap":180007,"rssi":-52,"wifi":"connected","outputs":{"led":false,"relay":false},"clients":1}"#
        ]
    );
    assert_eq!(
        h.device.board().saved_wifi().map(|w| w.ssid.as_str()),
        Some("espsim-home")
    );
    // After a restart the saved network is joined at boot, with no provisioning message.
    h.device.restart(10_000);
    h.connect(4, 10_000);
    assert_eq!(
        h.send(4, r#"{"type":"hello","client":"a","version":"1"}"#, 10_000)
            .len(),
        1
    );
    assert!(h.send(4, r#"{"type":"get_status"}"#, 10_000)[0].contains(r#""wifi":"connected""#));
}

#[test]
fn provisioning_failures_report_the_reason() {
    for (ssid, password, reason) in [
        ("espsim-home", "wrong-password", "auth_failed"),
        ("no-such-net", "whatever1", "no_ap_found"),
    ] {
        let mut h = open();
        h.send(
            1,
            &format!(r#"{{"type":"provision","ssid":"{ssid}","password":"{password}"}}"#),
            0,
        );
        assert_eq!(h.tick(500), ["ap_down 3000"]);
        assert_eq!(
            h.tick(3_500),
            [format!(
                r#"all: {{"type":"provisioning","state":"failed","ssid":"{ssid}","reason":"{reason}"}}"#
            )]
        );
        assert_eq!(h.device.board().saved_wifi(), None);
        h.connect(2, 4_000);
        assert!(h.send(2, r#"{"type":"get_status"}"#, 4_000)[0].contains(r#""wifi":"failed""#));
        // A new attempt is allowed after a failure.
        assert_eq!(
            h.send(
                2,
                r#"{"type":"provision","id":1,"ssid":"espsim-home","password":"espsim-password"}"#,
                4_000
            )[0],
            r#"to 2: {"type":"ack","id":1,"of":"provision"}"#
        );
    }
}

#[test]
fn provisioning_storage_failure_is_reported() {
    let mut h = open();
    h.device.board_mut().set_storage_fault(true);
    h.send(
        1,
        r#"{"type":"provision","ssid":"espsim-home","password":"espsim-password"}"#,
        0,
    );
    h.tick(500);
    assert_eq!(
        h.tick(3_500),
        [
            r#"all: {"type":"provisioning","state":"failed","ssid":"espsim-home","reason":"storage_failed"}"#
        ]
    );
}

#[test]
fn provisioning_rejects_bad_credentials_and_concurrent_attempts() {
    let mut h = open();
    assert_eq!(
        h.send(
            1,
            r#"{"type":"provision","id":28,"ssid":"","password":""}"#,
            0
        ),
        [
            r#"to 1: {"type":"error","id":28,"code":"invalid_value","message":"`ssid` must be 1-32 bytes"}"#
        ]
    );
    assert_eq!(
        h.send(
            1,
            r#"{"type":"provision","id":29,"ssid":"x","password":"short"}"#,
            0
        ),
        [
            r#"to 1: {"type":"error","id":29,"code":"invalid_value","message":"`password` must be empty (open network) or 8-63 bytes"}"#
        ]
    );
    h.send(
        1,
        r#"{"type":"provision","ssid":"open-net","password":""}"#,
        0,
    );
    assert_eq!(
        h.send(
            1,
            r#"{"type":"provision","id":30,"ssid":"x","password":""}"#,
            100
        ),
        [
            r#"to 1: {"type":"error","id":30,"code":"busy","message":"provisioning already in progress"}"#
        ]
    );
}

#[test]
fn every_error_code_is_reachable() {
    use espsim_firmware::protocol::ErrorCode;
    // The codes the tests above pin, by the scenario that produces each.
    let mut seen = std::collections::BTreeSet::new();
    let mut collect = |lines: Vec<String>| {
        for line in lines {
            if let Some(start) = line.find(r#""code":""#) {
                let rest = &line[start + 8..];
                seen.insert(rest[..rest.find('"').expect("end quote")].to_string());
            }
        }
    };
    let mut h = open();
    collect(h.send(1, &"x".repeat(MAX_MESSAGE_SIZE + 1), 0));
    collect(h.send(1, "x", 0));
    collect(h.send(1, "{}", 0));
    collect(h.send(1, r#"{"type":"x"}"#, 0));
    collect(h.send(1, r#"{"type":"ping"}"#, 0));
    collect(h.send(1, r#"{"type":"subscribe","interval_ms":1}"#, 0));
    collect(h.send(1, r#"{"type":"set_output","name":"x","on":true}"#, 0));
    collect(h.send(1, r#"{"type":"provision","ssid":"a","password":""}"#, 0));
    collect(h.send(1, r#"{"type":"provision","ssid":"a","password":""}"#, 0));
    h.device.board_mut().set_storage_fault(true);
    collect(h.send(1, r#"{"type":"set_config","config":{"name":"n"}}"#, 0));
    let mut t = with_token();
    collect(t.send(1, r#"{"type":"ping","seq":1}"#, 0));
    for code in [
        ErrorCode::TooLarge,
        ErrorCode::InvalidJson,
        ErrorCode::MissingType,
        ErrorCode::UnknownType,
        ErrorCode::InvalidMessage,
        ErrorCode::InvalidValue,
        ErrorCode::UnknownOutput,
        ErrorCode::Unauthorized,
        ErrorCode::Busy,
        ErrorCode::StorageFailed,
    ] {
        assert!(seen.contains(code.as_str()), "{code} never produced");
    }
}
