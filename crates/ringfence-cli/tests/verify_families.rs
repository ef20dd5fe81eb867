//! `verify --families` (issue 16): which address families a verify must
//! cover. A family in scope that no ruleset file covers is a finding (exit
//! code 1) naming the family and the fix; a family out of scope is not
//! analysed and the report says so in one line.

mod common;
use common::{json, ok_in, repo_root, run_in, write};

use std::path::Path;

/// Run `verify --site <site>` in `dir` with a `--ruleset` for each of
/// `rulesets`, then `extra`: (exit code, stdout, stderr).
fn verify(dir: &Path, site: &str, rulesets: &[&str], extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["verify", "--site", site];
    for r in rulesets {
        args.extend(["--ruleset", r]);
    }
    args.extend_from_slice(extra);
    run_in(dir, &args)
}

/// The example site (IPv4 only) as `site.yaml`, and a dual-stack variant as
/// `dual.yaml` whose management and workload zones also have IPv6 networks.
fn write_sites(dir: &Path) {
    let site = std::fs::read_to_string(repo_root().join("examples/site.yaml")).unwrap();
    write(dir, "site.yaml", &site);
    let dual = site
        .replace(
            "management: [198.18.10.0/24]",
            "management: [198.18.10.0/24, 2001:db8:10::/64]",
        )
        .replace(
            "workload: [198.18.20.0/24, 198.18.21.0/24]",
            "workload: [198.18.20.0/24, 198.18.21.0/24, 2001:db8:20::/64]",
        );
    assert!(dual.contains("2001:db8:10::/64") && dual.contains("2001:db8:20::/64"));
    write(dir, "dual.yaml", &dual);
}

/// Generate the iptables rules of `site` for one family into `out`.
fn generate(dir: &Path, site: &str, family: &str, out: &str) {
    let text = ok_in(
        dir,
        &[
            "generate", "--site", site, "--target", "iptables", "--family", family,
        ],
    );
    write(dir, out, &text);
}

fn family<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["families"]
        .as_array()
        .expect("families")
        .iter()
        .find(|f| f["family"] == name)
        .expect("family entry")
}

#[test]
fn ipv4_only_site_with_iptables_file_is_ok_and_says_ipv6_is_not_analysed() {
    let dir = tempfile::tempdir().unwrap();
    write_sites(dir.path());
    generate(dir.path(), "site.yaml", "4", "v4.rules");
    let (code, out, err) = verify(dir.path(), "site.yaml", &["v4.rules"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "IPv6: not analysed (the site has no IPv6 addresses; --families 4,6 to include it)\n"
        ),
        "{out}"
    );
    assert!(out.trim_end().ends_with(": OK"), "{out}");
    let (code, out, _) = verify(
        dir.path(),
        "site.yaml",
        &["v4.rules"],
        &["--format", "json"],
    );
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(family(&v, "IPv4")["status"], "analysed");
    assert_eq!(family(&v, "IPv6")["status"], "not_analysed");
    assert_eq!(v["summary"]["families_not_covered"], 0);
    assert_eq!(v["summary"]["ok"], true);
}

#[test]
fn dual_stack_site_with_only_the_iptables_file_is_a_finding_naming_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    write_sites(dir.path());
    generate(dir.path(), "dual.yaml", "4", "v4.rules");
    let (code, out, err) = verify(dir.path(), "dual.yaml", &["v4.rules"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("IPv6: not covered: no ruleset given covers IPv6: give the ip6tables-save output as another --ruleset, or leave IPv6 out with --families 4\n"),
        "{out}"
    );
    assert!(out.contains("summary: IPv6 not covered; "), "{out}");
    let (code, out, _) = verify(
        dir.path(),
        "dual.yaml",
        &["v4.rules"],
        &["--format", "json"],
    );
    assert_eq!(code, 1);
    let v = json(&out);
    assert_eq!(family(&v, "IPv6")["status"], "not_covered");
    assert_eq!(v["summary"]["families_not_covered"], 1);
    assert_eq!(v["summary"]["ok"], false);
}

#[test]
fn families_4_6_on_an_ipv4_only_site_with_the_iptables_file_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    write_sites(dir.path());
    generate(dir.path(), "site.yaml", "4", "v4.rules");
    let (code, out, err) = verify(
        dir.path(),
        "site.yaml",
        &["v4.rules"],
        &["--families", "4,6"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("IPv6: not covered: no ruleset given covers IPv6"),
        "{out}"
    );
    // Every flow is still allowed: the finding is the uncovered family alone.
    assert!(
        out.contains("15 allowed, 0 partial, 0 blocked, 0 unknown"),
        "{out}"
    );
}

