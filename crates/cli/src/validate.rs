//! `espsim validate FILE... [--device FILE]...`: parse and check scenario files and device
//! files without running them.
//!
//! Each file is parsed strictly and checked semantically ([`Scenario::load`], which also loads a
//! scenario's `device: { file: … }`; [`espsim_emulator::device_file::load`]): an `ok` line per
//! valid file, and every problem found in an invalid one, one `error:` line each (a YAML error
//! stops the parser, so a file with one shows that one; a device file stops at its first
//! problem). Exit 0 when every file is valid, 2 when any is invalid or cannot be read, or on bad
//! arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use espsim_harness::scenario::format_duration;
use espsim_harness::{Scenario, ScenarioError, YamlError};

/// Arguments of `espsim validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Scenario files to check.
    #[arg(required_unless_present = "devices", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A device file to check (as `espsim run --device FILE` would load it). Repeatable.
    #[arg(long = "device", value_name = "FILE")]
    devices: Vec<PathBuf>,
}

/// Checks every file (not stopping at the first bad one): `ok  FILE  (N faults, M
/// expectations, 20s)` on stdout, or one `error: FILE:L:C: …` / `error: FILE: …` line per
/// problem on stderr.
pub(crate) fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut all_valid = true;
    for path in &args.files {
        let valid = match Scenario::load(path) {
            Ok(s) => {
                println!(
                    "ok  {}  ({} {}, {} {}, {})",
                    path.display(),
                    s.faults.len(),
                    plural(s.faults.len(), "fault", "faults"),
                    s.expect.len(),
                    plural(s.expect.len(), "expectation", "expectations"),
                    format_duration(s.duration)
                );
                true
            }
            Err(ScenarioError::Yaml(YamlError::Read { path, source })) => {
                eprintln!("error: cannot read {}: {source}", path.display());
                false
            }
            Err(ScenarioError::Semantic(e)) => {
                for message in &e.messages {
                    eprintln!("error: {}: {message}", e.path.display());
                }
                false
            }
            Err(e) => {
                eprintln!("error: {e}");
                false
            }
        };
        all_valid &= valid;
    }
    for path in &args.devices {
        match espsim_emulator::device_file::load(path) {
            Ok(device) => {
                let paths: Vec<String> = device.endpoints().into_iter().map(|e| e.path).collect();
                println!(
                    "ok  {}  (device {}, WebSocket {} {})",
                    path.display(),
                    device.name(),
                    plural(paths.len(), "endpoint", "endpoints"),
                    paths.join(", ")
                );
            }
            Err(e) => {
                eprintln!("error: {e}");
                all_valid = false;
            }
        }
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
