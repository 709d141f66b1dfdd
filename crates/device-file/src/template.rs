//! The minijinja environment a device renders its templates in, and its seeded functions.
//!
//! Every template of a file is compiled once into one [`Environment`] (named `t0`, `t1`, …);
//! a typed template (a JSON string that is exactly `{{ expr }}`) is compiled as
//! `{% set value = (expr) %}` and read back from the render's captured state, so the value keeps
//! its type. `random`, `walk` and `sine` draw from a [`Sim`] the device owns, seeded by the
//! caller: the same seed and the same sequence of calls give the same values.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64;

use crate::{MAX_TEMPLATE_OUTPUT, MAX_WALKS, TEMPLATE_FUEL, TEMPLATE_RECURSION};

/// The name the typed-template wrapper assigns its result to.
const TYPED_RESULT: &str = "value";

/// The random source and the random walks of one device.
#[derive(Debug)]
pub(crate) struct Sim {
    rng: Pcg64,
    walks: BTreeMap<String, f64>,
}

impl Sim {
    /// A source seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Sim {
        Sim {
            rng: Pcg64::seed_from_u64(seed),
            walks: BTreeMap::new(),
        }
    }

    /// Forgets the walks (a reboot); the random stream goes on.
    pub(crate) fn reset_walks(&mut self) {
        self.walks.clear();
    }

    /// A float in `0..1` with 53 random bits.
    fn unit(&mut self) -> f64 {
        // 53 bits fit an f64 mantissa exactly; the conversion is lossless.
        #[allow(clippy::cast_precision_loss)]
        let bits = (self.rng.next_u64() >> 11) as f64;
        bits / (1u64 << 53) as f64
    }
}

/// Locks the shared source; a poisoned lock still holds a usable value (nothing panics while
/// holding it, but no panic of ours should turn into another).
fn lock(sim: &Mutex<Sim>) -> std::sync::MutexGuard<'_, Sim> {
    sim.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new environment with the limits and functions set, and no templates yet.
pub(crate) fn environment(sim: Arc<Mutex<Sim>>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(TEMPLATE_RECURSION);
    // `msg.missing.deeper` is undefined rather than an error: messages come from apps under
    // test, whose shape the file cannot promise.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // Devices speak JSON, not Python: `true`, `null`, `{"a":1}` rather than `True`, `none`,
    // `{'a': 1}` when a non-string value is printed into text.
    env.set_formatter(|out, state, value| match value.kind() {
        ValueKind::Bool | ValueKind::None | ValueKind::Map | ValueKind::Seq => {
            let json = serde_json::to_string(value).map_err(|e| invalid(e.to_string()))?;
            out.write_str(&json).map_err(|e| invalid(e.to_string()))
        }
        _ => minijinja::escape_formatter(out, state, value),
    });

    let random_sim = Arc::clone(&sim);
    env.add_function(
        "random",
        move |lo: Value, hi: Value| -> Result<Value, Error> {
            random(&mut lock(&random_sim), &lo, &hi)
        },
    );
    let walk_sim = Arc::clone(&sim);
    env.add_function(
        "walk",
        move |name: String, lo: f64, hi: f64, step: f64| -> Result<f64, Error> {
            walk(&mut lock(&walk_sim), name, lo, hi, step)
        },
    );
    env.add_function("sine", sine);
    env
}

/// Wraps a single expression so rendering it captures its value.
pub(crate) fn typed_source(expr: &str) -> String {
    format!("{{% set {TYPED_RESULT} = ({expr}) %}}")
}

fn invalid(detail: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, detail)
}

fn random(sim: &mut Sim, lo: &Value, hi: &Value) -> Result<Value, Error> {
    if let (Some(lo), Some(hi)) = (
        lo.is_integer().then(|| lo.as_i64()).flatten(),
        hi.is_integer().then(|| hi.as_i64()).flatten(),
    ) {
        if lo > hi {
            return Err(invalid(format!("random({lo}, {hi}): lo is above hi")));
        }
        let span = u128::try_from(i128::from(hi) - i128::from(lo) + 1).unwrap_or(1);
        let offset = (u128::from(sim.rng.next_u64()) * span) >> 64;
        let value = i128::from(lo) + i128::try_from(offset).unwrap_or(0);
        return Ok(Value::from(i64::try_from(value).unwrap_or(lo)));
    }
    let lo = number(lo, "random")?;
    let hi = number(hi, "random")?;
    if lo > hi {
        return Err(invalid(format!("random({lo}, {hi}): lo is above hi")));
    }
    Ok(Value::from(lo + sim.unit() * (hi - lo)))
}

