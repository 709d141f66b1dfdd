//! The README's Quick start, run verbatim: what a newcomer types right after the two set-up
//! commands must work and print what the README shows.
//!
//! The README marks its blocks with HTML comments (invisible when rendered):
//!
//! - `<!-- quickstart:run -->` before a block that starts espsim and keeps running (the first
//!   terminal). It runs in the background, in its own process group, until its JSON ready line
//!   arrives on stdout; the whole group is stopped at the end.
//! - `<!-- quickstart:check -->` before a block the user runs next (a second terminal). It must
//!   exit 0.
//! - `<!-- quickstart:output -->` before a block showing what the block before it prints: for a
//!   `run` block its ready line, for a `check` block its stdout. Each shown line must match the
//!   printed line in the same place, with runs of spaces compared as one and `…` standing for any
//!   text (timings, the random seed); a line that is only `…` stands for any number of lines.
//!
//! Every block runs with `bash -c BLOCK` from the repository root with the `espsim` under test
//! first on `PATH`, as `export PATH="$PWD/target/debug:$PATH"` in the set-up makes it. The
//! commands use the README's real default ports (8080, 5353, 8475): this is the only test that
//! does, since every other test binds port 0.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use espsim_tests::{Espsim, espsim_bin, repo_root, run_with_limit};

/// One fenced block of the Quick start and what the README does with it.
#[derive(Debug)]
struct Block {
    kind: Kind,
    /// The block's text, without its fences.
    text: String,
    /// The README line the block starts on, for messages.
    line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Run,
    Check,
    Output,
}

/// The marked blocks of `readme`, in order.
fn marked_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines().enumerate();
    while let Some((_, line)) = lines.next() {
        let kind = match line.trim() {
            "<!-- quickstart:run -->" => Kind::Run,
            "<!-- quickstart:check -->" => Kind::Check,
            "<!-- quickstart:output -->" => Kind::Output,
            _ => continue,
        };
        let (start, fence) = lines
            .by_ref()
            .find(|(_, l)| l.trim_start().starts_with("```"))
            .unwrap_or_else(|| panic!("README: a {kind:?} marker without a block after it"));
        let body: Vec<&str> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| l.trim() != "```")
            .collect();
        assert!(
            fence.trim().starts_with("```"),
            "README line {}: not a fence",
            start + 1
        );
        blocks.push(Block {
            kind,
            text: body.join("\n"),
            line: start + 1,
        });
    }
    blocks
}

/// Whether `actual` matches the shown `expected` line (`…` is any text; spaces collapsed).
fn line_matches(expected: &str, actual: &str) -> bool {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (expected, actual) = (squash(expected), squash(actual));
    let mut parts = expected.split('…');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether the printed `actual` lines match the shown `expected` block.
fn output_matches(expected: &[&str], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.iter().all(|l| l.trim().is_empty()),
        Some((&"…", rest)) => {
            (0..=actual.len()).any(|skip| output_matches(rest, &actual[skip..]))
        }
        Some((line, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| line_matches(line, a) && output_matches(rest, more)),
    }
}

/// `bash -c TEXT` from the repository root with the tested `espsim` first on `PATH`.
fn bash(text: &str) -> Command {
    let bin_dir: PathBuf = espsim_bin()
        .parent()
        .expect("the espsim binary is in a directory")
        .to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin_dir];
    dirs.extend(std::env::split_paths(&path));
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(text)
        .current_dir(repo_root())
        .env("PATH", std::env::join_paths(dirs).expect("PATH entries"))
        // What the user's shell would not have: the test harness's variables.
        .env_remove("ESPSIM_CONTROL_TOKEN")
        .env_remove("ESPSIM_TOKEN")
        .env_remove("ESPSIM_CONTROL");
    cmd
}

/// Stops a `run` block's whole process group (bash and what it started) when dropped.
struct Group(Espsim);

impl Drop for Group {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    }
}

#[test]
fn readme_quick_start_runs_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let blocks = marked_blocks(&readme);
    assert!(
        blocks.iter().any(|b| b.kind == Kind::Run) && blocks.iter().any(|b| b.kind == Kind::Check),
        "the README's Quick start has no marked blocks (<!-- quickstart:run -->, \
         <!-- quickstart:check -->); found {blocks:?}"
    );
    let mut running = Vec::new();
    // What the block before an `output` block printed, and where that block is.
    let mut printed: Option<(String, usize)> = None;
    for block in &blocks {
        match block.kind {
            Kind::Run => {
                let mut cmd = bash(&block.text);
                cmd.process_group(0);
                let espsim = Group(Espsim::start(cmd, Duration::from_secs(60)));
                printed = Some((espsim.0.ready_line.clone(), block.line));
                running.push(espsim);
            }
            Kind::Check => {
                let done = run_with_limit(&mut bash(&block.text), Duration::from_secs(120))
                    .unwrap_or_else(|e| panic!("README line {}: {e}", block.line));
                assert!(
                    done.status.success(),
                    "README line {}: `{}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
                    block.line,
                    block.text,
                    done.status,
                    done.stdout,
                    done.stderr
                );
                printed = Some((done.stdout, block.line));
            }
            Kind::Output => {
                let (actual, of) = printed
                    .take()
                    .unwrap_or_else(|| panic!("README line {}: output of nothing", block.line));
                let expected: Vec<&str> = block.text.lines().collect();
                let actual_lines: Vec<&str> = actual.lines().collect();
                assert!(
                    output_matches(&expected, &actual_lines),
                    "README line {}: the block at line {of} printed\n{actual}\nbut the README \
                     shows\n{}",
                    block.line,
                    block.text
                );
            }
        }
    }
    drop(running);
}

#[test]
fn output_lines_match_with_ellipses() {
    assert!(line_matches("a … c", "a b c"));
    assert!(line_matches("PASS … ms", "PASS   1.2 ms"));
    assert!(!line_matches("a … c", "a b d"));
    assert!(line_matches("{\"seed\":…}", "{\"seed\":7}"));
    assert!(output_matches(&["x", "…", "z"], &["x", "y", "y", "z"]));
    assert!(!output_matches(&["x", "z"], &["x", "y", "z"]));
}

/// Each device file the README shows (`<!-- device-file:PATH -->` before its block) is the file
/// at PATH, byte for byte, and `espsim validate --device` accepts it: the README's example is
/// the one the tests run.
#[test]
fn readme_device_files_are_the_repositorys_examples() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut lines = readme.lines();
    let mut seen = 0;
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- device-file:")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next().map(str::trim),
            Some("```yaml"),
            "{path}: a yaml block follows"
        );
        let shown: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let file = std::fs::read_to_string(root.join(path)).expect("the example exists");
        assert_eq!(
            format!("{}\n", shown.join("\n")),
            file,
            "README block ≠ {path}"
        );
        let mut cmd = Command::new(espsim_bin());
        cmd.args(["validate", "--device"]).arg(root.join(path));
        let done = run_with_limit(&mut cmd, Duration::from_secs(30)).expect("validate runs");
        assert!(done.status.success(), "{path}: {}", done.stderr);
        seen += 1;
    }
    assert!(seen > 0, "the README shows no device file");
}
