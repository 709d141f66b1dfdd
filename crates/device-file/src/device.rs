//! [`FileDevice`]: a device file running as [`DeviceLogic`], sans-IO.
//!
//! It keeps the state variables, the open sessions, each rule's and route's match count, the
//! delayed sends (already rendered, released by [`DeviceLogic::on_tick`]) and the running
//! periodic messages (rendered when they fire). It never reads a clock: every time comes from
//! the host's `now_ms`.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use espsim_faults::message::json_equal;
use espsim_firmware::{
    ConnId, DeviceLogic, Effect, Frame, HttpRequest, HttpResponse, Payload, SessionStart, To,
};
use minijinja::{Environment, Value as MjValue};
use serde_json::{Map, Value};

use crate::compile::{
    self, Bin, Body, Close, JsonMatch, JsonT, JsonTest, Matcher, Program, Send, Text, TextMatch,
};
use crate::spec::{Scope, StartMode, Target};
use crate::template::{self, Sim};
use crate::{
    DeviceFileError, MAX_MESSAGE_BYTES, MAX_PENDING_SENDS, MAX_RENDER_ERRORS,
    MAX_RUNNING_PERIODICS, MAX_STATE_VALUE,
};

/// A device running a device file: the [`DeviceLogic`] the emulator hosts.
///
/// Made by [`crate::DeviceFile::device`]. Deterministic: the same seed and the same calls (with
/// the same `now_ms`) give the same effects, byte for byte.
#[derive(Debug)]
pub struct FileDevice {
    program: Arc<Program>,
    env: Environment<'static>,
    sim: Arc<Mutex<Sim>>,
    state: Map<String, Value>,
    /// `state` as the templates see it, rebuilt whenever `state` changes: converting the
    /// variables for every message's context cost more than rendering a small reply.
    state_value: minijinja::Value,
    boot_ms: u64,
    sessions: BTreeMap<ConnId, SessionInfo>,
    rule_counts: Vec<u64>,
    route_counts: Vec<u64>,
    pending: Vec<Pending>,
    running: Vec<Running>,
    next_order: u64,
    render_errors: VecDeque<String>,
    /// Render errors not yet handed to the host (`DeviceLogic::take_problems`).
    unreported: Vec<String>,
    /// The last text `label` parsed, and its parse: the host labels each message just before
    /// handing it to `on_message`, which takes the parse instead of parsing again. A lock (not a
    /// `RefCell`) because `label` takes `&self` and the device is shared between threads.
    labelled: Mutex<Option<(String, Option<Value>)>>,
}

/// What a session's upgrade request said (for `on_connect` templates).
#[derive(Debug, Default)]
struct SessionInfo {
    /// The endpoint it opened on.
    path: String,
    query: Map<String, Value>,
    headers: Map<String, Value>,
}

/// A delayed send, rendered when its rule ran.
#[derive(Debug)]
struct Pending {
    due: u64,
    order: u64,
    owner: ConnId,
    to: To,
    payload: Payload,
    label: String,
}

/// A running periodic message.
#[derive(Debug)]
struct Running {
    periodic: usize,
    /// The session it belongs to; `None` for broadcast scope.
    session: Option<ConnId>,
    due: u64,
    seq: u64,
    order: u64,
}

/// What one `on_tick` releases, in `(due, order)` order.
enum Due {
    Pending(Pending),
    Periodic(usize),
}

