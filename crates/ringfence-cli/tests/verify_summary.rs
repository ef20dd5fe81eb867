//! `verify`'s excess summary (issue 15): the excess section leads with the
//! excess grouped by source zone, destination zone and service, with the
//! counts and the rules responsible; the JSON report carries the same
//! groups as `excess_summary`.

mod common;
use common::{json, repo_root, run_in, write};

use std::path::Path;

/// `verify --example --ruleset fw.rules` and `extra` in `dir`: (exit code,
/// stdout, stderr).
fn verify_fw(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["verify", "--example", "--ruleset", "fw.rules"];
    args.extend_from_slice(extra);
    run_in(dir, &args)
}

/// The example ruleset with excess in two more zone pairs: workload to
/// Harbor on tcp/5432 (two rules, one per workload network) and the
/// jumpbox to management on tcp/3389.
fn write_two_pair_ruleset(dir: &Path) {
    let rules = std::fs::read_to_string(repo_root().join("examples/ruleset.rules")).unwrap();
    let anchor = "-A FORWARD -m conntrack --ctstate INVALID -j DROP\n";
    assert!(rules.contains(anchor));
    let rules = rules.replace(
        anchor,
        &format!(
            "{anchor}-A FORWARD -s 198.18.20.0/24 -d 198.18.1.20/32 -p tcp -m tcp --dport 5432 -j ACCEPT\n\
             -A FORWARD -s 198.18.21.0/24 -d 198.18.1.20/32 -p tcp -m tcp --dport 5432 -j ACCEPT\n\
             -A FORWARD -s 198.18.1.10/32 -d 198.18.10.0/24 -p tcp -m tcp --dport 3389 -j ACCEPT\n"
        ),
    );
    write(dir, "fw.rules", &rules);
}

#[test]
fn verify_text_leads_excess_with_a_summary_by_zone_pair_and_service() {
    let dir = tempfile::tempdir().unwrap();
    write_two_pair_ruleset(dir.path());
    let (code, out, err) = verify_fw(dir.path(), &[]);
    assert_eq!(code, 1, "{err}");
    let excess = &out[out.find("\nexcess").expect("excess section")..];
    let summary = excess.find("by zones and service:").expect("summary");
    let list = excess.find("  regions:").expect("region list");
    assert!(summary < list, "the summary leads the list:\n{out}");
    assert!(
        excess.contains("    workload -> harbor: tcp port 5432: 2 regions\n"),
        "{out}"
    );
    assert!(
        excess.contains("    jumpbox -> management: tcp port 3389: 1 region\n"),
        "{out}"
    );
    insta::assert_snapshot!("verify_two_zone_pairs_text", excess);
}

#[test]
fn verify_json_has_excess_summary_groups_counting_every_region() {
    let dir = tempfile::tempdir().unwrap();
    write_two_pair_ruleset(dir.path());
    let (code, out, err) = verify_fw(dir.path(), &["--format", "json"]);
    assert_eq!(code, 1, "{err}");
    let v = json(&out);
    let groups = v["excess_summary"].as_array().expect("excess_summary");
    let wl = groups
        .iter()
        .find(|g| g["from"] == "workload" && g["to"] == "harbor")
        .expect("workload -> harbor group");
    assert_eq!(wl["service"], "tcp port 5432");
    assert_eq!(
        (wl["regions"].as_u64(), wl["certain"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(wl["possible"], 0);
    assert_eq!(wl["rules"].as_array().unwrap().len(), 2);
    assert_eq!(wl["rule_count"], 2);
    // Every listed region is in exactly one group.
    let counted: u64 = groups.iter().map(|g| g["regions"].as_u64().unwrap()).sum();
    assert_eq!(counted, v["summary"]["excess"].as_u64().unwrap());
    assert_eq!(counted as usize, v["excess"].as_array().unwrap().len());
}

#[test]
fn verify_text_cuts_long_excess_lists_and_says_how_many_more_the_json_holds() {
    // 60 single-port accepts to Harbor: 60 regions, each its own service.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(repo_root().join("examples/ruleset.rules")).unwrap();
    let anchor = "-A FORWARD -m conntrack --ctstate INVALID -j DROP\n";
    let extra: String = (0..60)
        .map(|i| {
            format!(
                "-A FORWARD -d 198.18.1.20/32 -p tcp -m tcp --dport {} -j ACCEPT\n",
                10_000 + 2 * i
            )
        })
        .collect();
    let rules = rules.replace(anchor, &format!("{anchor}{extra}"));
    write(dir.path(), "fw.rules", &rules);
    let (code, out, err) = verify_fw(dir.path(), &[]);
    assert_eq!(code, 1, "{err}");
    // 61 regions (with the example's tcp/8080), 61 groups: 30 shown.
    assert!(out.contains("\nexcess (61):\n"), "{out}");
    assert!(
        out.contains("    31 more groups: see --format json\n"),
        "{out}"
    );
    assert!(
        out.contains("  11 more regions: see --format json\n"),
        "{out}"
    );
    let listed = out
        .lines()
        .filter(|l| l.starts_with("  tcp 0.0.0.0/0 -> "))
        .count();
    assert_eq!(listed, 50, "{out}");
    let (_, json, _) = verify_fw(dir.path(), &["--format", "json"]);
    let v = common::json(&json);
    assert_eq!(v["excess"].as_array().unwrap().len(), 61);
    assert_eq!(v["excess_summary"].as_array().unwrap().len(), 61);
}
