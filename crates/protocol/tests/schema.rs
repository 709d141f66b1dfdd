//! JSON Schema export (`--features schema`): what app teams feed to their code generators.
#![cfg(feature = "schema")]

use espsim_protocol::{ClientMessage, DeviceMessage, client_schema, device_schema};
use serde_json::Value;

/// The per-kind schemas of a message enum (`oneOf` of tagged objects).
fn variants(schema: &Value) -> Vec<&Value> {
    schema["oneOf"]
        .as_array()
        .expect("a message enum is a oneOf")
        .iter()
        .collect()
}

fn check(schema: &Value, type_names: &[&str]) {
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let variants = variants(schema);
    assert_eq!(variants.len(), type_names.len());
    for (variant, name) in variants.iter().zip(type_names) {
        // Each kind pins its tag and, since unknown fields are rejected, says so — while still
        // allowing the `type` tag itself.
        assert_eq!(variant["properties"]["type"]["const"], *name, "{variant}");
        assert_eq!(variant["additionalProperties"], false, "{name}");
        let required: Vec<&str> = variant["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(required.contains(&"type"), "{name}");
        assert!(!required.contains(&"id"), "id is optional in {name}");
    }
}

#[test]
fn client_schema_describes_every_client_kind() {
    let schema = serde_json::to_value(client_schema()).expect("schema is json");
    check(&schema, ClientMessage::TYPE_NAMES);
    let provision = variants(&schema)
        .into_iter()
        .find(|v| v["properties"]["type"]["const"] == "provision")
        .expect("provision");
    let required = provision["required"].as_array().expect("required");
    assert!(required.contains(&Value::from("ssid")));
    assert!(required.contains(&Value::from("password")));
}

#[test]
fn device_schema_describes_every_device_kind() {
    let schema = serde_json::to_value(device_schema()).expect("schema is json");
    check(&schema, DeviceMessage::TYPE_NAMES);
    // Shared types are referenced definitions, with their wire values.
    let codes = &schema["$defs"]["ErrorCode"];
    let text = codes.to_string();
    for code in ["too_large", "invalid_json", "unknown_type", "unauthorized"] {
        assert!(text.contains(code), "{code} missing from {text}");
    }
}
