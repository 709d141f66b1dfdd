//! One run of the device process: spawn it, say `hello`, start its stdin writer and stderr
//! pass-through, and wait for `ready` (bounded by the start timeout).

use std::process::Stdio;
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::garbage::GarbageLog;
use super::lines::{Line, next_line};
use super::link::{STDIN_QUEUE, Wire};
use super::protocol::{FromProcess, Garbage, MAX_LINE, ToProcess, decode};
use super::{ProcessError, ProcessSpec};
use crate::events::{EventKind, EventLog};
use crate::lifecycle::Lifecycle;

/// How long a process that closed its stdout gets to exit before it is killed.
pub(crate) const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A process that said `ready`.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) stdout: BufReader<ChildStdout>,
    pub(crate) garbage: GarbageLog,
    /// Cancelled when its stdin queue overflowed.
    pub(crate) hung: CancellationToken,
    pub(crate) since: Instant,
}

/// Starts the process and waits for its `ready`; returns it and the stdin side for the link.
pub(crate) async fn start(
    spec: &ProcessSpec,
    seed: u64,
    max_message: usize,
    events: &Arc<EventLog>,
    lifecycle: &Lifecycle,
) -> Result<(Running, Wire), ProcessError> {
    let command = spec.command_line();
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C in the terminal reaches espsim, which stops the
        // device in order, not the device behind its back.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = &spec.dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        command: command.clone(),
        source,
    })?;
    let pid = child.id().unwrap_or(0);
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ProcessError::Spawn {
            command,
            source: std::io::Error::other("no pipes to the process"),
        });
    };
    events.emit(EventKind::DeviceAction {
        action: "process_started".to_owned(),
        detail: format!("pid {pid}: {command}"),
    });
    // Both end with the process (its pipes close); the shutdown ends them too, in case a helper
    // the process started keeps a pipe open.
    let cancel = lifecycle.cancel.clone();
    lifecycle.tracker.spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = super::stderr::pass_through(stderr, pid) => {}
        }
    });
    let (tx, rx) = mpsc::channel(STDIN_QUEUE);
    // The queue is empty: the hello always fits and goes first.
    let _ = tx.try_send(ToProcess::Hello { seed, max_message }.encode());
    let cancel = lifecycle.cancel.clone();
    lifecycle.tracker.spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            () = write_lines(stdin, rx) => {}
        }
    });

    let mut stdout = BufReader::new(stdout);
    let mut garbage = GarbageLog::new(events.clone(), pid);
    let ready = tokio::time::timeout(spec.ready_timeout, async {
        loop {
            match next_line(&mut stdout, MAX_LINE).await {
                Ok(Some(Line::Text(line))) => match decode(&line, max_message) {
                    Ok(FromProcess::Ready) => return Ok(()),
                    Ok(_) => {
                        garbage.record(&line, &Garbage::Invalid("sent before `ready`".into()));
                    }
                    Err(why) => {
                        garbage.record(&line, &why);
                    }
                },
                Ok(Some(Line::TooLong(head))) => {
                    garbage.record(&head, &Garbage::TooLong);
                }
                Ok(None) | Err(_) => return Err(()),
            }
        }
    })
    .await;
    match ready {
        Ok(Ok(())) => {}
        Ok(Err(())) => {
            let status = match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
                Ok(Ok(status)) => status.to_string(),
                _ => "closed its stdout".to_owned(),
            };
            kill(&mut child);
            return Err(ProcessError::ExitedBeforeReady { command, status });
        }
        Err(_) => {
            kill(&mut child);
            let _ = tokio::time::timeout(EXIT_WAIT, child.wait()).await;
            return Err(ProcessError::NotReady {
                command,
                timeout: spec.ready_timeout,
            });
        }
    }
    events.emit(EventKind::DeviceAction {
        action: "process_ready".to_owned(),
        detail: format!("pid {pid} ready (protocol v{})", super::protocol::VERSION),
    });
    let hung = CancellationToken::new();
    let wire = Wire {
        tx,
        hung: hung.clone(),
    };
    Ok((
        Running {
            child,
            pid,
            stdout,
            garbage,
            hung,
            since: Instant::now(),
        },
        wire,
    ))
}

/// Kills the process and everything it started: it leads its own process group
/// (`process_group(0)`), so a wrapper's children (`npm start` → `node`) go with it.
pub(crate) fn kill(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.start_kill();
}

/// Writes queued lines to the process's stdin until the queue closes (the process was
/// replaced) or the pipe breaks (it ended).
async fn write_lines(mut stdin: ChildStdin, mut rx: mpsc::Receiver<String>) {
    while let Some(mut line) = rx.recv().await {
        line.push('\n');
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
    }
}
