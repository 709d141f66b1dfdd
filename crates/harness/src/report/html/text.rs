//! Small text helpers: durations, axis labels, clipped text, `data-seq` lists, names.

use std::fmt::Write as _;

use espsim_emulator::events::Side;

pub(super) fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `2s`, `2.5s`, `−1s`: an axis label.
pub(super) fn secs_short(ms: i64) -> String {
    let sign = if ms < 0 { "−" } else { "" };
    let abs = ms.unsigned_abs();
    if abs.is_multiple_of(1000) {
        format!("{sign}{}s", abs / 1000)
    } else {
        format!("{sign}{}s", abs as f64 / 1000.0)
    }
}

/// The first `max` characters of `text`, with `…` when cut.
pub(super) fn clip(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

pub(super) fn seq_list(seqs: impl IntoIterator<Item = u64>) -> String {
    let mut out = String::new();
    for s in seqs {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{s}");
    }
    out
}

pub(super) fn side(by: Side) -> &'static str {
    match by {
        Side::Client => "client",
        Side::Device => "device",
    }
}

pub(super) fn mode_name(mode: &impl serde::Serialize) -> String {
    serde_json::to_value(mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
