//! Property tests: the set engine agrees with the per-packet walk.
//!
//! Random small rulesets (user chains, jumps, gotos, returns, negated
//! interfaces, port and address ranges, conntrack states, policies, two base
//! chains on one hook, rules the model cannot evaluate with every action,
//! jumps to a target the model cannot follow) and random packets from the
//! same small value domains, so rules overlap often. A rule that may or may
//! not match gives a packet several outcomes: trace's set of outcomes must
//! be exactly the engine's, none missed and none extra. Rules test and
//! rewrite the packet and connection marks (MARK, CONNMARK save and
//! restore), in base chains and user chains, so a mark set in one chain
//! decides in a later one. Rules test the rarer header fields too (TCP
//! flags as `--syn`, `! --syn` and `--tcp-flags` masks, ICMP type and code,
//! length ranges, DSCP, packet type, source MAC), and packets carry values
//! on both sides of each test.
//!
//! Several nat chains per hook, as nft allows: nat chains on prerouting and
//! postrouting at assorted priorities (all run at the nat priority, ordered
//! among themselves by their own), with DNATs to addresses and ports the
//! packets often already have (identity translations that still end the
//! hook's nat chains), SNAT (to one address or a range) and MASQUERADE, drops, mark rewrites and rules
//! that may or may not match; filter chains on prerouting before and after
//! the nat priority and on postrouting after the source translation read
//! what the translations rewrote.

use proptest::prelude::*;
use ringfence_analysis::engine::{DeadReason, DEFAULT_BUDGET};
use ringfence_analysis::space::packet_box;
use ringfence_analysis::trace::Decision;
use ringfence_analysis::{Engine, Fate, IfaceUniverse, Tracer};
use ringfence_model::*;
use std::collections::BTreeSet;
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
        prop::bool::weighted(0.15),
        mark_tests(),
        extra_fields(),
    )
        .prop_map(|(src, dst, protocol, sport, dport, iif, oif, ct_state, opaque, marks, (extra, proto))| {
            let mut m = Match {
                src,
                dst,
                protocol,
                sport,
                dport,
                iif,
                oif,
                ct_state,
                marks,
                extra,
                opaque: if opaque { vec![Opaque { text: "-m mark".into() }] } else { vec![] },
                ..Match::any()
            };
            // As the parsers do: a flag test implies TCP, an ICMP test ICMP.
            if let Some(p) = proto {
                m.protocol = m.protocol.intersect(&IntervalSet::single(p));
            }
            m
        })
}

/// The rare fields a rule tests (mostly none), and the protocol the test
/// implies. Values come from the small domains `packet` draws from.
fn extra_fields() -> impl Strategy<Value = (Extra, Option<u8>)> {
    use fields::{icmp_values, masked_bytes, tcp_flag::*};
    let one = prop_oneof![
        // --syn, ! --syn, --tcp-flags ALL NONE, --tcp-flags SYN,ACK SYN,ACK
        (0usize..4).prop_map(|k| {
            let set = match k {
                0 => masked_bytes(SYN | ACK | RST | FIN, SYN, false),
                1 => masked_bytes(SYN | ACK | RST | FIN, SYN, true),
                2 => masked_bytes(0x3f, 0, false),
                _ => masked_bytes(SYN | ACK, SYN | ACK, false),
            };
            let mut x = ExtraFields::full();
            x.tcp_flags = set;
            (x, Some(6u8))
        }),
        // --icmp-type 8, 3/3, ! 8, 3
        (0usize..4).prop_map(|k| {
            let mut x = ExtraFields::full();
            x.icmp = match k {
                0 => icmp_values(8, None),
                1 => icmp_values(3, Some(3)),
                2 => icmp_values(8, None).complement(),
                _ => icmp_values(3, None),
            };
            (x, Some(1u8))
        }),
        // -m length, -m dscp, -m pkttype, -m mac (plain and negated)
        (0usize..4, prop::bool::ANY).prop_map(|(k, neg)| {
            let mut x = ExtraFields::full();
            match k {
                0 => {
                    let s = IntervalSet::range(0u32, 100);
                    x.length = if neg { s.complement() } else { s };
                }
                1 => x.tos = masked_bytes(0xfc, 10 << 2, neg),
                2 => {
                    let s = IntervalSet::single(fields::pkttype::HOST);
                    x.pkttype = if neg { s.complement() } else { s };
                }
                _ => {
                    let s = IntervalSet::single(2u64);
                    x.mac_src = if neg {
                        s.complement().intersect(&fields::all_macs())
                    } else {
                        s
                    };
                }
            }
            (x, None)
        }),
    ];
    prop_oneof![
        5 => Just((None, None)),
        2 => one.prop_map(|(x, p)| (fields::normalize(Some(Box::new(x))), p)),
    ]
}

