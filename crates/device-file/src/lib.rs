//! A device described by its user in a YAML *device file*, run by espsim instead of the built-in
//! firmware.
//!
//! An app developer writes what their own ESP32 does (its WebSocket messages, its state, its
//! timers, its HTTP routes) and espsim serves it behind the same captive DNS, ESP-IDF httpd and
//! WebSocket emulation as the built-in device. [`parse`] / [`load`] read the file strictly and
//! check *everything* before anything runs (regexes, templates, hex, JSON pointers, names,
//! bounds), naming `file:line:col` of the offending value; [`DeviceFile::device`] makes a
//! [`FileDevice`], the [`espsim_firmware::DeviceLogic`] the emulator hosts.
//!
//! - `spec`: the file as written ([`DeviceFile`], [`WebSocketSpec`]).
//! - `compile`: the checks and the compiled program (matchers, templates).
//! - `device`: [`FileDevice`], the sans-IO runtime (sessions, state, timers, HTTP).
//! - `template`: the minijinja environment and its seeded functions.
//! - `examples/devices/greenhouse.yaml` (repository root): a complete file for a typical ESP32 app.
//!
//! # The file format
//!
//! ```yaml
//! name: greenhouse                 # required, 1–64 characters
//! description: what it is          # optional, free text
//! websocket:                       # optional: one endpoint, or a list of MAX_ENDPOINTS
//!   path: /ws                      # default /ws; starts with `/`, no query; distinct
//!   subprotocol: null              # optional; answered in the handshake
//!   on_connect:                    # optional: message(s) sent when a session opens here
//!     - json: { event: hello, fw: "{{ state.fw }}" }
//! state:                           # optional: variables and their initial values
//!   led: false                     # a plain value lives in RAM (reset by a reboot)
//!   fw: { value: "1.4.2", persist: true }   # exactly {value, persist}: persist keeps it (NVS)
//! rules:                           # optional, first match wins, at most MAX_RULES
//!   - name: set-led                # required, unique; the label of what the rule sends
//!     endpoint: /ws                # optional: only messages on this endpoint (default: any)
//!     match: { json: { pointer: /cmd, equals: set } }   # optional: no `match` matches anything
//!     set: { led: "{{ msg.value }}" }                     # optional: assign state variables
//!     reply: { json: { ok: true } }                       # optional: message(s), to the sender
//!     broadcast: { json: { event: led, on: "{{ state.led }}" } }   # optional: to everyone
//!     close: { code: 1000, reason: bye }                  # optional: then close the session
//!     start: telemetry                                    # optional: start a periodic message
//!     stop: telemetry                                     # optional: stop one
//! unmatched: ignore                # or { reply: <send(s)> } or { close: {code, reason} }
//! periodic:                        # optional: named timers, at most MAX_PERIODICS
//!   telemetry:
//!     every: 1s                    # MIN_INTERVAL_MS..=MAX_INTERVAL_MS
//!     start: on_message            # on_message (default: a rule's `start:`) | on_connect
//!     scope: session               # session (default: one per session) | broadcast (one, to all)
//!     endpoint: /ws                # optional: only sessions on this endpoint (default: any)
//!     send: { json: { temp: "{{ walk('temp', 18, 26, 0.3) }}", seq: "{{ seq }}" } }
//! http:                            # optional: routes, first match wins, at most MAX_ROUTES
//!   - name: save-wifi              # optional (the label; default `METHOD path`)
//!     method: POST                 # required, upper case
//!     path: /wifi                  # required, exact match, starts with `/`
//!     query: { mode: sta }         # optional: these query parameters, exact values
//!     headers: { X-Key: abc }      # optional: these request headers (any case), exact values
//!     body: { json: { pointer: /ssid, exists: true } }   # optional: a matcher on the body
//!     status: 200                  # default 200, 100–599
//!     response_headers: { Cache-Control: no-store }      # optional, values templated
//!     json: { ok: true }           # at most one of json / text / binary (none: empty body)
//!     set: { ssid: "{{ body.ssid }}" }                    # optional, as in rules
//! ```
//!
//! **Matchers** (`match:` of a rule, `body:` of a route) are exactly one of:
//! - `json:` one condition or a list of conditions (all must hold) on a message that parses as
//!   JSON. A condition is `pointer:` (RFC 6901, empty or starting with `/`; default empty = the
//!   whole message) and at most one of `equals:` (any value; numbers compare by value), `glob:`
//!   (the value is a string matching the glob), `regex:` (the value is a string the regex
//!   finds), `exists: true|false`. Without a test the pointer must exist.
//! - `text:` exactly one of `exact:`, `glob:`, `regex:` on a text message (an HTTP body as UTF-8).
//! - `binary:` `prefix:` (hex, spaces allowed), `min_len:`, `max_len:` (bytes) on a binary
//!   message (any HTTP body).
//!
//! **Sends** (`reply`, `broadcast`, `on_connect`, `unmatched.reply`, a periodic's `send`) are one
//! mapping or a list of them (at most MAX_SENDS each), each exactly one of `json:` (any value,
//! templated), `text:` (a template) or `binary:` with exactly one of `hex:` / `base64:` (checked at
//! load unless it contains a template, then decoded when sent), plus `to: sender|all|others`
//! (default `sender`, `all` for `broadcast`; not in a periodic, whose `scope` decides) and
//! `after:` (a delay, at most MAX_DELAY_MS; not in a periodic). A rule's messages are sent in
//! order: `reply`, then `broadcast`, then the `close`.
//!
//! **Durations** use the workspace's strict grammar (`espsim_faults::duration`): `250ms`, `5s`,
//! `1m 30s`.
//!
//! **Templates** are [minijinja](https://docs.rs/minijinja) (Jinja2) strings, compiled once when
//! the file is loaded; a string without `{{`, `{%` or `{#` is a literal. In a JSON value (and in
//! `set:`), a string that is exactly one `{{ expr }}` keeps the expression's type (number, bool,
//! object, list, `null` for undefined); any other template renders to a string. The variables:
//! - everywhere: `state` (the variables), `uptime_ms` (since power-on);
//! - rules and `unmatched`: `msg`, `session` (the sender's id), `count` (how many times this rule
//!   matched since power-on, this one included; 0 in `unmatched`). `msg` depends on the rule's matcher: `json` → the
//!   parsed message; `text` → `{text, len, captures}` (`captures[0]` the whole regex match, then
//!   the groups, `null` when a group did not take part); `binary` → `{hex, len, bytes}`; no
//!   matcher → the parsed JSON when the text parses, else the text form, or the binary form;
//! - `on_connect`: `session`, `query` (the upgrade's query parameters), `headers` (lower-case
//!   names);
//! - periodic: `session` (`null` for broadcast scope), `seq` (0 for this run's first message);
//! - HTTP routes: `body` (parsed JSON when it parses, else the form fields of an urlencoded body,
//!   else the text), `query`, `headers` (lower-case names), `method`, `path`, `count`.
//!
//! Seeded functions (same seed, same calls → same values): `random(lo, hi)` (an integer in
//! `lo..=hi` when both are integers, else a float in `lo..hi`), `walk(name, lo, hi, step)` (a
//! random walk per name starting at the middle, each call moving by at most `step`, clamped to
//! `lo..=hi`), `sine(period_ms, lo, hi)` (a sine wave over `uptime_ms`). Every render gets
//! TEMPLATE_FUEL instructions and may produce at most MAX_TEMPLATE_OUTPUT bytes; a template
//! that fails at run time drops that one message (see [`FileDevice::render_errors`]).
//!
//! **State**: `set:` values follow the JSON rule above (`"{{ msg.value }}"` stores the value
//! with its type; a string stays a string even when it looks like a number), are rendered against the state *before* the assignment, then
//! assigned, then the messages are rendered (so a reply sees the new values). Only declared
//! variables can be set, from the file ([`parse`] checks) or the host
//! ([`FileDevice::set_state`]).
//!
//! **Timers**: delayed sends and periodic messages live in the [`FileDevice`] and are released
//! by `on_tick` at `next_deadline()`; a periodic whose deadline passed sends once and is
//! rescheduled one interval after the tick (no bursts). A session's timers end with it; a
//! broadcast periodic ends when the last session does.

