//! `espsim`: test your app against an emulated ESP32 softAP.
//!
//! A thin binary over the library crates: argument parsing (`clap`), logging, exit codes.
//! Exit codes: 0 ok, 1 a check failed, 2 usage, configuration or start-up error.

mod cert;
#[cfg(test)]
mod cli_reference;
mod client;
mod device;
mod fault;
mod fdlimit;
mod logging;
mod phone;
mod probe;
mod run;
mod signal;
mod test;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Test your app against an emulated ESP32 softAP: captive DNS, OS connectivity checks,
/// ESP-IDF's HTTP server and a WebSocket device, with ESP-IDF's limits and quirks.
#[derive(Debug, Parser)]
#[command(name = "espsim", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=espsim=debug).
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    log_format: logging::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the emulated device until SIGINT/SIGTERM; prints one JSON "ready" line on stdout.
    Run(Box<run::RunArgs>),
    /// Write a self-signed certificate and key (PEM) for `run --cert/--key`, to trust in an app.
    Cert(cert::CertArgs),
    /// Run the reference WebSocket client against a device URL; prints its events as JSON lines.
    Client(client::ClientArgs),
    /// List the device profiles (ESP-IDF versions and their limits).
    Profiles,
    /// Run scenario files against your app (`-- COMMAND`) or the built-in client and judge
    /// their expectations; exit 0 all held, 1 something failed, 2 usage/config error.
    Test(Box<test::TestArgs>),
    /// Diagnose a connection to a device (real or emulated) layer by layer: URL, DNS, TCP, TLS,
    /// HTTP, OS connectivity checks, WebSocket upgrade, protocol, round trip.
    Probe(probe::ProbeArgs),
    /// Check scenario files (syntax and semantics) without running them.
    Validate(validate::ValidateArgs),
    /// List, add or remove fault rules of a running `espsim run` (its control API).
    Fault(fault::FaultArgs),
    /// Send a WebSocket message as the running device would, to one session or all (its
    /// control API); exit 1 when the API refuses it.
    Send(device::SendArgs),
    /// Print the running device logic's state variables as JSON, or set them with `state set`
    /// (its control API); exit 1 when the API refuses.
    State(device::StateArgs),
    /// Run a command on a simulated phone (network namespace, root) joined to the emulated
    /// softAP, routed as Android/iOS would after their connectivity check (`-- CMD`).
    Phone(Box<phone::PhoneArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let fds = fdlimit::raise();
    let result = match cli.command {
        Command::Run(args) => run::run(*args, fds),
        Command::Cert(args) => cert::run(args),
        Command::Client(args) => client::run(args),
        Command::Test(args) => test::run(*args),
        Command::Probe(args) => probe::run(args),
        Command::Profiles => {
            run::print_profiles();
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate(args) => validate::run(args),
        Command::Fault(args) => fault::run(args),
        Command::Send(args) => device::send(args),
        Command::State(args) => device::state(args),
        Command::Phone(args) => phone::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            let hint = err
                .downcast_ref::<espsim_emulator::StartError>()
                .and_then(espsim_emulator::StartError::hint)
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default();
            eprintln!("error: {err:#}{hint}");
            ExitCode::from(2)
        }
    }
}
