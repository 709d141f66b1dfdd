//! `heartbeat`: the app sends a heartbeat (a WebSocket ping frame, or an app message whose
//! `type` matches `message`) every `every` ± `tolerance` on every session.
//!
//! The heartbeat clock of a session starts at the first moment the app could have sent: the
//! `101` (`ws_opened`) plus the downstream delay of a `stream: latency` fault on that connection
//! (latency + jitter). The first heartbeat's arrival is moved back by the upstream delay (it
//! spent that long on the way). Gaps between heartbeats may vary by the upstream jitter twice
//! (each one travels with its own delay). A late first frame of any other kind moves nothing:
//! it cannot hide a missing heartbeat.

use super::Heartbeat;
use super::eval::{END, Judgement, PING, SLACK_MS, fail, pass, secs};
use super::facts::{Facts, ms};

/// `heartbeat { every, tolerance, message }`.
pub(super) fn judge(f: &Facts, h: &Heartbeat) -> Judgement {
    let every = ms(h.every);
    let tolerance = ms(h.tolerance.unwrap_or_default());
    let mut total = 0;
    let mut evidence = Vec::new();
    let mut longest_session = 0;
    let mut longest_gap = 0;
    for s in f.sessions() {
        let jitter = 2 * s.jitter_up_ms;
        let upper = every + tolerance + SLACK_MS + jitter;
        let lower = every.saturating_sub(tolerance + jitter);
        let opened = s.ws_opened_ms.unwrap_or_default();
        // The first moment the app could have sent: it saw the `101` this much later.
        let start = opened + s.delay_down_ms;
        let end = s.ended_ms().unwrap_or(f.end_ms);
        longest_session = longest_session.max(end.saturating_sub(opened));
        let beats = s.heartbeats(f.matcher(&h.message));
        total += beats.len();
        let mut prev = start;
        for (i, &hb) in beats.iter().enumerate() {
            // When the app sent it: the first one travelled for the upstream delay.
            let sent = if i == 0 {
                hb.saturating_sub(s.delay_up_ms).max(start)
            } else {
                hb
            };
            let gap = sent.saturating_sub(prev);
            if gap > upper {
                return fail(
                    format!(
                        "{} without a heartbeat on conn {} (until {})",
                        secs(gap),
                        s.id,
                        secs(hb)
                    ),
                    vec![
                        f.ev(
                            PING,
                            prev,
                            Some(s.id),
                            "last heartbeat, or the session's start",
                        ),
                        f.ev(PING, hb, Some(s.id), "next heartbeat").since(prev),
                    ],
                );
            }
            if i > 0 && gap < lower {
                return fail(
                    format!(
                        "heartbeats only {} apart on conn {} (expected every {} ± {})",
                        secs(gap),
                        s.id,
                        secs(every),
                        secs(tolerance)
                    ),
                    vec![
                        f.ev(PING, prev, Some(s.id), "heartbeat"),
                        f.ev(PING, hb, Some(s.id), "heartbeat").since(prev),
                    ],
                );
            }
            longest_gap = longest_gap.max(gap);
            prev = hb;
        }
        let tail = end.saturating_sub(prev);
        if tail > upper {
            return fail(
                format!(
                    "{} without a heartbeat on conn {} (from {} until the session ended at {})",
                    secs(tail),
                    s.id,
                    secs(prev),
                    secs(end)
                ),
                vec![
                    f.ev(
                        PING,
                        prev,
                        Some(s.id),
                        "last heartbeat, or the session's start",
                    ),
                    f.ev(END, end, Some(s.id), "session end").since(prev),
                ],
            );
        }
        longest_gap = longest_gap.max(tail);
        if let Some(&first) = beats.first() {
            let mut note = format!("{} heartbeat(s) on this session", beats.len());
            if s.delay_down_ms > 0 || s.delay_up_ms > 0 {
                note += &format!(
                    "; clock from {} (the 101 plus {} downstream latency), first heartbeat sent {} earlier than it arrived",
                    secs(start),
                    secs(s.delay_down_ms),
                    secs(s.delay_up_ms)
                );
            }
            evidence.push(f.ev(PING, first, Some(s.id), note));
        }
    }
    if total == 0 {
        return fail(
            format!(
                "no heartbeat seen (no ping frame, no `{}` message; longest session {})",
                h.message,
                secs(longest_session)
            ),
            evidence,
        );
    }
    pass(
        format!(
            "{total} heartbeat(s), longest gap {} (bound {})",
            secs(longest_gap),
            secs(every + tolerance)
        ),
        evidence,
    )
}