/// Mark tests over the few values the rewrites below produce.
fn mark_tests() -> impl Strategy<Value = Vec<MarkTest>> {
    let test = (
        prop::bool::weighted(0.7),
        prop_oneof![Just(u32::MAX), Just(1u32), Just(2), Just(3)],
        0u32..4,
        prop::bool::weighted(0.3),
    )
        .prop_map(|(packet, mask, value, invert)| MarkTest {
            field: if packet {
                MarkField::Packet
            } else {
                MarkField::Conn
            },
            mask,
            value: value & mask,
            invert,
        });
    prop_oneof![4 => Just(vec![]), 2 => prop::collection::vec(test, 1..3)]
}

/// The rewrites code 9 picks from: MARK set, set-xmark, or, xor, and;
/// CONNMARK set, save and restore.
fn rewrite(t: usize) -> MarkRewrite {
    let p = MarkField::Packet;
    [
        MarkRewrite::set(p, 1, u32::MAX),
        MarkRewrite {
            field: p,
            clear: 2,
            xor: 2,
            copy: 0,
        },
        MarkRewrite {
            field: p,
            clear: 1,
            xor: 1,
            copy: 0,
        },
        MarkRewrite {
            field: p,
            clear: 0,
            xor: 3,
            copy: 0,
        },
        MarkRewrite {
            field: p,
            clear: 1,
            xor: 0,
            copy: 0,
        },
        MarkRewrite::set(MarkField::Conn, 2, u32::MAX),
        MarkRewrite {
            field: MarkField::Conn,
            clear: u32::MAX,
            xor: 0,
            copy: u32::MAX,
        },
        MarkRewrite {
            field: p,
            clear: 3,
            xor: 0,
            copy: 3,
        },
    ][t % 8]
}

/// Action choice; chain targets are resolved to later chains so there are
/// no loops; 7 and 8 jump and go to the chain standing for a target the
/// model cannot follow.
fn action_code() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 3 => Just(1), 1 => Just(2), 2 => Just(3), 1 => Just(4), 3 => Just(5), 2 => Just(6), 1 => Just(7), 1 => Just(8), 3 => Just(9)]
}

/// The name of the chain standing for a target the model cannot follow, as
/// the parsers synthesize it.
const UNKNOWN_TARGET: &str = "?DNAT";

/// One nat chain (or a filter chain around the nat priority): where it is
/// (see `nat_base`), and its rules as (match, action code, address, port).
type NatChainSpec = (usize, Vec<(Match, u8, u32, u16)>);

fn nat_chain() -> impl Strategy<Value = NatChainSpec> {
    (
        0usize..9,
        prop::collection::vec((a_match(), 0u8..8, 0u32..9, 0u16..7), 0..4),
    )
}

/// Where chain spec `k` goes: its hook, priority and whether it is a nat
/// chain. Nat chains on prerouting at -150 .. 150 (all run at -100) and on
/// postrouting at 50 .. 250 (all at 100); filter chains on prerouting at
/// -150 (before the nat chains) and 0 (after), on postrouting at 150
/// (after the source translation).
fn nat_base(k: usize) -> (Hook, i32, bool) {
    [
        (Hook::Prerouting, -150, true),
        (Hook::Prerouting, -100, true),
        (Hook::Prerouting, 0, true),
        (Hook::Prerouting, 150, true),
        (Hook::Postrouting, 50, true),
        (Hook::Postrouting, 250, true),
        (Hook::Prerouting, -150, false),
        (Hook::Prerouting, 0, false),
        (Hook::Postrouting, 150, false),
    ][k % 9]
}

