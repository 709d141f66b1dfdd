//! The control API's wire types, shared by the server (the axum routes in this module's
//! siblings) and its clients (`espsim fault`): what each endpoint takes and answers, and the one
//! error shape. A client deserializes these instead of picking fields out of raw JSON, and
//! branches on [`ErrorCode`] instead of matching message text.
//!
//! Fields are only ever added; a client ignores fields it does not know, and an [`ErrorCode`]
//! it does not know reads as [`ErrorCode::Other`].

use std::collections::BTreeMap;
use std::fmt;

use espsim_faults::{FaultRule, ListedRule, RuleId};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::internet::InternetMode;

/// The name request bodies have in error snippets (`--> body:2:1`), so a client that sent a
/// file's text can put the file's name in its place.
pub const BODY_NAME: &str = "body";

/// Every error answer: `{"error": "...", "code": "...", "line": L, "column": C, "reason": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a human (with the position in the body, when there is one).
    pub error: String,
    /// What went wrong, for a program.
    #[serde(default)]
    pub code: ErrorCode,
    /// 1-based line in the request body, when the body could not be parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// 1-based column in the request body, when the body could not be parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    /// With `line`/`column`: the problem without the position prefix of `error` (the parser's
    /// snippet names the body [`BODY_NAME`]), so a client can say `FILE:L:C: reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The machine-readable kind of an [`ErrorBody`]; one per way a request can be refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: a malformed request (query parameter, rule id, body that is not UTF-8).
    BadRequest,
    /// 400: the body is not a rule (syntax or schema); `line`/`column` say where.
    InvalidBody,
    /// 401: no token, a wrong token, or an expired dashboard session.
    Unauthorized,
    /// 403: a `Host` or `Origin` the API does not serve, or a cross-site cookie request.
    Forbidden,
    /// 404: no such endpoint, or no fault rule with that id.
    NotFound,
    /// 405: the endpoint exists, not with this method.
    MethodNotAllowed,
    /// 409: the fault plan is full; removing rules makes room.
    PlanFull,
    /// 413: the body is larger than [`super::BODY_LIMIT`].
    TooLarge,
    /// 415: a `Content-Type` the endpoint does not read.
    UnsupportedMediaType,
    /// 422: the body parses, but a value makes no sense (e.g. `messages` on a DNS fault).
    InvalidValue,
    /// 404: `POST /send` named a session that is not open (see the `ws_opened` events).
    NoSession,
    /// 400: `POST /send` had none or more than one of `text`, `json`, `hex`, `base64`, or hex
    /// or base64 that does not decode.
    BadPayload,
    /// 400: `POST /send`'s message is larger than the profile's largest WebSocket message.
    MessageTooLarge,
    /// 404: the device logic exposes no state variables (`/device/state`).
    NoDeviceState,
    /// 400: the device logic refused a `PATCH /device/state` value; the message is its reason.
    StateRefused,
    /// 500: the emulator failed.
    Internal,
    /// Anything else (also: a code this client does not know yet).
    #[default]
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The code an error with `status` has when nothing more specific is known.
    pub fn for_status(status: u16) -> ErrorCode {
        match status {
            400 => ErrorCode::BadRequest,
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            409 => ErrorCode::PlanFull,
            413 => ErrorCode::TooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            422 => ErrorCode::InvalidValue,
            500 => ErrorCode::Internal,
            _ => ErrorCode::Other,
        }
    }
}

/// A rule as `GET /faults` lists it and `POST /faults` answers it: its id and the rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleEntry {
    /// The id `DELETE /faults/{id}` takes.
    pub id: RuleId,
    /// The rule (`name`, `when`, `fault` at the top level, next to `id`).
    #[serde(flatten)]
    pub rule: FaultRule,
}

impl From<ListedRule> for RuleEntry {
    fn from(listed: ListedRule) -> Self {
        RuleEntry {
            id: listed.id,
            rule: listed.rule,
        }
    }
}

/// The answer of `POST /faults`: mirrors the request's shape (one rule or a list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Added {
    /// The body was one rule.
    One(Box<RuleEntry>),
    /// The body was a list.
    Many(Vec<RuleEntry>),
}

