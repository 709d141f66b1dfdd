//! Which WebSocket messages a fault rule or an expectation is about: the label the device gives
//! a message (a pattern), or a test of the payload itself, written like a device file's `match:`
//! (globs here know only `*` and `?`, every JSON condition names its test, patterns are at most
//! 256 bytes; see `docs/reference/faults.md`).
//!
//! ```yaml
//! message_type: telemetry                              # the label: `*` and `?`, any case
//! message_type: { json: { pointer: /cmd, equals: get } }
//! message_type: { json: [ { pointer: /cmd, equals: set }, { pointer: /led, exists: true } ] }
//! message_type: { text: { regex: "^LED=[01]$" } }      # or exact / glob
//! message_type: { binary: { prefix: "a5 01", min_len: 3 } }
//! ```
//!
//! A label is what the device calls a message: the built-in protocol's `type`, the name of the
//! device file's rule that matched it (`unmatched` when none did), a device process's `label`.
//! Payload tests need no label, so they work for any protocol, a device process's included.

use std::fmt;
use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::limits::MAX_TEXT_BYTES;
use crate::validate::text as text_bound;
use crate::when::{Pattern, glob};

/// Most conditions in one `json:` list.
pub const MAX_JSON_CONDITIONS: usize = 16;

/// Longest `binary.prefix`, in bytes.
pub const MAX_PREFIX_BYTES: usize = 256;

/// Largest compiled regex (the `regex` crate's size limit), in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A WebSocket data message as matchers see it: the device's label and the payload, its JSON
/// parsed at most once however many rules ask.
#[derive(Debug)]
pub struct SeenMessage<'a> {
    label: Option<&'a str>,
    payload: Payload<'a>,
    json: OnceLock<Option<Value>>,
}

/// A data message's payload.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A text frame.
    Text(&'a str),
    /// A binary frame.
    Binary(&'a [u8]),
}

impl<'a> SeenMessage<'a> {
    /// A message with the device's `label` (if it gave one) and its payload.
    pub fn new(label: Option<&'a str>, payload: Payload<'a>) -> Self {
        SeenMessage {
            label,
            payload,
            json: OnceLock::new(),
        }
    }

    /// The device's label for the message.
    pub fn label(&self) -> Option<&'a str> {
        self.label
    }

    /// The payload as JSON: text frames that parse, else `None`.
    fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| match self.payload {
                Payload::Text(text) => serde_json::from_str(text).ok(),
                Payload::Binary(_) => None,
            })
            .as_ref()
    }
}

/// A message matcher: a label pattern (written as a string) or a payload test (a map).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageMatch {
    /// The device's label for the message, e.g. `ping`, `tele*` (case-insensitive glob).
    Label(Pattern),
    /// A test of the payload.
    Payload(PayloadMatch),
}

impl MessageMatch {
    /// A label matcher.
    pub fn label(pattern: impl Into<String>) -> Self {
        MessageMatch::Label(Pattern::new(pattern))
    }

    /// True when the message matches.
    pub fn matches(&self, message: &SeenMessage<'_>) -> bool {
        match self {
            MessageMatch::Label(p) => message.label.is_some_and(|l| p.matches(l)),
            MessageMatch::Payload(p) => p.matches(message),
        }
    }

    /// The label pattern, for a label matcher.
    pub fn as_label(&self) -> Option<&Pattern> {
        match self {
            MessageMatch::Label(p) => Some(p),
            MessageMatch::Payload(_) => None,
        }
    }
}

impl fmt::Display for MessageMatch {
    /// The label as written, or the payload test in its YAML flow form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageMatch::Label(p) => f.write_str(p.as_str()),
            MessageMatch::Payload(p) => fmt::Display::fmt(p, f),
        }
    }
}

