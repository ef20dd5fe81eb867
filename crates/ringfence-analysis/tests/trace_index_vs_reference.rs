//! Differential property test: the indexed trace (per-chain rule tables)
//! gives exactly what the reference walker (every rule of every chain, in
//! order) gives, for every packet.
//!
//! Rulesets are random iptables-save text read by the real parser, IPv4 or
//! IPv6, with chains long enough to get tables (9-168 rules: two-word
//! tables and, past 128 rules, tables read through summaries), every table
//! (raw, mangle, nat, filter), user chains reached by jump and goto with
//! RETURNs, negated addresses and interfaces, port ranges and multiport
//! lists, conntrack states, marks set and tested (MARK, CONNMARK save and
//! restore), `statistic` and `limit` (rules the model cannot evaluate: two
//! branches), DNAT, SNAT, MASQUERADE and REDIRECT, address types, original
//! tuple and translation status tests, and the rarer header fields (TCP
//! flags, ICMP type, length, DSCP). Packets come from the same small value
//! domains so rules overlap often, with and without the rarer fields, new
//! and established, from the host or not, with and without `--local`.

use proptest::prelude::*;
use ringfence_analysis::trace::reference;
use ringfence_analysis::Tracer;
use ringfence_model::{CtStates, Hook, LocalAddrs, Packet, Ruleset};
use ringfence_parse::RulesetFormat;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The seeded generator (one proptest seed gives one ruleset and one
/// packet list).
use ringfence_testkit::Rng;

const PORTS: [u16; 7] = [22, 53, 80, 443, 1000, 1001, 5000];
const IFACES: [&str; 3] = ["eth0", "eth1", "veth0"];

/// An address of the small domain: 198.18.X.Y or 2001:db8:0:X::Y.
fn addr(r: &mut Rng, v6: bool) -> String {
    let (x, y) = (r.index(4), r.index(8) + 1);
    if v6 {
        format!("2001:db8:0:{x}::{y}")
    } else {
        format!("198.18.{x}.{y}")
    }
}

fn prefix(r: &mut Rng, v6: bool) -> String {
    let a = addr(r, v6);
    let len = if v6 {
        *[128, 126, 125, 64, 48].get(r.index(5)).unwrap()
    } else {
        *[32, 30, 29, 24, 16].get(r.index(5)).unwrap()
    };
    format!("{a}/{len}")
}

fn port_spec(r: &mut Rng) -> String {
    let a = PORTS[r.index(PORTS.len())];
    if r.chance(30) {
        format!("{a}:{}", a + r.index(600) as u16)
    } else {
        a.to_string()
    }
}

/// The match part of one rule (`table` decides which tests are allowed).
fn a_match(r: &mut Rng, v6: bool, table: &str, chain_hook: &str) -> String {
    let mut m = String::new();
    let neg = |r: &mut Rng| if r.chance(20) { "! " } else { "" };
    if r.chance(45) {
        let _ = write!(m, " {}-s {}", neg(r), prefix(r, v6));
    }
    if r.chance(60) {
        let _ = write!(m, " {}-d {}", neg(r), prefix(r, v6));
    }
    if chain_hook != "OUTPUT" && r.chance(20) {
        let _ = write!(
            m,
            " {}-i {}",
            neg(r),
            r.one(&["eth0", "eth1", "eth+", "veth0"])
        );
    }
    if !matches!(chain_hook, "PREROUTING" | "INPUT") && r.chance(15) {
        let _ = write!(
            m,
            " {}-o {}",
            neg(r),
            r.one(&["eth0", "eth1", "eth+", "veth0"])
        );
    }
    let icmp = if v6 { "icmpv6" } else { "icmp" };
    match r.index(10) {
        0..=3 => {
            m.push_str(" -p tcp -m tcp");
            if r.chance(60) {
                let _ = write!(m, " --dport {}", port_spec(r));
            }
            if r.chance(25) {
                let _ = write!(m, " --sport {}", port_spec(r));
            }
            match r.index(8) {
                0 => m.push_str(" --syn"),
                1 => m.push_str(" ! --syn"),
                2 => m.push_str(" --tcp-flags SYN,ACK,RST ACK"),
                _ => {}
            }
        }
        4 | 5 => {
            m.push_str(" -p udp");
            if r.chance(50) {
                let _ = write!(m, " -m udp --dport {}", port_spec(r));
            } else {
                let _ = write!(
                    m,
                    " -m multiport --dports {},{},{}",
                    PORTS[r.index(7)],
                    PORTS[r.index(7)],
                    PORTS[r.index(7)]
                );
            }
        }
        6 => {
            let _ = write!(m, " -p {icmp}");
            if r.chance(50) {
                let t = if v6 { "--icmpv6-type" } else { "--icmp-type" };
                let _ = write!(
                    m,
                    " -m {icmp} {t} {}",
                    r.one(&["echo-request", "echo-reply"])
                );
            }
        }
        7 => m.push_str(" ! -p udp"),
        _ => {}
    }
    if r.chance(12) {
        let _ = write!(
            m,
            " -m conntrack --ctstate {}",
            r.one(&[
                "NEW",
                "RELATED,ESTABLISHED",
                "NEW,ESTABLISHED",
                "DNAT",
                "INVALID"
            ])
        );
    }
    if table != "raw" && r.chance(12) {
        let _ = write!(m, " -m mark {}--mark 0x{:x}/0xf", neg(r), r.index(4));
    }
    if table != "raw" && r.chance(5) {
        let _ = write!(m, " -m connmark --mark 0x{:x}/0xf", r.index(3));
    }
    if r.chance(8) {
        m.push_str(" -m statistic --mode random --probability 0.50000000000");
    }
    if r.chance(4) {
        m.push_str(" -m limit --limit 5/min");
    }
    if r.chance(5) {
        let lo = 40 + r.index(100);
        let _ = write!(m, " -m length --length {lo}:{}", lo + 60);
    }
    if r.chance(4) {
        let _ = write!(m, " -m dscp --dscp 0x{:02x}", [0, 10, 46][r.index(3)]);
    }
    if r.chance(6) {
        let _ = write!(
            m,
            " -m addrtype {}--dst-type {}",
            neg(r),
            r.one(&["LOCAL", "UNICAST"])
        );
    }
    if table == "filter" && r.chance(4) {
        let _ = write!(m, " -m conntrack --ctorigdst {}", prefix(r, v6));
    }
    m
}

/// One rule's target. `users` are the user chains this chain may call
/// (only later ones, so calls never loop).
fn a_target(r: &mut Rng, v6: bool, table: &str, hook: &str, users: &[String]) -> String {
    let k = r.index(100);
    if !users.is_empty() && k < 14 {
        let u = &users[r.index(users.len())];
        return if r.chance(25) {
            format!("-g {u}")
        } else {
            format!("-j {u}")
        };
    }
    let set_mark = |r: &mut Rng| format!("-j MARK --set-xmark 0x{:x}/0xf", r.index(4));
    match table {
        "nat" => match (hook, r.index(10)) {
            ("PREROUTING" | "OUTPUT", 0..=4) => {
                let to = addr(r, v6);
                let to = if v6 { format!("[{to}]") } else { to };
                if r.chance(50) {
                    format!("-j DNAT --to-destination {to}:{}", PORTS[r.index(7)])
                } else {
                    format!("-j DNAT --to-destination {to}")
                }
            }
            ("PREROUTING" | "OUTPUT", 5) => format!("-j REDIRECT --to-ports {}", PORTS[r.index(7)]),
            ("POSTROUTING" | "INPUT", 0..=3) => format!("-j SNAT --to-source {}", addr(r, v6)),
            ("POSTROUTING" | "INPUT", 4 | 5) => "-j MASQUERADE".into(),
            (_, 6) => set_mark(r),
            (_, 7) => "-j RETURN".into(),
            _ => "-j ACCEPT".into(),
        },
        "mangle" => match r.index(10) {
            0..=3 => set_mark(r),
            4 => "-j CONNMARK --save-mark --nfmask 0xf --ctmask 0xf".into(),
            5 => "-j CONNMARK --restore-mark --nfmask 0xf --ctmask 0xf".into(),
            6 => "-j DROP".into(),
            7 => "-j RETURN".into(),
            _ => "-j ACCEPT".into(),
        },
        "raw" => match r.index(6) {
            0 => "-j DROP".into(),
            1 => "-j RETURN".into(),
            _ => "-j ACCEPT".into(),
        },
        _ => match r.index(12) {
            0..=3 => "-j ACCEPT".into(),
            4 | 5 => "-j DROP".into(),
            6 if v6 => "-j REJECT --reject-with icmp6-port-unreachable".into(),
            6 => "-j REJECT --reject-with icmp-port-unreachable".into(),
            7 | 8 => "-j RETURN".into(),
            9 => "-j LOG --log-prefix \"x \"".into(),
            10 => set_mark(r),
            _ => "-j ACCEPT".into(),
        },
    }
}

/// A random iptables-save (or ip6tables-save) ruleset.
fn ruleset_text(r: &mut Rng, v6: bool) -> String {
    let mut out = String::new();
    let tables: [(&str, &[&str]); 4] = [
        ("raw", &["PREROUTING", "OUTPUT"]),
        (
            "mangle",
            &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        ),
        ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]),
        ("filter", &["INPUT", "FORWARD", "OUTPUT"]),
    ];
    for (table, hooks) in tables {
        // Filter always; the others in about half of the rulesets.
        if table != "filter" && r.chance(45) {
            continue;
        }
        let _ = writeln!(out, "*{table}");
        let n_users = r.index(4);
        let users: Vec<String> = (0..n_users).map(|i| format!("U{i}")).collect();
        for h in hooks {
            let policy = if table == "filter" && r.chance(50) {
                "DROP"
            } else {
                "ACCEPT"
            };
            let _ = writeln!(out, ":{h} {policy} [0:0]");
        }
        for u in &users {
            let _ = writeln!(out, ":{u} - [0:0]");
        }
        for h in hooks {
            // Long enough for tables in the chains packets mostly take;
            // sometimes longer than 128 rules (tables read through summaries).
            let n = if table == "filter" && r.chance(10) {
                129 + r.index(40)
            } else if table == "filter" || r.chance(50) {
                17 + r.index(54)
            } else {
                r.index(8)
            };
            for _ in 0..n {
                let m = a_match(r, v6, table, h);
                let t = a_target(r, v6, table, h, &users);
                let _ = writeln!(out, "-A {h}{m} {t}");
            }
        }
        for (i, u) in users.iter().enumerate() {
            let n = if r.chance(60) {
                17 + r.index(40)
            } else {
                1 + r.index(10)
            };
            // Hooks a user chain may be called from: the strictest, so its
            // interface tests are valid wherever it is called.
            for _ in 0..n {
                let m = a_match(r, v6, table, "OUTPUT")
                    .replace(" -i ", " -s ")
                    .replace(" -o ", " -d ");
                let m = if m.contains(" -s eth")
                    || m.contains(" -d eth")
                    || m.contains(" -s veth")
                    || m.contains(" -d veth")
                {
                    String::new()
                } else {
                    m
                };
                let hook = if table == "nat" {
                    "PREROUTING"
                } else {
                    "FORWARD"
                };
                let t = a_target(r, v6, table, hook, &users[i + 1..]);
                let _ = writeln!(out, "-A {u}{m} {t}");
            }
        }
        let _ = writeln!(out, "COMMIT");
    }
    out
}

