//! Address-type tests limited to one interface (`-m addrtype
//! --limit-iface-in/out`, nft `fib daddr . iif type`), read against the
//! host's addresses with their interfaces (`--local ADDR%IFACE`, issue
//! 15): an address is `LOCAL` on the interface it is assigned to only;
//! where an address's interface is not known the test stays two branches.
//! Trace and the engine must give every packet the same outcomes, and
//! verify must judge the input path by the interface.

use ringfence_analysis::space::packet_box;
use ringfence_analysis::trace::Decision;
use ringfence_analysis::verify::{auto_families, verify_host, Checks};
use ringfence_analysis::{Engine, Fate, IfaceUniverse, Tracer};
use ringfence_model::{CtStates, Hook, LocalAddrs, Packet, Ruleset};
use ringfence_parse::{parse_ruleset, RulesetFormat};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The input rules, behind one user chain that input and forward both
/// jump to (so a packet's deciding rule is the same on either path).
const IN_IPT: &str = "*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:LIM - [0:0]
-A INPUT -j LIM
-A FORWARD -j LIM
-A LIM -p tcp --dport 22 -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT
-A LIM -p tcp --dport 23 -m addrtype ! --dst-type LOCAL --limit-iface-in -j ACCEPT
-A LIM -j DROP
COMMIT
";

const IN_NFT: &str = "table inet f {
  chain lim {
    tcp dport 22 fib daddr . iif type local accept
    tcp dport 23 fib daddr . iif type != local accept
    drop
  }
  chain input {
    type filter hook input priority 0; policy drop;
    jump lim
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    jump lim
  }
}
";

/// The output-interface rules, on forward only (the packets below are
/// all forwarded: their destinations are not the host's).
const OUT_IPT: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m addrtype --src-type LOCAL --limit-iface-out -j ACCEPT
-A FORWARD -j DROP
COMMIT
";

const OUT_NFT: &str = "table inet f {
  chain forward {
    type filter hook forward priority 0; policy drop;
    fib saddr . oif type local accept
    drop
  }
}
";

