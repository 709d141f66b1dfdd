//! ESP-IDF's request-head parser (`http/parse.rs`) fed as a connection feeds it, in chunkings
//! the input picks. Input: byte 0 picks the profile, byte 1 the chunking (0 = always the most
//! the parser asks for, as a fast sender; else pseudo-random sizes), the rest is the stream.
//!
//! Checks: no panic; while it wants more it asks for 1..=128 bytes; it never takes more than
//! its two scratch buffers; a finished head is consistent (bytes past the head are exactly the
//! tail of what was fed); failures are ESP-IDF's statuses; and the chunking does not change
//! whether or which head is read.
#![no_main]

use espsim_emulator::fuzzing::{HEAD_BLOCK, HeadParser, HeadStep};
use espsim_emulator::profile::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: espsim_fuzz::catch_stack_overflows(), |data: &[u8]| {
    let [profile, chunking, stream @ ..] = data else {
        return;
    };
    let profile = Profile::ALL[usize::from(*profile) % Profile::ALL.len()];
    let (step, fed) = run(profile, stream, *chunking);
    let (whole, whole_fed) = run(profile, stream, 0);
    match (&step, &whole) {
        (HeadStep::Done(a), HeadStep::Done(b)) => {
            assert_eq!(a.head, b.head, "the chunking changed the head");
            assert_eq!(a.content_length, b.content_length);
            // Both read the same head; what each fed past it is its own tail.
            assert_eq!(fed - a.extra.len(), whole_fed - b.extra.len());
        }
        (HeadStep::Done(_), _) | (_, HeadStep::Done(_)) => {
            panic!("the chunking decided whether a head is read: {step:?} vs {whole:?}")
        }
        // Not checked: `More` in one chunking and a failure in the other. A request line that
        // is still incomplete can be judged early or late depending on where a read ends (the
        // version check reads the text after the line's last space); see `fuzz/README.md`.
        _ => {}
    }
});

/// Feeds `stream` in the sizes `chunking` picks (never more than `want()`); returns the last
/// step and how many bytes were fed.
fn run(profile: &Profile, stream: &[u8], chunking: u8) -> (HeadStep, usize) {
    let mut parser = HeadParser::new(profile);
    let mut rng = u32::from(chunking) | 0x100;
    let mut at = 0;
    loop {
        let want = parser.want();
        assert!(
            (1..=HEAD_BLOCK).contains(&want),
            "want() = {want} while reading"
        );
        if at == stream.len() {
            return (HeadStep::More, at);
        }
        let n = if chunking == 0 {
            want
        } else {
            // xorshift: reproducible sizes from the input's own byte.
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            1 + (rng as usize % want)
        }
        .min(stream.len() - at);
        let step = parser.feed(&stream[at..at + n]);
        at += n;
        assert!(
            at <= 2 * parser.scratch(),
            "took {at} bytes, more than two scratch buffers of {}",
            parser.scratch()
        );
        match step {
            HeadStep::More => {}
            HeadStep::Done(parsed) => {
                let head = &parsed.head;
                assert!(!head.method.is_empty() && !head.target.is_empty());
                assert!(head.minor_version <= 1, "{head:?}");
                assert!(parsed.extra.len() <= at);
                assert_eq!(&stream[at - parsed.extra.len()..at], &parsed.extra[..]);
                return (HeadStep::Done(parsed), at);
            }
            HeadStep::Fail(status) => {
                assert!([400, 414, 431, 505].contains(&status), "status {status}");
                return (step, at);
            }
        }
    }
}
