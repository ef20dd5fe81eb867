//! `ringfence verify` exit codes on the issue-15 inputs: a generated clean
//! ruleset passes (exit 0); adding a table the verifier used to ignore that
//! blocks, redirects or possibly opens traffic makes it exit 1.

mod common;

use std::path::Path;

/// The generated IPv4 ruleset for the embedded example site.
fn clean_base() -> String {
    let out = common::ok(&[
        "generate",
        "--example",
        "--target",
        "iptables",
        "--family",
        "4",
    ]);
    assert!(out.contains("*filter"));
    out
}

/// Insert `rule` into FORWARD before its first jump to the avi-nodeport
/// chain (after the rules that accept the other flows' sources).
fn insert_forward(base: &str, rule: &str) -> String {
    let anchor = "-A FORWARD -s 198.18.30.0/24";
    let at = base.find(anchor).expect("avi-nodeport jump");
    format!("{}{rule}\n{}", &base[..at], &base[at..])
}

const NAT: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";

fn verify(dir: &Path, name: &str, text: &str, json: bool) -> (i32, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write ruleset");
    let p = path.to_str().expect("utf-8 path");
    let mut args = vec!["verify", "--example", "--ruleset", p];
    if json {
        args.extend(["--format", "json"]);
    }
    let (code, out, err) = common::run(&args);
    assert!(code == 0 || code == 1, "{name}: exit {code}: {err}");
    (code, out)
}

#[test]
fn generated_clean_ruleset_exits_0_and_each_issue_case_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = clean_base();
    let (code, out) = verify(dir.path(), "clean.rules", &base, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": OK"), "{out}");

    let cases = [
        (
            "mangle-443.rules",
            format!("{base}*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A FORWARD -p tcp --dport 443 -j DROP\nCOMMIT\n"),
        ),
        (
            "raw-workload.rules",
            format!("{base}*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -s 198.18.20.0/23 -j DROP\nCOMMIT\n"),
        ),
        (
            "dnat-backdoor.rules",
            format!(
                "{}{NAT}-A PREROUTING -d 198.18.10.11/32 -p tcp --dport 8022 -j DNAT --to-destination 198.18.10.12:22\nCOMMIT\n",
                insert_forward(&base, "-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT")
            ),
        ),
        (
            "harbor-dnat.rules",
            format!("{base}{NAT}-A PREROUTING -d 198.18.1.20/32 -j DNAT --to-destination 198.18.1.99\nCOMMIT\n"),
        ),
        (
            "statistic.rules",
            insert_forward(
                &base,
                "-A FORWARD -s 198.18.20.0/23 -m statistic --mode random --probability 0.5 -j ACCEPT",
            ),
        ),
    ];
    for (name, text) in &cases {
        let (code, out) = verify(dir.path(), name, text, false);
        assert_eq!(code, 1, "{name} must not pass:\n{out}");
        assert!(out.contains(": FINDINGS"), "{name}:\n{out}");
    }
}

#[test]
fn possible_excess_is_marked_uncertain_in_json_and_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = insert_forward(
        &clean_base(),
        "-A FORWARD -s 198.18.20.0/23 -m statistic --mode random --probability 0.5 -j ACCEPT",
    );
    let (code, out) = verify(dir.path(), "statistic.rules", &text, true);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let excess = v["excess"].as_array().expect("excess");
    assert!(!excess.is_empty());
    for e in excess {
        assert_eq!(e["certain"], false, "{e}");
    }
    assert_eq!(v["summary"]["possible_excess"], excess.len());
    assert_eq!(v["summary"]["ok"], false);
    let (_, text_out) = verify(dir.path(), "statistic.rules", &text, false);
    assert!(text_out.contains("possible: "), "{text_out}");
    assert!(text_out.contains(" possible)"), "{text_out}");
}

