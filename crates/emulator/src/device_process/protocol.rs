//! Protocol v1 between espsim and a device process: one JSON object per line, each with a
//! `type`. [`ToProcess`] is what espsim writes on the process's stdin; [`decode`] turns one line
//! the process printed on stdout into a checked [`FromProcess`], or says why the line is garbage.
//! Every field from the process is bounded here, before anything else sees it.
//! The reference: `docs/reference/device-process.md`.

use espsim_firmware::{ConnId, HttpRequest, HttpResponse, Payload, SessionStart, To};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// The protocol version espsim speaks (`hello.version`).
pub(crate) const VERSION: u64 = 1;

/// Longest line espsim reads from the process (the newline not counted); a longer one is garbage.
pub const MAX_LINE: usize = 1024 * 1024;

/// Most headers in an `http_response`.
pub(crate) const MAX_HEADERS: usize = 32;

/// Longest header name or value in an `http_response`.
pub(crate) const MAX_HEADER_LEN: usize = 1024;

/// Largest `http_response` body once decoded (an ESP32 handler sends from RAM).
pub(crate) const MAX_HTTP_BODY: usize = 256 * 1024;

/// Longest `label` of a `send` (it lands in events and the fault layer's `message_type`).
pub(crate) const MAX_LABEL: usize = 64;

/// Longest close reason: a close frame's payload is at most 125 bytes, 2 of them the code.
pub(crate) const MAX_CLOSE_REASON: usize = 123;

/// Longest `log` message kept (longer ones are cut, not refused).
pub(crate) const MAX_LOG: usize = 1024;

/// What espsim tells the process: one line each.
#[derive(Debug)]
pub(crate) enum ToProcess<'a> {
    /// First line of every start.
    Hello {
        /// The run's seed.
        seed: u64,
        /// The profile's largest WebSocket message, which `send` must respect.
        max_message: usize,
    },
    /// A WebSocket session opened.
    SessionOpened {
        /// The session id.
        session: ConnId,
        /// The upgrade request.
        start: &'a SessionStart<'a>,
    },
    /// A WebSocket message arrived.
    Message {
        /// From this session.
        session: ConnId,
        /// The message.
        payload: Payload,
    },
    /// A session ended (either side, or espsim dropped it).
    SessionClosed {
        /// The session.
        session: ConnId,
    },
    /// An HTTP request the process answers with `http_response` and the same `id`.
    HttpRequest {
        /// Request id.
        id: u64,
        /// The request.
        request: &'a HttpRequest<'a>,
    },
    /// The chip restarts (a `reboot` fault): forget RAM state.
    Reboot,
}

impl ToProcess<'_> {
    /// The line, without its newline.
    pub(crate) fn encode(&self) -> String {
        let value = match self {
            ToProcess::Hello { seed, max_message } => json!({
                "type": "hello",
                "version": VERSION,
                "seed": seed,
                "limits": { "line": MAX_LINE, "message": max_message, "http_body": MAX_HTTP_BODY },
            }),
            ToProcess::SessionOpened { session, start } => json!({
                "type": "session_opened",
                "session": session,
                "path": start.path,
                "query": start.query,
                "headers": pairs(start.headers),
                "authorized": start.authorized,
            }),
            ToProcess::Message { session, payload } => {
                let mut m = Map::new();
                m.insert("type".into(), "message".into());
                m.insert("session".into(), (*session).into());
                body_field(&mut m, payload, "text", "hex");
                Value::Object(m)
            }
            ToProcess::SessionClosed { session } => {
                json!({ "type": "session_closed", "session": session })
            }
            ToProcess::HttpRequest { id, request } => {
                let mut m = Map::new();
                m.insert("type".into(), "http_request".into());
                m.insert("id".into(), (*id).into());
                m.insert("method".into(), request.method.into());
                m.insert("path".into(), request.path.into());
                m.insert("query".into(), request.query.into());
                m.insert("headers".into(), pairs(request.headers));
                let body = match std::str::from_utf8(request.body) {
                    Ok(text) => Payload::Text(text.to_owned()),
                    Err(_) => Payload::Binary(request.body.to_vec()),
                };
                body_field(&mut m, &body, "body_text", "body_hex");
                Value::Object(m)
            }
            ToProcess::Reboot => json!({ "type": "reboot" }),
        };
        value.to_string()
    }
}

