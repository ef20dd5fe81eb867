//! Aerleon's stateless targets: our export rendered by `aclgen` (pinned in
//! `.venv`) for `juniper` and `cisco` holds exactly the site's flows and,
//! for each flow between different networks, its return terms (TCP from the
//! flow's ports with `tcp-established`, UDP from the flow's ports, ICMP
//! echo-reply), and nothing else. There is no juniper or cisco verifier, so
//! the rendered filters are read back term by term (addresses, protocol,
//! ports, the established option, ICMP type, action) into sets of match
//! atoms, and compared with the atoms computed straight from the resolved
//! site, independent of the generator.

mod common;

use common::{have_aclgen, sites};
use ipnet::IpNet;
use ringfence_generate::{generate_site, Family, Options, Target};
use ringfence_site::{FlowAction, Protocol, ResolvedSite};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Which port of a match carries the ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PortSide {
    None,
    Source,
    Destination,
}

/// One match of a rendered filter, but for its ports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    accept: bool,
    /// IP protocol number; `None` is every protocol.
    proto: Option<u8>,
    src: IpNet,
    dst: IpNet,
    established: bool,
    icmp_type: Option<u8>,
    ports: PortSide,
}

/// Matches with their port ranges, merged.
type Atoms = BTreeMap<Key, Vec<(u16, u16)>>;

fn add(atoms: &mut Atoms, key: Key, ranges: &[(u16, u16)]) {
    let v = atoms.entry(key).or_default();
    v.extend_from_slice(ranges);
    v.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::new();
    for &(a, b) in v.iter() {
        match merged.last_mut() {
            Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    *v = merged;
}

fn any_net(fam: Family) -> IpNet {
    match fam {
        Family::V4 => "0.0.0.0/0".parse().unwrap(),
        Family::V6 => "::/0".parse().unwrap(),
    }
}

fn proto_number(name: &str) -> Option<u8> {
    match name {
        "ip" | "ipv6" => None,
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmp6" | "icmpv6" => Some(58),
        n => Some(n.parse().unwrap_or_else(|_| panic!("protocol {n}"))),
    }
}

fn is_full(first: u16, last: u16) -> bool {
    first <= 1 && last == u16::MAX
}

/// The atoms the site prescribes for family `fam` on a stateless target.
fn expected(site: &ResolvedSite, fam: Family) -> Atoms {
    let icmp = if fam == Family::V4 { 1 } else { 58 };
    let echo_reply = if fam == Family::V4 { 0 } else { 129 };
    let mut atoms = Atoms::new();
    for f in &site.flows {
        let deny_all = f.action == FlowAction::Deny
            && f.services.iter().all(|s| s.protocol == Protocol::Any)
            && f.sources.iter().all(|n| n.prefix_len() == 0)
            && f.destinations.iter().all(|n| n.prefix_len() == 0);
        if deny_all {
            continue; // the filter's end (the platform's implicit deny)
        }
        let accept = f.action == FlowAction::Allow;
        for (s, d, svcs) in f.paths() {
            if Family::of(&s) != fam || Family::of(&d) != fam {
                continue;
            }
            for svc in &svcs {
                let (proto, ports) = match svc.protocol {
                    Protocol::Tcp => (Some(6), Some((svc.ports.first, svc.ports.last))),
                    Protocol::Udp => (Some(17), Some((svc.ports.first, svc.ports.last))),
                    Protocol::Icmp => (Some(icmp), None),
                    Protocol::Any => (None, None),
                };
                let ports = ports.filter(|(a, b)| !is_full(*a, *b));
                let key = |proto, src, dst, established, icmp_type, side| Key {
                    accept,
                    proto,
                    src,
                    dst,
                    established,
                    icmp_type,
                    ports: side,
                };
                let (side, ranges) = match ports {
                    Some(r) => (PortSide::Destination, vec![r]),
                    None => (PortSide::None, vec![]),
                };
                add(&mut atoms, key(proto, s, d, false, None, side), &ranges);
                if !accept || f.same_network {
                    continue;
                }
                // Replies: from the destination's ports back to the source.
                let back_side = if ports.is_some() {
                    PortSide::Source
                } else {
                    PortSide::None
                };
                match svc.protocol {
                    Protocol::Tcp => {
                        add(&mut atoms, key(proto, d, s, true, None, back_side), &ranges)
                    }
                    Protocol::Udp => add(
                        &mut atoms,
                        key(proto, d, s, false, None, back_side),
                        &ranges,
                    ),
                    Protocol::Icmp => add(
                        &mut atoms,
                        key(proto, d, s, false, Some(echo_reply), PortSide::None),
                        &[],
                    ),
                    Protocol::Any => {
                        add(
                            &mut atoms,
                            key(Some(6), d, s, true, None, PortSide::None),
                            &[],
                        );
                        add(
                            &mut atoms,
                            key(Some(17), d, s, false, None, PortSide::None),
                            &[],
                        );
                        add(
                            &mut atoms,
                            key(Some(icmp), d, s, false, Some(echo_reply), PortSide::None),
                            &[],
                        );
                    }
                }
            }
        }
    }
    atoms
}

/// A v4 wildcard mask (`0.0.0.255`) as a prefix length.
fn wildcard_len(w: &str) -> u8 {
    let w: std::net::Ipv4Addr = w.parse().unwrap_or_else(|_| panic!("wildcard {w}"));
    let inv = !u32::from(w);
    assert_eq!(
        inv.leading_ones() + inv.trailing_zeros(),
        32,
        "non-contiguous {w}"
    );
    inv.leading_ones() as u8
}

/// Read one Cisco address (`any`, `host X`, `A WILDCARD`, `X/len`).
fn cisco_addr<'a>(t: &mut impl Iterator<Item = &'a str>, fam: Family) -> IpNet {
    let a = t.next().expect("an address");
    match a {
        "any" => any_net(fam),
        "host" => {
            let ip: IpAddr = t.next().unwrap().parse().unwrap();
            IpNet::from(ip)
        }
        a if a.contains('/') => a.parse().unwrap(),
        a => {
            let len = wildcard_len(t.next().unwrap());
            IpNet::new(a.parse().unwrap(), len).unwrap()
        }
    }
}

fn parse_port(a: &str) -> u16 {
    a.parse().unwrap_or_else(|_| panic!("port {a}"))
}

/// Read an optional Cisco port match (`eq P`, `range A B`).
fn cisco_ports(t: &mut std::iter::Peekable<std::str::SplitWhitespace>) -> Option<(u16, u16)> {
    match t.peek().copied() {
        Some("eq") => {
            t.next();
            let p = parse_port(t.next().unwrap());
            Some((p, p))
        }
        Some("range") => {
            t.next();
            let a = parse_port(t.next().unwrap());
            let b = parse_port(t.next().unwrap());
            Some((a, b))
        }
        Some(other @ ("gt" | "lt" | "neq")) => panic!("unexpected port operator {other}"),
        _ => None,
    }
}

/// The atoms of a rendered Cisco ACL (`ip access-list extended` or `ipv6
/// access-list`); `remark` lines skipped, anything else unknown fails.
fn cisco(text: &str, fam: Family) -> Atoms {
    let mut atoms = Atoms::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty()
            || line.starts_with('!')
            || line.starts_with("remark")
            || line.starts_with("no ")
            || line.starts_with("ip access-list")
            || line.starts_with("ipv6 access-list")
            || line == "exit"
        {
            continue;
        }
        let mut t = line.split_whitespace().peekable();
        let accept = match t.next() {
            Some("permit") => true,
            Some("deny") => false,
            other => panic!("unexpected ACL line {line:?} ({other:?})"),
        };
        let proto = proto_number(t.next().unwrap());
        let src = cisco_addr(&mut t, fam);
        let sport = cisco_ports(&mut t);
        let dst = cisco_addr(&mut t, fam);
        let dport = cisco_ports(&mut t);
        let (mut established, mut icmp_type) = (false, None);
        for rest in t {
            match rest {
                "established" => established = true,
                n if matches!(proto, Some(1 | 58)) => icmp_type = Some(n.parse().unwrap()),
                other => panic!("unexpected {other:?} in {line:?}"),
            }
        }
        assert!(sport.is_none() || dport.is_none(), "both ports in {line:?}");
        let (ports, ranges) = match (sport, dport) {
            (Some(r), _) => (PortSide::Source, vec![r]),
            (_, Some(r)) => (PortSide::Destination, vec![r]),
            _ => (PortSide::None, vec![]),
        };
        let key = Key {
            accept,
            proto,
            src,
            dst,
            established,
            icmp_type,
            ports,
        };
        add(&mut atoms, key, &ranges);
    }
    atoms
}

