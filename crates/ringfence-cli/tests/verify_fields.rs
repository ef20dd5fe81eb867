//! `verify` and `trace` on the rarer header fields, with exit codes: TCP
//! flags and ICMP types are exact fields, so SYN-only accepts, `! --syn`
//! NEW drops and flag hardening rules no longer make flows unknown, while
//! a rule that drops the openings of a flow is found.

mod common;

use std::path::Path;

/// The generated IPv4 ruleset for the embedded example site.
fn clean_base() -> String {
    common::ok(&[
        "generate",
        "--example",
        "--target",
        "iptables",
        "--family",
        "4",
    ])
}

/// Insert `rules` into FORWARD right after its first rule (the accept of
/// established and related packets) or, with `first`, before it.
fn insert_forward(base: &str, rules: &str, first: bool) -> String {
    let anchor = "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED";
    let at = base.find(anchor).expect("established accept");
    let at = if first {
        at
    } else {
        at + base[at..].find('\n').expect("line end") + 1
    };
    format!("{}{rules}\n{}", &base[..at], &base[at..])
}

fn verify(dir: &Path, name: &str, text: &str) -> (i32, serde_json::Value) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write ruleset");
    let p = path.to_str().expect("utf-8 path");
    let (code, out, err) =
        common::run(&["verify", "--example", "--ruleset", p, "--format", "json"]);
    assert!(code == 0 || code == 1, "{name}: exit {code}: {err}");
    (code, serde_json::from_str(&out).expect("json report"))
}

fn count(report: &serde_json::Value, key: &str) -> u64 {
    report["summary"][key].as_u64().expect("summary count")
}

#[test]
fn syn_only_accepts_with_established_replies_verify_ok() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = clean_base();
    let syn = base
        .lines()
        .map(|l| {
            if l.starts_with("-A rf-") {
                l.replace("-p tcp ", "-p tcp --syn ")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert!(syn.contains("--syn"), "some flow is TCP");
    let (code, r) = verify(dir.path(), "syn.rules", &syn);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(count(&r, "unknown"), 0);
    assert_eq!(count(&r, "allowed"), count(&r, "flows"));
}

#[test]
fn not_syn_new_drops_and_flag_hardening_keep_flows_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = clean_base();
    let hardened = insert_forward(
        &base,
        "-A FORWARD -p tcp --tcp-flags ALL NONE -j DROP\n-A FORWARD -p tcp --tcp-flags SYN,FIN SYN,FIN -j DROP\n-A FORWARD -p tcp --tcp-flags SYN,RST SYN,RST -j DROP",
        true,
    );
    let hardened = insert_forward(
        &hardened,
        "-A FORWARD -p tcp ! --syn -m conntrack --ctstate NEW -j DROP",
        false,
    );
    let (code, r) = verify(dir.path(), "hardened.rules", &hardened);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(count(&r, "unknown"), 0);
    assert_eq!(count(&r, "replies_not_allowed"), 0);
}

#[test]
fn dropping_syn_openings_blocks_tcp_flows_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = clean_base();
    let text = insert_forward(
        &base,
        "-A FORWARD -p tcp --tcp-flags SYN,ACK SYN -j DROP",
        false,
    );
    let (code, r) = verify(dir.path(), "nosyn.rules", &text);
    assert_eq!(code, 1, "{r:#}");
    assert!(count(&r, "blocked") > 0, "{r:#}");
    assert_eq!(count(&r, "unknown"), 0, "an exact field, not a guess");
    let blocked = r["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .find(|f| f["status"] == "blocked")
        .expect("a blocked flow");
    assert!(
        blocked["rules"].to_string().contains("nosyn.rules:"),
        "{blocked:#}"
    );
}

#[test]
fn trace_reads_flags_and_icmp_types_from_packet_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("t.rules");
    std::fs::write(
        &rules,
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --syn --dport 22 -j ACCEPT\n-A FORWARD -p icmp --icmp-type echo-request -j ACCEPT\n-A FORWARD -m length --length 0:100 -j ACCEPT\nCOMMIT\n",
    )
    .expect("write");
    let packets = dir.path().join("p.jsonl");
    std::fs::write(
        &packets,
        [
            r#"{"src": "198.18.0.1", "dst": "198.18.1.1", "proto": "tcp", "sport": 40000, "dport": 22}"#,
            r#"{"src": "198.18.0.1", "dst": "198.18.1.1", "proto": "tcp", "sport": 40000, "dport": 22, "tcp_flags": "ACK", "length": 1500}"#,
            r#"{"src": "198.18.0.1", "dst": "198.18.1.1", "proto": "icmp", "icmp_type": "echo-reply", "length": 1500}"#,
            r#"{"src": "198.18.0.1", "dst": "198.18.1.1", "proto": "icmp", "length": 1500}"#,
            r#"{"src": "198.18.0.1", "dst": "198.18.1.1", "proto": "udp", "dport": 53}"#,
        ]
        .join("\n"),
    )
    .expect("write");
    let (code, out, err) = common::run(&[
        "trace",
        "--ruleset",
        rules.to_str().unwrap(),
        "--packets",
        packets.to_str().unwrap(),
    ]);
    // The last packet depends on its unknown length: exit 1.
    assert_eq!(code, 1, "{err}");
    let verdicts: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["verdict"].as_str().expect("verdict").to_string()
        })
        .collect();
    // A SYN (the default) to 22 is accepted, an ACK is not; an echo reply
    // is not an echo request (the default); a packet of unknown length may
    // or may not be short enough.
    assert_eq!(
        verdicts,
        ["accept", "drop", "drop", "accept", "depends"],
        "{out}"
    );
    // A bad field value is a located error, exit 2.
    std::fs::write(
        &packets,
        r#"{"src": "198.18.0.1", "dst": "198.18.1.1", "proto": "tcp", "tcp_flags": "SYN,BOGUS"}"#,
    )
    .expect("write");
    let (code, _, err) = common::run(&[
        "trace",
        "--ruleset",
        rules.to_str().unwrap(),
        "--packets",
        packets.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tcp_flags"), "{err}");
}

#[test]
fn excess_limited_to_syn_packets_says_so_in_its_region() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = clean_base();
    // ssh from the workload net to the management net is no flow of the site.
    let text = insert_forward(
        &base,
        "-A FORWARD -s 198.18.20.0/23 -d 198.18.10.0/24 -p tcp --syn --dport 22 -j ACCEPT",
        false,
    );
    let (code, r) = verify(dir.path(), "ssh.rules", &text);
    assert_eq!(code, 1, "{r:#}");
    let region = r["excess"]
        .as_array()
        .expect("excess")
        .iter()
        .find(|e| e["ports"] == "22")
        .expect("the ssh region");
    assert_eq!(
        region["header"], "tcp flags FIN,SYN,RST,ACK = SYN",
        "{region:#}"
    );
}
