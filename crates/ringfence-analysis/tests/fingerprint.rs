//! Finding fingerprints survive edits that do not change the finding
//! (a rule inserted elsewhere, renumbered lines, chains in another order)
//! and change when the finding does. Input: the repository's example
//! ruleset, which has blocked, partial, excess, shadowed and redundant
//! findings against the embedded example site.

use proptest::prelude::*;
use ringfence_analysis::fingerprint::{verify_findings, Finding, FindingKind};
use ringfence_analysis::verify::verify;
use ringfence_model::Hook;
use ringfence_parse::{parse_ruleset, RulesetFormat};
use std::collections::{BTreeMap, BTreeSet};

const EXAMPLE: &str = include_str!("../../../examples/ruleset.rules");

fn findings(text: &str) -> Vec<Finding> {
    let rs =
        parse_ruleset(text, "ruleset.rules", RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"));
    let site = ringfence_site::example_site().resolve();
    let report = verify(&rs, &site, Hook::Forward);
    verify_findings(&report, &rs)
}

fn prints(v: &[Finding]) -> BTreeSet<String> {
    v.iter().map(|f| f.fingerprint.hex()).collect()
}

/// Fingerprint -> (kind, subject) for messages.
fn by_print(v: &[Finding]) -> BTreeMap<String, (FindingKind, String)> {
    v.iter()
        .map(|f| (f.fingerprint.hex(), (f.kind, f.subject.clone())))
        .collect()
}

/// Insert `line` before the first line that starts with `before`.
fn insert_before(text: &str, before: &str, line: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for l in text.lines() {
        if !done && l.starts_with(before) {
            out.push_str(line);
            out.push('\n');
            done = true;
        }
        out.push_str(l);
        out.push('\n');
    }
    assert!(done, "no line starts with {before:?}");
    out
}

#[test]
fn example_has_every_kind_of_rule_and_region_finding() {
    let v = findings(EXAMPLE);
    for k in [
        FindingKind::Excess,
        FindingKind::Shadowed,
        FindingKind::Redundant,
    ] {
        assert!(v.iter().any(|f| f.kind == k), "no {k:?} finding: {v:#?}");
    }
    assert!(v
        .iter()
        .any(|f| f.kind == FindingKind::Flow && f.is_problem()));
    assert_eq!(prints(&v).len(), v.len(), "fingerprints are distinct");
}

#[test]
fn renumbered_lines_keep_every_fingerprint() {
    let before = findings(EXAMPLE);
    let shifted = format!("# one\n# two\n# three\n{EXAMPLE}");
    let after = findings(&shifted);
    // The rule references did move ...
    let subj = |v: &[Finding]| -> BTreeSet<String> {
        v.iter()
            .filter(|f| f.kind == FindingKind::Shadowed)
            .map(|f| f.subject.clone())
            .collect()
    };
    assert_ne!(subj(&before), subj(&after));
    // ... the fingerprints did not.
    assert_eq!(prints(&before), prints(&after));
}

#[test]
fn unrelated_rule_at_the_top_of_a_chain_keeps_every_fingerprint() {
    let before = findings(EXAMPLE);
    // Drops traffic to an address no flow and no accept rule names: it
    // changes no verdict (it may itself be reported as redundant).
    let text = insert_before(
        EXAMPLE,
        "-A TKG ",
        "-A TKG -s 198.19.200.0/24 -d 198.19.201.7/32 -p tcp -m tcp --dport 7 -j DROP",
    );
    let after = findings(&text);
    let missing: Vec<_> = prints(&before)
        .difference(&prints(&after))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "lost: {:?}",
        missing
            .iter()
            .map(|k| by_print(&before)[k].clone())
            .collect::<Vec<_>>()
    );
    // Anything new is about the inserted rule (line 17) only.
    for f in after
        .iter()
        .filter(|f| !prints(&before).contains(&f.fingerprint.hex()))
    {
        assert_eq!(
            f.subject, "ruleset.rules:17",
            "unexpected new finding {f:?}"
        );
    }
}

/// Move the INFRA chain's declaration and rules before TKG's.
fn swap_chains(text: &str) -> String {
    let mut head = Vec::new();
    let mut tkg = Vec::new();
    let mut infra = Vec::new();
    let mut tail = Vec::new();
    for l in text.lines() {
        if l.starts_with("-A TKG ") {
            tkg.push(l);
        } else if l.starts_with("-A INFRA ") {
            infra.push(l);
        } else if l == "COMMIT" || !tail.is_empty() {
            tail.push(l);
        } else if l == ":TKG - [0:0]" {
            continue;
        } else if l == ":INFRA - [0:0]" {
            head.push(":INFRA - [0:0]");
            head.push(":TKG - [0:0]");
        } else {
            head.push(l);
        }
    }
    let mut out: Vec<&str> = head;
    out.extend(infra);
    out.extend(tkg);
    out.extend(tail);
    out.join("\n") + "\n"
}

