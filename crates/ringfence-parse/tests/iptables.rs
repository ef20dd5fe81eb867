//! iptables-save parsing: golden renderings of hand-written rulesets and
//! error positions for bad input.

use ringfence_model::{Action, Ruleset};
use ringfence_parse::{parse_ruleset, RulesetFormat};
use std::fmt::Write;

/// A compact, stable rendering of the model for snapshots.
fn render(rs: &Ruleset) -> String {
    let mut s = format!("format: {:?}\n", rs.format);
    for c in &rs.chains {
        let _ = writeln!(s, "chain {} {:?}", c.name, c.base);
        for r in &c.rules {
            let m = &r.matches;
            let action = match &r.action {
                Action::Jump { target } => format!("jump {}", rs.chain(*target).name),
                Action::Goto { target } => format!("goto {}", rs.chain(*target).name),
                a => format!("{a:?}"),
            };
            let _ = writeln!(
                s,
                "  {} src4={:?} src6={:?} dst4={:?} dst6={:?} proto={:?} sport={:?} dport={:?} iif={:?} oif={:?} ct={} opaque={:?} comment={:?} -> {}",
                r.origin,
                m.src.v4.ranges(),
                m.src.v6.ranges(),
                m.dst.v4.ranges(),
                m.dst.v6.ranges(),
                m.protocol.ranges(),
                m.sport.ranges(),
                m.dport.ranges(),
                m.iif,
                m.oif,
                m.ct_state.0,
                m.opaque.iter().map(|o| o.text.as_str()).collect::<Vec<_>>(),
                r.comment,
                action
            );
        }
    }
    for n in &rs.notes {
        let _ = writeln!(s, "note {}: {}", n.location, n.message);
    }
    s
}

fn parse(name: &str, text: &str) -> Ruleset {
    parse_ruleset(text, name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn golden_ipv4_ruleset_with_chains_multiport_state_limit_and_other_tables() {
    let rs = parse("mixed.rules", include_str!("data/mixed.rules"));
    insta::assert_snapshot!(render(&rs));
}

#[test]
fn golden_ipv6_ruleset_with_negation_iprange_conntrack_and_goto() {
    let rs = parse("v6.rules", include_str!("data/v6.rules"));
    insta::assert_snapshot!(render(&rs));
}

#[test]
fn multiport_ports_becomes_two_rules_sharing_one_origin() {
    let rs = parse(
        "m.rules",
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp -m multiport --ports 80,8000:8080 -j ACCEPT\nCOMMIT\n",
    );
    let rules = &rs.chains[0].rules;
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].origin, rules[1].origin);
    assert_eq!(rules[0].matches.sport.ranges(), &[(80, 80), (8000, 8080)]);
    assert!(rules[0].matches.dport.is_full());
    assert_eq!(rules[1].matches.dport.ranges(), &[(80, 80), (8000, 8080)]);
}

fn error_of(text: &str) -> String {
    let e = parse_ruleset(text, "bad.rules", RulesetFormat::IptablesSave).unwrap_err();
    e.to_string()
}

#[test]
fn unknown_chain_target_is_reported_with_line_column_and_suggestion() {
    let e = error_of("*filter\n:FORWARD DROP [0:0]\n:WEB - [0:0]\n-A FORWARD -j WEBB\nCOMMIT\n");
    assert!(e.starts_with("bad.rules:4:15: "), "{e}");
    assert!(e.contains("did you mean `WEB`"), "{e}");
}

#[test]
fn bad_address_port_protocol_and_state_point_at_the_value() {
    let e = error_of("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.300/8 -j DROP\nCOMMIT\n");
    assert!(e.starts_with("bad.rules:3:13: address `10.0.0.300`"), "{e}");
    let e = error_of(
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 90:80 -j DROP\nCOMMIT\n",
    );
    assert!(
        e.starts_with("bad.rules:3:32: port range `90:80` is reversed"),
        "{e}"
    );
    let e = error_of("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tpc -j DROP\nCOMMIT\n");
    assert!(
        e.starts_with("bad.rules:3:13: unknown protocol `tpc`"),
        "{e}"
    );
    let e = error_of(
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m state --state NEW,BOGUS -j DROP\nCOMMIT\n",
    );
    assert!(
        e.starts_with("bad.rules:3:31: unknown conntrack state `BOGUS`"),
        "{e}"
    );
    let e = error_of("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 10.0.0.1 -j DROP\n-A INPUT -s 2001:db8::1 -j DROP\nCOMMIT\n");
    assert!(
        e.contains("address `2001:db8::1` is of the other family"),
        "{e}"
    );
}

#[test]
fn structural_errors_name_what_was_expected() {
    let e = error_of("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\n");
    assert!(
        e.contains("bad.rules:1: table `filter` is never closed"),
        "{e}"
    );
    let e = error_of(":INPUT ACCEPT [0:0]\n");
    assert!(e.starts_with("bad.rules:1:1: "), "{e}");
    assert!(e.contains("expected `*filter`"), "{e}");
    let e = error_of("*filter\n:INPUT MAYBE [0:0]\nCOMMIT\n");
    assert!(e.starts_with("bad.rules:2:8: chain policy `MAYBE`"), "{e}");
    let e = error_of("*filter\n:INPUT ACCEPT [0:0]\n-A NOPE -j DROP\nCOMMIT\n");
    assert!(
        e.starts_with("bad.rules:3:4: rule appended to chain `NOPE`"),
        "{e}"
    );
    let e =
        error_of("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m comment --comment \"open\nCOMMIT\n");
    assert!(
        e.starts_with("bad.rules:3:31: unterminated double quote"),
        "{e}"
    );
    let e = error_of("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP --bogus\n-A INPUT --frob 1 -j DROP\nCOMMIT\n");
    assert!(e.contains("bad.rules:4:10: unknown option `--frob`"), "{e}");
}

#[test]
fn every_error_in_a_file_is_reported_not_just_the_first() {
    let e = parse_ruleset(
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p xx -j DROP\n-A INPUT -j NOWHERE\nCOMMIT\n",
        "bad.rules",
        RulesetFormat::IptablesSave,
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 2);
    assert_eq!(e.0[0].position(), "bad.rules:3:13");
    assert_eq!(e.0[1].position(), "bad.rules:4:13");
}
