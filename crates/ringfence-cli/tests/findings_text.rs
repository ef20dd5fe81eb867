//! The text findings of `verify`, `trace` and `diff` (issue 16): each
//! deciding rule named by its reference with its text quoted, port sets as
//! lists and ranges with `all but` complements, IPv6 endpoints in brackets,
//! and never an empty "by". The outputs are pinned with insta snapshots.
//!
//! Each test copies its inputs into a temporary directory and runs there, so
//! rule references are short relative names (`fw.rules:21`).

mod common;
use common::{repo_root, run_in, write};

use std::path::Path;

fn copy_example_ruleset(dir: &Path, name: &str) {
    std::fs::copy(repo_root().join("examples/ruleset.rules"), dir.join(name)).unwrap();
}

/// The example site moved to IPv6 for management, workload and the pod and
/// service networks (the other zones stay IPv4).
fn write_v6_site(dir: &Path) {
    let site = std::fs::read_to_string(repo_root().join("examples/site.yaml")).unwrap();
    let site = site
        .replace(
            "management: [198.18.10.0/24]",
            "management: [2001:db8:10::/64]",
        )
        .replace(
            "workload: [198.18.20.0/24, 198.18.21.0/24]",
            "workload: [2001:db8:20::/64]",
        )
        .replace("service_cidr: 100.64.0.0/13", "service_cidr: fd00:64::/108")
        .replace("cluster_cidr: 100.96.0.0/11", "cluster_cidr: fd00:96::/64");
    assert!(site.contains("2001:db8:20::/64") && site.contains("fd00:96::/64"));
    write(dir, "site6.yaml", &site);
}

const V4: &str = "*filter\n:FORWARD DROP [0:0]\n\
    -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
    -A FORWARD -s 198.18.1.10/32 -d 198.18.1.53/32 -p udp -m udp --dport 53 -j ACCEPT\n\
    COMMIT\n";

const V6: &str = "*filter\n:FORWARD DROP [0:0]\n\
    -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
    -A FORWARD -s 2001:db8:20::/64 -d 2001:db8:10::/64 -p tcp -m tcp --dport 6443 -j ACCEPT\n\
    -A FORWARD -d 2001:db8:10::5/128 -p udp -m udp ! --dport 53 -j ACCEPT\n\
    COMMIT\n";

#[test]
fn verify_text_quotes_every_deciding_rule_of_the_example() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_ruleset(dir.path(), "fw.rules");
    let (code, out, err) = run_in(
        dir.path(),
        &["verify", "--example", "--ruleset", "fw.rules"],
    );
    assert_eq!(code, 1, "{err}");
    // The brief's own example shape: reference, colon, the rule's text.
    assert!(
        out.contains("decided by fw.rules:21: -A FORWARD -j DROP"),
        "{out}"
    );
    insta::assert_snapshot!("verify_example_text", out);
}

#[test]
fn verify_text_brackets_ipv6_endpoints_and_writes_port_complements() {
    let dir = tempfile::tempdir().unwrap();
    write_v6_site(dir.path());
    write(dir.path(), "v4.rules", V4);
    write(dir.path(), "v6.rules", V6);
    let (code, out, err) = run_in(
        dir.path(),
        &[
            "verify",
            "--site",
            "site6.yaml",
            "--ruleset",
            "v4.rules",
            "--ruleset",
            "v6.rules",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("e.g. tcp [2001:db8:10::1]:40000 -> [2001:db8:20::1]:6443 not accepted"),
        "{out}"
    );
    assert!(out.contains("ports all but 53"), "{out}");
    insta::assert_snapshot!("verify_dual_stack_text", out);
}

#[test]
fn trace_text_names_the_deciding_rule_with_its_text_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_ruleset(dir.path(), "fw.rules");
    let trace = |src: &str, dst: &str, proto: &str, dport: &str| {
        let (code, out, err) = run_in(
            dir.path(),
            &[
                "trace",
                "--ruleset",
                "fw.rules",
                "--src",
                src,
                "--dst",
                dst,
                "--proto",
                proto,
                "--sport",
                "40000",
                "--dport",
                dport,
            ],
        );
        assert_eq!(code, 0, "{err}");
        out
    };
    let accepted = trace("198.18.20.5", "198.18.10.5", "tcp", "6443");
    let dropped = trace("198.18.10.5", "198.18.1.30", "tcp", "443");
    let icmp = trace("198.18.10.5", "198.18.1.40", "icmp", "0");
    assert!(
        dropped.contains("  decided by fw.rules:21: -A FORWARD -j DROP  (FORWARD)"),
        "{dropped}"
    );
    // No ports on a protocol without them.
    assert!(
        icmp.starts_with("forward icmp 198.18.10.5 -> 198.18.1.40: reject"),
        "{icmp}"
    );
    insta::assert_snapshot!("trace_text", format!("{accepted}\n{dropped}\n{icmp}"));
}

