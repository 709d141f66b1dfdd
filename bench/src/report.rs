//! Runs the selected sections and prints their markdown tables, then the targets.
//!
//! Each section collects per-run numbers, prints medians, and adds its rows to the targets
//! table. A section that fails prints its error and the others still run.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::Args;
use crate::external::{self, DNS_LATENCY_QPS};
use crate::footprint;
use crate::library;
use crate::procs::{have, load_average, machine, open_files_limit};
use crate::stats::median;
use crate::ws::{self, FaultMode, Responder, Setup, WsRun};

/// One line of the targets table.
#[derive(Debug)]
struct Target {
    name: String,
    measured: String,
    /// `None`: could not be judged (not measured, or the feature is missing).
    met: Option<bool>,
}

/// Everything printed so far plus the targets, built section by section.
#[derive(Debug, Default)]
struct Report {
    targets: Vec<Target>,
    failed: bool,
}

impl Report {
    fn target(&mut self, name: impl Into<String>, measured: impl Into<String>, met: Option<bool>) {
        self.targets.push(Target {
            name: name.into(),
            measured: measured.into(),
            met,
        });
    }
}

/// A benchmark section: prints its tables, adds its targets.
type Section = fn(&Args, &Path, &mut Report) -> anyhow::Result<()>;

/// Runs every wanted section; `Ok(false)` when one of them failed.
pub(crate) fn run_all(args: &Args) -> anyhow::Result<bool> {
    let mut report = Report::default();
    let espsim = args.espsim_path()?;
    println!("# espsim benchmarks\n");
    println!("- machine: {}", machine());
    println!("- load average at start: {}", load_average());
    println!(
        "- runs per measurement: {} (tables show medians){}",
        args.runs,
        if args.quick {
            "; --quick: tiny CI load, not for quoting"
        } else {
            ""
        }
    );
    println!();

    let sections: [(&str, Section); 9] = [
        ("ws", ws_section),
        ("faults", faults_section),
        ("dns", dns_section),
        ("http", http_section),
        ("startup", startup_section),
        ("memory", memory_section),
        ("device", device_section),
        ("latency", latency_section),
        ("library", library_section),
    ];
    for (name, section) in sections {
        if !args.wants(name) {
            continue;
        }
        eprintln!("== {name}");
        if let Err(err) = section(args, &espsim, &mut report) {
            println!("**{name}: failed**: {err:#}\n");
            eprintln!("{name} failed: {err:#}");
            report.failed = true;
        }
    }

    println!("## Targets\n");
    println!("| target | measured | met |");
    println!("|---|---|---|");
    for t in &report.targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        println!("| {} | {} | {met} |", t.name, t.measured);
    }
    println!("\n- load average at end: {}", load_average());
    Ok(!report.failed)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

/// Medians of a set of WebSocket runs.
#[derive(Debug, Clone, Copy)]
struct WsMedians {
    rt: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
}

fn ws_medians(runs: &[WsRun]) -> WsMedians {
    let med =
        |f: fn(&WsRun) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN);
    WsMedians {
        rt: med(|r| r.round_trips_per_s),
        p50: med(|r| f64::from(r.p50_us)),
        p99: med(|r| f64::from(r.p99_us)),
        cpu: med(|r| r.device_cpu_us),
    }
}

/// The label of a setup in progress lines: its device unless built-in, then its fault rules.
fn setup_label(setup: Setup) -> String {
    match setup.responder {
        Responder::Builtin => setup.faults.label(),
        other => other.label().to_owned(),
    }
}

/// Runs `setups` alternately, `runs` times each, for one client count.
fn ws_paired(args: &Args, clients: usize, setups: &[Setup]) -> anyhow::Result<Vec<Vec<WsRun>>> {
    let mut out = vec![Vec::new(); setups.len()];
    for run in 0..args.runs as usize {
        // Rotate which setup goes first, so a drift in machine load hits all of them.
        for k in 0..setups.len() {
            let i = (k + run) % setups.len();
            let setup = setups.get(i).copied().context("setup index")?;
            let r = ws::run(clients, setup, args.warmup(), args.measure())
                .with_context(|| format!("{clients} clients, {}", setup_label(setup)))?;
            eprintln!(
                "  {clients:>4} clients, {:<30} {:>9.0} rt/s  p50 {:>7} us  p99 {:>7} us  cpu {:>6.1} us/rt",
                setup_label(setup),
                r.round_trips_per_s,
                r.p50_us,
                r.p99_us,
                r.device_cpu_us
            );
            if let Some(v) = out.get_mut(i) {
                v.push(r);
            }
        }
    }
    Ok(out)
}

