//! The target-independent plan: what each flow matches, shared by every target.

use crate::Family;
use ipnet::IpNet;
use ringfence_site::{FlowAction, PortRange, Protocol, ResolvedFlow, ResolvedSite};
use std::collections::{BTreeMap, BTreeSet};

/// What a rule does with matching traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through.
    Accept,
    /// Drop it (a deny flow other than the closing deny-all).
    Drop,
}

/// One side (source or destination) of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// Every address: the rule carries no address match.
    Any,
    /// The networks of these zones (each a named set / group / network name).
    Zones(Vec<String>),
    /// Networks that are not a whole zone (e.g. `@cluster_cidr`, literals).
    Nets(Vec<IpNet>),
}

/// Destination ports of one protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// Every port: match only the protocol.
    Any,
    /// Sorted, merged, non-adjacent ranges.
    List(Vec<PortRange>),
}

/// A protocol a flow carries, other than "every protocol".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (ICMPv6 for IPv6).
    Icmp,
}

impl Proto {
    /// Lower-case name (`icmp` for both families).
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

/// What a flow carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Services {
    /// Every protocol and port.
    Any,
    /// Per protocol (sorted tcp, udp, icmp), the destination ports (`Any` for icmp).
    Protocols(Vec<(Proto, Ports)>),
}

/// The address shape of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Every source on one side to every destination on the other.
    Pairs {
        /// Sources.
        src: Side,
        /// Destinations.
        dst: Side,
    },
    /// Each network only to itself (allow-mgmt-subnet, allow-wl-subnet); the
    /// list holds no network nested inside another.
    SameNetwork(Vec<IpNet>),
}

/// One flow as every target sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPlan {
    /// The flow id (unique in the plan: repeated ids get `-2`, `-3`, ...).
    pub id: String,
    /// Why the flow exists.
    pub purpose: String,
    /// Accept or drop.
    pub verdict: Verdict,
    /// Which addresses it connects.
    pub shape: Shape,
    /// Which protocols and ports.
    pub services: Services,
}

/// The closing default-deny row (expressed as a policy, not a rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultDeny {
    /// Its id, normally `deny-all`.
    pub id: String,
    /// Its purpose.
    pub purpose: String,
}

/// The plan every target renders.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Site name.
    pub site: String,
    /// Catalog version, e.g. `tkg-1.5`.
    pub catalog: String,
    /// The zones some rule refers to, each without nested duplicates.
    pub zones: BTreeMap<String, Vec<IpNet>>,
    /// The flows, in order (allow flows, then explicit deny flows).
    pub flows: Vec<FlowPlan>,
    /// The deny-all row, if the site has one.
    pub default_deny: DefaultDeny,
    /// The zones whose machines the firewall is for, with their networks
    /// (NSX scopes its policy to their groups).
    pub protected: BTreeMap<String, Vec<IpNet>>,
    /// The DHCP servers of the catalog's `dhcp` row (`Any` when NSX serves
    /// DHCP); `None` when the site has no such row. A host firewall lets the
    /// host be their client.
    pub dhcp_servers: Option<Side>,
}

/// ICMPv6 types a host firewall passes in both directions, with their nft
/// names: path errors (1-4, packet-too-big among them), multicast listener
/// discovery (130-132, 143; switches that snoop it deliver neighbour
/// discovery's multicast) and neighbour discovery (133-136). Without them the
/// host cannot resolve its neighbours' link-layer addresses over IPv6.
pub const HOST_ICMPV6: [(u8, &str); 12] = [
    (1, "destination-unreachable"),
    (2, "packet-too-big"),
    (3, "time-exceeded"),
    (4, "parameter-problem"),
    (130, "mld-listener-query"),
    (131, "mld-listener-report"),
    (132, "mld-listener-done"),
    (133, "nd-router-solicit"),
    (134, "nd-router-advert"),
    (135, "nd-neighbor-solicit"),
    (136, "nd-neighbor-advert"),
    (143, "mld2-listener-report"),
];

