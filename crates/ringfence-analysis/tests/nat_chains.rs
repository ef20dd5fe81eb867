//! A hook's nat chains as the kernel runs them: together at the nat
//! priority (-100 on prerouting and output, 100 on input and postrouting),
//! ordered among themselves by their own priorities, and only until one of
//! them sets up the connection's translation for the hook (any NAT
//! statement, even a DNAT to the address and port the packet already has).
//! Trace and the engine must both follow it, on the same packets.

use ringfence_analysis::engine::Xlat;
use ringfence_analysis::space::packet_box;
use ringfence_analysis::trace::Decision;
use ringfence_analysis::{Engine, Fate, IfaceUniverse, Tracer};
use ringfence_model::{CtStates, Hook, Packet, Ruleset};

fn parse(text: &str) -> Ruleset {
    ringfence_parse::parse_ruleset(text, "n.nft", ringfence_parse::RulesetFormat::Auto)
        .expect("parses")
}

fn tcp(dst: &str, dport: u16) -> Packet {
    Packet {
        src: "198.18.0.10".parse().unwrap(),
        dst: dst.parse().unwrap(),
        protocol: 6,
        sport: 40000,
        dport,
        iif: Some("rfc0".into()),
        oif: Some("rfs0".into()),
        ct_state: CtStates::NEW,
        ..Packet::default()
    }
}

/// Trace's outcomes: verdict, deciding rule, rewritten destination.
fn traced(rs: &Ruleset, p: &Packet) -> Vec<(Decision, Option<String>, Option<String>)> {
    let mut v: Vec<_> = Tracer::new(rs)
        .trace(Hook::Forward, p)
        .outcomes
        .into_iter()
        .map(|o| (o.verdict, o.rule.map(|r| r.to_string()), o.dnat))
        .collect();
    v.sort_by_key(|o| format!("{o:?}"));
    v
}

/// The engine's outcomes for the same packet, in the same terms.
fn classified(rs: &Ruleset, p: &Packet) -> Vec<(Decision, Option<String>, Option<String>)> {
    let e = Engine::new(rs, IfaceUniverse::new([rs]));
    let mut v: Vec<_> = e
        .classify(Hook::Forward, vec![packet_box(p, &e.u)])
        .unwrap()
        .into_iter()
        .map(|o| {
            let d = match o.fate {
                Fate::Accept => Decision::Accept,
                Fate::Drop => Decision::Drop,
                Fate::Reject => Decision::Reject,
                _ => Decision::Unknown,
            };
            let dnat = Xlat::dnat_of(&o.xlat).map(|(a, port)| {
                let a = std::net::Ipv4Addr::from(a.ranges()[0].0 as u32);
                format!("{a}:{}", port.ranges()[0].0)
            });
            (
                d,
                e.deciding_key(&o.path).map(|k| e.rule_ref(k).to_string()),
                dnat,
            )
        })
        .collect();
    v.sort_by_key(|o| format!("{o:?}"));
    v
}

const IDENTITY_FIRST: &str = r#"
table ip a {
	chain pre {
		type nat hook prerouting priority -50; policy accept;
		ip daddr 198.18.1.15 dnat to 198.18.1.15
	}
}
table ip b {
	chain pre {
		type nat hook prerouting priority 150; policy accept;
		ip daddr 198.18.1.15 dnat to 198.18.1.16
	}
	chain fwd {
		type filter hook forward priority 0; policy accept;
		ip daddr 198.18.1.16 drop
	}
}
"#;

#[test]
fn a_dnat_to_the_packets_own_address_ends_the_hooks_nat_chains() {
    let rs = parse(IDENTITY_FIRST);
    let p = tcp("198.18.1.15", 80);
    let t = traced(&rs, &p);
    // The identity DNAT sets up the translation: the later nat chain's
    // DNAT to .16 never runs, the packet is forwarded to .15 untranslated.
    assert_eq!(
        t,
        [(Decision::Accept, Some("policy of ip b fwd".into()), None)]
    );
    assert_eq!(classified(&rs, &p), t);
    // A packet the first chain does not translate meets the second one.
    let q = tcp("198.18.1.14", 80);
    assert_eq!(traced(&rs, &q), classified(&rs, &q));
    assert_eq!(traced(&rs, &q)[0].0, Decision::Accept);
}

const LATE_NAT_BEFORE_FILTER: &str = r#"
table ip a {
	chain f {
		type filter hook prerouting priority 0; policy accept;
		ip daddr 198.18.1.16 drop
	}
	chain n {
		type nat hook prerouting priority 150; policy accept;
		ip daddr 198.18.1.15 dnat to 198.18.1.16
	}
}
"#;