#[test]
fn trace_walks_every_table_on_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{}*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A FORWARD -p tcp --dport 443 -j DROP\nCOMMIT\n", clean_base());
    let path = dir.path().join("mangle.rules");
    std::fs::write(&path, &text).expect("write");
    let out = common::ok(&[
        "trace",
        "--ruleset",
        path.to_str().unwrap(),
        "--src",
        "198.18.1.10",
        "--dst",
        "198.18.1.20",
        "--proto",
        "tcp",
        "--dport",
        "443",
    ]);
    assert!(out.contains(": drop"), "{out}");
    assert!(out.contains("(mangle:FORWARD)"), "{out}");
}

/// Insert `rule` into FORWARD right after its accept of established
/// connections: before every flow's accept.
fn insert_forward_first(base: &str, rule: &str) -> String {
    let anchor = "-A FORWARD -s 198.18.20.0/23";
    let at = base.find(anchor).expect("first flow jump");
    format!("{}{rule}\n{}", &base[..at], &base[at..])
}

fn verify_json(dir: &Path, name: &str, text: &str) -> (i32, serde_json::Value) {
    let (code, out) = verify(dir, name, text, true);
    (code, serde_json::from_str(&out).expect("json"))
}

fn flow_status<'v>(v: &'v serde_json::Value, id: &str) -> &'v serde_json::Value {
    let f = v["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("{id}"));
    &f["status"]
}

/// The 1-based line of `needle` in `text`, as verify names rules.
fn rule_at(path: &Path, text: &str, needle: &str) -> String {
    let n = text.lines().position(|l| l.contains(needle)).expect(needle);
    format!("{}:{}", path.display(), n + 1)
}

#[test]
fn a_flow_accepted_either_way_is_allowed_and_what_the_random_accept_adds_is_possible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = insert_forward_first(
        &clean_base(),
        "-A FORWARD -s 198.18.20.0/23 -m statistic --mode random --probability 0.5 -j ACCEPT",
    );
    let (code, v) = verify_json(dir.path(), "statistic-first.rules", &text);
    assert_eq!(code, 1, "possible excess is a finding");
    let rule = rule_at(
        &dir.path().join("statistic-first.rules"),
        &text,
        "-m statistic",
    );
    assert_eq!(flow_status(&v, "workload-to-mgmt"), "allowed");
    assert_eq!(v["summary"]["unknown"], 0);
    let excess = v["excess"].as_array().expect("excess");
    assert!(!excess.is_empty());
    for e in excess {
        assert_eq!(e["certain"], false, "{e}");
        assert_eq!(e["rules"], serde_json::json!([rule]), "{e}");
    }
}

#[test]
fn a_rate_limited_log_keeps_a_clean_ruleset_at_exit_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = insert_forward_first(
        &clean_base(),
        "-A FORWARD -m limit --limit 5/min -j LOG --log-prefix \"fw: \"",
    );
    let (code, out) = verify(dir.path(), "limit-log.rules", &text, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(": OK"), "{out}");
}

#[test]
fn a_drop_behind_a_statistic_match_makes_the_flow_unknown_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = insert_forward_first(
        &clean_base(),
        "-A FORWARD -s 198.18.20.0/23 -m statistic --mode random --probability 0.5 -j DROP",
    );
    let (code, v) = verify_json(dir.path(), "statistic-drop.rules", &text);
    assert_eq!(code, 1);
    let rule = rule_at(
        &dir.path().join("statistic-drop.rules"),
        &text,
        "-m statistic",
    );
    let f = v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "workload-to-mgmt")
        .unwrap();
    assert_eq!(f["status"], "unknown");
    assert_eq!(f["rules"][0], rule.as_str());
    assert_eq!(flow_status(&v, "mgmt-to-workload"), "allowed");
    assert_eq!(v["summary"]["excess"], 0);
    assert_eq!(v["summary"]["ok"], false);
}

