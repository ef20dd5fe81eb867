//! Bad input gives precise errors (file + JSON pointer or line:column); odd
//! but valid input gives the exact model.

use ringfence_diag::Locus;
use ringfence_model::{Action, CtStates, Policy};
use ringfence_parse::nft;

fn err(text: &str) -> Vec<ringfence_diag::InputError> {
    nft::parse(text, "r.json").expect_err("must fail").0
}

fn rule_json(expr: &str) -> String {
    format!(
        r#"{{"nftables": [
  {{"table": {{"family": "inet", "name": "t", "handle": 1}}}},
  {{"chain": {{"family": "inet", "table": "t", "name": "fw", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}}},
  {{"chain": {{"family": "inet", "table": "t", "name": "users", "handle": 2}}}},
  {{"set": {{"family": "inet", "table": "t", "name": "nets", "type": "ipv4_addr", "handle": 3, "flags": ["interval"], "elem": [{{"prefix": {{"addr": "198.18.4.0", "len": 22}}}}]}}}},
  {{"rule": {{"family": "inet", "table": "t", "chain": "fw", "handle": 4, "expr": {expr}}}}}
]}}"#
    )
}

#[test]
fn invalid_json_reports_line_and_column() {
    let e = err("{\"nftables\": [\n  {\"table\": }\n]}");
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].locus,
        Locus::LineColumn {
            line: 2,
            column: 13
        }
    );
    assert!(
        e[0].message.starts_with("not valid JSON"),
        "{}",
        e[0].message
    );
}

#[test]
fn empty_file_is_an_error_about_the_whole_input() {
    let e = err("  \n");
    assert_eq!(e[0].locus, Locus::Whole);
}

#[test]
fn missing_nftables_key_is_reported_at_root() {
    let e = err(r#"{"tables": []}"#);
    assert_eq!(e[0].locus, Locus::Pointer(String::new()));
    assert!(e[0].message.contains("`nftables`"));
}

#[test]
fn jump_to_unknown_chain_points_at_target_and_suggests_name() {
    let e = err(&rule_json(r#"[{"jump": {"target": "user"}}]"#));
    assert_eq!(
        e[0].locus,
        Locus::Pointer("/nftables/4/rule/expr/0/jump/target".into())
    );
    assert_eq!(e[0].help.as_deref(), Some("did you mean `users`?"));
}

#[test]
fn bad_address_points_at_the_value() {
    let e = err(&rule_json(
        r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"set": ["198.18.0.1", "198.18.0.300"]}}}, {"accept": null}]"#,
    ));
    assert_eq!(
        e[0].locus,
        Locus::Pointer("/nftables/4/rule/expr/0/match/right/set/1".into())
    );
    assert!(e[0].message.contains("IPv4 address"), "{}", e[0].message);
}

#[test]
fn unknown_named_set_is_an_error_with_suggestion() {
    let e = err(&rule_json(
        r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@net"}}, {"accept": null}]"#,
    ));
    assert!(e[0].message.contains("@net"));
    assert_eq!(e[0].help.as_deref(), Some("did you mean @nets?"));
}

#[test]
fn rule_of_undefined_chain_is_an_error() {
    let text = r#"{"nftables": [{"rule": {"family": "ip", "table": "x", "chain": "y", "handle": 2, "expr": []}}]}"#;
    let e = err(text);
    assert_eq!(e[0].locus, Locus::Pointer("/nftables/0/rule/chain".into()));
}

#[test]
fn bad_policy_is_an_error_at_policy() {
    let text = r#"{"nftables": [{"chain": {"family": "ip", "table": "x", "name": "c", "type": "filter", "hook": "forward", "prio": 0, "policy": "reject"}}]}"#;
    let e = err(text);
    assert_eq!(
        e[0].locus,
        Locus::Pointer("/nftables/0/chain/policy".into())
    );
}

#[test]
fn several_errors_are_reported_together() {
    let text = r#"{"nftables": [
      {"chain": {"family": "ip", "table": "x", "name": "c", "hook": "sideways"}},
      {"rule": {"family": "ip", "table": "x", "chain": "nope", "handle": 2, "expr": []}}
    ]}"#;
    assert_eq!(err(text).len(), 2);
}

