//! Property: whatever a `Narrowing` says, even one that was never validated
//! (a `Site` changed by hand), the resolved flow admits nothing its row did
//! not, and a narrowing that loading accepts changes nothing it was not
//! asked to.

use ipnet::IpNet;
use proptest::prelude::*;
use ringfence_site::catalog::PortSpec;
use ringfence_site::{
    example_site, EndpointRef, Narrowing, PortRange, Protocol, ResolvedFlow, ServiceSpec,
};
use std::net::IpAddr;

/// A network inside 198.18.0.0/15 (where the example's zones are), any
/// length, or every address.
fn arb_endpoint() -> impl Strategy<Value = EndpointRef> {
    prop_oneof![
        4 => (0u32..(1 << 17), 8u8..=32).prop_map(|(host, len)| {
            let a = (198u32 << 24) | (18 << 16) | host;
            EndpointRef::Literal(IpNet::V4(
                ipnet::Ipv4Net::new(a.into(), len).unwrap().trunc(),
            ))
        }),
        1 => Just(EndpointRef::Any),
        1 => prop::sample::select(vec!["management", "workload", "jumpbox", "dns", "ntp"])
            .prop_map(|z| EndpointRef::Zone(z.to_string())),
    ]
}

fn arb_service() -> impl Strategy<Value = ServiceSpec> {
    (
        prop::sample::select(vec![Protocol::Tcp, Protocol::Udp, Protocol::Any]),
        1u16..=65535,
        0u16..4000,
    )
        .prop_map(|(protocol, first, span)| ServiceSpec::Explicit {
            protocol,
            ports: PortSpec::Range(if protocol == Protocol::Any {
                PortRange::ANY
            } else {
                PortRange {
                    first,
                    last: first.saturating_add(span),
                }
            }),
        })
}

fn arb_narrowing() -> impl Strategy<Value = Narrowing> {
    (
        prop::option::of(prop::collection::vec(arb_endpoint(), 1..3)),
        prop::option::of(prop::collection::vec(arb_endpoint(), 1..3)),
        prop::option::of(prop::collection::vec(arb_service(), 1..3)),
    )
        .prop_map(|(sources, destinations, services)| Narrowing {
            sources,
            destinations,
            services,
        })
}

/// The first and last address of a network.
fn ends(n: &IpNet) -> [IpAddr; 2] {
    [n.network(), n.broadcast()]
}

/// Every corner of what `narrowed` opens (first and last addresses, first
/// and last ports) is admitted by `orig`.
fn within(narrowed: &ResolvedFlow, orig: &ResolvedFlow) -> Result<(), String> {
    for (s, d, svcs) in narrowed.paths() {
        for sv in svcs {
            let protos: Vec<(Protocol, u16, u16)> = match sv.protocol {
                Protocol::Any => vec![(Protocol::Tcp, 0, 65535), (Protocol::Udp, 0, 65535)],
                Protocol::Icmp => continue,
                p => vec![(p, sv.ports.first, sv.ports.last)],
            };
            for (p, lo, hi) in protos {
                for src in ends(&s) {
                    for dst in ends(&d) {
                        for port in [lo, hi] {
                            if !orig.admits(src, dst, p, port) {
                                return Err(format!(
                                    "{} narrowed admits {src} -> {dst} {}/{port}, the row does not",
                                    orig.id,
                                    p.as_str()
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_narrowing_never_widens_a_flow(index in 0usize..14, n in arb_narrowing()) {
        let plain = example_site();
        let before = plain.resolve();
        let ids: Vec<String> = before.allowed().map(|f| f.id.clone()).collect();
        let id = ids[index % ids.len()].clone();
        let mut site = plain.clone();
        site.narrow.insert(id.clone(), n);
        let after = site.resolve();
        let orig = before.flow(&id).unwrap();
        let narrowed = after.flow(&id).unwrap();
        prop_assert!(narrowed.narrowed.is_some());
        if let Err(e) = within(narrowed, orig) {
            return Err(TestCaseError::fail(e));
        }
        // Every other flow is untouched.
        for f in &before.flows {
            if f.id != id {
                prop_assert_eq!(Some(f), after.flow(&f.id));
            }
        }
    }
}
