//! `espsim run`: bind everything, print the ready line, serve until SIGINT/SIGTERM.
//!
//! With `--scenario FILE` the device section, fault rules and seed come from a scenario file
//! (flags still win). `run` ignores the scenario's `duration` and `expect:` — it serves until a
//! signal; `espsim test` is the command that runs a scenario to its end and judges it.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use espsim_emulator::internet::InternetMode;
use espsim_emulator::profile::Profile;
use espsim_emulator::{
    ControlAuth, ControlLimits, ControlOptions, Emulator, EmulatorConfig, RunningEmulator,
    TlsOptions, control,
};
use espsim_harness::{DeviceSpec, Scenario, WsSpec};
use serde::Serialize;

/// How long shutdown waits for sessions to close (SIGTERM must exit within a second).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// Arguments of `espsim run`. Flags override `--config`; both override the defaults.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// HTTP/WebSocket address (the device's port 80) [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// HTTPS/wss address, served with --tls [default: 127.0.0.1:8443]
    #[arg(long, value_name = "ADDR")]
    https: Option<SocketAddr>,
    /// Serve wss:// on --https with a self-signed certificate generated at start.
    #[arg(long)]
    tls: bool,
    /// With --tls: write the generated certificate (PEM) here, for the app or test to trust.
    #[arg(long, value_name = "FILE", requires = "tls", conflicts_with = "cert")]
    write_cert: Option<PathBuf>,
    /// Certificate chain (PEM) for wss:// instead of a generated one (implies --tls).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) for --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// DNS address, UDP and TCP [default: 127.0.0.1:5353]
    #[arg(long, value_name = "ADDR", conflicts_with = "no_dns")]
    dns: Option<SocketAddr>,
    /// Run no DNS server.
    #[arg(long)]
    no_dns: bool,
    /// The softAP address every DNS A answer points to [default: 127.0.0.1; in Docker 192.168.4.1]
    #[arg(long, value_name = "IP")]
    device_ip: Option<Ipv4Addr>,
    /// ESP-IDF profile (`espsim profiles` lists them) [default: esp-idf-v5.4]
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// What phones conclude: online, captive or offline [default: captive]
    #[arg(long, value_name = "MODE")]
    internet: Option<InternetMode>,
    /// WebSocket path, exact match like ESP-IDF [default: /ws]
    #[arg(long, value_name = "PATH")]
    ws_path: Option<String>,
    /// The one WebSocket subprotocol the device supports.
    #[arg(long, value_name = "NAME")]
    subprotocol: Option<String>,
    /// Token the app must present (Authorization: Bearer, ?token= or in `hello`).
    #[arg(long, value_name = "TOKEN", env = "ESPSIM_TOKEN")]
    token: Option<String>,
    /// The device behind the ports: `builtin` (espsim's firmware and protocol) or a device file
    /// (YAML: your protocol's rules, state, timers, HTTP routes; `espsim validate` checks it)
    /// [default: the config or scenario's `file:`, else builtin]
    #[arg(long, value_name = "FILE|builtin", conflicts_with = "device_command")]
    device: Option<DeviceArg>,
    /// Run this program as the device, in any language: espsim speaks a JSON-lines protocol
    /// on its stdin/stdout (docs/reference/device-process.md) and restarts it when it crashes.
    /// Arguments follow with --device-arg, e.g.
    /// `--device-command python3 --device-arg device.py`.
    #[arg(long, value_name = "PROGRAM")]
    device_command: Option<String>,
    /// One argument of --device-command (repeatable, in order).
    #[arg(
        long,
        value_name = "ARG",
        requires = "device_command",
        allow_hyphen_values = true
    )]
    device_arg: Vec<String>,
    /// Seed for simulated sensors [default: random, printed in the ready line]
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// The device section (YAML, as `device:` in a scenario file).
    #[arg(long, value_name = "FILE", conflicts_with = "scenario")]
    config: Option<PathBuf>,
    /// A scenario file: its device section, fault rules and seed (flags still override).
    /// `duration` and `expect` are not used here: `espsim test` runs and judges a scenario.
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Control API address (faults, internet mode, button, events) [default: 127.0.0.1:8475,
    /// or 127.0.0.1:0 when every device port is 0, so instances can run side by side].
    #[arg(long, value_name = "ADDR", overrides_with = "no_control")]
    control: Option<SocketAddr>,
    /// Serve no control API (the last of --control/--no-control wins).
    #[arg(long, overrides_with = "control")]
    no_control: bool,
    /// Bearer token the control API requires on every request [default: a random one,
    /// printed as "control_token" in the ready line and in the log].
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ESPSIM_CONTROL_TOKEN",
        hide_env_values = true,
        conflicts_with = "no_control"
    )]
    control_token: Option<String>,
    /// DANGEROUS: serve the control API without a token (loopback only). Any program on this
    /// machine can then add faults, switch the internet mode and press the button.
    #[arg(long, conflicts_with_all = ["control_token", "no_control"])]
    control_insecure: bool,
    /// Also accept this name in the control API's Host header (IP addresses and localhost
    /// always are; any other name is refused against DNS rebinding). Repeatable.
    #[arg(long, value_name = "NAME", conflicts_with = "no_control")]
    control_allow_host: Vec<String>,
    /// Let web pages from this origin (e.g. http://localhost:3000) call the control API: only
    /// they get CORS headers, any other Origin is refused. Repeatable.
    #[arg(long, value_name = "ORIGIN", conflicts_with = "no_control")]
    control_allow_origin: Vec<String>,
    /// Also write every event as one JSON line to this file.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Threads that serve the device's connections. One keeps each connection on one thread
    /// with no hand-offs between threads (lower CPU per request and tail latency, see
    /// BENCHMARKS.md); more help only when one core is not enough (many TLS handshakes).
    /// UDP DNS has a thread of its own either way.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    worker_threads: u16,
}