#![warn(missing_docs)]

mod compile;
mod device;
mod spec;
mod template;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use device::FileDevice;
pub use spec::{DeviceFile, WebSocketSpec};

/// At most this many WebSocket endpoints (`websocket:` entries).
pub const MAX_ENDPOINTS: usize = 8;

/// At most this many rules.
pub const MAX_RULES: usize = 256;
/// At most this many HTTP routes.
pub const MAX_ROUTES: usize = 256;
/// At most this many periodic messages.
pub const MAX_PERIODICS: usize = 64;
/// At most this many state variables.
pub const MAX_STATE_VARS: usize = 256;
/// At most this many messages in one `reply`, `broadcast`, `on_connect`, `send`.
pub const MAX_SENDS: usize = 16;
/// At most this many conditions in one `json:` matcher.
pub const MAX_CONDITIONS: usize = 16;
/// A name (the device's, a rule's, a periodic's, a state variable's) is at most this long.
pub const MAX_NAME_LEN: usize = 64;
/// The device file is at most this many bytes.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// A template's source is at most this many bytes.
pub const MAX_TEMPLATE_SOURCE: usize = 16 * 1024;
/// A regex or glob pattern is at most this many bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// A compiled regex may take at most this much memory.
pub const MAX_REGEX_SIZE: usize = 1024 * 1024;
/// One rendered template (a message, a state value) is at most this many bytes.
pub const MAX_TEMPLATE_OUTPUT: usize = 64 * 1024;
/// Instructions one render may execute (minijinja fuel).
pub const TEMPLATE_FUEL: u64 = 100_000;
/// Nesting depth one render may reach (minijinja's recursion limit).
pub const TEMPLATE_RECURSION: usize = 64;
/// A periodic message's interval is at least this many milliseconds.
pub const MIN_INTERVAL_MS: u64 = 10;
/// A periodic message's interval is at most one day.
pub const MAX_INTERVAL_MS: u64 = 24 * 3600 * 1000;
/// A delayed send waits at most one hour.
pub const MAX_DELAY_MS: u64 = 3600 * 1000;
/// A binary matcher's lengths, and a literal binary message, are at most this many bytes.
pub const MAX_BINARY_LEN: u64 = 1024 * 1024;
/// A message the device sends is at most this many bytes (a JSON message is built from many
/// templates, each at most [`MAX_TEMPLATE_OUTPUT`]).
pub const MAX_MESSAGE_BYTES: usize = 4 * MAX_TEMPLATE_OUTPUT;
/// A state variable's value is at most this many bytes of JSON.
pub const MAX_STATE_VALUE: usize = 64 * 1024;
/// At most this many delayed sends wait at once; more are dropped (and reported).
pub const MAX_PENDING_SENDS: usize = 1024;
/// At most this many periodic timers run at once (periodics × sessions).
pub const MAX_RUNNING_PERIODICS: usize = 1024;
/// At most this many names `walk()` remembers.
pub const MAX_WALKS: usize = 256;
/// At most this many run-time template errors are kept for [`FileDevice::render_errors`].
pub const MAX_RENDER_ERRORS: usize = 32;
/// A close reason is at most this many bytes (a close frame's payload is at most 125).
pub const MAX_CLOSE_REASON: usize = 123;