/// A rule of chain spec `k`: nat chains test only a connection's first
/// packet (as the parsers restrict them) and translate (prerouting: DNAT
/// to one of the packets' addresses, with or without a port; postrouting:
/// SNAT to one, with or without a port, or to a range of up to three,
/// MASQUERADE to the host's one address), accept, drop, continue or set a
/// mark; filter
/// chains accept, drop, continue or set a mark.
fn nat_rule(k: usize, ri: usize, (mut m, code, a, port): (Match, u8, u32, u16)) -> Rule {
    let (hook, _, nat) = nat_base(k);
    let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + a));
    let action = match (nat, hook, code) {
        (_, _, 0) => Action::Accept,
        (_, _, 1) => Action::Drop,
        (_, _, 2) => Action::Continue,
        (_, _, 3) => Action::Mark(rewrite(a as usize)),
        (true, Hook::Prerouting, 4 | 5) => Action::Nat(NatRewrite {
            kind: NatKind::Dnat,
            addrs: Some((addr, addr)),
            ports: None,
        }),
        (true, Hook::Prerouting, _) => Action::Nat(NatRewrite {
            kind: NatKind::Dnat,
            addrs: Some((addr, addr)),
            ports: Some((port, port)),
        }),
        (true, _, 4 | 5) => Action::Nat(NatRewrite {
            kind: NatKind::Snat,
            addrs: Some((addr, addr)),
            ports: (code == 5).then_some((port, port)),
        }),
        // A range of one to three addresses: each is a possible outcome.
        (true, _, 7) => Action::Nat(NatRewrite {
            kind: NatKind::Snat,
            addrs: Some((
                addr,
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + a + u32::from(port % 3))),
            )),
            ports: None,
        }),
        (true, _, _) => Action::Nat(NatRewrite {
            kind: NatKind::Masquerade,
            addrs: None,
            ports: None,
        }),
        (false, _, _) => Action::Accept,
    };
    if nat {
        m.ct_state = CtStates(m.ct_state.0 & (CtStates::NEW | CtStates::RELATED));
    }
    Rule {
        matches: m,
        action,
        origin: RuleRef::Line {
            file: "p".into(),
            line: (1000 + k * 100 + ri) as u64,
        },
        comment: None,
    }
}

