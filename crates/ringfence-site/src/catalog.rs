//! The flow catalog: TKG's required firewall paths as data.
//!
//! The catalog file is YAML embedded at build time. Site files reuse the same
//! row shape for their `extra_flows`, so one parser ([`parse_flow_rows`])
//! serves both and reports problems with their line and column.

use crate::resolve::{FlowAction, PortRange, Protocol};
use crate::site::{AviMode, Identity, TkgSettings};
use ipnet::IpNet;
use ringfence_diag::{InputError, InputErrors};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// The embedded TKG 1.5 catalog, as shipped.
pub const TKG_1_5_YAML: &str = include_str!("../../../catalog/tkg-1.5.yaml");

/// Where a flow's traffic comes from or goes to, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointRef {
    /// Every network the site lists under this zone.
    Zone(String),
    /// Every address, both families.
    Any,
    /// The cluster's pod network (`CLUSTER_CIDR`).
    ClusterCidr,
    /// The first host address of `CLUSTER_CIDR`.
    ClusterCidrFirstHost,
    /// The first host address of `SERVICE_CIDR` (the API service address).
    ServiceCidrFirstHost,
    /// A literal address or network (extra flows only).
    Literal(IpNet),
}

impl EndpointRef {
    /// Parse the catalog syntax: a zone name, `any`, `@cluster_cidr`,
    /// `@cluster_cidr.first_host`, `@service_cidr.first_host`, or an address.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "any" => return Ok(EndpointRef::Any),
            "@cluster_cidr" => return Ok(EndpointRef::ClusterCidr),
            "@cluster_cidr.first_host" => return Ok(EndpointRef::ClusterCidrFirstHost),
            "@service_cidr.first_host" => return Ok(EndpointRef::ServiceCidrFirstHost),
            _ => {}
        }
        if s.starts_with('@') {
            return Err(format!(
                "unknown reference `{s}`; expected @cluster_cidr, @cluster_cidr.first_host or @service_cidr.first_host"
            ));
        }
        if s.contains(['.', ':', '/']) && s.chars().next().is_some_and(|c| c.is_ascii_hexdigit()) {
            if let Ok(net) = crate::site::parse_address(s) {
                return Ok(EndpointRef::Literal(net));
            }
        }
        if s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "`{s}` is neither a zone name, `any`, nor an address or network"
            ));
        }
        Ok(EndpointRef::Zone(s.to_string()))
    }

    /// The zone this reference names, if it names one.
    pub fn zone(&self) -> Option<&str> {
        match self {
            EndpointRef::Zone(z) => Some(z),
            _ => None,
        }
    }
}

/// Which ports a service covers, before resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec {
    /// A fixed port or range.
    Range(PortRange),
    /// The API server port after TKG's overrides.
    ApiServer,
}

/// A service in a flow row: a named service or an explicit protocol and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceSpec {
    /// A service from the catalog's `services` table (SSH, HTTPS, DNS, ...).
    Named(String),
    /// An explicit protocol and port set.
    Explicit {
        /// The protocol.
        protocol: Protocol,
        /// The ports.
        ports: PortSpec,
    },
}

/// When a flow applies. Every field that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// NSX serves DHCP (`tkg.nsx`).
    #[serde(default)]
    pub nsx: Option<bool>,
    /// One of these identity providers.
    #[serde(default)]
    pub identity: Option<Vec<Identity>>,
    /// NSX Advanced Load Balancer is enabled.
    #[serde(default, rename = "avi.enabled")]
    pub avi_enabled: Option<bool>,
    /// The Avi ingress mode.
    #[serde(default, rename = "avi.mode")]
    pub avi_mode: Option<AviMode>,
    /// Avi uses an NSX-T cloud.
    #[serde(default, rename = "avi.nsxt_cloud")]
    pub avi_nsxt_cloud: Option<bool>,
}

impl Condition {
    /// Whether the deployment's settings satisfy the condition.
    pub fn holds(&self, tkg: &TkgSettings) -> bool {
        self.nsx.is_none_or(|v| v == tkg.nsx)
            && self
                .identity
                .as_ref()
                .is_none_or(|ids| ids.contains(&tkg.identity))
            && self.avi_enabled.is_none_or(|v| v == tkg.avi.enabled)
            && self.avi_mode.is_none_or(|m| m == tkg.avi.mode)
            && self.avi_nsxt_cloud.is_none_or(|v| v == tkg.avi.nsxt_cloud)
    }