/// ICMP types a host firewall passes: the path errors
/// (destination-unreachable carries "fragmentation needed" for path MTU
/// discovery, time-exceeded, parameter-problem). Echo is not among them: a
/// site that wants ping adds a flow carrying `icmp`.
pub const HOST_ICMP: [(u8, &str); 3] = [
    (3, "destination-unreachable"),
    (11, "time-exceeded"),
    (12, "parameter-problem"),
];

impl Plan {
    /// Build the plan for a resolved site.
    pub fn new(site: &ResolvedSite, zones: &BTreeMap<String, Vec<IpNet>>) -> Plan {
        let mut flows = Vec::new();
        let mut default_deny = None;
        let mut used_zones = BTreeSet::new();
        let mut seen_ids: BTreeMap<String, usize> = BTreeMap::new();
        for f in &site.flows {
            for (part, services, shape) in parts_of(f, zones) {
                if f.action == FlowAction::Deny
                    && services == Services::Any
                    && shape
                        == (Shape::Pairs {
                            src: Side::Any,
                            dst: Side::Any,
                        })
                {
                    default_deny.get_or_insert(DefaultDeny {
                        id: f.id.clone(),
                        purpose: f.purpose.clone(),
                    });
                    continue;
                }
                if let Shape::Pairs { src, dst } = &shape {
                    for s in [src, dst] {
                        if let Side::Zones(z) = s {
                            used_zones.extend(z.iter().cloned());
                        }
                    }
                }
                let n = seen_ids.entry(part.clone()).or_insert(0);
                *n += 1;
                let id = if *n == 1 { part } else { format!("{part}-{n}") };
                flows.push(FlowPlan {
                    id,
                    purpose: f.purpose.clone(),
                    verdict: match f.action {
                        FlowAction::Allow => Verdict::Accept,
                        FlowAction::Deny => Verdict::Drop,
                    },
                    shape,
                    services,
                });
            }
        }
        let dhcp_servers = site
            .allowed()
            .find(|f| f.id == "dhcp" && !f.same_network)
            .map(|f| side_of(&f.destination_zones, &f.destinations, zones));
        if let Some(Side::Zones(z)) = &dhcp_servers {
            used_zones.extend(z.iter().cloned());
        }
        let protected = site
            .protected_zones
            .iter()
            .map(|z| {
                let nets = minimize(zones.get(z).map(Vec::as_slice).unwrap_or(&[]));
                (z.clone(), nets)
            })
            .collect();
        let zones = used_zones
            .into_iter()
            .map(|z| {
                let nets = minimize(zones.get(&z).map(Vec::as_slice).unwrap_or(&[]));
                (z, nets)
            })
            .collect();
        Plan {
            site: site.site.clone(),
            catalog: site.catalog.clone(),
            zones,
            flows,
            default_deny: default_deny.unwrap_or(DefaultDeny {
                id: "deny-all".into(),
                purpose: "Everything not allowed above is dropped.".into(),
            }),
            protected,
            dhcp_servers,
        }
    }

    /// The networks of `zone` in family `fam`.
    pub fn zone_nets(&self, zone: &str, fam: Family) -> Vec<IpNet> {
        self.zones
            .get(zone)
            .map(|n| of_family(n, fam))
            .unwrap_or_default()
    }

    /// Whether a side holds any address of family `fam` (`Any` always does).
    pub fn side_has(&self, side: &Side, fam: Family) -> bool {
        match side {
            Side::Any => true,
            Side::Zones(z) => z.iter().any(|z| !self.zone_nets(z, fam).is_empty()),
            Side::Nets(n) => n.iter().any(|n| Family::of(n) == fam),
        }
    }

    /// The families in which a flow matches anything, IPv4 first.
    pub fn flow_families(&self, flow: &FlowPlan) -> Vec<Family> {
        Family::BOTH
            .into_iter()
            .filter(|&fam| match &flow.shape {
                Shape::Pairs { src, dst } => self.side_has(src, fam) && self.side_has(dst, fam),
                Shape::SameNetwork(n) => n.iter().any(|n| Family::of(n) == fam),
            })
            .collect()
    }
}

