//! Property tests: the set engine agrees with the per-packet walk.
//!
//! Random small rulesets (user chains, jumps, gotos, returns, negated
//! interfaces, port and address ranges, conntrack states, policies, two base
//! chains on one hook) and random packets from the same small value domains,
//! so rules overlap often.

use proptest::prelude::*;
use ringfence_analysis::engine::DEFAULT_BUDGET;
use ringfence_analysis::space::packet_box;
use ringfence_analysis::{Engine, Fate, IfaceUniverse, Tracer};
use ringfence_model::*;
use std::net::{IpAddr, Ipv4Addr};

const IFACES: [&str; 4] = ["eth0", "eth1", "veth0", "lo"];

fn addr_set() -> impl Strategy<Value = AddrSet> {
    prop_oneof![
        3 => Just(AddrSet::all_v4()),
        2 => (0u32..8, 0u32..8).prop_map(|(a, b)| AddrSet {
            v4: IntervalSet::range(0x0a00_0000 + a.min(b), 0x0a00_0000 + a.max(b)),
            v6: IntervalSet::empty(),
        }),
        1 => (0u32..8, 0u32..8).prop_map(|(a, b)| {
            let s = AddrSet {
                v4: IntervalSet::range(0x0a00_0000 + a.min(b), 0x0a00_0000 + a.max(b)),
                v6: IntervalSet::empty(),
            };
            s.complement().intersect(&AddrSet::all_v4())
        }),
    ]
}

fn ports() -> impl Strategy<Value = IntervalSet<u16>> {
    prop_oneof![
        3 => Just(IntervalSet::full()),
        2 => (0u16..6, 0u16..6).prop_map(|(a, b)| IntervalSet::range(a.min(b), a.max(b))),
        1 => (0u16..6).prop_map(|a| IntervalSet::single(a).complement()),
    ]
}

fn iface() -> impl Strategy<Value = IfaceSet> {
    prop_oneof![
        4 => Just(IfaceSet::any()),
        1 => (0usize..4).prop_map(|i| IfaceSet::only(vec![IfacePattern::Exact(IFACES[i].into())])),
        1 => Just(IfaceSet::only(vec![IfacePattern::Prefix("eth".into())])),
        1 => Just(IfaceSet::except(vec![IfacePattern::Prefix("eth".into())])),
        1 => (0usize..4).prop_map(|i| IfaceSet::except(vec![IfacePattern::Exact(IFACES[i].into())])),
    ]
}

fn a_match() -> impl Strategy<Value = Match> {
    (
        addr_set(),
        addr_set(),
        prop_oneof![Just(IntervalSet::full()), Just(IntervalSet::single(6u8)), Just(IntervalSet::single(17u8))],
        ports(),
        ports(),
        iface(),
        iface(),
        prop_oneof![4 => Just(CtStates::ALL), 1 => Just(CtStates(CtStates::NEW)), 1 => Just(CtStates(CtStates::ESTABLISHED | CtStates::RELATED))],
        prop::bool::weighted(0.05),
    )
        .prop_map(|(src, dst, protocol, sport, dport, iif, oif, ct_state, opaque)| Match {
            src,
            dst,
            protocol,
            sport,
            dport,
            iif,
            oif,
            ct_state,
            opaque: if opaque { vec![Opaque { text: "-m mark".into() }] } else { vec![] },
        })
}

/// Action choice; chain targets are resolved to later chains so there are no loops.
fn action_code() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 3 => Just(1), 1 => Just(2), 2 => Just(3), 1 => Just(4), 3 => Just(5), 2 => Just(6)]
}

fn ruleset() -> impl Strategy<Value = Ruleset> {
    let chain = prop::collection::vec((a_match(), action_code(), 0usize..8), 0..7);
    (
        prop::collection::vec(chain, 4),
        prop::bool::ANY,
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(chains, p0, p1, two_bases)| {
            // Chains 0 and 1 are base chains on forward; 2..4 are user chains.
            let n = chains.len();
            let mut out = Vec::new();
            for (ci, rules) in chains.into_iter().enumerate() {
                let base = match ci {
                    0 => Some(BaseChain {
                        hook: Hook::Forward,
                        priority: 0,
                        policy: if p0 { Policy::Accept } else { Policy::Drop },
                    }),
                    1 if two_bases => Some(BaseChain {
                        hook: Hook::Forward,
                        priority: 10,
                        policy: if p1 { Policy::Accept } else { Policy::Drop },
                    }),
                    _ => None,
                };
                let first_user = 2usize;
                let rules = rules
                    .into_iter()
                    .enumerate()
                    .filter_map(|(ri, (m, code, t))| {
                        let later: Vec<usize> = (first_user.max(ci + 1)..n).collect();
                        let target = (!later.is_empty()).then(|| ChainId(later[t % later.len()]));
                        let action = match code {
                            0 => Action::Accept,
                            1 => Action::Drop,
                            2 => Action::Reject { with: None },
                            3 => Action::Return,
                            4 => Action::Continue,
                            5 => Action::Jump { target: target? },
                            _ => Action::Goto { target: target? },
                        };
                        Some(Rule {
                            matches: m,
                            action,
                            origin: RuleRef::Line {
                                file: "p".into(),
                                line: (ci * 100 + ri) as u64,
                            },
                            comment: None,
                        })
                    })
                    .collect();
                out.push(Chain {
                    name: format!("c{ci}"),
                    base,
                    rules,
                });
            }
            Ruleset {
                format: SourceFormat::IptablesSave,
                source: "p".into(),
                chains: out,
                notes: vec![],
            }
        })
}