impl Serialize for MessageMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MessageMatch::Label(p) => p.serialize(s),
            MessageMatch::Payload(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for MessageMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MessageMatch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a label pattern (e.g. `telemetry`) or a payload test \
                     (`{ json: … }`, `{ text: … }` or `{ binary: … }`)",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MessageMatch, E> {
                if v.is_empty() {
                    return Err(E::custom("a message label pattern cannot be empty"));
                }
                if v.len() > MAX_TEXT_BYTES {
                    return Err(E::custom(format!(
                        "a message label pattern is at most {MAX_TEXT_BYTES} bytes"
                    )));
                }
                Ok(MessageMatch::label(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MessageMatch, A::Error> {
                PayloadMatch::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(MessageMatch::Payload)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for MessageMatch {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MessageMatch".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let payload = generator.subschema_for::<PayloadMatch>();
        json_schema!({
            "description": "A message label pattern, or a test of the payload.",
            "anyOf": [
                { "type": "string", "minLength": 1, "maxLength": MAX_TEXT_BYTES },
                payload,
            ]
        })
    }
}

/// A test of a message's payload; exactly one of its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayloadMatch {
    /// A text message that parses as JSON and meets every condition.
    Json(JsonConditions),
    /// A text message passing this test.
    Text(TextTest),
    /// A binary message with this prefix and length.
    Binary(BinaryTest),
}

impl PayloadMatch {
    /// True when the message's payload passes.
    pub fn matches(&self, message: &SeenMessage<'_>) -> bool {
        match (self, message.payload) {
            (PayloadMatch::Json(conds), Payload::Text(_)) => message
                .json()
                .is_some_and(|doc| conds.0.iter().all(|c| c.holds(doc))),
            (PayloadMatch::Text(t), Payload::Text(text)) => t.holds(text),
            (PayloadMatch::Binary(b), Payload::Binary(bytes)) => b.holds(bytes),
            _ => false,
        }
    }
}

impl fmt::Display for PayloadMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Flow YAML is JSON: what the user wrote, give or take quoting.
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

/// One JSON condition or a list of them (all must hold), at most [`MAX_JSON_CONDITIONS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct JsonConditions(Vec<JsonCondition>);

impl JsonSchema for JsonConditions {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "JsonConditions".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let one = generator.subschema_for::<JsonCondition>();
        json_schema!({
            "anyOf": [
                one,
                { "type": "array", "items": one, "minItems": 1, "maxItems": MAX_JSON_CONDITIONS },
            ]
        })
    }
}

impl<'de> Deserialize<'de> for JsonConditions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = JsonConditions;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a condition `{ pointer: /cmd, equals: get }` or a list of them")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JsonConditions, A::Error> {
                JsonCondition::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|c| JsonConditions(vec![c]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonConditions, A::Error> {
                let mut all = Vec::new();
                while let Some(c) = seq.next_element::<JsonCondition>()? {
                    if all.len() == MAX_JSON_CONDITIONS {
                        return Err(de::Error::custom(format!(
                            "at most {MAX_JSON_CONDITIONS} JSON conditions"
                        )));
                    }
                    all.push(c);
                }
                if all.is_empty() {
                    return Err(de::Error::custom("an empty list of JSON conditions"));
                }
                Ok(JsonConditions(all))
            }
        }
        d.deserialize_any(V)
    }
}

/// `{ pointer: /cmd, equals: get }`: the value at an RFC 6901 JSON pointer and one test of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "RawJsonCondition")]
pub struct JsonCondition {
    /// Where the value is, e.g. `/cmd`, `/data/0/id`; `""` is the whole document.
    pub pointer: String,
    /// What must hold of it.
    #[serde(flatten)]
    pub test: JsonTest,
}

/// The test of a JSON condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JsonTest {
    /// The value equals this one (numbers by value: `1` equals `1.0`).
    Equals(Value),
    /// The value is a string matching this glob (`*` any run, `?` one character; case matters).
    Glob(String),
    /// The value is a string matching this regular expression (unanchored).
    Regex(MessageRegex),
    /// The pointer leads somewhere (`true`) or nowhere (`false`).
    Exists(bool),
}

/// The written form of a [`JsonCondition`], checked into one.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawJsonCondition {
    pointer: String,
    #[serde(default)]
    equals: Option<Value>,
    #[serde(default)]
    glob: Option<String>,
    #[serde(default)]
    regex: Option<MessageRegex>,
    #[serde(default)]
    exists: Option<bool>,
}

impl TryFrom<RawJsonCondition> for JsonCondition {
    type Error = String;

    fn try_from(raw: RawJsonCondition) -> Result<Self, String> {
        if !(raw.pointer.is_empty() || raw.pointer.starts_with('/')) {
            return Err(format!(
                "`pointer: {}` is not a JSON pointer: it starts with `/` (e.g. `/cmd`)",
                raw.pointer
            ));
        }
        text_bound("pointer", &raw.pointer)?;
        let mut tests = Vec::new();
        if let Some(v) = raw.equals {
            let written = serde_json::to_string(&v).map_err(|e| e.to_string())?;
            text_bound("equals", &written)?;
            tests.push(JsonTest::Equals(v));
        }
        if let Some(g) = raw.glob {
            text_bound("glob", &g)?;
            tests.push(JsonTest::Glob(g));
        }
        if let Some(r) = raw.regex {
            tests.push(JsonTest::Regex(r));
        }
        if let Some(e) = raw.exists {
            tests.push(JsonTest::Exists(e));
        }
        match (tests.pop(), tests.is_empty()) {
            (Some(test), true) => Ok(JsonCondition {
                pointer: raw.pointer,
                test,
            }),
            _ => Err(format!(
                "the condition on `{}` needs exactly one of equals, glob, regex, exists",
                raw.pointer
            )),
        }
    }
}