/// Why a device file cannot be read, checked or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceFileError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{}: the file is {size} bytes, more than {MAX_FILE_BYTES} (hint: a device file describes behaviour, not data)", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: usize,
    },
    /// The text is not valid YAML or does not match the schema (unknown field, wrong type, bad
    /// duration, …).
    #[error("{}{}: {message}", path.display(), position(*line, *column))]
    Yaml {
        /// The file (or `<input>`).
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<u64>,
        /// 1-based column, when known.
        column: Option<u64>,
        /// What is wrong, with the parser's snippet.
        message: String,
    },
    /// The YAML is well-formed but a value is wrong (a bad regex, template, hex string, pointer,
    /// name, reference or bound).
    #[error("{}{}: {message}{}", path.display(), position(*line, *column), hint_suffix(hint.as_deref()))]
    Invalid {
        /// The file (or `<input>`).
        path: PathBuf,
        /// 1-based line of the offending value, when known.
        line: Option<u64>,
        /// 1-based column of the offending value, when known.
        column: Option<u64>,
        /// What is wrong.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// [`FileDevice::set_state`] named a variable the file does not declare.
    #[error("unknown state variable `{name}` (hint: the file declares: {known})")]
    UnknownStateVar {
        /// The name given.
        name: String,
        /// The declared names, comma-separated.
        known: String,
    },
    /// [`FileDevice::set_state`] was given a value larger than [`MAX_STATE_VALUE`].
    #[error(
        "the value for state variable `{name}` is {size} bytes of JSON, more than {MAX_STATE_VALUE}"
    )]
    StateValueTooLarge {
        /// The variable.
        name: String,
        /// The value's size as JSON.
        size: usize,
    },
}

