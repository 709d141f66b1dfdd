//! `espsim cert` as a user runs it, on a temporary directory: the private key is created 0600,
//! existing files are not overwritten without `--force`, a symbolic link at the key path is
//! never followed (its target keeps its bytes), and `--force` replaces files through a rename.
//! The binary is `target/debug/espsim` (see `espsim_tests::espsim_bin`).

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use espsim_tests::{Finished, espsim_bin, run_with_limit};

const LIMIT: Duration = Duration::from_secs(20);
/// Bytes a pre-existing file holds; the test checks they are still there.
const OLD: &str = "old contents: must survive\n";

/// `espsim cert --cert DIR/cert.pem --key DIR/key.pem EXTRA…`.
fn cert(dir: &Path, extra: &[&str]) -> Finished {
    let mut cmd = Command::new(espsim_bin());
    cmd.arg("cert")
        .arg("--cert")
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"))
        .args(extra);
    run_with_limit(&mut cmd, LIMIT).expect("espsim cert runs")
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn assert_key_pem(path: &Path) {
    let meta = std::fs::symlink_metadata(path).expect("key metadata");
    assert!(
        meta.file_type().is_file(),
        "{} is a regular file",
        path.display()
    );
    assert!(
        read(path).starts_with("-----BEGIN PRIVATE KEY-----"),
        "{}",
        read(path)
    );
    assert_eq!(mode(path), 0o600, "key mode {:o}", mode(path));
}

fn assert_refused(out: &Finished, path: &Path) {
    assert_eq!(out.status.code(), Some(2), "exit code: {out:?}");
    assert!(
        out.stderr.contains("refusing to overwrite") && out.stderr.contains("--force"),
        "stderr: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&path.display().to_string()),
        "names {}: {}",
        path.display(),
        out.stderr
    );
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
}

#[test]
fn cert_creates_the_key_mode_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = cert(dir.path(), &[]);
    assert!(out.status.success(), "{out:?}");
    assert_key_pem(&dir.path().join("key.pem"));
    let cert = dir.path().join("cert.pem");
    assert!(read(&cert).starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        mode(&cert) & 0o022,
        0,
        "certificate not group/world-writable"
    );
}

#[test]
fn cert_refuses_to_overwrite_an_existing_key_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key.pem");
    std::fs::write(&key, OLD).expect("old key");
    let out = cert(dir.path(), &[]);
    assert_refused(&out, &key);
    assert_eq!(read(&key), OLD);
    assert!(
        !dir.path().join("cert.pem").exists(),
        "no certificate without its key"
    );
}

#[test]
fn cert_refuses_to_overwrite_an_existing_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, OLD).expect("old cert");
    let out = cert(dir.path(), &[]);
    assert_refused(&out, &cert_path);
    assert_eq!(read(&cert_path), OLD);
    assert!(!dir.path().join("key.pem").exists(), "nothing written");
}

#[test]
fn cert_does_not_follow_a_symlink_at_the_key_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("target.txt");
    std::fs::write(&target, OLD).expect("target");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let key = dir.path().join("key.pem");
    symlink(&target, &key).expect("symlink");

    let out = cert(dir.path(), &[]);
    assert_refused(&out, &key);
    assert!(out.stderr.contains("symbolic link"), "{}", out.stderr);
    assert_eq!(read(&target), OLD, "the link's target is untouched");
    assert!(
        std::fs::symlink_metadata(&key)
            .expect("link")
            .file_type()
            .is_symlink()
    );

    // --force replaces the link itself; its target still holds its old bytes and mode.
    let out = cert(dir.path(), &["--force"]);
    assert!(out.status.success(), "{out:?}");
    assert_key_pem(&key);
    assert_eq!(read(&target), OLD, "the link's target is untouched");
    assert_eq!(mode(&target), 0o644);
}

#[test]
fn cert_does_not_create_the_target_of_a_dangling_symlink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target: PathBuf = dir.path().join("elsewhere.pem");
    let key = dir.path().join("key.pem");
    symlink(&target, &key).expect("symlink");
    let out = cert(dir.path(), &[]);
    assert_refused(&out, &key);
    assert!(!target.exists(), "nothing written through the link");
    let out = cert(dir.path(), &["--force"]);
    assert!(out.status.success(), "{out:?}");
    assert_key_pem(&key);
    assert!(!target.exists(), "nothing written through the link");
}

#[test]
fn cert_force_replaces_existing_files_and_makes_the_key_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key.pem");
    let cert_path = dir.path().join("cert.pem");
    for path in [&key, &cert_path] {
        std::fs::write(path, OLD).expect("old file");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let out = cert(dir.path(), &["--force"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.starts_with("wrote "), "{}", out.stdout);
    assert_key_pem(&key);
    assert!(read(&cert_path).starts_with("-----BEGIN CERTIFICATE-----"));
    // No temporary file is left beside them.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}