fn number(v: &Value, function: &str) -> Result<f64, Error> {
    let n = f64::try_from(v.clone())
        .map_err(|_| invalid(format!("{function}() takes numbers, not {v}")))?;
    if n.is_finite() {
        Ok(n)
    } else {
        Err(invalid(format!("{function}() takes finite numbers")))
    }
}

fn walk(sim: &mut Sim, name: String, lo: f64, hi: f64, step: f64) -> Result<f64, Error> {
    if !(lo.is_finite() && hi.is_finite() && step.is_finite()) || lo > hi || step < 0.0 {
        return Err(invalid(format!(
            "walk({name:?}, {lo}, {hi}, {step}): needs lo <= hi and step >= 0"
        )));
    }
    let delta = (sim.unit() * 2.0 - 1.0) * step;
    let known = sim.walks.len();
    let current = match sim.walks.get(&name) {
        Some(v) => *v,
        None if known >= MAX_WALKS => {
            return Err(invalid(format!("walk(): more than {MAX_WALKS} names")));
        }
        None => lo + (hi - lo) / 2.0,
    };
    let next = (current + delta).clamp(lo, hi);
    sim.walks.insert(name, next);
    Ok(next)
}

fn sine(state: &State<'_, '_>, period_ms: f64, lo: f64, hi: f64) -> Result<f64, Error> {
    if !(period_ms.is_finite() && period_ms > 0.0 && lo.is_finite() && hi.is_finite()) {
        return Err(invalid(format!(
            "sine({period_ms}, {lo}, {hi}): needs a positive period and finite bounds"
        )));
    }
    let uptime = state
        .lookup("uptime_ms")
        .and_then(|v| f64::try_from(v).ok())
        .unwrap_or(0.0);
    let phase = (uptime % period_ms) / period_ms;
    let wave = (phase * std::f64::consts::TAU).sin();
    Ok(lo + (hi - lo) * (0.5 + 0.5 * wave))
}

/// Renders template `name` to a string of at most [`MAX_TEMPLATE_OUTPUT`] bytes.
pub(crate) fn render(
    env: &Environment<'static>,
    name: &str,
    ctx: &Value,
) -> Result<String, String> {
    let template = env.get_template(name).map_err(|e| describe(&e))?;
    let out = template.render(ctx).map_err(|e| describe(&e))?;
    if out.len() > MAX_TEMPLATE_OUTPUT {
        return Err(format!(
            "the output is {} bytes, more than {MAX_TEMPLATE_OUTPUT}",
            out.len()
        ));
    }
    Ok(out)
}

/// Evaluates typed template `name` (see [`typed_source`]) to a JSON value.
pub(crate) fn eval(
    env: &Environment<'static>,
    name: &str,
    ctx: &Value,
) -> Result<serde_json::Value, String> {
    let json = eval_value(env, name, ctx)?;
    check_size(serde_json::to_string(&json).map_or(0, |s| s.len()))?;
    Ok(json)
}

/// Evaluates typed template `name` straight to its JSON text, as [`eval`] then
/// `serde_json::to_string` would, but serializing once (a reply's `"{{ msg.seq }}"` is rendered
/// for every message).
pub(crate) fn eval_text(
    env: &Environment<'static>,
    name: &str,
    ctx: &Value,
) -> Result<String, String> {
    let json = eval_value(env, name, ctx)?;
    let text = serde_json::to_string(&json).map_err(|e| e.to_string())?;
    check_size(text.len())?;
    Ok(text)
}

/// The value of typed template `name`, not yet size-checked.
fn eval_value(
    env: &Environment<'static>,
    name: &str,
    ctx: &Value,
) -> Result<serde_json::Value, String> {
    let template = env.get_template(name).map_err(|e| describe(&e))?;
    let captured = template.render_captured(ctx).map_err(|e| describe(&e))?;
    let value = captured
        .state()
        .lookup(TYPED_RESULT)
        .unwrap_or(Value::UNDEFINED);
    serde_json::to_value(&value).map_err(|e| e.to_string())
}

fn check_size(size: usize) -> Result<(), String> {
    if size > MAX_TEMPLATE_OUTPUT {
        return Err(format!(
            "the value is {size} bytes of JSON, more than {MAX_TEMPLATE_OUTPUT}"
        ));
    }
    Ok(())
}

/// A template error in one line: its kind and detail, without the template's internal name.
pub(crate) fn describe(e: &Error) -> String {
    match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    }
}
