//! The protocol decoder (both directions) on arbitrary bytes: never panics, every error has a
//! wire code, whatever decodes re-encodes to bytes that decode to the same message, and
//! `message_type` (what events and fault rules see) names exactly the kind that was decoded.
#![no_main]

use espsim_protocol::{
    DecodeError, MAX_MESSAGE_SIZE, decode, decode_device, encode, encode_client, message_type,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: espsim_fuzz::catch_stack_overflows(), |data: &[u8]| {
    let observed = message_type(data);
    let client = decode(data);
    let device = decode_device(data);

    match &client {
        Ok(message) => {
            assert_eq!(observed.as_deref(), Some(message.type_name()));
            let bytes = encode_client(message);
            assert_eq!(decode(&bytes).as_ref(), Ok(message), "re-encoded: {bytes:?}");
        }
        Err(error) => check_error(error, &observed),
    }
    match &device {
        Ok(message) => {
            assert_eq!(observed.as_deref(), Some(message.type_name()));
            let bytes = encode(message);
            assert_eq!(
                decode_device(&bytes).as_ref(),
                Ok(message),
                "re-encoded: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Err(error) => check_error(error, &observed),
    }
    // The steps before `type` do not depend on the direction: both decoders stop alike.
    if let (Err(a), Err(b)) = (&client, &device)
        && (is_early(a) || is_early(b))
    {
        assert_eq!(a, b);
    }
    if data.len() > MAX_MESSAGE_SIZE {
        assert!(matches!(client, Err(DecodeError::TooLarge { .. })));
    }
});

/// Errors raised before the decoder reads `type`.
fn is_early(error: &DecodeError) -> bool {
    matches!(
        error,
        DecodeError::TooLarge { .. }
            | DecodeError::InvalidJson { .. }
            | DecodeError::DuplicateKey { .. }
            | DecodeError::NotAnObject { .. }
    )
}

fn check_error(error: &DecodeError, observed: &Option<String>) {
    assert!(!error.code().is_empty());
    assert!(!error.to_string().is_empty());
    if is_early(error) || matches!(error, DecodeError::MissingType { .. }) {
        assert_eq!(observed, &None, "{error}");
    }
    if let DecodeError::UnknownType { name, .. } = error {
        assert_eq!(observed.as_deref(), Some(name.as_str()));
    }
}