fn ruleset() -> impl Strategy<Value = Ruleset> {
    let chain = prop::collection::vec((a_match(), action_code(), 0usize..8), 0..7);
    (
        prop::collection::vec(chain, 4),
        prop::bool::ANY,
        prop::bool::ANY,
        prop::bool::ANY,
        prop_oneof![2 => Just(vec![]), 3 => prop::collection::vec(nat_chain(), 1..5)],
    )
        .prop_map(|(chains, p0, p1, two_bases, nats)| {
            // Chains 0 and 1 are base chains on forward; 2..4 are user
            // chains; chain 4 stands for a target the model cannot follow.
            let n = chains.len();
            let unknown = ChainId(n);
            let mut out = Vec::new();
            for (ci, rules) in chains.into_iter().enumerate() {
                let base = match ci {
                    0 => Some(BaseChain {
                        hook: Hook::Forward,
                        priority: 0,
                        policy: if p0 { Policy::Accept } else { Policy::Drop },
                        nat: false,
                    }),
                    1 if two_bases => Some(BaseChain {
                        hook: Hook::Forward,
                        priority: 10,
                        policy: if p1 { Policy::Accept } else { Policy::Drop },
                        nat: false,
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
                            6 => Action::Goto { target: target? },
                            7 => Action::Jump { target: unknown },
                            9 => Action::Mark(rewrite(t)),
                            _ => Action::Goto { target: unknown },
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
            out.push(Chain {
                name: UNKNOWN_TARGET.into(),
                base: None,
                rules: vec![Rule {
                    matches: Match {
                        opaque: vec![Opaque {
                            text: "-j DNAT".into(),
                        }],
                        ..Match::any()
                    },
                    action: Action::Drop,
                    origin: RuleRef::Line {
                        file: "p".into(),
                        line: 9999,
                    },
                    comment: None,
                }],
            });
            // Nat chains and the filter chains around them, each place
            // once (an nft table cannot hold two chains at one place
            // either; their order would be the order of registration).
            let mut placed = BTreeSet::new();
            for (k, rules) in nats {
                if !placed.insert(k) {
                    continue;
                }
                let (hook, priority, nat) = nat_base(k);
                out.push(Chain {
                    name: format!("n{k}"),
                    base: Some(BaseChain {
                        hook,
                        priority,
                        policy: Policy::Accept,
                        nat,
                    }),
                    rules: rules
                        .into_iter()
                        .enumerate()
                        .map(|(ri, r)| nat_rule(k, ri, r))
                        .collect(),
                });
            }
            Ruleset {
                format: SourceFormat::IptablesSave,
                source: "p".into(),
                chains: out,
                notes: vec![],
                enforced_at: None,
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
        (
            prop_oneof![
                Just(0x02u8),
                Just(0x12),
                Just(0x10),
                Just(0x00),
                Just(0x3f),
                Just(0x0a)
            ],
            prop_oneof![Just((8u8, 0u8)), Just((3, 3)), Just((3, 1)), Just((0, 0))],
            prop_oneof![Just(40u32), Just(100), Just(101), Just(1500)],
            prop_oneof![Just(0u8), Just(10 << 2), Just(10 << 2 | 1), Just(46 << 2)],
            0u8..4,
            1u64..4,
        ),
    )
        .prop_map(
            |(s, d, protocol, sport, dport, i, o, ct, (flags, icmp, length, tos, pkttype, mac))| {
                Packet {
                    src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + s)),
                    dst: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + d)),
                    protocol,
                    sport,
                    dport,
                    iif: Some(["eth0", "eth1", "veth0", "lo", "wlan3"][i].to_string()),
                    oif: Some(["eth0", "eth1", "veth0", "lo", "eth7"][o].to_string()),
                    ct_state: ct,
                    tcp_flags: Some(flags),
                    icmp_type: Some(icmp.0),
                    icmp_code: Some(icmp.1),
                    length: Some(length),
                    tos: Some(tos),
                    pkttype: Some(pkttype),
                    mac_src: Some(mac),
                }
            },
        )
}

/// The host's one address, outside the packets' addresses (10.0.0.0-8):
/// every packet is forwarded, and a MASQUERADE gives it this source.
fn host() -> LocalAddrs {
    LocalAddrs::new([IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))])
}

/// The engine of `rs`; with `join_every`, its walks join fragments after
/// every box that adds one (the default joins only when a walk's live set
/// has grown by several, which the small rulesets here seldom reach).
fn engine_of(rs: &Ruleset, join_every: bool) -> Engine<'_> {
    let e = Engine::new(rs, IfaceUniverse::new([rs]).with_locals(&host().addrs));
    if join_every {
        e.with_join_step(1)
    } else {
        e
    }
}

fn tracer_of(rs: &Ruleset) -> Tracer<'_> {
    Tracer::new(rs).with_local(host())
}

fn decision(f: Fate) -> Decision {
    match f {
        Fate::Accept => Decision::Accept,
        Fate::Drop => Decision::Drop,
        Fate::Reject => Decision::Reject,
        Fate::Unknown => Decision::Unknown,
        other => panic!("not a final fate: {other:?}"),
    }
}

/// A packet's possible outcomes: what each ends in and its deciding rule.
type OutcomeSet = BTreeSet<(String, Option<String>)>;

fn trace_outcomes(t: &Tracer<'_>, p: &Packet) -> OutcomeSet {
    t.trace(Hook::Forward, p)
        .outcomes
        .iter()
        .map(|o| {
            (
                o.verdict.name().to_string(),
                o.rule.as_ref().map(|r| r.to_string()),
            )
        })
        .collect()
}

fn engine_outcomes(e: &Engine<'_>, p: &Packet) -> OutcomeSet {
    e.classify(Hook::Forward, vec![packet_box(p, &e.u)])
        .unwrap()
        .iter()
        .map(|o| {
            (
                decision(o.fate).name().to_string(),
                e.deciding_key(&o.path).map(|k| e.rule_ref(k).to_string()),
            )
        })
        .collect()
}

