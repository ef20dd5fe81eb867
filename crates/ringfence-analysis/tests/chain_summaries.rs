//! Per-chain summaries are exact: classifying a region from a chain's
//! summary for its class gives the very outcomes (the same boxes, fates,
//! paths, forks and translations, in the same order) as walking the region
//! through the chain itself.
//!
//! Rulesets are kube-proxy-like (services that fork over endpoints with
//! `statistic`, DNAT with the port kept, changed or left out, a masquerade
//! mark, MASQUERADE by mark), with filter zone chains jumped to by source
//! prefixes, negated destinations, port ranges, interfaces, and rules that
//! read the original destination (`--ctorigdst`, `--ctorigdstport`). One
//! engine classifies a sequence of regions, many of one class (a service's
//! endpoints, hosts of one subnet, other protocols to a service), so later
//! regions are served from summaries the earlier ones left; another engine
//! built with [`Engine::without_summaries`] walks every region itself.

use proptest::prelude::*;
use ringfence_analysis::space::Fam;
use ringfence_analysis::{Engine, IfaceUniverse, PBox};
use ringfence_model::{AddrSet, CtStates, Hook, IntervalSet, Ruleset};
use ringfence_testkit::Rng;

const PORTS: [u16; 6] = [22, 80, 443, 5432, 8080, 9090];

fn ip(a: u32) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

/// 198.18.100.x: service addresses.
fn service(i: u32) -> u32 {
    0xC612_6400 + 1 + i
}

/// 198.19.1.x: endpoints.
fn endpoint(i: u32) -> u32 {
    0xC613_0100 + 1 + i
}

/// 198.18.z.h: hosts of zone subnet z.
fn zone_host(z: u32, h: u32) -> u32 {
    0xC612_0000 + (z << 8) + h
}

