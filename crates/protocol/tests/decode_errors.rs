//! Every way a message can be malformed maps to its own typed error, stable code and, when it
//! could be read, the request `id`.

use espsim_protocol::{DecodeError, ErrorCode, MAX_MESSAGE_SIZE, decode, decode_device};

fn err(input: &str) -> DecodeError {
    decode(input.as_bytes()).expect_err(input)
}

#[test]
fn oversize_input_is_rejected_before_parsing() {
    // Garbage that would be invalid JSON: the size check wins.
    let garbage = vec![b'{'; MAX_MESSAGE_SIZE + 1];
    let error = decode(&garbage).expect_err("too large");
    assert_eq!(
        error,
        DecodeError::TooLarge {
            size: MAX_MESSAGE_SIZE + 1,
            max: MAX_MESSAGE_SIZE
        }
    );
    assert_eq!(error.code(), "too_large");
    assert_eq!(error.id(), None);
    assert_eq!(
        error.to_string(),
        "message of 4097 bytes exceeds the limit of 4096 bytes"
    );
    // A valid message padded to exactly the limit is accepted; one byte more is not.
    let mut at_limit = br#"{"type":"get_status","id":1}"#.to_vec();
    at_limit.resize(MAX_MESSAGE_SIZE, b' ');
    assert!(decode(&at_limit).is_ok());
    at_limit.push(b' ');
    assert!(matches!(
        decode(&at_limit),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(matches!(
        decode_device(&at_limit),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn invalid_json_reports_line_and_column() {
    let error = err("{\"type\": \"ping\",\n  \"seq\": }");
    assert_eq!(
        error,
        DecodeError::InvalidJson {
            line: 2,
            column: 10,
            reason: "expected value".into()
        }
    );
    assert_eq!(error.code(), "invalid_json");
    assert_eq!(error.id(), None);
    assert_eq!(
        error.to_string(),
        "invalid json at line 2 column 10: expected value"
    );
    assert_eq!(err("").code(), "invalid_json");
    assert_eq!(err("hello").code(), "invalid_json");
    assert_eq!(err(r#"{"type":"ping"} trailing"#).code(), "invalid_json");
    let not_utf8 = decode(b"{\"type\":\"ping\xff\"}").expect_err("bad utf-8");
    assert_eq!(not_utf8.code(), "invalid_json");
}

#[test]
fn non_objects_are_invalid_messages() {
    for (input, found) in [
        ("[1,2]", "array"),
        ("\"ping\"", "string"),
        ("42", "number"),
        ("true", "boolean"),
        ("null", "null"),
    ] {
        let error = err(input);
        assert_eq!(error, DecodeError::NotAnObject { found }, "{input}");
        assert_eq!(error.code(), "invalid_message");
    }
    assert_eq!(err("[]").to_string(), "expected a json object, found array");
}

#[test]
fn missing_type_keeps_the_id() {
    let error = err(r#"{"id":7,"seq":1}"#);
    assert_eq!(error, DecodeError::MissingType { id: Some(7) });
    assert_eq!(error.code(), "missing_type");
    assert_eq!(error.id(), Some(7));
    assert_eq!(err("{}").id(), None);
}

#[test]
fn unknown_type_carries_the_name_and_id() {
    let error = err(r#"{"type":"frobnicate","id":42}"#);
    assert_eq!(
        error,
        DecodeError::UnknownType {
            name: "frobnicate".into(),
            id: Some(42)
        }
    );
    assert_eq!(error.code(), "unknown_type");
    assert_eq!(error.to_string(), "unknown message type `frobnicate`");
    // Device kinds are unknown to the device and vice versa; tags are case-sensitive.
    assert_eq!(err(r#"{"type":"pong","seq":1}"#).code(), "unknown_type");
    assert_eq!(err(r#"{"type":"PING","seq":1}"#).code(), "unknown_type");
    assert_eq!(
        decode_device(br#"{"type":"ping","seq":1}"#)
            .expect_err("client kind")
            .code(),
        "unknown_type"
    );
}

#[test]
fn type_that_is_not_a_string_is_an_invalid_field() {
    let error = err(r#"{"type":5,"id":3}"#);
    assert_eq!(
        error,
        DecodeError::InvalidField {
            message_type: None,
            field: "type".into(),
            reason: "expected a string, found number".into(),
            id: Some(3)
        }
    );
    assert_eq!(error.code(), "invalid_message");
}

#[test]
fn unreadable_id_is_an_invalid_field_without_id() {
    for (input, found) in [
        (r#"{"type":"ping","seq":1,"id":"7"}"#, "string"),
        (r#"{"type":"ping","seq":1,"id":-1}"#, "a negative number"),
        (r#"{"type":"ping","seq":1,"id":1.5}"#, "a fractional number"),
    ] {
        let error = err(input);
        assert_eq!(
            error,
            DecodeError::InvalidField {
                message_type: None,
                field: "id".into(),
                reason: format!("expected an unsigned 64-bit integer, found {found}"),
                id: None
            },
            "{input}"
        );
        assert_eq!(error.code(), "invalid_message");
    }
}

#[test]
fn missing_field_names_the_field_and_kind() {
    let error = err(r#"{"type":"provision","id":9,"ssid":"HomeNet"}"#);
    assert_eq!(
        error,
        DecodeError::MissingField {
            message_type: "provision",
            field: "password",
            id: Some(9)
        }
    );
    assert_eq!(error.code(), "invalid_message");
    assert_eq!(error.to_string(), "`provision` is missing field `password`");
}

#[test]
fn unknown_fields_are_rejected_not_ignored() {
    let error = err(r#"{"type":"subscribe","id":4,"intervall_ms":100}"#);
    assert_eq!(
        error,
        DecodeError::UnknownField {
            message_type: "subscribe",
            field: "intervall_ms".into(),
            id: Some(4)
        }
    );
    assert_eq!(error.code(), "invalid_message");
    assert_eq!(error.to_string(), "`subscribe` has no field `intervall_ms`");
    // Also for kinds without fields, and inside nested objects.
    assert_eq!(
        err(r#"{"type":"reboot","force":true}"#).code(),
        "invalid_message"
    );
    let nested = err(r#"{"type":"set_config","id":5,"config":{"colour":"red"}}"#);
    assert!(
        matches!(&nested, DecodeError::InvalidField { field, id: Some(5), .. } if field == "config"),
        "{nested:?}"
    );
}

#[test]
fn wrong_field_type_names_the_field() {
    let error = err(r#"{"type":"ping","id":2,"seq":"one"}"#);
    assert_eq!(
        error,
        DecodeError::InvalidField {
            message_type: Some("ping"),
            field: "seq".into(),
            reason: "invalid type: string \"one\", expected u64".into(),
            id: Some(2)
        }
    );
    assert_eq!(
        error.to_string(),
        "invalid field `seq`: invalid type: string \"one\", expected u64"
    );
    let on = err(r#"{"type":"set_output","name":"led","on":"yes","id":1}"#);
    assert!(matches!(&on, DecodeError::InvalidField { field, .. } if field == "on"));
    let unit = err(r#"{"type":"set_config","config":{"temperature_unit":"kelvin"}}"#);
    assert!(matches!(&unit, DecodeError::InvalidField { field, .. } if field == "config"));
}

#[test]
fn every_decode_error_code_is_a_wire_error_code() {
    let cases = [
        (err("x"), ErrorCode::InvalidJson),
        (err("[]"), ErrorCode::InvalidMessage),
        (err("{}"), ErrorCode::MissingType),
        (err(r#"{"type":"x"}"#), ErrorCode::UnknownType),
        (err(r#"{"type":"ping"}"#), ErrorCode::InvalidMessage),
        (
            decode(&vec![b' '; MAX_MESSAGE_SIZE + 1]).expect_err("big"),
            ErrorCode::TooLarge,
        ),
    ];
    for (error, code) in cases {
        assert_eq!(error.error_code(), code);
        assert_eq!(error.code(), code.as_str());
        // The code string is exactly what the `error` reply's `code` serializes to.
        assert_eq!(
            serde_json::to_string(&code).expect("serializes"),
            format!("\"{}\"", code.as_str())
        );
    }
}

#[test]
fn nested_object_given_as_an_array_is_an_invalid_field() {
    // serde's derived structs also accept their fields as an array; on the wire an object field
    // must be an object, so `"config": []` is not an empty patch.
    for (input, found) in [
        (r#"{"type":"set_config","id":4,"config":[]}"#, "sequence"),
        (r#"{"type":"set_config","id":4,"config":["x"]}"#, "sequence"),
        (
            r#"{"type":"set_config","id":4,"config":"x"}"#,
            "string \"x\"",
        ),
    ] {
        let error = err(input);
        assert_eq!(
            error,
            DecodeError::InvalidField {
                message_type: Some("set_config"),
                field: "config".into(),
                reason: format!("invalid type: {found}, expected an object"),
                id: Some(4)
            },
            "{input}"
        );
    }
    let error = decode_device(br#"{"type":"config","config":["dev",1000,"celsius"]}"#)
        .expect_err("array is not a config");
    assert_eq!(error.code(), "invalid_message");
}

/// Regression (issue 12, item 8): `{"type":"ping","type":"reboot"}` rebooted the device (serde_json
/// keeps the last key) while events and `message_type` rules saw no type. A repeated key makes a
/// message ambiguous, so it is rejected whole, at any depth, with no `id` read from it.
#[test]
fn duplicate_keys_are_rejected_at_every_depth() {
    let error = err(r#"{"type":"ping","type":"reboot"}"#);
    assert_eq!(
        error,
        DecodeError::DuplicateKey {
            key: "type".into(),
            line: 1,
            column: 21
        }
    );
    assert_eq!(error.code(), "invalid_message");
    assert_eq!(error.error_code(), ErrorCode::InvalidMessage);
    assert_eq!(error.id(), None);
    assert_eq!(
        error.to_string(),
        "duplicate key `type` at line 1 column 21"
    );
    for (input, key) in [
        // Same key spelled with an escape: the same key once decoded.
        (r#"{"type":"reboot","t\u0079pe":"ping"}"#, "type"),
        // The id itself: neither copy is echoed.
        (r#"{"type":"ping","seq":1,"id":1,"id":2}"#, "id"),
        // A body field, and a field nested in a body object.
        (r#"{"type":"ping","seq":1,"seq":2}"#, "seq"),
        (
            r#"{"type":"set_config","id":3,"config":{"name":"a","name":"b"}}"#,
            "name",
        ),
        // Objects no kind defines are still parsed strictly (nested in an array, unknown field).
        (r#"{"type":"reboot","x":[{"k":1,"k":1}]}"#, "k"),
        // An empty key twice.
        (r#"{"":1,"":2}"#, ""),
    ] {
        let error = err(input);
        assert!(
            matches!(&error, DecodeError::DuplicateKey { key: k, .. } if k == key),
            "{input}: {error:?}"
        );
        assert_eq!(error.code(), "invalid_message", "{input}");
        assert_eq!(error.id(), None, "{input}");
    }
    // Device messages too (an app must not act on an ambiguous `status`).
    let status = br#"{"type":"status","uptime_ms":1,"free_heap":2,"wifi":"connected","outputs":{"led":true,"led":false},"clients":1}"#;
    assert!(matches!(
        decode_device(status),
        Err(DecodeError::DuplicateKey { key, .. }) if key == "led"
    ));
    // The same keys in different objects are not duplicates.
    assert!(decode(br#"{"type":"set_config","id":1,"config":{"name":"id"}}"#).is_ok());
    // The size check still comes first; otherwise the first problem in reading order is
    // reported (a syntax error before the repeat, the repeat before a syntax error).
    let mut big = br#"{"type":"ping","type":"reboot"}"#.to_vec();
    big.resize(MAX_MESSAGE_SIZE + 1, b' ');
    assert!(matches!(decode(&big), Err(DecodeError::TooLarge { .. })));
    assert_eq!(
        err(r#"{"type":"ping",,"type":"reboot"}"#).code(),
        "invalid_json"
    );
    assert!(matches!(
        err(r#"{"type":"ping","type":}"#),
        DecodeError::DuplicateKey { .. }
    ));
}

/// What logs and fault rules read as a message's `type` is what the decoder read: nothing for a
/// message it rejects before reaching `type`, the decoded kind otherwise.
#[test]
fn message_type_agrees_with_the_decoder() {
    for (input, expected) in [
        (r#"{"type":"ping","seq":1}"#, Some("ping")),
        (r#"{"type":"ping","type":"reboot"}"#, None),
        (r#"{"type":"reboot","t\u0079pe":"ping"}"#, None),
        (r#"{"type":"reboot","id":1,"id":1}"#, None),
        (
            r#"{"type":"set_config","config":{"name":"a","name":"a"}}"#,
            None,
        ),
        // Unknown or malformed kinds keep their name (the decoder read it: `unknown_type`).
        (r#"{"type":"warp_drive","id":5}"#, Some("warp_drive")),
        (r#"{"type":"ping","seq":"x"}"#, Some("ping")),
        (r#"{"type":5}"#, None),
        (r#"{"seq":1}"#, None),
        (r#"["type","ping"]"#, None),
        ("not json", None),
    ] {
        assert_eq!(
            espsim_protocol::message_type(input.as_bytes()).as_deref(),
            expected,
            "{input}"
        );
        if let Ok(message) = decode(input.as_bytes()) {
            assert_eq!(Some(message.type_name()), expected, "{input}");
        }
    }
    let mut big = br#"{"type":"reboot"}"#.to_vec();
    big.resize(MAX_MESSAGE_SIZE + 1, b' ');
    assert_eq!(espsim_protocol::message_type(&big), None);
}

/// Regression (found by the `protocol_decode` fuzz target): a sensor value beyond `f32`'s range
/// decoded to infinity and re-encoded as `"temperature":null`, which is neither the value sent
/// nor valid input. It is now an invalid field naming the range.
#[test]
fn a_sensor_value_beyond_f32_is_an_invalid_field() {
    for field in ["temperature", "humidity"] {
        for value in ["1e300", "-3.5e38"] {
            let input = format!(
                r#"{{"type":"telemetry","seq":1,"timestamp_ms":1,"{field}":{value},"unit":"celsius"}}"#
            );
            let error = decode_device(input.as_bytes()).expect_err(&input);
            assert!(
                matches!(
                    &error,
                    DecodeError::InvalidField { message_type: Some("telemetry"), field: f, reason, id: None }
                        if f == field && reason.ends_with("is out of range for a 32-bit float (at most 3.4028235e38)")
                ),
                "{input}: {error:?}"
            );
        }
    }
    // The largest f32 and the smallest subnormal still decode, and round-trip exactly.
    for value in ["3.4028235e38", "-3.4028235e38", "1e-45", "22.4"] {
        let input = format!(
            r#"{{"type":"telemetry","seq":1,"timestamp_ms":1,"temperature":{value},"unit":"celsius"}}"#
        );
        let message = decode_device(input.as_bytes()).expect(&input);
        assert_eq!(
            decode_device(&espsim_protocol::encode(&message)),
            Ok(message)
        );
    }
}