#[test]
fn nft_numgen_accept_drop_and_log_exit_as_two_branches_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, base, err) = common::run(&[
        "generate",
        "--example",
        "--target",
        "nftables",
        "--family",
        "4",
    ]);
    assert_eq!(code, 0, "{err}");
    let first = "ct state established,related accept comment \"replies to allowed flows\"\n";
    assert!(base.contains(first));
    let with = |rule: &str| base.replace(first, &format!("{first}\t\t{rule}\n"));

    let (code, out) = verify(dir.path(), "clean.nft", &base, false);
    assert_eq!(code, 0, "{out}");

    let (code, v) = verify_json(
        dir.path(),
        "numgen-accept.nft",
        &with("ip saddr 198.18.20.0/23 numgen random mod 2 0 accept"),
    );
    assert_eq!(code, 1);
    assert_eq!(flow_status(&v, "workload-to-mgmt"), "allowed");
    assert!(v["summary"]["possible_excess"].as_u64().unwrap() > 0);
    assert_eq!(v["summary"]["possible_excess"], v["summary"]["excess"]);

    let (code, v) = verify_json(
        dir.path(),
        "numgen-drop.nft",
        &with("ip saddr 198.18.20.0/23 numgen random mod 2 0 drop"),
    );
    assert_eq!(code, 1);
    assert_eq!(flow_status(&v, "workload-to-mgmt"), "unknown");

    let (code, out) = verify(
        dir.path(),
        "numgen-log.nft",
        &with("numgen random mod 2 0 log prefix \"sampled \""),
        false,
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn batch_trace_lists_both_branches_of_a_random_drop_says_depends_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = insert_forward_first(
        &clean_base(),
        "-A FORWARD -s 198.18.20.0/23 -m statistic --mode random --probability 0.5 -j DROP",
    );
    let rules = dir.path().join("statistic-drop.rules");
    std::fs::write(&rules, &text).expect("write");
    let packets = dir.path().join("p.jsonl");
    std::fs::write(
        &packets,
        concat!(
            "{\"src\":\"198.18.20.5\",\"dst\":\"198.18.10.5\",\"proto\":\"tcp\",\"dport\":6443}\n",
            "{\"src\":\"198.18.10.5\",\"dst\":\"198.18.20.5\",\"proto\":\"tcp\",\"dport\":6443}\n",
            "{\"src\":\"198.18.20.5\",\"dst\":\"198.18.10.5\",\"proto\":\"tcp\",\"dport\":6443,\"from_host\":true}\n",
        ),
    )
    .expect("write");
    // A packet whose fate depends on the random drop is a finding: exit 1.
    let (code, out, err) = common::run(&[
        "trace",
        "--ruleset",
        rules.to_str().unwrap(),
        "--packets",
        packets.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    let stat = rule_at(&rules, &text, "-m statistic");
    assert_eq!(lines[0]["verdict"], "depends");
    assert_eq!(lines[0]["uncertain"], true);
    assert_eq!(lines[0]["rule"], stat.as_str());
    let outcomes = lines[0]["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0]["verdict"], "drop");
    assert_eq!(outcomes[0]["rule"], stat.as_str());
    assert_eq!(outcomes[1]["verdict"], "accept");
    for o in outcomes {
        assert_eq!(o["path"], "forward");
        assert!(o["dnat"].is_null() && o["snat"].is_null(), "{o}");
    }
    assert_eq!(lines[1]["verdict"], "accept");
    assert_eq!(lines[1]["outcomes"].as_array().unwrap().len(), 1);
    // From the host: the output path (OUTPUT accepts by policy).
    assert_eq!(lines[2]["outcomes"][0]["path"], "output");
    assert_eq!(lines[2]["verdict"], "accept");
    // Only decided packets: exit 0.
    let decided = dir.path().join("decided.jsonl");
    std::fs::write(
        &decided,
        "{\"src\":\"198.18.10.5\",\"dst\":\"198.18.20.5\",\"proto\":\"tcp\",\"dport\":6443}\n",
    )
    .expect("write");
    let (code, _, err) = common::run(&[
        "trace",
        "--ruleset",
        rules.to_str().unwrap(),
        "--packets",
        decided.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    // The text trace lists every possible outcome with its deciding rule.
    let (code, out, err) = common::run(&[
        "trace",
        "--ruleset",
        rules.to_str().unwrap(),
        "--src",
        "198.18.20.5",
        "--dst",
        "198.18.10.5",
        "--proto",
        "tcp",
        "--dport",
        "6443",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains(": depends"), "{out}");
    assert!(out.contains(&format!("possible: drop by {stat}")), "{out}");
    assert!(out.contains("possible: accept by "), "{out}");
}

#[test]
fn with_local_the_dnat_cases_say_where_packets_go_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = clean_base();
    let run_json = |name: &str, text: &str, extra: &[&str]| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let p = path.to_str().unwrap().to_string();
        let mut args = vec!["verify", "--example", "--ruleset", &p, "--format", "json"];
        args.extend_from_slice(extra);
        let (code, out, err) = common::run(&args);
        assert!(code == 0 || code == 1, "{name}: exit {code}: {err}");
        (
            code,
            serde_json::from_str::<serde_json::Value>(&out).expect("json"),
            path,
        )
    };
    // Harbor's traffic sent elsewhere: redirected, and where to.
    let text = format!(
        "{base}{NAT}-A PREROUTING -d 198.18.1.20/32 -j DNAT --to-destination 198.18.1.99\nCOMMIT\n"
    );
    let (code, v, _) = run_json("harbor-dnat.rules", &text, &["--local", "198.18.0.1"]);
    assert_eq!(code, 1);
    assert_eq!(flow_status(&v, "to-harbor"), "redirected");
    let f = v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "to-harbor")
        .unwrap();
    assert_eq!(f["redirected_to"], serde_json::json!(["198.18.1.99:443"]));
    assert_eq!(v["summary"]["unknown"], 0);
    // The backdoor: certain excess as the packets arrive, with the rewrite
    // and both rules.
    let text = format!(
        "{}{NAT}-A PREROUTING -d 198.18.10.11/32 -p tcp --dport 8022 -j DNAT --to-destination 198.18.10.12:22\nCOMMIT\n",
        insert_forward(&base, "-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT")
    );
    let (code, v, path) = run_json("dnat-backdoor.rules", &text, &["--local", "198.18.0.1"]);
    assert_eq!(code, 1);
    let door: Vec<&serde_json::Value> = v["excess"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["dnat"] == "198.18.10.12:22")
        .collect();
    assert_eq!(door.len(), 1, "{}", v["excess"]);
    assert_eq!(door[0]["certain"], true);
    assert_eq!(
        door[0]["destinations"],
        serde_json::json!(["198.18.10.11/32"])
    );
    assert_eq!(
        door[0]["rules"],
        serde_json::json!([
            rule_at(&path, &text, "-j DNAT"),
            rule_at(&path, &text, "--ctstate DNAT")
        ])
    );
    // The text says where the region goes.
    let (_, out, _) = common::run(&[
        "verify",
        "--example",
        "--ruleset",
        path.to_str().unwrap(),
        "--local",
        "198.18.0.1",
    ]);
    assert!(
        out.contains("-> 198.18.10.11 port 8022, translated to 198.18.10.12:22"),
        "{out}"
    );
    // A bad address is bad input.
    let (code, _, err) = common::run(&[
        "verify",
        "--example",
        "--ruleset",
        path.to_str().unwrap(),
        "--local",
        "198.18.0.300",
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn diff_with_local_reports_a_changed_dnat_target_as_newly_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = clean_base();
    let write = |name: &str, to: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("{base}{NAT}-A PREROUTING -d 198.18.1.20/32 -p tcp --dport 443 -j DNAT --to-destination {to}\nCOMMIT\n"),
        )
        .expect("write");
        path
    };
    let old = write("old.rules", "198.18.1.20:443");
    let new = write("new.rules", "198.18.10.12:443");
    let (code, out, err) = common::run(&[
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
        "--local",
        "198.18.0.1",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let added = v["newly_allowed"].as_array().unwrap();
    assert!(
        added.iter().any(|r| r["dnat"] == "198.18.10.12:443"
            && r["destinations"] == serde_json::json!(["198.18.1.20/32"])),
        "{out}"
    );
}