fn position(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn hint_suffix(hint: Option<&str>) -> String {
    hint.map(|h| format!(" (hint: {h})")).unwrap_or_default()
}

impl DeviceFileError {
    /// The 1-based (line, column) of the problem, when known.
    pub fn line_column(&self) -> Option<(u64, u64)> {
        match self {
            DeviceFileError::Yaml {
                line: Some(l),
                column: Some(c),
                ..
            }
            | DeviceFileError::Invalid {
                line: Some(l),
                column: Some(c),
                ..
            } => Some((*l, *c)),
            _ => None,
        }
    }
}

/// Parses `text` (named `path` in errors) strictly, then checks and compiles it: any error a
/// device could hit because of the file is found here.
pub fn parse(text: &str, path: &Path) -> Result<DeviceFile, DeviceFileError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(DeviceFileError::FileTooLarge {
            path: path.to_owned(),
            size: text.len(),
        });
    }
    let options = serde_saphyr::options! { strict_booleans: true };
    let mut file: DeviceFile = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let location = e.location();
        DeviceFileError::Yaml {
            path: path.to_owned(),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message: tidy(&e.to_string(), path),
        }
    })?;
    file.path = path.to_owned();
    let program = compile::compile(&file)?;
    file.compiled = Some(Arc::new(program));
    Ok(file)
}

/// serde-saphyr renders `error: line L column C: <what>` plus a snippet headed `--> <input>:L:C`;
/// the position is already in our prefix, and the snippet should name the real file (as the
/// emulator's `yaml` module does).
fn tidy(rendered: &str, path: &Path) -> String {
    let text = rendered.strip_prefix("error: ").unwrap_or(rendered);
    let text = match text.split_once(": ") {
        Some((position, rest)) if position.starts_with("line ") => rest,
        _ => text,
    };
    text.replace("<input>", &path.display().to_string())
}

/// Reads the device file at `path` and [`parse`]s it.
pub fn load(path: &Path) -> Result<DeviceFile, DeviceFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| DeviceFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// A WebSocket endpoint a device file serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The exact path, e.g. `/ws`.
    pub path: String,
    /// The subprotocol the handshake answers with, if any.
    pub subprotocol: Option<String>,
}

impl DeviceFile {
    /// The WebSocket endpoints, in the file's order: the `websocket:` section's entries, or
    /// the one default endpoint (`/ws`) when there is none. Never empty.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let specs = self
            .websocket
            .as_ref()
            .map(|w| &w.value.0[..])
            .unwrap_or_default();
        if specs.is_empty() {
            return vec![Endpoint {
                path: "/ws".to_owned(),
                subprotocol: None,
            }];
        }
        specs
            .iter()
            .map(|s| Endpoint {
                path: s.value.path().to_owned(),
                subprotocol: s.value.subprotocol().map(str::to_owned),
            })
            .collect()
    }

    /// The device's `name:`.
    pub fn name(&self) -> &str {
        &self.name.value
    }

    /// The optional `description:`.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Checks a `DeviceFile` that was deserialized inside another file (a scenario's inline
    /// `device:` section) as [`parse`] checks a file; errors name `path`, the enclosing file
    /// (their positions are already that file's).
    pub fn check_inline(&self, path: &Path) -> Result<(), DeviceFileError> {
        compile::compile_at(self, path).map(|_| ())
    }

    /// A fresh device running this file, its random functions seeded with `seed` (the same seed
    /// and the same calls give the same bytes). Fails only for a `DeviceFile` that did not come
    /// from [`parse`] / [`load`] and does not pass their checks.
    pub fn device(&self, seed: u64) -> Result<FileDevice, DeviceFileError> {
        let program = match &self.compiled {
            Some(p) => Arc::clone(p),
            None => Arc::new(compile::compile(self)?),
        };
        FileDevice::new(program, seed)
    }
}