#[test]
fn a_nat_chain_runs_at_the_nat_priority_whatever_its_own() {
    let rs = parse(LATE_NAT_BEFORE_FILTER);
    let p = tcp("198.18.1.15", 80);
    // The nat chain says 150 but runs at -100: the filter chain at 0 sees
    // the rewritten destination and drops it.
    let t = traced(&rs, &p);
    assert_eq!(
        t,
        [(
            Decision::Drop,
            Some("n.nft:5".into()),
            Some("198.18.1.16:80".into())
        )]
    );
    assert_eq!(classified(&rs, &p), t);
}

const NON_NAT_RULES_SKIPPED: &str = r#"
table ip a {
	chain n1 {
		type nat hook prerouting priority -100; policy accept;
		tcp dport 80 dnat to 198.18.1.15
	}
	chain n2 {
		type nat hook prerouting priority 50; policy accept;
		tcp dport 80 drop
	}
}
"#;

#[test]
fn every_rule_of_a_skipped_nat_chain_is_skipped_not_only_its_translations() {
    let rs = parse(NON_NAT_RULES_SKIPPED);
    // Translated by n1 (to the address it has, or another): n2's drop is
    // never met.
    for dst in ["198.18.1.15", "198.18.1.20"] {
        let p = tcp(dst, 80);
        let t = traced(&rs, &p);
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].0, Decision::Accept, "{dst}");
        assert_eq!(classified(&rs, &p), t, "{dst}");
    }
    // Not translated (port 81): n2 runs, and its rule does not match.
    let p = tcp("198.18.1.15", 81);
    assert_eq!(traced(&rs, &p)[0].0, Decision::Accept);
    assert_eq!(classified(&rs, &p), traced(&rs, &p));
}

const DNAT_KEEPS_PORT: &str = r#"
table ip a {
	chain pre {
		type nat hook prerouting priority -100; policy accept;
		ip daddr 198.18.1.20 dnat to 198.18.1.15
	}
	chain fwd {
		type filter hook forward priority 0; policy accept;
		tcp dport 22 drop
	}
}
"#;

/// A DNAT that keeps the port: each packet's original port is its port, so
/// a later test on the port names, as they entered, exactly the packets it
/// took (the drop: entry port 22 only; the accept: every other port), and
/// the two regions do not overlap.
#[test]
fn a_port_test_after_a_dnat_keeping_the_port_splits_the_entry_ports_too() {
    let rs = parse(DNAT_KEEPS_PORT);
    let e = Engine::new(&rs, IfaceUniverse::new([&rs]));
    let mut b = packet_box(&tcp("198.18.1.20", 22), &e.u);
    b.dport = ringfence_model::IntervalSet::full();
    let out = e.classify(Hook::Forward, vec![b]).unwrap();
    let ports = |f: Fate| -> Vec<(u16, u16)> {
        out.iter()
            .filter(|o| o.fate == f)
            .flat_map(|o| o.b.dport.ranges().to_vec())
            .collect()
    };
    assert_eq!(ports(Fate::Drop), [(22, 22)]);
    assert_eq!(ports(Fate::Accept), [(0, 21), (23, 65535)]);
    for o in &out {
        assert_eq!(
            o.b.dst.ranges(),
            [(0xc612_0114, 0xc612_0114)],
            "named as entered"
        );
        assert!(Xlat::dnat_of(&o.xlat).is_some(), "delivered to .15");
    }
}

/// A source translation (`nat`, an nft statement) of 198.18.0.0/24, then
/// a filter chain after it that drops what leaves from 198.18.1.1 to port
/// 25 (line 9).
fn translated_then_late_filter(nat: &str) -> String {
    format!(
        "
table ip a {{
	chain post {{
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 198.18.0.0/24 {nat}
	}}
	chain late {{
		type filter hook postrouting priority 150; policy accept;
		ip saddr 198.18.1.1 tcp dport 25 drop
	}}
}}
"
    )
}