/// Every rule a shadowed finding says never matches: the rule, or for a
/// chain never reached, each of its rules.
fn dead_rules<'r>(rs: &'r Ruleset, an: &'r ringfence_analysis::Anomalies) -> Vec<&'r RuleRef> {
    let mut out = Vec::new();
    for s in &an.shadowed {
        if s.reason == DeadReason::NeverReached {
            let chain = rs
                .chains
                .iter()
                .find(|c| c.name == s.chain)
                .expect("its chain");
            out.extend(chain.rules.iter().map(|r| &r.origin));
        } else {
            out.push(&s.rule);
        }
    }
    out
}

/// [`ruleset`] with its two base chains moved to other hooks and
/// priorities: before conntrack (raw), in mangle, on input, output and
/// postrouting, so that stages and earlier base chains decide what reaches
/// a rule.
fn staged_ruleset() -> impl Strategy<Value = Ruleset> {
    (ruleset(), 0usize..6, 0usize..4).prop_map(|(mut rs, a, b)| {
        let first = [
            (Hook::Prerouting, -300),
            (Hook::Prerouting, -150),
            (Hook::Forward, -150),
            (Hook::Input, 0),
            (Hook::Output, -300),
            (Hook::Forward, 0),
        ][a];
        let second = [
            (Hook::Forward, 10),
            (Hook::Input, 10),
            (Hook::Postrouting, 100),
            (Hook::Output, 0),
        ][b];
        for (c, (hook, priority)) in [first, second].into_iter().enumerate() {
            if let Some(base) = rs.chains[c].base.as_mut() {
                base.hook = hook;
                base.priority = priority;
            }
        }
        rs
    })
}

