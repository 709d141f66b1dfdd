//! Properties: every message survives `decode(encode(m)) == m`; decoding never panics on arbitrary
//! bytes, arbitrary JSON values or near-miss messages; oversize input is rejected before parsing;
//! a repeated key is always rejected; `message_type` names exactly the kind that decodes.

use espsim_protocol::client::{
    GetConfig, GetStatus, Hello, Ping, Provision, Reboot, SetConfig, SetOutput, Subscribe,
    Unsubscribe,
};
use espsim_protocol::device::{
    Ack, ConfigReport, DeviceEvent, ErrorReply, Pong, ProvisioningUpdate, Status, Telemetry,
    Welcome,
};
use espsim_protocol::{
    Capability, ClientMessage, ConfigPatch, DecodeError, DeviceConfig, DeviceEventKind,
    DeviceMessage, ErrorCode, FailureReason, MAX_MESSAGE_SIZE, ProvisioningState, TemperatureUnit,
    WifiState, decode, decode_device, encode, encode_client, message_type,
};
use proptest::prelude::*;
use serde_json::Value;

fn text() -> impl Strategy<Value = String> {
    // Unicode, escapes and quotes included; short enough to stay under MAX_MESSAGE_SIZE.
    prop_oneof![
        "[a-z_]{0,12}",
        "\\PC{0,16}",
        Just("quote \" backslash \\ nul \u{0} é 🦀".to_string()),
    ]
}

fn id() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), any::<u64>().prop_map(Some)]
}

fn unit() -> impl Strategy<Value = TemperatureUnit> {
    prop_oneof![
        Just(TemperatureUnit::Celsius),
        Just(TemperatureUnit::Fahrenheit)
    ]
}

fn finite_f32() -> impl Strategy<Value = Option<f32>> {
    prop_oneof![
        Just(None),
        any::<f32>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(Some),
        (-400i32..1500).prop_map(|t| Some(t as f32 / 10.0)),
    ]
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (id(), text(), text(), proptest::option::of(text())).prop_map(
            |(id, client, version, token)| Hello {
                id,
                client,
                version,
                token
            }
            .into()
        ),
        (id(), any::<u64>()).prop_map(|(id, seq)| Ping { id, seq }.into()),
        id().prop_map(|id| GetStatus { id }.into()),
        id().prop_map(|id| GetConfig { id }.into()),
        (
            id(),
            proptest::option::of(text()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(unit())
        )
            .prop_map(
                |(id, name, telemetry_interval_ms, temperature_unit)| SetConfig {
                    id,
                    config: ConfigPatch {
                        name,
                        telemetry_interval_ms,
                        temperature_unit
                    }
                }
                .into()
            ),
        (id(), text(), any::<bool>()).prop_map(|(id, name, on)| SetOutput { id, name, on }.into()),
        (id(), proptest::option::of(any::<u64>())).prop_map(|(id, interval_ms)| Subscribe {
            id,
            interval_ms
        }
        .into()),
        id().prop_map(|id| Unsubscribe { id }.into()),
        (id(), text(), text())
            .prop_map(|(id, ssid, password)| Provision { id, ssid, password }.into()),
        id().prop_map(|id| Reboot { id }.into()),
    ]
}

