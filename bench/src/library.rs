//! Section 9: the scenario library replayed by `espsim test --virtual-time` (the built-in
//! client on one paused clock), wall time per replay.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The library's scenario files (`DIR/*.yaml`), sorted.
pub(crate) fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the scenario library {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no scenario files in {}", dir.display());
    }
    Ok(files)
}

/// The declared run time of `files`: the sum of their `duration:` lines.
pub(crate) fn declared(files: &[PathBuf]) -> anyhow::Result<Duration> {
    let mut total = Duration::ZERO;
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("duration:"))
            .with_context(|| format!("{} has no top-level duration:", f.display()))?;
        total += espsim_faults::parse_strict_duration(line.trim())
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: duration `{}`", f.display(), line.trim()))?;
    }
    Ok(total)
}

/// One replay of `files` on virtual time with seed 11 (`--check-catches` when `catches`); its
/// wall time. Fails unless espsim exits 0 (every verdict as required).
pub(crate) fn replay(espsim: &Path, files: &[PathBuf], catches: bool) -> anyhow::Result<Duration> {
    let mut cmd = Command::new(espsim);
    cmd.args(["test", "--virtual-time", "--seed", "11"]);
    if catches {
        cmd.arg("--check-catches");
    }
    cmd.args(files);
    let started = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", espsim.display()))?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!(
            "espsim test --virtual-time exited with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(took)
}