/// A random packet of the same domain, and whether it comes from the host.
fn a_packet(r: &mut Rng, v6: bool) -> (Packet, bool) {
    let ip = |r: &mut Rng| -> IpAddr { addr(r, v6).parse().unwrap() };
    let protocol = [6u8, 6, 17, 17, if v6 { 58 } else { 1 }, 47][r.index(6)];
    let iface = |r: &mut Rng| (r.chance(80)).then(|| IFACES[r.index(3)].to_string());
    let mut p = Packet {
        src: ip(r),
        dst: ip(r),
        protocol,
        sport: PORTS[r.index(7)] + r.index(3) as u16,
        dport: PORTS[r.index(7)] + if r.chance(20) { r.index(600) as u16 } else { 0 },
        iif: iface(r),
        oif: iface(r),
        ct_state: if r.chance(85) {
            CtStates::NEW
        } else {
            CtStates::ESTABLISHED
        },
        tcp_flags: r.chance(40).then(|| [0x02u8, 0x12, 0x10, 0x04][r.index(4)]),
        icmp_type: r.chance(40).then(|| [8u8, 0, 128, 129][r.index(4)]),
        icmp_code: None,
        length: r.chance(50).then(|| 40 + r.index(200) as u32),
        tos: r.chance(50).then(|| [0u8, 10 << 2, 46 << 2][r.index(3)]),
        pkttype: None,
        mac_src: None,
    };
    if !matches!(protocol, 6 | 17) {
        p.sport = 0;
        p.dport = 0;
    }
    p.fill_defaults();
    (p, r.chance(15))
}

