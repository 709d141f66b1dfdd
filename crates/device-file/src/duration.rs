//! Durations as written in a device file: the workspace's strict grammar.
//!
//! The same grammar as `espsim_faults::duration::parse_strict_duration` (which this crate may not
//! depend on: device logic depends on the firmware and protocol crates only): parts of digits
//! immediately followed by a unit `ms`, `s`, `m` or `h` (`"250ms"`, `"5s"`, `"1m30s"`,
//! `"1h 30m"`), parts optionally separated by spaces. A space between a number and its unit, any
//! other unit, a fraction or a sign is refused with a hint; a bare `0` is zero. Written here in a
//! few lines rather than with `humantime`, whose grammar is wider (`2days`, `1hour`).

/// The hint every duration error ends with.
const HINT: &str =
    "write digits with a unit ms, s, m or h, e.g. \"500ms\", \"20s\", \"2m\", \"1h 30m\"";

/// Parses a duration into milliseconds.
pub(crate) fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let fail = |why: &str| Err(format!("invalid duration `{text}`: {why} ({HINT})"));
    let mut rest = text.trim();
    if rest.is_empty() {
        return fail("it is empty");
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return fail("expected a number");
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.len()
            - tail
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, tail) = tail.split_at(unit_len);
        let Ok(n) = number.parse::<u64>() else {
            return fail("the number is too large");
        };
        let factor = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "" if tail.starts_with(' ') => return fail("no space between a number and its unit"),
            "" if tail.is_empty() => return fail("a number needs a unit"),
            "" => return fail(&format!("unexpected `{}`", first_char(tail))),
            other => return fail(&format!("unknown unit `{other}`")),
        };
        let Some(sum) = n.checked_mul(factor).and_then(|p| total.checked_add(p)) else {
            return fail("it is too long");
        };
        total = sum;
        let next = tail.trim_start_matches(' ');
        if next.len() == tail.len()
            && !tail.is_empty()
            && !tail.starts_with(|c: char| c.is_ascii_digit())
        {
            return fail(&format!("unexpected `{}`", first_char(tail)));
        }
        rest = next;
    }
    Ok(total)
}

/// The first character of `s` (for messages).
fn first_char(s: &str) -> &str {
    s.char_indices()
        .nth(1)
        .map_or(s, |(end, _)| s.get(..end).unwrap_or(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strict_grammar_reads_milliseconds() {
        for (text, ms) in [
            ("250ms", 250),
            ("5s", 5000),
            ("1m30s", 90_000),
            ("1h 30m", 5_400_000),
        ] {
            assert_eq!(parse_duration_ms(text), Ok(ms), "{text}");
        }
        for bad in ["5 s", "1.5s", "2d", "20", "", "-1s", "1hour"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