/// Median over runs of `f(a[i]) / f(b[i])` (paired: same run, adjacent in time).
fn paired_ratio(a: &[WsRun], b: &[WsRun], f: fn(&WsRun) -> f64) -> f64 {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(x) / f(y)).collect();
    median(&ratios).unwrap_or(f64::NAN)
}

fn throughput(r: &WsRun) -> f64 {
    r.round_trips_per_s
}

fn device_cpu(r: &WsRun) -> f64 {
    r.device_cpu_us
}

/// One table row: medians and, except for the baseline, the paired ratios to it.
fn ws_row(prefix: &str, mode: FaultMode, runs: &[WsRun], baseline: &[WsRun]) {
    let m = ws_medians(runs);
    let (rt_ratio, cpu_ratio) = if mode == FaultMode::None {
        ("1".to_owned(), "1".to_owned())
    } else {
        (
            format!("{:.3}", paired_ratio(runs, baseline, throughput)),
            format!("{:.3}", paired_ratio(runs, baseline, device_cpu)),
        )
    };
    println!(
        "| {prefix}{} | {:.0} | {} | {} | {:.1} µs | {rt_ratio} | {cpu_ratio} |",
        mode.label(),
        m.rt,
        ms(m.p50),
        ms(m.p99),
        m.cpu
    );
}

const WS_HEADER: &str = "round trips/s | p50 | p99 | device CPU / round trip | throughput vs no rules | CPU vs no rules |";

fn ws_section(args: &Args, _: &Path, report: &mut Report) -> anyhow::Result<()> {
    println!(
        "## 1. WebSocket round trips (app `ping` → firmware `pong`), fault layer idle vs no rules\n"
    );
    println!(
        "In-process emulator (profile `unlimited`) on its own runtime; each client sends `ping`, \
         waits for the `pong`, repeats. {:.2} s measured after {:.2} s warm-up; {} runs, medians; \
         ratios are medians of per-run ratios (the two modes run back to back). Device CPU is the \
         emulator threads' CPU time (`schedstat`) per round trip: it hardly moves with other load \
         on the machine, throughput does.\n",
        args.measure().as_secs_f64(),
        args.warmup().as_secs_f64(),
        args.runs
    );
    println!("| clients | fault rules | {WS_HEADER}");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let modes = [FaultMode::None, FaultMode::Idle];
    let setups = modes.map(Setup::builtin);
    let mut worst_rt: Option<f64> = None;
    let mut worst_cpu: Option<f64> = None;
    for &clients in &args.clients {
        let runs = ws_paired(args, clients, &setups)?;
        let (none, idle) = (&runs[0], &runs[1]);
        for (mode, r) in modes.iter().zip([none, idle]) {
            ws_row(&format!("{clients} | "), *mode, r, none);
        }
        let rt = 1.0 - paired_ratio(idle, none, throughput);
        let cpu = paired_ratio(idle, none, device_cpu) - 1.0;
        worst_rt = Some(worst_rt.map_or(rt, |w: f64| w.max(rt)));
        worst_cpu = Some(worst_cpu.map_or(cpu, |w: f64| w.max(cpu)));
    }
    println!();
    if let (Some(rt), Some(cpu)) = (worst_rt, worst_cpu) {
        report.target(
            "idle fault layer: throughput loss ≤ 5% (worst client count)",
            format!("{:.1}%", rt * 100.0),
            Some(rt <= 0.05),
        );
        report.target(
            "idle fault layer: device CPU per round trip +≤ 5% (worst client count)",
            format!("{:+.1}%", cpu * 100.0),
            Some(cpu <= 0.05),
        );
    }
    Ok(())
}

