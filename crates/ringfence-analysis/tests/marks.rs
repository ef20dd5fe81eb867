//! Marks are packet fields: a mark set in mangle and matched in filter is
//! followed exactly (issue 15), so such a ruleset gets certain verdicts
//! instead of "unknown". Packets enter with packet mark 0 and a new
//! connection with connection mark 0.

use ringfence_analysis::verify::{verify, Status, VerifyReport};
use ringfence_analysis::{Engine, IfaceUniverse, Tracer};
use ringfence_model::{CtStates, Hook, Packet};
use ringfence_parse::{parse_ruleset, RulesetFormat};

const BASE: &str = include_str!("data/exact.rules");

const HARBOR_ACCEPTS: [&str; 3] = [
    "-A INFRA -s 198.18.10.0/24 -d 198.18.1.20/32 -p tcp -m tcp --dport 443 -j ACCEPT\n",
    "-A INFRA -s 198.18.20.0/23 -d 198.18.1.20/32 -p tcp -m tcp --dport 443 -j ACCEPT\n",
    "-A INFRA -s 198.18.1.10/32 -d 198.18.1.20/32 -p tcp -m tcp --dport 443 -j ACCEPT\n",
];

const MANGLE_HEAD: &str = "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";

/// The clean base with the Harbor accepts replaced by `filter_rule` and
/// `mangle` (rules) appended as a mangle table.
fn harbor_by_mark(filter_rule: &str, mangle: &str) -> String {
    let mut text = BASE.to_string();
    for (i, l) in HARBOR_ACCEPTS.iter().enumerate() {
        assert!(text.contains(l));
        text = text.replace(l, if i == 0 { filter_rule } else { "" });
    }
    format!("{text}{MANGLE_HEAD}{mangle}COMMIT\n")
}

/// A new tcp connection from `src` to harbor (198.18.1.20) on `dport`,
/// forwarded from eth0 to eth1.
fn forward_packet(src: &str, dport: u16) -> Packet {
    let mut p = Packet::new_connection(
        src.parse().unwrap(),
        "198.18.1.20".parse().unwrap(),
        6,
        40000,
        dport,
    );
    p.iif = Some("eth0".into());
    p.oif = Some("eth1".into());
    p
}

