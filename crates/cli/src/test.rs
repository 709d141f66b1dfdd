//! `espsim test`: run scenario files against an app command or the built-in reference client,
//! judge their expectations, print a summary and write JUnit / JSON / event / HTML reports,
//! showing on stderr which run is going (a live line on a terminal, plain lines otherwise).
//!
//! Exit codes: 0 every expectation held (and the command passed), 1 something failed (an
//! expectation, the command, or the app never became ready), 2 usage or configuration error
//! (bad scenario, a command without `--`, unknown profile, command not found).
//! `--check-catches` replays each file with the good client (must pass) and with every profile
//! in its `catches:` (must fail exactly the named expectation), several runs at a time.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use espsim_client::ClientProfile;
use espsim_emulator::events::{Event, EventKind};
use espsim_harness::Scenario;
use espsim_harness::report::{self, CatchCheck};
use espsim_harness::runner::{self, ClientSpec, RunOptions, RunResult};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// Arguments of `espsim test`.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Scenario files (YAML), each run with a fresh emulator, `--jobs` at a time.
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
    /// Write the run's HTML report here: a self-contained timeline (one scenario; for several,
    /// use --html-dir).
    #[arg(long, value_name = "FILE", conflicts_with = "html_dir")]
    html: Option<PathBuf>,
    /// Write one HTML report per run into this directory (created if missing), named after the
    /// scenario (and the client, with --check-catches).
    #[arg(long, value_name = "DIR")]
    html_dir: Option<PathBuf>,
    /// CI mode: each file with the good client (must pass) and with each `catches:` profile
    /// (must fail exactly the named expectation).
    #[arg(long, conflicts_with_all = ["client", "command"])]
    check_catches: bool,
    /// How many runs at once (each with its own emulator); each report prints whole, and
    /// reports and results stay in file order [default: 1 with a COMMAND, the number of cores
    /// with the built-in client and with --check-catches]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_JOBS)))]
    jobs: Option<u16>,
    /// Use this seed instead of each scenario's.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Run on virtual time: the emulator, its faults and the built-in client share one paused
    /// clock that jumps to the next timer whenever all of them wait, so a scenario takes as long
    /// as its work (milliseconds), not its `duration`, and one seed gives identical reports.
    /// Built-in client only; not for scenarios with a `phone:`.
    #[arg(long, conflicts_with = "command")]
    virtual_time: bool,
    /// For an app that runs until told: SIGTERM to its process group at the end of `duration`
    /// (counted from the clock start); it must exit 0 within 5 s. Default: wait for the COMMAND
    /// to exit by itself (as `command: { stop_at_end: true }` in the scenario).
    #[arg(long)]
    stop_at_end: bool,
    /// Hard cap on the COMMAND's run time (e.g. `45m`; at most 24h): still running then, it is
    /// killed and fails [default: the scenario's `command.timeout`, else 30m]
    #[arg(long, value_name = "DURATION", value_parser = command_timeout)]
    command_timeout: Option<Duration>,
    /// The app to test, with its arguments (after `--`). It finds the device in ESPSIM_WS_URL,
    /// ESPSIM_HTTP_URL, ESPSIM_DNS_ADDR, ESPSIM_DEVICE_IP, ESPSIM_CONTROL_URL (with
    /// ESPSIM_CONTROL_TOKEN) and the run in ESPSIM_SEED, ESPSIM_DURATION, ESPSIM_DURATION_MS,
    /// ESPSIM_READY_FILE, ESPSIM_SCENARIO and ESPSIM_TIMELINE.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// The most runs `--jobs` accepts at once.
const MAX_JOBS: u16 = 64;

/// `--jobs` when not given: an app's command may share a device, a port or a simulator with
/// itself, so one run at a time unless asked; the built-in client only waits on timers and
/// sockets, so one run per core (at least 1, at most [`MAX_JOBS`]).
fn default_jobs(client: &ClientSpec, cores: Option<std::num::NonZeroUsize>) -> u16 {
    match client {
        ClientSpec::Command(_) => 1,
        ClientSpec::Builtin(_) => cores.map_or(1, |n| {
            u16::try_from(n.get().min(usize::from(MAX_JOBS))).unwrap_or(MAX_JOBS)
        }),
    }
}

/// `--command-timeout`: a strict duration, more than 0 and at most 24 h.
fn command_timeout(text: &str) -> Result<Duration, String> {
    let d = espsim_harness::scenario::parse_strict_duration(text)?;
    let max = espsim_harness::scenario::MAX_COMMAND_TIMEOUT;
    if d.is_zero() || d > max {
        return Err(format!(
            "must be more than 0 and at most {}",
            espsim_harness::scenario::format_duration(max)
        ));
    }
    Ok(d)
}