/// The networks of family `fam`, in order.
pub fn of_family(nets: &[IpNet], fam: Family) -> Vec<IpNet> {
    nets.iter()
        .copied()
        .filter(|n| Family::of(n) == fam)
        .collect()
}

/// Drop duplicates and networks nested inside another listed network, keeping
/// the first-listed order. The union of addresses is unchanged, and what is
/// left is pairwise disjoint (CIDR blocks either nest or are disjoint).
pub fn minimize(nets: &[IpNet]) -> Vec<IpNet> {
    let mut sorted: Vec<IpNet> = nets.to_vec();
    // Widest first within each address, so containers precede what they hold.
    sorted.sort_by(|a, b| {
        (Family::of(a), a.network(), a.prefix_len()).cmp(&(
            Family::of(b),
            b.network(),
            b.prefix_len(),
        ))
    });
    let mut keep: BTreeSet<IpNet> = BTreeSet::new();
    let mut last: Option<IpNet> = None;
    for n in sorted {
        if let Some(l) = last {
            if l.contains(&n) {
                continue;
            }
        }
        keep.insert(n);
        last = Some(n);
    }
    let mut out = Vec::new();
    for n in nets {
        if keep.remove(n) {
            out.push(*n);
        }
    }
    out
}

/// The fewest CIDR blocks covering exactly the union of `nets`, per family
/// (IPv4 first), in address order: adjacent and overlapping networks merge
/// (198.18.20.0/24 + 198.18.21.0/24 = 198.18.20.0/23).
pub fn aggregate(nets: &[IpNet]) -> Vec<IpNet> {
    let mut out = Vec::new();
    for fam in Family::BOTH {
        let bits: u32 = if fam == Family::V4 { 32 } else { 128 };
        let mut ranges: Vec<(u128, u128)> = nets
            .iter()
            .filter(|n| Family::of(n) == fam)
            .map(|n| match n {
                IpNet::V4(v) => (
                    u128::from(u32::from(v.network())),
                    u128::from(u32::from(v.broadcast())),
                ),
                IpNet::V6(v) => (u128::from(v.network()), u128::from(v.broadcast())),
            })
            .collect();
        ranges.sort();
        let mut merged: Vec<(u128, u128)> = Vec::new();
        for (a, b) in ranges {
            match merged.last_mut() {
                Some((_, lb)) if *lb == u128::MAX || a <= *lb + 1 => *lb = (*lb).max(b),
                _ => merged.push((a, b)),
            }
        }
        for (mut a, b) in merged {
            loop {
                // The largest aligned block starting at `a` that ends within `b`.
                let mut size = if a == 0 {
                    bits
                } else {
                    a.trailing_zeros().min(bits)
                };
                let block_end = |size: u32| {
                    if size >= 128 {
                        u128::MAX
                    } else {
                        a + ((1u128 << size) - 1)
                    }
                };
                while block_end(size) > b {
                    size -= 1;
                }
                let prefix = (bits - size) as u8;
                out.push(match fam {
                    Family::V4 => IpNet::V4(
                        ipnet::Ipv4Net::new((a as u32).into(), prefix).expect("prefix <= 32"),
                    ),
                    Family::V6 => {
                        IpNet::V6(ipnet::Ipv6Net::new(a.into(), prefix).expect("prefix <= 128"))
                    }
                });
                let last = block_end(size);
                if last >= b {
                    break;
                }
                a = last + 1;
            }
        }
    }
    out
}