#[test]
fn dual_stack_site_with_both_files_is_ok_and_analyses_both_families() {
    let dir = tempfile::tempdir().unwrap();
    write_sites(dir.path());
    generate(dir.path(), "dual.yaml", "4", "v4.rules");
    generate(dir.path(), "dual.yaml", "6", "v6.rules");
    let (code, out, err) = verify(
        dir.path(),
        "dual.yaml",
        &["v4.rules", "v6.rules"],
        &["--format", "json"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let v = json(&out);
    assert_eq!(family(&v, "IPv4")["status"], "analysed");
    assert_eq!(family(&v, "IPv6")["status"], "analysed");
    assert_eq!(v["summary"]["ok"], true);
}

#[test]
fn families_4_leaves_ipv6_of_a_dual_stack_site_out_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    write_sites(dir.path());
    generate(dir.path(), "dual.yaml", "4", "v4.rules");
    let (code, out, err) = verify(dir.path(), "dual.yaml", &["v4.rules"], &["--families", "4"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("IPv6: not analysed (--families leaves it out although the site has IPv6 addresses; --families 4,6 to include it)\n"),
        "{out}"
    );
}

#[test]
fn ipv6_excess_is_judged_by_the_ip6tables_file_not_the_iptables_file() {
    // The IPv6 file opens tcp/8080 to one management host beyond the
    // site's flows: that is the only excess, and the IPv6 file's rule is
    // the one named.
    let dir = tempfile::tempdir().unwrap();
    write_sites(dir.path());
    generate(dir.path(), "dual.yaml", "4", "v4.rules");
    generate(dir.path(), "dual.yaml", "6", "v6.rules");
    let v6 = std::fs::read_to_string(dir.path().join("v6.rules")).unwrap();
    let at = v6.find("\n-A ").expect("an -A line") + 1;
    let v6 = format!(
        "{}-A FORWARD -d 2001:db8:10::5/128 -p tcp -m tcp --dport 8080 -j ACCEPT\n{}",
        &v6[..at],
        &v6[at..]
    );
    write(dir.path(), "v6.rules", &v6);
    let (code, out, err) = verify(
        dir.path(),
        "dual.yaml",
        &["v4.rules", "v6.rules"],
        &["--format", "json"],
    );
    assert_eq!(code, 1, "{out}{err}");
    let v = json(&out);
    let excess = v["excess"].as_array().unwrap();
    assert!(!excess.is_empty(), "{out}");
    for e in excess {
        assert_eq!(
            e["destinations"],
            serde_json::json!(["2001:db8:10::5/128"]),
            "{e}"
        );
        assert_eq!(e["ports"], "8080");
        assert!(
            e["rules"][0].as_str().unwrap().starts_with("v6.rules:"),
            "{e}"
        );
    }
}

#[test]
fn an_out_of_scope_family_is_not_judged_by_the_other_familys_file() {
    // An IPv4 file whose FORWARD policy accepts: IPv6 packets (the deny-all
    // row covers ::/0) must not be reported as accepted by this file's
    // policy when the site has no IPv6 addresses; IPv6 is not analysed.
    let dir = tempfile::tempdir().unwrap();
    write_sites(dir.path());
    write(
        dir.path(),
        "open.rules",
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
    );
    let (code, out, err) = verify(
        dir.path(),
        "site.yaml",
        &["open.rules"],
        &["--format", "json"],
    );
    assert_eq!(code, 1, "{out}{err}");
    let v = json(&out);
    assert_eq!(family(&v, "IPv6")["status"], "not_analysed");
    let excess = v["excess"].as_array().unwrap();
    assert!(!excess.is_empty(), "IPv4 excess is reported: {out}");
    for e in excess {
        for side in ["sources", "destinations"] {
            for a in e[side].as_array().unwrap() {
                assert!(!a.as_str().unwrap().contains(':'), "an IPv6 region: {e}");
            }
        }
    }
}

#[test]
fn junit_fails_an_uncovered_family_and_skips_one_not_analysed() {
    let dir = tempfile::tempdir().unwrap();
    write_sites(dir.path());
    generate(dir.path(), "dual.yaml", "4", "v4.rules");
    generate(dir.path(), "site.yaml", "4", "site4.rules");
    let ipv6_case = |out: &str| {
        let case = &out[out.find("name=\"IPv6\"").expect("IPv6 test case")..];
        case[..case.find("</testcase>").expect("case end")].to_string()
    };
    let (code, out, err) = verify(
        dir.path(),
        "dual.yaml",
        &["v4.rules"],
        &["--format", "junit"],
    );
    assert_eq!(code, 1, "{err}");
    let case = ipv6_case(&out);
    assert!(case.contains("<failure"), "{out}");
    assert!(
        case.contains("not covered: no ruleset given covers IPv6"),
        "{out}"
    );
    let (code, out, err) = verify(
        dir.path(),
        "site.yaml",
        &["site4.rules"],
        &["--format", "junit"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(ipv6_case(&out).contains("<skipped"), "{out}");
}