/// Headers as `[[name, value], …]`: order and repeats kept.
fn pairs(headers: &[(String, String)]) -> Value {
    headers
        .iter()
        .map(|(n, v)| json!([n, v]))
        .collect::<Vec<_>>()
        .into()
}

fn body_field(m: &mut Map<String, Value>, payload: &Payload, text: &str, hex: &str) {
    match payload {
        Payload::Text(t) => m.insert(text.into(), t.as_str().into()),
        Payload::Binary(b) => m.insert(hex.into(), hex_encode(b).into()),
    };
}

/// A checked line from the process.
#[derive(Debug, PartialEq)]
pub(crate) enum FromProcess {
    /// The process is ready to serve.
    Ready,
    /// Send a WebSocket message.
    Send {
        /// To whom.
        to: To,
        /// The message.
        payload: Payload,
        /// Its label (events, `message_type` faults); `process` when not given.
        label: String,
    },
    /// Close a session with a close frame.
    Close {
        /// The session.
        session: ConnId,
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The answer to `http_request` `id`.
    HttpResponse {
        /// The request's id.
        id: u64,
        /// The answer.
        response: HttpResponse,
    },
    /// A line for espsim's log and event log.
    Log {
        /// The message (cut to [`MAX_LOG`] bytes).
        message: String,
    },
}

/// Why a line is garbage.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Garbage {
    /// Over [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    /// Not UTF-8 JSON, or not an object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// No `type`, an unknown one, or a field of the wrong shape.
    #[error("{0}")]
    Invalid(String),
}

/// A line from the process. Unknown fields are errors (a misspelt `label` is garbage, not a
/// silently unlabelled message).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Raw {
    // A struct variant, so `deny_unknown_fields` applies to it too.
    Ready {},
    Send {
        to: Value,
        except: Option<ConnId>,
        text: Option<String>,
        hex: Option<String>,
        json: Option<Value>,
        label: Option<String>,
    },
    Close {
        session: ConnId,
        code: Option<u16>,
        reason: Option<String>,
    },
    HttpResponse {
        id: u64,
        status: u16,
        headers: Option<Map<String, Value>>,
        body_text: Option<String>,
        body_hex: Option<String>,
        json: Option<Value>,
        label: Option<String>,
    },
    Log {
        message: String,
    },
}

