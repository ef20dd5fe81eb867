//! Property: for random valid sites (random zones with IPv4/IPv6 networks,
//! random settings, random extra flows, a random hook), generation never
//! panics for any target; the nftables output passes `nft -c -f`, and once
//! loaded (nftables and iptables, read back from the kernel) it decides a
//! sample of probe packets exactly as the resolved site prescribes. One
//! namespace per case.

mod common;

use proptest::prelude::*;
use ringfence_generate::{generate_site, Family, Hook, Options, Target};
use std::fmt::Write;

const ZONES: [&str; 12] = [
    "management",
    "workload",
    "jumpbox",
    "bootstrap",
    "harbor",
    "vcenter",
    "dns",
    "ntp",
    "dhcp",
    "avi-controller",
    "avi-se",
    "nsx-manager",
];

fn net_v4() -> impl Strategy<Value = String> {
    (any::<u32>(), 16u8..=32).prop_map(|(a, p)| {
        let base = 0xC612_0000u32 | (a & 0x0001_FFFF); // inside 198.18.0.0/15
        let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
        format!("{}/{p}", std::net::Ipv4Addr::from(base & mask))
    })
}

fn net_v6() -> impl Strategy<Value = String> {
    (any::<u128>(), 48u8..=128).prop_map(|(a, p)| {
        let base = (0xfd00u128 << 112) | (a >> 16);
        let mask = if p == 128 {
            u128::MAX
        } else {
            !(u128::MAX >> p)
        };
        format!("{}/{p}", std::net::Ipv6Addr::from(base & mask))
    })
}

fn nets() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop_oneof![3 => net_v4(), 1 => net_v6()], 1..4)
}

fn service() -> impl Strategy<Value = String> {
    prop_oneof![
        (1u16..=65535).prop_map(|p| format!("{{ protocol: tcp, ports: \"{p}\" }}")),
        (1u16..=65000, 0u16..500)
            .prop_map(|(a, n)| format!("{{ protocol: udp, ports: \"{a}-{}\" }}", a + n)),
        Just("{ protocol: icmp, ports: any }".to_string()),
        Just("{ protocol: tcp, ports: any }".to_string()),
        Just("SSH".to_string()),
        Just("DNS".to_string()),
    ]
}

#[derive(Debug, Clone)]
struct Settings {
    identity: &'static str,
    nsx: bool,
    avi: bool,
    mode: &'static str,
    nsxt_cloud: bool,
    port: u16,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        prop::sample::select(vec!["none", "oidc", "ldap"]),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!["nodeport", "nodeportlocal"]),
        any::<bool>(),
        1u16..=65535,
    )
        .prop_map(|(identity, nsx, avi, mode, nsxt_cloud, port)| Settings {
            identity,
            nsx,
            avi,
            mode,
            nsxt_cloud,
            port,
        })
}

fn site_yaml(s: &Settings, zones: &[Vec<String>], extra: &[(usize, usize, Vec<String>)]) -> String {
    let mut y = String::new();
    let _ = writeln!(
        y,
        "name: prop-site\ntkg:\n  version: \"1.5\"\n  api_server_port: {}",
        s.port
    );
    let _ = writeln!(y, "  nsx: {}\n  identity: {}", s.nsx, s.identity);
    let _ = writeln!(
        y,
        "  avi:\n    enabled: {}\n    mode: {}\n    nsxt_cloud: {}",
        s.avi, s.mode, s.nsxt_cloud
    );
    let _ = writeln!(y, "zones:");
    for (z, n) in ZONES.iter().zip(zones) {
        let quoted: Vec<String> = n.iter().map(|x| format!("\"{x}\"")).collect();
        let _ = writeln!(y, "  {z}: [{}]", quoted.join(", "));
    }
    if extra.is_empty() {
        let _ = writeln!(y, "extra_flows: []");
    } else {
        let _ = writeln!(y, "extra_flows:");
        for (i, (src, dst, svcs)) in extra.iter().enumerate() {
            let _ = writeln!(
                y,
                "  - id: extra-{i}\n    sources: [{}]\n    destinations: [{}]\n    services: [{}]\n    purpose: random extra flow",
                ZONES[*src],
                ZONES[*dst],
                svcs.join(", ")
            );
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_sites_generate_load_and_decide_probes_as_the_site_prescribes(
        s in settings(),
        zones in prop::collection::vec(nets(), ZONES.len()),
        extra in prop::collection::vec((0..ZONES.len(), 0..ZONES.len(), prop::collection::vec(service(), 1..20)), 0..3),
        hook in prop::sample::select(vec![Hook::Forward, Hook::Input, Hook::Output]),
    ) {
        let opts = Options { hook, ..Options::default() };
        let yaml = site_yaml(&s, &zones, &extra);
        let site = ringfence_site::parse_site(&yaml, "prop.yaml")
            .unwrap_or_else(|e| panic!("generated site is invalid: {e:?}\n{yaml}"));
        let mut outs = Vec::new();
        for t in Target::ALL {
            outs.push(generate_site(&site, t, &opts).unwrap());
        }
        if common::can_run("nft check (proptest)", &["nft", "iptables-restore", "ip6tables-restore"]) {
            let ns = common::netns();
            let nft = &outs[0].files[0].contents;
            let file = common::temp_file(nft);
            let res = ns.run("nft", &["-c", "-f", file.path().to_str().unwrap()], b"");
            prop_assert!(res.status.success(), "nft -c rejected:\n{}\n{nft}", String::from_utf8_lossy(&res.stderr));
            ns.ok("nft", &["-f", file.path().to_str().unwrap()], b"");
            let dump = ns.ok("nft", &["-j", "list", "ruleset"], b"");
            let chain = common::nfteval::NftChain::parse(&dump, hook.nft_name());
            let resolved = site.resolve();
            for fam in Family::BOTH {
                let rules = common::load_ours(&site, fam, &opts);
                let all = common::probes(&resolved, fam);
                let step = (all.len() / 3000).max(1);
                for p in all.iter().step_by(step) {
                    let want = common::expected(&resolved, p);
                    prop_assert_eq!(chain.eval(p), want, "nftables vs site on {:?}\n{}", p, yaml);
                    prop_assert_eq!(rules.eval(hook.iptables_chain(), p), want, "iptables vs site on {:?}\n{}", p, yaml);
                }
            }
        }
    }
}
