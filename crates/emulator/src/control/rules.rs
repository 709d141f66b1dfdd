//! Request bodies of `POST /faults`: one rule or a list, as JSON or YAML.
//!
//! A body that is not a rule (syntax or schema) is a 400 with the line and column; a rule that
//! parses but does not make sense (e.g. `messages` on a DNS fault) or exceeds a bound is a 422
//! with the reason; rules that would make the plan hold more than `MAX_RULES` are a 409.

use std::fmt;
use std::path::Path;

use axum::http::{HeaderMap, StatusCode, header};
use espsim_faults::FaultRule;
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

use super::api::{BODY_NAME, ErrorCode};
use super::error::ApiError;
use crate::yaml::YamlError;

/// The body's format, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Yaml,
}

impl Format {
    /// `application/json` (and `+json`), or `application/yaml` / `text/yaml` (and `x-yaml`);
    /// anything else is 415 with what to send instead.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Format, ApiError> {
        let hint = "send Content-Type: application/json or application/yaml";
        let Some(value) = headers.get(header::CONTENT_TYPE) else {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("missing Content-Type: {hint}"),
            ));
        };
        let media = value
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" => Ok(Format::Json),
            m if m.starts_with("application/") && m.ends_with("+json") => Ok(Format::Json),
            "application/yaml" | "text/yaml" | "application/x-yaml" | "text/x-yaml" => {
                Ok(Format::Yaml)
            }
            other => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Type `{other}`: {hint}"),
            )),
        }
    }
}

/// One rule or a list of rules, remembering which it was so the answer can mirror it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RulesInput {
    /// The rules, in order.
    pub(crate) rules: Vec<FaultRule>,
    /// True when the body was a list.
    pub(crate) list: bool,
}

// By hand rather than `#[serde(untagged)]`: an untagged enum buffers the input and loses the
// inner error ("unknown field `whne`" at 2:3) behind "did not match any variant".
impl<'de> Deserialize<'de> for RulesInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RulesInput;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a fault rule (a map with `fault` and optional `when`, `name`) or a list of rules")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RulesInput, A::Error> {
                FaultRule::deserialize(MapAccessDeserializer::new(map)).map(|rule| RulesInput {
                    rules: vec![rule],
                    list: false,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RulesInput, A::Error> {
                Vec::<FaultRule>::deserialize(SeqAccessDeserializer::new(seq))
                    .map(|rules| RulesInput { rules, list: true })
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses a body as `format`; errors are 400 with the position in the body.
pub(crate) fn parse(body: &[u8], format: Format) -> Result<RulesInput, ApiError> {
    match format {
        Format::Json => serde_json::from_slice(body).map_err(|e| {
            let (line, column) = (e.line() as u64, e.column() as u64);
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid fault rule JSON at {line}:{column}: {e}"),
            )
            .code(ErrorCode::InvalidBody)
            .at(Some(line), Some(column), e.to_string())
        }),
        Format::Yaml => {
            let text = std::str::from_utf8(body).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not UTF-8: {e}"),
                )
            })?;
            crate::yaml::parse(text, Path::new(BODY_NAME)).map_err(|e| match e {
                YamlError::Invalid {
                    line,
                    column,
                    message,
                    ..
                } => {
                    let at = match (line, column) {
                        (Some(l), Some(c)) => format!(" at {l}:{c}"),
                        _ => String::new(),
                    };
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("invalid fault rule YAML{at}: {message}"),
                    )
                    .code(ErrorCode::InvalidBody)
                    .at(line, column, message)
                }
                other => ApiError::new(StatusCode::BAD_REQUEST, other.to_string())
                    .code(ErrorCode::InvalidBody),
            })
        }
    }
}

/// Checks every rule before any is added, so a list is all-or-nothing; 422 names the rule.
pub(crate) fn validate(rules: &[FaultRule], list: bool) -> Result<(), ApiError> {
    for (i, rule) in rules.iter().enumerate() {
        if let Err(e) = rule.validate() {
            let which = if list {
                format!("rule {i}: ")
            } else {
                String::new()
            };
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{which}{e}"),
            ));
        }
    }
    Ok(())
}

/// The API's answer when the plan refuses rules: 409 when it is full (removing rules makes room),
/// 422 when a rule is invalid.
pub(crate) fn add_error(e: espsim_faults::AddError) -> ApiError {
    let status = match e {
        espsim_faults::AddError::TooMany { .. } => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_or_a_list_in_json_and_yaml() {
        let one = parse(br#"{"fault":"refuse"}"#, Format::Json).expect("json rule");
        assert_eq!((one.rules.len(), one.list), (1, false));
        let many = parse(
            b"- fault: refuse\n- { when: { connections: 1-2 }, fault: refuse }\n",
            Format::Yaml,
        )
        .expect("yaml list");
        assert_eq!((many.rules.len(), many.list), (2, true));
    }

    #[test]
    fn a_yaml_error_points_at_line_and_column() {
        let err = parse(b"fault: refuse\nwhne: {}\n", Format::Yaml).expect_err("unknown field");
        let body = &err.body;
        assert_eq!(
            (body.line, body.column),
            (Some(2), Some(1)),
            "{}",
            body.error
        );
        assert!(body.error.contains("whne"), "{}", body.error);
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(body.code, ErrorCode::InvalidBody);
        // The reason is the message after its position prefix.
        let reason = body.reason.as_deref().expect("a reason");
        assert!(body.error.ends_with(reason), "{body:?}");
        assert!(reason.starts_with("unknown field `whne`"), "{reason}");
    }

    #[test]
    fn content_types_pick_the_format() {
        let mut h = HeaderMap::new();
        assert_eq!(
            Format::of(&h).map_err(|e| e.status),
            Err(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        h.insert(
            header::CONTENT_TYPE,
            "text/yaml; charset=utf-8".parse().expect("value"),
        );
        assert_eq!(Format::of(&h).ok(), Some(Format::Yaml));
        h.insert(
            header::CONTENT_TYPE,
            "application/json".parse().expect("value"),
        );
        assert_eq!(Format::of(&h).ok(), Some(Format::Json));
    }
}