fn faults_section(args: &Args, _: &Path, report: &mut Report) -> anyhow::Result<()> {
    let clients = args.fault_clients;
    let latency = FaultMode::LatencyMs(args.latency_ms);
    println!("## 2. Fault layer under load ({clients} clients)\n");
    println!("| fault rules | {WS_HEADER}");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let modes = [FaultMode::None, FaultMode::Passthrough, latency];
    let runs = ws_paired(args, clients, &modes.map(Setup::builtin))?;
    let (none, pass, lat) = (&runs[0], &runs[1], &runs[2]);
    for (mode, r) in modes.iter().zip([none, pass, lat]) {
        ws_row("", *mode, r, none);
    }
    let base = ws_medians(none);
    let with = ws_medians(lat);
    let want_us = args.latency_ms as f64 * 1000.0;
    let added_p99 = with.p99 - base.p99;
    let added_p50 = with.p50 - base.p50;
    println!(
        "\n`latency {}ms` adds {} at p50 and {} at p99 (with the fault minus without; {} runs).\n",
        args.latency_ms,
        ms(added_p50),
        ms(added_p99),
        args.runs
    );
    let (late50, late99) = ws::timer_overshoot(
        clients,
        Duration::from_millis(args.latency_ms),
        args.measure() + args.warmup(),
        ws::Timer::Tokio,
    )?;
    println!(
        "For scale, Tokio's timer on this machine at the same time: `sleep({}ms)` in {clients} tasks \
         fires {} late at p50 and {} late at p99.\n",
        args.latency_ms,
        ms(f64::from(late50)),
        ms(f64::from(late99))
    );
    let applied = with.p50 >= want_us * 0.5;
    if !applied {
        println!(
            "**The latency fault had no effect** (p50 {}): this build does not apply stream faults \
             on the device port yet, so the pass-through ratios above measure nothing either.\n",
            ms(with.p50)
        );
    }
    let pass_rt = 1.0 - paired_ratio(pass, none, throughput);
    let pass_cpu = paired_ratio(pass, none, device_cpu) - 1.0;
    report.target(
        "pass-through stream faults: throughput loss ≤ 5%",
        format!("{:.1}%", pass_rt * 100.0),
        applied.then_some(pass_rt <= 0.05),
    );
    report.target(
        "pass-through stream faults: device CPU per round trip +≤ 5%",
        format!("{:+.1}%", pass_cpu * 100.0),
        applied.then_some(pass_cpu <= 0.05),
    );
    // How exact the delay is, against a reference proxy, is section 8's (`--only latency`).
    Ok(())
}