fn parse(name: &str, text: &str) -> Ruleset {
    parse_ruleset(text, name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"))
}

/// 198.18.0.5 on eth0, 198.18.1.5 on eth1, and, when `unplaced`,
/// 198.18.2.5 on an interface not given.
fn host(unplaced: bool) -> LocalAddrs {
    let mut v: Vec<(IpAddr, Option<String>)> = vec![
        ("198.18.0.5".parse().unwrap(), Some("eth0".into())),
        ("198.18.1.5".parse().unwrap(), Some("eth1".into())),
    ];
    if unplaced {
        v.push(("198.18.2.5".parse().unwrap(), None));
    }
    LocalAddrs::on_ifaces(v)
}

fn packet(src: &str, dst: &str, dport: u16, iif: Option<&str>, oif: Option<&str>) -> Packet {
    Packet {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        protocol: 6,
        sport: 40000,
        dport,
        iif: iif.map(str::to_string),
        oif: oif.map(str::to_string),
        ct_state: CtStates::NEW,
        ..Packet::default()
    }
}

type Outcomes = BTreeSet<(String, Option<String>)>;

fn traced(t: &Tracer<'_>, hook: Hook, p: &Packet) -> Outcomes {
    t.trace(hook, p)
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

fn engine_says(e: &Engine<'_>, hook: Hook, p: &Packet) -> Outcomes {
    e.classify(hook, vec![packet_box(p, &e.u)])
        .unwrap()
        .iter()
        .map(|o| {
            let d = match o.fate {
                Fate::Accept => Decision::Accept,
                Fate::Drop => Decision::Drop,
                Fate::Reject => Decision::Reject,
                _ => Decision::Unknown,
            };
            (
                d.name().to_string(),
                e.deciding_key(&o.path).map(|k| e.rule_ref(k).to_string()),
            )
        })
        .collect()
}

/// The verdicts alone.
fn verdicts(o: &Outcomes) -> BTreeSet<&str> {
    o.iter().map(|(v, _)| v.as_str()).collect()
}

const DSTS: &[&str] = &[
    "198.18.0.5",
    "198.18.1.5",
    "198.18.2.5",
    "198.18.9.9",
    "127.0.0.1",
    "224.0.0.5",
];
const IFACES: &[Option<&str>] = &[Some("eth0"), Some("eth1"), Some("lo"), Some("wlan0")];

/// Trace and the engine agree on every packet of the grid, and the
/// verdicts of the points that pin the semantics are the kernel's.
fn check_input_rules(name: &str, text: &str) {
    let rs = parse(name, text);
    for unplaced in [false, true] {
        let local = host(unplaced);
        let tracer = Tracer::new(&rs).with_local(local.clone());
        let engine = Engine::new(&rs, IfaceUniverse::new([&rs]).with_local_addrs(&local));
        let mut got = std::collections::BTreeMap::new();
        for dst in DSTS {
            for iif in IFACES {
                for dport in [22, 23] {
                    // A loopback packet comes from the host itself.
                    let src = if *dst == "127.0.0.1" {
                        "127.0.0.1"
                    } else {
                        "198.18.7.7"
                    };
                    let p = packet(src, dst, dport, *iif, None);
                    // Routing sends the host's own destinations to input.
                    let hook = if local.contains(p.dst) {
                        Hook::Input
                    } else {
                        Hook::Forward
                    };
                    let t = traced(&tracer, hook, &p);
                    got.insert((*dst, iif.unwrap(), dport), t.clone());
                    // The engine walks loopback packets only as the second
                    // leg of what the host sends (and drops a loopback
                    // destination arriving elsewhere as the martian it is):
                    // those are trace's alone here.
                    if *dst == "127.0.0.1" {
                        continue;
                    }
                    assert_eq!(
                        t,
                        engine_says(&engine, hook, &p),
                        "{name} unplaced={unplaced} {p:?}"
                    );
                }
            }
        }
        let v = |dst, iif, port| verdicts(&got[&(dst, iif, port)]);
        assert_eq!(got.len(), DSTS.len() * IFACES.len() * 2, "{name}");
        let one = |s: &'static str| BTreeSet::from([s]);
        // Where the test holds: accepted; with some host address on an
        // unknown interface the rule may or may not match wherever it may
        // hold, so the fall-through drop is a branch too.
        let holds = if unplaced {
            BTreeSet::from(["accept", "drop"])
        } else {
            one("accept")
        };
        // An address is LOCAL on its own interface only.
        assert_eq!(v("198.18.0.5", "eth0", 22), holds, "{name}");
        assert_eq!(v("198.18.0.5", "eth1", 22), one("drop"), "{name}");
        assert_eq!(v("198.18.0.5", "eth1", 23), holds, "{name}");
        assert_eq!(v("198.18.1.5", "eth1", 22), holds, "{name}");
        assert_eq!(v("198.18.1.5", "wlan0", 22), one("drop"), "{name}");
        // Loopback addresses are on lo.
        assert_eq!(v("127.0.0.1", "lo", 22), holds, "{name}");
        assert_eq!(v("127.0.0.1", "lo", 23), one("drop"), "{name}");
        // Not the host's, multicast: never LOCAL.
        assert_eq!(v("198.18.9.9", "eth0", 22), one("drop"), "{name}");
        assert_eq!(v("224.0.0.5", "eth0", 23), holds, "{name}");
        // An address whose interface is not given: both branches on every
        // interface, never a guess.
        if unplaced {
            for iif in ["eth0", "lo", "wlan0"] {
                assert_eq!(v("198.18.2.5", iif, 22), holds, "{name}");
                assert_eq!(v("198.18.2.5", iif, 23), holds, "{name}");
            }
        } else {
            assert_eq!(v("198.18.2.5", "eth0", 22), one("drop"), "{name}");
        }
    }
}

#[test]
fn iptables_limit_iface_in_is_local_only_on_the_addresses_own_interface_in_trace_and_engine() {
    check_input_rules("lim.rules", IN_IPT);
}

#[test]
fn nft_fib_daddr_iif_type_is_local_only_on_the_addresses_own_interface_in_trace_and_engine() {
    check_input_rules("lim.nft", IN_NFT);
}

fn check_output_rules(name: &str, text: &str) {
    let rs = parse(name, text);
    for unplaced in [false, true] {
        let local = host(unplaced);
        let tracer = Tracer::new(&rs).with_local(local.clone());
        let engine = Engine::new(&rs, IfaceUniverse::new([&rs]).with_local_addrs(&local));
        for src in ["198.18.0.5", "198.18.1.5", "198.18.2.5", "198.18.9.9"] {
            for oif in [Some("eth0"), Some("eth1"), Some("wlan0")] {
                let p = packet(src, "198.18.50.1", 443, Some("eth9"), oif);
                let t = traced(&tracer, Hook::Forward, &p);
                assert_eq!(
                    t,
                    engine_says(&engine, Hook::Forward, &p),
                    "{name} unplaced={unplaced} {p:?}"
                );
                let holds: BTreeSet<&str> = if unplaced {
                    ["accept", "drop"].into()
                } else {
                    ["accept"].into()
                };
                let want = match (src, oif.unwrap()) {
                    ("198.18.0.5", "eth0") | ("198.18.1.5", "eth1") => holds,
                    ("198.18.2.5", _) if unplaced => holds,
                    _ => ["drop"].into(),
                };
                assert_eq!(verdicts(&t), want, "{name} unplaced={unplaced} {p:?}");
            }
        }
    }
}

#[test]
fn iptables_limit_iface_out_reads_the_source_on_the_output_interface_in_trace_and_engine() {
    check_output_rules("out.rules", OUT_IPT);
}

#[test]
fn nft_fib_saddr_oif_type_reads_the_source_on_the_output_interface_in_trace_and_engine() {
    check_output_rules("out.nft", OUT_NFT);
}

/// The example site's clean ruleset with input closed but for ssh to the
/// host, taken only when the destination is local on the input interface.
fn ssh_to_host() -> String {
    let base = include_str!("data/exact.rules");
    assert!(base.contains(":INPUT ACCEPT [0:0]\n"));
    let rule =
        "-A INPUT -p tcp --dport 22 -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT\n";
    let at = base.rfind("COMMIT").unwrap();
    format!("{}{rule}{}", &base[..at], &base[at..])
        .replace(":INPUT ACCEPT [0:0]", ":INPUT DROP [0:0]")
}

/// A management node of the example site is the host.
const HOST: &str = "198.18.10.11";

#[test]
fn verify_finds_certain_excess_on_the_known_interface_and_possible_excess_without_it() {
    let text = ssh_to_host();
    let rs = parse("ssh.rules", &text);
    let site = ringfence_site::example_site().resolve();
    let run = |local: LocalAddrs| {
        verify_host(
            &rs,
            &site,
            Hook::Forward,
            auto_families(&site),
            Some(&local),
            Checks::default(),
        )
    };
    let placed = run(LocalAddrs::on_ifaces([(
        HOST.parse().unwrap(),
        Some("eth0".into()),
    )]));
    let unplaced = run(LocalAddrs::new([HOST.parse().unwrap()]));
    let ssh = |r: &ringfence_analysis::verify::VerifyReport| {
        r.excess
            .iter()
            .filter(|e| e.ports == "22" && e.destinations.iter().any(|d| d.starts_with(HOST)))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(!placed.summary.ok && !unplaced.summary.ok);
    insta::assert_json_snapshot!("ssh_excess_with_the_interface_known", ssh(&placed));
    insta::assert_json_snapshot!("ssh_excess_with_the_interface_unknown", ssh(&unplaced));
    assert_eq!(placed.summary.possible_excess, 0, "{:?}", placed.summary);
    assert!(
        unplaced.summary.possible_excess > 0,
        "{:?}",
        unplaced.summary
    );
}

mod generated {
    //! Random rulesets of interface-limited type tests (both interfaces,
    //! both addresses, any type set, negated or not, any action) against a
    //! grid of packets: trace and the engine give every packet the same
    //! outcomes, with every address placed and with one unplaced.
    use super::*;
    use proptest::prelude::*;

    const TYPES: &[&str] = &["LOCAL", "UNICAST", "MULTICAST", "BROADCAST", "BLACKHOLE"];

    fn rule() -> impl Strategy<Value = String> {
        (
            prop::option::of(prop::sample::select(vec![
                "198.18.0.5",
                "198.18.1.5",
                "198.18.2.5",
                "198.18.9.9",
            ])),
            prop::option::of(prop::sample::select(vec!["eth0", "eth1", "wlan0"])),
            prop::bool::ANY,
            prop::bool::ANY,
            prop::bool::ANY,
            prop::sample::subsequence(TYPES.to_vec(), 1..=2),
            prop::sample::select(vec!["ACCEPT", "DROP", "RETURN"]),
        )
            .prop_map(|(dst, iif, src_side, out, neg, types, action)| {
                let mut r = String::from("-A LIM");
                if let Some(d) = dst {
                    r += &format!(" -d {d}");
                }
                if let Some(i) = iif {
                    r += &format!(" -i {i}");
                }
                r += &format!(
                    " -m addrtype {}--{}-type {} --limit-iface-{} -j {action}",
                    if neg { "! " } else { "" },
                    if src_side { "src" } else { "dst" },
                    types.join(","),
                    if out { "out" } else { "in" },
                );
                r
            })
    }

    fn ruleset() -> impl Strategy<Value = String> {
        prop::collection::vec(rule(), 1..6).prop_map(|rules| {
            format!(
                "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:LIM - [0:0]\n-A INPUT -j LIM\n-A FORWARD -j LIM\n{}\n-A LIM -p tcp -j DROP\nCOMMIT\n",
                rules.join("\n")
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 150, ..ProptestConfig::default() })]

        #[test]
        fn trace_and_engine_agree_on_interface_limited_type_tests(text in ruleset()) {
            let rs = parse("gen.rules", &text);
            for unplaced in [false, true] {
                let local = host(unplaced);
                let tracer = Tracer::new(&rs).with_local(local.clone());
                let engine = Engine::new(&rs, IfaceUniverse::new([&rs]).with_local_addrs(&local));
                for dst in ["198.18.0.5", "198.18.1.5", "198.18.2.5", "198.18.9.9", "224.0.0.5"] {
                    for src in ["198.18.7.7", "198.18.1.5"] {
                        for iif in ["eth0", "eth1", "wlan0"] {
                            let to_host = local.contains(dst.parse().unwrap());
                            let oifs: &[Option<&str>] = if to_host {
                                &[None]
                            } else {
                                &[Some("eth0"), Some("eth1"), Some("wlan0")]
                            };
                            for oif in oifs {
                                let p = packet(src, dst, 22, Some(iif), *oif);
                                let hook = if to_host { Hook::Input } else { Hook::Forward };
                                prop_assert_eq!(
                                    traced(&tracer, hook, &p),
                                    engine_says(&engine, hook, &p),
                                    "unplaced={} {:?}\n{}", unplaced, p, text
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_universe_without_atoms_for_the_hosts_interfaces_leaves_limited_tests_undecided() {
    use ringfence_analysis::space::match_undecided;
    let rs = parse("lim.rules", IN_IPT);
    let m = rs.chains[rs.chain_by_name("LIM").unwrap().0].rules[0]
        .matches
        .clone();
    assert!(m.iface_types.is_some());
    let local = host(false);
    // Built from the ruleset that holds the test: eth0, eth1 and lo are
    // atoms of their own, and every address is placed: decided.
    let u = IfaceUniverse::new([&rs]).with_local_addrs(&local);
    assert!(!match_undecided(&m, &u));
    // Built from nothing: the host's interfaces share an atom with every
    // other name, so an address may be LOCAL on it or not: two branches,
    // never a guess.
    let u = IfaceUniverse::new(std::iter::empty::<&Ruleset>()).with_local_addrs(&local);
    assert!(match_undecided(&m, &u));
}