impl FileDevice {
    pub(crate) fn new(program: Arc<Program>, seed: u64) -> Result<FileDevice, DeviceFileError> {
        let sim = Arc::new(Mutex::new(Sim::new(seed)));
        let mut env = template::environment(Arc::clone(&sim));
        for (name, source) in &program.templates {
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|e| DeviceFileError::Invalid {
                    path: "<device>".into(),
                    line: None,
                    column: None,
                    message: format!("invalid template: {}", template::describe(&e)),
                    hint: None,
                })?;
        }
        let state: Map<String, Value> = program
            .state
            .iter()
            .map(|v| (v.name.clone(), v.initial.clone()))
            .collect();
        Ok(FileDevice {
            state_value: minijinja::Value::from_serialize(&state),
            rule_counts: vec![0; program.rules.len()],
            route_counts: vec![0; program.routes.len()],
            program,
            env,
            sim,
            state,
            boot_ms: 0,
            sessions: BTreeMap::new(),
            pending: Vec::new(),
            running: Vec::new(),
            next_order: 0,
            render_errors: VecDeque::new(),
            unreported: Vec::new(),
            labelled: Mutex::new(None),
        })
    }

    /// The state variables and their current values.
    pub fn state(&self) -> &Map<String, Value> {
        &self.state
    }

    /// Sets a declared state variable (a test or the host pokes the device).
    pub fn set_state(&mut self, key: &str, value: Value) -> Result<(), DeviceFileError> {
        if !self.state.contains_key(key) {
            return Err(DeviceFileError::UnknownStateVar {
                name: key.to_owned(),
                known: self.state.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        let size = serde_json::to_string(&value).map_or(0, |s| s.len());
        if size > MAX_STATE_VALUE {
            return Err(DeviceFileError::StateValueTooLarge {
                name: key.to_owned(),
                size,
            });
        }
        self.state.insert(key.to_owned(), value);
        self.state_value = minijinja::Value::from_serialize(&self.state);
        Ok(())
    }

    /// The latest run-time template errors (at most [`MAX_RENDER_ERRORS`], oldest first), each
    /// `label: what went wrong`. A message whose template fails is not sent.
    pub fn render_errors(&self) -> impl Iterator<Item = &str> {
        self.render_errors.iter().map(String::as_str)
    }

    fn record_error(&mut self, label: &str, error: &str) {
        if self.render_errors.len() >= MAX_RENDER_ERRORS {
            self.render_errors.pop_front();
        }
        let problem = format!("{label}: {error}");
        if self.unreported.len() < MAX_RENDER_ERRORS {
            self.unreported.push(problem.clone());
        }
        self.render_errors.push_back(problem);
    }

    fn order(&mut self) -> u64 {
        self.next_order += 1;
        self.next_order
    }

    /// The template context: `state`, `uptime_ms` and `extra` (later names win).
    ///
    /// Built from minijinja values directly: the state's is cached (`state_value`), each extra
    /// converted once by the caller, rather than cloning everything into one JSON map and
    /// converting that on every call.
    fn context(&self, now_ms: u64, extra: Vec<(&str, minijinja::Value)>) -> minijinja::Value {
        let uptime = minijinja::Value::from(now_ms.saturating_sub(self.boot_ms));
        [("state", self.state_value.clone()), ("uptime_ms", uptime)]
            .into_iter()
            .chain(extra)
            .collect()
    }

    fn write_json(
        &self,
        j: &JsonT,
        ctx: &minijinja::Value,
        out: &mut String,
    ) -> Result<(), String> {
        let text = |v: &Value| serde_json::to_string(v).map_err(|e| e.to_string());
        match j {
            JsonT::Literal(v) => out.push_str(&text(v)?),
            JsonT::Render(name) => {
                let s = template::render(&self.env, name, ctx)?;
                out.push_str(&text(&Value::String(s))?);
            }
            JsonT::Typed(name) => out.push_str(&template::eval_text(&self.env, name, ctx)?),
            JsonT::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_json(item, ctx, out)?;
                }
                out.push(']');
            }
            JsonT::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&text(&Value::String(key.clone()))?);
                    out.push(':');
                    self.write_json(value, ctx, out)?;
                }
                out.push('}');
            }
        }
        if out.len() > MAX_MESSAGE_BYTES {
            return Err(format!(
                "the message is more than {MAX_MESSAGE_BYTES} bytes"
            ));
        }
        Ok(())
    }

    fn eval_json(&self, j: &JsonT, ctx: &minijinja::Value) -> Result<Value, String> {
        Ok(match j {
            JsonT::Literal(v) => v.clone(),
            JsonT::Render(name) => Value::String(template::render(&self.env, name, ctx)?),
            JsonT::Typed(name) => template::eval(&self.env, name, ctx)?,
            JsonT::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.eval_json(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            JsonT::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.eval_json(v, ctx)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    fn text(&self, t: &Text, ctx: &minijinja::Value) -> Result<String, String> {
        match t {
            Text::Literal(s) => Ok(s.clone()),
            Text::Template(name) => template::render(&self.env, name, ctx),
        }
    }

    fn bytes(&self, b: &Bin, ctx: &minijinja::Value) -> Result<Vec<u8>, String> {
        match b {
            Bin::Literal(bytes) => Ok(bytes.clone()),
            Bin::Hex(name) => compile::decode_hex(&template::render(&self.env, name, ctx)?),
            Bin::Base64(name) => compile::decode_base64(&template::render(&self.env, name, ctx)?),
        }
    }

    fn payload(&self, body: &Body, ctx: &minijinja::Value) -> Result<Payload, String> {
        let payload = match body {
            Body::Json(j) => {
                let mut out = String::new();
                self.write_json(j, ctx, &mut out)?;
                Payload::Text(out)
            }
            Body::Text(t) => Payload::Text(self.text(t, ctx)?),
            Body::Binary(b) => Payload::Binary(self.bytes(b, ctx)?),
        };
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(format!(
                "the message is {} bytes, more than {MAX_MESSAGE_BYTES}",
                payload.len()
            ));
        }
        Ok(payload)
    }

    /// Renders `sends` for `sender` and either returns them or queues the delayed ones.
    fn emit(
        &mut self,
        sends: &[Send],
        sender: ConnId,
        ctx: &minijinja::Value,
        label: &str,
        now_ms: u64,
        out: &mut Vec<Effect>,
    ) {
        for send in sends {
            let payload = match self.payload(&send.body, ctx) {
                Ok(p) => p,
                Err(e) => {
                    self.record_error(label, &e);
                    continue;
                }
            };
            let to = match send.to {
                Target::Sender => To::Session(sender),
                Target::All => To::All,
                Target::Others => To::Others(sender),
            };
            if send.after_ms == 0 {
                out.push(Effect::Send {
                    to,
                    payload,
                    label: label.to_owned(),
                });
            } else if self.pending.len() >= MAX_PENDING_SENDS {
                self.record_error(
                    label,
                    &format!("more than {MAX_PENDING_SENDS} delayed messages wait; dropped"),
                );
            } else {
                let order = self.order();
                self.pending.push(Pending {
                    due: now_ms.saturating_add(send.after_ms),
                    order,
                    owner: sender,
                    to,
                    payload,
                    label: label.to_owned(),
                });
            }
        }
    }

    /// Applies `set` (rendered against the state before any of it).
    fn apply_set(&mut self, set: &[(usize, JsonT)], ctx: &minijinja::Value, label: &str) {
        let mut values = Vec::new();
        for (index, value) in set {
            let Some(var) = self.program.state.get(*index) else {
                continue;
            };
            match self.eval_json(value, ctx) {
                Ok(v) => values.push((var.name.clone(), v)),
                Err(e) => self.record_error(label, &format!("set {}: {e}", var.name)),
            }
        }
        for (name, value) in values {
            if let Err(e) = self.set_state(&name, value) {
                self.record_error(label, &e.to_string());
            }
        }
    }

    fn start(&mut self, periodic: usize, session: ConnId, now_ms: u64) {
        let Some(p) = self.program.periodics.get(periodic) else {
            return;
        };
        let owner = match p.scope {
            Scope::Session => Some(session),
            Scope::Broadcast => None,
        };
        let every = p.every_ms;
        let running = self
            .running
            .iter()
            .any(|r| r.periodic == periodic && r.session == owner);
        if running {
            return;
        }
        if self.running.len() >= MAX_RUNNING_PERIODICS {
            let name = p.name.clone();
            self.record_error(
                &name,
                &format!("more than {MAX_RUNNING_PERIODICS} periodic timers; not started"),
            );
            return;
        }
        let order = self.order();
        self.running.push(Running {
            periodic,
            session: owner,
            due: now_ms.saturating_add(every),
            seq: 0,
            order,
        });
    }

    fn stop(&mut self, periodic: usize, session: ConnId) {
        self.running.retain(|r| {
            r.periodic != periodic || (r.session.is_some() && r.session != Some(session))
        });
    }

    /// The endpoint `session` opened on (`""` for a session it does not know).
    fn path_of(&self, session: ConnId) -> &str {
        self.sessions.get(&session).map_or("", |s| s.path.as_str())
    }

    /// Forgets a session and everything it owns; a broadcast periodic ends with the last
    /// session it could reach.
    fn forget(&mut self, session: ConnId) {
        self.sessions.remove(&session);
        self.pending.retain(|p| p.owner != session);
        self.running.retain(|r| r.session != Some(session));
        let program = Arc::clone(&self.program);
        let sessions = &self.sessions;
        self.running.retain(|r| {
            let endpoint = program
                .periodics
                .get(r.periodic)
                .and_then(|p| p.endpoint.as_deref());
            r.session.is_some() || sessions.values().any(|s| serves(endpoint, &s.path))
        });
    }

    fn close(&mut self, session: ConnId, close: &Close, out: &mut Vec<Effect>) {
        self.forget(session);
        out.push(Effect::Close {
            session,
            code: close.code,
            reason: close.reason.clone(),
        });
    }

    fn fire(&mut self, index: usize, now_ms: u64, out: &mut Vec<Effect>) {
        let program = Arc::clone(&self.program);
        let Some(running) = self.running.get(index) else {
            return;
        };
        let Some(periodic) = program.periodics.get(running.periodic) else {
            return;
        };
        let (session, seq) = (running.session, running.seq);
        let ctx = self.context(
            now_ms,
            vec![
                ("session", session.map_or(MjValue::from(()), MjValue::from)),
                ("seq", MjValue::from(seq)),
            ],
        );
        // A broadcast to one endpoint goes to each session on it.
        let to: Vec<To> = match (session, &periodic.endpoint) {
            (Some(s), _) => vec![To::Session(s)],
            (None, None) => vec![To::All],
            (None, Some(path)) => self
                .sessions
                .iter()
                .filter(|(_, s)| s.path == *path)
                .map(|(id, _)| To::Session(*id))
                .collect(),
        };
        for send in &periodic.sends {
            match self.payload(&send.body, &ctx) {
                Ok(payload) => {
                    for to in &to {
                        out.push(Effect::Send {
                            to: *to,
                            payload: payload.clone(),
                            label: periodic.name.clone(),
                        });
                    }
                }
                Err(e) => self.record_error(&periodic.name, &e),
            }
        }
        if let Some(running) = self.running.get_mut(index) {
            running.seq += 1;
            let next = running.due.saturating_add(periodic.every_ms);
            running.due = if next > now_ms {
                next
            } else {
                now_ms.saturating_add(periodic.every_ms)
            };
        }
    }
}

/// Whether a rule or periodic message limited to `endpoint` applies on `path`.
fn serves(endpoint: Option<&str>, path: &str) -> bool {
    endpoint.is_none_or(|e| e == path)
}

/// `msg` for a text message.
fn text_msg(text: &str, captures: Vec<Value>) -> Value {
    serde_json::json!({ "text": text, "len": text.len(), "captures": captures })
}

/// `msg` for a binary message.
fn binary_msg(bytes: &[u8]) -> Value {
    serde_json::json!({
        "hex": hex::encode(bytes),
        "base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        "len": bytes.len(),
        "bytes": bytes,
    })
}

/// `doc.pointer(&c.pointer)`, with the tokens split at load.
fn lookup<'v>(doc: &'v Value, c: &JsonMatch) -> Option<&'v Value> {
    if c.pointer.is_empty() {
        return Some(doc);
    }
    if !c.pointer.starts_with('/') {
        return None;
    }
    c.tokens.iter().try_fold(doc, |target, token| match target {
        Value::Object(map) => map.get(token),
        Value::Array(list) => array_index(token).and_then(|i| list.get(i)),
        _ => None,
    })
}