/// A kube-proxy-like nat table and a filter table with zone chains.
fn ruleset_text(rng: &mut Rng) -> String {
    let mut nat = vec![
        "*nat".to_string(),
        ":PREROUTING ACCEPT [0:0]".into(),
        ":INPUT ACCEPT [0:0]".into(),
        ":OUTPUT ACCEPT [0:0]".into(),
        ":POSTROUTING ACCEPT [0:0]".into(),
        ":SVCS - [0:0]".into(),
        ":MASQ - [0:0]".into(),
        ":POST - [0:0]".into(),
        ":NODEPORTS - [0:0]".into(),
    ];
    let mut rules = vec![
        "-A PREROUTING -j SVCS".to_string(),
        "-A OUTPUT -j SVCS".into(),
        "-A POSTROUTING -j POST".into(),
        "-A POST -m mark ! --mark 0x4000/0x4000 -j RETURN".into(),
        "-A POST -j MASQUERADE".into(),
        "-A MASQ -j MARK --or-mark 0x4000".into(),
    ];
    let services = 2 + rng.below(5) as u32;
    let mut ep = 0;
    let mut svc_ports = Vec::new();
    for s in 0..services {
        let port = *rng.pick(&PORTS);
        svc_ports.push(port);
        let svc = format!("SVC-{s}");
        nat.push(format!(":{svc} - [0:0]"));
        if rng.chance(30) {
            // Every port: a DNAT that keeps the port leaves it linked to
            // the original port over a range the filter rules cut.
            rules.push(format!("-A SVCS -d {}/32 -j {svc}", ip(service(s))));
        } else {
            rules.push(format!(
                "-A SVCS -d {}/32 -p tcp -m tcp --dport {port} -j {svc}",
                ip(service(s))
            ));
        }
        if rng.chance(60) {
            rules.push(format!(
                "-A {svc} ! -s 198.19.0.0/16 -d {}/32 -p tcp -m tcp --dport {port} -j MASQ",
                ip(service(s))
            ));
        }
        let n = 1 + rng.below(3);
        for e in 0..n {
            let sep = format!("SEP-{s}-{e}");
            nat.push(format!(":{sep} - [0:0]"));
            if e + 1 < n {
                rules.push(format!(
                    "-A {svc} -m statistic --mode random --probability 0.5 -j {sep}"
                ));
            } else {
                rules.push(format!("-A {svc} -j {sep}"));
            }
            let addr = ip(endpoint(ep));
            ep += 1;
            rules.push(format!("-A {sep} -s {addr}/32 -j MASQ"));
            let to = match rng.below(3) {
                0 => addr,
                1 => format!("{addr}:{port}"),
                _ => format!("{addr}:{}", rng.pick(&PORTS)),
            };
            rules.push(format!(
                "-A {sep} -p tcp -m tcp -j DNAT --to-destination {to}"
            ));
        }
    }
    if rng.chance(50) {
        rules.push("-A SVCS -m addrtype --dst-type LOCAL -j NODEPORTS".into());
    }
    nat.extend(rules);
    nat.push("COMMIT".into());

    let mut filter = vec![
        "*filter".to_string(),
        ":INPUT ACCEPT [0:0]".into(),
        format!(
            ":FORWARD {} [0:0]",
            if rng.chance(80) { "DROP" } else { "ACCEPT" }
        ),
        ":OUTPUT ACCEPT [0:0]".into(),
    ];
    let mut rules = Vec::new();
    if rng.chance(60) {
        rules.push("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_string());
    }
    if rng.chance(50) {
        rules.push("-A FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT".into());
    }
    if rng.chance(30) {
        rules.push(format!(
            "-A FORWARD -m conntrack --ctstate DNAT --ctorigdst {}/32 -j ACCEPT",
            ip(service(rng.below(services as u64) as u32))
        ));
    }
    if rng.chance(30) {
        rules.push(format!(
            "-A FORWARD -p tcp -m conntrack --ctstate DNAT --ctorigdstport {} -j REJECT",
            rng.pick(&svc_ports)
        ));
    }
    let zones = 2 + rng.below(4);
    for z in 0..zones {
        let chain = format!("ZONE-{z}");
        filter.push(format!(":{chain} - [0:0]"));
        let src = match rng.below(4) {
            0 => "198.19.0.0/16".to_string(),
            1 => format!("198.19.{}.0/24", 16 + rng.below(4)),
            2 => format!("198.19.{}.{}/28", 16 + rng.below(4), 16 * rng.below(16)),
            _ => "198.18.0.0/15".into(),
        };
        let iif = if rng.chance(20) { " -i eth0" } else { "" };
        rules.push(format!("-A FORWARD -s {src}{iif} -j {chain}"));
        for _ in 0..(2 + rng.below(8)) {
            let host = ip(zone_host(1 + rng.below(4) as u32, 1 + rng.below(30) as u32));
            let net = format!("198.18.{}.0/24", 1 + rng.below(4));
            let port = rng.pick(&PORTS);
            let m = match rng.below(8) {
                0 => format!("-d {host}/32 -p tcp -m tcp --dport {port}"),
                1 => format!("-d {host}/32 -p tcp -m multiport --dports 22,80,8080"),
                2 => format!("-d {host}/32 -p udp -m udp --dport 1000:1100"),
                3 => format!("-d {net}"),
                4 => format!("! -d {net} -p tcp -m tcp --dport {port}"),
                5 => format!("-s 198.19.{}.0/24 -d {host}/32 -p tcp", 16 + rng.below(4)),
                6 => format!(
                    "-d {}/32 -p tcp -m tcp --dport {port}",
                    ip(endpoint(rng.below(ep as u64 + 1) as u32))
                ),
                _ => format!("-o eth1 -p tcp -m tcp --dport {port}"),
            };
            let target = rng.one(&[
                "ACCEPT",
                "ACCEPT",
                "DROP",
                "REJECT --reject-with icmp-port-unreachable",
                "RETURN",
            ]);
            rules.push(format!("-A {chain} {m} -j {target}"));
        }
    }
    filter.extend(rules);
    filter.push("COMMIT".into());
    let mut text = nat;
    text.extend(filter);
    text.join("\n") + "\n"
}

/// One region of a few classes: hosts and endpoints that no rule names
/// apart, a service's other protocols and ports, whole subnets.
fn region(rng: &mut Rng, u: &IfaceUniverse) -> PBox {
    let mut b = PBox::full(Fam::V4, u);
    let set = |a: u32, z: u32| IntervalSet::range(a as u128, z as u128);
    b.src = match rng.below(5) {
        0 => IntervalSet::range(0, u32::MAX as u128),
        1 => set(0xC613_0000, 0xC613_FFFF),
        2 => {
            let a = 0xC613_1000 + ((rng.below(4) as u32) << 8);
            set(a, a + 255)
        }
        3 => IntervalSet::single(0xC613_1000 + rng.below(1024) as u128),
        _ => IntervalSet::single(endpoint(rng.below(12) as u32) as u128),
    };
    b.dst = match rng.below(7) {
        0 => IntervalSet::single(service(rng.below(6) as u32) as u128),
        1 => IntervalSet::single(endpoint(rng.below(12) as u32) as u128),
        2 => {
            IntervalSet::single(zone_host(1 + rng.below(4) as u32, 1 + rng.below(60) as u32) as u128)
        }
        3 => {
            let z = zone_host(1 + rng.below(4) as u32, 0);
            set(z, z + 255)
        }
        4 => set(0xC612_6400, 0xC612_64FF),
        5 => IntervalSet::single(0x0A00_0000 + rng.below(1 << 20) as u128),
        _ => IntervalSet::range(0, u32::MAX as u128),
    };
    b.proto = match rng.below(4) {
        0 => IntervalSet::single(6),
        1 => IntervalSet::single(17),
        2 => IntervalSet::single(6).complement(),
        _ => IntervalSet::full(),
    };
    b.dport = match rng.below(4) {
        0 => IntervalSet::single(*rng.pick(&PORTS)),
        1 => IntervalSet::single(*rng.pick(&PORTS)).complement(),
        2 => IntervalSet::range(1000, 1050 + rng.below(100) as u16),
        _ => IntervalSet::full(),
    };
    b.ct = match rng.below(3) {
        0 => CtStates::NEW,
        1 => CtStates::ESTABLISHED,
        _ => CtStates::NEW | CtStates::ESTABLISHED,
    };
    b
}

fn parse(text: &str) -> Ruleset {
    ringfence_parse::parse_ruleset(text, "kube.rules", ringfence_parse::RulesetFormat::Auto)
        .unwrap_or_else(|e| panic!("generated ruleset parses: {e}\n{text}"))
}

fn compare(seed: u64) {
    let mut rng = Rng::new(seed);
    let text = ruleset_text(&mut rng);
    let rs = parse(&text);
    let mut u = IfaceUniverse::new([&rs]);
    if rng.chance(50) {
        u = u.with_locals(&AddrSet::v4_prefix("198.18.0.1".parse().unwrap(), 32));
    }
    let with = Engine::new(&rs, u.clone());
    let without = Engine::new(&rs, u).without_summaries();
    for i in 0..40 {
        let hook = *rng.pick(&[Hook::Forward, Hook::Forward, Hook::Input, Hook::Output]);
        let b = with.restrict_to_hook(region(&mut rng, &with.u), hook, CtStates::ALL.0);
        if b.is_empty() {
            continue;
        }
        let got = with.classify(hook, vec![b.clone()]);
        let want = without.classify(hook, vec![b.clone()]);
        assert_eq!(
            format!("{got:?}"),
            format!("{want:?}"),
            "seed {seed}, region {i} on {hook:?}: {b:?}\n{text}"
        );
        let got = with.classify_settled(hook, vec![b.clone()]);
        let want = without.classify_settled(hook, vec![b.clone()]);
        assert_eq!(
            format!("{got:?}"),
            format!("{want:?}"),
            "seed {seed}, region {i} settled on {hook:?}\n{text}"
        );
    }
}

#[test]
fn summaries_give_the_outcomes_of_walking_each_region_on_fixed_seeds() {
    for seed in 0..12 {
        compare(seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn summaries_give_the_outcomes_of_walking_each_region(seed in any::<u64>()) {
        compare(seed);
    }
}