fn packet() -> impl Strategy<Value = Packet> {
    (
        0u32..9,
        0u32..9,
        prop_oneof![Just(6u8), Just(17u8), Just(1u8)],
        0u16..7,
        0u16..7,
        0usize..5,
        0usize..5,
        prop_oneof![Just(CtStates::NEW), Just(CtStates::ESTABLISHED)],
    )
        .prop_map(|(s, d, protocol, sport, dport, i, o, ct)| Packet {
            src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + s)),
            dst: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + d)),
            protocol,
            sport,
            dport,
            iif: Some(["eth0", "eth1", "veth0", "lo", "wlan3"][i].to_string()),
            oif: Some(["eth0", "eth1", "veth0", "lo", "eth7"][o].to_string()),
            ct_state: ct,
        })
}

fn verdict_fate(v: Verdict) -> Fate {
    match v {
        Verdict::Accept => Fate::Accept,
        Verdict::Drop => Fate::Drop,
        Verdict::Reject => Fate::Reject,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn region_classification_of_a_single_packet_matches_trace(rs in ruleset(), pkts in prop::collection::vec(packet(), 1..20)) {
        let engine = Engine::new(&rs, IfaceUniverse::new([&rs]));
        let tracer = Tracer::new(&rs);
        for p in &pkts {
            let t = tracer.trace(Hook::Forward, p);
            let out = engine.classify(Hook::Forward, vec![packet_box(p, &engine.u)]).unwrap();
            prop_assert_eq!(out.len(), 1, "a point has one fate");
            if out[0].fate == Fate::Unknown {
                prop_assert!(t.uncertain, "engine unknown but trace certain");
            } else if !t.uncertain {
                prop_assert_eq!(out[0].fate, verdict_fate(t.verdict), "packet {:?}", p);
                // The deciding rule is the same.
                let last = out[0].path.last().map(|&k| engine.rule_ref(k));
                prop_assert_eq!(last.as_ref(), t.path.last());
            }
        }
    }

    #[test]
    fn accepted_region_contains_exactly_the_accepted_packets(rs in ruleset(), pkts in prop::collection::vec(packet(), 1..30)) {
        let engine = Engine::new(&rs, IfaceUniverse::new([&rs]));
        let tracer = Tracer::new(&rs);
        let scope = engine.hook_space(Hook::Forward, CtStates::ALL.0);
        let (acc, incomplete) = engine.accepted_beyond(Hook::Forward, &scope, &[], DEFAULT_BUDGET);
        prop_assert!(!incomplete);
        for p in &pkts {
            let t = tracer.trace(Hook::Forward, p);
            if t.uncertain { continue; }
            let pb = packet_box(p, &engine.u);
            let inside = acc.iter().any(|o| pb.is_subset(&o.b));
            prop_assert_eq!(inside, t.verdict == Verdict::Accept, "packet {:?}", p);
        }
    }

    #[test]
    fn shadowed_rules_never_match_and_redundant_rules_change_no_verdict(rs in ruleset(), pkts in prop::collection::vec(packet(), 1..40)) {
        let engine = Engine::new(&rs, IfaceUniverse::new([&rs]));
        let tracer = Tracer::new(&rs);
        let an = engine.anomalies(DEFAULT_BUDGET);
        // Two threads sharing the search one chain at a time find the same, in order.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut runs = std::thread::scope(|sc| {
            let h = sc.spawn(|| engine.anomalies_shared(DEFAULT_BUDGET, &next, 1));
            let mut mine = engine.anomalies_shared(DEFAULT_BUDGET, &next, 1);
            mine.extend(h.join().unwrap());
            mine
        });
        runs.sort_by_key(|(k, _)| *k);
        let shadowed: Vec<_> = runs.iter().flat_map(|(_, a)| a.shadowed.clone()).collect();
        let redundant: Vec<_> = runs.iter().flat_map(|(_, a)| a.redundant.clone()).collect();
        prop_assert_eq!(&shadowed, &an.shadowed);
        prop_assert_eq!(&redundant, &an.redundant);
        for p in &pkts {
            let t = tracer.trace(Hook::Forward, p);
            for s in &an.shadowed {
                prop_assert!(!t.path.contains(&s.rule), "shadowed {} matched {:?}", s.rule, p);
            }
        }
        for r in &an.redundant {
            let mut cut = rs.clone();
            for c in &mut cut.chains {
                c.rules.retain(|x| x.origin != r.rule);
            }
            let t2 = Tracer::new(&cut);
            for p in &pkts {
                let a = tracer.trace(Hook::Forward, p);
                let b = t2.trace(Hook::Forward, p);
                if a.uncertain || b.uncertain { continue; }
                prop_assert_eq!(a.verdict, b.verdict, "removing redundant {} changed {:?}", r.rule, p);
            }
        }
    }
}