impl JsonCondition {
    /// True when the condition holds of `doc`.
    fn holds(&self, doc: &Value) -> bool {
        let found = doc.pointer(&self.pointer);
        match &self.test {
            JsonTest::Exists(want) => found.is_some() == *want,
            JsonTest::Equals(v) => found.is_some_and(|f| json_equal(f, v)),
            JsonTest::Glob(g) => found
                .and_then(Value::as_str)
                .is_some_and(|s| glob(g.as_bytes(), s.as_bytes())),
            JsonTest::Regex(r) => found
                .and_then(Value::as_str)
                .is_some_and(|s| r.0.is_match(s)),
        }
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`): what `equals` means in
/// every matcher, a device file's included.
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// A text test; exactly one of its keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextTest {
    /// The whole text.
    Exact(String),
    /// A glob over the whole text (`*` any run, `?` one character; case matters).
    Glob(String),
    /// A regular expression (unanchored: `^…$` for the whole text).
    Regex(MessageRegex),
}

impl TextTest {
    fn holds(&self, text: &str) -> bool {
        match self {
            TextTest::Exact(e) => e == text,
            TextTest::Glob(g) => glob(g.as_bytes(), text.as_bytes()),
            TextTest::Regex(r) => r.0.is_match(text),
        }
    }
}

/// `{ prefix: "a5 01", min_len: 3, max_len: 8 }`: a binary message's first bytes (hex, spaces
/// allowed) and length bounds; every key optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "RawBinaryTest", into = "RawBinaryTest")]
pub struct BinaryTest {
    prefix: Vec<u8>,
    min_len: Option<u64>,
    max_len: Option<u64>,
}

/// The written form of a [`BinaryTest`].
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawBinaryTest {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_len: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_len: Option<u64>,
}

impl TryFrom<RawBinaryTest> for BinaryTest {
    type Error = String;

    fn try_from(raw: RawBinaryTest) -> Result<Self, String> {
        let digits: String = raw.prefix.split_whitespace().collect();
        if !digits.len().is_multiple_of(2) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`prefix: {}` is not hex bytes (e.g. `a5 01`)",
                raw.prefix
            ));
        }
        let prefix: Vec<u8> = digits
            .as_bytes()
            .chunks(2)
            .filter_map(|pair| std::str::from_utf8(pair).ok())
            .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
            .collect();
        if prefix.len() > MAX_PREFIX_BYTES {
            return Err(format!("`prefix` is at most {MAX_PREFIX_BYTES} bytes"));
        }
        if let (Some(min), Some(max)) = (raw.min_len, raw.max_len)
            && min > max
        {
            return Err(format!("`min_len: {min}` is more than `max_len: {max}`"));
        }
        Ok(BinaryTest {
            prefix,
            min_len: raw.min_len,
            max_len: raw.max_len,
        })
    }
}

impl From<BinaryTest> for RawBinaryTest {
    fn from(b: BinaryTest) -> Self {
        let hex: Vec<String> = b.prefix.iter().map(|x| format!("{x:02x}")).collect();
        RawBinaryTest {
            prefix: hex.join(" "),
            min_len: b.min_len,
            max_len: b.max_len,
        }
    }
}

impl BinaryTest {
    fn holds(&self, bytes: &[u8]) -> bool {
        let len = bytes.len() as u64;
        bytes.starts_with(&self.prefix)
            && self.min_len.is_none_or(|m| len >= m)
            && self.max_len.is_none_or(|m| len <= m)
    }
}

/// A regular expression, compiled when read (at most [`MAX_TEXT_BYTES`] written, 1 MiB
/// compiled); compared and written back by its source.
#[derive(Debug, Clone)]
pub struct MessageRegex(Regex);

impl PartialEq for MessageRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for MessageRegex {}

impl Serialize for MessageRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        text_bound("regex", &source).map_err(de::Error::custom)?;
        RegexBuilder::new(&source)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(MessageRegex)
            .map_err(|e| de::Error::custom(format!("`regex: {source}` does not compile: {e}")))
    }
}

impl JsonSchema for MessageRegex {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MessageRegex".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "regex", "maxLength": MAX_TEXT_BYTES })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(json: &str) -> Result<MessageMatch, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    fn text(label: Option<&'static str>, t: &'static str) -> SeenMessage<'static> {
        SeenMessage::new(label, Payload::Text(t))
    }

    #[test]
    fn a_string_is_a_label_pattern_and_a_map_a_payload_test() {
        let label = m(r#""tele*""#).expect("label");
        assert!(label.matches(&text(Some("Telemetry"), "{}")));
        assert!(!label.matches(&text(None, "telemetry")));
        let cmd = m(r#"{"json":{"pointer":"/cmd","equals":"get"}}"#).expect("json");
        assert!(cmd.matches(&text(None, r#"{"cmd":"get","key":"temp"}"#)));
        assert!(!cmd.matches(&text(None, r#"{"cmd":"set"}"#)));
        assert!(!cmd.matches(&text(None, "cmd=get")));
        assert!(!cmd.matches(&SeenMessage::new(
            None,
            Payload::Binary(b"{\"cmd\":\"get\"}")
        )));
    }

    #[test]
    fn json_conditions_all_hold() {
        let both = m(
            r#"{"json":[{"pointer":"/cmd","glob":"se?"},{"pointer":"/led","exists":true},
                     {"pointer":"/n","equals":1},{"pointer":"/who","regex":"^[a-z]+$"}]}"#,
        )
        .expect("json list");
        assert!(both.matches(&text(None, r#"{"cmd":"set","led":0,"n":1.0,"who":"app"}"#)));
        assert!(!both.matches(&text(None, r#"{"cmd":"set","n":1,"who":"app"}"#)));
        assert!(!both.matches(&text(None, r#"{"cmd":"SET","led":0,"n":1,"who":"app"}"#)));
        let absent = m(r#"{"json":{"pointer":"/secret","exists":false}}"#).expect("absent");
        assert!(absent.matches(&text(None, "{}")));
    }

    #[test]
    fn text_and_binary_tests() {
        let led = m(r#"{"text":{"regex":"^LED=[01]$"}}"#).expect("regex");
        assert!(led.matches(&text(None, "LED=1")));
        assert!(!led.matches(&text(None, "LED=2")));
        let exact = m(r#"{"text":{"exact":"PING"}}"#).expect("exact");
        assert!(exact.matches(&text(None, "PING")) && !exact.matches(&text(None, "ping")));
        let frame = m(r#"{"binary":{"prefix":"a5 01","min_len":3,"max_len":4}}"#).expect("bin");
        let bin = |b: &'static [u8]| SeenMessage::new(None, Payload::Binary(b));
        assert!(frame.matches(&bin(&[0xa5, 1, 9])));
        assert!(!frame.matches(&bin(&[0xa5, 1])));
        assert!(!frame.matches(&bin(&[0xa5, 2, 9])));
        assert!(!frame.matches(&text(None, "\u{a5}\u{1}x")));
    }

    #[test]
    fn bad_matchers_say_what_is_wrong() {
        for (json, says) in [
            (
                r#"{"json":{"pointer":"cmd","equals":"get"}}"#,
                "starts with `/`",
            ),
            (r#"{"json":{"pointer":"/cmd"}}"#, "exactly one of"),
            (
                r#"{"json":{"pointer":"/cmd","equals":1,"exists":true}}"#,
                "exactly one of",
            ),
            (r#"{"json":{"pointer":"/cmd","equal":1}}"#, "unknown field"),
            (r#"{"json":[]}"#, "empty list"),
            (r#"{"text":{"regex":"("}}"#, "does not compile"),
            (r#"{"text":{"exact":"a","regex":"b"}}"#, ""),
            (r#"{"binary":{"prefix":"a5 0"}}"#, "not hex"),
            (r#"{"binary":{"min_len":4,"max_len":3}}"#, "more than"),
            (r#"{"xml":{}}"#, "unknown variant"),
            (r#"{"text":{"exact":"a"},"binary":{}}"#, ""),
            (r#""""#, "cannot be empty"),
        ] {
            let err = m(json).expect_err(json);
            assert!(err.contains(says), "{json}: {err}");
        }
        let long = format!(
            r#"{{"text":{{"regex":"{}"}}}}"#,
            "a".repeat(MAX_TEXT_BYTES + 1)
        );
        assert!(m(&long).expect_err("long").contains("at most"));
        let many: Vec<String> = (0..=MAX_JSON_CONDITIONS)
            .map(|i| format!(r#"{{"pointer":"/k{i}","exists":true}}"#))
            .collect();
        let many = format!(r#"{{"json":[{}]}}"#, many.join(","));
        assert!(m(&many).expect_err("many").contains("at most"));
    }

    #[test]
    fn written_back_as_read() {
        for json in [
            r#""ping""#,
            r#"{"json":[{"pointer":"/cmd","equals":"get"}]}"#,
            r#"{"text":{"regex":"^LED="}}"#,
            r#"{"binary":{"prefix":"a5 01","min_len":3}}"#,
        ] {
            let read = m(json).expect(json);
            let written = serde_json::to_string(&read).expect("serialize");
            assert_eq!(m(&written).expect("re-read"), read, "{json} → {written}");
        }
    }
}