    /// The condition in site-file terms, for messages:
    /// `tkg.identity is oidc or ldap and tkg.avi.enabled is true`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.nsx {
            parts.push(format!("tkg.nsx is {v}"));
        }
        if let Some(ids) = &self.identity {
            let names: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
            parts.push(format!("tkg.identity is {}", names.join(" or ")));
        }
        if let Some(v) = self.avi_enabled {
            parts.push(format!("tkg.avi.enabled is {v}"));
        }
        if let Some(m) = self.avi_mode {
            parts.push(format!("tkg.avi.mode is {}", m.as_str()));
        }
        if let Some(v) = self.avi_nsxt_cloud {
            parts.push(format!("tkg.avi.nsxt_cloud is {v}"));
        }
        if parts.is_empty() {
            "always".to_string()
        } else {
            parts.join(" and ")
        }
    }

    /// Whether no field is set (the flow always applies).
    pub fn is_always(&self) -> bool {
        *self == Condition::default()
    }
}

/// One row of the catalog (or one of a site's extra flows), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowSpec {
    /// The row's name in the TKG table, e.g. `workload-to-mgmt`.
    pub id: String,
    /// Why the flow exists.
    pub purpose: String,
    /// When the flow applies.
    pub when: Condition,
    /// Where the traffic starts.
    pub sources: Vec<EndpointRef>,
    /// Where it goes.
    pub destinations: Vec<EndpointRef>,
    /// What it carries.
    pub services: Vec<ServiceSpec>,
    /// Allow, or deny (the closing deny-all row).
    pub action: FlowAction,
    /// Each source network only to itself (allow-wl-subnet: not between two
    /// different workload networks).
    pub same_network: bool,
    /// Destinations that receive only some of `services`
    /// (`destination_services` in the row): `dns-ntp-outbound` gives the DNS
    /// servers DNS and the NTP servers NTP, never the cross product. A
    /// destination not listed here receives every service of the row.
    pub destination_services: Vec<(EndpointRef, Vec<ServiceSpec>)>,
    /// 1-based line where the row starts, for error messages.
    pub line: u64,
}

/// The catalog: zones, named services and flow rows.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Catalog family, e.g. `tkg`.
    pub name: String,
    /// Which product version it describes, e.g. `1.5`.
    pub version: String,
    /// Zone names with their descriptions.
    pub zones: BTreeMap<String, String>,
    /// Named services: name → (protocol, ports) entries.
    pub services: BTreeMap<String, Vec<(Protocol, PortRange)>>,
    /// Flow rows, in the table's order.
    pub flows: Vec<FlowSpec>,
    /// The zones whose machines the site's firewall is for (TKG's own
    /// nodes, jumpbox and bootstrap machine). NSX applies the generated
    /// policy only to their groups; shared services such as DNS or vCenter
    /// are left out so their other clients are not cut off.
    pub protected_zones: Vec<String>,
}

/// Serde shape of one flow row.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlow {
    id: Spanned<String>,
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    when: Option<Condition>,
    sources: Vec<Spanned<String>>,
    destinations: Vec<Spanned<String>>,
    services: Vec<Spanned<RawService>>,
    #[serde(default)]
    action: Option<FlowAction>,
    #[serde(default)]
    same_network: bool,
    #[serde(default)]
    destination_services: Option<Spanned<SpannedMap<Vec<Spanned<RawService>>>>>,
}

