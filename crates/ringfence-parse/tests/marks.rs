//! iptables MARK/CONNMARK targets and mark/connmark matches become exact
//! mark rewrites and tests in the model, with the kernel's semantics.

use ringfence_model::{Action, MarkField, MarkRewrite, MarkTest, Ruleset};
use ringfence_parse::{parse_ruleset, RulesetFormat};

fn mangle(rules: &str) -> String {
    format!("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n{rules}COMMIT\n")
}

fn parse(rules: &str) -> Ruleset {
    parse_ruleset(&mangle(rules), "m.rules", RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"))
}

fn rewrites(rules: &str) -> Vec<MarkRewrite> {
    let rs = parse(rules);
    let c = rs.chain(rs.chain_by_name("mangle:PREROUTING").unwrap());
    c.rules
        .iter()
        .map(|r| match &r.action {
            Action::Mark(rw) => *rw,
            a => panic!("not a mark rewrite: {a:?}"),
        })
        .collect()
}

fn tests(rules: &str) -> Vec<Vec<MarkTest>> {
    let rs = parse(rules);
    let c = rs.chain(rs.chain_by_name("mangle:PREROUTING").unwrap());
    c.rules.iter().map(|r| r.matches.marks.clone()).collect()
}

#[test]
fn mark_targets_compute_what_the_kernel_computes() {
    let rw = rewrites(
        "-A PREROUTING -j MARK --set-xmark 0x4000/0x4000\n\
         -A PREROUTING -j MARK --set-mark 0x1/0xf\n\
         -A PREROUTING -j MARK --and-mark 0xff\n\
         -A PREROUTING -j MARK --or-mark 0x10\n\
         -A PREROUTING -j MARK --xor-mark 0x3\n\
         -A PREROUTING -j MARK --set-mark 7\n",
    );
    // (mark & ~mask) ^ value for set-xmark; set-mark clears mask|value first.
    assert_eq!(rw[0].apply(0x8001, 0), (0xc001, 0));
    assert_eq!(rw[1].apply(0xfff, 0), (0xff1, 0));
    assert_eq!(rw[2].apply(0x1234, 0), (0x34, 0));
    assert_eq!(rw[3].apply(0x1, 0), (0x11, 0));
    assert_eq!(rw[4].apply(0x1, 0), (0x2, 0));
    assert_eq!(rw[5].apply(0xffff, 0), (7, 0));
    assert!(rw.iter().all(|r| r.field == MarkField::Packet));
}

#[test]
fn connmark_targets_set_save_and_restore_with_their_masks() {
    let rw = rewrites(
        "-A PREROUTING -j CONNMARK --set-xmark 0x2/0xff\n\
         -A PREROUTING -j CONNMARK --save-mark --nfmask 0xf --ctmask 0xff\n\
         -A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff\n\
         -A PREROUTING -j CONNMARK --restore-mark --mask 0xf0\n",
    );
    assert_eq!(rw[0].apply(5, 0x1ff), (5, 0x102));
    // save: ct = (ct & ~ctmask) ^ (mark & nfmask)
    assert_eq!(rw[1].apply(0x1234, 0xabcd), (0x1234, 0xab04));
    // restore: mark = (mark & ~nfmask) ^ (ct & ctmask)
    assert_eq!(rw[2].apply(0x1234, 0x77), (0x77, 0x77));
    assert_eq!(rw[3].apply(0x1234, 0x77), (0x1274, 0x77));
}

#[test]
fn mark_and_connmark_matches_are_value_mask_tests_and_may_be_negated() {
    let t = tests(
        "-A PREROUTING -m mark --mark 0x4000/0x4000 -j ACCEPT\n\
         -A PREROUTING -m mark ! --mark 0x1 -j ACCEPT\n\
         -A PREROUTING -m connmark --mark 0x2/0x2 -j ACCEPT\n",
    );
    assert_eq!(
        t[0],
        vec![MarkTest {
            field: MarkField::Packet,
            mask: 0x4000,
            value: 0x4000,
            invert: false
        }]
    );
    assert_eq!(
        t[1],
        vec![MarkTest {
            field: MarkField::Packet,
            mask: u32::MAX,
            value: 1,
            invert: true
        }]
    );
    assert_eq!(t[2][0].field, MarkField::Conn);
    assert!(t[0][0].holds(0xc000, 0) && !t[0][0].holds(0x8000, 0));
    assert!(t[1][0].holds(0, 0) && !t[1][0].holds(1, 0));
    // Nothing about marks is opaque any more.
    let rs = parse("-A PREROUTING -m mark --mark 0x1 -j MARK --set-mark 0x2\n");
    assert!(
        !rs.notes.iter().any(|n| n.message.contains("mark")),
        "{:?}",
        rs.notes
    );
}

#[test]
fn bad_mark_values_and_options_are_located_errors() {
    for (rule, col, what) in [
        (
            "-A PREROUTING -m mark --mark 0xzz -j ACCEPT\n",
            30,
            "mark `0xzz`",
        ),
        ("-A PREROUTING -j MARK --set-xmark 1/x\n", 35, "mark `1/x`"),
        ("-A PREROUTING -j MARK --frob 1\n", 18, "option `--frob`"),
        ("-A PREROUTING -j MARK\n", 18, "exactly one operation"),
        (
            "-A PREROUTING -j CONNMARK --save-mark --restore-mark\n",
            18,
            "exactly one operation",
        ),
    ] {
        let e = parse_ruleset(&mangle(rule), "m.rules", RulesetFormat::Auto)
            .expect_err(rule)
            .to_string();
        assert!(e.contains(&format!("m.rules:7:{col}")), "{rule}: {e}");
        assert!(e.contains(what), "{rule}: {e}");
    }
}

fn nft_rules(text: &str, chain: &str) -> Vec<ringfence_model::Rule> {
    let rs = parse_ruleset(text, "m.nft", RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"));
    rs.chain(rs.chain_by_name(chain).expect(chain))
        .rules
        .clone()
}

#[test]
fn nft_mark_statements_and_matches_become_rewrites_and_tests() {
    let text = "table inet t {\n\
        chain pre {\n\
            type filter hook prerouting priority mangle; policy accept;\n\
            ip daddr 198.18.1.20 tcp dport 443 meta mark set 0x10\n\
            meta mark set meta mark or 0x4000\n\
            meta mark set meta mark and 0xff00 xor 0x1\n\
            ct mark set meta mark\n\
            meta mark set ct mark and 0xff\n\
            meta mark & 0x4000 == 0x4000 accept\n\
            meta mark != 0x10 drop\n\
            meta mark { 0x1, 0x2 } accept\n\
            ct mark 0x3 counter accept\n\
        }\n\
    }\n";
    let rules = nft_rules(text, "inet t pre");
    let rw: Vec<MarkRewrite> = rules
        .iter()
        .filter_map(|r| match &r.action {
            Action::Mark(rw) => Some(*rw),
            _ => None,
        })
        .collect();
    assert_eq!(rw.len(), 5, "{rules:#?}");
    assert_eq!(rw[0].apply(0xffff, 7), (0x10, 7));
    assert_eq!(rw[1].apply(0x1, 7), (0x4001, 7));
    assert_eq!(rw[2].apply(0x1234, 7), (0x1201, 7));
    assert_eq!(rw[3].apply(0x55, 7), (0x55, 0x55));
    assert_eq!(rw[4].apply(0x55, 0x1234), (0x34, 0x1234));
    // The rewrite rule keeps its match.
    assert!(!rules[0].matches.dport.contains(80) && rules[0].matches.dport.contains(443));
    let tests: Vec<&Vec<MarkTest>> = rules
        .iter()
        .filter(|r| !matches!(r.action, Action::Mark(_)))
        .map(|r| &r.matches.marks)
        .collect();
    assert_eq!(
        tests[0],
        &vec![MarkTest {
            field: MarkField::Packet,
            mask: 0x4000,
            value: 0x4000,
            invert: false
        }]
    );
    assert_eq!(
        tests[1],
        &vec![MarkTest {
            field: MarkField::Packet,
            mask: u32::MAX,
            value: 0x10,
            invert: true
        }]
    );
    // A set of values is one rule per value.
    assert_eq!(tests[2][0].value, 1);
    assert_eq!(tests[3][0].value, 2);
    assert_eq!(tests[4][0].field, MarkField::Conn);
    assert!(
        rules.iter().all(|r| r.matches.opaque.is_empty()),
        "{rules:#?}"
    );
}

#[test]
fn an_nft_mark_set_before_a_verdict_is_a_rewrite_then_the_verdict() {
    let text = "table ip t {\n\
        chain fwd {\n\
            type filter hook forward priority 0; policy drop;\n\
            tcp dport 22 meta mark set 0x1 accept\n\
            meta mark 0x1 tcp dport 22 meta mark set 0x2 accept\n\
        }\n\
    }\n";
    // (Without the rule an `ip` table adds for IPv6 packets, which it never sees.)
    let rules: Vec<_> = nft_rules(text, "ip t fwd")
        .into_iter()
        .filter(|r| !matches!(r.origin, ringfence_model::RuleRef::Policy { .. }))
        .collect();
    assert!(
        matches!(rules[0].action, Action::Mark(_)),
        "{:?}",
        rules.iter().map(|r| &r.action).collect::<Vec<_>>()
    );
    assert_eq!(rules[1].action, Action::Accept);
    assert_eq!(rules[0].matches, rules[1].matches);
    assert_eq!(rules[0].origin, rules[1].origin);
    // A rule that tests the mark it then rewrites, with a verdict after the
    // rewrite, is not split (the split rule would test the new mark): unknown.
    match &rules[2].action {
        Action::Jump { .. } => {}
        a => panic!("expected the unknown-target jump, got {a:?}"),
    }
}

#[test]
fn a_flipping_mark_on_a_rule_split_into_overlapping_parts_is_an_unknown_target() {
    // `--ports` becomes a source-port rule and a destination-port rule; a
    // packet in both would have its mark flipped twice.
    let rs = parse("-A PREROUTING -p tcp -m multiport --ports 80 -j MARK --xor-mark 0x1\n-A PREROUTING -p tcp -m multiport --ports 80 -j MARK --set-mark 0x1\n");
    let c = rs.chain(rs.chain_by_name("mangle:PREROUTING").unwrap());
    match &c.rules[0].action {
        Action::Jump { target } => assert_eq!(rs.chain(*target).name, "?MARK"),
        a => panic!("{a:?}"),
    }
    // Setting is the same applied twice: followed.
    assert!(matches!(c.rules[2].action, Action::Mark(_)));
    assert!(matches!(c.rules[3].action, Action::Mark(_)));
}