#[test]
fn trace_text_brackets_ipv6_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "v4.rules", V4);
    write(dir.path(), "v6.rules", V6);
    let (code, out, err) = run_in(
        dir.path(),
        &[
            "trace",
            "--ruleset",
            "v4.rules",
            "--ruleset",
            "v6.rules",
            "--src",
            "2001:db8:20::7",
            "--dst",
            "2001:db8:10::5",
            "--proto",
            "tcp",
            "--sport",
            "40000",
            "--dport",
            "6443",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("forward tcp [2001:db8:20::7]:40000 -> [2001:db8:10::5]:6443: accept\n"),
        "{out}"
    );
    assert!(
        out.contains("decided by v6.rules:4: -A FORWARD -s 2001:db8:20::/64"),
        "{out}"
    );
}

#[test]
fn diff_text_quotes_the_new_rules_of_what_opens_and_the_old_of_what_closes() {
    let dir = tempfile::tempdir().unwrap();
    copy_example_ruleset(dir.path(), "old.rules");
    let old = std::fs::read_to_string(dir.path().join("old.rules")).unwrap();
    let new = old.replace("--dport 8080 -j ACCEPT", "--dport 8081 -j ACCEPT");
    assert_ne!(old, new);
    write(dir.path(), "new.rules", &new);
    let (code, out, err) = run_in(dir.path(), &["diff", "old.rules", "new.rules", "--example"]);
    assert_eq!(code, 1, "{err}");
    insta::assert_snapshot!("diff_text", out);
}

#[test]
fn nft_handles_are_named_with_their_action_and_comment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join("crates/ringfence-parse/tests/data/nft/mixed.json"),
        dir.path().join("mixed.json"),
    )
    .unwrap();
    let (code, out, err) = run_in(
        dir.path(),
        &["verify", "--example", "--ruleset", "mixed.json"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("  inet t fw handle 19 (accept, comment \"dns\")  (chain inet t fw)"),
        "{out}"
    );
    assert!(
        out.contains("accepted by policy of inet t fw3 (accept)"),
        "{out}"
    );
}

/// With no base chain on the path nothing decides: the text says so instead
/// of printing "by" with nothing after it.
#[test]
fn no_empty_by_is_printed_when_no_base_chain_decides() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "input-only.rules",
        "*filter\n:INPUT DROP [0:0]\nCOMMIT\n",
    );
    let (code, out, err) = run_in(
        dir.path(),
        &["verify", "--example", "--ruleset", "input-only.rules"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains(
            "accepted with no rule deciding: no base chain on the forward path filters it"
        ),
        "{out}"
    );
    let (code, trace, err) = run_in(
        dir.path(),
        &[
            "trace",
            "--ruleset",
            "input-only.rules",
            "--src",
            "198.18.1.1",
            "--dst",
            "198.18.1.2",
            "--proto",
            "udp",
            "--dport",
            "53",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        trace.contains("decided by no rule: no base chain is on the forward path"),
        "{trace}"
    );
    for line in out.lines().chain(trace.lines()) {
        let t = line.trim_end();
        assert!(
            !(t.ends_with(" by")
                || t.ends_with(" by:")
                || t.contains(" by  ")
                || t.ends_with("via")),
            "empty by: {line:?}"
        );
    }
}
