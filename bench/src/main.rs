//! `espsim-bench`: the load generator behind `bench/run.sh` and `BENCHMARKS.md`.
//!
//! Measures, and prints as markdown tables (medians of `--runs` runs, runs interleaved so that
//! machine noise hits both sides of a ratio alike):
//! 1. WebSocket round trips (app `ping` → firmware `pong`) for 1/16/256 clients, fault layer idle
//!    vs no fault rules (`ws`);
//! 2. pass-through stream faults vs none, and the accuracy of a `latency` fault (`faults`);
//! 3. DNS with dnsperf: espsim vs dnsmasq (`dns`);
//! 4. the HTTP connectivity check with wrk: espsim vs nginx `return 204` (`http`);
//! 5. `espsim run` spawn-to-ready time (`startup`);
//! 6. resident memory per idle WebSocket connection (`memory`);
//! 7. WebSocket round trips against a device file (`bench/devices/echo.yaml`) vs the built-in
//!    firmware (`device`).
//! 8. the accuracy of a `latency` fault against a reference delay proxy in the same run
//!    (`latency`, see `refproxy.rs`);
//! 9. the scenario library replayed on virtual time, plain and `--check-catches` (`library`).
//!
//! `espsim-bench soak` is separate: connection churn against `espsim run`, failing (exit 1) when
//! its file descriptors or threads do not come back to the baseline (see `soak.rs`).
//!
//! Targets are printed next to the numbers; a missed target never fails the run (only an error
//! does), so the tool can run in CI on a tiny load (`--quick`) without flaking.

mod external;
mod footprint;
mod library;
mod procs;
mod refproxy;
mod report;
mod soak;
mod stats;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// Benchmarks espsim: WebSocket round trips, fault-layer overhead, DNS vs dnsmasq, HTTP vs nginx,
/// start-up time and memory per connection. Prints markdown on stdout, progress on stderr.
#[derive(Debug, Parser)]
#[command(name = "espsim-bench", version, about, long_about = None)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The `espsim` binary for the process benchmarks [default: next to this binary]
    #[arg(long, value_name = "PATH")]
    espsim: Option<PathBuf>,
    /// Runs per measurement; tables show medians.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Measured seconds per WebSocket run (after a warm-up of a fifth of it).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Seconds per dnsperf / wrk run.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=120))]
    tool_seconds: u64,
    /// Concurrent WebSocket clients, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    clients: Vec<usize>,
    /// Concurrent WebSocket clients for the device-file comparison, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    device_clients: Vec<usize>,
    /// Clients for the fault-layer benchmarks.
    #[arg(long, default_value_t = 16)]
    fault_clients: usize,
    /// The latency fault whose accuracy is checked, in ms.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    http_connections: usize,
    /// nginx's `worker_processes` in the HTTP comparison: `auto` (one per CPU) or a number.
    #[arg(long, default_value = "auto", value_parser = parse_nginx_workers)]
    nginx_workers: String,
    /// Idle WebSocket connections for the memory benchmark.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Processes started for the start-up benchmark.
    #[arg(long, default_value_t = 20)]
    startup_runs: usize,
    /// The scenario library replayed in the `library` section.
    #[arg(long, value_name = "DIR", default_value = "scenarios")]
    scenarios: PathBuf,
    /// Only these sections: ws, faults, dns, http, startup, memory, device, latency, library
    /// (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// A tiny load for CI (1 run, short windows, few clients and connections): proves the
    /// tooling works, measures nothing worth quoting.
    #[arg(long)]
    quick: bool,
}

/// Runs other than the benchmark report.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Connection churn against a fresh `espsim run` (WebSocket clean close, FIN, RST; HTTP;
    /// DNS over UDP and TCP), sampling its RSS, fds and threads from /proc; exit 1 when fds or
    /// threads do not return to the baseline after the churn.
    Soak(soak::SoakArgs),
}

impl Args {
    fn apply_quick(&mut self) {
        if self.quick {
            self.runs = 1;
            self.seconds = 0.25;
            self.tool_seconds = 1;
            self.clients = vec![1, 4];
            self.device_clients = vec![4];
            self.fault_clients = 4;
            self.connections = 50;
            self.startup_runs = 3;
        }
    }

    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }

    fn measure(&self) -> Duration {
        Duration::from_secs_f64(self.seconds.clamp(0.05, 600.0))
    }

    fn warmup(&self) -> Duration {
        self.measure() / 5
    }

    fn espsim_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.espsim {
            return Ok(p.clone());
        }
        let me = std::env::current_exe().context("cannot locate this binary")?;
        Ok(me.with_file_name("espsim"))
    }
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    let result = match args.command.take() {
        Some(Command::Soak(soak_args)) => soak::main(soak_args),
        None => {
            args.apply_quick();
            report::run_all(&args)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `auto` or a worker count from 1 to 64, as nginx's `worker_processes` takes it.
fn parse_nginx_workers(v: &str) -> Result<String, String> {
    match v.parse::<u8>() {
        _ if v == "auto" => Ok(v.to_owned()),
        Ok(n) if (1..=64).contains(&n) => Ok(v.to_owned()),
        _ => Err(format!("`{v}`: `auto` or a number from 1 to 64")),
    }
}
