//! Client checks as tests of their own, so that `cargo test` counts what ran and what skipped.
//!
//! libtest decides `#[ignore]` at compile time and has no way for a test to say "skipped" at
//! run time: a test that returns early because a client is missing shows as `ok`, and its
//! message is captured and never shown. So the clients suite (`tests/tests/clients.rs`) is a
//! `harness = false` test whose `main` calls [`run`]: every (scenario, client) pair is one
//! [libtest-mimic](https://docs.rs/libtest-mimic) trial named `scenario::client`, a missing
//! client makes its trials `ignored (reason)` (decided at run time, as each check starts), and
//! after libtest's own `test result:` line one more line counts the checks that ran and the
//! ones that skipped, naming the missing clients. The counts come from this process's own run (filters,
//! `--test-threads` and `--list` behave as with libtest), so they are right however the binary
//! is started: by `cargo test --workspace`, alone, or with a filter.
//!
//! With `ESPSIM_REQUIRE_CLIENTS=1` a check whose client is missing is not ignored but fails,
//! with the client and the reason in its failure message.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use libtest_mimic::{Arguments, Completion, Conclusion, Trial};

use crate::{REQUIRE_CLIENTS, clients_required};

/// One check: a scenario run with one client. Built by the suite, run by [`run`].
pub struct ClientCheck {
    scenario: &'static str,
    client: &'static str,
    /// What `missing` is about: the client, unless [`ClientCheck::needing`] says otherwise.
    requirement: &'static str,
    missing: Option<String>,
    body: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for ClientCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCheck")
            .field("scenario", &self.scenario)
            .field("client", &self.client)
            .field("requirement", &self.requirement)
            .field("missing", &self.missing)
            .finish_non_exhaustive()
    }
}

impl ClientCheck {
    /// `body` runs `scenario` with `client` and panics (assertions) when the client sees the
    /// wrong thing. `missing` is why the client cannot run here (`None`: it can).
    pub fn new(
        scenario: &'static str,
        client: &'static str,
        missing: Option<String>,
        body: impl FnOnce() + Send + 'static,
    ) -> ClientCheck {
        ClientCheck {
            scenario,
            client,
            requirement: client,
            missing,
            body: Box::new(body),
        }
    }

    /// The same check, whose `missing` reason is about `requirement` (e.g. network
    /// namespaces) rather than the client: the skip and the summary name it instead.
    pub fn needing(mut self, requirement: &'static str) -> ClientCheck {
        self.requirement = requirement;
        self
    }

    /// The test name: `scenario::client`, so a filter selects a scenario or a client.
    pub fn name(&self) -> String {
        format!("{}::{}", self.scenario, self.client)
    }

    fn into_trial(self, required: bool, skips: Arc<Mutex<Skips>>) -> Trial {
        let name = self.name();
        let (requirement, missing, body) = (self.requirement, self.missing, self.body);
        // Decided when the check runs: `ignored (reason)` in libtest's own line for the check.
        Trial::ignorable_test(name.clone(), move || match missing {
            Some(reason) => {
                let mut skips = skips.lock().unwrap_or_else(PoisonError::into_inner);
                skips.clients.insert(requirement);
                if required {
                    skips.failed += 1;
                    Err(format!(
                        "{name}: {requirement} is missing: {reason}{}",
                        required_hint()
                    )
                    .into())
                } else {
                    Ok(Completion::ignored_with(format!(
                        "{requirement} missing: {reason}"
                    )))
                }
            }
            None => {
                body();
                Ok(Completion::Completed)
            }
        })
    }
}

/// The checks that did not run because their client is missing (filled as checks run).
#[derive(Debug, Default)]
struct Skips {
    /// Those that failed for it (`ESPSIM_REQUIRE_CLIENTS=1`); the others are `ignored`.
    failed: u64,
    /// Their clients (or what else they need: [`ClientCheck::needing`]).
    clients: BTreeSet<&'static str>,
}

/// The failure message of a skip when `ESPSIM_REQUIRE_CLIENTS=1`.
pub fn required_message(check: &str, reason: &str) -> String {
    format!("{check}: not run: {reason}{}", required_hint())
}

fn required_hint() -> String {
    if clients_required() {
        format!(" ({REQUIRE_CLIENTS}=1: a check that cannot run is a failure)")
    } else {
        String::new()
    }
}

/// Runs the checks as libtest would run tests (same arguments), then prints the client
/// summary; the exit code is libtest's (101 when a check failed).
pub fn run(checks: Vec<ClientCheck>) -> ExitCode {
    run_with_threads(checks, None)
}

/// [`run`], with `threads` checks at a time unless `--test-threads` says otherwise (libtest's
/// default is one per core; checks that mostly wait on a client's timeout can run more).
pub fn run_with_threads(checks: Vec<ClientCheck>, threads: Option<usize>) -> ExitCode {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = threads;
    }
    let required = clients_required();
    let missing: BTreeMap<&'static str, String> = checks
        .iter()
        .filter_map(|c| Some((c.requirement, c.missing.clone()?)))
        .collect();
    if !args.list && !missing.is_empty() {
        let verdict = if required {
            "their checks FAIL"
        } else {
            "their checks are skipped (`ignored`, with the reason)"
        };
        println!("\nnot available here, {verdict}:");
        for (client, reason) in &missing {
            println!("  {client}: {reason}");
        }
    }
    let skips = Arc::new(Mutex::new(Skips::default()));
    let trials = checks
        .into_iter()
        .map(|c| c.into_trial(required, Arc::clone(&skips)))
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if !args.list {
        let skips = skips.lock().unwrap_or_else(PoisonError::into_inner);
        println!("{}\n", summary(&conclusion, &skips, required));
    }
    conclusion.exit_code()
}

/// `client checks: R ran (P passed, F failed), S skipped (client missing: …)…`.
fn summary(conclusion: &Conclusion, skips: &Skips, required: bool) -> String {
    let failed = conclusion.num_failed.saturating_sub(skips.failed);
    let ran = conclusion.num_passed + failed;
    let skipped = conclusion.num_ignored + skips.failed;
    let mut line = format!(
        "client checks: {ran} ran ({} passed, {failed} failed), {skipped} skipped",
        conclusion.num_passed
    );
    if skipped > 0 {
        let clients: Vec<&str> = skips.clients.iter().copied().collect();
        line.push_str(&format!(" (client missing: {})", clients.join(", ")));
        if required {
            line.push_str(&format!(
                "; {} of them failed, as {REQUIRE_CLIENTS}=1 asks",
                skips.failed
            ));
        } else {
            line.push_str(&format!(
                "; run scripts/install-test-clients.sh, or set {REQUIRE_CLIENTS}=1 to fail instead"
            ));
        }
    }
    if conclusion.num_filtered_out > 0 {
        line.push_str(&format!(", {} filtered out", conclusion.num_filtered_out));
    }
    line
}
