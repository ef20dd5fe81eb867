//! `--ruleset` given more than once, and the formats operators really have,
//! end to end: generate a site's rules, then verify, trace and diff them
//! from the files a host would hold.

mod common;

use common::{repo_root, run};
use std::path::Path;

fn all_features() -> String {
    repo_root()
        .join("examples/all-features.yaml")
        .display()
        .to_string()
}

fn generate(dir: &Path, target: &str, out: &str) {
    let out = dir.join(out).display().to_string();
    let site = all_features();
    let (code, _, err) = run(&[
        "generate", "--site", &site, "--target", target, "--out", &out,
    ]);
    assert_eq!(code, 0, "{err}");
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn verify_reads_iptables_and_ip6tables_dumps_together() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "iptables", "fw");
    let (v4, v6) = (p(dir.path(), "fw.v4.rules"), p(dir.path(), "fw.v6.rules"));
    let site = all_features();
    let (code, out, err) = run(&[
        "verify",
        "--site",
        &site,
        "--ruleset",
        &v4,
        "--ruleset",
        &v6,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": OK"), "{out}");
}

#[test]
fn verify_of_generated_nftables_text_is_ok() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "nftables", "fw.nft");
    let site = all_features();
    let rs = p(dir.path(), "fw.nft");
    let (code, out, err) = run(&["verify", "--site", &site, "--ruleset", &rs]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": OK"), "{out}");
}

#[test]
fn trace_of_a_family_without_a_file_is_unknown_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "iptables", "fw");
    let v4 = p(dir.path(), "fw.v4.rules");
    let (code, out, err) = run(&[
        "trace",
        "--ruleset",
        &v4,
        "--src",
        "2001:db8::1",
        "--dst",
        "2001:db8::2",
        "--proto",
        "tcp",
        "--dport",
        "22",
    ]);
    // An undecided fate is a finding: exit 1.
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("unknown"), "{out}");
    assert!(out.contains("IPv6 not covered"), "{out}");
}

#[test]
fn a_set_the_ipset_files_do_not_define_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let sets = p(dir.path(), "sets.save");
    let rules = p(dir.path(), "fw.rules");
    std::fs::write(
        &sets,
        "create admins hash:ip family inet\nadd admins 198.18.0.10\n",
    )
    .unwrap();
    std::fs::write(
        &rules,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -m set --match-set admin src -j ACCEPT\nCOMMIT\n",
    )
    .unwrap();
    let (code, _, err) = run(&[
        "trace",
        "--ruleset",
        &rules,
        "--ruleset",
        &sets,
        "--src",
        "198.18.0.10",
        "--dst",
        "198.18.1.1",
        "--proto",
        "tcp",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "{rules}:5:31: set `admin` is not defined in the ipset files given ({sets})"
        )),
        "{err}"
    );
    assert!(err.contains("did you mean `admins`?"), "{err}");
}

#[test]
fn every_unreadable_ruleset_file_is_named_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        p(dir.path(), "missing-a.rules"),
        p(dir.path(), "missing-b.rules"),
    );
    let (code, _, err) = run(&["verify", "--example", "--ruleset", &a, "--ruleset", &b]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("missing-a.rules") && err.contains("missing-b.rules"),
        "{err}"
    );
}

#[test]
fn diff_takes_more_files_for_each_side() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), "iptables", "fw");
    let (v4, v6) = (p(dir.path(), "fw.v4.rules"), p(dir.path(), "fw.v6.rules"));
    let (code, out, err) = run(&["diff", &v4, &v4, "--old-ruleset", &v6, "--new-ruleset", &v6]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("newly allowed (0)"), "{out}");
}