impl Added {
    /// The rules added, in order.
    pub fn into_vec(self) -> Vec<RuleEntry> {
        match self {
            Added::One(one) => vec![*one],
            Added::Many(many) => many,
        }
    }
}

/// The answer of `POST /reset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetDone {
    /// How many rules were removed.
    pub removed: usize,
    /// The internet mode restored (the one the run started with).
    pub internet: InternetMode,
}

/// The answer of `GET /state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateView {
    /// The run's seed.
    pub seed: u64,
    /// Milliseconds since the emulator started.
    pub uptime_ms: u64,
    /// The ESP-IDF profile's name.
    pub profile: String,
    /// The internet mode now.
    pub internet: InternetMode,
    /// The internet mode the run started with (what `POST /reset` restores).
    pub start_internet: InternetMode,
    /// Open WebSocket sessions.
    pub sessions: usize,
    /// The active fault rules.
    pub rules: Vec<RuleEntry>,
}

/// The body of `PUT /internet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetInternet {
    /// The mode to switch to.
    pub mode: InternetMode,
}

/// The answer of `PUT /internet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetChanged {
    /// The mode before.
    pub from: InternetMode,
    /// The mode now.
    pub mode: InternetMode,
}

/// The answer of `POST /button`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pressed {
    /// Always true: the button was pressed.
    pub pressed: bool,
    /// Open WebSocket sessions (each gets the `event` message).
    pub sessions: usize,
}

/// The answer of `GET /clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockView {
    /// When the run clock started, in ms since the emulator started; `null` while deferred.
    pub started_at_ms: Option<u64>,
}

/// The answer of `POST /clock/start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockStart {
    /// True when this request started the clock; false when it was already running.
    pub started: bool,
    /// When the clock started, in ms since the emulator started (this request's moment, or
    /// the earlier one).
    pub at_ms: u64,
}

/// Who `POST /send` is for: `"all"` or a session id (a `ws_opened` event's `conn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendTo {
    /// Every open session.
    All,
    /// One session.
    Session(u64),
}

impl fmt::Display for SendTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTo::All => f.write_str("all"),
            SendTo::Session(id) => write!(f, "{id}"),
        }
    }
}

impl std::str::FromStr for SendTo {
    type Err = String;

    /// `all` or a session id.
    fn from_str(s: &str) -> Result<SendTo, String> {
        match s {
            "all" => Ok(SendTo::All),
            id => id.parse().map(SendTo::Session).map_err(|_| {
                format!(
                    "`{id}` is neither `all` nor a session id (a number: a ws_opened event's conn)"
                )
            }),
        }
    }
}

impl Serialize for SendTo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SendTo::All => s.serialize_str("all"),
            SendTo::Session(id) => s.serialize_u64(*id),
        }
    }
}

