//! `espsim phone`: run a command on a simulated phone joined to the emulated softAP.
//!
//! Creates the phone, softAP and carrier namespaces, starts `espsim run` in the softAP's
//! (serving 192.168.4.1: HTTP/WebSocket on 80, DNS on 53, the control API on its loopback),
//! sends the OS's connectivity check, routes as the OS would, runs the command on the phone
//! and re-checks every `--recheck`. Events are JSON lines on stderr (and `--events FILE`).
//! Everything is removed when the command exits, on SIGINT/SIGTERM, and when it crashes.
//! Exit code: the command's (128 + signal if it was killed); 2 if the phone cannot be made.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use espsim_phone::{EventSink, MobileData, Namespaces, Os, Phone, PhoneEvent, PhoneSpec};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long the emulator gets to print its ready line.
const DEVICE_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the command and the emulator get to exit after SIGTERM before teardown kills them.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// The emulator's control API, on the softAP namespace's loopback.
const CONTROL_ADDR: &str = "127.0.0.1:8475";

/// Arguments of `espsim phone`.
#[derive(Debug, clap::Args)]
pub(crate) struct PhoneArgs {
    /// The phone's OS: android or ios (decides the connectivity check and the routing).
    #[arg(long, value_name = "OS")]
    os: Os,
    /// Mobile data: on (a cellular network the OS can prefer) or off.
    #[arg(long, value_name = "on|off")]
    mobile_data: MobileData,
    /// The app is bound to the Wi-Fi (Android `bindProcessToNetwork(wifi)`): its sockets and
    /// name lookups use wlan0 whatever the default network is.
    #[arg(long)]
    bind_wifi: bool,
    /// The device's internet mode: online, captive or offline (`espsim run --internet`).
    #[arg(long, value_name = "MODE")]
    internet: Option<String>,
    /// One more argument for the device's `espsim run` (repeat: `--device-arg=--profile
    /// --device-arg=esp-idf-v4.4`).
    #[arg(long = "device-arg", value_name = "ARG", allow_hyphen_values = true)]
    device_args: Vec<String>,
    /// How often the phone re-sends its connectivity check (200ms..10m).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = espsim_harness::scenario::parse_strict_duration)]
    recheck: Duration,
    /// Also write every event as one JSON line to this file.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// The command to run on the phone (after `--`).
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// The device's ready line, as far as the phone needs it.
#[derive(Debug, serde::Deserialize)]
struct DeviceReady {
    ws_url: String,
    control: Option<String>,
    control_token: Option<String>,
}

/// Events of the command itself, next to the library's.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum CliEvent<'a> {
    /// The device serves; the control API is reachable from the softAP namespace.
    DeviceReady {
        ap: &'a str,
        ws_url: &'a str,
        control: Option<&'a str>,
        control_token: Option<&'a str>,
    },
    /// The command started on the phone.
    CommandStarted { pid: Option<u32> },
    /// The command ended.
    CommandExited {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// Everything the phone made is gone.
    TornDown { phone: &'a str },
}

/// JSON lines to stderr and, optionally, a file.
#[derive(Clone)]
struct EventWriter {
    file: Option<Arc<Mutex<std::fs::File>>>,
}

impl EventWriter {
    fn write(&self, event: &impl Serialize) {
        let Ok(mut line) = serde_json::to_string(event) else {
            return;
        };
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        if let Some(file) = &self.file
            && let Ok(mut f) = file.lock()
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Runs `espsim phone`.
pub(crate) fn run(args: PhoneArgs) -> anyhow::Result<ExitCode> {
    espsim_phone::check_privileges()?;
    let file = match &args.events {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ))),
        None => None,
    };
    let writer = EventWriter { file };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run_phone(args, writer))
}