/// `--device`: the built-in firmware or a device file.
#[derive(Debug, Clone)]
enum DeviceArg {
    Builtin,
    File(PathBuf),
}

impl std::str::FromStr for DeviceArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "builtin" => DeviceArg::Builtin,
            path => DeviceArg::File(path.into()),
        })
    }
}

/// The one line `run` prints on stdout once every socket is bound.
#[derive(Debug, Serialize)]
struct ReadyLine {
    event: &'static str,
    http: SocketAddr,
    https: Option<SocketAddr>,
    dns: Option<SocketAddr>,
    ws_url: String,
    device_ip: Ipv4Addr,
    profile: &'static str,
    internet: InternetMode,
    seed: u64,
    control: Option<SocketAddr>,
    /// The generated control token (`null` when given with --control-token or opted out).
    control_token: Option<String>,
    scenario: Option<String>,
    faults: usize,
}

/// Builds the emulator configuration from flags, the config or scenario file and defaults;
/// also returns the scenario's name.
fn config(args: RunArgs) -> anyhow::Result<(EmulatorConfig, Option<String>)> {
    let scenario = match &args.scenario {
        Some(path) => Some(Scenario::load(path)?),
        None => None,
    };
    let file = match (&args.config, &scenario) {
        (Some(path), _) => {
            let mut spec = espsim_harness::yaml::load::<DeviceSpec>(path)?;
            spec.relative_to(path);
            spec
        }
        (None, Some(s)) => s.device.clone(),
        (None, None) => DeviceSpec::default(),
    };
    let file_ws = file.ws.unwrap_or_default();
    let scenario_seed = scenario.as_ref().and_then(|s| s.seed);
    let command_from_flags = args.device_command.is_some();
    let device = DeviceSpec {
        profile: args.profile.or(file.profile),
        internet: args.internet.or(file.internet),
        device_ip: args.device_ip.or(file.device_ip),
        ws: match (
            args.ws_path.or(file_ws.path),
            args.subprotocol.or(file_ws.subprotocol),
        ) {
            (None, None) => None,
            (path, subprotocol) => Some(WsSpec { path, subprotocol }),
        },
        auth_token: args.token.or(file.auth_token),
        seed: args.seed.or(scenario_seed).or(file.seed),
        file: match (&args.device, &args.device_command) {
            (Some(DeviceArg::Builtin), _) | (None, Some(_)) => None,
            (Some(DeviceArg::File(path)), _) => Some(path.clone()),
            (None, None) => file.file,
        },
        // `--device` or `--device-command` replaces an inline device too.
        inline: file
            .inline
            .filter(|_| args.device.is_none() && args.device_command.is_none()),
        command: match (args.device, args.device_command) {
            (_, Some(program)) => Some(std::iter::once(program).chain(args.device_arg).collect()),
            (Some(_), None) => None,
            (None, None) => file.command,
        },
        // A command from the flags runs here; one from the file, in the file's directory.
        source: if command_from_flags {
            None
        } else {
            file.source
        },
    };
    let tls = match (args.cert, args.key) {
        (Some(cert), Some(key)) => Some(TlsOptions::Files { cert, key }),
        _ if args.tls => Some(TlsOptions::SelfSigned {
            names: crate::cert::default_names(),
            write_cert: args.write_cert,
        }),
        _ => None,
    };
    let mut config = device.emulator_config(rand_seed())?;
    config.http = args.http.unwrap_or(([127, 0, 0, 1], 8080).into());
    config.https = args.https.unwrap_or(([127, 0, 0, 1], 8443).into());
    config.dns = (!args.no_dns).then(|| args.dns.unwrap_or(([127, 0, 0, 1], 5353).into()));
    config.tls = tls;
    config.events_file = args.events;
    config.control = if args.no_control {
        None
    } else {
        let auth = match (args.control_token, args.control_insecure) {
            (_, true) => ControlAuth::Insecure,
            (Some(t), false) if t.trim().is_empty() => anyhow::bail!(
                "--control-token (or ESPSIM_CONTROL_TOKEN) is empty; leave it out for a generated token"
            ),
            (Some(t), false) => ControlAuth::Token(t),
            (None, false) => ControlAuth::Generate,
        };
        let addr = args
            .control
            .unwrap_or_else(|| default_control_addr(&config));
        Some(ControlOptions {
            addr,
            auth,
            allowed_hosts: args.control_allow_host,
            allowed_origins: args.control_allow_origin,
            limits: ControlLimits::default(),
        })
    };
    let name = scenario.map(|s| {
        config.faults = s.faults;
        s.name
    });
    Ok((config, name))
}

