//! `espsim validate FILE...`: parse and check scenario files without running them.
//!
//! Each file is parsed strictly and checked semantically ([`Scenario::load`]); one line per
//! file. Exit 0 when every file is valid, 1 when any is invalid, 2 when a file cannot be read
//! (a wrong path is a usage error) or on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use espsim_harness::{Scenario, ScenarioError, YamlError};

/// Arguments of `espsim validate`.
#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Scenario files to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// What became of one file.
enum Outcome {
    Valid,
    Invalid,
    Unreadable,
}

/// Checks every file (not stopping at the first bad one) and prints one line each:
/// `ok  FILE  (N faults, M expectations, 20s)` on stdout, or `error: FILE:L:C: …` on stderr.
pub(crate) fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut worst = Outcome::Valid;
    for path in &args.files {
        let outcome = match Scenario::load(path) {
            Ok(s) => {
                println!(
                    "ok  {}  ({} {}, {} {}, {})",
                    path.display(),
                    s.faults.len(),
                    plural(s.faults.len(), "fault", "faults"),
                    s.expect.len(),
                    plural(s.expect.len(), "expectation", "expectations"),
                    humantime::format_duration(s.duration)
                );
                Outcome::Valid
            }
            Err(ScenarioError::Yaml(YamlError::Read { path, source })) => {
                eprintln!("error: cannot read {}: {source}", path.display());
                Outcome::Unreadable
            }
            Err(e) => {
                eprintln!("error: {e}");
                Outcome::Invalid
            }
        };
        worst = match (worst, outcome) {
            (Outcome::Unreadable, _) | (_, Outcome::Unreadable) => Outcome::Unreadable,
            (Outcome::Invalid, _) | (_, Outcome::Invalid) => Outcome::Invalid,
            _ => Outcome::Valid,
        };
    }
    Ok(match worst {
        Outcome::Valid => ExitCode::SUCCESS,
        Outcome::Invalid => ExitCode::from(1),
        Outcome::Unreadable => ExitCode::from(2),
    })
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
