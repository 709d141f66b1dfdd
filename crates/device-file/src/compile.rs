//! The checks serde cannot make, and the program a [`crate::FileDevice`] runs.
//!
//! [`compile`] walks the parsed [`DeviceFile`] once, in file order, and stops at the first
//! problem, naming the offending value's line and column: names, references (state variables,
//! periodics), bounds, patterns, hex and base64, JSON pointers, and every template (syntax, and
//! the variables it reads: a `state.x` the file does not declare is an error, not an empty
//! string at run time).

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use globset::{GlobBuilder, GlobMatcher};
use minijinja::Environment;
use regex::{Regex, RegexBuilder};
use serde_saphyr::{Location, Spanned};

use crate::spec::{
    BinaryCond, BinarySpec, CloseSpec, DeviceFile, JsonCond, MatchSpec, OneOrMany, OrderedMap,
    Scope, SendSpec, StartMode, Target, TextCond, Tree, UnmatchedSpec,
};
use crate::template::{self, Sim};
use crate::{
    DeviceFileError, MAX_BINARY_LEN, MAX_CLOSE_REASON, MAX_CONDITIONS, MAX_DELAY_MS, MAX_ENDPOINTS,
    MAX_INTERVAL_MS, MAX_NAME_LEN, MAX_PATTERN_LEN, MAX_PERIODICS, MAX_REGEX_SIZE, MAX_ROUTES,
    MAX_RULES, MAX_SENDS, MAX_STATE_VALUE, MAX_STATE_VARS, MAX_TEMPLATE_SOURCE, MIN_INTERVAL_MS,
};

/// A checked device file, ready to run.
#[derive(Debug)]
pub(crate) struct Program {
    /// Every template as (name, source), in the order they were compiled.
    pub(crate) templates: Vec<(String, String)>,
    pub(crate) state: Vec<StateVar>,
    /// The WebSocket endpoints (at least one).
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) unmatched: Unmatched,
    pub(crate) periodics: Vec<Periodic>,
    pub(crate) routes: Vec<Route>,
}

/// A WebSocket endpoint: its path and what a session opening there is sent.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) path: String,
    pub(crate) on_connect: Vec<Send>,
}

/// A state variable.
#[derive(Debug)]
pub(crate) struct StateVar {
    pub(crate) name: String,
    pub(crate) initial: serde_json::Value,
    pub(crate) persist: bool,
}

/// A string: literal or a template (by name).
#[derive(Debug)]
pub(crate) enum Text {
    Literal(String),
    Template(String),
}

/// A JSON value with templates in it.
#[derive(Debug)]
pub(crate) enum JsonT {
    /// A scalar without a template.
    Literal(serde_json::Value),
    /// A string with templates: renders to a string.
    Render(String),
    /// A string that is exactly `{{ expr }}`: keeps the expression's type.
    Typed(String),
    Array(Vec<JsonT>),
    Object(Vec<(String, JsonT)>),
}

/// Binary bytes: literal or a template decoded when sent.
#[derive(Debug)]
pub(crate) enum Bin {
    Literal(Vec<u8>),
    Hex(String),
    Base64(String),
}

/// What a message or an HTTP body is.
#[derive(Debug)]
pub(crate) enum Body {
    Json(JsonT),
    Text(Text),
    Binary(Bin),
}

/// One message to send.
#[derive(Debug)]
pub(crate) struct Send {
    pub(crate) body: Body,
    pub(crate) to: Target,
    pub(crate) after_ms: u64,
}

/// A message matcher.
#[derive(Debug)]
pub(crate) enum Matcher {
    Json(Vec<JsonMatch>),
    Text(TextMatch),
    Binary {
        prefix: Vec<u8>,
        min_len: Option<u64>,
        max_len: Option<u64>,
    },
}

/// One JSON condition.
#[derive(Debug)]
pub(crate) struct JsonMatch {
    pub(crate) pointer: String,
    /// `pointer`'s reference tokens, unescaped once here: `serde_json::Value::pointer` splits
    /// and unescapes (two `str::replace`) on every call, a sixth of a small rule's cost.
    pub(crate) tokens: Vec<String>,
    pub(crate) test: JsonTest,
}

/// The unescaped reference tokens of an RFC 6901 pointer, as `serde_json::Value::pointer`
/// reads them (none for the empty pointer).
pub(crate) fn pointer_tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The test of a JSON condition.
#[derive(Debug)]
pub(crate) enum JsonTest {
    Exists(bool),
    Equals(serde_json::Value),
    Glob(GlobMatcher),
    Regex(Regex),
}

/// A text test.
#[derive(Debug)]
pub(crate) enum TextMatch {
    Exact(String),
    Glob(GlobMatcher),
    Regex(Regex),
}

