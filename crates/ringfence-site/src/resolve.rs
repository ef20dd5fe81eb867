//! Resolving catalog rows against a site: concrete addresses, protocols, ports.

use crate::catalog::{Catalog, EndpointRef, FlowSpec, PortSpec, ServiceSpec};
use crate::shape::{narrow_flow, DisabledFlow, Narrowed, Narrowing};
use crate::site::Site;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

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
    /// When the row gives its destinations different services, one entry per
    /// destination (in `destination_zones` order) with the services it
    /// receives; `dns-ntp-outbound` opens DNS to the DNS servers and NTP to
    /// the NTP servers, not both to both. Empty: every destination receives
    /// every service. Use [`ResolvedFlow::services_to`] or
    /// [`ResolvedFlow::paths`] rather than pairing `destinations` with
    /// `services` by hand.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_services: Vec<DestinationServices>,
    /// Set when the site narrows this flow (`narrow:`): what the row gave
    /// before, for each part the site narrowed. The fields above are
    /// already narrowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub narrowed: Option<Narrowed>,
}

/// The services one destination of a flow receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationServices {
    /// The destination as `destination_zones` names it.
    pub zone: String,
    /// Its networks.
    #[serde(serialize_with = "ser_nets")]
    pub destinations: Vec<IpNet>,
    /// What it receives: some of the flow's `services`, in their order.
    pub services: Vec<Service>,
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

    /// The services the flow opens to destination network `dst` (one of
    /// `destinations`, or a network inside one): all of `services`, unless
    /// the row gives its destinations different services; then those of
    /// every destination entry holding `dst` (a server listed under two zones
    /// receives both zones' services). Empty when no destination holds `dst`.
    pub fn services_to(&self, dst: &IpNet) -> Vec<Service> {
        if self.destination_services.is_empty() {
            return if self.destinations.iter().any(|d| d.contains(dst)) {
                self.services.clone()
            } else {
                Vec::new()
            };
        }
        self.services
            .iter()
            .filter(|s| {
                self.destination_services.iter().any(|d| {
                    d.services.contains(s) && d.destinations.iter().any(|n| n.contains(dst))
                })
            })
            .copied()
            .collect()
    }

    /// Every (source, destination, services) this flow opens: the
    /// [`network_pairs`](Self::network_pairs), each with exactly the services
    /// its destination receives ([`services_to`](Self::services_to)).
    pub fn paths(&self) -> Vec<(IpNet, IpNet, Vec<Service>)> {
        self.network_pairs()
            .into_iter()
            .map(|(s, d)| {
                let svcs = self.services_to(&d);
                (s, d, svcs)
            })
            .filter(|(_, _, svcs)| !svcs.is_empty())
            .collect()
    }

    /// Whether this flow lets `src` reach `dst` with `protocol` (TCP or UDP)
    /// on destination `port`, giving each destination only its own services
    /// (see [`paths`](Self::paths)). A service of protocol `any` admits every
    /// port; ICMP services admit no TCP or UDP port.
    pub fn admits(&self, src: IpAddr, dst: IpAddr, protocol: Protocol, port: u16) -> bool {
        self.paths().iter().any(|(s, d, svcs)| {
            s.contains(&src)
                && d.contains(&dst)
                && svcs.iter().any(|sv| match sv.protocol {
                    Protocol::Any => true,
                    Protocol::Icmp => false,
                    p => p == protocol && (sv.ports.first..=sv.ports.last).contains(&port),
                })
        })
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
    /// The catalog's protected zones that the site gives addresses: the
    /// machines the firewall is for (NSX scopes its policy to them).
    #[serde(skip)]
    pub protected_zones: Vec<String>,
    /// Flows that would apply but the site disabled (`disable:`), in catalog
    /// order; none of them is in `flows`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disabled: Vec<DisabledFlow>,
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

    /// The same flows with every flow whose destinations receive different
    /// services split into one flow per destination (same id and purpose,
    /// that destination's networks and services), so that each flow's
    /// destinations × services is exactly what it opens. For code that pairs
    /// `destinations` with `services` directly.
    pub fn split_by_destination(&self) -> ResolvedSite {
        let mut flows = Vec::new();
        for f in &self.flows {
            if f.destination_services.is_empty() {
                flows.push(f.clone());
                continue;
            }
            for d in &f.destination_services {
                flows.push(ResolvedFlow {
                    destinations: d.destinations.clone(),
                    services: d.services.clone(),
                    destination_zones: vec![d.zone.clone()],
                    destination_services: Vec::new(),
                    ..f.clone()
                });
            }
        }
        ResolvedSite {
            site: self.site.clone(),
            catalog: self.catalog.clone(),
            flows,
            protected_zones: self.protected_zones.clone(),
            disabled: self.disabled.clone(),
        }
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
    /// deny rows last; flows the site disables are left out.
    pub fn applicable_flows<'a>(&'a self, catalog: &'a Catalog) -> Vec<&'a FlowSpec> {
        self.flows_before_disable(catalog)
            .into_iter()
            .filter(|f| !self.disable.contains(&f.id))
            .collect()
    }

    /// [`applicable_flows`](Self::applicable_flows) before `disable:` applies.
    pub(crate) fn flows_before_disable<'a>(&'a self, catalog: &'a Catalog) -> Vec<&'a FlowSpec> {
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
            EndpointRef::ClusterCidr => self.tkg.cluster_cidrs(),
            EndpointRef::ClusterCidrFirstHost => {
                self.tkg.cluster_cidrs().iter().map(first_host).collect()
            }
            EndpointRef::ServiceCidrFirstHost => {
                self.tkg.service_cidrs().iter().map(first_host).collect()
            }
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

    /// Resolve every applicable flow to concrete networks and services, with
    /// the site's `disable:` and `narrow:` applied.
    pub fn resolve(&self) -> ResolvedSite {
        let catalog = self.catalog();
        let flows = self
            .applicable_flows(&catalog)
            .into_iter()
            .map(|f| {
                let flow = self.resolve_flow(&catalog, f);
                match self.narrow.get(&f.id) {
                    Some(n) if f.action == FlowAction::Allow => {
                        let (s, d, v) = self.narrowing_inputs(&catalog, n);
                        narrow_flow(&flow, s.as_deref(), d.as_deref(), v.as_deref()).0
                    }
                    _ => flow,
                }
            })
            .collect();
        let disabled = self
            .flows_before_disable(&catalog)
            .into_iter()
            .filter(|f| self.disable.contains(&f.id))
            .map(|f| DisabledFlow {
                id: f.id.clone(),
                purpose: f.purpose.clone(),
            })
            .collect();
        let protected_zones = catalog
            .protected_zones
            .iter()
            .filter(|z| self.zones.get(*z).is_some_and(|n| !n.is_empty()))
            .cloned()
            .collect();
        ResolvedSite {
            site: self.name.clone(),
            catalog: format!("{}-{}", catalog.name, catalog.version),
            flows,
            protected_zones,
            disabled,
        }
    }

    /// A narrowing's entries resolved: (label, networks) per `from:` and
    /// `to:` entry, and the services of each `services:` entry.
    #[allow(clippy::type_complexity)]
    pub(crate) fn narrowing_inputs(
        &self,
        catalog: &Catalog,
        n: &Narrowing,
    ) -> (
        Option<Vec<(String, Vec<IpNet>)>>,
        Option<Vec<(String, Vec<IpNet>)>>,
        Option<Vec<Vec<Service>>>,
    ) {
        let ends = |list: &Vec<EndpointRef>| {
            list.iter()
                .map(|e| (endpoint_label(e), self.resolve_endpoint(e)))
                .collect::<Vec<_>>()
        };
        (
            n.sources.as_ref().map(ends),
            n.destinations.as_ref().map(ends),
            n.services.as_ref().map(|list| {
                list.iter()
                    .map(|s| self.resolve_service(catalog, s))
                    .collect()
            }),
        )
    }

    /// One flow row resolved against the site, before any narrowing.
    pub(crate) fn resolve_flow(&self, catalog: &Catalog, f: &FlowSpec) -> ResolvedFlow {
        let mut sources = UniqueNets::default();
        let mut source_zones = Vec::new();
        for e in &f.sources {
            sources.extend(self.resolve_endpoint(e));
            source_zones.push(endpoint_label(e));
        }
        let mut destinations = UniqueNets::default();
        let mut destination_zones = Vec::new();
        for e in &f.destinations {
            destinations.extend(self.resolve_endpoint(e));
            destination_zones.push(endpoint_label(e));
        }
        let resolve_all = |specs: &[ServiceSpec]| {
            let mut services: Vec<Service> = Vec::new();
            for s in specs {
                for svc in self.resolve_service(catalog, s) {
                    if !services.contains(&svc) {
                        services.push(svc);
                    }
                }
            }
            services
        };
        let services = resolve_all(&f.services);
        let destination_services = if f.destination_services.is_empty() {
            Vec::new()
        } else {
            f.destinations
                .iter()
                .map(|e| {
                    let given = f
                        .destination_services
                        .iter()
                        .find(|(d, _)| d == e)
                        .map(|(_, specs)| resolve_all(specs))
                        .unwrap_or_else(|| services.clone());
                    DestinationServices {
                        zone: endpoint_label(e),
                        destinations: self.resolve_endpoint(e),
                        // In the flow's order, so output is stable.
                        services: services
                            .iter()
                            .filter(|s| given.contains(s))
                            .copied()
                            .collect(),
                    }
                })
                .collect()
        };
        ResolvedFlow {
            id: f.id.clone(),
            purpose: f.purpose.clone(),
            sources: sources.into_vec(),
            destinations: destinations.into_vec(),
            services,
            action: f.action,
            same_network: f.same_network,
            source_zones,
            destination_zones,
            destination_services,
            narrowed: None,
        }
    }
}

/// Networks in first-seen order without duplicates; linear in the number of
/// networks, so sites with thousands of workload networks resolve quickly.
#[derive(Default)]
pub(crate) struct UniqueNets {
    seen: std::collections::HashSet<IpNet>,
    order: Vec<IpNet>,
}

impl UniqueNets {
    pub(crate) fn push(&mut self, n: IpNet) {
        if self.seen.insert(n) {
            self.order.push(n);
        }
    }

    pub(crate) fn extend(&mut self, nets: impl IntoIterator<Item = IpNet>) {
        for n in nets {
            self.push(n);
        }
    }

    pub(crate) fn into_vec(self) -> Vec<IpNet> {
        self.order
    }
}

pub(crate) fn endpoint_label(e: &EndpointRef) -> String {
    match e {
        EndpointRef::Zone(z) => z.clone(),
        EndpointRef::Any => "any".into(),
        EndpointRef::ClusterCidr => "cluster_cidr".into(),
        EndpointRef::ClusterCidrFirstHost => "cluster_cidr.first_host".into(),
        EndpointRef::ServiceCidrFirstHost => "service_cidr.first_host".into(),
        EndpointRef::Literal(n) => n.to_string(),
    }
}
