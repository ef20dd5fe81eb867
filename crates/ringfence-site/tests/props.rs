//! Property tests over random sites: resolution never invents addresses and
//! never yields a flow without both ends.

use ipnet::IpNet;
use proptest::prelude::*;
use ringfence_site::{parse_site, FlowAction};

/// A random network inside 198.18.0.0/15 or 2001:db8::/32, rendered for YAML.
fn arb_net() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..(1 << 17), 15u8..=32).prop_map(|(host, len)| {
            let a = (198u32 << 24) | (18 << 16) | host;
            let net = ipnet::Ipv4Net::new(a.into(), len).unwrap().trunc();
            net.to_string()
        }),
        (any::<u32>(), 32u8..=128).prop_map(|(bits, len)| {
            let a: u128 = (0x2001_0db8u128 << 96) | (u128::from(bits) << 64);
            let net = ipnet::Ipv6Net::new(a.into(), len).unwrap().trunc();
            net.to_string()
        }),
    ]
}

fn arb_site() -> impl Strategy<Value = String> {
    let zones = [
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
    (
        proptest::collection::vec(proptest::collection::vec(arb_net(), 1..4), zones.len()),
        any::<bool>(),
        prop_oneof![Just("none"), Just("oidc"), Just("ldap")],
        any::<bool>(),
        prop_oneof![Just("nodeport"), Just("nodeportlocal")],
        any::<bool>(),
        1u16..=65535,
    )
        .prop_map(move |(nets, nsx, identity, avi, mode, cloud, port)| {
            let mut y = format!(
                "name: p\ntkg:\n  version: \"1.5\"\n  api_server_port: {port}\n  nsx: {nsx}\n  identity: {identity}\n  avi:\n    enabled: {avi}\n    mode: {mode}\n    nsxt_cloud: {cloud}\nzones:\n"
            );
            for (z, n) in zones.iter().zip(nets) {
                y.push_str(&format!("  {z}: [{}]\n", n.join(", ")));
            }
            y
        })
}

fn within(net: &IpNet, zone_nets: &[IpNet]) -> bool {
    zone_nets.iter().any(|z| z.contains(net))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_resolved_address_lies_inside_its_zone(yaml in arb_site()) {
        let site = parse_site(&yaml, "p.yaml").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let any: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
        for f in site.resolve().flows {
            for (nets, zones) in [(&f.sources, &f.source_zones), (&f.destinations, &f.destination_zones)] {
                let mut allowed: Vec<IpNet> = Vec::new();
                for z in zones {
                    match z.as_str() {
                        "any" => allowed.extend(any.iter().copied()),
                        "cluster_cidr" | "cluster_cidr.first_host" => allowed.push(site.tkg.cluster_cidr),
                        "service_cidr.first_host" => allowed.push(site.tkg.service_cidr),
                        zone => allowed.extend(site.zones[zone].iter().copied()),
                    }
                }
                for n in nets.iter() {
                    prop_assert!(within(n, &allowed), "{} of flow {} is outside {:?}", n, f.id, zones);
                }
            }
        }
    }

    #[test]
    fn no_flow_lacks_a_source_a_destination_or_a_service(yaml in arb_site()) {
        let site = parse_site(&yaml, "p.yaml").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let r = site.resolve();
        prop_assert_eq!(r.flows.last().map(|f| f.action), Some(FlowAction::Deny));
        for f in &r.flows {
            prop_assert!(!f.sources.is_empty(), "{} has no source", f.id);
            prop_assert!(!f.destinations.is_empty(), "{} has no destination", f.id);
            prop_assert!(!f.services.is_empty(), "{} has no service", f.id);
        }
    }
}