/// A close frame.
#[derive(Debug, Clone)]
pub(crate) struct Close {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

/// A rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: String,
    /// Only messages on this endpoint (its path); `None`: any.
    pub(crate) endpoint: Option<String>,
    pub(crate) matcher: Option<Matcher>,
    pub(crate) set: Vec<(usize, JsonT)>,
    pub(crate) sends: Vec<Send>,
    pub(crate) close: Option<Close>,
    pub(crate) start: Option<usize>,
    pub(crate) stop: Option<usize>,
}

/// The unmatched policy.
#[derive(Debug)]
pub(crate) enum Unmatched {
    Ignore,
    Reply(Vec<Send>),
    Close(Close),
}

/// A periodic message.
#[derive(Debug)]
pub(crate) struct Periodic {
    pub(crate) name: String,
    pub(crate) every_ms: u64,
    pub(crate) start: StartMode,
    pub(crate) scope: Scope,
    /// Only sessions on this endpoint (its path); `None`: any.
    pub(crate) endpoint: Option<String>,
    pub(crate) sends: Vec<Send>,
}

/// An HTTP route.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) label: String,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body_match: Option<Matcher>,
    pub(crate) status: u16,
    pub(crate) response_headers: Vec<(String, Text)>,
    pub(crate) body: Option<Body>,
    pub(crate) set: Vec<(usize, JsonT)>,
}

/// Where a template runs: which variables it may read.
#[derive(Debug, Clone, Copy)]
enum Ctx {
    Rule,
    OnConnect,
    Periodic,
    Http,
}

impl Ctx {
    fn variables(self) -> &'static [&'static str] {
        match self {
            Ctx::Rule => &["msg", "session", "count"],
            Ctx::OnConnect => &["session", "query", "headers"],
            Ctx::Periodic => &["session", "seq"],
            Ctx::Http => &["body", "query", "headers", "method", "path", "count"],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Ctx::Rule => "a rule",
            Ctx::OnConnect => "on_connect",
            Ctx::Periodic => "a periodic message",
            Ctx::Http => "an HTTP route",
        }
    }
}

/// Names every template may read besides its context's variables: the state, the uptime, our
/// functions and minijinja's global functions.
const COMMON_NAMES: &[&str] = &[
    "state",
    "uptime_ms",
    "random",
    "walk",
    "sine",
    "range",
    "dict",
    "namespace",
];

/// Checks `file` and compiles it.
pub(crate) fn compile(file: &DeviceFile) -> Result<Program, DeviceFileError> {
    compile_at(file, &file.path)
}

/// Checks `file` and compiles it, naming `path` in errors.
pub(crate) fn compile_at(file: &DeviceFile, path: &Path) -> Result<Program, DeviceFileError> {
    let mut c = Compiler {
        path,
        env: template::environment(Arc::new(Mutex::new(Sim::new(0)))),
        templates: Vec::new(),
        state_names: Vec::new(),
        periodic_names: Vec::new(),
    };
    c.name(&file.name, "the device name")?;

    c.endpoint_specs(file)?;

    let state = c.state(file)?;

    // Periodic names first: rules refer to them.
    if let Some(periodic) = &file.periodic {
        c.at_most(
            &periodic.referenced,
            periodic.value.0.len(),
            MAX_PERIODICS,
            "periodic messages",
            None,
        )?;
        for (name, _) in &periodic.value.0 {
            c.name(name, "a periodic message's name")?;
            c.periodic_names.push(name.value.clone());
        }
    }

    let mut endpoints = Vec::new();
    let specs = file
        .websocket
        .as_ref()
        .map(|w| &w.value.0[..])
        .unwrap_or_default();
    for spec in specs {
        endpoints.push(Endpoint {
            path: spec.value.path().to_owned(),
            on_connect: match &spec.value.on_connect {
                Some(sends) => c.sends(sends, Ctx::OnConnect, Target::Sender, true)?,
                None => Vec::new(),
            },
        });
    }
    if endpoints.is_empty() {
        endpoints.push(Endpoint {
            path: "/ws".to_owned(),
            on_connect: Vec::new(),
        });
    }
    let paths: Vec<&str> = endpoints.iter().map(|e| e.path.as_str()).collect();

    let mut rules = Vec::new();
    if let Some(specs) = &file.rules {
        c.at_most(
            &specs.referenced,
            specs.value.len(),
            MAX_RULES,
            "rules",
            Some("merge rules that differ only in a value with a `regex` or `glob` matcher"),
        )?;
        for spec in &specs.value {
            c.name(&spec.name, "a rule name")?;
            if let Some(first) = rules.iter().position(|r: &Rule| r.name == spec.name.value) {
                return Err(c.err(
                    &spec.name.referenced,
                    format!("duplicate rule name `{}`", spec.name.value),
                    Some(&format!(
                        "rule names label what a rule sends; rule {} already has this one",
                        first + 1
                    )),
                ));
            }
            let matcher = spec.matcher.as_ref().map(|m| c.matcher(m)).transpose()?;
            let set = c.set(spec.set.as_ref(), Ctx::Rule)?;
            let mut sends = Vec::new();
            if let Some(reply) = &spec.reply {
                sends.extend(c.sends(reply, Ctx::Rule, Target::Sender, true)?);
            }
            if let Some(broadcast) = &spec.broadcast {
                sends.extend(c.sends(broadcast, Ctx::Rule, Target::All, true)?);
            }
            let close = spec.close.as_ref().map(|cl| c.close(cl)).transpose()?;
            let start = spec.start.as_ref().map(|s| c.periodic_ref(s)).transpose()?;
            let stop = spec.stop.as_ref().map(|s| c.periodic_ref(s)).transpose()?;
            let endpoint = c.endpoint_ref(spec.endpoint.as_ref(), &paths)?;
            rules.push(Rule {
                name: spec.name.value.clone(),
                endpoint,
                matcher,
                set,
                sends,
                close,
                start,
                stop,
            });
        }
    }

    let unmatched = match &file.unmatched {
        None | Some(UnmatchedSpec::Ignore) => Unmatched::Ignore,
        Some(UnmatchedSpec::Reply(sends)) => {
            Unmatched::Reply(c.sends(sends, Ctx::Rule, Target::Sender, true)?)
        }
        Some(UnmatchedSpec::Close(close)) => Unmatched::Close(c.close(close)?),
    };

    let mut periodics = Vec::new();
    if let Some(periodic) = &file.periodic {
        for (name, spec) in &periodic.value.0 {
            let every = spec.every.value.0;
            if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&every) {
                return Err(c.err(
                    &spec.every.referenced,
                    format!("interval {every}ms is out of range"),
                    Some("a periodic message repeats every 10ms to 24h"),
                ));
            }
            periodics.push(Periodic {
                name: name.value.clone(),
                every_ms: every,
                start: spec
                    .start
                    .as_ref()
                    .map_or(StartMode::OnMessage, |s| s.value),
                scope: spec.scope.as_ref().map_or(Scope::Session, |s| s.value),
                endpoint: c.endpoint_ref(spec.endpoint.as_ref(), &paths)?,
                sends: c.sends(&spec.send, Ctx::Periodic, Target::Sender, false)?,
            });
        }
    }

    let routes = c.routes(file)?;

    Ok(Program {
        templates: c.templates,
        state,
        endpoints,
        rules,
        unmatched,
        periodics,
        routes,
    })
}