fn juniper_ports(v: &str) -> Vec<(u16, u16)> {
    v.trim_matches(|c| c == '[' || c == ']')
        .split_whitespace()
        .map(|p| match p.split_once('-') {
            Some((a, b)) => (parse_port(a), parse_port(b)),
            None => (parse_port(p), parse_port(p)),
        })
        .collect()
}

/// The atoms of a rendered Juniper filter: each term's `from` clause
/// (address lists, protocol or next-header, ports, `tcp-established`,
/// `icmp-type`) and its action.
fn juniper(text: &str, fam: Family) -> Atoms {
    #[derive(Default)]
    struct Term {
        src: Vec<IpNet>,
        dst: Vec<IpNet>,
        proto: Option<u8>,
        sport: Vec<(u16, u16)>,
        dport: Vec<(u16, u16)>,
        established: bool,
        icmp_type: Option<u8>,
        accept: Option<bool>,
    }
    let mut atoms = Atoms::new();
    let mut term: Option<Term> = None;
    let mut list: Option<&str> = None;
    let mut in_then = false;
    let mut terms = 0;
    let finish = |t: Term, atoms: &mut Atoms| {
        let src = if t.src.is_empty() {
            vec![any_net(fam)]
        } else {
            t.src
        };
        let dst = if t.dst.is_empty() {
            vec![any_net(fam)]
        } else {
            t.dst
        };
        let (ports, ranges) = match (t.sport.is_empty(), t.dport.is_empty()) {
            (true, true) => (PortSide::None, vec![]),
            (false, true) => (PortSide::Source, t.sport),
            (true, false) => (PortSide::Destination, t.dport),
            _ => panic!("a term with both ports"),
        };
        for s in &src {
            for d in &dst {
                let key = Key {
                    accept: t.accept.expect("a term with an action"),
                    proto: t.proto,
                    src: *s,
                    dst: *d,
                    established: t.established,
                    icmp_type: t.icmp_type,
                    ports,
                };
                add(atoms, key, &ranges);
            }
        }
    };
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("term ") {
            assert!(term.is_none(), "nested term {name}");
            term = Some(Term::default());
            terms += 1;
            continue;
        }
        let Some(t) = term.as_mut() else { continue };
        if let Some(which) = list {
            if line == "}" {
                list = None;
            } else {
                let net: IpNet = line.trim_end_matches(';').parse().unwrap();
                if which == "source-address" {
                    t.src.push(net);
                } else {
                    t.dst.push(net);
                }
            }
            continue;
        }
        match line {
            "from {" => {}
            "source-address {" => list = Some("source-address"),
            "destination-address {" => list = Some("destination-address"),
            "tcp-established;" => t.established = true,
            "then accept;" => t.accept = Some(true),
            "then discard;" | "then reject;" => t.accept = Some(false),
            "then {" => in_then = true,
            "accept;" if in_then => t.accept = Some(true),
            "discard;" | "reject;" if in_then => t.accept = Some(false),
            "}" if in_then => in_then = false,
            "}" => {
                // Closes `from` (action unset) or the term (action set).
                if t.accept.is_some() {
                    let done = term.take().unwrap();
                    finish(done, &mut atoms);
                }
            }
            l => {
                let l = l.trim_end_matches(';');
                let (k, v) = l
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("unexpected {l:?}"));
                match k {
                    "protocol" | "next-header" => t.proto = proto_number(v),
                    "source-port" => t.sport = juniper_ports(v),
                    "destination-port" => t.dport = juniper_ports(v),
                    "icmp-type" => t.icmp_type = Some(v.parse().unwrap()),
                    _ => panic!("unexpected juniper match {l:?}"),
                }
            }
        }
    }
    assert!(term.is_none(), "unterminated term");
    assert!(terms > 0, "no term rendered");
    atoms
}