/// The control address when `--control` is not given: the fixed default port, unless every
/// device port is ephemeral (`--http 127.0.0.1:0 --dns 127.0.0.1:0`): then a fixed control port
/// would be the one thing two side-by-side instances fight over, so it is ephemeral too (the
/// ready line reports it).
fn default_control_addr(config: &EmulatorConfig) -> SocketAddr {
    let ephemeral = config.http.port() == 0
        && config.dns.is_none_or(|d| d.port() == 0)
        && (config.tls.is_none() || config.https.port() == 0);
    if ephemeral {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    } else {
        control::DEFAULT_ADDR
    }
}

/// A seed from the clock and the process id: random enough for "pick one", and printed.
pub(crate) fn rand_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

/// Runs the emulator until a signal; exit code 0 after a clean shutdown.
/// `fds` is the open-file limit `main` raised; logged once the device is ready.
pub(crate) fn run(args: RunArgs, fds: Option<crate::fdlimit::FdLimit>) -> anyhow::Result<ExitCode> {
    let worker_threads = usize::from(args.worker_threads);
    let (config, scenario) = config(args)?;
    let generated = config
        .control
        .as_ref()
        .is_some_and(|c| c.auth == ControlAuth::Generate);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .thread_name("espsim-worker")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let seed = config.seed;
        let device_ip = config.device_ip;
        let ws_path = config.ws_endpoint().path;
        let running = Emulator::start(config).await?;
        let mut signals = crate::signal::Signals::watch()?;
        let token = generated
            .then(|| running.control_token().map(str::to_owned))
            .flatten();
        print_ready(&running, seed, device_ip, &ws_path, scenario, token)?;
        if let Some(fds) = fds {
            fds.log();
        }
        signals.recv().await;
        tracing::info!("shutting down");
        running.shutdown(SHUTDOWN_GRACE).await;
        Ok(ExitCode::SUCCESS)
    })
}