/// `values` as `a, b, c` with `decimals` decimals.
fn list(values: impl IntoIterator<Item = f64>, decimals: usize) -> String {
    values
        .into_iter()
        .map(|v| format!("{v:.decimals$}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn device_section(args: &Args, _: &Path, report: &mut Report) -> anyhow::Result<()> {
    println!(
        "## 7. WebSocket round trips: a device file vs the built-in firmware
"
    );
    println!(
        "In-process emulator (profile `unlimited`, no fault rules), as in section 1. The built-in \
         firmware answers `{{\"type\":\"ping\",\"seq\":N}}` with its `pong`; the device file \
         `bench/devices/echo.yaml` answers `{{\"cmd\":\"ping\",\"seq\":N}}` with \
         `{{\"pong\":N}}` (rule `ping`, reply `{{ pong: \"{{{{ msg.seq }}}}\" }}`) and, for \
         comparison, `{{\"cmd\":\"ping-literal\",…}}` with the constant `{{\"pong\":true}}`. \
         {:.2} s measured after {:.2} s warm-up; {} rounds, the three devices one after another \
         in each round (the order rotating); medians, ratios are medians of the per-round ratios.\n",
        args.measure().as_secs_f64(),
        args.warmup().as_secs_f64(),
        args.runs
    );
    println!(
        "| clients | device | round trips/s | p50 | p99 | device CPU / round trip | throughput vs built-in | CPU vs built-in |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let responders = [
        Responder::Builtin,
        Responder::FileTemplated,
        Responder::FileLiteral,
    ];
    let setups = responders.map(Setup::device);
    let mut notes = Vec::new();
    let mut worst: Option<f64> = None;
    for &clients in &args.device_clients {
        let runs = ws_paired(args, clients, &setups)?;
        let builtin = runs.first().context("built-in runs")?;
        for (responder, r) in responders.iter().zip(&runs) {
            let m = ws_medians(r);
            let (rt_ratio, cpu_ratio) = if *responder == Responder::Builtin {
                ("1".to_owned(), "1".to_owned())
            } else {
                (
                    format!("{:.3}", paired_ratio(r, builtin, throughput)),
                    format!("{:.3}", paired_ratio(r, builtin, device_cpu)),
                )
            };
            println!(
                "| {clients} | {} | {:.0} | {} | {} | {:.1} µs | {rt_ratio} | {cpu_ratio} |",
                responder.label(),
                m.rt,
                ms(m.p50),
                ms(m.p99),
                m.cpu
            );
            let rts = r.iter().map(throughput);
            let cpus = r.iter().map(device_cpu);
            let mut note = format!(
                "- {clients} clients, {}: round trips/s per round {}; CPU µs per round trip {}",
                responder.label(),
                list(rts, 0),
                list(cpus, 1)
            );
            if *responder != Responder::Builtin {
                let ratios = r
                    .iter()
                    .zip(builtin)
                    .map(|(x, y)| throughput(x) / throughput(y));
                note.push_str(&format!(
                    "; throughput vs built-in per round {}",
                    list(ratios, 3)
                ));
            }
            notes.push(note);
        }
        let templated = runs.get(1).context("device-file runs")?;
        let ratio = paired_ratio(templated, builtin, throughput);
        worst = Some(worst.map_or(ratio, |w: f64| w.min(ratio)));
    }
    println!("\nPer round (the spread behind each median):\n");
    for note in notes {
        println!("{note}");
    }
    println!();
    if let Some(ratio) = worst {
        report.target(
            "device file (templated reply) ≥ 0.8× the built-in firmware's round trips/s (worst client count)",
            format!("{ratio:.2}×"),
            Some(ratio >= 0.8),
        );
    }
    Ok(())
}

fn dns_section(args: &Args, espsim: &Path, report: &mut Report) -> anyhow::Result<()> {
    println!("## 3. DNS: espsim vs dnsmasq `--address=/#/192.168.4.1` (dnsperf, loopback)\n");
    let missing: Vec<_> = ["dnsperf", "dnsmasq"]
        .into_iter()
        .filter(|p| !have(p))
        .collect();
    if !missing.is_empty() {
        println!(
            "Skipped: {} not installed (`bench/run.sh` installs them).\n",
            missing.join(", ")
        );
        report.target("DNS ≥ 1.0× dnsmasq", "not measured", None);
        return Ok(());
    }
    let work = work_dir()?;
    let rt = runtime()?;
    let mut pairs = Vec::new();
    for run in 0..args.runs as usize {
        let (e, d) = rt.block_on(external::dns_round(
            espsim,
            &work,
            args.tool_seconds,
            run % 2 == 0,
        ))?;
        eprintln!(
            "  espsim {:>8.0} q/s (lost {}) p99 {} us cpu {:.1} us/q | dnsmasq {:>8.0} q/s (lost {}) p99 {} us cpu {:.1} us/q",
            e.qps, e.lost, e.p99_us, e.cpu_us, d.qps, d.lost, d.p99_us, d.cpu_us
        );
        pairs.push((e, d));
    }
    let med = |f: &dyn Fn(&(external::DnsRun, external::DnsRun)) -> f64| {
        median(&pairs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let ratio = med(&|(e, d)| e.qps / d.qps);
    println!(
        "dnsperf `-c 4 -q 64`, {} s per run for queries/s; p99 from a `-v` run at {} q/s offered; {} runs.\n",
        args.tool_seconds, DNS_LATENCY_QPS, args.runs
    );
    let cpu_ratio = med(&|(e, d)| e.cpu_us / d.cpu_us);
    println!(
        "| server | queries/s | lost | p99 | server CPU / query | queries/s vs dnsmasq | CPU vs dnsmasq |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| espsim | {:.0} | {:.0} | {} | {:.1} µs | {ratio:.2}× | {cpu_ratio:.2}× |",
        med(&|(e, _)| e.qps),
        med(&|(e, _)| e.lost as f64),
        ms(med(&|(e, _)| f64::from(e.p99_us))),
        med(&|(e, _)| e.cpu_us)
    );
    println!(
        "| dnsmasq | {:.0} | {:.0} | {} | {:.1} µs | 1 | 1 |\n",
        med(&|(_, d)| d.qps),
        med(&|(_, d)| d.lost as f64),
        ms(med(&|(_, d)| f64::from(d.p99_us))),
        med(&|(_, d)| d.cpu_us)
    );
    report.target(
        "DNS ≥ 1.0× dnsmasq (queries/s)",
        format!("{ratio:.2}×"),
        Some(ratio >= 1.0),
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn http_section(args: &Args, espsim: &Path, report: &mut Report) -> anyhow::Result<()> {
    println!("## 4. HTTP connectivity check: espsim vs nginx `return 204` (wrk, loopback)\n");
    let missing: Vec<_> = ["wrk", "nginx"].into_iter().filter(|p| !have(p)).collect();
    if !missing.is_empty() {
        println!(
            "Skipped: {} not installed (`bench/run.sh` installs them).\n",
            missing.join(", ")
        );
        report.target("HTTP ≥ 0.8× nginx", "not measured", None);
        return Ok(());
    }
    let work = work_dir()?;
    let rt = runtime()?;
    let mut pairs = Vec::new();
    for run in 0..args.runs as usize {
        let (e, n) = rt.block_on(external::http_round(
            espsim,
            &work,
            args.tool_seconds,
            args.http_connections,
            &args.nginx_workers,
            run % 2 == 0,
        ))?;
        eprintln!(
            "  espsim {:>8.0} req/s p99 {} us cpu {:.1} us/req | nginx {:>8.0} req/s p99 {} us cpu {:.1} us/req",
            e.rps, e.p99_us, e.cpu_us, n.rps, n.p99_us, n.cpu_us
        );
        pairs.push((e, n));
    }
    let med = |f: &dyn Fn(&(external::HttpRun, external::HttpRun)) -> f64| {
        median(&pairs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let ratio = med(&|(e, n)| e.rps / n.rps);
    println!(
        "`wrk -t1 -c{} -d{}s` on `GET /generate_204` with `Host: connectivitycheck.gstatic.com` \
         (espsim `--internet online --profile unlimited`, nginx `worker_processes {}`); {} runs.\n",
        args.http_connections, args.tool_seconds, args.nginx_workers, args.runs
    );
    let cpu_ratio = med(&|(e, n)| e.cpu_us / n.cpu_us);
    println!(
        "| server | requests/s | p99 | server CPU / request | requests/s vs nginx | CPU vs nginx |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| espsim | {:.0} | {} | {:.1} µs | {ratio:.2}× | {cpu_ratio:.2}× |",
        med(&|(e, _)| e.rps),
        ms(med(&|(e, _)| f64::from(e.p99_us))),
        med(&|(e, _)| e.cpu_us)
    );
    println!(
        "| nginx | {:.0} | {} | {:.1} µs | 1 | 1 |\n",
        med(&|(_, n)| n.rps),
        ms(med(&|(_, n)| f64::from(n.p99_us))),
        med(&|(_, n)| n.cpu_us)
    );
    report.target(
        "HTTP ≥ 0.8× nginx (requests/s)",
        format!("{ratio:.2}×"),
        Some(ratio >= 0.8),
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn startup_section(args: &Args, espsim: &Path, report: &mut Report) -> anyhow::Result<()> {
    println!("## 5. Start-up: `espsim run` spawn to ready line (ports 0)\n");
    let times = runtime()?.block_on(footprint::startup(espsim, args.startup_runs))?;
    let ms_list: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    let med = median(&ms_list).unwrap_or(f64::NAN);
    let min = ms_list.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ms_list.iter().copied().fold(0.0, f64::max);
    println!("| processes | median | min | max |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {} | {med:.1} ms | {min:.1} ms | {max:.1} ms |\n",
        times.len()
    );
    report.target(
        "start-up ≤ 20 ms (median)",
        format!("{med:.1} ms"),
        Some(med <= 20.0),
    );
    Ok(())
}

fn library_section(args: &Args, espsim: &Path, report: &mut Report) -> anyhow::Result<()> {
    let files = library::files(&args.scenarios)?;
    let declared = library::declared(&files)?;
    println!(
        "## 9. The scenario library on virtual time: `espsim test --virtual-time` wall time ({} files, {:.0} s declared)\n",
        files.len(),
        declared.as_secs_f64()
    );
    println!("| replay | median | min | max |");
    println!("|---|---:|---:|---:|");
    let mut plain_median = f64::NAN;
    for catches in [false, true] {
        let mut secs = Vec::new();
        for _ in 0..args.runs {
            secs.push(library::replay(espsim, &files, catches)?.as_secs_f64());
        }
        let med = median(&secs).unwrap_or(f64::NAN);
        let min = secs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = secs.iter().copied().fold(0.0, f64::max);
        let what = if catches {
            "`--check-catches` (every file with each of its clients)"
        } else {
            "plain, `builtin:good`"
        };
        println!("| {what} | {med:.2} s | {min:.2} s | {max:.2} s |");
        if !catches {
            plain_median = med;
        }
    }
    println!();
    report.target(
        "scenario library on virtual time ≤ 2 s wall (median)",
        format!("{plain_median:.2} s"),
        Some(plain_median <= 2.0),
    );
    Ok(())
}

fn memory_section(args: &Args, espsim: &Path, report: &mut Report) -> anyhow::Result<()> {
    println!(
        "## 6. Memory: VmRSS of `espsim run --profile unlimited` with {} idle WebSocket connections\n",
        args.connections
    );
    let need = args.connections as u64 * 2 + 64;
    if let Some(limit) = open_files_limit()
        && limit < need
    {
        anyhow::bail!("open-file limit {limit} < {need}: raise it first (`ulimit -n 4096`)");
    }
    let rt = runtime()?;
    let mut runs = Vec::new();
    for _ in 0..args.runs {
        let r = rt.block_on(footprint::memory(espsim, args.connections))?;
        eprintln!(
            "  {} KiB → {} KiB: {:.1} KB per connection",
            r.before_kib,
            r.after_kib,
            r.kb_per_connection()
        );
        runs.push(r);
    }
    let med = |f: &dyn Fn(&footprint::MemoryRun) -> f64| {
        median(&runs.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let per = med(&footprint::MemoryRun::kb_per_connection);
    println!("| connections | VmRSS before | VmRSS after | per connection |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {} | {:.0} KiB | {:.0} KiB | {per:.1} KB |\n",
        args.connections,
        med(&|r| r.before_kib as f64),
        med(&|r| r.after_kib as f64)
    );
    println!(
        "Before: one session open; each added session answered one `ping`. {} runs.\n",
        args.runs
    );
    report.target(
        "≤ 30 KB per idle connection",
        format!("{per:.1} KB"),
        Some(per <= 30.0),
    );
    Ok(())
}

/// A private scratch directory for config and query files.
fn work_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("espsim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Section 8: how close a `latency` fault comes to its nominal delay, against the reference
/// delay proxy (`refproxy.rs`) in the same run.
fn latency_section(args: &Args, _: &Path, report: &mut Report) -> anyhow::Result<()> {
    let clients = args.fault_clients;
    let nominal = Duration::from_millis(args.latency_ms);
    let want_us = nominal.as_secs_f64() * 1e6;
    println!(
        "## 8. `latency {}ms` accuracy vs a reference delay proxy ({clients} clients)\n",
        args.latency_ms
    );
    println!(
        "WebSocket round trips as in section 2, but each client starts one every {ms} ms at most \
         (starts staggered), so every path carries the same light load; four paths per round \
         (order rotating): espsim without fault rules and with `latency {ms}ms` (device → app); \
         the bench's reference proxy (std threads: each chunk written at its read time + the \
         delay, `thread::sleep`) in front of an emulator without rules, with delay 0 and {ms} \
         ms. Error = round trip − the same path's zero-delay p50 − {ms} ms, at p50 and p99; \
         {runs} rounds, medians (per round in brackets).\n",
        ms = args.latency_ms,
        runs = args.runs
    );
    let paths = [
        ("espsim, no fault rules", FaultMode::None, None),
        (
            "espsim, latency fault",
            FaultMode::LatencyMs(args.latency_ms),
            None,
        ),
        (
            "reference proxy, delay 0",
            FaultMode::None,
            Some(Duration::ZERO),
        ),
        ("reference proxy, delay", FaultMode::None, Some(nominal)),
    ];
    let mut runs: Vec<Vec<WsRun>> = vec![Vec::new(); paths.len()];
    for round in 0..args.runs as usize {
        for k in 0..paths.len() {
            let i = (k + round) % paths.len();
            let (label, mode, proxy) = paths.get(i).copied().context("path index")?;
            let r = ws::run_via(
                clients,
                Setup::builtin(mode),
                proxy,
                Some(nominal),
                args.warmup(),
                args.measure(),
            )
            .with_context(|| format!("{clients} clients, {label}"))?;
            eprintln!(
                "  {label:<26} p50 {:>7} us  p99 {:>7} us  {:>7.0} rt/s",
                r.p50_us, r.p99_us, r.round_trips_per_s
            );
            if let Some(v) = runs.get_mut(i) {
                v.push(r);
            }
        }
    }
    // Per round: (p50 error, p99 error) in µs of the delayed path against its zero-delay path.
    let errors = |delayed: &[WsRun], zero: &[WsRun]| -> (Vec<f64>, Vec<f64>) {
        delayed
            .iter()
            .zip(zero)
            .map(|(d, z)| {
                let base = f64::from(z.p50_us) + want_us;
                (f64::from(d.p50_us) - base, f64::from(d.p99_us) - base)
            })
            .unzip()
    };
    let (esp50, esp99) = errors(&runs[1], &runs[0]);
    let (ref50, ref99) = errors(&runs[3], &runs[2]);
    println!("| path | round trip p50 | round trip p99 | round trips/s |");
    println!("|---|---:|---:|---:|");
    for ((label, _, _), r) in paths.iter().zip(&runs) {
        let m = ws_medians(r);
        println!("| {label} | {} | {} | {:.0} |", ms(m.p50), ms(m.p99), m.rt);
    }
    println!("\n| delay | error at p50 | error at p99 |");
    println!("|---|---:|---:|");
    let med = |v: &[f64]| median(v).unwrap_or(f64::NAN);
    let cell = |v: &[f64]| {
        format!(
            "{:+.2} ms ({})",
            med(v) / 1000.0,
            list(v.iter().map(|x| x / 1000.0), 2)
        )
    };
    println!(
        "| espsim `latency {}ms` | {} | {} |",
        args.latency_ms,
        cell(&esp50),
        cell(&esp99)
    );
    println!("| reference proxy | {} | {} |", cell(&ref50), cell(&ref99));

    let window = args.measure() + args.warmup();
    let (tokio50, tokio99) = ws::timer_overshoot(clients, nominal, window, ws::Timer::Tokio)?;
    let (fd50, fd99) = ws::timer_overshoot(clients, nominal, window, ws::Timer::Release)?;
    println!(
        "\nThe timers alone, at the same time ({clients} tasks sleeping {}ms in a loop, lateness \
         p50 / p99): Tokio's `sleep` {} / {}; espsim's `ReleaseTimer` {} / {}.\n",
        args.latency_ms,
        ms(f64::from(tokio50)),
        ms(f64::from(tokio99)),
        ms(f64::from(fd50)),
        ms(f64::from(fd99)),
    );
    let (e50, e99) = (med(&esp50), med(&esp99));
    report.target(
        format!(
            "`latency {}ms` error vs nominal at p50 ≤ 0.5 ms",
            args.latency_ms
        ),
        format!(
            "{:+.2} ms (reference proxy {:+.2} ms)",
            e50 / 1000.0,
            med(&ref50) / 1000.0
        ),
        Some(e50.abs() <= 500.0),
    );
    report.target(
        format!(
            "`latency {}ms` error vs nominal at p99 ≤ 2 ms",
            args.latency_ms
        ),
        format!(
            "{:+.2} ms (reference proxy {:+.2} ms)",
            e99 / 1000.0,
            med(&ref99) / 1000.0
        ),
        Some(e99.abs() <= 2000.0),
    );
    Ok(())
}
