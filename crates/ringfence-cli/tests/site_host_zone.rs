//! A site's `host_zone:` names the zone that holds the firewall host's own
//! addresses (here Harbor's host guards itself). `verify` and `diff` then route by them exactly as with
//! `--local`: the same report, and `host_interfaces:` places its addresses
//! as `--local ADDR%IFACE` does. A host zone that holds networks, or that the
//! site does not list, is refused at its line and column with exit 2.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};

/// The embedded example site with `extra` appended to its zones and `tail`
/// as new top-level keys.
fn site_with(dir: &Path, name: &str, zone_line: &str, tail: &str) -> PathBuf {
    let example = common::ok(&["site", "example"]);
    let text = example.replacen("zones:\n", &format!("zones:\n{zone_line}"), 1) + tail;
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write site");
    path
}

/// The example's clean iptables rules with `input` (rule lines) added
/// before its first forward rule, written to `dir/name`.
fn example_rules_with_input(dir: &Path, name: &str, input: &str) -> PathBuf {
    let base = common::ok(&[
        "generate",
        "--example",
        "--target",
        "iptables",
        "--family",
        "4",
    ]);
    let at = base.find("-A FORWARD").expect("a forward rule");
    let path = dir.join(name);
    std::fs::write(&path, format!("{}{input}{}", &base[..at], &base[at..])).expect("write ruleset");
    path
}

/// The example's clean iptables rules plus an input drop of HTTPS: Harbor's
/// flow is blocked when the firewall host is Harbor itself (its packets go
/// to input), and allowed when the host forwards them.
fn https_input_drop_ruleset(dir: &Path) -> PathBuf {
    example_rules_with_input(
        dir,
        "input-drop.rules",
        "-A INPUT -p tcp --dport 443 -j DROP\n",
    )
}

fn verify_json(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["verify", "--format", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = common::run(&all);
    assert!(code == 0 || code == 1, "exit {code}: {err}");
    (code, serde_json::from_str(&out).expect("verify JSON"))
}

/// The status of flow `id` in a verify report.
fn flow_status(v: &Value, id: &str) -> Value {
    v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .map(|f| f["status"].clone())
        .unwrap_or_else(|| panic!("no flow {id}"))
}

/// What the host's addresses change: flows, excess and summary.
fn verdicts(v: &Value) -> Value {
    serde_json::json!({"flows": v["flows"], "excess": v["excess"], "summary": v["summary"]})
}

#[test]
fn host_zone_gives_verify_the_same_report_as_local() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = https_input_drop_ruleset(dir.path());
    let rules = rules.to_str().unwrap();
    let site = site_with(dir.path(), "site.yaml", "", "host_zone: harbor\n");
    let (code_zone, by_zone) = verify_json(&["--site", site.to_str().unwrap(), "--ruleset", rules]);
    let (code_local, by_local) =
        verify_json(&["--example", "--ruleset", rules, "--local", "198.18.1.20"]);
    assert_eq!(code_zone, code_local);
    assert_eq!(verdicts(&by_zone), verdicts(&by_local));
    // The host's addresses decide Harbor's flow: blocked on the input path
    // when the host is Harbor, allowed through forward otherwise.
    let harbor = |v: &Value| flow_status(v, "to-harbor");
    assert_eq!(harbor(&by_zone), "blocked");
    let (_, without) = verify_json(&["--example", "--ruleset", rules]);
    assert_eq!(harbor(&without), "allowed", "{}", verdicts(&without));
}

#[test]
fn host_zone_gives_diff_the_same_report_as_local() {
    let dir = tempfile::tempdir().expect("tempdir");
    let new = https_input_drop_ruleset(dir.path());
    let base = common::ok(&[
        "generate",
        "--example",
        "--target",
        "iptables",
        "--family",
        "4",
    ]);
    let old = dir.path().join("old.rules");
    std::fs::write(&old, base).expect("write");
    let site = site_with(dir.path(), "site.yaml", "", "host_zone: harbor\n");
    let diff = |extra: &[&str]| {
        let mut args = vec![
            "diff",
            old.to_str().unwrap(),
            new.to_str().unwrap(),
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = common::run(&args);
        assert!(code == 0 || code == 1, "exit {code}: {err}");
        (code, out)
    };
    let by_zone = diff(&["--site", site.to_str().unwrap()]);
    let by_local = diff(&["--example", "--local", "198.18.1.20"]);
    assert_eq!(by_zone, by_local);
    // Without the host's addresses the input drop is not on Harbor's path.
    assert_ne!(by_zone, diff(&["--example"]));
}

#[test]
fn a_host_zone_holding_networks_is_refused_at_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = site_with(dir.path(), "site.yaml", "", "host_zone: workload\n");
    let text = std::fs::read_to_string(&site).unwrap();
    let line = text.lines().count();
    let (code, _, err) = common::run(&["site", "check", site.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("site.yaml:{line}:12")), "{err}");
    assert!(err.contains("host_zone `workload` holds networks"), "{err}");
    assert!(err.contains("--local"), "the fix is named: {err}");
}

#[test]
fn an_unknown_host_zone_is_refused_with_the_closest_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = site_with(
        dir.path(),
        "site.yaml",
        "  gateway: [198.18.0.1]\n",
        "host_zone: gatewy\n",
    );
    let rules = https_input_drop_ruleset(dir.path());
    let (code, _, err) = common::run(&[
        "verify",
        "--site",
        site.to_str().unwrap(),
        "--ruleset",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("host_zone `gatewy`"), "{err}");
    assert!(err.contains("did you mean `gateway`?"), "{err}");
}

/// The example's clean iptables rules plus, on input, HTTPS accepted only
/// to an address of the interface it came in by, then dropped.
fn https_by_interface_ruleset(dir: &Path) -> PathBuf {
    example_rules_with_input(
        dir,
        "by-iface.rules",
        "-A INPUT -p tcp --dport 443 -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT\n\
         -A INPUT -p tcp --dport 443 -j DROP\n",
    )
}

#[test]
fn host_interfaces_give_verify_the_same_report_as_local_with_interfaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = https_by_interface_ruleset(dir.path());
    let rules = rules.to_str().unwrap();
    let site = site_with(
        dir.path(),
        "site.yaml",
        "",
        "host_zone: harbor\nhost_interfaces:\n  eth0: [198.18.1.20]\n",
    );
    let (code_site, by_site) = verify_json(&["--site", site.to_str().unwrap(), "--ruleset", rules]);
    let (code_local, by_local) = verify_json(&[
        "--example",
        "--ruleset",
        rules,
        "--local",
        "198.18.1.20%eth0",
    ]);
    assert_eq!(code_site, code_local);
    assert_eq!(verdicts(&by_site), verdicts(&by_local));
    // Without the interface, whether Harbor's address is local on the
    // interface a packet came in by is not known: the flow is unknown.
    let (_, no_iface) = verify_json(&["--example", "--ruleset", rules, "--local", "198.18.1.20"]);
    let harbor = |v: &Value| flow_status(v, "to-harbor");
    assert_eq!(harbor(&no_iface), "unknown", "{}", verdicts(&no_iface));
    // With it, packets that come in by eth0 are accepted and the others
    // dropped (a flow's packets may come in by any interface).
    assert_eq!(harbor(&by_site), "partial", "{}", verdicts(&by_site));
}
