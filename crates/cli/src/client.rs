//! `espsim client`: the reference client against any device URL, its events as JSON lines.
//!
//! Runs until `--duration` passes or SIGINT/SIGTERM, then leaves as the profile says. Exit code
//! 0 when the device answered `hello` with `welcome` at least once, 1 when it never did.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use espsim_client::{Client, ClientConfig, ClientProfile, Heartbeat, HeartbeatKind};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Arguments of `espsim client`. Flags override what the profile sets.
#[derive(Debug, clap::Args)]
pub(crate) struct ClientArgs {
    /// The device's WebSocket URL, e.g. ws://127.0.0.1:8080/ws
    #[arg(value_name = "URL")]
    url: String,
    /// Behaviour: good, or one that breaks one rule: naive (no backoff), silent (no heartbeat),
    /// impolite (no close frame), patient (no connect timeout).
    #[arg(long, value_name = "NAME", default_value = "good")]
    profile: ClientProfile,
    /// Leave after this long (e.g. 30s, 2m) [default: until SIGINT/SIGTERM]
    #[arg(long, value_name = "TIME", value_parser = espsim_harness::scenario::parse_strict_duration)]
    duration: Option<Duration>,
    /// Token sent in `hello`.
    #[arg(long, value_name = "TOKEN", env = "ESPSIM_TOKEN")]
    token: Option<String>,
    /// Bound on TCP connect + upgrade, and on waiting for `welcome` [good: 10s]
    #[arg(long, value_name = "TIME", value_parser = espsim_harness::scenario::parse_strict_duration)]
    connect_timeout: Option<Duration>,
    /// Heartbeat interval (turns the heartbeat on, even for `silent`) [good: 10s]
    #[arg(long, value_name = "TIME", value_parser = espsim_harness::scenario::parse_strict_duration)]
    heartbeat: Option<Duration>,
    /// No answer to a heartbeat within this long declares the link dead [good: 5s]
    #[arg(long, value_name = "TIME", value_parser = espsim_harness::scenario::parse_strict_duration)]
    heartbeat_timeout: Option<Duration>,
    /// Heartbeat as protocol `ping` messages (app) or WebSocket ping frames (websocket).
    #[arg(long, value_name = "KIND", value_enum, default_value_t = BeatKind::App)]
    heartbeat_kind: BeatKind,
    /// First reconnect delay [good: 500ms]
    #[arg(long, value_name = "TIME", value_parser = espsim_harness::scenario::parse_strict_duration)]
    backoff_initial: Option<Duration>,
    /// Cap on the reconnect delay [good: 30s]
    #[arg(long, value_name = "TIME", value_parser = espsim_harness::scenario::parse_strict_duration)]
    backoff_max: Option<Duration>,
    /// Seed of the backoff jitter (same seed, same delays).
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// `hello.client`, the app name the device sees.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// A protocol message (JSON) to send once connected; repeatable, sent in order.
    #[arg(long = "send", value_name = "JSON")]
    send: Vec<String>,
}

/// `--heartbeat-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BeatKind {
    /// Protocol `ping` messages, answered by the firmware.
    App,
    /// WebSocket ping frames, answered by the HTTP server.
    Websocket,
}

/// The last line: the run's totals.
#[derive(Debug, Serialize)]
struct SummaryLine<'a> {
    event: &'static str,
    #[serde(flatten)]
    summary: &'a espsim_client::ClientSummary,
}

/// Builds the client configuration from the profile and the flags.
fn config(args: &ClientArgs) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::for_profile(args.url.clone(), args.profile);
    config.token.clone_from(&args.token);
    config.seed = args.seed;
    if let Some(t) = args.connect_timeout {
        config.connect_timeout = Some(t);
    }
    if let Some(name) = &args.name {
        config.hello_name.clone_from(name);
    }
    if let Some(initial) = args.backoff_initial {
        config.backoff.initial = initial;
    }
    if let Some(max) = args.backoff_max {
        config.backoff.max = max;
    }
    let kind = match args.heartbeat_kind {
        BeatKind::App => HeartbeatKind::App,
        BeatKind::Websocket => HeartbeatKind::WebSocket,
    };
    if let Some(every) = args.heartbeat {
        anyhow::ensure!(!every.is_zero(), "--heartbeat must be longer than zero");
        let timeout = config
            .heartbeat
            .map_or(Heartbeat::RECOMMENDED.timeout, |h| h.timeout);
        config.heartbeat = Some(Heartbeat {
            every,
            timeout,
            kind,
        });
    }
    if let Some(h) = &mut config.heartbeat {
        h.kind = kind;
        if let Some(timeout) = args.heartbeat_timeout {
            h.timeout = timeout;
        }
    }
    Ok(config)
}

