//! Golden tests: the exact JSON bytes of every message kind, both directions. A failure here means
//! the wire format changed: every app in the field would see it.

use std::collections::BTreeMap;

use espsim_protocol::client::{
    GetConfig, GetStatus, Hello, Ping, Provision, Reboot, SetConfig, SetOutput, Subscribe,
    Unsubscribe,
};
use espsim_protocol::device::{
    Ack, ConfigReport, DeviceEvent, ErrorReply, Pong, ProvisioningUpdate, Status, Telemetry,
    Welcome,
};
use espsim_protocol::{
    Capability, ClientMessage, ConfigPatch, DeviceConfig, DeviceEventKind, DeviceMessage,
    ErrorCode, FailureReason, ProvisioningState, TemperatureUnit, WifiState, decode, decode_device,
    encode, encode_client,
};

/// Every client kind with its exact bytes.
fn client_goldens() -> Vec<(ClientMessage, &'static str)> {
    vec![
        (
            Hello {
                id: Some(1),
                client: "garden-app".into(),
                version: "1.4.0".into(),
                token: Some("s3cret".into()),
            }
            .into(),
            r#"{"type":"hello","id":1,"client":"garden-app","version":"1.4.0","token":"s3cret"}"#,
        ),
        (
            Hello {
                id: None,
                client: "cli".into(),
                version: "0.1.0".into(),
                token: None,
            }
            .into(),
            r#"{"type":"hello","client":"cli","version":"0.1.0"}"#,
        ),
        (
            Ping {
                id: Some(2),
                seq: 17,
            }
            .into(),
            r#"{"type":"ping","id":2,"seq":17}"#,
        ),
        (
            GetStatus { id: Some(3) }.into(),
            r#"{"type":"get_status","id":3}"#,
        ),
        (GetStatus { id: None }.into(), r#"{"type":"get_status"}"#),
        (
            GetConfig { id: Some(4) }.into(),
            r#"{"type":"get_config","id":4}"#,
        ),
        (
            SetConfig {
                id: Some(5),
                config: ConfigPatch {
                    name: Some("kitchen".into()),
                    telemetry_interval_ms: Some(2000),
                    temperature_unit: Some(TemperatureUnit::Fahrenheit),
                },
            }
            .into(),
            r#"{"type":"set_config","id":5,"config":{"name":"kitchen","telemetry_interval_ms":2000,"temperature_unit":"fahrenheit"}}"#,
        ),
        (
            SetConfig {
                id: None,
                config: ConfigPatch {
                    telemetry_interval_ms: Some(500),
                    ..ConfigPatch::default()
                },
            }
            .into(),
            r#"{"type":"set_config","config":{"telemetry_interval_ms":500}}"#,
        ),
        (
            SetOutput {
                id: Some(6),
                name: "relay".into(),
                on: true,
            }
            .into(),
            r#"{"type":"set_output","id":6,"name":"relay","on":true}"#,
        ),
        (
            Subscribe {
                id: Some(7),
                interval_ms: Some(1000),
            }
            .into(),
            r#"{"type":"subscribe","id":7,"interval_ms":1000}"#,
        ),
        (
            Subscribe {
                id: None,
                interval_ms: None,
            }
            .into(),
            r#"{"type":"subscribe"}"#,
        ),
        (
            Unsubscribe { id: Some(8) }.into(),
            r#"{"type":"unsubscribe","id":8}"#,
        ),
        (
            Provision {
                id: Some(9),
                ssid: "HomeNet".into(),
                password: "hunter22".into(),
            }
            .into(),
            r#"{"type":"provision","id":9,"ssid":"HomeNet","password":"hunter22"}"#,
        ),
        (
            Reboot { id: Some(10) }.into(),
            r#"{"type":"reboot","id":10}"#,
        ),
    ]
}

/// Every device kind with its exact bytes.
fn device_goldens() -> Vec<(DeviceMessage, &'static str)> {
    vec![
        (
            Welcome {
                id: Some(1),
                device_id: "espsim-000001".into(),
                firmware_version: "0.1.0".into(),
                protocol_version: 1,
                capabilities: vec![
                    Capability::Telemetry,
                    Capability::Outputs,
                    Capability::Config,
                    Capability::Provisioning,
                    Capability::Reboot,
                    Capability::Events,
                ],
            }
            .into(),
            r#"{"type":"welcome","id":1,"device_id":"espsim-000001","firmware_version":"0.1.0","protocol_version":1,"capabilities":["telemetry","outputs","config","provisioning","reboot","events"]}"#,
        ),
        (
            Pong {
                id: Some(2),
                seq: 17,
            }
            .into(),
            r#"{"type":"pong","id":2,"seq":17}"#,
        ),
        (
            Status {
                id: Some(3),
                uptime_ms: 123_456,
                free_heap: 181_234,
                rssi: Some(-58),
                wifi: WifiState::Connected,
                outputs: BTreeMap::from([("led".into(), true), ("relay".into(), false)]),
                clients: 1,
            }
            .into(),
            r#"{"type":"status","id":3,"uptime_ms":123456,"free_heap":181234,"rssi":-58,"wifi":"connected","outputs":{"led":true,"relay":false},"clients":1}"#,
        ),
        (
            Status {
                id: None,
                uptime_ms: 5,
                free_heap: 190_000,
                rssi: None,
                wifi: WifiState::Unprovisioned,
                outputs: BTreeMap::new(),
                clients: 0,
            }
            .into(),
            r#"{"type":"status","uptime_ms":5,"free_heap":190000,"wifi":"unprovisioned","outputs":{},"clients":0}"#,
        ),
        (
            ConfigReport {
                id: Some(4),
                config: DeviceConfig {
                    name: "espsim".into(),
                    telemetry_interval_ms: 1000,
                    temperature_unit: TemperatureUnit::Celsius,
                },
            }
            .into(),
            r#"{"type":"config","id":4,"config":{"name":"espsim","telemetry_interval_ms":1000,"temperature_unit":"celsius"}}"#,
        ),
        (
            Telemetry {
                seq: 1,
                timestamp_ms: 61_000,
                temperature: Some(22.4),
                unit: TemperatureUnit::Celsius,
                humidity: Some(48.9),
            }
            .into(),
            r#"{"type":"telemetry","seq":1,"timestamp_ms":61000,"temperature":22.4,"unit":"celsius","humidity":48.9}"#,
        ),
        (
            Telemetry {
                seq: 2,
                timestamp_ms: 62_000,
                temperature: None,
                unit: TemperatureUnit::Fahrenheit,
                humidity: None,
            }
            .into(),
            r#"{"type":"telemetry","seq":2,"timestamp_ms":62000,"unit":"fahrenheit"}"#,
        ),
        (
            Ack {
                id: Some(6),
                of: "set_output".into(),
            }
            .into(),
            r#"{"type":"ack","id":6,"of":"set_output"}"#,
        ),
        (
            DeviceEvent {
                event: DeviceEventKind::ButtonPressed,
                timestamp_ms: 70_250,
            }
            .into(),
            r#"{"type":"event","event":"button_pressed","timestamp_ms":70250}"#,
        ),
        (
            ProvisioningUpdate {
                id: None,
                state: ProvisioningState::Connecting,
                ssid: "HomeNet".into(),
                reason: None,
            }
            .into(),
            r#"{"type":"provisioning","state":"connecting","ssid":"HomeNet"}"#,
        ),
        (
            ProvisioningUpdate {
                id: None,
                state: ProvisioningState::Connected,
                ssid: "HomeNet".into(),
                reason: None,
            }
            .into(),
            r#"{"type":"provisioning","state":"connected","ssid":"HomeNet"}"#,
        ),
        (
            ProvisioningUpdate {
                id: None,
                state: ProvisioningState::Failed,
                ssid: "HomeNet".into(),
                reason: Some(FailureReason::AuthFailed),
            }
            .into(),
            r#"{"type":"provisioning","state":"failed","ssid":"HomeNet","reason":"auth_failed"}"#,
        ),
        (
            ErrorReply {
                id: Some(11),
                code: ErrorCode::UnknownType,
                message: "unknown message type `frobnicate`".into(),
            }
            .into(),
            r#"{"type":"error","id":11,"code":"unknown_type","message":"unknown message type `frobnicate`"}"#,
        ),
    ]
}

#[test]
fn every_client_message_encodes_to_its_golden_bytes_and_back() {
    let goldens = client_goldens();
    for (message, json) in &goldens {
        assert_eq!(
            String::from_utf8(encode_client(message)).expect("utf-8"),
            *json,
            "{}",
            message.type_name()
        );
        assert_eq!(&decode(json.as_bytes()).expect(json), message);
    }
    let covered: Vec<&str> = goldens.iter().map(|(m, _)| m.type_name()).collect();
    for name in ClientMessage::TYPE_NAMES {
        assert!(covered.contains(name), "no golden for client `{name}`");
    }
}

#[test]
fn every_device_message_encodes_to_its_golden_bytes_and_back() {
    let goldens = device_goldens();
    for (message, json) in &goldens {
        assert_eq!(
            String::from_utf8(encode(message)).expect("utf-8"),
            *json,
            "{}",
            message.type_name()
        );
        assert_eq!(&decode_device(json.as_bytes()).expect(json), message);
    }
    let covered: Vec<&str> = goldens.iter().map(|(m, _)| m.type_name()).collect();
    for name in DeviceMessage::TYPE_NAMES {
        assert!(covered.contains(name), "no golden for device `{name}`");
    }
}

#[test]
fn field_order_and_whitespace_in_input_do_not_matter() {
    let message = decode(b" {\n \"seq\" : 17 , \"id\": 2,\t\"type\":\"ping\" } ").expect("valid");
    assert_eq!(
        message,
        Ping {
            id: Some(2),
            seq: 17
        }
        .into()
    );
    assert_eq!(
        decode(br#"{"type":"get_status","id":null}"#)
            .expect("valid")
            .id(),
        None
    );
}

#[test]
fn type_names_match_the_tags_on_the_wire() {
    for (message, json) in client_goldens() {
        assert!(json.starts_with(&format!(r#"{{"type":"{}""#, message.type_name())));
    }
    for (message, json) in device_goldens() {
        assert!(json.starts_with(&format!(r#"{{"type":"{}""#, message.type_name())));
    }
}

/// The exact `error` reply a device sends for an ambiguous message (issue 12, item 8): built
/// from the `DecodeError` the way the firmware builds it, no `id` (none is read from it).
#[test]
fn duplicate_key_error_reply_golden() {
    let error = decode(br#"{"type":"ping","type":"reboot"}"#).expect_err("ambiguous");
    let reply: DeviceMessage = ErrorReply {
        id: error.id(),
        code: error.error_code(),
        message: error.to_string(),
    }
    .into();
    assert_eq!(
        String::from_utf8(encode(&reply)).expect("utf-8"),
        r#"{"type":"error","code":"invalid_message","message":"duplicate key `type` at line 1 column 21"}"#
    );
}