fn print_ready(
    running: &RunningEmulator,
    seed: u64,
    device_ip: Ipv4Addr,
    ws_path: &str,
    scenario: Option<String>,
    control_token: Option<String>,
) -> anyhow::Result<()> {
    let line = ReadyLine {
        event: "ready",
        http: running.http_addr(),
        https: running.https_addr(),
        dns: running.dns_addr(),
        ws_url: ws_url(running.http_addr(), device_ip, ws_path),
        device_ip,
        profile: running.profile().name,
        internet: running.internet(),
        seed,
        control: running.control_addr(),
        control_token,
        scenario,
        faults: running.faults().rules().len(),
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &line)?;
    out.write_all(b"\n")?;
    out.flush()?;
    tracing::info!(
        http = %line.http,
        dns = %line.dns.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        profile = line.profile,
        internet = %line.internet,
        control = %line.control.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        "device ready; point your app at {}",
        line.ws_url
    );
    if let Some(token) = &line.control_token {
        tracing::info!(
            "control API token (generated): {token} — export ESPSIM_CONTROL_TOKEN={token} for `espsim fault`, or send Authorization: Bearer {token}"
        );
    } else if running.control_addr().is_some() && running.control_token().is_none() {
        tracing::warn!(
            "control API without a token (--control-insecure): any program on this machine can steer the emulator"
        );
    }
    Ok(())
}

/// The URL an app uses: the bound address, or the device IP when bound to every interface
/// (`0.0.0.0:80` in a container is reached as `192.168.4.1:80`). The port is always written:
/// Dart shows a `ws://` URL without one as port 0 in its errors.
fn ws_url(http: SocketAddr, device_ip: Ipv4Addr, path: &str) -> String {
    let host = if http.ip().is_unspecified() {
        SocketAddr::from((device_ip, http.port()))
    } else {
        http
    };
    format!("ws://{host}{path}")
}

/// `espsim profiles`: one line per profile.
pub(crate) fn print_profiles() {
    for p in Profile::ALL {
        let sockets = p
            .max_open_sockets
            .map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
        println!(
            "{:<24} header limit {:>4} B, sockets {:>9}{}\n{:<24} {}",
            p.name,
            p.max_req_hdr_len,
            sockets,
            if p.name == Profile::default().name {
                " (default)"
            } else {
                ""
            },
            "",
            p.summary
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `espsim run ARGS` parsed as clap parses it.
    fn parse(args: &[&str]) -> RunArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        let argv = std::iter::once("run").chain(args.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv)
            .expect("valid arguments")
            .run
    }

    fn control_addr(args: &[&str]) -> Option<SocketAddr> {
        let (config, _) = config(parse(args)).expect("config");
        config.control.map(|c| c.addr)
    }

    #[test]
    fn the_control_port_is_ephemeral_only_when_every_device_port_is() {
        let ephemeral = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let fixed = Some(control::DEFAULT_ADDR);
        assert_eq!(
            control_addr(&["--http", "127.0.0.1:0", "--dns", "127.0.0.1:0"]),
            ephemeral
        );
        assert_eq!(
            control_addr(&["--http", "127.0.0.1:0", "--no-dns"]),
            ephemeral
        );
        let tls = ["--http", "127.0.0.1:0", "--no-dns", "--tls"];
        assert_eq!(control_addr(&tls), fixed, "https stays on 8443");
        let tls0 = [
            "--http",
            "127.0.0.1:0",
            "--no-dns",
            "--tls",
            "--https",
            "127.0.0.1:0",
        ];
        assert_eq!(control_addr(&tls0), ephemeral);
        assert_eq!(
            control_addr(&["--http", "127.0.0.1:0"]),
            fixed,
            "dns on 5353"
        );
        assert_eq!(control_addr(&[]), fixed);
        // An explicit --control always wins.
        assert_eq!(
            control_addr(&[
                "--http",
                "127.0.0.1:0",
                "--no-dns",
                "--control",
                "127.0.0.1:9"
            ]),
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 9)))
        );
        assert_eq!(control_addr(&["--no-control"]), None);
    }

    #[test]
    fn ws_url_names_the_device_when_bound_to_every_interface() {
        let ip = Ipv4Addr::new(192, 168, 4, 1);
        assert_eq!(
            ws_url(([0, 0, 0, 0], 80).into(), ip, "/ws"),
            "ws://192.168.4.1:80/ws"
        );
        assert_eq!(
            ws_url(([127, 0, 0, 1], 8080).into(), ip, "/ws"),
            "ws://127.0.0.1:8080/ws"
        );
    }
}