/// Runs the client; exit 0 if it ever got `welcome`, 1 otherwise.
pub(crate) fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let config = config(&args)?;
    let messages = args
        .send
        .iter()
        .map(|json| {
            espsim_protocol::decode(json.as_bytes())
                .with_context(|| format!("invalid --send message `{json}`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let client = Client::new(config);
        let sender = client.sender();
        for m in messages {
            // Cannot fail: the client has not run yet, so it has not stopped.
            let _ = sender.send(m);
        }
        drop(sender);
        let stop = CancellationToken::new();
        let timer = stop.clone();
        let duration = args.duration;
        let mut signals = crate::signal::Signals::watch()?;
        tokio::spawn(async move {
            let until = async {
                match duration {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = until => {}
                () = signals.recv() => {}
            }
            timer.cancel();
        });
        let mut printer = Printer {
            open: true,
            stop: stop.clone(),
        };
        let summary = client.run(stop, |e| printer.print(e)).await;
        printer.print(&SummaryLine {
            event: "summary",
            summary: &summary,
        });
        Ok(if summary.ever_ready() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// Prints one JSON line per event on stdout, flushed at once so a pipe sees it live. When stdout
/// goes away (`| head`), the client is stopped instead of running on unseen.
struct Printer {
    open: bool,
    stop: CancellationToken,
}

impl Printer {
    fn print(&mut self, line: &impl Serialize) {
        if !self.open {
            return;
        }
        let mut out = std::io::stdout().lock();
        let written = serde_json::to_writer(&mut out, line).is_ok()
            && out.write_all(b"\n").is_ok()
            && out.flush().is_ok();
        if !written {
            self.open = false;
            tracing::warn!("stdout is closed; stopping the client");
            self.stop.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ClientArgs,
    }

    fn parse(argv: &[&str]) -> Result<ClientArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("client").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn flags_override_the_profile() {
        let args = parse(&[
            "ws://127.0.0.1:8080/ws",
            "--profile",
            "silent",
            "--heartbeat",
            "2s",
            "--heartbeat-timeout",
            "1s",
            "--connect-timeout",
            "3s",
            "--backoff-initial",
            "100ms",
        ])
        .expect("parses");
        let c = config(&args).expect("valid");
        assert_eq!(c.profile, ClientProfile::Silent);
        assert_eq!(
            c.heartbeat,
            Some(Heartbeat {
                every: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                kind: HeartbeatKind::App,
            })
        );
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.backoff.initial, Duration::from_millis(100));
    }

    /// Flags take the strict duration grammar of scenario files (docs/reference/scenarios.md):
    /// humantime's `5 seconds` or `2min` would be accepted here and refused in a file.
    #[test]
    fn durations_take_the_strict_grammar() {
        for loose in ["5 seconds", "2min", "1.5s", "5"] {
            let err = parse(&["ws://x/ws", "--connect-timeout", loose]).expect_err(loose);
            assert!(
                err.to_string()
                    .contains(&format!("invalid duration `{loose}`")),
                "{err}"
            );
        }
        let args = parse(&["ws://x/ws", "--connect-timeout", "1m30s"]).expect("strict");
        assert_eq!(args.connect_timeout, Some(Duration::from_secs(90)));
    }

    #[test]
    fn an_unknown_profile_is_a_usage_error_naming_the_known_ones() {
        let err = parse(&["ws://x/ws", "--profile", "rude"]).expect_err("rejected");
        assert!(
            err.to_string()
                .contains("known: good, naive, silent, impolite, patient"),
            "{err}"
        );
    }
}
