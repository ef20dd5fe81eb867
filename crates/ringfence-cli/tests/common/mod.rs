//! What every end-to-end test of the `ringfence` binary needs: running it as
//! a user would, reading its output, and finding the repository's files.
//! Each test file includes this with `mod common;` and uses what it needs.

#![allow(dead_code)]

pub mod watching;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The built `ringfence` with `args`, without colour and without a
/// `SOURCE_DATE_EPOCH` inherited from the environment (tests that need one
/// set it themselves).
fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ringfence"));
    c.args(args)
        .env("NO_COLOR", "1")
        .env_remove("SOURCE_DATE_EPOCH");
    c
}

/// Run the built `ringfence` with `args` (see [`command`] for its environment).
pub fn ringfence(args: &[&str]) -> Output {
    command(args).output().expect("run ringfence")
}

/// (exit code, stdout, stderr) of a finished run; -1 when killed by a signal.
fn triple(o: &Output) -> (i32, String, String) {
    (o.status.code().unwrap_or(-1), stdout(o), stderr(o))
}

/// [`ringfence`], as (exit code, stdout, stderr); -1 when killed by a signal.
pub fn run(args: &[&str]) -> (i32, String, String) {
    triple(&ringfence(args))
}

/// [`run`] with `dir` as the working directory, so that paths in the output
/// are the short relative names the test wrote there.
pub fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    triple(
        &command(args)
            .current_dir(dir)
            .output()
            .expect("run ringfence"),
    )
}

/// [`run`] with `input` written to standard input (then closed).
pub fn run_stdin(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringfence");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    triple(&child.wait_with_output().expect("wait for ringfence"))
}

/// [`run`] that must exit 0 (stderr shown otherwise); its stdout.
pub fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "ringfence {args:?} exited {code}:\n{err}");
    out
}

/// [`run_in`] that must exit 0 (stderr shown otherwise); its stdout.
pub fn ok_in(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = run_in(dir, args);
    assert_eq!(code, 0, "ringfence {args:?} exited {code}:\n{err}");
    out
}

/// [`run`] that must be refused as bad input, exit code 2 (stdout and stderr
/// shown otherwise); its stderr, for the test to check the message.
pub fn refused(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(
        code, 2,
        "ringfence {args:?} exited {code}, not 2:\n{err}{out}"
    );
    err
}

/// Write `text` to `dir/name` and return that path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    p
}

/// Parse a JSON report, showing the text when it is not JSON.
pub fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The repository root (canonical).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A kube-bench `cfg` directory in the repository: ringfence's own
/// kube-bench-format cis-1.6 (`crates/ringfence-cis/tests/fixtures/kube-bench/cfg`).
pub fn kube_bench_cfg() -> PathBuf {
    let c = repo_root().join("crates/ringfence-cis/tests/fixtures/kube-bench/cfg");
    assert!(
        c.join("config.yaml").is_file(),
        "{} is missing",
        c.display()
    );
    c
}

/// The network namespaces of lab `name` that exist now (`rf-<name>-...`).
pub fn lab_namespaces(name: &str) -> Vec<String> {
    let prefix = format!("rf-{name}-");
    ringfence_lab::list_namespaces()
        .expect("list network namespaces")
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Runs `lab down` for a lab when dropped (the cleanup on failure too), then,
/// unless the test is already failing, checks that it exited 0 and that none
/// of the lab's namespaces is left.
pub struct LabDown {
    /// The lab's `--name`.
    pub name: String,
    /// The lab's `--state-dir`.
    pub state_dir: PathBuf,
}

impl LabDown {
    /// The guard of lab `name` kept in `state_dir`.
    pub fn new(name: &str, state_dir: &Path) -> LabDown {
        LabDown {
            name: name.to_string(),
            state_dir: state_dir.to_path_buf(),
        }
    }

    /// [`run`] `ringfence lab <sub> <args> --name <name> --state-dir <dir>`
    /// for this lab.
    pub fn lab(&self, sub: &str, args: &[&str]) -> (i32, String, String) {
        let state = self.state_dir.to_str().expect("UTF-8 state dir");
        let mut all = vec!["lab", sub];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--name", &self.name, "--state-dir", state]);
        run(&all)
    }
}

impl Drop for LabDown {
    fn drop(&mut self) {
        let (code, _, err) = self.lab("down", &[]);
        if !std::thread::panicking() {
            assert_eq!(code, 0, "lab down: {err}");
            let left = lab_namespaces(&self.name);
            assert!(left.is_empty(), "lab {} left {left:?}", self.name);
        }
    }
}