fn device_message() -> impl Strategy<Value = DeviceMessage> {
    let capability = prop_oneof![
        Just(Capability::Telemetry),
        Just(Capability::Outputs),
        Just(Capability::Config),
        Just(Capability::Provisioning),
        Just(Capability::Reboot),
        Just(Capability::Events),
    ];
    let wifi = prop_oneof![
        Just(WifiState::Unprovisioned),
        Just(WifiState::Connecting),
        Just(WifiState::Connected),
        Just(WifiState::Failed),
    ];
    let state = prop_oneof![
        Just(ProvisioningState::Connecting),
        Just(ProvisioningState::Connected),
        Just(ProvisioningState::Failed),
    ];
    let reason = proptest::option::of(prop_oneof![
        Just(FailureReason::NoApFound),
        Just(FailureReason::AuthFailed),
        Just(FailureReason::StorageFailed),
    ]);
    let code = prop_oneof![
        Just(ErrorCode::TooLarge),
        Just(ErrorCode::InvalidJson),
        Just(ErrorCode::MissingType),
        Just(ErrorCode::UnknownType),
        Just(ErrorCode::InvalidMessage),
        Just(ErrorCode::InvalidValue),
        Just(ErrorCode::UnknownOutput),
        Just(ErrorCode::Unauthorized),
        Just(ErrorCode::Busy),
        Just(ErrorCode::StorageFailed),
    ];
    prop_oneof![
        (
            id(),
            text(),
            text(),
            any::<u32>(),
            proptest::collection::vec(capability, 0..6)
        )
            .prop_map(
                |(id, device_id, firmware_version, protocol_version, capabilities)| Welcome {
                    id,
                    device_id,
                    firmware_version,
                    protocol_version,
                    capabilities
                }
                .into()
            ),
        (id(), any::<u64>()).prop_map(|(id, seq)| Pong { id, seq }.into()),
        (
            id(),
            any::<u64>(),
            any::<u32>(),
            proptest::option::of(any::<i8>()),
            wifi,
            proptest::collection::btree_map(text(), any::<bool>(), 0..4),
            any::<u32>()
        )
            .prop_map(
                |(id, uptime_ms, free_heap, rssi, wifi, outputs, clients)| Status {
                    id,
                    uptime_ms,
                    free_heap,
                    rssi,
                    wifi,
                    outputs,
                    clients
                }
                .into()
            ),
        (id(), text(), any::<u64>(), unit()).prop_map(
            |(id, name, telemetry_interval_ms, temperature_unit)| ConfigReport {
                id,
                config: DeviceConfig {
                    name,
                    telemetry_interval_ms,
                    temperature_unit
                }
            }
            .into()
        ),
        (
            any::<u64>(),
            any::<u64>(),
            finite_f32(),
            unit(),
            finite_f32()
        )
            .prop_map(
                |(seq, timestamp_ms, temperature, unit, humidity)| Telemetry {
                    seq,
                    timestamp_ms,
                    temperature,
                    unit,
                    humidity
                }
                .into()
            ),
        (id(), text()).prop_map(|(id, of)| Ack { id, of }.into()),
        any::<u64>().prop_map(|timestamp_ms| DeviceEvent {
            event: DeviceEventKind::ButtonPressed,
            timestamp_ms
        }
        .into()),
        (id(), state, text(), reason).prop_map(|(id, state, ssid, reason)| ProvisioningUpdate {
            id,
            state,
            ssid,
            reason
        }
        .into()),
        (id(), code, text())
            .prop_map(|(id, code, message)| ErrorReply { id, code, message }.into()),
    ]
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects that look like messages: a known or unknown `type`, plausible field names, any values.
fn near_miss_object() -> impl Strategy<Value = Value> {
    let tags: Vec<&'static str> = ClientMessage::TYPE_NAMES
        .iter()
        .chain(DeviceMessage::TYPE_NAMES)
        .copied()
        .collect();
    let field = prop_oneof![
        Just("id"),
        Just("seq"),
        Just("name"),
        Just("on"),
        Just("config"),
        Just("interval_ms"),
        Just("ssid"),
        Just("password"),
        Just("token"),
        Just("client"),
        Just("version"),
        Just("bogus"),
    ];
    (
        proptest::sample::select(tags),
        proptest::collection::btree_map(field, json_value(), 0..5),
    )
        .prop_map(|(tag, fields)| {
            let mut object: serde_json::Map<String, Value> = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            object.insert("type".into(), Value::from(tag));
            Value::Object(object)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_messages_round_trip(message in client_message()) {
        let bytes = encode_client(&message);
        prop_assert!(bytes.len() <= MAX_MESSAGE_SIZE);
        prop_assert_eq!(decode(&bytes).expect("own encoding decodes"), message);
    }

    #[test]
    fn device_messages_round_trip(message in device_message()) {
        let bytes = encode(&message);
        prop_assert!(bytes.len() <= MAX_MESSAGE_SIZE);
        prop_assert_eq!(decode_device(&bytes).expect("own encoding decodes"), message);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = decode_device(&bytes);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_json(value in json_value()) {
        let bytes = serde_json::to_vec(&value).expect("serializes");
        let result = decode(&bytes);
        if !value.is_object() {
            let is_not_an_object = matches!(result, Err(DecodeError::NotAnObject { .. }));
            prop_assert!(is_not_an_object);
        }
        let _ = decode_device(&bytes);
    }

    #[test]
    fn near_miss_messages_decode_or_fail_with_a_typed_error(value in near_miss_object()) {
        let bytes = serde_json::to_vec(&value).expect("serializes");
        for result in [decode(&bytes).map(|m| encode_client(&m)), decode_device(&bytes).map(|m| encode(&m))] {
            match result {
                // Whatever decodes re-encodes to the same JSON value (nothing invented or lost).
                Ok(encoded) => {
                    let reencoded: Value = serde_json::from_slice(&encoded).expect("json");
                    let mut expected = value.clone();
                    if expected.get("id") == Some(&Value::Null) {
                        expected.as_object_mut().expect("object").remove("id");
                    }
                    prop_assert_eq!(reencoded, strip_nulls(expected));
                }
                Err(error) => {
                    prop_assert!(!error.code().is_empty());
                    // The id is echoed exactly when it was a readable u64.
                    let readable = value.get("id").and_then(Value::as_u64);
                    if !matches!(error, DecodeError::InvalidField { ref field, .. } if field == "id") {
                        prop_assert_eq!(error.id(), readable);
                    }
                }
            }
        }
    }

    #[test]
    fn message_type_names_the_kind_that_decodes(value in near_miss_object()) {
        let bytes = serde_json::to_vec(&value).expect("serializes");
        let observed = message_type(&bytes);
        if let Ok(message) = decode(&bytes) {
            prop_assert_eq!(observed.as_deref(), Some(message.type_name()));
        }
        if let Ok(message) = decode_device(&bytes) {
            prop_assert_eq!(observed.as_deref(), Some(message.type_name()));
        }
    }

    #[test]
    fn a_repeated_top_level_key_is_always_rejected(
        message in client_message(),
        value in json_value(),
    ) {
        // Appends `"type":<any value>` to a valid message: `type` now appears twice.
        let mut text = String::from_utf8(encode_client(&message)).expect("utf-8");
        text.pop();
        text.push_str(",\"type\":");
        text.push_str(&serde_json::to_string(&value).expect("serializes"));
        text.push('}');
        prop_assume!(text.len() <= MAX_MESSAGE_SIZE);
        let rejected = matches!(
            decode(text.as_bytes()),
            Err(DecodeError::DuplicateKey { ref key, .. }) if key == "type"
        );
        prop_assert!(rejected, "{}", text);
        prop_assert_eq!(message_type(text.as_bytes()), None);
    }

    #[test]
    fn oversize_input_is_too_large_whatever_it_contains(
        extra in 1usize..2048,
        fill in any::<u8>(),
    ) {
        let bytes = vec![fill; MAX_MESSAGE_SIZE + extra];
        let is_too_large = matches!(
            decode(&bytes),
            Err(DecodeError::TooLarge { size, max }) if size == MAX_MESSAGE_SIZE + extra && max == MAX_MESSAGE_SIZE
        );
        prop_assert!(is_too_large);
    }
}

/// Optional fields given as `null` decode as absent and are then omitted on re-encode.
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
    assert!(deep.len() <= MAX_MESSAGE_SIZE);
    assert_eq!(
        decode(deep.as_bytes()).expect_err("too deep").code(),
        "invalid_json"
    );
}
