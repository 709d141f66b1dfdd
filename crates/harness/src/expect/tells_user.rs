//! `tells_user`: what the app shows the user, judged from what it prints.
//!
//! An app that cannot reach the device must say so ("Cannot reach the device: check that
//! Wi-Fi is on and connected to ESP32-…") instead of spinning forever. The runner records every
//! line the app command prints on stdout and stderr as an `app_output` event (bounded: see
//! [`crate::runner`]); this judge passes when a line matching `pattern` (a regular expression,
//! `(?i)` for case-insensitive) was printed within `within` of the run clock's start. Lines
//! printed before the clock started count as printed at its start.

use std::fmt;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Deserializer};

use super::eval::{Evidence, Judgement, SLACK_MS, fail, pass, secs};
use super::facts::Facts;

/// Event kinds a line's evidence is read from.
const OUTPUT: &[&str] = &["app_output"];
/// Compiled size limit of a pattern (the regex crate's unit: bytes of program), so a scenario
/// cannot make the judge build a huge automaton.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;
/// Lines quoted as evidence when nothing matched.
const QUOTED_LINES: usize = 3;

/// A regular expression for the user-facing message.
#[derive(Debug, Clone)]
pub struct MessagePattern(Regex);

impl MessagePattern {
    /// Compiles `pattern` (at most `PATTERN_SIZE_LIMIT` compiled).
    pub fn new(pattern: &str) -> Result<MessagePattern, String> {
        RegexBuilder::new(pattern)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map(MessagePattern)
            .map_err(|e| format!("invalid pattern `{pattern}`: {e}"))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether `line` contains a match.
    pub fn is_match(&self, line: &str) -> bool {
        self.0.is_match(line)
    }
}

impl PartialEq for MessagePattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Display for MessagePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessagePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        MessagePattern::new(&text).map_err(serde::de::Error::custom)
    }
}

/// One printed line: when (emulator ms), its event, the stream and the text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutputLine {
    pub(crate) at_ms: u64,
    pub(crate) seq: u64,
    pub(crate) stream: String,
    pub(crate) line: String,
}

/// Judges `tells_user: { pattern, within }` (`within` in ms).
pub(super) fn judge(f: &Facts, pattern: &MessagePattern, within: u64) -> Judgement {
    let lines = &f.output;
    let evidence = |l: &OutputLine, note: String| {
        let mut e = f.ev(OUTPUT, l.at_ms, None, note);
        e.events = vec![l.seq];
        e
    };
    let Some(hit) = lines.iter().find(|l| pattern.is_match(&l.line)) else {
        let quoted: Vec<Evidence> = lines
            .iter()
            .rev()
            .take(QUOTED_LINES)
            .rev()
            .map(|l| evidence(l, format!("{}: {}", l.stream, l.line)))
            .collect();
        let message = if lines.is_empty() {
            format!(
                "the app printed nothing; expected a line matching /{pattern}/ within {}",
                secs(within)
            )
        } else {
            format!(
                "no line of the {} the app printed matched /{pattern}/",
                plural(lines.len())
            )
        };
        return fail(message, quoted);
    };
    let at = f.on_clock(hit.at_ms);
    let note = format!("{}: {}", hit.stream, hit.line);
    if at <= within + SLACK_MS {
        pass(
            format!("told the user at {}: \"{}\"", secs(at), hit.line),
            vec![evidence(hit, note)],
        )
    } else {
        fail(
            format!(
                "told the user only at {}, after the {} deadline: \"{}\"",
                secs(at),
                secs(within),
                hit.line
            ),
            vec![evidence(hit, note)],
        )
    }
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 line".to_owned()
    } else {
        format!("{n} lines")
    }
}

#[cfg(test)]
mod tests {
    use espsim_emulator::events::{Event, EventKind};

    use super::*;

    fn event(seq: u64, at_ms: u64, kind: EventKind) -> Event {
        Event { seq, at_ms, kind }
    }

    fn line(seq: u64, at_ms: u64, text: &str) -> Event {
        event(
            seq,
            at_ms,
            EventKind::AppOutput {
                stream: "stdout".to_owned(),
                line: text.to_owned(),
                truncated: false,
            },
        )
    }

    fn log(lines: &[(u64, &str)]) -> Vec<Event> {
        let mut events = vec![event(
            0,
            1_000,
            EventKind::ClockStarted {
                reason: "first_probe".to_owned(),
            },
        )];
        for (i, (at, text)) in lines.iter().enumerate() {
            events.push(line(i as u64 + 1, *at, text));
        }
        events
    }

    fn pattern() -> MessagePattern {
        MessagePattern::new("(?i)cannot reach the device|check wi-?fi").expect("valid")
    }

    #[test]
    fn a_matching_line_in_time_passes_and_counts_from_the_clock() {
        let events = log(&[(2_000, "connecting…"), (9_500, "Cannot reach the device")]);
        let v = judge(&Facts::new(&events), &pattern(), 12_000);
        assert!(v.passed, "{}", v.message);
        assert_eq!(
            v.message,
            "told the user at 8.500s: \"Cannot reach the device\""
        );
        assert_eq!(v.evidence[0].events, vec![2]);
    }

    #[test]
    fn a_late_line_fails_with_its_time() {
        let events = log(&[(16_000, "Please check WiFi")]);
        let v = judge(&Facts::new(&events), &pattern(), 12_000);
        assert!(!v.passed);
        assert_eq!(
            v.message,
            "told the user only at 15.000s, after the 12.000s deadline: \"Please check WiFi\""
        );
    }

    #[test]
    fn silence_and_unrelated_lines_fail_quoting_the_last_lines() {
        let v = judge(&Facts::new(&log(&[])), &pattern(), 12_000);
        assert!(!v.passed);
        assert!(
            v.message.starts_with("the app printed nothing"),
            "{}",
            v.message
        );
        let events = log(&[
            (1_100, "a"),
            (1_200, "b"),
            (1_300, "Error: ETIMEDOUT"),
            (1_400, "retrying"),
        ]);
        let v = judge(&Facts::new(&events), &pattern(), 12_000);
        assert!(!v.passed);
        assert_eq!(
            v.message,
            "no line of the 4 lines the app printed matched /(?i)cannot reach the device|check wi-?fi/"
        );
        let quoted: Vec<&str> = v.evidence.iter().map(|e| e.note.as_str()).collect();
        assert_eq!(
            quoted,
            ["stdout: b", "stdout: Error: ETIMEDOUT", "stdout: retrying"]
        );
    }

    #[test]
    fn a_bad_pattern_is_refused_with_the_reason() {
        let err = MessagePattern::new("(unclosed").expect_err("invalid");
        assert!(err.starts_with("invalid pattern `(unclosed`:"), "{err}");
        let huge = format!("{}{{1000}}{{1000}}", "a");
        assert!(MessagePattern::new(&huge).is_err(), "over the size limit");
    }
}
