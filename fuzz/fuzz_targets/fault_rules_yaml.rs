//! Fault rules as YAML (`POST /faults` with `Content-Type: application/yaml`, scenario files):
//! one rule or a list, parsed with the options the control API uses, validated, and run
//! through the fault plan (see `espsim_fuzz::exercise_rules`). Nothing may panic.
#![no_main]

use espsim_faults::FaultRule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: espsim_fuzz::catch_stack_overflows(), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parse_one = || {
        serde_saphyr::from_str_with_options::<FaultRule>(
            text,
            serde_saphyr::options! { strict_booleans: true },
        )
    };
    let parse_list = || {
        serde_saphyr::from_str_with_options::<Vec<FaultRule>>(
            text,
            serde_saphyr::options! { strict_booleans: true },
        )
    };
    let rules = match parse_one() {
        Ok(rule) => vec![rule],
        Err(_) => match parse_list() {
            Ok(rules) => rules,
            Err(_) => return,
        },
    };
    espsim_fuzz::exercise_rules(rules, data.len() as u64);
});
