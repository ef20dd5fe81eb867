//! Probe packets for holding two models of one ruleset to the same verdicts.
//!
//! The packets are built from the values the rulesets themselves name (each
//! address, port and protocol range's ends and their neighbours, every
//! interface name), combined by a fixed pseudo-random walk, so every rule
//! boundary is probed from both sides without any packet list written by hand.

#![allow(dead_code)]

use ringfence_analysis::Tracer;
use ringfence_model::{proto, CtStates, Hook, IfacePattern, Packet, Ruleset};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Default)]
struct Values {
    v4: BTreeSet<u32>,
    v6: BTreeSet<u128>,
    ports: BTreeSet<u16>,
    protos: BTreeSet<u8>,
    ifaces: BTreeSet<String>,
}

fn edges<T: Copy + Ord>(
    ranges: &[(T, T)],
    out: &mut BTreeSet<T>,
    prev: impl Fn(T) -> Option<T>,
    next: impl Fn(T) -> Option<T>,
) {
    for &(a, b) in ranges {
        out.insert(a);
        out.insert(b);
        if let Some(x) = prev(a) {
            out.insert(x);
        }
        if let Some(x) = next(b) {
            out.insert(x);
        }
    }
}

fn collect(rs: &Ruleset, v: &mut Values) {
    for c in &rs.chains {
        for r in &c.rules {
            let m = &r.matches;
            for a in [&m.src, &m.dst] {
                edges(
                    a.v4.ranges(),
                    &mut v.v4,
                    |x| x.checked_sub(1),
                    |x| x.checked_add(1),
                );
                edges(
                    a.v6.ranges(),
                    &mut v.v6,
                    |x| x.checked_sub(1),
                    |x| x.checked_add(1),
                );
            }
            for p in [&m.sport, &m.dport] {
                edges(
                    p.ranges(),
                    &mut v.ports,
                    |x| x.checked_sub(1),
                    |x| x.checked_add(1),
                );
            }
            edges(
                m.protocol.ranges(),
                &mut v.protos,
                |x| x.checked_sub(1),
                |x| x.checked_add(1),
            );
            for i in [&m.iif, &m.oif] {
                for p in &i.patterns {
                    match p {
                        IfacePattern::Exact(n) => v.ifaces.insert(n.clone()),
                        IfacePattern::Prefix(n) => v.ifaces.insert(format!("{n}x")),
                    };
                }
            }
        }
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        &xs[(self.0 % xs.len() as u64) as usize]
    }
}

/// `n` probe packets (both families) from the values every ruleset names.
pub fn packets(rulesets: &[&Ruleset], n: usize) -> Vec<Packet> {
    let mut v = Values::default();
    for rs in rulesets {
        collect(rs, &mut v);
    }
    v.v4.insert(u32::from(Ipv4Addr::new(198, 18, 0, 1)));
    v.v6.insert(u128::from("2001:db8::1".parse::<Ipv6Addr>().unwrap()));
    v.ports.extend([0, 22, 53, 443]);
    v.protos.extend([
        proto::TCP,
        proto::UDP,
        proto::ICMP,
        proto::ICMPV6,
        proto::SCTP,
    ]);
    let v4: Vec<IpAddr> =
        v.v4.iter()
            .map(|&a| IpAddr::V4(Ipv4Addr::from(a)))
            .collect();
    let v6: Vec<IpAddr> =
        v.v6.iter()
            .map(|&a| IpAddr::V6(Ipv6Addr::from(a)))
            .collect();
    let ports: Vec<u16> = v.ports.into_iter().collect();
    let protos: Vec<u8> = v.protos.into_iter().collect();
    let mut ifaces: Vec<Option<String>> = v.ifaces.into_iter().map(Some).collect();
    ifaces.push(None);
    ifaces.push(Some("other0".into()));
    let states = [CtStates::NEW, CtStates::ESTABLISHED, CtStates::INVALID];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            let fam = if i % 3 == 2 { &v6 } else { &v4 };
            let protocol = *rng.pick(&protos);
            let ported = matches!(protocol, 6 | 17 | 33 | 132 | 136);
            Packet {
                src: *rng.pick(fam),
                dst: *rng.pick(fam),
                protocol,
                sport: if ported { *rng.pick(&ports) } else { 0 },
                dport: if ported { *rng.pick(&ports) } else { 0 },
                iif: rng.pick(&ifaces).clone(),
                oif: rng.pick(&ifaces).clone(),
                ct_state: *rng.pick(&states),
                ..Packet::default()
            }
        })
        .collect()
}

/// Every disagreement between `a` and `b` on `packets`, on each of the three
/// paths, as printable lines (the verdict over all outcomes, the verdict of
/// the branch where unmodelled matches do not match, and whether they differ).
pub fn disagreements(a: &Ruleset, b: &Ruleset, packets: &[Packet]) -> Vec<String> {
    disagreements_where(a, b, packets, |_| true)
}

/// [`disagreements`] on the packets `keep` selects.
pub fn disagreements_where(
    a: &Ruleset,
    b: &Ruleset,
    packets: &[Packet],
    keep: impl Fn(&Packet) -> bool,
) -> Vec<String> {
    let (ta, tb) = (Tracer::new(a), Tracer::new(b));
    let mut out = Vec::new();
    for hook in [Hook::Forward, Hook::Input, Hook::Output] {
        for p in packets.iter().filter(|p| keep(p)) {
            let x = ta.trace(hook, p);
            let y = tb.trace(hook, p);
            if x.verdict != y.verdict || x.uncertain != y.uncertain || x.overall != y.overall {
                out.push(format!(
                    "{hook} {p:?}: {:?}/{:?}{} via {:?} vs {:?}/{:?}{} via {:?}",
                    x.overall,
                    x.verdict,
                    if x.uncertain { " (uncertain)" } else { "" },
                    x.path.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                    y.overall,
                    y.verdict,
                    if y.uncertain { " (uncertain)" } else { "" },
                    y.path.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                ));
            }
        }
    }
    out
}
