//! `ringfence verify` exit codes on the issue-15 inputs: a generated clean
//! ruleset passes (exit 0); adding a table the verifier used to ignore that
//! blocks, redirects or possibly opens traffic makes it exit 1.

mod common;

use std::path::Path;

/// The generated IPv4 ruleset for the embedded example site.
fn clean_base() -> String {
    let (code, out, err) = common::run(&["generate", "--target", "iptables", "--family", "4"]);
    assert_eq!(code, 0, "{err}");
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
    let mut args = vec!["verify", "--ruleset", p];
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
    let (code, out, err) = common::run(&[
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
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": drop"), "{out}");
    assert!(out.contains("(mangle:FORWARD)"), "{out}");
}