/// A YAML mapping that keeps the location of each key, in file order.
#[derive(Debug)]
pub(crate) struct SpannedMap<V>(pub(crate) Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SpannedMap<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Vis<V> {
            type Value = SpannedMap<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<SpannedMap<V>, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<Spanned<String>>()? {
                    out.push((k, m.next_value()?));
                }
                Ok(SpannedMap(out))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

impl RawFlow {
    pub(crate) fn id_spanned(&self) -> &Spanned<String> {
        &self.id
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawService {
    Named(String),
    Explicit { protocol: Protocol, ports: Scalar },
}

/// A YAML scalar that may be written as a number or a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    pub(crate) fn as_text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    catalog: String,
    version: Scalar,
    zones: BTreeMap<String, String>,
    services: BTreeMap<String, Vec<RawNamedEntry>>,
    protected_zones: Vec<String>,
    flows: Vec<RawFlow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamedEntry {
    protocol: Protocol,
    ports: Scalar,
}

/// Parse a port value: a number, `a-b`, `any`, or `api_server` (when allowed).
pub(crate) fn parse_port_spec(text: &str, allow_api: bool) -> Result<PortSpec, String> {
    let t = text.trim();
    if t == "api_server" && allow_api {
        return Ok(PortSpec::ApiServer);
    }
    if t == "any" {
        return Ok(PortSpec::Range(PortRange::ANY));
    }
    let port = |s: &str| -> Result<u16, String> {
        match s.trim().parse::<u32>() {
            Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
            Ok(p) => Err(format!("port {p} is outside 1-65535")),
            Err(_) => Err(format!(
                "`{t}` is not a port; expected a number (1-65535), a range like 30000-32767, or any"
            )),
        }
    };
    match t.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(format!("port range {a}-{b} is backwards; write {b}-{a}"));
            }
            Ok(PortSpec::Range(PortRange { first: a, last: b }))
        }
        None => {
            let p = port(t)?;
            Ok(PortSpec::Range(PortRange { first: p, last: p }))
        }
    }
}

/// Validate raw flow rows; `known_services` names the services rows may use.
pub(crate) fn convert_flows(
    file: &str,
    raw: Vec<(RawFlow, u64)>,
    known_services: &BTreeMap<String, Vec<(Protocol, PortRange)>>,
    allow_literals: bool,
) -> Result<Vec<FlowSpec>, InputErrors> {
    let mut errors = Vec::new();
    let mut flows = Vec::new();
    for (row, line) in raw {
        let mut endpoints = |list: &[Spanned<String>], what: &str| -> Vec<EndpointRef> {
            if list.is_empty() {
                errors.push(
                    InputError::at(
                        file,
                        line,
                        1,
                        format!("flow `{}` has no {what}", row.id.value),
                    )
                    .with_help(format!(
                        "list at least one zone, `any` or an address under {what}"
                    )),
                );
            }
            list.iter()
                .filter_map(|s| match EndpointRef::parse(&s.value) {
                    Ok(EndpointRef::Literal(_)) if !allow_literals => {
                        errors.push(InputError::at(
                            file,
                            s.referenced.line(),
                            s.referenced.column(),
                            format!("the catalog may not use literal address `{}`", s.value),
                        ));
                        None
                    }
                    Ok(e) => Some(e),
                    Err(msg) => {
                        errors.push(InputError::at(
                            file,
                            s.referenced.line(),
                            s.referenced.column(),
                            msg,
                        ));
                        None
                    }
                })
                .collect()
        };
        let sources = endpoints(&row.sources, "sources");
        let destinations = endpoints(&row.destinations, "destinations");
        let mut services = Vec::new();
        if row.services.is_empty() {
            errors.push(
                InputError::at(
                    file,
                    line,
                    1,
                    format!("flow `{}` has no services", row.id.value),
                )
                .with_help(
                    "list a named service (SSH, HTTPS, DNS, NTP, DHCP, all) or {protocol, ports}",
                ),
            );
        }
        for s in &row.services {
            if let Some(spec) = convert_service(file, s, known_services, &mut errors) {
                services.push(spec);
            }
        }
        let same_network = row.same_network;
        if same_network
            && row
                .sources
                .iter()
                .map(|s| &s.value)
                .ne(row.destinations.iter().map(|s| &s.value))
        {
            errors.push(
                InputError::at(file, line, 1, format!("flow `{}` sets same_network but its sources and destinations differ", row.id.value))
                    .with_help("same_network means each source network only to itself: list the same zones on both sides"),
            );
        }
        let destination_services = match &row.destination_services {
            None => Vec::new(),
            Some(map) => convert_destination_services(
                file,
                &row,
                map,
                &services,
                known_services,
                &mut errors,
            ),
        };
        flows.push(FlowSpec {
            id: row.id.value.clone(),
            purpose: row.purpose.clone().unwrap_or_default(),
            when: row.when.clone().unwrap_or_default(),
            sources,
            destinations,
            services,
            action: row.action.unwrap_or(FlowAction::Allow),
            same_network,
            destination_services,
            line,
        });
    }
    if errors.is_empty() {
        Ok(flows)
    } else {
        Err(InputErrors(errors))
    }
}

/// Validate one service of a row: a known named service, or a protocol with
/// ports that protocol has.
pub(crate) fn convert_service(
    file: &str,
    s: &Spanned<RawService>,
    known_services: &BTreeMap<String, Vec<(Protocol, PortRange)>>,
    errors: &mut Vec<InputError>,
) -> Option<ServiceSpec> {
    let (l, c) = (s.referenced.line(), s.referenced.column());
    match &s.value {
        RawService::Named(name) => {
            if known_services.contains_key(name) {
                return Some(ServiceSpec::Named(name.clone()));
            }
            let e = InputError::at(file, l, c, format!("unknown service `{name}`"));
            let names = known_services.keys().map(String::as_str);
            errors.push(match ringfence_diag::closest(name, names) {
                Some(best) => e.with_help(format!("did you mean `{best}`?")),
                None => e.with_help(format!(
                    "use one of {} or write {{protocol: tcp, ports: \"8443\"}}",
                    known_services
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            });
            None
        }
        RawService::Explicit { protocol, ports } => match parse_port_spec(&ports.as_text(), true) {
            Ok(p) => {
                let ranged = !matches!(p, PortSpec::Range(r) if r == PortRange::ANY);
                if ranged && matches!(protocol, Protocol::Any | Protocol::Icmp) {
                    errors.push(
                        InputError::at(
                            file,
                            l,
                            c,
                            format!("protocol `{}` has no ports", protocol.as_str()),
                        )
                        .with_help("use ports: any, or protocol tcp or udp"),
                    );
                    None
                } else {
                    Some(ServiceSpec::Explicit {
                        protocol: *protocol,
                        ports: p,
                    })
                }
            }
            Err(msg) => {
                errors.push(InputError::at(file, l, c, msg));
                None
            }
        },
    }
}

/// Validate a row's `destination_services`: each key is one of the row's
/// destinations (written the same way), each service one of the row's
/// services, and every service of the row goes to some destination (so
/// `services` stays exactly the union).
fn convert_destination_services(
    file: &str,
    row: &RawFlow,
    map: &Spanned<SpannedMap<Vec<Spanned<RawService>>>>,
    services: &[ServiceSpec],
    known_services: &BTreeMap<String, Vec<(Protocol, PortRange)>>,
    errors: &mut Vec<InputError>,
) -> Vec<(EndpointRef, Vec<ServiceSpec>)> {
    let id = &row.id.value;
    let (ml, mc) = (map.referenced.line(), map.referenced.column());
    if row.same_network {
        errors.push(
            InputError::at(
                file,
                ml,
                mc,
                format!("flow `{id}` sets same_network, which cannot also give its destinations different services"),
            )
            .with_help("split the row into one flow per service set"),
        );
        return Vec::new();
    }
    let written: Vec<&str> = row.destinations.iter().map(|d| d.value.as_str()).collect();
    let mut out: Vec<(EndpointRef, Vec<ServiceSpec>)> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    for (key, list) in &map.value.0 {
        let (l, c) = (key.referenced.line(), key.referenced.column());
        if !written.contains(&key.value.as_str()) {
            let e = InputError::at(
                file,
                l,
                c,
                format!("`{}` is not a destination of flow `{id}`", key.value),
            );
            errors.push(
                match ringfence_diag::closest(&key.value, written.iter().copied()) {
                    Some(best) => e.with_help(format!("did you mean `{best}`?")),
                    None => e.with_help(format!("its destinations are: {}", written.join(", "))),
                },
            );
            continue;
        }
        if keys.contains(&key.value.as_str()) {
            continue; // the YAML reader reports duplicate keys itself
        }
        keys.push(&key.value);
        if list.is_empty() {
            errors.push(
                InputError::at(file, l, c, format!("destination `{}` of flow `{id}` gets no services", key.value))
                    .with_help("list at least one of the flow's services, or drop the destination from the flow"),
            );
            continue;
        }
        let mut given = Vec::new();
        for s in list {
            let Some(spec) = convert_service(file, s, known_services, errors) else {
                continue;
            };
            if !services.contains(&spec) {
                errors.push(
                    InputError::at(
                        file,
                        s.referenced.line(),
                        s.referenced.column(),
                        format!(
                            "service {} is not one of flow `{id}`'s services",
                            describe(&spec)
                        ),
                    )
                    .with_help(
                        "a destination may receive only services the flow lists under services:",
                    ),
                );
                continue;
            }
            if !given.contains(&spec) {
                given.push(spec);
            }
        }
        if let Ok(e) = EndpointRef::parse(&key.value) {
            out.push((e, given));
        }
    }
    // Every service must reach some destination: an unlisted destination gets all.
    let all_listed = written.iter().all(|w| keys.contains(w));
    if all_listed {
        for s in services {
            if !out.iter().any(|(_, g)| g.contains(s)) {
                errors.push(
                    InputError::at(
                        file,
                        ml,
                        mc,
                        format!("service {} of flow `{id}` goes to none of its destinations", describe(s)),
                    )
                    .with_help("give it to a destination under destination_services, or drop it from services:"),
                );
            }
        }
    }
    out
}

/// A service as a person wrote it, for messages.
fn describe(s: &ServiceSpec) -> String {
    match s {
        ServiceSpec::Named(n) => format!("`{n}`"),
        ServiceSpec::Explicit { protocol, ports } => format!(
            "`{}/{}`",
            protocol.as_str(),
            match ports {
                PortSpec::Range(r) => r.to_string(),
                PortSpec::ApiServer => "api_server".into(),
            }
        ),
    }
}

impl Catalog {
    /// Load the embedded catalog for a TKG version (`"1.5"`).
    pub fn for_version(version: &str) -> Option<Catalog> {
        match version {
            "1.5" => Some(
                Catalog::parse(TKG_1_5_YAML, "catalog/tkg-1.5.yaml")
                    .expect("the embedded catalog is validated by the test suite"),
            ),
            _ => None,
        }
    }

    /// Versions with an embedded catalog.
    pub fn versions() -> &'static [&'static str] {
        &["1.5"]
    }

    /// Parse a catalog file.
    pub fn parse(text: &str, file: &str) -> Result<Catalog, InputErrors> {
        let raw: RawCatalog = crate::site::from_yaml(text, file)?;
        let mut services = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, entries) in raw.services {
            let mut out = Vec::new();
            for e in entries {
                match parse_port_spec(&e.ports.as_text(), false) {
                    Ok(PortSpec::Range(r)) => out.push((e.protocol, r)),
                    Ok(PortSpec::ApiServer) => unreachable!("api_server not allowed here"),
                    Err(m) => errors.push(InputError::whole(file, format!("service {name}: {m}"))),
                }
            }
            services.insert(name, out);
        }
        if !errors.is_empty() {
            return Err(InputErrors(errors));
        }
        let rows = raw
            .flows
            .into_iter()
            .map(|f| {
                let line = f.id.referenced.line();
                (f, line)
            })
            .collect();
        let flows = convert_flows(file, rows, &services, false)?;
        let catalog = Catalog {
            name: raw.catalog,
            version: raw.version.as_text(),
            zones: raw.zones,
            services,
            flows,
            protected_zones: raw.protected_zones,
        };
        let mut errs = Vec::new();
        for z in &catalog.protected_zones {
            if !catalog.zones.contains_key(z) {
                errs.push(InputError::whole(
                    file,
                    format!("protected_zones names `{z}`, which the catalog does not declare"),
                ));
            }
        }
        for f in &catalog.flows {
            for z in f
                .sources
                .iter()
                .chain(&f.destinations)
                .filter_map(EndpointRef::zone)
            {
                if !catalog.zones.contains_key(z) {
                    errs.push(InputError::at_line(
                        file,
                        f.line,
                        format!(
                            "flow `{}` uses zone `{z}`, which the catalog does not declare",
                            f.id
                        ),
                    ));
                }
            }
        }
        if errs.is_empty() {
            Ok(catalog)
        } else {
            Err(InputErrors(errs))
        }
    }
}