#[test]
fn named_interval_set_and_negation_become_exact_sets() {
    let rs = nft::parse(
        &rule_json(
            r#"[{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@nets"}}, {"counter": null}, {"jump": {"target": "users"}}]"#,
        ),
        "r.json",
    )
    .unwrap();
    let fw = &rs.chains[0];
    assert_eq!(fw.base.as_ref().unwrap().policy, Policy::Drop);
    let r = &fw.rules[0];
    assert!(matches!(r.action, Action::Jump { .. }));
    // 198.18.4.0/22 = 198.18.4.0 .. 198.18.7.255 excluded; IPv6 cannot match `ip daddr`.
    let lo = u32::from(std::net::Ipv4Addr::new(198, 18, 4, 0));
    let hi = u32::from(std::net::Ipv4Addr::new(198, 18, 7, 255));
    assert_eq!(
        r.matches.dst.v4.ranges(),
        &[(0, lo - 1), (hi + 1, u32::MAX)]
    );
    assert!(r.matches.dst.v6.is_empty());
}

#[test]
fn ct_state_plain_inequality_of_two_flags_matches_every_state() {
    // `ct state != new,established` compares the whole value: a packet has one state.
    let rs = nft::parse(
        &rule_json(
            r#"[{"match": {"op": "!=", "left": {"ct": {"key": "state"}}, "right": {"|": ["established", "new"]}}}, {"drop": null}]"#,
        ),
        "r.json",
    )
    .unwrap();
    assert_eq!(rs.chains[0].rules[0].matches.ct_state, CtStates::ALL);
}

#[test]
fn ct_state_set_inequality_excludes_its_members() {
    let rs = nft::parse(
        &rule_json(
            r#"[{"match": {"op": "!=", "left": {"ct": {"key": "state"}}, "right": {"set": ["established", "new"]}}}, {"drop": null}]"#,
        ),
        "r.json",
    )
    .unwrap();
    assert_eq!(
        rs.chains[0].rules[0].matches.ct_state,
        CtStates(CtStates::RELATED | CtStates::INVALID | CtStates::UNTRACKED)
    );
}

#[test]
fn ct_state_masked_comparison_is_evaluated_per_state() {
    // `ct state & (new|related) == 0`: only states outside the mask.
    let rs = nft::parse(
        &rule_json(
            r#"[{"match": {"op": "==", "left": {"&": [{"ct": {"key": "state"}}, {"|": ["new", "related"]}]}, "right": 0}}, {"drop": null}]"#,
        ),
        "r.json",
    )
    .unwrap();
    assert_eq!(
        rs.chains[0].rules[0].matches.ct_state,
        CtStates(CtStates::ESTABLISHED | CtStates::INVALID | CtStates::UNTRACKED)
    );
}

#[test]
fn unknown_statement_becomes_opaque_with_pointer_note() {
    let rs = nft::parse(
        &rule_json(r#"[{"quota": {"val": 5, "val_unit": "mbytes"}}, {"accept": null}]"#),
        "r.json",
    )
    .unwrap();
    let r = &rs.chains[0].rules[0];
    assert_eq!(r.action, Action::Accept);
    assert_eq!(r.matches.opaque.len(), 1);
    assert_eq!(rs.notes[0].location, "r.json#/nftables/4/rule/expr/0");
}

#[test]
fn port_comparisons_become_ranges() {
    let rs = nft::parse(
        &rule_json(
            r#"[{"match": {"op": "<", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 1024}}, {"match": {"op": ">=", "left": {"payload": {"protocol": "udp", "field": "sport"}}, "right": 1024}}, {"accept": null}]"#,
        ),
        "r.json",
    )
    .unwrap();
    let m = &rs.chains[0].rules[0].matches;
    assert_eq!(m.dport.ranges(), &[(0, 1023)]);
    assert_eq!(m.sport.ranges(), &[(1024, 65535)]);
    assert_eq!(m.protocol.ranges(), &[(17, 17)]);
}