impl<'de> Deserialize<'de> for SendTo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SendTo;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a session id (a ws_opened event's conn)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SendTo, E> {
                match v {
                    "all" => Ok(SendTo::All),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SendTo, E> {
                Ok(SendTo::Session(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SendTo, E> {
                u64::try_from(v)
                    .map(SendTo::Session)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// The label of a message sent through `POST /send` when the body gives none.
pub const DEFAULT_SEND_LABEL: &str = "control";

/// The body of `POST /send`: a message the device sends as if its logic had, with exactly one
/// of `text`, `json`, `hex`, `base64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// Who gets it.
    pub to: SendTo,
    /// A text message, as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A text message: this value as compact JSON text (`null` included).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub json: Option<Value>,
    /// A binary message, as hex digits; whitespace between bytes is ignored (`"a5 01 ff"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// A binary message, as base64 (standard or URL-safe alphabet, padding optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// The message's label in the `ws_message` event and for `message_type` fault rules;
    /// default [`DEFAULT_SEND_LABEL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A field that is present is `Some`, even when it is `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The answer of `POST /send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    /// How many sessions the message was queued for (0 for `"all"` with no session open).
    pub queued: usize,
}

/// The answer of `GET /device/state` and `PATCH /device/state`: the device logic's state
/// variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceVars {
    /// Each variable's value.
    pub vars: BTreeMap<String, Value>,
}

/// Most variables one `PATCH /device/state` sets.
pub const MAX_STATE_VARS: usize = 64;

/// The body of `PATCH /device/state`: `{name: value, ...}`, set in the body's order. A name that
/// appears twice is refused (which value was meant?).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SetDeviceState {
    /// The variables to set, in order.
    pub vars: Vec<(String, Value)>,
}

impl Serialize for SetDeviceState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.vars.len()))?;
        for (name, value) in &self.vars {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SetDeviceState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SetDeviceState;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of state variable names to JSON values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SetDeviceState, A::Error> {
                let mut vars: Vec<(String, Value)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    if vars.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!(
                            "state variable `{name}` appears twice"
                        )));
                    }
                    if vars.len() == MAX_STATE_VARS {
                        return Err(serde::de::Error::custom(format!(
                            "more than {MAX_STATE_VARS} state variables in one request"
                        )));
                    }
                    vars.push((name, value));
                }
                Ok(SetDeviceState { vars })
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_bodies_read_and_write_back() {
        let body: SendMessage = serde_json::from_str(r#"{"to":"all","json":null}"#).expect("reads");
        assert_eq!(body.to, SendTo::All);
        assert_eq!(
            body.json,
            Some(Value::Null),
            "a present null is a JSON message"
        );
        assert_eq!(
            serde_json::to_string(&body).expect("writes"),
            r#"{"to":"all","json":null}"#
        );
        let one: SendMessage = serde_json::from_str(r#"{"to":3,"hex":"a5"}"#).expect("reads");
        assert_eq!((one.to, one.json), (SendTo::Session(3), None));
        assert!(serde_json::from_str::<SendMessage>(r#"{"to":"some"}"#).is_err());
        assert!(serde_json::from_str::<SendMessage>(r#"{"to":-1}"#).is_err());
        assert!(serde_json::from_str::<SendMessage>(r#"{"to":1,"txt":"x"}"#).is_err());
        assert_eq!("all".parse(), Ok(SendTo::All));
        assert_eq!("7".parse(), Ok(SendTo::Session(7)));
        assert!("x".parse::<SendTo>().is_err());
    }

    #[test]
    fn state_patches_keep_their_order_and_refuse_a_name_twice() {
        let set: SetDeviceState =
            serde_json::from_str(r#"{"z":1,"a":"x","m":[true]}"#).expect("reads");
        let names: Vec<&str> = set.vars.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["z", "a", "m"]);
        assert_eq!(
            serde_json::to_string(&set).expect("writes"),
            r#"{"z":1,"a":"x","m":[true]}"#
        );
        let twice =
            serde_json::from_str::<SetDeviceState>(r#"{"a":1,"a":2}"#).expect_err("ambiguous");
        assert!(twice.to_string().contains("`a` appears twice"), "{twice}");
        let many = format!(
            "{{{}}}",
            (0..=MAX_STATE_VARS)
                .map(|i| format!("\"v{i}\":{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(serde_json::from_str::<SetDeviceState>(&many).is_err());
    }

    #[test]
    fn an_unknown_error_code_reads_as_other() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"x","code":"from_the_future"}"#).expect("reads");
        assert_eq!(body.code, ErrorCode::Other);
        let old: ErrorBody = serde_json::from_str(r#"{"error":"x"}"#).expect("reads");
        assert_eq!(old.code, ErrorCode::Other);
    }

    #[test]
    fn a_listed_rule_reads_back_as_the_rule_it_was() {
        let rule: FaultRule = serde_json::from_str(
            r#"{"name":"flaky","when":{"connections":"1-2"},"fault":"refuse"}"#,
        )
        .expect("rule");
        let listed = ListedRule {
            id: RuleId(3),
            rule: rule.clone(),
        };
        let text = serde_json::to_string(&listed).expect("serializes");
        let back: RuleEntry = serde_json::from_str(&text).expect("reads back");
        assert_eq!(
            back,
            RuleEntry {
                id: RuleId(3),
                rule
            }
        );
        assert_eq!(serde_json::to_string(&back).expect("serializes"), text);
    }
}
