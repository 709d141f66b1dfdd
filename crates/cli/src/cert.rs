//! `espsim cert`: a self-signed certificate for wss://, written where an app or test can trust it.
//!
//! The private key is a secret: it is created with mode 0600 in the same system call that
//! creates the file (no window in which it is world-readable), and an existing file is never
//! written through. Without `--force` an existing certificate or key (or a symbolic link at
//! either path, even a dangling one) is an error and nothing is written; with `--force` each
//! file is written to a new temporary file in the same directory and renamed over the old path,
//! which replaces a symbolic link itself and leaves its target untouched.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

/// Mode of the private key: owner read/write only.
const KEY_MODE: u32 = 0o600;
/// Mode of the certificate: public, anyone may read it (the umask still applies).
const CERT_MODE: u32 = 0o644;
/// Temporary names tried per file before giving up (another process would have to race us).
const TEMP_ATTEMPTS: u32 = 16;

/// Arguments of `espsim cert`.
#[derive(Debug, clap::Args)]
pub(crate) struct CertArgs {
    /// Where to write the certificate (PEM).
    #[arg(long, default_value = "espsim-cert.pem")]
    cert: PathBuf,
    /// Where to write the private key (PEM, PKCS#8; created with mode 0600).
    #[arg(long, default_value = "espsim-key.pem")]
    key: PathBuf,
    /// Names and IP addresses the certificate is valid for (repeatable).
    #[arg(long = "name", default_values_t = default_names())]
    names: Vec<String>,
    /// Replace existing files (through a new file renamed over the path: a symbolic link there
    /// is replaced, never followed).
    #[arg(long)]
    force: bool,
}

pub(crate) fn default_names() -> Vec<String> {
    ["192.168.4.1", "127.0.0.1", "localhost"]
        .map(String::from)
        .to_vec()
}

/// One file to write: where, what, with which mode.
#[derive(Debug)]
struct Output<'a> {
    path: &'a Path,
    text: &'a str,
    mode: u32,
    what: &'static str,
}

/// Generates and writes the pair; prints the paths.
pub(crate) fn run(args: CertArgs) -> anyhow::Result<ExitCode> {
    if args.cert == args.key {
        bail!(
            "--cert and --key are the same path ({}): the key would replace the certificate",
            args.cert.display()
        );
    }
    let pair = espsim_emulator::self_signed(&args.names)?;
    // The key first: if anything fails after it, no certificate without its key is left.
    let outputs = [
        Output {
            path: &args.key,
            text: &pair.key_pem,
            mode: KEY_MODE,
            what: "private key",
        },
        Output {
            path: &args.cert,
            text: &pair.cert_pem,
            mode: CERT_MODE,
            what: "certificate",
        },
    ];
    if args.force {
        for output in &outputs {
            replace(output)?;
        }
    } else {
        write_new_pair(&outputs)?;
    }
    println!(
        "wrote {} and {} for {}",
        args.cert.display(),
        args.key.display(),
        args.names.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates every file, none of which may exist; on a failure removes the ones it created, so
/// the command writes all or nothing.
fn write_new_pair(outputs: &[Output<'_>]) -> anyhow::Result<()> {
    // Checked up front so that the error names every existing file and nothing is written.
    let existing: Vec<String> = outputs
        .iter()
        .filter_map(|o| existing_description(o.path))
        .collect();
    if !existing.is_empty() {
        bail!(
            "refusing to overwrite {}; pass --force to replace (the old file is renamed over, \
             a symbolic link is replaced, not followed), or choose other paths with --cert/--key",
            existing.join(" and ")
        );
    }
    let mut created: Vec<&Path> = Vec::new();
    for output in outputs {
        if let Err(err) = write_new(output) {
            for path in created {
                let _ = std::fs::remove_file(path);
            }
            return Err(err);
        }
        created.push(output.path);
    }
    Ok(())
}

/// `"PATH (a symbolic link)"` or `"PATH (exists)"` when something is at `path`, without
/// following a link there.
fn existing_description(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let kind = if meta.file_type().is_symlink() {
        "a symbolic link"
    } else if meta.is_dir() {
        "a directory"
    } else {
        "exists"
    };
    Some(format!("{} ({kind})", path.display()))
}

/// Creates `output.path` (O_CREAT|O_EXCL: fails on any existing file or symbolic link) with its
/// mode set at creation, and writes it.
fn write_new(output: &Output<'_>) -> anyhow::Result<()> {
    let file = create_exclusive(output.path, output.mode).map_err(|err| {
        if err.kind() == ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "refusing to overwrite {} (it appeared while writing); pass --force to replace it",
                output.path.display()
            )
        } else {
            anyhow::Error::new(err).context(format!(
                "cannot create the {} {}",
                output.what,
                output.path.display()
            ))
        }
    })?;
    fill(file, output.text)
        .with_context(|| format!("cannot write the {} {}", output.what, output.path.display()))
}

/// Writes a new temporary file beside `output.path` and renames it over the path: an existing
/// file is replaced atomically, a symbolic link is replaced (its target is not touched).
fn replace(output: &Output<'_>) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(output.path).is_ok_and(|m| m.is_dir()) {
        bail!(
            "cannot replace the {} {}: it is a directory",
            output.what,
            output.path.display()
        );
    }
    let (temp, file) = create_temp_beside(output.path, output.mode).with_context(|| {
        format!(
            "cannot create a temporary file beside the {} {}",
            output.what,
            output.path.display()
        )
    })?;
    let written = fill(file, output.text)
        .with_context(|| format!("cannot write the {} {}", output.what, temp.display()))
        .and_then(|()| {
            std::fs::rename(&temp, output.path).with_context(|| {
                format!(
                    "cannot rename {} to the {} {}",
                    temp.display(),
                    output.what,
                    output.path.display()
                )
            })
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Opens a new file with `mode` (masked by the umask) in the `open(2)` that creates it.
fn create_exclusive(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

/// A new file `.NAME.espsim-PID-N.tmp` in the directory of `path`.
fn create_temp_beside(path: &Path, mode: u32) -> std::io::Result<(PathBuf, File)> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "the path has no file name"))?;
    let mut last = None;
    for attempt in 0..TEMP_ATTEMPTS {
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".espsim-{}-{attempt}.tmp", std::process::id()));
        let temp = dir.join(temp_name);
        match create_exclusive(&temp, mode) {
            Ok(file) => return Ok((temp, file)),
            Err(err) if err.kind() == ErrorKind::AlreadyExists => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary name was free")))
}

/// Writes `text` and flushes it to disk (a rename after this never exposes a partial file).
fn fill(mut file: File, text: &str) -> std::io::Result<()> {
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