struct Compiler<'a> {
    path: &'a Path,
    env: Environment<'static>,
    templates: Vec<(String, String)>,
    state_names: Vec<String>,
    periodic_names: Vec<String>,
}

/// The position of `item`, or `outer`'s when serde could not record one.
fn at<'l, T>(item: &'l Spanned<T>, outer: &'l Location) -> &'l Location {
    if item.referenced.line() == 0 {
        outer
    } else {
        &item.referenced
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// The expression of a string that is exactly one `{{ expr }}`.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    let nested = ["{{", "}}", "{%", "%}", "{#", "#}"];
    if nested.iter().any(|n| inner.contains(n)) || inner.trim().is_empty() {
        return None;
    }
    Some(inner.trim())
}

/// Hex with optional whitespace between bytes.
pub(crate) fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&compact).map_err(|e| format!("invalid hex `{s}`: {e}"))
}

pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| {
            format!(
                "invalid base64 `{s}`: {}",
                e.to_string().trim_end_matches('.')
            )
        })
}

impl Compiler<'_> {
    fn err(&self, loc: &Location, message: String, hint: Option<&str>) -> DeviceFileError {
        let known = loc.line() != 0;
        DeviceFileError::Invalid {
            path: self.path.to_owned(),
            line: known.then(|| loc.line()),
            column: known.then(|| loc.column()),
            message,
            hint: hint.map(str::to_owned),
        }
    }

    fn name(&self, name: &Spanned<String>, what: &str) -> Result<(), DeviceFileError> {
        let n = &name.value;
        let ok_chars = n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if n.is_empty() || n.len() > MAX_NAME_LEN || !ok_chars {
            return Err(self.err(
                &name.referenced,
                format!("invalid {what} `{n}`"),
                Some("a name is 1 to 64 letters, digits, `_`, `-` or `.`"),
            ));
        }
        Ok(())
    }

    /// `count` entries of a list (`what`, e.g. "rules") are at most `max`: else an error at
    /// the list, `N what, more than MAX`.
    fn at_most(
        &self,
        list: &Location,
        count: usize,
        max: usize,
        what: &str,
        hint: Option<&str>,
    ) -> Result<(), DeviceFileError> {
        if count > max {
            return Err(self.err(list, format!("{count} {what}, more than {max}"), hint));
        }
        Ok(())
    }

    /// Checks the `websocket:` entries: at most [`MAX_ENDPOINTS`], each path valid and distinct,
    /// each subprotocol an HTTP token.
    fn endpoint_specs(&self, file: &DeviceFile) -> Result<(), DeviceFileError> {
        let Some(section) = &file.websocket else {
            return Ok(());
        };
        self.at_most(
            &section.referenced,
            section.value.0.len(),
            MAX_ENDPOINTS,
            "WebSocket endpoints",
            None,
        )?;
        let mut seen: Vec<&str> = Vec::new();
        for spec in &section.value.0 {
            let ws = &spec.value;
            if let Some(path) = &ws.path {
                self.url_path(path)?;
            }
            if seen.contains(&ws.path()) {
                return Err(self.err(
                    ws.path.as_ref().map_or(&spec.referenced, |p| &p.referenced),
                    format!("duplicate WebSocket endpoint `{}`", ws.path()),
                    Some("each entry of `websocket:` needs its own `path` (the default is /ws)"),
                ));
            }
            seen.push(ws.path());
            if let Some(sub) = &ws.subprotocol
                && (sub.value.is_empty() || !sub.value.bytes().all(is_token_byte))
            {
                return Err(self.err(
                    &sub.referenced,
                    format!("invalid subprotocol `{}`", sub.value),
                    Some("a subprotocol is an HTTP token: letters, digits and !#$%&'*+-.^_`|~"),
                ));
            }
        }
        Ok(())
    }

    /// A rule's or a periodic message's `endpoint:`, which must be one of `paths`.
    fn endpoint_ref(
        &self,
        endpoint: Option<&Spanned<String>>,
        paths: &[&str],
    ) -> Result<Option<String>, DeviceFileError> {
        let Some(e) = endpoint else {
            return Ok(None);
        };
        if paths.contains(&e.value.as_str()) {
            return Ok(Some(e.value.clone()));
        }
        Err(self.err(
            &e.referenced,
            format!("no WebSocket endpoint `{}`", e.value),
            Some(&format!("the endpoints are {}", paths.join(", "))),
        ))
    }

    fn url_path(&self, path: &Spanned<String>) -> Result<(), DeviceFileError> {
        let p = &path.value;
        if !p.starts_with('/') || p.len() > 256 || p.bytes().any(|b| b <= b' ' || b == b'?') {
            return Err(self.err(
                &path.referenced,
                format!("invalid path `{p}`"),
                Some("a path starts with `/` and has no spaces or query (match a query with `query:`)"),
            ));
        }
        Ok(())
    }

    fn state(&mut self, file: &DeviceFile) -> Result<Vec<StateVar>, DeviceFileError> {
        let Some(state) = &file.state else {
            return Ok(Vec::new());
        };
        self.at_most(
            &state.referenced,
            state.value.0.len(),
            MAX_STATE_VARS,
            "state variables",
            None,
        )?;
        let mut vars = Vec::new();
        for (name, value) in &state.value.0 {
            let n = &name.value;
            let identifier = n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !identifier || n.len() > MAX_NAME_LEN {
                return Err(self.err(
                    &name.referenced,
                    format!("invalid state variable name `{n}`"),
                    Some("templates read it as `state.NAME`: use letters, digits and `_`, not starting with a digit"),
                ));
            }
            let (initial, persist) = match &value.value {
                Tree::Object(entries)
                    if entries.len() == 2
                        && entries.iter().any(|(k, _)| k == "value")
                        && entries.iter().any(|(k, _)| k == "persist") =>
                {
                    let mut initial = serde_json::Value::Null;
                    let mut persist = false;
                    for (k, v) in entries {
                        match (k.as_str(), &v.value) {
                            ("value", tree) => initial = tree.to_json(),
                            ("persist", Tree::Bool(b)) => persist = *b,
                            _ => {
                                return Err(self.err(
                                    &v.referenced,
                                    "`persist` is true or false".to_owned(),
                                    None,
                                ));
                            }
                        }
                    }
                    (initial, persist)
                }
                tree => (tree.to_json(), false),
            };
            let size = serde_json::to_string(&initial).map_or(0, |s| s.len());
            if size > MAX_STATE_VALUE {
                return Err(self.err(
                    &value.referenced,
                    format!("the value is {size} bytes of JSON, more than {MAX_STATE_VALUE}"),
                    None,
                ));
            }
            self.state_names.push(n.clone());
            vars.push(StateVar {
                name: n.clone(),
                initial,
                persist,
            });
        }
        Ok(vars)
    }

    fn periodic_ref(&self, name: &Spanned<String>) -> Result<usize, DeviceFileError> {
        self.periodic_names
            .iter()
            .position(|p| *p == name.value)
            .ok_or_else(|| {
                let known = if self.periodic_names.is_empty() {
                    "the file has no `periodic:` section".to_owned()
                } else {
                    format!("declared: {}", self.periodic_names.join(", "))
                };
                self.err(
                    &name.referenced,
                    format!("unknown periodic message `{}`", name.value),
                    Some(&known),
                )
            })
    }

    /// Compiles one template, checking its syntax and the variables it reads.
    fn template(
        &mut self,
        source: &str,
        loc: &Location,
        ctx: Ctx,
        typed: bool,
    ) -> Result<String, DeviceFileError> {
        if source.len() > MAX_TEMPLATE_SOURCE {
            return Err(self.err(
                loc,
                format!(
                    "the template is {} bytes, more than {MAX_TEMPLATE_SOURCE}",
                    source.len()
                ),
                None,
            ));
        }
        let name = format!("t{}", self.templates.len());
        let compiled = if typed {
            // Check it as an expression first: the wrapper's errors would read oddly.
            if let Err(e) = self.env.compile_expression(source) {
                return Err(self.err(
                    loc,
                    format!("invalid template: {}", template::describe(&e)),
                    Some("see https://docs.rs/minijinja for the template syntax"),
                ));
            }
            template::typed_source(source)
        } else {
            source.to_owned()
        };
        if let Err(e) = self.env.add_template_owned(name.clone(), compiled.clone()) {
            return Err(self.err(
                loc,
                format!("invalid template: {}", template::describe(&e)),
                Some("see https://docs.rs/minijinja for the template syntax"),
            ));
        }
        let variables = match self.env.get_template(&name) {
            Ok(t) => t.undeclared_variables(true),
            Err(_) => Default::default(),
        };
        let mut variables: Vec<String> = variables.into_iter().collect();
        variables.sort();
        for variable in variables {
            let mut parts = variable.split('.');
            let top = parts.next().unwrap_or_default();
            if top == "state" {
                if let Some(var) = parts.next()
                    && !self.state_names.iter().any(|s| s == var)
                {
                    let known = if self.state_names.is_empty() {
                        "the file has no `state:` section".to_owned()
                    } else {
                        format!("declared: {}", self.state_names.join(", "))
                    };
                    return Err(self.err(
                        loc,
                        format!("unknown state variable `{var}` in a template"),
                        Some(&known),
                    ));
                }
            } else if !COMMON_NAMES.contains(&top) && !ctx.variables().contains(&top) {
                return Err(self.err(
                    loc,
                    format!(
                        "unknown variable `{top}` in a template of {}",
                        ctx.describe()
                    ),
                    Some(&format!(
                        "available here: {}, state, uptime_ms",
                        ctx.variables().join(", ")
                    )),
                ));
            }
        }
        self.templates.push((name.clone(), compiled));
        Ok(name)
    }

    fn text(&mut self, s: &Spanned<String>, ctx: Ctx) -> Result<Text, DeviceFileError> {
        if is_template(&s.value) {
            Ok(Text::Template(self.template(
                &s.value,
                &s.referenced,
                ctx,
                false,
            )?))
        } else {
            Ok(Text::Literal(s.value.clone()))
        }
    }

    fn json(&mut self, t: &Spanned<Tree>, ctx: Ctx) -> Result<JsonT, DeviceFileError> {
        Ok(match &t.value {
            Tree::String(s) if is_template(s) => match single_expression(s) {
                Some(expr) => JsonT::Typed(self.template(expr, &t.referenced, ctx, true)?),
                None => JsonT::Render(self.template(s, &t.referenced, ctx, false)?),
            },
            Tree::Array(items) => JsonT::Array(
                items
                    .iter()
                    .map(|i| self.json(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Tree::Object(entries) => JsonT::Object(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.json(v, ctx)?)))
                    .collect::<Result<_, DeviceFileError>>()?,
            ),
            scalar => JsonT::Literal(scalar.to_json()),
        })
    }

    fn binary(&mut self, b: &Spanned<BinarySpec>, ctx: Ctx) -> Result<Bin, DeviceFileError> {
        match (&b.value.hex, &b.value.base64) {
            (Some(h), None) if is_template(&h.value) => Ok(Bin::Hex(self.template(
                &h.value,
                &h.referenced,
                ctx,
                false,
            )?)),
            (Some(h), None) => self.literal_bytes(h, decode_hex),
            (None, Some(s)) if is_template(&s.value) => Ok(Bin::Base64(self.template(
                &s.value,
                &s.referenced,
                ctx,
                false,
            )?)),
            (None, Some(s)) => self.literal_bytes(s, decode_base64),
            _ => Err(self.err(
                &b.referenced,
                "`binary` needs exactly one of `hex` or `base64`".to_owned(),
                None,
            )),
        }
    }

    fn literal_bytes(
        &self,
        s: &Spanned<String>,
        decode: fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Bin, DeviceFileError> {
        let bytes = decode(&s.value).map_err(|m| self.err(&s.referenced, m, None))?;
        if bytes.len() as u64 > MAX_BINARY_LEN {
            return Err(self.err(
                &s.referenced,
                format!("{} bytes, more than {MAX_BINARY_LEN}", bytes.len()),
                None,
            ));
        }
        Ok(Bin::Literal(bytes))
    }

    fn sends(
        &mut self,
        specs: &Spanned<OneOrMany<SendSpec>>,
        ctx: Ctx,
        default_to: Target,
        routable: bool,
    ) -> Result<Vec<Send>, DeviceFileError> {
        self.at_most(
            &specs.referenced,
            specs.value.0.len(),
            MAX_SENDS,
            "messages",
            None,
        )?;
        let mut sends = Vec::new();
        for spec in &specs.value.0 {
            let loc = at(spec, &specs.referenced);
            let s = &spec.value;
            let body = match (&s.json, &s.text, &s.binary) {
                (Some(j), None, None) => Body::Json(self.json(j, ctx)?),
                (None, Some(t), None) => Body::Text(self.text(t, ctx)?),
                (None, None, Some(b)) => Body::Binary(self.binary(b, ctx)?),
                _ => {
                    return Err(self.err(
                        loc,
                        "a message needs exactly one of `json`, `text` or `binary`".to_owned(),
                        None,
                    ));
                }
            };
            if !routable {
                if let Some(to) = &s.to {
                    return Err(self.err(
                        &to.referenced,
                        "a periodic message has no `to:`".to_owned(),
                        Some("its `scope:` (session or broadcast) says who gets it"),
                    ));
                }
                if let Some(after) = &s.after {
                    return Err(self.err(
                        &after.referenced,
                        "a periodic message has no `after:`".to_owned(),
                        Some("its `every:` says when it is sent"),
                    ));
                }
            }
            let after_ms = match &s.after {
                Some(after) if after.value.0 > MAX_DELAY_MS => {
                    return Err(self.err(
                        &after.referenced,
                        format!("delay {}ms is more than 1h", after.value.0),
                        Some("a delayed message waits at most 1h"),
                    ));
                }
                Some(after) => after.value.0,
                None => 0,
            };
            sends.push(Send {
                body,
                to: s.to.as_ref().map_or(default_to, |t| t.value),
                after_ms,
            });
        }
        Ok(sends)
    }

    fn close(&self, close: &Spanned<CloseSpec>) -> Result<Close, DeviceFileError> {
        let CloseSpec { code, reason } = &close.value;
        let c = code.value;
        let allowed = (1000..=4999).contains(&c)
            && !(1004..=1006).contains(&c)
            && c != 1015
            && !(1016..=2999).contains(&c);
        let Some(code_u16) = u16::try_from(c).ok().filter(|_| allowed) else {
            return Err(self.err(
                &code.referenced,
                format!("close code {c} cannot be sent"),
                Some("use 1000–1003, 1007–1014 or 3000–4999 (1004–1006 and 1015 are never sent, 1016–2999 are reserved)"),
            ));
        };
        let reason_text = reason.as_ref().map_or(String::new(), |r| r.value.clone());
        if let Some(r) = reason
            && r.value.len() > MAX_CLOSE_REASON
        {
            return Err(self.err(
                &r.referenced,
                format!(
                    "close reason is {} bytes, more than {MAX_CLOSE_REASON}",
                    r.value.len()
                ),
                Some("a close frame carries at most 125 bytes, the code included"),
            ));
        }
        Ok(Close {
            code: code_u16,
            reason: reason_text,
        })
    }

    fn set(
        &mut self,
        set: Option<&OrderedMap<Spanned<Tree>>>,
        ctx: Ctx,
    ) -> Result<Vec<(usize, JsonT)>, DeviceFileError> {
        let Some(set) = set else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, value) in &set.0 {
            let Some(index) = self.state_names.iter().position(|s| *s == name.value) else {
                let known = if self.state_names.is_empty() {
                    "declare it under `state:` with its initial value".to_owned()
                } else {
                    format!(
                        "declared: {}; declare new ones under `state:`",
                        self.state_names.join(", ")
                    )
                };
                return Err(self.err(
                    &name.referenced,
                    format!("`set` names unknown state variable `{}`", name.value),
                    Some(&known),
                ));
            };
            out.push((index, self.json(value, ctx)?));
        }
        Ok(out)
    }

    fn pattern_len(&self, p: &Spanned<String>) -> Result<(), DeviceFileError> {
        if p.value.len() > MAX_PATTERN_LEN {
            return Err(self.err(
                &p.referenced,
                format!(
                    "the pattern is {} bytes, more than {MAX_PATTERN_LEN}",
                    p.value.len()
                ),
                None,
            ));
        }
        Ok(())
    }

    fn regex(&self, p: &Spanned<String>) -> Result<Regex, DeviceFileError> {
        self.pattern_len(p)?;
        RegexBuilder::new(&p.value)
            .size_limit(MAX_REGEX_SIZE)
            .build()
            .map_err(|e| {
                let detail = e.to_string();
                let last = detail.lines().last().unwrap_or_default().trim();
                let last = last.strip_prefix("error: ").unwrap_or(last);
                self.err(
                    &p.referenced,
                    format!("invalid regex `{}`: {last}", p.value),
                    Some("the syntax is Rust's `regex` crate: https://docs.rs/regex"),
                )
            })
    }

    /// A glob over whole strings (`*` matches `/` too). `globset` (ripgrep's matcher, actively
    /// maintained) rather than `wildmatch`: it has classes and `{a,b}` alternatives, and its
    /// syntax errors say what is wrong.
    fn glob(&self, p: &Spanned<String>) -> Result<GlobMatcher, DeviceFileError> {
        self.pattern_len(p)?;
        GlobBuilder::new(&p.value)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map(|g| g.compile_matcher())
            .map_err(|e| {
                self.err(
                    &p.referenced,
                    format!("invalid glob: {e}"),
                    Some("`*` any text, `?` one character, `[abc]` a class, `{a,b}` alternatives"),
                )
            })
    }

    fn matcher(&self, m: &Spanned<MatchSpec>) -> Result<Matcher, DeviceFileError> {
        let MatchSpec { json, text, binary } = &m.value;
        match (json, text, binary) {
            (Some(conds), None, None) => {
                self.at_most(
                    &conds.referenced,
                    conds.value.0.len(),
                    MAX_CONDITIONS,
                    "conditions",
                    None,
                )?;
                let mut out = Vec::new();
                for cond in &conds.value.0 {
                    out.push(self.json_cond(cond, &conds.referenced)?);
                }
                Ok(Matcher::Json(out))
            }
            (None, Some(t), None) => Ok(Matcher::Text(self.text_cond(t)?)),
            (None, None, Some(b)) => self.binary_cond(b),
            _ => Err(self.err(
                &m.referenced,
                "a matcher needs exactly one of `json`, `text` or `binary`".to_owned(),
                None,
            )),
        }
    }

    fn json_cond(
        &self,
        cond: &Spanned<JsonCond>,
        outer: &Location,
    ) -> Result<JsonMatch, DeviceFileError> {
        let loc = at(cond, outer);
        let JsonCond {
            pointer,
            equals,
            glob,
            regex,
            exists,
        } = &cond.value;
        let pointer_text = match pointer {
            Some(p) => {
                let valid_escapes = {
                    let mut chars = p.value.chars().peekable();
                    let mut ok = true;
                    while let Some(ch) = chars.next() {
                        if ch == '~' && !matches!(chars.next(), Some('0' | '1')) {
                            ok = false;
                        }
                    }
                    ok
                };
                if !(p.value.is_empty() || p.value.starts_with('/')) || !valid_escapes {
                    return Err(self.err(
                        &p.referenced,
                        format!("invalid JSON pointer `{}`", p.value),
                        Some("a JSON pointer (RFC 6901) is empty or starts with `/`, e.g. `/cmd` or `/data/0/id`; `~` is written `~0`, `/` in a key `~1`"),
                    ));
                }
                p.value.clone()
            }
            None => String::new(),
        };
        let tests = usize::from(equals.is_some())
            + usize::from(glob.is_some())
            + usize::from(regex.is_some())
            + usize::from(exists.is_some());
        if tests > 1 {
            return Err(self.err(
                loc,
                "a JSON condition has at most one of `equals`, `glob`, `regex`, `exists`"
                    .to_owned(),
                Some("write a list of conditions to test several things"),
            ));
        }
        let test = if let Some(e) = equals {
            JsonTest::Equals(e.value.to_json())
        } else if let Some(g) = glob {
            JsonTest::Glob(self.glob(g)?)
        } else if let Some(r) = regex {
            JsonTest::Regex(self.regex(r)?)
        } else if let Some(e) = exists {
            JsonTest::Exists(e.value)
        } else {
            JsonTest::Exists(true)
        };
        Ok(JsonMatch {
            tokens: pointer_tokens(&pointer_text),
            pointer: pointer_text,
            test,
        })
    }

    fn text_cond(&self, t: &Spanned<TextCond>) -> Result<TextMatch, DeviceFileError> {
        match (&t.value.exact, &t.value.glob, &t.value.regex) {
            (Some(e), None, None) => Ok(TextMatch::Exact(e.value.clone())),
            (None, Some(g), None) => Ok(TextMatch::Glob(self.glob(g)?)),
            (None, None, Some(r)) => Ok(TextMatch::Regex(self.regex(r)?)),
            _ => Err(self.err(
                &t.referenced,
                "a text matcher needs exactly one of `exact`, `glob` or `regex`".to_owned(),
                None,
            )),
        }
    }

    fn binary_cond(&self, b: &Spanned<BinaryCond>) -> Result<Matcher, DeviceFileError> {
        let BinaryCond {
            prefix,
            min_len,
            max_len,
        } = &b.value;
        let prefix = match prefix {
            Some(p) => decode_hex(&p.value).map_err(|m| {
                self.err(
                    &p.referenced,
                    m,
                    Some("write bytes as hex digits, optionally separated by spaces: \"a5 01\""),
                )
            })?,
            None => Vec::new(),
        };
        for len in [min_len, max_len].into_iter().flatten() {
            if len.value > MAX_BINARY_LEN {
                return Err(self.err(
                    &len.referenced,
                    format!("length {} is more than {MAX_BINARY_LEN}", len.value),
                    None,
                ));
            }
        }
        if let (Some(min), Some(max)) = (min_len, max_len)
            && min.value > max.value
        {
            return Err(self.err(
                &max.referenced,
                format!("max_len {} is below min_len {}", max.value, min.value),
                None,
            ));
        }
        if let Some(max) = max_len
            && (prefix.len() as u64) > max.value
        {
            return Err(self.err(
                &max.referenced,
                format!(
                    "max_len {} is shorter than the {}-byte prefix",
                    max.value,
                    prefix.len()
                ),
                None,
            ));
        }
        Ok(Matcher::Binary {
            prefix,
            min_len: min_len.as_ref().map(|l| l.value),
            max_len: max_len.as_ref().map(|l| l.value),
        })
    }

    fn routes(&mut self, file: &DeviceFile) -> Result<Vec<Route>, DeviceFileError> {
        let Some(specs) = &file.http else {
            return Ok(Vec::new());
        };
        self.at_most(
            &specs.referenced,
            specs.value.len(),
            MAX_ROUTES,
            "routes",
            None,
        )?;
        let mut routes = Vec::new();
        for spec in &specs.value {
            let method = &spec.method;
            if method.value.is_empty()
                || method.value.len() > 16
                || !method.value.bytes().all(|b| b.is_ascii_uppercase())
            {
                return Err(self.err(
                    &method.referenced,
                    format!("invalid HTTP method `{}`", method.value),
                    Some("write it in upper case: GET, POST, PUT, DELETE, …"),
                ));
            }
            self.url_path(&spec.path)?;
            if let Some(name) = &spec.name {
                self.name(name, "a route name")?;
            }
            let label = spec.name.as_ref().map_or_else(
                || format!("{} {}", method.value, spec.path.value),
                |n| n.value.clone(),
            );
            let status = match &spec.status {
                Some(s) => match u16::try_from(s.value)
                    .ok()
                    .filter(|s| (100..=599).contains(s))
                {
                    Some(s) => s,
                    None => {
                        return Err(self.err(
                            &s.referenced,
                            format!("HTTP status {} is out of range", s.value),
                            Some("a status is 100–599"),
                        ));
                    }
                },
                None => 200,
            };
            let pairs = |map: &Option<OrderedMap<Spanned<String>>>| -> Vec<(String, String)> {
                map.as_ref().map_or_else(Vec::new, |m| {
                    m.0.iter()
                        .map(|(k, v)| (k.value.clone(), v.value.clone()))
                        .collect()
                })
            };
            for map in [&spec.headers, &spec.response_headers]
                .into_iter()
                .flatten()
            {
                for (k, v) in &map.0 {
                    if k.value.is_empty() || !k.value.bytes().all(is_token_byte) {
                        return Err(self.err(
                            &k.referenced,
                            format!("invalid header name `{}`", k.value),
                            None,
                        ));
                    }
                    if v.value.contains(['\r', '\n']) {
                        return Err(self.err(
                            &v.referenced,
                            "a header value has no line breaks".to_owned(),
                            None,
                        ));
                    }
                }
            }
            let mut response_headers = Vec::new();
            if let Some(map) = &spec.response_headers {
                for (k, v) in &map.0 {
                    response_headers.push((k.value.clone(), self.text(v, Ctx::Http)?));
                }
            }
            let body_match = spec.body.as_ref().map(|m| self.matcher(m)).transpose()?;
            let set = self.set(spec.set.as_ref(), Ctx::Http)?;
            let body = match (&spec.json, &spec.text, &spec.binary) {
                (None, None, None) => None,
                (Some(j), None, None) => Some(Body::Json(self.json(j, Ctx::Http)?)),
                (None, Some(t), None) => Some(Body::Text(self.text(t, Ctx::Http)?)),
                (None, None, Some(b)) => Some(Body::Binary(self.binary(b, Ctx::Http)?)),
                _ => {
                    return Err(self.err(
                        &method.referenced,
                        "a route answers with at most one of `json`, `text` or `binary`".to_owned(),
                        None,
                    ));
                }
            };
            routes.push(Route {
                label,
                method: method.value.clone(),
                path: spec.path.value.clone(),
                query: pairs(&spec.query),
                headers: pairs(&spec.headers),
                body_match,
                status,
                response_headers,
                body,
                set,
            });
        }
        Ok(routes)
    }
}
