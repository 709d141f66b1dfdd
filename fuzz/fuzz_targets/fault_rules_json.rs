//! Fault rules as JSON (`POST /faults`, `--fault`): one rule or a list, parsed, validated, and
//! run through the fault plan (see `espsim_fuzz::exercise_rules`). Nothing may panic.
#![no_main]

use espsim_faults::FaultRule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: espsim_fuzz::catch_stack_overflows(), |data: &[u8]| {
    let rules = match serde_json::from_slice::<FaultRule>(data) {
        Ok(rule) => vec![rule],
        Err(_) => match serde_json::from_slice::<Vec<FaultRule>>(data) {
            Ok(rules) => rules,
            Err(_) => return,
        },
    };
    espsim_fuzz::exercise_rules(rules, data.len() as u64);
});