/// Trace `n` packets with both tracers; any difference fails, naming the packet.
fn agree(fast: &Tracer<'_>, slow: &Tracer<'_>, r: &mut Rng, v6: bool, n: usize, hook: Hook) {
    let mut scratch_f = ringfence_analysis::trace::TraceScratch::default();
    let mut scratch_s = ringfence_analysis::trace::TraceScratch::default();
    for _ in 0..n {
        let (p, from_host) = a_packet(r, v6);
        let path = fast.path_for(hook, from_host, &p);
        assert_eq!(path, slow.path_for(hook, from_host, &p));
        let a = fast.trace(path, &p);
        let b = slow.trace(path, &p);
        assert_eq!(a, b, "packet {p:?} on {path}");
        let x = fast.trace_with(path, &p, &mut scratch_f);
        let y = slow.trace_with(path, &p, &mut scratch_s);
        assert_eq!(x, y, "packet {p:?} on {path}");
        assert_eq!(scratch_f.outcomes(), scratch_s.outcomes());
        assert_eq!(scratch_f.rule(), scratch_s.rule());
        assert_eq!(
            fast.mark_changes(&scratch_f),
            slow.mark_changes(&scratch_s),
            "packet {p:?}"
        );
        // Outcomes only (batch output): the same outcomes, overall verdict,
        // naming rule and uncertainty as the reference's full trace.
        let u = fast.trace_outcomes(path, &p, &mut scratch_f);
        assert_eq!(u, y.2, "packet {p:?} on {path}");
        assert_eq!(scratch_f.outcomes(), scratch_s.outcomes(), "packet {p:?}");
        assert_eq!(scratch_f.overall(), scratch_s.overall(), "packet {p:?}");
        assert_eq!(scratch_f.rule(), scratch_s.rule(), "packet {p:?}");
    }
}