fn side_of(labels: &[String], nets: &[IpNet], zones: &BTreeMap<String, Vec<IpNet>>) -> Side {
    if labels.iter().any(|l| l == "any") {
        return Side::Any;
    }
    if !labels.is_empty() && labels.iter().all(|l| zones.contains_key(l)) {
        let mut z: Vec<String> = Vec::new();
        for l in labels {
            if !z.contains(l) {
                z.push(l.clone());
            }
        }
        return Side::Zones(z);
    }
    Side::Nets(minimize(nets))
}

/// A flow as one or more (id, services, shape) parts. A flow whose
/// destinations receive different services (`dns-ntp-outbound`) becomes one
/// part per group of destinations with the same services, named
/// `<flow>-<destinations>` (`dns-ntp-outbound-dns`, `dns-ntp-outbound-ntp`),
/// so no destination gets another's ports.
fn parts_of(
    f: &ResolvedFlow,
    zones: &BTreeMap<String, Vec<IpNet>>,
) -> Vec<(String, Services, Shape)> {
    if f.same_network {
        return vec![(
            f.id.clone(),
            services_of(&f.services),
            Shape::SameNetwork(minimize(&f.sources)),
        )];
    }
    let src = side_of(&f.source_zones, &f.sources, zones);
    if f.destination_services.is_empty() {
        return vec![(
            f.id.clone(),
            services_of(&f.services),
            Shape::Pairs {
                src,
                dst: side_of(&f.destination_zones, &f.destinations, zones),
            },
        )];
    }
    // Group destinations by the services they receive, in first-seen order.
    let mut groups: Vec<(Vec<ringfence_site::Service>, Vec<String>, Vec<IpNet>)> = Vec::new();
    for d in &f.destination_services {
        match groups.iter_mut().find(|g| g.0 == d.services) {
            Some(g) => {
                g.1.push(d.zone.clone());
                g.2.extend(d.destinations.iter().copied());
            }
            None => groups.push((
                d.services.clone(),
                vec![d.zone.clone()],
                d.destinations.clone(),
            )),
        }
    }
    let single = groups.len() == 1;
    groups
        .into_iter()
        .map(|(svcs, labels, nets)| {
            let id = if single {
                f.id.clone()
            } else {
                format!("{}-{}", f.id, labels.join("-"))
            };
            (
                id,
                services_of(&svcs),
                Shape::Pairs {
                    src: src.clone(),
                    dst: side_of(&labels, &nets, zones),
                },
            )
        })
        .collect()
}

fn services_of(services: &[ringfence_site::Service]) -> Services {
    if services.iter().any(|s| s.protocol == Protocol::Any) {
        return Services::Any;
    }
    let mut by_proto: BTreeMap<Proto, Vec<PortRange>> = BTreeMap::new();
    for s in services {
        let p = match s.protocol {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
            Protocol::Icmp => Proto::Icmp,
            Protocol::Any => unreachable!("handled above"),
        };
        let r = if p == Proto::Icmp {
            PortRange::ANY
        } else {
            s.ports
        };
        by_proto.entry(p).or_default().push(r);
    }
    Services::Protocols(
        by_proto
            .into_iter()
            .map(|(p, ranges)| (p, merge_ports(ranges)))
            .collect(),
    )
}

/// Sort and merge overlapping or adjacent ranges; all ports becomes `Any`.
pub fn merge_ports(mut ranges: Vec<PortRange>) -> Ports {
    ranges.sort();
    let mut out: Vec<PortRange> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(l) if u32::from(r.first) <= u32::from(l.last) + 1 => {
                l.last = l.last.max(r.last);
            }
            _ => out.push(r),
        }
    }
    if out.len() == 1 && out[0].is_any() {
        Ports::Any
    } else {
        Ports::List(out)
    }
}

