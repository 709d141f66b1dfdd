//! A device process's stdout line checker on arbitrary bytes: never panics, a `send` that
//! passes is within the message limit, and a line over `MAX_LINE` is always garbage.
#![no_main]

use espsim_emulator::device_process::MAX_LINE;
use espsim_emulator::fuzzing::decode_process_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(init: espsim_fuzz::catch_stack_overflows(), |data: &[u8]| {
    let result = decode_process_line(data, 64);
    if let Err(why) = &result {
        assert!(!why.is_empty());
    }
    if data.len() > MAX_LINE {
        assert!(result.is_err());
    }
});