/// Checks one line (without its newline). `max_message` is the profile's WebSocket limit.
pub(crate) fn decode(line: &[u8], max_message: usize) -> Result<FromProcess, Garbage> {
    if line.len() > MAX_LINE {
        return Err(Garbage::TooLong);
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| Garbage::NotJson(e.to_string()))?;
    let Some(kind) = value.as_object().map(|o| o.get("type")) else {
        return Err(Garbage::NotJson("not an object".into()));
    };
    let Some(kind) = kind.and_then(Value::as_str).map(str::to_owned) else {
        return Err(Garbage::Invalid("no string `type`".into()));
    };
    let raw: Raw = serde_json::from_value(value)
        .map_err(|e| Garbage::Invalid(format!("`{}`: {e}", cut(&kind, 32))))?;
    // A `json` body goes out as the process wrote it (key order, number spelling), not as
    // serde_json would re-print it.
    let json_text = |parsed: Value| {
        serde_json::from_slice::<JsonText<'_>>(line)
            .ok()
            .and_then(|j| j.json)
            .map_or_else(|| parsed.to_string(), |raw| raw.get().to_owned())
    };
    Ok(match raw {
        Raw::Ready {} => FromProcess::Ready,
        Raw::Send {
            to,
            except,
            text,
            hex,
            json,
            label,
        } => {
            let to = match (&to, except) {
                (Value::String(s), None) if s == "all" => To::All,
                (Value::String(s), Some(conn)) if s == "all" => To::Others(conn),
                (Value::Number(n), None) => match n.as_u64() {
                    Some(conn) => To::Session(conn),
                    None => return Err(invalid("`send.to` must be \"all\" or a session id")),
                },
                (Value::Number(_), Some(_)) => {
                    return Err(invalid("`send.except` goes with `to: \"all\"`"));
                }
                _ => return Err(invalid("`send.to` must be \"all\" or a session id")),
            };
            let payload = one_body("send", text, hex, json.map(json_text))?;
            if payload.len() > max_message {
                return Err(Garbage::Invalid(format!(
                    "`send` of {} bytes is over the profile's {max_message}-byte message limit",
                    payload.len()
                )));
            }
            let label = label.unwrap_or_else(|| "process".to_owned());
            if label.len() > MAX_LABEL {
                return Err(Garbage::Invalid(format!(
                    "`send.label` longer than {MAX_LABEL} bytes"
                )));
            }
            FromProcess::Send { to, payload, label }
        }
        Raw::Close {
            session,
            code,
            reason,
        } => {
            let code = code.unwrap_or(1000);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(Garbage::Invalid(format!(
                    "`close.code` {code} cannot be sent"
                )));
            }
            let reason = reason.unwrap_or_default();
            if reason.len() > MAX_CLOSE_REASON {
                return Err(Garbage::Invalid(format!(
                    "`close.reason` longer than {MAX_CLOSE_REASON} bytes"
                )));
            }
            FromProcess::Close {
                session,
                code,
                reason,
            }
        }
        Raw::HttpResponse {
            id,
            status,
            headers,
            body_text,
            body_hex,
            json,
            label,
        } => {
            if !(100..=599).contains(&status) {
                return Err(Garbage::Invalid(format!(
                    "`http_response.status` {status} out of range"
                )));
            }
            let mut list = Vec::new();
            let is_json = json.is_some();
            for (name, value) in headers.unwrap_or_default() {
                let Value::String(value) = value else {
                    return Err(invalid("`http_response.headers` values must be strings"));
                };
                let token =
                    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
                let clean = !value.bytes().any(|b| b == b'\r' || b == b'\n');
                if !token || !clean {
                    return Err(invalid("`http_response.headers`: bad name or value"));
                }
                if name.len() > MAX_HEADER_LEN || value.len() > MAX_HEADER_LEN {
                    return Err(Garbage::Invalid(format!(
                        "`http_response.headers`: name or value longer than {MAX_HEADER_LEN} bytes"
                    )));
                }
                list.push((name, value));
            }
            if list.len() > MAX_HEADERS {
                return Err(Garbage::Invalid(format!(
                    "`http_response` has more than {MAX_HEADERS} headers"
                )));
            }
            if is_json
                && !list
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                list.push(("Content-Type".into(), "application/json".into()));
            }
            let body = match (body_text, body_hex, json) {
                (None, None, None) => Vec::new(),
                (t, h, j) => match one_body("http_response", t, h, j.map(json_text))? {
                    Payload::Text(t) => t.into_bytes(),
                    Payload::Binary(b) => b,
                },
            };
            if body.len() > MAX_HTTP_BODY {
                return Err(Garbage::Invalid(format!(
                    "`http_response` body over {MAX_HTTP_BODY} bytes"
                )));
            }
            let label = label.unwrap_or_else(|| "process".to_owned());
            if label.len() > MAX_LABEL {
                return Err(Garbage::Invalid(format!(
                    "`http_response.label` longer than {MAX_LABEL} bytes"
                )));
            }
            FromProcess::HttpResponse {
                id,
                response: HttpResponse {
                    status,
                    headers: list,
                    body,
                    label,
                },
            }
        }
        Raw::Log { message } => FromProcess::Log {
            message: cut(&message, MAX_LOG).to_owned(),
        },
    })
}

fn invalid(why: &str) -> Garbage {
    Garbage::Invalid(why.to_owned())
}

/// The `json` field of a line, as written.
#[derive(Deserialize)]
struct JsonText<'a> {
    #[serde(borrow)]
    json: Option<&'a RawValue>,
}

