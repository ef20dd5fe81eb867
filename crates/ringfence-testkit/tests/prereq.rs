//! A missing prerequisite never passes silently: in strict mode it fails the
//! test naming what is missing; otherwise it is recorded in the skip log that
//! scripts/test.sh counts. Each case runs this test binary again as a child
//! with its own environment, so no test here changes another's environment.

use std::process::Command;

const CHILD: &str = "RINGFENCE_TESTKIT_CHILD";

/// The child's body: require a tool that does not exist.
#[test]
#[ignore = "helper: run as a child process by the tests below; not a test of its own"]
fn child_requires_a_missing_tool() {
    assert!(std::env::var_os(CHILD).is_some(), "run by the tests below");
    let ran =
        ringfence_testkit::require!(ringfence_testkit::Need::Tool("rf-no-such-tool-anywhere"));
    assert!(!ran, "a missing tool was reported present");
}

fn child(env: &[(&str, &str)], log: &std::path::Path) -> std::process::Output {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "child_requires_a_missing_tool",
        "--ignored",
        "--nocapture",
    ])
    .env(CHILD, "1")
    .env_remove("CI")
    .env_remove("RINGFENCE_REQUIRE_ALL")
    .env("RINGFENCE_SKIP_LOG", log);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn without_ci_a_missing_tool_is_logged_as_skipped_with_the_test_name_and_reason() {
    let dir = tempfile_dir();
    let log = dir.join("skipped");
    let out = child(&[], &log);
    assert!(out.status.success(), "{out:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    let (name, reason) = logged.trim_end().split_once('\t').unwrap();
    assert!(name.ends_with("child_requires_a_missing_tool"), "{name}");
    assert!(reason.contains("`rf-no-such-tool-anywhere`"), "{reason}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped: "));
}

#[test]
fn with_ci_true_a_missing_tool_fails_the_test_and_names_the_tool() {
    for env in [("CI", "true"), ("RINGFENCE_REQUIRE_ALL", "1")] {
        let dir = tempfile_dir();
        let log = dir.join("skipped");
        let out = child(&[env], &log);
        assert!(!out.status.success(), "{env:?} passed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("prerequisite missing") && text.contains("rf-no-such-tool-anywhere"),
            "{text}"
        );
        assert!(
            !log.exists(),
            "a failing test must not also be logged as skipped"
        );
    }
}

fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "rf-testkit-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
