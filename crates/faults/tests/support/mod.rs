//! What the fault crate's integration tests share. Each test binary includes it with
//! `mod support;`.

#![allow(dead_code, unreachable_pub)]

use espsim_faults::{Applied, Fault, RuleId, StreamFaults};

/// The stream faults in `v` (a JSON list of faults as a user writes them, not validated),
/// applied as rule 1 with `seed`, as the emulator hands them to a connection. Any fault
/// that is not a stream fault fails the test.
pub fn stream_faults(v: serde_json::Value, seed: u64) -> StreamFaults {
    let list: Vec<Fault> = serde_json::from_value(v).expect("faults parse (unvalidated)");
    StreamFaults {
        faults: list
            .into_iter()
            .map(|f| match f {
                Fault::Stream(s) => Applied {
                    rule: RuleId(1),
                    fault: s,
                    until: None,
                },
                other => panic!("not a stream fault: {other:?}"),
            })
            .collect(),
        seed,
    }
}
