//! No silent default site (issue 16): every command that works on a site
//! stops with exit 2 and a message naming `--site FILE` and `--example` when
//! given neither, and `--example` runs it on the embedded example site.

mod common;
use common::{ok, refused, repo_root, run};

fn example_ruleset() -> String {
    repo_root()
        .join("examples/ruleset.rules")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// Exit 2, nothing on stdout, and a message that names both ways to give a site.
fn assert_no_site_error(args: &[&str]) {
    let (code, out, err) = run(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(out.is_empty(), "{args:?} wrote to stdout: {out}");
    assert!(
        err.contains("no site given") && err.contains("--site FILE") && err.contains("--example"),
        "{args:?}: {err}"
    );
}

#[test]
fn verify_without_a_site_exits_2_naming_site_and_example() {
    let rs = example_ruleset();
    assert_no_site_error(&["verify", "--ruleset", &rs]);
}

#[test]
fn verify_example_checks_the_embedded_site() {
    let rs = example_ruleset();
    let (code, out, err) = run(&["verify", "--example", "--ruleset", &rs]);
    // The example ruleset has deliberate defects: findings, exit 1.
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("against site example-dc"), "{out}");
    assert!(out.contains("to-vcenter"), "{out}");
}

#[test]
fn generate_without_a_site_exits_2_naming_site_and_example() {
    assert_no_site_error(&["generate", "--target", "nftables"]);
}

#[test]
fn generate_example_renders_the_embedded_site() {
    let out = ok(&["generate", "--example", "--target", "nftables"]);
    assert!(out.contains("198.18.10.0/24"), "{out}");
}

#[test]
fn flows_without_a_site_exits_2_naming_site_and_example() {
    assert_no_site_error(&["flows"]);
}

#[test]
fn flows_example_lists_the_embedded_site() {
    let out = ok(&["flows", "--example"]);
    assert!(out.starts_with("site example-dc"), "{out}");
}

#[test]
fn report_without_a_site_exits_2_naming_site_and_example() {
    let rs = example_ruleset();
    assert_no_site_error(&["report", "--ruleset", &rs]);
}

#[test]
fn report_example_renders_the_embedded_report() {
    let out = ok(&["report", "--example", "--format", "markdown"]);
    assert!(out.contains("example-dc"), "{out}");
}

#[test]
fn lab_up_and_run_without_a_site_exit_2_naming_site_and_example() {
    let rs = example_ruleset();
    // The site is checked before anything needs root or touches the kernel.
    assert_no_site_error(&["lab", "up", "--ruleset", &rs]);
    assert_no_site_error(&["lab", "run", "--ruleset", &rs]);
}

#[test]
fn lab_up_example_takes_the_embedded_site_and_asks_only_for_the_ruleset() {
    let err = refused(&["lab", "up", "--example"]);
    assert!(
        err.contains("no ruleset given") && !err.contains("no site given"),
        "{err}"
    );
}

#[test]
fn site_and_example_together_are_refused() {
    let site = repo_root().join("examples/site.yaml");
    let site = site.to_str().unwrap();
    for args in [
        vec!["flows", "--site", site, "--example"],
        vec![
            "generate",
            "--site",
            site,
            "--example",
            "--target",
            "nftables",
        ],
        vec!["lab", "up", "--site", site, "--example"],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("cannot be used with"), "{args:?}: {err}");
    }
}

#[test]
fn probe_without_a_site_exits_2_and_says_it_has_no_example() {
    let (code, out, err) = run(&["probe"]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("--site FILE") && err.contains("no --example"),
        "{err}"
    );
}

#[test]
fn diff_compares_rulesets_alone_without_a_site_and_flows_with_example() {
    let rs = example_ruleset();
    let out = ok(&["diff", &rs, &rs]);
    assert!(!out.contains("flows that change"), "{out}");
    let out = ok(&["diff", "--example", &rs, &rs]);
    assert!(out.contains("flows that change (0)"), "{out}");
}
