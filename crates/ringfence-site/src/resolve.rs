//! Resolving catalog rows against a site: concrete addresses, protocols, ports.

use crate::catalog::{Catalog, EndpointRef, FlowSpec, PortSpec, ServiceSpec};
use crate::site::Site;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// A transport protocol as the catalog and site files name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (ICMPv6 for IPv6 addresses).
    Icmp,
    /// Every protocol.
    Any,
}

impl Protocol {
    /// The lower-case name used in files and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Any => "any",
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An inclusive port range; `0-65535` means any port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

impl PortRange {
    /// Every port.
    pub const ANY: PortRange = PortRange {
        first: 0,
        last: u16::MAX,
    };

    /// A single port.
    pub fn single(p: u16) -> Self {
        PortRange { first: p, last: p }
    }

    /// Whether this is every port.
    pub fn is_any(&self) -> bool {
        *self == Self::ANY
    }

    /// How many ports the range holds.
    pub fn len(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    /// Ranges are never empty; provided for clippy's len/is_empty pairing.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("any")
        } else if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A protocol and the destination ports it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Service {
    /// The protocol (`any` means every protocol; its ports are then `any`).
    pub protocol: Protocol,
    /// Destination ports.
    pub ports: PortRange,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.protocol {
            Protocol::Any => f.write_str("all"),
            Protocol::Icmp => f.write_str("icmp"),
            p => write!(f, "{}/{}", p.as_str(), self.ports),
        }
    }
}

/// Whether a flow opens a path or closes everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowAction {
    /// The path must be open.
    Allow,
    /// The path must be closed (the deny-all row).
    Deny,
}

/// A flow with every reference replaced by concrete networks, protocols and ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedFlow {
    /// The catalog id, e.g. `workload-to-mgmt`.
    pub id: String,
    /// Why the flow exists.
    pub purpose: String,
    /// Source networks (hosts as /32 or /128).
    #[serde(serialize_with = "ser_nets")]
    pub sources: Vec<IpNet>,
    /// Destination networks.
    #[serde(serialize_with = "ser_nets")]
    pub destinations: Vec<IpNet>,
    /// Protocols and destination ports.
    pub services: Vec<Service>,
    /// Allow or deny.
    pub action: FlowAction,
    /// Each source network only to itself: pairs are `sources[i] → sources[i]`.
    pub same_network: bool,
    /// The zones (or references such as `any`) the sources came from.
    pub source_zones: Vec<String>,
    /// The zones the destinations came from.
    pub destination_zones: Vec<String>,
}

fn ser_nets<S: Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(nets.iter().map(|n| n.to_string()))
}

impl ResolvedFlow {
    /// Every (source, destination) pair of networks this flow covers, of the
    /// same address family. For `same_network` flows, each network with itself.
    pub fn network_pairs(&self) -> Vec<(IpNet, IpNet)> {
        if self.same_network {
            return self.sources.iter().map(|n| (*n, *n)).collect();
        }
        let mut out = Vec::new();
        for s in &self.sources {
            for d in &self.destinations {
                if same_family(s, d) {
                    out.push((*s, *d));
                }
            }
        }
        out
    }
}

/// Whether two networks are of the same address family.
pub fn same_family(a: &IpNet, b: &IpNet) -> bool {
    matches!(
        (a, b),
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_))
    )
}

/// The flows of one site, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedSite {
    /// The site's name.
    pub site: String,
    /// The catalog version used (e.g. `tkg-1.5`).
    pub catalog: String,
    /// The flows that apply, in catalog order, then the site's extra flows
    /// (before the closing deny-all row).
    pub flows: Vec<ResolvedFlow>,
}

impl ResolvedSite {
    /// The allow flows (every row except deny rows).
    pub fn allowed(&self) -> impl Iterator<Item = &ResolvedFlow> {
        self.flows.iter().filter(|f| f.action == FlowAction::Allow)
    }

    /// The flow with this id.
    pub fn flow(&self, id: &str) -> Option<&ResolvedFlow> {
        self.flows.iter().find(|f| f.id == id)
    }
}

/// The network holding only the first host address of `net` (.1 for IPv4).
pub fn first_host(net: &IpNet) -> IpNet {
    match net {
        IpNet::V4(n) => {
            let a = u32::from(n.network()).saturating_add(u32::from(n.prefix_len() < 31));
            IpNet::V4(Ipv4Net::new(a.into(), 32).expect("32 is a valid prefix"))
        }
        IpNet::V6(n) => {
            let a = u128::from(n.network()).saturating_add(u128::from(n.prefix_len() < 127));
            IpNet::V6(Ipv6Net::new(a.into(), 128).expect("128 is a valid prefix"))
        }
    }
}

