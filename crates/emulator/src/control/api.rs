//! The control API's wire types, shared by the server (the axum routes in this module's
//! siblings) and its clients (`espsim fault`): what each endpoint takes and answers, and the one
//! error shape. A client deserializes these instead of picking fields out of raw JSON, and
//! branches on [`ErrorCode`] instead of matching message text.
//!
//! Fields are only ever added; a client ignores fields it does not know, and an [`ErrorCode`]
//! it does not know reads as [`ErrorCode::Other`].

use espsim_faults::{FaultRule, ListedRule, RuleId};
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