#[test]
fn reordered_chains_keep_every_fingerprint() {
    let swapped = swap_chains(EXAMPLE);
    assert_ne!(swapped, EXAMPLE);
    assert_eq!(prints(&findings(EXAMPLE)), prints(&findings(&swapped)));
}

#[test]
fn a_changed_finding_changes_its_fingerprint() {
    let before = by_print(&findings(EXAMPLE));
    // The extra Harbor port moves from 8080 to 8081: same rule position,
    // another excess region.
    let text = EXAMPLE.replace(
        "-A INFRA -d 198.18.1.20/32 -p tcp -m tcp --dport 8080 -j ACCEPT",
        "-A INFRA -d 198.18.1.20/32 -p tcp -m tcp --dport 8081 -j ACCEPT",
    );
    let after = by_print(&findings(&text));
    let excess = |m: &BTreeMap<String, (FindingKind, String)>| -> BTreeSet<String> {
        m.iter()
            .filter(|(_, (k, s))| *k == FindingKind::Excess && s.contains("198.18.1.20"))
            .map(|(fp, _)| fp.clone())
            .collect()
    };
    assert!(!excess(&before).is_empty());
    assert!(excess(&before).is_disjoint(&excess(&after)));

    // Opening vCenter changes the to-vcenter flow's finding.
    let flow_fp = |m: &BTreeMap<String, (FindingKind, String)>| {
        m.iter()
            .find(|(_, (k, s))| *k == FindingKind::Flow && s == "to-vcenter")
            .map(|(fp, _)| fp.clone())
            .expect("to-vcenter flow finding")
    };
    let open = insert_before(
        EXAMPLE,
        "-A INFRA -j RETURN",
        "-A INFRA -d 198.18.1.30/32 -p tcp -m tcp --dport 443 -j ACCEPT",
    );
    let opened = by_print(&findings(&open));
    assert_ne!(flow_fp(&before), flow_fp(&opened));

    // The shadowed kubelet rule with another port is another finding.
    let shadow_fp = |m: &BTreeMap<String, (FindingKind, String)>| -> BTreeSet<String> {
        m.iter()
            .filter(|(_, (k, _))| *k == FindingKind::Shadowed)
            .map(|(fp, _)| fp.clone())
            .collect()
    };
    let moved = EXAMPLE.replace(
        "-d 198.18.10.0/24 -p tcp -m tcp --dport 10250 -j ACCEPT",
        "-d 198.18.10.0/24 -p tcp -m tcp --dport 10255 -j ACCEPT",
    );
    assert_ne!(moved, EXAMPLE);
    let m = by_print(&findings(&moved));
    assert_eq!(shadow_fp(&before).len(), shadow_fp(&m).len());
    assert!(shadow_fp(&before).is_disjoint(&shadow_fp(&m)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// An unrelated drop rule (addresses in 198.19.128.0/17, which nothing
    /// else names) inserted before any rule of the TKG or INFRA chains,
    /// together with comment lines that renumber everything, loses no
    /// existing fingerprint; anything new is about the inserted rule.
    #[test]
    fn unrelated_insert_anywhere_keeps_existing_fingerprints(
        at in 0usize..40,
        comments in 0usize..5,
        host in 0u8..=255,
        port in 1u16..1000,
    ) {
        let base = prints(&findings(EXAMPLE));
        let rules: Vec<usize> = EXAMPLE
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("-A TKG ") || l.starts_with("-A INFRA "))
            .map(|(i, _)| i)
            .collect();
        let idx = rules[at % rules.len()];
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        let chain = lines[idx].split_whitespace().nth(1).unwrap();
        let new_rule = format!(
            "-A {chain} -s 198.19.200.0/24 -d 198.19.201.{host}/32 -p udp -m udp --dport {port} -j DROP"
        );
        let mut out: Vec<String> = (0..comments).map(|i| format!("# comment {i}")).collect();
        for (i, l) in lines.iter().enumerate() {
            if i == idx {
                out.push(new_rule.clone());
            }
            out.push((*l).to_string());
        }
        let text = out.join("\n") + "\n";
        let inserted = format!("ruleset.rules:{}", comments + idx + 1);
        let after = findings(&text);
        let now = prints(&after);
        prop_assert!(base.is_subset(&now), "lost fingerprints");
        for f in after.iter().filter(|f| !base.contains(&f.fingerprint.hex())) {
            prop_assert_eq!(&f.subject, &inserted);
        }
    }
}