async fn run_phone(args: PhoneArgs, writer: EventWriter) -> anyhow::Result<ExitCode> {
    let spec = PhoneSpec {
        os: args.os,
        mobile_data: args.mobile_data,
        bind_wifi: args.bind_wifi,
    };
    let mut signals = crate::signal::Signals::watch()?;
    let sink_writer = writer.clone();
    let sink: EventSink = Arc::new(move |e: PhoneEvent| sink_writer.write(&e));
    let mut phone = Phone::create(spec, Namespaces::unique(), sink)?;
    let names = phone.namespaces().clone();

    let mut device = start_device(&phone, &args)?;
    let ready = tokio::select! {
        ready = wait_ready(&mut device) => ready?,
        () = signals.recv() => {
            stop(&mut device).await;
            phone.teardown()?;
            return Ok(ExitCode::from(130));
        }
    };
    writer.write(&CliEvent::DeviceReady {
        ap: &names.ap,
        ws_url: &ready.ws_url,
        control: ready.control.as_deref(),
        control_token: ready.control_token.as_deref(),
    });
    phone.evaluate().await?;

    let (program, rest) = args
        .command
        .split_first()
        .context("no command to run on the phone")?;
    let mut command = phone.phone_command(program);
    command.args(rest).kill_on_drop(true);
    let mut app = command
        .spawn()
        .context("cannot start the command on the phone")?;
    writer.write(&CliEvent::CommandStarted { pid: app.id() });

    let status = tokio::select! {
        status = app.wait() => status.context("cannot wait for the command")?,
        () = signals.recv() => stop(&mut app).await,
        e = phone.follow(args.recheck) => {
            stop(&mut app).await;
            stop(&mut device).await;
            return Err(e.into());
        }
    };
    writer.write(&exited(status));
    stop(&mut device).await;
    phone.teardown()?;
    writer.write(&CliEvent::TornDown {
        phone: &names.phone,
    });
    Ok(exit_code(status))
}

/// `espsim run` in the softAP namespace, at 192.168.4.1.
fn start_device(phone: &Phone, args: &PhoneArgs) -> anyhow::Result<tokio::process::Child> {
    let exe = std::env::current_exe().context("cannot find the espsim binary")?;
    let device_ip = espsim_phone::DEVICE_IP;
    let mut command = phone.ap_command(exe);
    command.arg("run");
    command.args(["--http", &format!("{device_ip}:80")]);
    command.args(["--dns", &format!("{device_ip}:53")]);
    command.args(["--device-ip", &device_ip.to_string()]);
    let control_given = args
        .device_args
        .iter()
        .any(|a| a.starts_with("--control") || a == "--no-control");
    if !control_given {
        command.args(["--control", CONTROL_ADDR]);
    }
    if let Some(mode) = &args.internet {
        command.args(["--internet", mode]);
    }
    command.args(&args.device_args);
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "warn");
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    command
        .spawn()
        .context("cannot start the device (espsim run) in the softAP namespace")
}

/// Reads the device's stdout up to its ready line, then keeps draining it.
async fn wait_ready(device: &mut tokio::process::Child) -> anyhow::Result<DeviceReady> {
    let stdout = device
        .stdout
        .take()
        .context("the device's stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let read = async {
        while let Some(line) = lines.next_line().await? {
            if let Ok(ready) = serde_json::from_str::<DeviceReady>(&line)
                && line.contains("\"event\":\"ready\"")
            {
                return Ok(Some(ready));
            }
        }
        Ok::<_, std::io::Error>(None)
    };
    let ready = tokio::time::timeout(DEVICE_READY_TIMEOUT, read)
        .await
        .with_context(|| {
            format!("the device printed no ready line within {DEVICE_READY_TIMEOUT:?}")
        })?
        .context("cannot read the device's output")?
        .context("the device (espsim run) exited before it was ready; its error is above")?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(ready)
}

/// SIGTERM, then wait up to [`EXIT_GRACE`], then SIGKILL.
async fn stop(child: &mut tokio::process::Child) -> ExitStatus {
    if let Some(pid) = child.id() {
        espsim_phone::terminate(pid);
    }
    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(Ok(status)) => status,
        _ => {
            let _ = child.start_kill();
            child.wait().await.unwrap_or_default()
        }
    }
}

fn exited(status: ExitStatus) -> CliEvent<'static> {
    use std::os::unix::process::ExitStatusExt;
    CliEvent::CommandExited {
        code: status.code(),
        signal: status.signal(),
    }
}

/// The command's exit code; 128 + signal when a signal ended it.
fn exit_code(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