/// An array index as RFC 6901 (and serde_json) read it: digits, no leading `+` or `0`.
fn array_index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

fn json_holds(conds: &[JsonMatch], doc: &Value) -> bool {
    conds.iter().all(|c| {
        let found = lookup(doc, c);
        match &c.test {
            JsonTest::Exists(want) => found.is_some() == *want,
            JsonTest::Equals(v) => found.is_some_and(|f| json_equal(f, v)),
            JsonTest::Glob(g) => found.and_then(Value::as_str).is_some_and(|s| g.is_match(s)),
            JsonTest::Regex(r) => found.and_then(Value::as_str).is_some_and(|s| r.is_match(s)),
        }
    })
}

fn binary_holds(bytes: &[u8], prefix: &[u8], min: Option<u64>, max: Option<u64>) -> bool {
    let len = bytes.len() as u64;
    bytes.starts_with(prefix) && min.is_none_or(|m| len >= m) && max.is_none_or(|m| len <= m)
}

/// A text test; on a match, the regex captures (whole match first) or none.
fn text_holds(t: &TextMatch, text: &str) -> Option<Vec<Value>> {
    match t {
        TextMatch::Exact(e) => (e == text).then(Vec::new),
        TextMatch::Glob(g) => g.is_match(text).then(Vec::new),
        TextMatch::Regex(r) => r.captures(text).map(|caps| {
            caps.iter()
                .map(|m| m.map_or(Value::Null, |m| Value::from(m.as_str())))
                .collect()
        }),
    }
}