/// Fails with a hint when a SCENARIO is not a `.yaml`/`.yml` file: the app's command was given
/// without `--` (`espsim test s.yaml flutter test` instead of `espsim test s.yaml -- flutter
/// test`).
fn check_scenario_paths(paths: &[PathBuf]) -> anyhow::Result<()> {
    let is_yaml = |p: &PathBuf| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
    };
    let Some(first) = paths.iter().position(|p| !is_yaml(p)) else {
        return Ok(());
    };
    let (files, command) = paths.split_at(first);
    let words: Vec<String> = command
        .iter()
        .map(|p| shell_word(&p.display().to_string()))
        .collect();
    let files: Vec<String> = files
        .iter()
        .map(|p| shell_word(&p.display().to_string()))
        .collect();
    let files = if files.is_empty() {
        "scenario.yaml".to_owned()
    } else {
        files.join(" ")
    };
    bail!(
        "`{}` is not a scenario file; put your app's command after `--`: espsim test {files} -- {}",
        command[0].display(),
        words.join(" ")
    )
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
    check_scenario_paths(&args.scenarios)?;
    let client = client_spec(args.client.as_deref(), &args.command)?;
    let cores = std::thread::available_parallelism().ok();
    let jobs = args.jobs.unwrap_or_else(|| default_jobs(&client, cores));
    let options = RunOptions {
        seed: args.seed,
        command_timeout: args.command_timeout,
        stop_at_end: args.stop_at_end,
        virtual_time: args.virtual_time,
    };
    let mut scenarios = Vec::new();
    for path in &args.scenarios {
        scenarios.push(Arc::new(Scenario::load(path)?));
    }
    if args.html.is_some() && (scenarios.len() > 1 || args.check_catches) {
        bail!(
            "--html FILE writes the report of one run; for {} use --html-dir DIR (one file per run)",
            if args.check_catches {
                "--check-catches".to_owned()
            } else {
                format!("{} scenarios", scenarios.len())
            }
        );
    }
    if let Some(dir) = &args.html_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    let html = HtmlOut {
        file: args.html.clone(),
        dir: args.html_dir.clone(),
    };
    let progress = Progress::new();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    if args.check_catches {
        let jobs = CatchJobs {
            paths: &args.scenarios,
            scenarios: &scenarios,
            jobs: args
                .jobs
                .unwrap_or_else(|| default_jobs(&ClientSpec::Builtin(ClientProfile::Good), cores)),
            seed: args.seed,
            virtual_time: args.virtual_time,
            html: &html,
            progress: &progress,
        };
        let checks = runtime.block_on(check_catches(jobs))?;
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
    let plain = PlainJobs {
        paths: &args.scenarios,
        scenarios: &scenarios,
        client: &client,
        options: &options,
        jobs,
        html: &html,
        progress: &progress,
    };
    let results = runtime.block_on(run_plain(plain))?;
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

/// What a plain run (no --check-catches) runs, and where its output goes.
struct PlainJobs<'a> {
    paths: &'a [PathBuf],
    scenarios: &'a [Arc<Scenario>],
    client: &'a ClientSpec,
    options: &'a RunOptions,
    jobs: u16,
    html: &'a HtmlOut,
    progress: &'a Progress,
}

/// Every scenario with the one client, `jobs` at a time; each run's report printed whole, in
/// file order, and the results in file order.
async fn run_plain(p: PlainJobs<'_>) -> anyhow::Result<Vec<RunResult>> {
    let limit = Arc::new(tokio::sync::Semaphore::new(usize::from(p.jobs)));
    let total = p.scenarios.len();
    let mut tasks = Vec::new();
    for (i, (s, path)) in p.scenarios.iter().zip(p.paths).enumerate() {
        let (s, limit, path) = (s.clone(), limit.clone(), path.clone());
        let (client, options) = (p.client.clone(), p.options.clone());
        let (html, progress) = (p.html.clone(), p.progress.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            let tracker = progress.start(i + 1, total, &s, &client.to_string());
            let watch = tracker.watch();
            let r = runner::run_with(&s, &client, &options, Some(watch)).await?;
            tracker.finish(&r);
            html.write(&r, &s, &rerun_command(&path, &client, &r), false)?;
            anyhow::Ok(r)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        let r = t.await.context("a scenario run panicked")??;
        p.progress.print(&report::text(&r));
        results.push(r);
    }
    Ok(results)
}

/// What the catches check runs, and where its output goes.
struct CatchJobs<'a> {
    paths: &'a [PathBuf],
    scenarios: &'a [Arc<Scenario>],
    jobs: u16,
    seed: Option<u64>,
    virtual_time: bool,
    html: &'a HtmlOut,
    progress: &'a Progress,
}

