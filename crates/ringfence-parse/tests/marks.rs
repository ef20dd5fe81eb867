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