/// Both "any" networks.
pub fn any_nets() -> Vec<IpNet> {
    vec![
        IpNet::V4(Ipv4Net::new(std::net::Ipv4Addr::UNSPECIFIED, 0).expect("0 is a valid prefix")),
        IpNet::V6(Ipv6Net::new(std::net::Ipv6Addr::UNSPECIFIED, 0).expect("0 is a valid prefix")),
    ]
}

impl Site {
    /// The API server port TKG uses: `VSPHERE_CONTROL_PLANE_ENDPOINT_PORT` when
    /// Avi provides the control-plane endpoint and sets one, otherwise
    /// `CLUSTER_API_SERVER_PORT` (default 6443).
    pub fn effective_api_port(&self) -> u16 {
        let avi = &self.tkg.avi;
        match avi.control_plane_endpoint_port {
            Some(p) if avi.enabled && avi.control_plane_ha => p,
            _ => self.tkg.api_server_port,
        }
    }

    /// The catalog rows that apply to this site, then its extra flows, with the
    /// deny rows last.
    pub fn applicable_flows<'a>(&'a self, catalog: &'a Catalog) -> Vec<&'a FlowSpec> {
        let (mut allow, mut deny): (Vec<&FlowSpec>, Vec<&FlowSpec>) = catalog
            .flows
            .iter()
            .filter(|f| f.when.holds(&self.tkg))
            .chain(self.extra_flows.iter())
            .partition(|f| f.action == crate::FlowAction::Allow);
        allow.append(&mut deny);
        allow
    }

    fn resolve_endpoint(&self, e: &EndpointRef) -> Vec<IpNet> {
        match e {
            EndpointRef::Zone(z) => self.zones.get(z).cloned().unwrap_or_default(),
            EndpointRef::Any => any_nets(),
            EndpointRef::ClusterCidr => vec![self.tkg.cluster_cidr],
            EndpointRef::ClusterCidrFirstHost => vec![first_host(&self.tkg.cluster_cidr)],
            EndpointRef::ServiceCidrFirstHost => vec![first_host(&self.tkg.service_cidr)],
            EndpointRef::Literal(n) => vec![*n],
        }
    }

    fn resolve_service(&self, catalog: &Catalog, s: &ServiceSpec) -> Vec<Service> {
        match s {
            ServiceSpec::Named(name) => catalog
                .services
                .get(name)
                .map(|v| {
                    v.iter()
                        .map(|(p, r)| Service {
                            protocol: *p,
                            ports: *r,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            ServiceSpec::Explicit { protocol, ports } => vec![Service {
                protocol: *protocol,
                ports: match ports {
                    PortSpec::Range(r) => *r,
                    PortSpec::ApiServer => PortRange::single(self.effective_api_port()),
                },
            }],
        }
    }

    /// Resolve every applicable flow to concrete networks and services.
    pub fn resolve(&self) -> ResolvedSite {
        let catalog = self.catalog();
        let flows = self
            .applicable_flows(&catalog)
            .into_iter()
            .map(|f| {
                let mut sources = Vec::new();
                let mut source_zones = Vec::new();
                for e in &f.sources {
                    push_unique(&mut sources, self.resolve_endpoint(e));
                    source_zones.push(endpoint_label(e));
                }
                let mut destinations = Vec::new();
                let mut destination_zones = Vec::new();
                for e in &f.destinations {
                    push_unique(&mut destinations, self.resolve_endpoint(e));
                    destination_zones.push(endpoint_label(e));
                }
                let mut services = Vec::new();
                for s in &f.services {
                    for svc in self.resolve_service(&catalog, s) {
                        if !services.contains(&svc) {
                            services.push(svc);
                        }
                    }
                }
                ResolvedFlow {
                    id: f.id.clone(),
                    purpose: f.purpose.clone(),
                    sources,
                    destinations,
                    services,
                    action: f.action,
                    same_network: f.same_network,
                    source_zones,
                    destination_zones,
                }
            })
            .collect();
        ResolvedSite {
            site: self.name.clone(),
            catalog: format!("{}-{}", catalog.name, catalog.version),
            flows,
        }
    }
}

fn push_unique(into: &mut Vec<IpNet>, nets: Vec<IpNet>) {
    for n in nets {
        if !into.contains(&n) {
            into.push(n);
        }
    }
}

fn endpoint_label(e: &EndpointRef) -> String {
    match e {
        EndpointRef::Zone(z) => z.clone(),
        EndpointRef::Any => "any".into(),
        EndpointRef::ClusterCidr => "cluster_cidr".into(),
        EndpointRef::ClusterCidrFirstHost => "cluster_cidr.first_host".into(),
        EndpointRef::ServiceCidrFirstHost => "service_cidr.first_host".into(),
        EndpointRef::Literal(n) => n.to_string(),
    }
}
