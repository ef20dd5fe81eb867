//! The kernel as the oracle: the example site's hosts live in namespaces
//! around a router namespace (`ringfence-lab`), the router holds our nftables
//! (then our iptables) output, and real TCP connections between every pair of
//! host addresses on a set of ports must connect exactly when the resolved
//! site allows them, and time out (drop) otherwise. Traffic inside one
//! network never crosses the router, so network-to-itself flows are covered
//! by the evaluator tests instead; here two different workload networks must
//! stay apart.

mod common;

use common::eval::{Packet, Verdict};
use ringfence_generate::{generate_site, Family, Options, Target};
use ringfence_lab::{probe_all, HostSpec, Lab, LabSpec, Listeners, Outcome, Probe, Transport};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::Duration;

const PORTS: [u16; 10] = [22, 53, 80, 443, 5556, 6443, 29999, 30000, 31234, 32767];

fn host(name: &str, net: [u8; 3], last: &[u8]) -> HostSpec {
    HostSpec {
        name: name.into(),
        subnet: (Ipv4Addr::new(net[0], net[1], net[2], 0), 24),
        addrs: last
            .iter()
            .map(|&l| Ipv4Addr::new(net[0], net[1], net[2], l))
            .collect(),
    }
}

/// The example site's zones as hosts, plus one host outside every zone.
fn spec(tag: &str) -> LabSpec {
    LabSpec {
        tag: tag.into(),
        hosts: vec![
            host("mg", [198, 18, 10], &[10]),
            host("wa", [198, 18, 20], &[10]),
            host("wb", [198, 18, 21], &[10]),
            host("sv", [198, 18, 1], &[10, 20, 30, 40, 50, 53, 67, 123]),
            host("se", [198, 18, 30], &[10]),
            host("ot", [198, 18, 40], &[10]),
        ],
        state_dir: std::env::temp_dir().join("ringfence-generate-lab"),
    }
}

fn run_probes(lab: &Lab, resolved: &ringfence_site::ResolvedSite, what: &str) {
    let hosts = lab.spec().hosts.clone();
    let mut probes = Vec::new();
    let mut sport = 20000u16;
    for s in &hosts {
        for d in &hosts {
            if s.name == d.name {
                continue;
            }
            for sa in &s.addrs {
                for da in &d.addrs {
                    for port in PORTS {
                        sport += 1;
                        probes.push(Probe {
                            from_ns: lab.host_ns(&s.name),
                            src: SocketAddrV4::new(*sa, sport),
                            dst: SocketAddrV4::new(*da, port),
                            transport: Transport::Tcp,
                        });
                    }
                }
            }
        }
    }
    let outcomes = probe_all(&probes, Duration::from_millis(400), 64).expect("probes run");
    let mut accepted = 0;
    for (p, o) in probes.iter().zip(&outcomes) {
        let pk = Packet {
            src: IpAddr::V4(*p.src.ip()),
            dst: IpAddr::V4(*p.dst.ip()),
            proto: 6,
            dport: p.dst.port(),
        };
        let want = common::expected(resolved, &pk);
        let got = match o {
            Outcome::Connected => Verdict::Accept,
            Outcome::Timeout => Verdict::Drop,
            Outcome::Refused => panic!("{what}: {p:?} was refused; nothing here rejects"),
        };
        if want == Verdict::Accept {
            accepted += 1;
        }
        assert_eq!(
            got, want,
            "{what}: the kernel and the site disagree on {p:?}"
        );
    }
    assert!(
        accepted >= 20,
        "{what}: only {accepted} connections should connect"
    );
    eprintln!(
        "{what}: {} real connections agree with the site ({accepted} connect)",
        probes.len()
    );
}

#[test]
fn real_connections_through_our_nftables_and_iptables_rules_follow_the_site() {
    if !ringfence_testkit::require!(
        ringfence_testkit::Need::Root,
        ringfence_testkit::Need::Tool("ip"),
        ringfence_testkit::Need::Tool("nft"),
        ringfence_testkit::Need::Tool("iptables-restore")
    ) {
        return;
    }
    let site = common::example();
    let resolved = site.resolve();
    let lab = Lab::up(spec(&format!("gen{}", std::process::id()))).expect("lab up");
    let mut binds = Vec::new();
    for h in &lab.spec().hosts {
        for a in &h.addrs {
            for port in PORTS {
                binds.push((lab.host_ns(&h.name), SocketAddrV4::new(*a, port)));
            }
        }
    }
    let _listeners = Listeners::start(&binds).expect("listeners");

    let nft = generate_site(&site, Target::Nftables, &Options::default()).unwrap();
    lab.load_nft(&nft.files[0].contents).expect("load nftables");
    run_probes(&lab, &resolved, "nftables");

    let ipt = generate_site(
        &site,
        Target::Iptables,
        &Options {
            family: Some(Family::V4),
            ..Options::default()
        },
    )
    .unwrap();
    lab.load_nft("").expect("flush the router's ruleset");
    lab.load_iptables(&ipt.files[0].contents, false)
        .expect("load iptables");
    run_probes(&lab, &resolved, "iptables");
    lab.down().expect("lab down");
}
