//! `verify`'s text, JSON and report for rules dead in context and chains
//! never reached (issue 15): each says why it never matches and names the
//! rules responsible, quoted; exit code 1 (a finding).

mod common;
use common::{run_in, write};

/// Aerleon's shape: one chain per term. The ssh accept comes after the
/// replies accept and a drop of new ssh; OLD is left from an earlier policy.
const RULES: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:F_replies - [0:0]
:F_deny-new-ssh - [0:0]
:F_ssh - [0:0]
:OLD - [0:0]
-A FORWARD -j F_replies
-A FORWARD -j F_deny-new-ssh
-A FORWARD -j F_ssh
-A F_replies -m state --state ESTABLISHED,RELATED -j ACCEPT
-A F_deny-new-ssh -p tcp -m tcp --dport 22 -m state --state NEW -j DROP
-A F_ssh -s 198.18.1.10/32 -d 198.18.10.0/24 -p tcp -m tcp --dport 22 -m state --state NEW,RELATED,ESTABLISHED -j ACCEPT
-A OLD -p tcp -m tcp --dport 23 -j ACCEPT
COMMIT
";

#[test]
fn verify_text_says_a_rule_is_dead_in_context_and_a_chain_is_never_reached() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "fw.rules", RULES);
    let (code, out, err) = run_in(
        dir.path(),
        &[
            "verify",
            "--example",
            "--ruleset",
            "fw.rules",
            "--dead-in-context",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let at = out.find("shadowed rules (2):").expect(&out);
    let end = out[at..]
        .find("\nredundant rules")
        .map_or(out.len(), |e| at + e);
    insta::assert_snapshot!(&out[at..end]);
}

#[test]
fn verify_json_marks_the_reason_of_context_findings_only() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "fw.rules", RULES);
    let (code, out, err) = run_in(
        dir.path(),
        &[
            "verify",
            "--example",
            "--ruleset",
            "fw.rules",
            "--format",
            "json",
            "--dead-in-context",
        ],
    );
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    insta::assert_json_snapshot!(v["shadowed"]);
    assert_eq!(v["summary"]["shadowed"], 2);
}

#[test]
fn without_the_flag_only_rules_their_own_chain_shadows_are_reported() {
    // Dead rules in context are an opt-in analysis: the default report
    // judges each rule in its own chain only and names no reason.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "fw.rules", RULES);
    let (_, out, err) = run_in(
        dir.path(),
        &[
            "verify",
            "--example",
            "--ruleset",
            "fw.rules",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect(&err);
    let shadowed = v["shadowed"].as_array().expect("a list");
    assert!(
        shadowed.iter().all(|f| f.get("reason").is_none()),
        "{shadowed:?}"
    );
    assert!(v["summary"]["shadowed"].as_u64().unwrap() < 2, "{out}");
}
