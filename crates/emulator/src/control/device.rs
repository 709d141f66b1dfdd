//! The device's own messages and state through the API: `POST /send` pushes a message as if the
//! device logic had sent it, `GET`/`PATCH /device/state` read and set the logic's state
//! variables.
//!
//! Bodies are always JSON, whatever the `Content-Type` says (curl `-d` sends a form type).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use espsim_firmware::{Payload, To};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ControlState;
use super::api::{
    DEFAULT_SEND_LABEL, DeviceVars, ErrorCode, MAX_STATE_VARS, Queued, SendMessage, SendTo,
    SetDeviceState,
};
use super::error::ApiError;
use crate::events::EventKind;

type St = State<Arc<ControlState>>;

/// `POST /send`.
pub(super) async fn send(State(st): St, body: Bytes) -> Result<Json<Queued>, ApiError> {
    let msg: SendMessage = json_body(
        &body,
        "expected {\"to\": \"all\" | SESSION, and one of \"text\", \"json\", \"hex\", \"base64\"}",
    )?;
    let payload = payload_of(&msg)?;
    let max = st.target.profile.max_ws_message;
    if payload.len() > max {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the message is {} bytes, over the largest WebSocket message of profile {} ({max} bytes)",
                payload.len(),
                st.target.profile.name
            ),
        )
        .code(ErrorCode::MessageTooLarge));
    }
    let device = &st.target.device;
    let to = match msg.to {
        SendTo::All => To::All,
        SendTo::Session(conn) => To::Session(conn),
    };
    if let SendTo::Session(conn) = msg.to
        && !device.has_session(conn)
    {
        return Err(no_session(conn));
    }
    let label = msg.label.unwrap_or_else(|| DEFAULT_SEND_LABEL.to_owned());
    let kind = match payload {
        Payload::Text(_) => "text",
        Payload::Binary(_) => "binary",
    };
    let whom = match msg.to {
        SendTo::All => "all sessions".to_owned(),
        SendTo::Session(conn) => format!("session {conn}"),
    };
    // Before the push, so the action precedes the `ws_message` events it causes.
    st.target.events.emit(EventKind::DeviceAction {
        action: "send".to_owned(),
        detail: format!(
            "{kind} message ({} bytes, label `{label}`) to {whom} through the control API",
            payload.len()
        ),
    });
    let queued = device.push(to, payload, label);
    if let (SendTo::Session(conn), 0) = (msg.to, queued) {
        // It closed between the check and the push.
        return Err(no_session(conn));
    }
    Ok(Json(Queued { queued }))
}

fn no_session(conn: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no open WebSocket session {conn} (session ids are the `conn` of ws_opened events; GET /state counts the open ones)"
        ),
    )
    .code(ErrorCode::NoSession)
}

/// The message `msg` asks for: exactly one of its payload fields, decoded.
fn payload_of(msg: &SendMessage) -> Result<Payload, ApiError> {
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, e).code(ErrorCode::BadPayload);
    let given: Vec<&str> = [
        ("text", msg.text.is_some()),
        ("json", msg.json.is_some()),
        ("hex", msg.hex.is_some()),
        ("base64", msg.base64.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if given.len() != 1 {
        let got = if given.is_empty() {
            "none".to_owned()
        } else {
            given.join(" and ")
        };
        return Err(bad(format!(
            "give exactly one of `text`, `json`, `hex`, `base64`; got {got}"
        )));
    }
    if let Some(text) = &msg.text {
        return Ok(Payload::Text(text.clone()));
    }
    if let Some(json) = &msg.json {
        return Ok(Payload::Text(json.to_string()));
    }
    if let Some(hex) = &msg.hex {
        return decode_hex(hex)
            .map(Payload::Binary)
            .map_err(|e| bad(format!("`hex` is not hex bytes: {e}")));
    }
    let b64 = msg.base64.as_deref().unwrap_or_default();
    decode_base64(b64)
        .map(Payload::Binary)
        .map_err(|e| bad(format!("`base64` is not base64: {e}")))
}

/// Hex digits, two per byte; ASCII whitespace anywhere is ignored.
fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut digits = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let d = c
            .to_digit(16)
            .ok_or_else(|| format!("`{c}` at offset {i} is not a hex digit"))?;
        digits.push(u8::try_from(d).unwrap_or_default());
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "{} hex digits: a byte takes two, so the count must be even",
            digits.len()
        ));
    }
    Ok(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// Base64, standard (`+/`) or URL-safe (`-_`) alphabet, `=` padding optional; ASCII
/// whitespace is ignored.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let mut sextets = Vec::with_capacity(text.len());
    let mut padding = 0;
    for (i, c) in text.char_indices() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == '=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return Err(format!("`{c}` at offset {i} follows the `=` padding"));
        }
        let v = match c {
            'A'..='Z' => c as u8 - b'A',
            'a'..='z' => c as u8 - b'a' + 26,
            '0'..='9' => c as u8 - b'0' + 52,
            '+' | '-' => 62,
            '/' | '_' => 63,
            _ => return Err(format!("`{c}` at offset {i} is not a base64 character")),
        };
        sextets.push(v);
    }
    let rest = sextets.len() % 4;
    if rest == 1 || padding > 2 || (padding > 0 && (sextets.len() + padding) % 4 != 0) {
        return Err("the length does not match whole bytes".to_owned());
    }
    let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
    for chunk in sextets.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (k, v)| n | (u32::from(*v) << (18 - 6 * k)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}