/// Make `name` safe for targets that allow only `[A-Za-z0-9_-]` (others become `_`).
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Assign each input a unique name: `base(input)` cut to `max` characters,
/// with `-2`, `-3`, ... (inside the limit) when two would collide.
pub fn unique_names<'a>(
    inputs: impl IntoIterator<Item = &'a str>,
    max: usize,
    base: impl Fn(&str) -> String,
) -> Vec<String> {
    let mut taken = BTreeSet::new();
    let mut out = Vec::new();
    for i in inputs {
        let b: String = base(i).chars().take(max).collect();
        let mut name = b.clone();
        let mut n = 2;
        while taken.contains(&name) {
            let suffix = format!("-{n}");
            let keep = max.saturating_sub(suffix.len());
            name = format!("{}{}", b.chars().take(keep).collect::<String>(), suffix);
            n += 1;
        }
        taken.insert(name.clone());
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn minimize_drops_nested_and_duplicate_networks_keeping_order() {
        let got = minimize(&[
            n("198.18.20.0/25"),
            n("198.18.21.0/24"),
            n("198.18.20.0/24"),
            n("198.18.21.7/32"),
            n("2001:db8::/64"),
            n("198.18.21.0/24"),
        ]);
        assert_eq!(
            got,
            vec![n("198.18.21.0/24"), n("198.18.20.0/24"), n("2001:db8::/64")]
        );
    }

    #[test]
    fn aggregate_merges_adjacent_and_nested_networks_into_fewest_blocks() {
        let got = aggregate(&[
            n("198.18.21.0/24"),
            n("198.18.20.0/24"),
            n("198.18.20.128/25"),
            n("198.18.22.0/24"),
            n("198.18.1.10/32"),
            n("2001:db8::/65"),
            n("2001:db8:0:0:8000::/65"),
        ]);
        assert_eq!(
            got,
            vec![
                n("198.18.1.10/32"),
                n("198.18.20.0/23"),
                n("198.18.22.0/24"),
                n("2001:db8::/64"),
            ]
        );
        assert_eq!(aggregate(&[n("0.0.0.0/0")]), vec![n("0.0.0.0/0")]);
        assert_eq!(aggregate(&[n("::/0")]), vec![n("::/0")]);
        assert_eq!(
            aggregate(&[n("198.18.0.1/32"), n("198.18.0.2/32")]),
            vec![n("198.18.0.1/32"), n("198.18.0.2/32")]
        );
    }

    #[test]
    fn merge_ports_joins_adjacent_and_overlapping_ranges() {
        let r = |a, b| PortRange { first: a, last: b };
        assert_eq!(
            merge_ports(vec![
                r(443, 443),
                r(53, 53),
                r(54, 60),
                r(58, 70),
                r(6443, 6443)
            ]),
            Ports::List(vec![r(53, 70), r(443, 443), r(6443, 6443)])
        );
        assert_eq!(merge_ports(vec![PortRange::ANY]), Ports::Any);
    }

    #[test]
    fn unique_names_stay_within_the_limit_and_never_collide() {
        let got = unique_names(["abcdef", "abcdefgh", "abcdef"], 6, |s| s.to_string());
        assert_eq!(got, vec!["abcdef", "abcd-2", "abcd-3"]);
    }

    proptest::proptest! {
        #[test]
        fn aggregate_keeps_exactly_the_same_addresses(
            nets in proptest::collection::vec((0u32..4096, 20u8..=32), 0..24),
            probes in proptest::collection::vec(0u32..4096, 64),
        ) {
            let base = 0xC612_0000u32;
            let nets: Vec<IpNet> = nets
                .into_iter()
                .map(|(off, p)| IpNet::V4(ipnet::Ipv4Net::new((base + off).into(), p).unwrap().trunc()))
                .collect();
            let agg = aggregate(&nets);
            for w in agg.windows(2) {
                proptest::prop_assert!(!w[0].contains(&w[1].network()) && !w[1].contains(&w[0].network()));
            }
            for off in probes {
                let a: std::net::IpAddr = std::net::Ipv4Addr::from(base + off).into();
                proptest::prop_assert_eq!(
                    nets.iter().any(|n| n.contains(&a)),
                    agg.iter().any(|n| n.contains(&a))
                );
            }
            proptest::prop_assert!(agg.len() <= nets.len().max(1) * 32);
        }
    }
}
