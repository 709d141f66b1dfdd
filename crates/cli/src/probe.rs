//! `espsim probe`: arguments and rendering over `espsim_probe` (which does the work).
//!
//! Exit codes: 0 every layer passed (warnings allowed), 1 a layer failed, 2 usage error.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use espsim_probe::{self as probe, Details, LayerReport, LayerVerdict, ProbeOptions, ProbeReport};

/// Arguments of `espsim probe`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Layers, in order: uri, dns, tcp, tls (wss), http, connectivity, \
websocket, protocol, round_trip. The probe stops at the first failing layer.\n\
Exit codes: 0 all passed (warnings allowed), 1 a layer failed, 2 usage error."
)]
pub(crate) struct ProbeArgs {
    /// The app's URL: ws://, wss:// (http:// and https:// are linted, then probed as ws/wss).
    url: String,
    /// DNS server for a host name, IP or IP:PORT [default: first nameserver in /etc/resolv.conf]
    #[arg(long, value_name = "ADDR", value_parser = parse_dns)]
    dns: Option<SocketAddr>,
    /// Limit for each network step (connect, response, reply), e.g. 2s, 500ms.
    #[arg(long, value_name = "T", default_value = "5s", value_parser = espsim_harness::scenario::parse_strict_duration)]
    timeout: Duration,
    /// Token to send in `hello`, for devices that require one.
    #[arg(long, value_name = "T", env = "ESPSIM_TOKEN")]
    token: Option<String>,
    /// Number of app-level pings for the round-trip layer.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    samples: u32,
    /// Your device's own protocol: send this text message instead of espsim's `hello` (and for
    /// the round trips instead of its pings); the answer is the first text reply --expect finds.
    #[arg(long, value_name = "TEXT")]
    hello: Option<String>,
    /// With --hello: a regular expression the answer must contain a match of [default: any
    /// text reply].
    #[arg(long, value_name = "REGEX", requires = "hello", value_parser = parse_regex)]
    expect: Option<regex::Regex>,
    /// Subprotocol to offer in the upgrade (Sec-WebSocket-Protocol).
    #[arg(long, value_name = "NAME")]
    subprotocol: Option<String>,
    /// Port for the OS connectivity checks (plain HTTP) [default: the URL's port for ws://, 80 for wss://]
    #[arg(long, value_name = "PORT")]
    http_port: Option<u16>,
    /// Print the report as JSON (schema_version 1) instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_dns(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("`{s}` is not an IP address or IP:PORT"))
}

/// `--expect`: a regex of at most 1 KiB (a compiled program of at most 1 MiB).
fn parse_regex(s: &str) -> Result<regex::Regex, String> {
    if s.len() > 1024 {
        return Err("a pattern of at most 1024 bytes".to_owned());
    }
    regex::RegexBuilder::new(s)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| e.to_string())
}

/// Runs the probe and prints the report.
pub(crate) fn run(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let mut options = ProbeOptions::new(args.url);
    options.dns = args.dns;
    options.timeout = args.timeout;
    options.token = args.token;
    options.samples = args.samples;
    options.subprotocol = args.subprotocol;
    options.http_port = args.http_port;
    options.hello = args.hello.map(|send| probe::CustomHello {
        send,
        expect: args.expect,
    });
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = runtime.block_on(probe::run(options))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render(&report))?;
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn mark(v: LayerVerdict) -> &'static str {
    match v {
        LayerVerdict::Pass => "PASS",
        LayerVerdict::Warn => "WARN",
        LayerVerdict::Fail => "FAIL",
        LayerVerdict::Skipped => "skip",
    }
}

fn time(layer: &LayerReport) -> String {
    layer
        .duration_ms
        .map_or_else(String::new, |ms| format!("{ms:.1} ms"))
}

/// The human table: one row per layer, hints and per-OS lines indented under their layer.
fn render(report: &ProbeReport) -> String {
    let mut s = format!("espsim probe {}\n\n", report.url);
    s.push_str(&format!(
        "  {:<13} {:<6} {:>10}  {}\n",
        "LAYER", "RESULT", "TIME", "DETAILS"
    ));
    for layer in &report.layers {
        s.push_str(&format!(
            "  {:<13} {:<6} {:>10}  {}\n",
            layer.layer.as_str(),
            mark(layer.verdict),
            time(layer),
            layer.summary
        ));
        if let Some(Details::Connectivity(c)) = &layer.details {
            for check in &c.checks {
                s.push_str(&format!(
                    "  {:<33}{:<8} → {}: {}\n",
                    "",
                    check.os,
                    check.conclusion.label(),
                    check.consequence
                ));
            }
        }
        if let Some(Details::Websocket(w)) = &layer.details
            && let Some(dart) = &w.dart_error
        {
            s.push_str(&format!("  {:<33}Dart app sees: {dart}\n", ""));
        }
        // The connectivity hint repeats one of the per-OS lines printed above.
        if let Some(hint) = &layer.hint
            && !matches!(layer.details, Some(Details::Connectivity(_)))
        {
            s.push_str(&format!("  {:<33}hint: {hint}\n", ""));
        }
    }
    let warnings = report
        .layers
        .iter()
        .filter(|l| l.verdict == LayerVerdict::Warn)
        .count();
    s.push('\n');
    match report.failed_layer {
        Some(layer) => s.push_str(&format!("FAILED at {} (exit 1)\n", layer.as_str())),
        None if warnings > 0 => s.push_str(&format!("OK with {warnings} warning(s)\n")),
        None => s.push_str("OK\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use espsim_probe::{LayerId, LayerReport, LayerVerdict, ProbeReport};

    fn row(
        layer: LayerId,
        verdict: LayerVerdict,
        summary: &str,
        hint: Option<&str>,
    ) -> LayerReport {
        LayerReport {
            layer,
            verdict,
            duration_ms: (verdict != LayerVerdict::Skipped).then_some(1.25),
            summary: summary.to_owned(),
            hint: hint.map(str::to_owned),
            details: None,
        }
    }

    #[test]
    fn table_has_one_row_per_layer_hints_under_them_and_the_outcome() {
        let report = ProbeReport {
            schema_version: 1,
            url: "ws://192.168.4.1/ws".to_owned(),
            ok: false,
            failed_layer: Some(LayerId::Tcp),
            layers: vec![
                row(
                    LayerId::Uri,
                    LayerVerdict::Pass,
                    "ws://192.168.4.1:80/ws",
                    None,
                ),
                row(
                    LayerId::Tcp,
                    LayerVerdict::Fail,
                    "refused by 192.168.4.1:80",
                    Some("nothing listens"),
                ),
                row(
                    LayerId::Http,
                    LayerVerdict::Skipped,
                    "not run: tcp failed",
                    None,
                ),
            ],
        };
        let text = super::render(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "espsim probe ws://192.168.4.1/ws");
        assert_eq!(
            lines[3],
            "  uri           PASS       1.2 ms  ws://192.168.4.1:80/ws"
        );
        assert_eq!(
            lines[4],
            "  tcp           FAIL       1.2 ms  refused by 192.168.4.1:80"
        );
        assert_eq!(lines[5].trim(), "hint: nothing listens");
        assert!(lines[5].starts_with(&" ".repeat(35)), "{:?}", lines[5]);
        assert_eq!(
            lines[6],
            "  http          skip               not run: tcp failed"
        );
        assert_eq!(lines.last(), Some(&"FAILED at tcp (exit 1)"));
    }
}