/// `GET /device/state`.
pub(super) async fn get_state(State(st): St) -> Result<Json<DeviceVars>, ApiError> {
    current(&st).map(Json)
}

/// `PATCH /device/state`: each variable in the body's order; the first refusal ends it.
pub(super) async fn patch_state(State(st): St, body: Bytes) -> Result<Json<DeviceVars>, ApiError> {
    let set: SetDeviceState = json_body(&body, "expected {\"NAME\": VALUE, ...}")?;
    let device = &st.target.device;
    if device.state().is_none() {
        return Err(no_state());
    }
    if set.vars.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("give 1 to {MAX_STATE_VARS} state variables to set; the body is empty ({{}})"),
        )
        .code(ErrorCode::InvalidBody));
    }
    let mut done: Vec<&str> = Vec::new();
    for (name, value) in &set.vars {
        let text = value.to_string();
        st.target.events.emit(EventKind::DeviceAction {
            action: "set_state".to_owned(),
            detail: format!("`{name}` = {text} through the control API"),
        });
        if let Err(reason) = device.set_state(name, &text) {
            st.target.events.emit(EventKind::DeviceAction {
                action: "set_state_refused".to_owned(),
                detail: format!("`{name}`: {reason}"),
            });
            let earlier = if done.is_empty() {
                "nothing was set".to_owned()
            } else {
                format!("already set: {}", done.join(", "))
            };
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the device refused `{name}` = {text}: {reason} ({earlier})"),
            )
            .code(ErrorCode::StateRefused));
        }
        done.push(name);
    }
    current(&st).map(Json)
}

/// The logic's state now, values parsed.
fn current(st: &ControlState) -> Result<DeviceVars, ApiError> {
    let vars = st.target.device.state().ok_or_else(no_state)?;
    parse_vars(vars).map(|vars| DeviceVars { vars })
}

fn parse_vars(vars: BTreeMap<String, String>) -> Result<BTreeMap<String, Value>, ApiError> {
    vars.into_iter()
        .map(|(name, text)| match serde_json::from_str(&text) {
            Ok(value) => Ok((name, value)),
            Err(e) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the device logic's state variable `{name}` is not JSON text ({e}): {text:?}"
                ),
            )),
        })
        .collect()
}

fn no_state() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "the device logic exposes no state variables (the built-in firmware has none; a DeviceLogic exposes them through `state`)",
    )
    .code(ErrorCode::NoDeviceState)
}

/// A JSON body as `T`; 400 `invalid_body` with the position and what was expected.
fn json_body<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let (line, column) = (e.line() as u64, e.column() as u64);
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid body at {line}:{column}: {e} ({expected})"),
        )
        .code(ErrorCode::InvalidBody)
        .at(Some(line), Some(column), e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_takes_byte_pairs_with_any_spacing() {
        assert_eq!(decode_hex("a5 01 FF"), Ok(vec![0xa5, 0x01, 0xff]));
        assert_eq!(decode_hex("a501\nff"), Ok(vec![0xa5, 0x01, 0xff]));
        assert_eq!(decode_hex(""), Ok(vec![]));
        assert!(decode_hex("a5 0").expect_err("odd").contains("even"));
        assert!(
            decode_hex("zz")
                .expect_err("not hex")
                .contains("`z` at offset 0")
        );
    }

    #[test]
    fn base64_in_either_alphabet_with_or_without_padding() {
        assert_eq!(decode_base64("pQH/"), Ok(vec![0xa5, 0x01, 0xff]));
        assert_eq!(decode_base64("pQH_"), Ok(vec![0xa5, 0x01, 0xff]));
        assert_eq!(decode_base64("aGk="), Ok(b"hi".to_vec()));
        assert_eq!(decode_base64("aGk"), Ok(b"hi".to_vec()));
        assert_eq!(decode_base64("aA=="), Ok(b"h".to_vec()));
        assert_eq!(
            decode_base64("aGVsbG8gd29ybGQ="),
            Ok(b"hello world".to_vec())
        );
        assert_eq!(decode_base64(""), Ok(vec![]));
        assert!(decode_base64("a").is_err());
        assert!(decode_base64("aGk=x").is_err());
        assert!(decode_base64("aGk*").is_err());
        assert!(decode_base64("aA=").is_err());
    }
}