/// The kernel keeps a source already in an SNAT range or picks one of its
/// addresses by a hash: each address is a branch. A later chain that
/// reads the source splits them (port 25: dropped from .1, accepted from
/// .2 and .3), and where it does not, every branch accepts; trace and the
/// engine give the same outcomes.
#[test]
fn an_snat_to_a_range_is_one_branch_per_address_for_the_chains_after_it() {
    let rs = parse(&translated_then_late_filter(
        "snat to 198.18.1.1-198.18.1.3",
    ));
    // (Sorted already; the branches that differ only by their address
    // are one outcome here.)
    let set = |v: Vec<(Decision, Option<String>, Option<String>)>| {
        let mut v: Vec<_> = v.into_iter().map(|(d, rule, _)| (d, rule)).collect();
        v.dedup();
        v
    };
    let p25 = tcp("198.18.2.10", 25);
    let want25 = vec![
        (Decision::Accept, Some("policy of ip a late".to_string())),
        (Decision::Drop, Some("n.nft:9".to_string())),
    ];
    assert_eq!(set(traced(&rs, &p25)), want25);
    assert_eq!(set(classified(&rs, &p25)), want25);
    let p80 = tcp("198.18.2.10", 80);
    let want80 = vec![(Decision::Accept, Some("policy of ip a late".to_string()))];
    assert_eq!(set(traced(&rs, &p80)), want80);
    assert_eq!(set(classified(&rs, &p80)), want80);
    // Settled, the packet to port 25 is one region with both branches,
    // parted at the translation.
    let e = Engine::new(&rs, IfaceUniverse::new([&rs]));
    let settled = e
        .classify_settled(Hook::Forward, vec![packet_box(&p25, &e.u)])
        .unwrap();
    assert_eq!(settled.len(), 1, "{settled:#?}");
    let mut fates: Vec<Fate> = settled[0].outcomes.iter().map(|o| o.0).collect();
    fates.sort_by_key(|f| format!("{f:?}"));
    assert_eq!(fates, [Fate::Accept, Fate::Drop]);
    assert_eq!(
        settled[0].fork.map(|k| e.rule_ref(k).to_string()),
        Some("n.nft:5".to_string())
    );
    // Where the branches agree, the packet has one outcome.
    let settled = e
        .classify_settled(Hook::Forward, vec![packet_box(&p80, &e.u)])
        .unwrap();
    assert_eq!(settled.len(), 1, "{settled:#?}");
    assert_eq!(settled[0].outcomes.len(), 1, "{settled:#?}");
    // Trace names each address the kernel may choose.
    let snats: Vec<_> = Tracer::new(&rs)
        .trace(Hook::Forward, &p80)
        .outcomes
        .into_iter()
        .map(|o| o.snat.expect("translated"))
        .collect();
    assert_eq!(snats, ["198.18.1.1", "198.18.1.2", "198.18.1.3"]);
}

/// A MASQUERADE takes the outgoing interface's address, one of the
/// host's: with two host addresses each is a branch, for trace and the
/// engine alike (port 25: dropped from 198.18.1.1, accepted from
/// 198.18.2.1); with one, the packet has one outcome.
#[test]
fn a_masquerade_on_a_host_with_two_addresses_is_one_branch_per_address() {
    let rs = parse(&translated_then_late_filter("masquerade"));
    let p25 = tcp("198.18.2.10", 25);
    let outcomes = |local: &[&str]| {
        let local = ringfence_model::LocalAddrs::new(local.iter().map(|a| a.parse().unwrap()));
        let tracer = Tracer::new(&rs).with_local(local.clone());
        let mut traced: Vec<(Decision, Option<String>)> = tracer
            .trace(Hook::Forward, &p25)
            .outcomes
            .into_iter()
            .map(|o| (o.verdict, o.rule.map(|r| r.to_string())))
            .collect();
        traced.sort_by_key(|o| format!("{o:?}"));
        let e = Engine::new(&rs, IfaceUniverse::new([&rs]).with_local_addrs(&local));
        let settled = e
            .classify_settled(Hook::Forward, vec![packet_box(&p25, &e.u)])
            .unwrap();
        assert_eq!(settled.len(), 1, "{settled:#?}");
        let mut classified: Vec<(Decision, Option<String>)> = settled[0]
            .outcomes
            .iter()
            .map(|(f, path, _)| {
                let d = match f {
                    Fate::Accept => Decision::Accept,
                    Fate::Drop => Decision::Drop,
                    _ => Decision::Unknown,
                };
                (d, e.deciding_key(path).map(|k| e.rule_ref(k).to_string()))
            })
            .collect();
        classified.sort_by_key(|o| format!("{o:?}"));
        assert_eq!(traced, classified, "trace and the engine agree");
        traced
    };
    assert_eq!(
        outcomes(&["198.18.1.1", "198.18.2.1"]),
        [
            (Decision::Accept, Some("policy of ip a late".to_string())),
            (Decision::Drop, Some("n.nft:9".to_string())),
        ]
    );
    assert_eq!(
        outcomes(&["198.18.2.1"]),
        [(Decision::Accept, Some("policy of ip a late".to_string()))]
    );
}