/// Whether a message matches; on a match, the `msg` its templates see.
///
/// A parsed JSON message is lent, not cloned: `label` only asks whether a rule matches.
fn match_frame<'p>(
    matcher: Option<&Matcher>,
    frame: Frame<'_>,
    parsed: &'p Option<Value>,
) -> Option<Cow<'p, Value>> {
    match (matcher, frame) {
        (None, Frame::Text(text)) => Some(match parsed {
            Some(doc) => Cow::Borrowed(doc),
            None => Cow::Owned(text_msg(text, Vec::new())),
        }),
        (None, Frame::Binary(bytes)) => Some(Cow::Owned(binary_msg(bytes))),
        (Some(Matcher::Json(conds)), Frame::Text(_)) => parsed
            .as_ref()
            .filter(|doc| json_holds(conds, doc))
            .map(Cow::Borrowed),
        (Some(Matcher::Text(t)), Frame::Text(text)) => {
            text_holds(t, text).map(|caps| Cow::Owned(text_msg(text, caps)))
        }
        (
            Some(Matcher::Binary {
                prefix,
                min_len,
                max_len,
            }),
            Frame::Binary(bytes),
        ) => binary_holds(bytes, prefix, *min_len, *max_len).then(|| Cow::Owned(binary_msg(bytes))),
        _ => None,
    }
}