fn parse(text: &str) -> Ruleset {
    ringfence_parse::parse_ruleset(text, "gen.rules", RulesetFormat::Auto)
        .unwrap_or_else(|e| panic!("generated ruleset does not parse: {e:?}\n{text}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn indexed_trace_gives_the_reference_walkers_outcomes_for_every_packet(
        seed in 1u64..u64::MAX,
        v6 in prop::bool::weighted(0.3),
        local in prop::bool::ANY,
        hook in prop_oneof![Just(Hook::Forward), Just(Hook::Input), Just(Hook::Output)],
    ) {
        let mut r = Rng::from_state(seed);
        let text = ruleset_text(&mut r, v6);
        let rs = parse(&text);
        let host: IpAddr = addr(&mut r, v6).parse().unwrap();
        let (fast, slow) = if local {
            (
                Tracer::new(&rs).with_local(LocalAddrs::new([host])),
                reference::tracer(&rs).with_local(LocalAddrs::new([host])),
            )
        } else {
            (Tracer::new(&rs), reference::tracer(&rs))
        };
        agree(&fast, &slow, &mut r, v6, 300, hook);
        // Hosts where tc or eBPF mark first: every mark test opaque.
        let fast = Tracer::with_initial_mark_any(&rs);
        let slow = reference::tracer_initial_mark_any(&rs);
        agree(&fast, &slow, &mut r, v6, 100, hook);
    }
}

/// A guard at the top of a zone chain: mostly a `RETURN` whose only test
/// is one address range (what the effect sets take out), sometimes one of
/// two fields or none.
fn a_guard(r: &mut Rng, v6: bool) -> String {
    match r.index(8) {
        0 | 1 => format!("! -d {} -j RETURN", prefix(r, v6)),
        2 => format!("-d {} -j RETURN", prefix(r, v6)),
        3 => format!("-s {} -j RETURN", prefix(r, v6)),
        4 => format!("! -s {} -j RETURN", prefix(r, v6)),
        5 => "-p udp -m udp --dport 53 -j RETURN".into(),
        6 => format!(
            "-d {} -m statistic --mode random --probability 0.50000000000 -j RETURN",
            prefix(r, v6)
        ),
        _ if r.chance(30) => "-j RETURN".into(),
        _ => format!("-i eth0 -d {} -j RETURN", prefix(r, v6)),
    }
}

/// A rule of a user chain: random match (no interface the chain's callers
/// may not see), target weighted to `RETURN` and `LOG`, or a call of one of
/// `callees`.
fn a_user_rule(r: &mut Rng, v6: bool, callees: &[String]) -> String {
    let m = a_match(r, v6, "filter", "OUTPUT")
        .replace(" -i ", " -s ")
        .replace(" -o ", " -d ");
    let m = if m.contains(" -s eth")
        || m.contains(" -d eth")
        || m.contains(" -s veth")
        || m.contains(" -d veth")
    {
        String::new()
    } else {
        m
    };
    let t = match r.index(10) {
        0..=3 => "-j RETURN".to_string(),
        4 => "-j LOG --log-prefix \"z \"".into(),
        _ => a_target(r, v6, "filter", "FORWARD", callees),
    };
    format!("{m} {t}")
}

/// A ruleset of zone chains as the `return` shape of `bench/gen_shapes.py`
/// builds them, small: base chains of jumps by source prefix to zone
/// chains that open with `RETURN` guards, call shared chains that mostly
/// `RETURN` (several zones call each), and hold random rules; some zone
/// chains do nothing but return or log. Calls go only to later chains.
fn zone_ruleset_text(r: &mut Rng, v6: bool) -> String {
    let mut out = String::new();
    if r.chance(40) {
        // Marks set before the filter chains test them.
        out.push_str("*mangle\n:PREROUTING ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n");
        for _ in 0..r.index(6) {
            let _ = writeln!(
                out,
                "-A PREROUTING -s {} -j MARK --set-xmark 0x{:x}/0xf",
                prefix(r, v6),
                r.index(4)
            );
        }
        out.push_str("COMMIT\n");
    }
    out.push_str("*filter\n");
    let zones: Vec<String> = (0..3 + r.index(10)).map(|i| format!("Z{i}")).collect();
    let shared: Vec<String> = (0..1 + r.index(4)).map(|i| format!("S{i}")).collect();
    for h in ["INPUT", "FORWARD", "OUTPUT"] {
        let policy = if r.chance(50) { "DROP" } else { "ACCEPT" };
        let _ = writeln!(out, ":{h} {policy} [0:0]");
    }
    for c in zones.iter().chain(&shared) {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for h in ["INPUT", "FORWARD", "OUTPUT"] {
        for _ in 0..r.index(40) {
            let z = &zones[r.index(zones.len())];
            let line = match r.index(10) {
                0..=5 => format!("-A {h} -s {} -j {z}", prefix(r, v6)),
                6 => format!("-A {h} -j {z}"),
                7 => format!(
                    "-A {h} -s {} -m statistic --mode random --probability 0.50000000000 -j {z}",
                    prefix(r, v6)
                ),
                8 => format!("-A {h} -s {} -g {z}", prefix(r, v6)),
                _ => format!(
                    "-A {h}{} {}",
                    a_match(r, v6, "filter", h),
                    a_target(r, v6, "filter", h, &[])
                ),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    for (i, z) in zones.iter().enumerate() {
        let later: Vec<String> = zones[i + 1..].iter().chain(&shared).cloned().collect();
        match r.index(6) {
            // Nothing but returns and logs: no jump to it can change anything.
            0 => {
                for _ in 0..r.index(4) {
                    let _ = writeln!(
                        out,
                        "-A {z} {}",
                        if r.chance(50) {
                            a_guard(r, v6)
                        } else {
                            "-j LOG".into()
                        }
                    );
                }
            }
            _ => {
                for _ in 0..r.index(4) {
                    let _ = writeln!(out, "-A {z} {}", a_guard(r, v6));
                }
                for _ in 0..r.index(3) {
                    let s = &shared[r.index(shared.len())];
                    let _ = writeln!(out, "-A {z} -j {s}");
                }
                for _ in 0..r.index(30) {
                    let _ = writeln!(out, "-A {z}{}", a_user_rule(r, v6, &later));
                }
            }
        }
    }
    for (i, s) in shared.iter().enumerate() {
        for _ in 0..1 + r.index(20) {
            let _ = writeln!(out, "-A {s}{}", a_user_rule(r, v6, &shared[i + 1..]));
        }
    }
    out.push_str("COMMIT\n");
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Jumps cut to what their targets can act on, and shared chains
    /// passed over when they returned unchanged before for the same packet
    /// and marks, change no walk: on `RETURN`-heavy and jump-heavy zone
    /// rulesets the indexed trace gives, packet for packet, the reference
    /// walk's outcomes, path, deciding rule and marks, and its outcomes
    /// only (the batch walk) the same outcomes, verdict and rule.
    #[test]
    fn jumps_left_out_for_what_their_targets_cannot_change_never_change_a_walk(
        seed in 1u64..u64::MAX,
        v6 in prop::bool::weighted(0.3),
        local in prop::bool::ANY,
        hook in prop_oneof![Just(Hook::Forward), Just(Hook::Input), Just(Hook::Output)],
    ) {
        let mut r = Rng::from_state(seed);
        let text = zone_ruleset_text(&mut r, v6);
        let rs = parse(&text);
        let host: IpAddr = addr(&mut r, v6).parse().unwrap();
        let (fast, slow) = if local {
            (
                Tracer::new(&rs).with_local(LocalAddrs::new([host])),
                reference::tracer(&rs).with_local(LocalAddrs::new([host])),
            )
        } else {
            (Tracer::new(&rs), reference::tracer(&rs))
        };
        prop_assert_eq!(slow.cut_jumps(), 0);
        agree(&fast, &slow, &mut r, v6, 300, hook);
        let fast = Tracer::with_initial_mark_any(&rs);
        let slow = reference::tracer_initial_mark_any(&rs);
        agree(&fast, &slow, &mut r, v6, 100, hook);
    }
}

#[test]
fn zone_rulesets_have_jumps_their_targets_cut() {
    // The property above proves something only if its rulesets have jumps
    // the tables leave out for some packets: over a few seeds, most do.
    let mut with_cuts = 0;
    for seed in 1..40u64 {
        let mut r = Rng::from_state(seed * 7919);
        let rs = parse(&zone_ruleset_text(&mut r, seed % 3 == 0));
        if Tracer::new(&rs).cut_jumps() > 0 {
            with_cuts += 1;
        }
    }
    assert!(
        with_cuts >= 30,
        "only {with_cuts} of 39 rulesets cut a jump"
    );
}

#[test]
fn generated_rulesets_reach_every_kind_of_outcome() {
    // The generator is only useful if packets meet what it generates:
    // over a few seeds, outcomes include each verdict, "depends", a
    // destination translation and a source translation.
    let mut seen = std::collections::BTreeSet::new();
    for seed in 1..40u64 {
        let mut r = Rng::from_state(seed * 7919);
        let rs = parse(&ruleset_text(&mut r, seed % 3 == 0));
        let t = Tracer::new(&rs);
        for _ in 0..200 {
            let (p, from_host) = a_packet(&mut r, seed % 3 == 0);
            let res = t.trace(t.path_for(Hook::Forward, from_host, &p), &p);
            seen.insert(res.overall.name().to_string());
            for o in &res.outcomes {
                seen.insert(o.verdict.name().to_string());
                if o.dnat.is_some() {
                    seen.insert("dnat".into());
                }
                if o.snat.is_some() {
                    seen.insert("snat".into());
                }
            }
        }
    }
    for want in [
        "accept", "drop", "reject", "depends", "unknown", "dnat", "snat",
    ] {
        assert!(seen.contains(want), "no {want} outcome in {seen:?}");
    }
}

/// A packet line for `p` (a connection's first packet), written in one of
/// the ways producers write them: compact or spaced, keys in order or
/// shuffled, protocol as a name or a number, optional fields left out when
/// they hold their defaults. The rarer fields are given exactly when they
/// differ from what a line without them reads as.
fn packet_line_of(r: &mut Rng, p: &Packet, from_host: bool) -> String {
    let proto = match (p.protocol, r.index(3)) {
        (6, 0) => "\"tcp\"".to_string(),
        (6, 1) => "\"TCP\"".to_string(),
        (17, 0) => "\"udp\"".to_string(),
        (1, 0) => "\"icmp\"".to_string(),
        (58, 0) => "\"icmpv6\"".to_string(),
        (n, _) => n.to_string(),
    };
    let mut fields = vec![
        format!("\"src\":\"{}\"", p.src),
        format!("\"dst\":\"{}\"", p.dst),
        format!("\"proto\":{proto}"),
    ];
    if p.sport != 0 || r.chance(50) {
        fields.push(format!("\"sport\":{}", p.sport));
    }
    if p.dport != 0 || r.chance(50) {
        fields.push(format!("\"dport\":{}", p.dport));
    }
    for (key, v) in [("iif", &p.iif), ("oif", &p.oif)] {
        if let Some(name) = v {
            fields.push(format!("\"{key}\":\"{name}\""));
        }
    }
    if from_host || r.chance(20) {
        fields.push(format!("\"from_host\":{from_host}"));
    }
    let mut plain = p.clone();
    (plain.tcp_flags, plain.icmp_type, plain.length, plain.tos) = (None, None, None, None);
    plain.fill_defaults();
    if p.tcp_flags != plain.tcp_flags {
        fields.push(format!("\"tcp_flags\":{}", p.tcp_flags.expect("set")));
    }
    if p.icmp_type != plain.icmp_type {
        fields.push(format!("\"icmp_type\":{}", p.icmp_type.expect("set")));
    }
    if let Some(l) = p.length {
        fields.push(format!("\"length\":{l}"));
    }
    if let Some(t) = p.tos {
        fields.push(format!("\"dscp\":{}", t >> 2));
    }
    if r.chance(30) {
        for i in (1..fields.len()).rev() {
            fields.swap(i, r.index(i + 1));
        }
    }
    if r.chance(20) {
        format!("{{ {} }}", fields.join(", ").replace("\":", "\": "))
    } else {
        format!("{{{}}}", fields.join(","))
    }
}

/// Malformed packet lines, each refused by the serde reading.
const BAD_LINES: [&str; 6] = [
    r#"{"src":"198.18.0.300","dst":"198.18.0.1","proto":"tcp"}"#,
    r#"{"src":"198.18.0.3","dst":"198.18.0.1","proto":999}"#,
    r#"{"src":"198.18.0.3","dst":"198.18.0.1"}"#,
    r#"{"src":"198.18.0.3","dst":"198.18.0.1","proto":"tcp","dport":65536}"#,
    r#"{"src":"198.18.0.3","dst":"2001:db8::1","proto":"tcp"}"#,
    r#"{"src":"198.18.0.3","dst":"198.18.0.1","proto":"tcp"} x"#,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Batch tracing (the quick line reader, rule tables, several workers,
    /// runs of random size) writes, line for line and in input order, what
    /// the reference walker gives for the same packets built directly; a
    /// malformed line stops it with the serde reading's located error, and
    /// nothing from that line on is written.
    #[test]
    fn parallel_batch_output_equals_the_reference_walk_line_by_line_in_input_order(
        seed in 1u64..u64::MAX,
        v6 in prop::bool::weighted(0.3),
        local in prop::bool::ANY,
        hook in prop_oneof![Just(Hook::Forward), Just(Hook::Input), Just(Hook::Output)],
        threads in 1usize..5,
        chunk_bytes in prop_oneof![1usize..200, 200usize..5000],
        bad in prop::option::of(0usize..6),
    ) {
        use ringfence_analysis::trace::batch;
        let mut r = Rng::from_state(seed);
        let text = ruleset_text(&mut r, v6);
        let rs = parse(&text);
        let host: IpAddr = addr(&mut r, v6).parse().unwrap();
        let (fast, slow) = if local {
            (
                Tracer::new(&rs).with_local(LocalAddrs::new([host])),
                reference::tracer(&rs).with_local(LocalAddrs::new([host])),
            )
        } else {
            (Tracer::new(&rs), reference::tracer(&rs))
        };
        let mut input = String::new();
        let mut want = String::new();
        let mut scratch = ringfence_analysis::trace::TraceScratch::default();
        let mut lineno = 0u64;
        let n = 250;
        // Where a malformed line goes, if any, and its line number.
        let bad_at = bad.map(|_| r.index(n));
        let mut bad_line = None;
        for k in 0..n {
            if r.chance(3) {
                input.push_str(if r.chance(50) { "\n" } else { "  \r\n" });
                lineno += 1;
            }
            if bad_at == Some(k) {
                let l = BAD_LINES[bad.expect("some")];
                input.push_str(l);
                input.push('\n');
                lineno += 1;
                bad_line = Some((lineno, l));
            }
            let (mut p, from_host) = a_packet(&mut r, v6);
            if p.ct_state != CtStates::NEW {
                p.ct_state = CtStates::NEW;
                p.tcp_flags = None;
                p.icmp_type = None;
                p.fill_defaults();
            }
            input.push_str(&packet_line_of(&mut r, &p, from_host));
            input.push('\n');
            lineno += 1;
            if bad_line.is_none() {
                let path = slow.path_for(hook, from_host, &p);
                slow.trace_with(path, &p, &mut scratch);
                want.push_str(&batch::line(&slow, &scratch));
            }
        }
        let mut out = Vec::new();
        let opts = batch::Batch { threads, chunk_bytes };
        let got = batch::run(&fast, hook, &mut input.as_bytes(), &mut out, opts);
        let out = String::from_utf8(out).expect("UTF-8 output");
        match bad_line {
            None => {
                prop_assert!(got.is_ok(), "{:?}", got.err());
                prop_assert_eq!(&out, &want);
            }
            Some((line, l)) => {
                let mut scratch_packet = Packet::default();
                let e = ringfence_analysis::packet_line::read_serde(l, &mut scratch_packet)
                    .expect_err("a malformed line");
                match got {
                    Err(batch::BatchError::Line { line: at, column, message }) => {
                        prop_assert_eq!(at, line);
                        prop_assert_eq!(column, e.column);
                        prop_assert_eq!(message, e.message);
                    }
                    other => prop_assert!(false, "expected a line error, got {:?}", other.map(|_| ())),
                }
                // What was written is the lines before the bad one, in order.
                prop_assert!(want.starts_with(&out), "output not a prefix of the lines before the bad one");
            }
        }
    }
}

/// kube-proxy's `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS` is two
/// branches without the host's addresses. A batch walk passes over it
/// without a second walk when the NodePort chain acts on nothing the
/// packet carries; the outcomes, the overall verdict and the rule named
/// where outcomes differ (still that jump, the first rule on the way
/// that may or may not match) are the reference walker's.
#[test]
fn a_nodeport_jump_whose_chain_acts_on_nothing_the_packet_carries_gives_the_reference_outcomes() {
    let rs = parse(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n\
         -A PREROUTING -j KUBE-SERVICES\n\
         -A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 10.244.1.5:53\n\
         -A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n\
         -A KUBE-NODEPORTS -p tcp -m tcp --dport 30080 -j DNAT --to-destination 10.244.1.6:8080\n\
         COMMIT\n\
         *filter\n:FORWARD DROP [0:0]\n\
         -A FORWARD -p udp -m statistic --mode random --probability 0.5 -j DROP\n\
         -A FORWARD -s 10.0.0.0/8 -j ACCEPT\n\
         COMMIT\n",
    );
    let fast = Tracer::new(&rs);
    let slow = reference::tracer(&rs);
    let mut sf = ringfence_analysis::trace::TraceScratch::default();
    let mut ss = ringfence_analysis::trace::TraceScratch::default();
    // Outside the NodePort chain's pieces (tcp/443, and udp, which then
    // forks at the statistic rule), inside them (tcp/30080), a service hit.
    for (proto, dport, dst) in [
        (6, 443, "172.16.0.9"),
        (17, 53, "172.16.0.9"),
        (6, 30080, "172.16.0.9"),
        (6, 53, "10.96.0.10"),
    ] {
        let p = Packet::new_connection(
            "10.1.2.3".parse().expect("address"),
            dst.parse().expect("address"),
            proto,
            40000,
            dport,
        );
        let u = fast.trace_outcomes(Hook::Forward, &p, &mut sf);
        let (_, _, v) = slow.trace_with(Hook::Forward, &p, &mut ss);
        assert_eq!(u, v, "{proto}/{dport} to {dst}");
        assert_eq!(sf.outcomes(), ss.outcomes(), "{proto}/{dport} to {dst}");
        assert_eq!(sf.overall(), ss.overall(), "{proto}/{dport} to {dst}");
        assert_eq!(sf.rule(), ss.rule(), "{proto}/{dport} to {dst}");
    }
}
