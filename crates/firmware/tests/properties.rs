//! Properties of the device under arbitrary traffic: no panic, every frame answered, the timers
//! never leave due work behind, and nothing reaches an unauthorized connection but errors.

use espsim_firmware::protocol::{ClientMessage, decode_device, encode_client};
use espsim_firmware::{Action, Device, DeviceSettings, Recipient, SimBoard};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Connect(u64),
    Disconnect(u64),
    Frame(u64, Vec<u8>),
    Tick,
    Press,
    Advance(u64),
}

/// Frames that are mostly valid requests (so deep states are reached) plus raw garbage.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        Just(r#"{"type":"hello","id":1,"client":"p","version":"1","token":"t0k3n"}"#),
        Just(r#"{"type":"hello","client":"p","version":"1"}"#),
        Just(r#"{"type":"ping","id":2,"seq":3}"#),
        Just(r#"{"type":"get_status","id":4}"#),
        Just(r#"{"type":"get_config"}"#),
        Just(r#"{"type":"set_config","id":5,"config":{"telemetry_interval_ms":250}}"#),
        Just(r#"{"type":"set_config","config":{"name":""}}"#),
        Just(r#"{"type":"set_output","name":"relay","on":true}"#),
        Just(r#"{"type":"subscribe","interval_ms":150}"#),
        Just(r#"{"type":"subscribe"}"#),
        Just(r#"{"type":"unsubscribe"}"#),
        Just(r#"{"type":"provision","ssid":"espsim-home","password":"espsim-password"}"#),
        Just(r#"{"type":"provision","ssid":"other","password":""}"#),
        Just(r#"{"type":"reboot","id":6}"#),
        Just(r#"{"type":"nope","id":7}"#),
    ]
    .prop_map(|s| s.as_bytes().to_vec());
    prop_oneof![
        4 => valid,
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let conn = 1u64..4;
    prop_oneof![
        1 => conn.clone().prop_map(Step::Connect),
        1 => conn.clone().prop_map(Step::Disconnect),
        6 => (conn, frame()).prop_map(|(c, f)| Step::Frame(c, f)),
        2 => Just(Step::Tick),
        1 => Just(Step::Press),
        3 => (0u64..2_000).prop_map(Step::Advance),
    ]
}

fn run(token: Option<&str>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let settings = DeviceSettings {
        auth_token: token.map(str::to_string),
        ..DeviceSettings::default()
    };
    let mut device = Device::new(SimBoard::new(3), settings);
    let mut now = 0u64;
    let mut authorized = std::collections::BTreeSet::new();
    for step in steps {
        match step {
            Step::Connect(conn) => {
                prop_assert!(device.on_connect(conn, now).is_empty());
            }
            Step::Disconnect(conn) => {
                authorized.remove(&conn);
                prop_assert!(device.on_disconnect(conn, now).is_empty());
            }
            Step::Frame(conn, bytes) => {
                let hello_with_token = bytes.starts_with(br#"{"type":"hello","id":1"#);
                let actions = device.on_frame(conn, &bytes, now);
                // Every frame gets at least one reply to its sender.
                let answered = actions.iter().any(
                    |a| matches!(a, Action::Send { to: Recipient::Conn(c), .. } if *c == conn),
                );
                prop_assert!(
                    answered,
                    "no reply to {:?}",
                    String::from_utf8_lossy(&bytes)
                );
                if token.is_none() || hello_with_token {
                    authorized.insert(conn);
                }
                check_sends(&actions, token, &authorized, conn)?;
                if actions.iter().any(|a| matches!(a, Action::Close { .. })) {
                    authorized.remove(&conn);
                }
            }
            Step::Tick => {
                let actions = device.on_tick(now);
                if actions.iter().any(|a| matches!(a, Action::ApDown { .. })) {
                    authorized.clear();
                }
                check_sends(&actions, token, &authorized, u64::MAX)?;
                // Nothing due is left behind.
                if let Some(deadline) = device.next_deadline() {
                    prop_assert!(
                        deadline > now,
                        "deadline {deadline} not after tick at {now}"
                    );
                }
            }
            Step::Press => device.board_mut().press_button(),
            Step::Advance(ms) => now += ms,
        }
    }
    Ok(())
}

/// Every message sent is decodable by an app; with a token, only errors reach unauthorized
/// connections, and nothing is broadcast to `All`.
fn check_sends(
    actions: &[Action],
    token: Option<&str>,
    authorized: &std::collections::BTreeSet<u64>,
    sender: u64,
) -> Result<(), TestCaseError> {
    for action in actions {
        if let Action::Send { to, message } = action {
            let bytes = espsim_firmware::protocol::encode(message);
            prop_assert_eq!(
                &decode_device(&bytes).expect("device output decodes"),
                message
            );
            if token.is_some() {
                match to {
                    Recipient::All => prop_assert!(false, "broadcast to All with auth on"),
                    Recipient::Conn(c) if !authorized.contains(c) => {
                        prop_assert_eq!(*c, sender);
                        prop_assert_eq!(message.type_name(), "error");
                    }
                    Recipient::Conn(_) => {}
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn open_device_survives_arbitrary_traffic(steps in proptest::collection::vec(step(), 0..80)) {
        run(None, steps)?;
    }

    #[test]
    fn token_device_survives_arbitrary_traffic(steps in proptest::collection::vec(step(), 0..80)) {
        run(Some("t0k3n"), steps)?;
    }
}

#[test]
fn decoded_messages_and_frames_are_handled_alike() {
    let mut a = Device::new(SimBoard::new(1), DeviceSettings::default());
    let mut b = Device::new(SimBoard::new(1), DeviceSettings::default());
    let message: ClientMessage = espsim_firmware::protocol::client::Subscribe {
        id: Some(1),
        interval_ms: Some(200),
    }
    .into();
    let via_frame = a.on_frame(9, &encode_client(&message), 0);
    let via_message = b.on_message(9, message, 0);
    assert_eq!(via_frame, via_message);
}