/// Exactly one of text (`text`/`body_text`), hex or json (its text).
fn one_body(
    what: &str,
    text: Option<String>,
    hex: Option<String>,
    json: Option<String>,
) -> Result<Payload, Garbage> {
    match (text, hex, json) {
        (Some(t), None, None) => Ok(Payload::Text(t)),
        (None, Some(h), None) => hex_decode(&h)
            .map(Payload::Binary)
            .ok_or_else(|| Garbage::Invalid(format!("`{what}`: bad hex"))),
        (None, None, Some(j)) => Ok(Payload::Text(j)),
        _ => Err(Garbage::Invalid(format!(
            "`{what}` needs exactly one body: text, hex or json"
        ))),
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|p| Some((digit(p[0])? << 4) | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_decodes_text_hex_json_and_targets() {
        let d = |l: &str| decode(l.as_bytes(), 100);
        assert_eq!(
            d(r#"{"type":"send","to":"all","text":"hi"}"#),
            Ok(FromProcess::Send {
                to: To::All,
                payload: Payload::Text("hi".into()),
                label: "process".into()
            })
        );
        assert_eq!(
            d(r#"{"type":"send","to":3,"hex":"00ff","label":"raw"}"#),
            Ok(FromProcess::Send {
                to: To::Session(3),
                payload: Payload::Binary(vec![0, 255]),
                label: "raw".into()
            })
        );
        assert!(matches!(
            d(r#"{"type":"send","to":"all","except":2,"json":{"a":1}}"#),
            Ok(FromProcess::Send { to: To::Others(2), payload: Payload::Text(t), .. }) if t == r#"{"a":1}"#
        ));
    }

    #[test]
    fn garbage_says_why() {
        let d = |l: &str| decode(l.as_bytes(), 4);
        assert!(matches!(d("hello"), Err(Garbage::NotJson(_))));
        assert!(matches!(d("[1]"), Err(Garbage::NotJson(_))));
        assert!(matches!(d(r#"{"t":1}"#), Err(Garbage::Invalid(_))));
        assert!(matches!(d(r#"{"type":"fly"}"#), Err(Garbage::Invalid(_))));
        assert!(matches!(
            d(r#"{"type":"send","to":"all","text":"12345"}"#),
            Err(Garbage::Invalid(m)) if m.contains("limit")
        ));
        assert!(matches!(
            d(r#"{"type":"send","to":"all","text":"a","hex":"00"}"#),
            Err(Garbage::Invalid(_))
        ));
        assert!(matches!(
            d(r#"{"type":"send","to":"all","hex":"0"}"#),
            Err(Garbage::Invalid(_))
        ));
        assert!(matches!(
            d(r#"{"type":"close","session":1,"code":1005}"#),
            Err(Garbage::Invalid(_))
        ));
        assert!(matches!(
            d(r#"{"type":"http_response","id":1,"status":200,"headers":{"X-A":"a\r\nb"}}"#),
            Err(Garbage::Invalid(_))
        ));
        assert_eq!(decode(&vec![b' '; MAX_LINE + 1], 4), Err(Garbage::TooLong));
        // A misspelt field is garbage, not silently dropped.
        let misspelt = d(r#"{"type":"send","to":"all","text":"x","lable":"y"}"#);
        assert!(
            matches!(&misspelt, Err(Garbage::Invalid(m)) if m.contains("unknown field `lable`")),
            "{misspelt:?}"
        );
        assert!(matches!(
            d(r#"{"type":"ready","extra":1}"#),
            Err(Garbage::Invalid(_))
        ));
    }

    #[test]
    fn http_response_json_sets_the_content_type() {
        let line = r#"{"type":"http_response","id":7,"status":200,"json":{"on":true,"a":1.50}}"#;
        let Ok(FromProcess::HttpResponse { id, response }) = decode(line.as_bytes(), 10) else {
            panic!("valid");
        };
        assert_eq!(id, 7);
        assert_eq!(response.body, br#"{"on":true,"a":1.50}"#, "as written");
        assert_eq!(
            response.headers,
            vec![("Content-Type".to_owned(), "application/json".to_owned())]
        );
    }

    #[test]
    fn binary_messages_and_bodies_go_out_as_hex() {
        let line = ToProcess::Message {
            session: 2,
            payload: Payload::Binary(vec![1, 0xab]),
        }
        .encode();
        let value: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(
            value,
            json!({"type": "message", "session": 2, "hex": "01ab"})
        );
        assert_eq!(hex_decode("01ab"), Some(vec![1, 0xab]));
    }
}