/// Whether an HTTP body matches.
fn body_holds(matcher: &Matcher, body: &[u8]) -> bool {
    match matcher {
        Matcher::Json(conds) => serde_json::from_slice::<Value>(body)
            .ok()
            .is_some_and(|doc| json_holds(conds, &doc)),
        Matcher::Text(t) => std::str::from_utf8(body)
            .ok()
            .and_then(|text| text_holds(t, text))
            .is_some(),
        Matcher::Binary {
            prefix,
            min_len,
            max_len,
        } => binary_holds(body, prefix, *min_len, *max_len),
    }
}

/// Decodes `%XX` and `+` (form and query encoding); invalid escapes stay as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, escaped) {
            (_, Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=two` as ordered pairs, decoded.
fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn to_map(pairs: Vec<(String, String)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

fn header_map(headers: &[(String, String)]) -> Map<String, Value> {
    headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .collect()
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl DeviceLogic for FileDevice {
    fn on_connect(
        &mut self,
        session: ConnId,
        start: &SessionStart<'_>,
        now_ms: u64,
    ) -> Vec<Effect> {
        let info = SessionInfo {
            path: start.path.to_owned(),
            query: to_map(form_pairs(start.query.unwrap_or_default())),
            headers: header_map(start.headers),
        };
        let ctx = self.context(
            now_ms,
            vec![
                ("session", MjValue::from(session)),
                ("query", MjValue::from_serialize(&info.query)),
                ("headers", MjValue::from_serialize(&info.headers)),
            ],
        );
        self.sessions.insert(session, info);
        let program = Arc::clone(&self.program);
        let mut out = Vec::new();
        if let Some(endpoint) = program.endpoints.iter().find(|e| e.path == start.path) {
            self.emit(
                &endpoint.on_connect,
                session,
                &ctx,
                "on_connect",
                now_ms,
                &mut out,
            );
        }
        for (index, periodic) in program.periodics.iter().enumerate() {
            if periodic.start == StartMode::OnConnect
                && serves(periodic.endpoint.as_deref(), start.path)
            {
                self.start(index, session, now_ms);
            }
        }
        out
    }

    /// The name of the first rule that matches, else `unmatched`.
    fn label(&self, session: ConnId, frame: Frame<'_>) -> Option<String> {
        let path = self.path_of(session);
        let parsed = match frame {
            Frame::Text(text) => serde_json::from_str::<Value>(text).ok(),
            Frame::Binary(_) => None,
        };
        let rule = self.program.rules.iter().find(|rule| {
            serves(rule.endpoint.as_deref(), path)
                && match_frame(rule.matcher.as_ref(), frame, &parsed).is_some()
        });
        let label = rule.map_or_else(|| "unmatched".to_owned(), |rule| rule.name.clone());
        if let Frame::Text(text) = frame {
            let mut labelled = self
                .labelled
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *labelled = Some((text.to_owned(), parsed));
        }
        Some(label)
    }

    fn on_message(&mut self, session: ConnId, frame: Frame<'_>, now_ms: u64) -> Vec<Effect> {
        let program = Arc::clone(&self.program);
        let labelled = self
            .labelled
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let parsed = match (frame, labelled) {
            (Frame::Text(text), Some((seen, parsed))) if seen == text => parsed,
            (Frame::Text(text), _) => serde_json::from_str::<Value>(text).ok(),
            (Frame::Binary(_), _) => None,
        };
        let mut out = Vec::new();
        let path = self.path_of(session).to_owned();
        for (index, rule) in program.rules.iter().enumerate() {
            if !serves(rule.endpoint.as_deref(), &path) {
                continue;
            }
            let Some(msg) = match_frame(rule.matcher.as_ref(), frame, &parsed) else {
                continue;
            };
            let count = self.rule_counts.get(index).copied().unwrap_or(0) + 1;
            if let Some(c) = self.rule_counts.get_mut(index) {
                *c = count;
            }
            let msg = MjValue::from_serialize(&*msg);
            let extra = || {
                vec![
                    ("msg", msg.clone()),
                    ("session", MjValue::from(session)),
                    ("count", MjValue::from(count)),
                ]
            };
            if !rule.set.is_empty() {
                let ctx = self.context(now_ms, extra());
                self.apply_set(&rule.set, &ctx, &rule.name);
            }
            let ctx = self.context(now_ms, extra());
            self.emit(&rule.sends, session, &ctx, &rule.name, now_ms, &mut out);
            if let Some(p) = rule.stop {
                self.stop(p, session);
            }
            if let Some(p) = rule.start {
                self.start(p, session, now_ms);
            }
            if let Some(close) = &rule.close {
                self.close(session, close, &mut out);
            }
            return out;
        }
        match &program.unmatched {
            compile::Unmatched::Ignore => {}
            compile::Unmatched::Reply(sends) => {
                let msg = match_frame(None, frame, &parsed)
                    .map_or_else(|| MjValue::from(()), |msg| MjValue::from_serialize(&*msg));
                let ctx = self.context(
                    now_ms,
                    vec![
                        ("msg", msg),
                        ("session", MjValue::from(session)),
                        ("count", MjValue::from(0)),
                    ],
                );
                self.emit(sends, session, &ctx, "unmatched", now_ms, &mut out);
            }
            compile::Unmatched::Close(close) => self.close(session, close, &mut out),
        }
        out
    }

    fn on_disconnect(&mut self, session: ConnId, _now_ms: u64) -> Vec<Effect> {
        self.forget(session);
        Vec::new()
    }

    fn on_tick(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut due: Vec<(u64, u64, Due)> = Vec::new();
        let (ready, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.due <= now_ms);
        self.pending = waiting;
        for p in ready {
            due.push((p.due, p.order, Due::Pending(p)));
        }
        for (index, r) in self.running.iter().enumerate() {
            if r.due <= now_ms {
                due.push((r.due, r.order, Due::Periodic(index)));
            }
        }
        due.sort_by_key(|(at, order, _)| (*at, *order));
        let mut out = Vec::new();
        for (_, _, item) in due {
            match item {
                Due::Pending(p) => out.push(Effect::Send {
                    to: p.to,
                    payload: p.payload,
                    label: p.label,
                }),
                Due::Periodic(index) => self.fire(index, now_ms, &mut out),
            }
        }
        out
    }

    fn next_deadline(&self) -> Option<u64> {
        let pending = self.pending.iter().map(|p| p.due);
        let running = self.running.iter().map(|r| r.due);
        pending.chain(running).min()
    }

    fn on_http(&mut self, request: &HttpRequest<'_>, now_ms: u64) -> Option<HttpResponse> {
        let program = Arc::clone(&self.program);
        let query = form_pairs(request.query.unwrap_or_default());
        let (index, route) = program.routes.iter().enumerate().find(|(_, route)| {
            route.method.eq_ignore_ascii_case(request.method)
                && route.path == request.path
                && route
                    .query
                    .iter()
                    .all(|(k, v)| query.iter().any(|(qk, qv)| qk == k && qv == v))
                && route
                    .headers
                    .iter()
                    .all(|(k, v)| header(request.headers, k) == Some(v.as_str()))
                && route
                    .body_match
                    .as_ref()
                    .is_none_or(|m| body_holds(m, request.body))
        })?;
        let count = self.route_counts.get(index).copied().unwrap_or(0) + 1;
        if let Some(c) = self.route_counts.get_mut(index) {
            *c = count;
        }
        let form = header(request.headers, "content-type")
            .is_some_and(|ct| ct.contains("application/x-www-form-urlencoded"));
        let body = match serde_json::from_slice::<Value>(request.body) {
            Ok(v) => v,
            Err(_) => {
                let text = String::from_utf8_lossy(request.body);
                if form {
                    Value::Object(to_map(form_pairs(&text)))
                } else {
                    Value::String(text.into_owned())
                }
            }
        };
        let extra = vec![
            ("body", MjValue::from_serialize(&body)),
            ("query", MjValue::from_serialize(to_map(query))),
            (
                "headers",
                MjValue::from_serialize(header_map(request.headers)),
            ),
            ("method", MjValue::from(request.method)),
            ("path", MjValue::from(request.path)),
            ("count", MjValue::from(count)),
        ];
        if !route.set.is_empty() {
            let ctx = self.context(now_ms, extra.clone());
            self.apply_set(&route.set, &ctx, &route.label);
        }
        let ctx = self.context(now_ms, extra);
        let rendered = (|| -> Result<HttpResponse, String> {
            let mut headers = Vec::new();
            for (name, value) in &route.response_headers {
                headers.push((name.clone(), self.text(value, &ctx)?));
            }
            let (content_type, body) = match &route.body {
                None => (None, Vec::new()),
                Some(body) => match self.payload(body, &ctx)? {
                    Payload::Text(t) => (
                        Some(if matches!(body, Body::Json(_)) {
                            "application/json"
                        } else {
                            "text/plain"
                        }),
                        t.into_bytes(),
                    ),
                    Payload::Binary(b) => (Some("application/octet-stream"), b),
                },
            };
            if let Some(ct) = content_type
                && header(&headers, "content-type").is_none()
            {
                headers.push(("Content-Type".to_owned(), ct.to_owned()));
            }
            Ok(HttpResponse {
                status: route.status,
                headers,
                body,
                label: route.label.clone(),
            })
        })();
        Some(match rendered {
            Ok(response) => response,
            Err(e) => {
                self.record_error(&route.label, &e);
                HttpResponse {
                    status: 500,
                    headers: vec![("Content-Type".to_owned(), "text/plain".to_owned())],
                    body: format!("device file template error in {}: {e}", route.label)
                        .into_bytes(),
                    label: route.label.clone(),
                }
            }
        })
    }

    fn take_problems(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unreported)
    }

    fn serves_http(&self) -> bool {
        !self.program.routes.is_empty()
    }

    fn state(&self) -> Option<BTreeMap<String, String>> {
        Some(
            FileDevice::state(self)
                .iter()
                .map(|(name, value)| (name.clone(), value.to_string()))
                .collect(),
        )
    }

    /// The value must be JSON text; a declared variable only, within [`MAX_STATE_VALUE`].
    fn set_state(&mut self, name: &str, json: &str, _now_ms: u64) -> Result<Vec<Effect>, String> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| format!("the value for `{name}` is not JSON: {e}"))?;
        FileDevice::set_state(self, name, value).map_err(|e| e.to_string())?;
        Ok(Vec::new())
    }

    fn power_on(&mut self, now_ms: u64) {
        for var in &self.program.state {
            if !var.persist {
                self.state.insert(var.name.clone(), var.initial.clone());
            }
        }
        self.state_value = MjValue::from_serialize(&self.state);
        self.sessions.clear();
        self.pending.clear();
        self.running.clear();
        self.rule_counts.iter_mut().for_each(|c| *c = 0);
        self.route_counts.iter_mut().for_each(|c| *c = 0);
        self.sim
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .reset_walks();
        self.boot_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::pointer_tokens;

    #[test]
    fn pointer_lookup_with_tokens_split_at_load_agrees_with_serde_json() {
        let doc = serde_json::json!({
            "a": { "b/c": [10, 11, { "~d": true }], "": 1, "0": "zero" },
            "list": [1, 2, 3],
        });
        for pointer in [
            "",
            "/",
            "/a",
            "/a/b~1c",
            "/a/b~1c/1",
            "/a/b~1c/2/~0d",
            "/a/b~1c/01",
            "/a/b~1c/+1",
            "/a/",
            "/a/0",
            "/list/0",
            "/list/3",
            "/list/-",
            "/missing/x",
            "/a~01",
            "a",
        ] {
            let c = JsonMatch {
                pointer: pointer.to_owned(),
                tokens: pointer_tokens(pointer),
                test: JsonTest::Exists(true),
            };
            assert_eq!(
                lookup(&doc, &c),
                doc.pointer(pointer),
                "pointer {pointer:?}"
            );
        }
    }
}
