//! Scenario files (`espsim test`, `espsim check`): YAML text through the real loader.
//!
//! Checks: no panic, whatever the text; a scenario that loads has a duration in (0, 1 h],
//! passes its own validation again, and its fault rules can run: every question the services
//! ask the fault plan, at every moment of a long run, is answered without a panic.
#![no_main]

use std::path::Path;

use espsim_harness::Scenario;
use espsim_harness::scenario::MAX_DURATION;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: espsim_fuzz::catch_stack_overflows(), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    let Ok(scenario) = Scenario::parse(text, path) else {
        return;
    };
    assert!(!scenario.duration.is_zero() && scenario.duration <= MAX_DURATION);
    assert_eq!(scenario.validate(path), Ok(()));
    espsim_fuzz::exercise_rules(scenario.faults, scenario.seed.unwrap_or_default());
});