fn decisions(s: &OutcomeSet) -> BTreeSet<String> {
    s.iter().map(|(d, _)| d.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_outcome_of_trace_is_an_engine_branch_and_none_is_missed(rs in ruleset(), pkts in prop::collection::vec(packet(), 1..20), join_every in prop::bool::ANY) {
        let engine = engine_of(&rs, join_every);
        let tracer = tracer_of(&rs);
        for p in &pkts {
            let t = tracer.trace(Hook::Forward, p);
            let traced = trace_outcomes(&tracer, p);
            let engine_says = engine_outcomes(&engine, p);
            prop_assert_eq!(&traced, &engine_says, "packet {:?}", p);
            // Settled, the point is one region holding every outcome.
            let settled = engine
                .classify_settled(Hook::Forward, vec![packet_box(p, &engine.u)])
                .unwrap();
            // (A later packet of a connection is one region per
            // connection mark it may carry.)
            let ct_values = engine.u.marks.conn.len();
            if p.ct_state == CtStates::NEW || ct_values == 1 {
                prop_assert_eq!(settled.len(), 1, "a point is one settled region");
            } else {
                prop_assert!(!settled.is_empty() && settled.len() <= ct_values);
            }
            let fates: BTreeSet<String> = settled
                .iter()
                .flat_map(|s| s.outcomes.iter())
                .map(|(f, _, _)| decision(*f).name().to_string())
                .collect();
            prop_assert_eq!(&fates, &decisions(&traced));
            // Uncertain exactly when the outcomes disagree or one is unknown.
            let ds = decisions(&traced);
            prop_assert_eq!(t.uncertain, ds.len() > 1 || ds.contains("unknown"));
            if !t.uncertain {
                prop_assert_eq!(Decision::from(t.verdict).name(), ds.iter().next().unwrap().as_str());
            }
        }
    }

    #[test]
    fn excess_regions_hold_exactly_the_packets_some_branch_accepts(rs in ruleset(), pkts in prop::collection::vec(packet(), 1..30), join_every in prop::bool::ANY) {
        let engine = engine_of(&rs, join_every);
        let tracer = tracer_of(&rs);
        let scope = engine.hook_space(Hook::Forward, CtStates::ALL.0);
        let (acc, incomplete) = engine.accepted_beyond(Hook::Forward, &scope, &[], DEFAULT_BUDGET);
        prop_assert!(!incomplete);
        for p in &pkts {
            let ds = decisions(&trace_outcomes(&tracer, p));
            let pb = packet_box(p, &engine.u);
            // One region per connection mark the packet may enter with and
            // per translation its connection may have had (a later packet's
            // connection may have been translated), at most: `seen` holds
            // those pairs, one bit each (connection mark i, state j: bit
            // 4i + j).
            let regions: Vec<_> = acc.iter().filter(|o| pb.overlaps(&o.b)).collect();
            let pairs = |ct0: u64, nat: u8| {
                (0..16)
                    .filter(|i| ct0 & (1 << i) != 0)
                    .flat_map(|i| (0..4).filter(move |j| nat & (1 << j) != 0).map(move |j| 1u64 << (4 * i + j)))
                    .fold(0u64, |a, b| a | b)
            };
            let mut seen = 0u64;
            for o in &regions {
                prop_assert!(pb.intersect(&o.b).unwrap().is_subset(&o.b));
                let mine = pairs(o.b.ct0 & pb.ct0, o.b.nat & pb.nat);
                prop_assert_eq!(seen & mine, 0, "regions overlap at {:?}: {:#?}", p, regions);
                seen |= mine;
            }
            let all_accept = ds.len() == 1 && ds.contains("accept");
            let may_accept = ds.contains("accept") || ds.contains("unknown");
            if regions.is_empty() {
                prop_assert!(!may_accept, "{:?} may be accepted ({:?})", p, ds);
            } else {
                prop_assert!(may_accept, "no branch accepts {:?}", p);
                let certain = seen == pairs(pb.ct0, pb.nat) && regions.iter().all(|o| o.fate == Fate::Accept);
                prop_assert_eq!(certain, all_accept, "certainty of {:?} ({:?})", p, ds);
            }
        }
    }

    #[test]
    fn shadowed_rules_never_match_and_redundant_rules_change_no_verdict(rs in ruleset(), pkts in prop::collection::vec(packet(), 1..40), join_every in prop::bool::ANY) {
        let engine = engine_of(&rs, join_every);
        let tracer = tracer_of(&rs);
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
            for rule in dead_rules(&rs, &an) {
                prop_assert!(!t.path.contains(rule), "shadowed {} matched {:?}", rule, p);
                prop_assert!(
                    !t.outcomes.iter().any(|o| o.rule.as_ref() == Some(rule)),
                    "shadowed {} decided {:?}", rule, p
                );
            }
        }
        for r in &an.redundant {
            let mut cut = rs.clone();
            for c in &mut cut.chains {
                c.rules.retain(|x| x.origin != r.rule);
            }
            let t2 = tracer_of(&cut);
            for p in &pkts {
                let a = decisions(&trace_outcomes(&tracer, p));
                let b = decisions(&trace_outcomes(&t2, p));
                prop_assert_eq!(a, b, "removing redundant {} changed {:?}", r.rule, p);
            }
        }
    }

    #[test]
    fn rules_reported_dead_never_match_on_any_path(rs in staged_ruleset(), pkts in prop::collection::vec(packet(), 1..40), join_every in prop::bool::ANY) {
        let engine = Engine::new(&rs, IfaceUniverse::new([&rs]))
            .with_dead_in_context(true)
            .with_join_step(if join_every { 1 } else { ringfence_analysis::engine::JOIN_STEP });
        let tracer = Tracer::new(&rs);
        let an = engine.anomalies(DEFAULT_BUDGET);
        let dead = dead_rules(&rs, &an);
        // With no area kept, every rule inside an inlining is walked from
        // the top of its plan on its own (or searched): the same rules die.
        let lost = Engine::new(&rs, IfaceUniverse::new([&rs]))
            .with_dead_in_context(true)
            .with_area_budget(0);
        let an_lost = lost.anomalies(DEFAULT_BUDGET);
        prop_assert_eq!(&dead, &dead_rules(&rs, &an_lost), "dead rules with no area kept");
        for p in &pkts {
            for hook in [Hook::Input, Hook::Forward, Hook::Output] {
                let t = tracer.trace(hook, p);
                for &rule in &dead {
                    prop_assert!(!t.path.contains(rule), "dead {} passed by {:?} on {}", rule, p, hook);
                    prop_assert!(
                        !t.outcomes.iter().any(|o| o.rule.as_ref() == Some(rule)),
                        "dead {} decided {:?} on {}", rule, p, hook
                    );
                }
            }
        }
    }
}
