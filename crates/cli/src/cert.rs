//! `espsim cert`: a self-signed certificate for wss://, written where an app or test can trust it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `espsim cert`.
#[derive(Debug, clap::Args)]
pub(crate) struct CertArgs {
    /// Where to write the certificate (PEM).
    #[arg(long, default_value = "espsim-cert.pem")]
    cert: PathBuf,
    /// Where to write the private key (PEM, PKCS#8).
    #[arg(long, default_value = "espsim-key.pem")]
    key: PathBuf,
    /// Names and IP addresses the certificate is valid for (repeatable).
    #[arg(long = "name", default_values_t = default_names())]
    names: Vec<String>,
}

pub(crate) fn default_names() -> Vec<String> {
    ["192.168.4.1", "127.0.0.1", "localhost"]
        .map(String::from)
        .to_vec()
}

/// Generates and writes the pair; prints the paths.
pub(crate) fn run(args: CertArgs) -> anyhow::Result<ExitCode> {
    let pair = espsim_emulator::self_signed(&args.names)?;
    std::fs::write(&args.cert, &pair.cert_pem)
        .with_context(|| format!("cannot write {}", args.cert.display()))?;
    std::fs::write(&args.key, &pair.key_pem)
        .with_context(|| format!("cannot write {}", args.key.display()))?;
    println!(
        "wrote {} and {} for {}",
        args.cert.display(),
        args.key.display(),
        args.names.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