fn run(name: &str, text: &str) -> VerifyReport {
    let rs = parse_ruleset(text, name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"));
    let site = ringfence_site::example_site().resolve();
    verify(&rs, &site, Hook::Forward)
}

fn status(r: &VerifyReport, id: &str) -> Status {
    r.flows.iter().find(|f| f.id == id).expect(id).status
}

const MARK_HARBOR: &str = "-A PREROUTING -s 198.18.10.0/24 -d 198.18.1.20/32 -p tcp --dport 443 -j MARK --set-xmark 0x10/0x10\n\
     -A PREROUTING -s 198.18.20.0/23 -d 198.18.1.20/32 -p tcp --dport 443 -j MARK --set-xmark 0x10/0x10\n\
     -A PREROUTING -s 198.18.1.10/32 -d 198.18.1.20/32 -p tcp --dport 443 -j MARK --set-xmark 0x10/0x10\n";

#[test]
fn a_flow_accepted_by_a_mark_set_in_mangle_and_matched_in_filter_is_allowed() {
    let text = harbor_by_mark("-A INFRA -m mark --mark 0x10/0x10 -j ACCEPT\n", MARK_HARBOR);
    let r = run("mark.rules", &text);
    assert_eq!(status(&r, "to-harbor"), Status::Allowed, "{:#?}", r.flows);
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert!(r.summary.ok, "{:?}", r.summary);
}

#[test]
fn a_mark_accept_without_a_rule_that_sets_the_mark_accepts_nothing() {
    // Packets enter with mark 0: nothing sets 0x10, so the flow is blocked.
    let text = harbor_by_mark("-A INFRA -m mark --mark 0x10/0x10 -j ACCEPT\n", "");
    let r = run("nomark.rules", &text);
    assert_eq!(status(&r, "to-harbor"), Status::Blocked);
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert!(!r.summary.ok);
}

#[test]
fn a_negated_mark_accept_accepts_unmarked_packets_as_certain_excess() {
    let text = harbor_by_mark("-A INFRA -m mark ! --mark 0x10/0x10 -j ACCEPT\n", "");
    let r = run("negmark.rules", &text);
    assert_eq!(status(&r, "to-harbor"), Status::Allowed);
    assert!(!r.excess.is_empty());
    assert!(r.excess.iter().all(|e| e.certain), "{:#?}", r.excess);
    assert!(!r.summary.ok);
}

#[test]
fn a_connmark_set_then_restored_accepts_the_flow() {
    let mangle = "-A PREROUTING -s 198.18.10.0/24 -d 198.18.1.20/32 -p tcp --dport 443 -m conntrack --ctstate NEW -j CONNMARK --set-xmark 0x1/0xffffffff\n\
         -A PREROUTING -s 198.18.20.0/23 -d 198.18.1.20/32 -p tcp --dport 443 -m conntrack --ctstate NEW -j CONNMARK --set-xmark 0x1/0xffffffff\n\
         -A PREROUTING -s 198.18.1.10/32 -d 198.18.1.20/32 -p tcp --dport 443 -m conntrack --ctstate NEW -j CONNMARK --set-xmark 0x1/0xffffffff\n\
         -A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff\n";
    let text = harbor_by_mark("-A INFRA -m mark --mark 0x1 -j ACCEPT\n", mangle);
    let r = run("connmark.rules", &text);
    assert_eq!(status(&r, "to-harbor"), Status::Allowed, "{:#?}", r.flows);
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert!(r.summary.ok, "{:?}", r.summary);
}

#[test]
fn marking_a_whole_network_and_accepting_the_mark_is_certain_excess_named_by_the_accept() {
    let text = harbor_by_mark(
        "-A INFRA -m mark --mark 0x10/0x10 -j ACCEPT\n",
        "-A PREROUTING -s 198.18.20.0/23 -j MARK --set-xmark 0x10/0x10\n",
    );
    let r = run("wide.rules", &text);
    assert!(!r.excess.is_empty());
    assert!(r.excess.iter().any(|e| e.certain));
    assert!(!r.summary.ok);
    // The harbor flow from the marked network is accepted; from the others not.
    assert_ne!(status(&r, "to-harbor"), Status::Unknown);
}

/// Mangle rules that send the Harbor flow's packets (one jump per source)
/// to a chain that sets mark 0x10; `test` is put into each jump.
fn harbor_marked_by_a_chain(test: &str) -> String {
    let mut mangle = String::from(":SETMARK - [0:0]\n");
    for src in ["198.18.10.0/24", "198.18.20.0/23", "198.18.1.10/32"] {
        mangle.push_str(&format!(
            "-A PREROUTING -s {src} -d 198.18.1.20/32 -p tcp --dport 443 {test}-j SETMARK\n"
        ));
    }
    mangle.push_str("-A SETMARK -j MARK --set-xmark 0x10/0x10\n");
    harbor_by_mark("-A INFRA -m mark --mark 0x10/0x10 -j ACCEPT\n", &mangle)
}

/// Whether the plan of the mangle PREROUTING chain holds skip boxes (the
/// guard that keeps packets outside a jump out of a marking chain).
fn prerouting_has_guard(rs: &ringfence_model::Ruleset) -> bool {
    let engine = Engine::new(rs, IfaceUniverse::new([rs]));
    let setmark = rs
        .chain_by_name("mangle:SETMARK")
        .expect("the marking chain");
    let c = (0..rs.chains.len())
        .map(ringfence_model::ChainId)
        .find(|&c| {
            rs.chain(c)
                .rules
                .iter()
                .any(|r| r.action == ringfence_model::Action::Jump { target: setmark })
        })
        .expect("the mangle PREROUTING chain jumps to SETMARK");
    engine
        .plan(c)
        .pieces
        .iter()
        .any(|p| matches!(p.fate, ringfence_analysis::Fate::Skip(_)))
}

#[test]
fn a_jump_into_a_marking_chain_that_tests_no_mark_marks_exactly_its_packets_without_a_guard() {
    // The marking chain's boxes lie inside each jump's box, so packets
    // outside the jumps meet none of them: the plan needs no guard, and the
    // flow is accepted by its mark with nothing beyond it.
    let text = harbor_marked_by_a_chain("");
    let rs = parse_ruleset(&text, "chainmark.rules", RulesetFormat::Auto).unwrap();
    assert!(!prerouting_has_guard(&rs));
    let r = run("chainmark.rules", &text);
    assert_eq!(status(&r, "to-harbor"), Status::Allowed, "{:#?}", r.flows);
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert!(r.summary.ok, "{:?}", r.summary);
    // A packet from outside the jumps is not marked and is dropped.
    let tracer = Tracer::new(&rs);
    let p = forward_packet("198.18.30.5", 443);
    assert_eq!(
        tracer.trace(Hook::Forward, &p).verdict,
        ringfence_model::Verdict::Drop
    );
}

#[test]
fn a_jump_into_a_marking_chain_that_tests_the_mark_keeps_its_guard() {
    // The jump matches mark 0 only; inside the chain the mark is 0x10, so
    // the chain's boxes cannot be cut by the jump's mark test and a guard
    // keeps packets with other marks out. Packets enter with mark 0: the
    // verdicts are those of the unguarded jump.
    let text = harbor_marked_by_a_chain("-m mark --mark 0x0/0x10 ");
    let rs = parse_ruleset(&text, "guarded.rules", RulesetFormat::Auto).unwrap();
    assert!(prerouting_has_guard(&rs));
    let r = run("guarded.rules", &text);
    assert_eq!(status(&r, "to-harbor"), Status::Allowed, "{:#?}", r.flows);
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert!(r.summary.ok, "{:?}", r.summary);
}

#[test]
fn trace_follows_the_mark_and_agrees_with_the_engine() {
    let text = harbor_by_mark("-A INFRA -m mark --mark 0x10/0x10 -j ACCEPT\n", MARK_HARBOR);
    let rs = parse_ruleset(&text, "mark.rules", RulesetFormat::Auto).unwrap();
    let tracer = Tracer::new(&rs);
    let p = forward_packet("198.18.20.5", 443);
    let t = tracer.trace(Hook::Forward, &p);
    assert!(!t.uncertain);
    assert_eq!(t.verdict, ringfence_model::Verdict::Accept);
    let mut scratch = ringfence_analysis::trace::TraceScratch::default();
    tracer.trace_with(Hook::Forward, &p, &mut scratch);
    let changes = tracer.mark_changes(&scratch);
    assert_eq!(changes.len(), 1);
    assert_eq!((changes[0].1, changes[0].2), (0x10, 0));
    // The same packet to another port is not marked and is dropped.
    let p = forward_packet("198.18.20.5", 444);
    assert_eq!(
        tracer.trace(Hook::Forward, &p).verdict,
        ringfence_model::Verdict::Drop
    );
    let engine = Engine::new(&rs, IfaceUniverse::new([&rs]));
    let out = engine
        .classify(
            Hook::Forward,
            vec![ringfence_analysis::space::packet_box(&p, &engine.u)],
        )
        .unwrap();
    assert!(out.iter().all(|o| o.fate == ringfence_analysis::Fate::Drop));
    assert_eq!(p.ct_state, CtStates::NEW);
}

#[test]
fn an_nft_mark_set_at_mangle_priority_and_accepted_in_forward_is_followed() {
    let text = "table inet t {\n\
        chain pre {\n\
            type filter hook prerouting priority mangle; policy accept;\n\
            ip daddr 198.18.1.20 tcp dport 443 meta mark set meta mark | 0x10\n\
        }\n\
        chain fwd {\n\
            type filter hook forward priority filter; policy drop;\n\
            meta mark & 0x10 == 0x10 accept\n\
        }\n\
    }\n";
    let rs = parse_ruleset(text, "mark.nft", RulesetFormat::Auto).unwrap();
    let tracer = Tracer::new(&rs);
    let engine = Engine::new(&rs, IfaceUniverse::new([&rs]));
    for (dport, accepted) in [(443, true), (444, false)] {
        let p = Packet::new_connection(
            "198.18.20.5".parse().unwrap(),
            "198.18.1.20".parse().unwrap(),
            6,
            40000,
            dport,
        );
        let t = tracer.trace(Hook::Forward, &p);
        assert!(!t.uncertain);
        assert_eq!(
            t.verdict == ringfence_model::Verdict::Accept,
            accepted,
            "{dport}"
        );
        let out = engine
            .classify(
                Hook::Forward,
                vec![ringfence_analysis::space::packet_box(&p, &engine.u)],
            )
            .unwrap();
        assert!(out
            .iter()
            .all(|o| (o.fate == ringfence_analysis::Fate::Accept) == accepted));
    }
}

#[test]
fn with_initial_mark_any_a_mark_accept_may_or_may_not_match() {
    // Something before the ruleset may have set 0x10 already: the flow is
    // accepted by the marked packets and maybe by others, so nothing is
    // certain about the mark accept any more.
    let text = harbor_by_mark("-A INFRA -m mark --mark 0x10/0x10 -j ACCEPT\n", MARK_HARBOR);
    let rs = parse_ruleset(&text, "mark.rules", RulesetFormat::Auto)
        .unwrap()
        .with_initial_mark_any();
    let site = ringfence_site::example_site().resolve();
    let r = verify(&rs, &site, Hook::Forward);
    assert_eq!(status(&r, "to-harbor"), Status::Unknown);
    assert!(r.excess.iter().any(|e| !e.certain));
    assert!(!r.summary.ok);
}

// Before conntrack (iptables raw, nft priority below -200 on prerouting and
// output) a packet has no connection: a connection mark test never holds,
// negated or not, and a rewrite that writes the connection mark or copies
// it into the packet mark does nothing.

const RAW_HEAD: &str = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";

/// The clean base with `table` (a head and its rules) appended.
fn base_with(head: &str, rules: &str) -> String {
    format!("{BASE}{head}{rules}COMMIT\n")
}

/// The trace verdict of a new harbor connection from 198.18.20.5 to `dport`,
/// after checking that it is certain and that the engine gives every part
/// of the packet's box the same fate.
fn harbor_packet_verdict(text: &str, dport: u16) -> ringfence_model::Verdict {
    let rs = parse_ruleset(text, "stage.rules", RulesetFormat::Auto).unwrap();
    let tracer = Tracer::new(&rs);
    let p = forward_packet("198.18.20.5", dport);
    let t = tracer.trace(Hook::Forward, &p);
    assert!(!t.uncertain, "{t:?}");
    let engine = Engine::new(&rs, IfaceUniverse::new([&rs]));
    let out = engine
        .classify(
            Hook::Forward,
            vec![ringfence_analysis::space::packet_box(&p, &engine.u)],
        )
        .unwrap();
    let fate = match t.verdict {
        ringfence_model::Verdict::Accept => ringfence_analysis::Fate::Accept,
        ringfence_model::Verdict::Drop => ringfence_analysis::Fate::Drop,
        ringfence_model::Verdict::Reject => ringfence_analysis::Fate::Reject,
    };
    assert!(!out.is_empty());
    assert!(out.iter().all(|o| o.fate == fate), "{out:?} vs {t:?}");
    t.verdict
}

#[test]
fn a_connmark_match_in_raw_never_matches_negated_or_not() {
    for rule in [
        "-A PREROUTING -m connmark --mark 0x0/0xffffffff -j DROP\n",
        "-A PREROUTING -m connmark ! --mark 0x5/0xffffffff -j DROP\n",
    ] {
        let text = base_with(RAW_HEAD, rule);
        let r = run("raw-connmark.rules", &text);
        assert!(
            r.flows.iter().all(|f| f.status == Status::Allowed),
            "{rule}: {:#?}",
            r.flows
        );
        assert!(r.summary.ok, "{rule}: {:?}", r.summary);
        assert_eq!(
            harbor_packet_verdict(&text, 443),
            ringfence_model::Verdict::Accept
        );
        // After conntrack (mangle) a new connection has connection mark 0,
        // so the same rule drops everything.
        let text = base_with(MANGLE_HEAD, rule);
        let r = run("mangle-connmark.rules", &text);
        assert!(
            r.flows.iter().all(|f| f.status == Status::Blocked),
            "{rule}: {:#?}",
            r.flows
        );
        assert!(!r.summary.ok);
        assert_eq!(
            harbor_packet_verdict(&text, 443),
            ringfence_model::Verdict::Drop
        );
    }
}

/// The base with the harbor accepts replaced by `filter_rule` and `rules`
/// appended as table `head`.
fn harbor_by(filter_rule: &str, head: &str, rules: &str) -> String {
    let mut text = BASE.to_string();
    for (i, l) in HARBOR_ACCEPTS.iter().enumerate() {
        text = text.replace(l, if i == 0 { filter_rule } else { "" });
    }
    format!("{text}{head}{rules}COMMIT\n")
}

const SET_CONNMARK: &str =
    "-A PREROUTING -d 198.18.1.20/32 -p tcp --dport 443 -j CONNMARK --set-xmark 0x1/0xffffffff\n";

const SAVE_CONNMARK: &str =
    "-A PREROUTING -d 198.18.1.20/32 -p tcp --dport 443 -j MARK --set-xmark 0x1/0xffffffff\n\
     -A PREROUTING -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff\n";

#[test]
fn a_connmark_set_or_saved_in_raw_does_not_carry_to_a_filter_connmark_match() {
    let accept = "-A INFRA -m connmark --mark 0x1 -j ACCEPT\n";
    for rules in [SET_CONNMARK, SAVE_CONNMARK] {
        let text = harbor_by(accept, RAW_HEAD, rules);
        let r = run("raw-save.rules", &text);
        assert_eq!(status(&r, "to-harbor"), Status::Blocked, "{rules}");
        assert!(!r.summary.ok);
        assert_eq!(
            harbor_packet_verdict(&text, 443),
            ringfence_model::Verdict::Drop
        );
        // The same rules in mangle run after conntrack and mark the
        // connection (of every source: certain excess beyond the flows).
        let text = harbor_by(accept, MANGLE_HEAD, rules);
        let r = run("mangle-save.rules", &text);
        assert_eq!(status(&r, "to-harbor"), Status::Allowed, "{rules}");
        assert!(!r.excess.is_empty() && r.excess.iter().all(|e| e.certain));
        assert_eq!(
            harbor_packet_verdict(&text, 443),
            ringfence_model::Verdict::Accept
        );
    }
}

#[test]
fn a_packet_mark_set_in_raw_carries_to_filter_and_a_raw_restore_keeps_it() {
    // MARK needs no connection; the restore after it has none to copy from,
    // so the packet mark stays 0x1 (a restore from a new connection's mark
    // would have cleared it).
    let rules =
        "-A PREROUTING -d 198.18.1.20/32 -p tcp --dport 443 -j MARK --set-xmark 0x1/0xffffffff\n\
         -A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff\n";
    let accept = "-A INFRA -m mark --mark 0x1 -j ACCEPT\n";
    let text = harbor_by(accept, RAW_HEAD, rules);
    let r = run("raw-restore.rules", &text);
    assert_eq!(status(&r, "to-harbor"), Status::Allowed, "{:#?}", r.flows);
    // Every source is marked: certain excess beyond the harbor flow's sources.
    assert!(!r.excess.is_empty() && r.excess.iter().all(|e| e.certain));
    assert!(!r.summary.ok);
    assert_eq!(
        harbor_packet_verdict(&text, 443),
        ringfence_model::Verdict::Accept
    );
    assert_eq!(
        harbor_packet_verdict(&text, 444),
        ringfence_model::Verdict::Drop
    );
    // In mangle the restore copies the new connection's mark 0 over it.
    let text = harbor_by(accept, MANGLE_HEAD, rules);
    let r = run("mangle-restore.rules", &text);
    assert_eq!(status(&r, "to-harbor"), Status::Blocked);
    assert_eq!(
        harbor_packet_verdict(&text, 443),
        ringfence_model::Verdict::Drop
    );
}

/// An nft ruleset with a prerouting chain at `prio` holding `pre` and a
/// forward chain (policy drop) holding `fwd`.
fn nft_pre_fwd(prio: i32, pre: &str, fwd: &str) -> String {
    format!(
        "table inet t {{\n\
            chain pre {{\n\
                type filter hook prerouting priority {prio}; policy accept;\n\
                {pre}\n\
            }}\n\
            chain fwd {{\n\
                type filter hook forward priority filter; policy drop;\n\
                {fwd}\n\
            }}\n\
        }}\n"
    )
}

#[test]
fn nft_ct_mark_before_conntrack_is_never_matched_nor_set_nor_read() {
    // (prerouting rules, forward rules, verdict at -300, verdict at -150)
    use ringfence_model::Verdict::{Accept, Drop};
    let cases = [
        // `ct mark != 5` breaks without a connection: nothing is dropped.
        ("ct mark != 0x5 drop", "accept", Accept, Drop),
        ("ct mark 0x0 drop", "accept", Accept, Drop),
        // `ct mark set` does nothing without a connection.
        ("ct mark set 0x1", "ct mark 0x1 accept", Drop, Accept),
        // `meta mark set ct mark` breaks: the packet mark set before stays.
        (
            "meta mark set 0x1\n meta mark set ct mark",
            "meta mark 0x1 accept",
            Accept,
            Drop,
        ),
    ];
    for (pre, fwd, early, late) in cases {
        for (prio, want) in [(-300, early), (-150, late)] {
            let text = nft_pre_fwd(prio, pre, fwd);
            let rs = parse_ruleset(&text, "ctmark.nft", RulesetFormat::Auto)
                .unwrap_or_else(|e| panic!("{e}"));
            let tracer = Tracer::new(&rs);
            let engine = Engine::new(&rs, IfaceUniverse::new([&rs]));
            let p = Packet::new_connection(
                "198.18.20.5".parse().unwrap(),
                "198.18.1.20".parse().unwrap(),
                6,
                40000,
                443,
            );
            let t = tracer.trace(Hook::Forward, &p);
            assert!(!t.uncertain, "{pre} @{prio}");
            assert_eq!(t.verdict, want, "{pre} / {fwd} @{prio}");
            let out = engine
                .classify(
                    Hook::Forward,
                    vec![ringfence_analysis::space::packet_box(&p, &engine.u)],
                )
                .unwrap();
            assert!(!out.is_empty());
            assert!(
                out.iter()
                    .all(|o| (o.fate == ringfence_analysis::Fate::Accept) == (want == Accept)),
                "{pre} / {fwd} @{prio}: {out:?}"
            );
        }
    }
}

#[test]
fn more_mark_values_than_the_field_holds_make_mark_verdicts_not_ok_and_say_why() {
    // 70 distinct marks set in mangle: more values than an exact mark field
    // holds, so the mark accept may or may not match. The flow is not
    // claimed allowed, the result is not OK, and a note says why.
    let mut mangle = MARK_HARBOR.to_string();
    for v in 1..=70u32 {
        mangle.push_str(&format!(
            "-A PREROUTING -s 198.18.200.{v}/32 -j MARK --set-xmark {:#x}/0xffffffff\n",
            v << 8
        ));
    }
    let text = harbor_by_mark("-A INFRA -m mark --mark 0x10/0x10 -j ACCEPT\n", &mangle);
    let r = run("manymarks.rules", &text);
    assert_ne!(status(&r, "to-harbor"), Status::Allowed, "{:#?}", r.flows);
    assert!(!r.summary.ok, "{:?}", r.summary);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("marks are not exact packet fields") && n.contains("more than 64")),
        "{:#?}",
        r.notes
    );
}

#[test]
fn a_mark_set_and_then_matched_in_the_same_chain_is_followed_by_the_region_walk() {
    // The walk's candidate boxes are chosen by what the packets entering
    // it can be; a mark rule later in the same plan changes that, so a
    // box that tests the new mark must still be met.
    let text = base_with(
        MANGLE_HEAD,
        "-A PREROUTING -d 198.18.1.20/32 -p tcp --dport 443 -j MARK --set-xmark 0x1/0xffffffff\n\
         -A PREROUTING -m mark --mark 0x1 -j DROP\n",
    );
    assert_eq!(
        harbor_packet_verdict(&text, 443),
        ringfence_model::Verdict::Drop
    );
    let r = run("mark-then-drop.rules", &text);
    assert_eq!(status(&r, "to-harbor"), Status::Blocked, "{:#?}", r.flows);
    assert!(!r.summary.ok);
}
