//! `espsim test`: run scenario files against an app command or the built-in reference client,
//! judge their expectations, print a summary and write JUnit / JSON / event reports.
//!
//! Exit codes: 0 every expectation held (and the command did not fail), 1 something failed,
//! 2 usage or configuration error (bad scenario, unknown profile, command not found).
//! `--check-catches` replays each file with the good client (must pass) and with every profile
//! in its `catches:` (must fail exactly the named expectation), several runs at a time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use espsim_harness::Scenario;
use espsim_harness::client::ClientProfile;
use espsim_harness::report::{self, CatchCheck};
use espsim_harness::runner::{self, ClientSpec, RunResult};

/// Arguments of `espsim test`.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Scenario files (YAML), run one after another, each with a fresh emulator.
    #[arg(value_name = "SCENARIO", required = true)]
    scenarios: Vec<PathBuf>,
    /// Who plays the app: `builtin` or `builtin:PROFILE` (good, naive, silent, impolite, patient)
    /// [default: the COMMAND after `--`, else builtin:good]
    #[arg(long, value_name = "CLIENT")]
    client: Option<String>,
    /// Write a JUnit XML report here (one testsuite per scenario, one testcase per expectation).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write every run's events here, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// CI mode: each file with the good client (must pass) and with each `catches:` profile
    /// (must fail exactly the named expectation).
    #[arg(long, conflicts_with_all = ["client", "command"])]
    check_catches: bool,
    /// With --check-catches: how many runs at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Use this seed instead of each scenario's.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// The app to test, with its arguments (after `--`). It finds the device in ESPSIM_WS_URL,
    /// ESPSIM_HTTP_URL, ESPSIM_DNS_ADDR, ESPSIM_DEVICE_IP, ESPSIM_CONTROL_URL and ESPSIM_SEED.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Parses `--client` (with the command after `--`) into who plays the app.
fn client_spec(client: Option<&str>, command: &[String]) -> anyhow::Result<ClientSpec> {
    match client {
        None if command.is_empty() => Ok(ClientSpec::Builtin(ClientProfile::Good)),
        None => Ok(ClientSpec::Command(command.to_vec())),
        Some(c) => {
            if !command.is_empty() {
                bail!("--client {c} and a command after `--` exclude each other: pick one");
            }
            let profile = match c.split_once(':') {
                None if c == "builtin" => ClientProfile::Good,
                Some(("builtin", p)) => p.parse()?,
                _ => bail!("--client must be `builtin` or `builtin:PROFILE` (got `{c}`)"),
            };
            Ok(ClientSpec::Builtin(profile))
        }
    }
}

/// Runs `espsim test`.
pub(crate) fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let client = client_spec(args.client.as_deref(), &args.command)?;
    let mut scenarios = Vec::new();
    for path in &args.scenarios {
        scenarios.push(Arc::new(Scenario::load(path)?));
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if args.check_catches {
        let checks = runtime.block_on(check_catches(&scenarios, args.jobs, args.seed))?;
        let results: Vec<RunResult> = checks.iter().map(|c| c.result.clone()).collect();
        if let Some(path) = &args.junit {
            write_file(path, report::junit_catches(&checks)?.as_bytes())?;
        }
        write_reports(&args, &results, false)?;
        let wrong = checks.iter().filter(|c| c.verdict.is_err()).count();
        println!(
            "catches: {} checks on {} scenarios, {} as required, {wrong} wrong",
            checks.len(),
            scenarios.len(),
            checks.len() - wrong
        );
        // Repeated last, so that the tail of a long (or truncated) CI log names them.
        for c in checks.iter().filter(|c| c.verdict.is_err()) {
            print!("{}", catch_text(c));
        }
        return Ok(if wrong == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let mut results = Vec::new();
    for s in &scenarios {
        let r = runtime.block_on(runner::run(s, &client, args.seed))?;
        print!("{}", report::text(&r));
        std::io::stdout().flush().ok();
        results.push(r);
    }
    write_reports(&args, &results, true)?;
    let failed = results.iter().filter(|r| !r.passed()).count();
    println!(
        "{} scenario(s): {} passed, {failed} failed",
        results.len(),
        results.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every (scenario, client) run of the catches check, `jobs` at a time; results in plan order.
async fn check_catches(
    scenarios: &[Arc<Scenario>],
    jobs: u16,
    seed: Option<u64>,
) -> anyhow::Result<Vec<CatchCheck>> {
    let limit = Arc::new(tokio::sync::Semaphore::new(usize::from(jobs)));
    let mut tasks = Vec::new();
    for s in scenarios {
        for plan in runner::catch_plan(s) {
            let s = s.clone();
            let limit = limit.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let result = runner::run(&s, &plan.client, seed).await?;
                let verdict = runner::judge_catch(&result, plan.must_fail.as_deref());
                let check = CatchCheck {
                    result,
                    must_fail: plan.must_fail,
                    verdict,
                };
                print!("{}", catch_text(&check));
                std::io::stdout().flush().ok();
                anyhow::Ok(check)
            }));
        }
    }
    let mut checks = Vec::new();
    for t in tasks {
        checks.push(t.await.context("a scenario run panicked")??);
    }
    Ok(checks)
}

/// One catches check as text: the run's report and the check's verdict.
fn catch_text(check: &CatchCheck) -> String {
    let verdict = match &check.verdict {
        Ok(v) => format!("   ✓ check: {v}\n"),
        Err(v) => format!("   ✗ check: {v}\n"),
    };
    report::text(&check.result) + &verdict
}

/// Writes the reports asked for (`junit` only when `with_junit`: catches mode writes its own).
fn write_reports(args: &TestArgs, results: &[RunResult], with_junit: bool) -> anyhow::Result<()> {
    if with_junit && let Some(path) = &args.junit {
        write_file(path, report::junit(results)?.as_bytes())?;
    }
    if let Some(path) = &args.json {
        write_file(path, report::json(results)?.as_bytes())?;
    }
    if let Some(path) = &args.events {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::new(file);
        report::events_jsonl(results, &mut out)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