/// Atoms in one set and not the other, for the failure message.
fn diff(got: &Atoms, want: &Atoms) -> String {
    let mut out = String::new();
    for (k, v) in want {
        if got.get(k) != Some(v) {
            out += &format!(
                "  missing or different: {k:?} {v:?} (rendered {:?})\n",
                got.get(k)
            );
        }
    }
    for (k, v) in got {
        if !want.contains_key(k) {
            out += &format!("  beyond the site: {k:?} {v:?}\n");
        }
    }
    out
}

#[test]
fn juniper_and_cisco_renderings_hold_each_flow_and_its_return_terms_exactly() {
    if !have_aclgen() {
        return;
    }
    for (name, site) in sites() {
        let export = generate_site(&site, Target::Aerleon, &Options::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for f in &export.files {
            let p = dir.path().join(&f.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let mut text = f.contents.clone();
            if f.role.starts_with("policy-") {
                let (jun, cis) = if f.role == "policy-v6" {
                    ("rf-edge inet6", "rf-edge inet6")
                } else {
                    ("rf-edge", "rf-edge extended")
                };
                text = text.replace(
                    "    terms:\n",
                    &format!("        juniper: {jun}\n        cisco: {cis}\n    terms:\n"),
                );
                assert_ne!(text, f.contents, "{name}: no header in {}", f.path);
            }
            std::fs::write(&p, text).unwrap();
        }
        ringfence_testkit::repo::run_aclgen(dir.path());
        let resolved = site.resolve();
        let mut checked = 0;
        for fam in Family::BOTH {
            if export.file(&format!("policy-v{}", fam.number())).is_none() {
                continue;
            }
            let want = expected(&resolved, fam);
            let returns = want.keys().filter(|k| k.ports == PortSide::Source).count();
            assert!(returns > 0, "{name}: the site has return paths");
            let stem = format!(
                "{}-v{}",
                ringfence_generate::plan::sanitize(&resolved.site),
                fam.number()
            );
            let read = |ext: &str| {
                let p = dir.path().join("out").join(format!("{stem}.{ext}"));
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{name}: {p:?}: {e}"))
            };
            let acl = read("acl");
            let jcl = read("jcl");
            for (what, got) in [("cisco", cisco(&acl, fam)), ("juniper", juniper(&jcl, fam))] {
                assert!(
                    got == want,
                    "{name} IPv{} {what}: rendered terms differ from the site's flows and replies:\n{}",
                    fam.number(),
                    diff(&got, &want)
                );
                checked += 1;
            }
            // The stateful renderings do not get the return terms.
            let ipt = read("ipt");
            assert!(
                !ipt.contains("-ret"),
                "{name}: return terms leaked into speedway"
            );
        }
        assert!(checked >= 2, "{name}: nothing checked");
    }
}