/// Every (scenario, client) run of the catches check, `jobs` at a time; results in plan order.
async fn check_catches(c: CatchJobs<'_>) -> anyhow::Result<Vec<CatchCheck>> {
    let limit = Arc::new(tokio::sync::Semaphore::new(usize::from(c.jobs)));
    let total: usize = c
        .scenarios
        .iter()
        .map(|s| runner::catch_plan(s).len())
        .sum();
    let mut tasks = Vec::new();
    for (s, path) in c.scenarios.iter().zip(c.paths) {
        for plan in runner::catch_plan(s) {
            let s = s.clone();
            let limit = limit.clone();
            let (seed, virtual_time) = (c.seed, c.virtual_time);
            let (html, progress) = (c.html.clone(), c.progress.clone());
            let path = path.clone();
            let index = tasks.len() + 1;
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let tracker = progress.start(index, total, &s, &plan.client.to_string());
                let watch = tracker.watch();
                let options = RunOptions {
                    seed,
                    virtual_time,
                    ..RunOptions::default()
                };
                let result = runner::run_with(&s, &plan.client, &options, Some(watch)).await?;
                tracker.finish(&result);
                let verdict = runner::judge_catch(&result, plan.must_fail.as_deref());
                html.write(
                    &result,
                    &s,
                    &rerun_command(&path, &plan.client, &result),
                    true,
                )?;
                let check = CatchCheck {
                    result,
                    must_fail: plan.must_fail,
                    verdict,
                };
                progress.print(&catch_text(&check));
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

/// Where HTML reports go: `--html FILE` (one run) or `--html-dir DIR` (one file per run).
#[derive(Debug, Clone, Default)]
struct HtmlOut {
    file: Option<PathBuf>,
    dir: Option<PathBuf>,
}

impl HtmlOut {
    /// Writes `result`'s report, if one was asked for; `with_client` names the client in the
    /// file name (the same scenario runs with several clients).
    fn write(
        &self,
        result: &RunResult,
        scenario: &Scenario,
        rerun: &str,
        with_client: bool,
    ) -> anyhow::Result<()> {
        let path = match (&self.file, &self.dir) {
            (Some(file), _) => file.clone(),
            (None, Some(dir)) => dir.join(report::html::file_name(result, with_client)),
            (None, None) => return Ok(()),
        };
        write_file(
            &path,
            report::html::html(result, scenario, rerun)?.as_bytes(),
        )
    }
}

/// The command line that runs this scenario again as `result` ran: the same client, seed and
/// clock.
fn rerun_command(path: &Path, client: &ClientSpec, result: &RunResult) -> String {
    let mut words = vec![
        "espsim".to_owned(),
        "test".to_owned(),
        shell_word(&path.display().to_string()),
    ];
    if let ClientSpec::Builtin(profile) = client {
        words.push(format!("--client builtin:{profile}"));
    }
    words.push(format!("--seed {}", result.seed));
    if result.virtual_time {
        words.push("--virtual-time".to_owned());
    }
    if let ClientSpec::Command(argv) = client {
        words.push("--".to_owned());
        words.extend(argv.iter().map(|a| shell_word(a)));
    }
    words.join(" ")
}

/// `word` quoted for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// How `espsim test` shows which run is going: on a terminal (stdout and stderr both, and `CI`
/// unset) a live line per run on stderr with its elapsed and declared time and the faults fired
/// so far (`indicatif`); otherwise plain lines on stderr, without control codes, as runs start,
/// faults fire and runs end.
#[derive(Debug, Clone)]
enum Progress {
    /// Live lines on a terminal.
    Bars(MultiProgress),
    /// One plain line per step.
    Plain,
}

/// A run's line refreshes this often on a terminal.
const TICK: Duration = Duration::from_millis(100);

impl Progress {
    /// Bars on a terminal, plain lines otherwise.
    fn new() -> Progress {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false");
        if !ci && std::io::stdout().is_terminal() && std::io::stderr().is_terminal() {
            Progress::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Progress::Plain
        }
    }

    /// Prints report text on stdout without tearing a live line.
    fn print(&self, text: &str) {
        let out = || {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        };
        match self {
            Progress::Bars(multi) => multi.suspend(out),
            Progress::Plain => out(),
        }
    }

    /// Announces run `index` of `total` and tracks it.
    fn start(&self, index: usize, total: usize, scenario: &Scenario, client: &str) -> RunTracker {
        let label = format!("[{index}/{total}] {} ({client})", scenario.name);
        let declared = scenario.duration;
        let bar = match self {
            Progress::Bars(multi) => {
                let declared_ms = u64::try_from(declared.as_millis()).unwrap_or(u64::MAX);
                let bar = multi.add(ProgressBar::new(declared_ms.max(1)));
                bar.set_style(run_style());
                bar.set_prefix(label.clone());
                bar.set_message("faults fired: 0");
                bar.enable_steady_tick(TICK);
                Some(bar)
            }
            Progress::Plain => {
                eprintln!(
                    "{label}: running, {} declared",
                    humantime::format_duration(declared)
                );
                None
            }
        };
        RunTracker {
            bar,
            label,
            faults: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// `⠋ [1/3] lru-purge (builtin:good) [=====>    ] 3.1s / 7s  faults fired: 1`; the bar and
/// the times are drawn from the elapsed time against the declared duration (the bar's length).
fn run_style() -> ProgressStyle {
    let time = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        let declared = state.len().unwrap_or(0) as f64 / 1000.0;
        let _ = write!(w, "{:.1}s / {declared:.0}s", state.elapsed().as_secs_f64());
    };
    let bar = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
        const CELLS: usize = 24;
        let declared = state.len().unwrap_or(1).max(1) as f64;
        let done = (state.elapsed().as_millis() as f64 / declared).clamp(0.0, 1.0);
        let filled = (done * CELLS as f64).round() as usize;
        let _ = write!(w, "[{}{}]", "=".repeat(filled), " ".repeat(CELLS - filled));
    };
    ProgressStyle::with_template("{spinner} {prefix} {timebar} {time}  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .with_key("time", time)
        .with_key("timebar", bar)
}

/// One run's progress: its live line (on a terminal) and the faults fired so far.
#[derive(Debug)]
struct RunTracker {
    bar: Option<ProgressBar>,
    label: String,
    faults: Arc<AtomicU64>,
}

impl RunTracker {
    /// The runner's live view of events: counts `fault_applied`, updates the line (or prints a
    /// plain one when a rule fires for the first time).
    fn watch(&self) -> runner::Watch {
        let (bar, label, faults) = (self.bar.clone(), self.label.clone(), self.faults.clone());
        let mut rules_seen = std::collections::BTreeSet::new();
        Box::new(move |e: &Event| {
            let EventKind::FaultApplied { rule, detail, .. } = &e.kind else {
                return;
            };
            let n = faults.fetch_add(1, Ordering::Relaxed) + 1;
            match &bar {
                Some(bar) => bar.set_message(format!("faults fired: {n}")),
                // A plain line for each rule's first firing only: a rule that hits every
                // connection of a storm must not flood the log (the end line has the total).
                None if rules_seen.insert(*rule) => eprintln!(
                    "{label}: {}.{:03}s fault rule {rule} fired: {detail} ({n} so far)",
                    e.at_ms / 1000,
                    e.at_ms % 1000
                ),
                None => {}
            }
        })
    }

    /// Ends the run's line: removed on a terminal (the report follows), a plain line otherwise.
    fn finish(self, result: &RunResult) {
        let n = self.faults.load(Ordering::Relaxed);
        match self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!(
                "{}: {} in {}.{:03}s, {n} fault(s) fired",
                self.label,
                if result.passed() { "PASS" } else { "FAIL" },
                result.elapsed_ms / 1000,
                result.elapsed_ms % 1000
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;

    #[test]
    fn jobs_default_to_the_cores_for_the_built_in_client_and_to_one_for_a_command() {
        let builtin = ClientSpec::Builtin(ClientProfile::Good);
        let command = ClientSpec::Command(vec!["flutter".to_owned(), "test".to_owned()]);
        let cores = |n| NonZeroUsize::new(n);
        assert_eq!(default_jobs(&builtin, cores(2)), 2);
        assert_eq!(default_jobs(&builtin, cores(16)), 16);
        assert_eq!(default_jobs(&builtin, cores(1)), 1);
        assert_eq!(default_jobs(&builtin, None), 1, "unknown: one at a time");
        assert_eq!(
            default_jobs(&builtin, cores(512)),
            MAX_JOBS,
            "as many as --jobs takes"
        );
        assert_eq!(default_jobs(&command, cores(16)), 1);
        assert_eq!(default_jobs(&command, None), 1);
    }
}
