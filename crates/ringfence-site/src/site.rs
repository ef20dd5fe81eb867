//! Site files: one deployment's settings and the addresses of its zones.
//!
//! Parsing keeps the line and column of every value, so validation can name
//! exactly where a problem is and say how to fix it.

use crate::catalog::{
    convert_flows, convert_service, Catalog, EndpointRef, FlowSpec, RawFlow, RawService, Scalar,
    SpannedMap,
};
use crate::shape::{Narrowing, Problem};
use ipnet::IpNet;
use ringfence_diag::{closest, InputError, InputErrors};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

/// The embedded example site (`examples/site.yaml`): every feature a typical
/// TKG site uses, with addresses in 198.18.0.0/15.
pub const EXAMPLE_SITE_YAML: &str = include_str!("../../../examples/site.yaml");

/// Which identity provider the deployment uses (`IDENTITY_MANAGEMENT_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Identity {
    /// No external identity provider.
    #[default]
    None,
    /// OIDC through Pinniped.
    Oidc,
    /// LDAP through Pinniped.
    Ldap,
}

impl Identity {
    /// The name as written in site files.
    pub fn as_str(self) -> &'static str {
        match self {
            Identity::None => "none",
            Identity::Oidc => "oidc",
            Identity::Ldap => "ldap",
        }
    }
}

/// How NSX Advanced Load Balancer reaches workload pods (`AVI_INGRESS_SERVICE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AviMode {
    /// Through NodePort services (TKG's default).
    #[default]
    Nodeport,
    /// Straight to pods with NodePortLocal.
    Nodeportlocal,
}

impl AviMode {
    /// The name as written in site files.
    pub fn as_str(self) -> &'static str {
        match self {
            AviMode::Nodeport => "nodeport",
            AviMode::Nodeportlocal => "nodeportlocal",
        }
    }
}

/// NSX Advanced Load Balancer (Avi) settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AviSettings {
    /// Avi is deployed (`AVI_ENABLE`).
    pub enabled: bool,
    /// Ingress mode.
    pub mode: AviMode,
    /// Avi uses an NSX-T cloud connector.
    pub nsxt_cloud: bool,
    /// Avi provides the control-plane endpoint (`AVI_CONTROL_PLANE_HA_PROVIDER`).
    pub control_plane_ha: bool,
    /// `VSPHERE_CONTROL_PLANE_ENDPOINT_PORT`, used when Avi provides the endpoint.
    pub control_plane_endpoint_port: Option<u16>,
}

/// The deployment settings that decide which flows apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TkgSettings {
    /// Catalog version, e.g. `1.5`.
    pub version: String,
    /// `CLUSTER_API_SERVER_PORT` (default 6443).
    pub api_server_port: u16,
    /// `SERVICE_CIDR` (its first network when dual-stack).
    pub service_cidr: IpNet,
    /// The other family's service network of a dual-stack cluster
    /// (`SERVICE_CIDR: 100.64.0.0/13,fd00:100:64::/108`).
    pub service_cidr_secondary: Option<IpNet>,
    /// `CLUSTER_CIDR` (its first network when dual-stack).
    pub cluster_cidr: IpNet,
    /// The other family's pod network of a dual-stack cluster.
    pub cluster_cidr_secondary: Option<IpNet>,
    /// NSX serves DHCP.
    pub nsx: bool,
    /// Identity provider.
    pub identity: Identity,
    /// NSX Advanced Load Balancer.
    pub avi: AviSettings,
}

impl TkgSettings {
    /// Every service network: one, or one per family when dual-stack.
    pub fn service_cidrs(&self) -> Vec<IpNet> {
        std::iter::once(self.service_cidr)
            .chain(self.service_cidr_secondary)
            .collect()
    }

    /// Every pod network: one, or one per family when dual-stack.
    pub fn cluster_cidrs(&self) -> Vec<IpNet> {
        std::iter::once(self.cluster_cidr)
            .chain(self.cluster_cidr_secondary)
            .collect()
    }
}

/// A validated site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The site's name.
    pub name: String,
    /// Deployment settings.
    pub tkg: TkgSettings,
    /// Zone name → networks (hosts as /32 or /128).
    pub zones: BTreeMap<String, Vec<IpNet>>,
    /// Site-specific flows, same shape as catalog rows.
    pub extra_flows: Vec<FlowSpec>,
    /// Ids of flows the site drops (`disable:`), catalog rows or extra flows.
    pub disable: Vec<String>,
    /// Flow id → how the site narrows it (`narrow:`); validated to keep only
    /// a subset of the flow when the site loads.
    pub narrow: BTreeMap<String, Narrowing>,
    /// The zone whose addresses are the host the verified ruleset runs on
    /// (`host_zone:`), if the site says so. Validated at load time: a zone
    /// the site lists, holding single addresses only.
    pub host_zone: Option<String>,
    /// Which interface holds each host address that `host_interfaces:`
    /// places (address → interface name); the host zone's other addresses
    /// are on some interface. Validated at load time: addresses of the host
    /// zone, each under one valid interface name.
    pub host_interfaces: BTreeMap<IpAddr, String>,
    /// The file it came from, as named by the user.
    pub source: String,
}

impl Site {
    /// The host's own addresses from `host_zone:` (empty when the site names
    /// no host zone), each with the interface `host_interfaces:` puts it on
    /// (`None`: some interface of the host). Packets to these go to the
    /// host's INPUT path, the rest are forwarded, as with `--local
    /// ADDR[%IFACE]`.
    pub fn host_addresses(&self) -> Vec<(IpAddr, Option<String>)> {
        self.host_zone
            .as_ref()
            .and_then(|z| self.zones.get(z))
            .map(|nets| {
                nets.iter()
                    .map(|n| (n.addr(), self.host_interfaces.get(&n.addr()).cloned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The catalog for this site's TKG version (validated at load time).
    pub fn catalog(&self) -> Catalog {
        Catalog::for_version(&self.tkg.version).expect("version checked when the site was loaded")
    }
}

// ---------- raw serde shapes ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: Spanned<String>,
    tkg: Spanned<RawTkg>,
    #[serde(default)]
    zones: Option<Spanned<ZoneMap>>,
    #[serde(default)]
    extra_flows: Option<Vec<RawFlow>>,
    #[serde(default)]
    disable: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    narrow: Option<SpannedMap<Spanned<RawNarrowing>>>,
    #[serde(default)]
    host_zone: Option<Spanned<String>>,
    #[serde(default)]
    host_interfaces: Option<Spanned<SpannedMap<Vec<Spanned<String>>>>>,
}

/// One entry under `narrow:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNarrowing {
    #[serde(default)]
    from: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    to: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    services: Option<Vec<Spanned<RawService>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTkg {
    version: Spanned<Scalar>,
    #[serde(default)]
    api_server_port: Option<Spanned<i64>>,
    #[serde(default)]
    service_cidr: Option<Spanned<String>>,
    #[serde(default)]
    cluster_cidr: Option<Spanned<String>>,
    #[serde(default)]
    nsx: bool,
    #[serde(default)]
    identity: Identity,
    #[serde(default)]
    avi: Option<RawAvi>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAvi {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    mode: AviMode,
    #[serde(default)]
    nsxt_cloud: bool,
    #[serde(default)]
    control_plane_ha: bool,
    #[serde(default)]
    control_plane_endpoint_port: Option<Spanned<i64>>,
}

/// Zones keep the location of each key as well as each address.
#[derive(Debug, Default)]
struct ZoneMap(Vec<(Spanned<String>, Vec<Spanned<String>>)>);

impl<'de> Deserialize<'de> for ZoneMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ZoneMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of zone names to lists of addresses or networks")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<ZoneMap, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<Spanned<String>>()? {
                    let v: Option<Vec<Spanned<String>>> = m.next_value()?;
                    out.push((k, v.unwrap_or_default()));
                }
                Ok(ZoneMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Deserialize YAML, turning serde-saphyr's error into a located [`InputError`]
/// with a "did you mean" hint for unknown keys.
pub(crate) fn from_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, InputErrors> {
    serde_saphyr::from_str::<T>(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let full = e.without_snippet().to_string();
        let mut message = full
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .trim()
            .to_string();
        // The position is in our prefix already; drop serde-saphyr's copy.
        if let Some(i) = message.rfind(" at line ") {
            message.truncate(i);
        }
        if message.starts_with("budget breached")
            || message.starts_with("expected string scalar")
            || message == "expected sequence start"
        {
            message = ringfence_diag::yaml_message(&message);
        }
        let mut err = if line == 0 {
            InputError::whole(file, message.clone())
        } else {
            InputError::at(file, line, column, message.clone())
        };
        if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
            let key = rest.split(',').next().unwrap_or(rest).trim().to_string();
            message = format!("duplicate key `{key}`");
            err = InputError::at(file, line.max(1), column.max(1), message.clone())
                .with_help("each key may appear once in a mapping: merge the two entries");
        } else if message.contains("untagged enum Scalar") {
            message =
                "expected a single value (text, a number, or true/false), not a list or mapping"
                    .to_string();
            err = InputError::at(file, line.max(1), column.max(1), message.clone());
        } else if message == "expected mapping start" {
            message = "expected a mapping of `key: value` entries here".to_string();
            err = InputError::at(file, line.max(1), column.max(1), message.clone());
        }
        if let Some(help) = unknown_field_help(&message) {
            err = err.with_help(help);
        }
        InputErrors(vec![err])
    })
}

/// For "unknown field `x`, expected one of `a`, `b`", suggest the closest key.
fn unknown_field_help(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    let (field, expected) = rest.split_once('`')?;
    let expected = expected.split("expected one of ").nth(1).unwrap_or("");
    let options: Vec<&str> = expected
        .split(',')
        .map(|o| o.trim().trim_matches('`'))
        .filter(|o| !o.is_empty())
        .collect();
    match closest(field, options.iter().copied()) {
        Some(best) => Some(format!("did you mean `{best}`?")),
        None if !options.is_empty() => Some(format!("valid keys here: {}", options.join(", "))),
        None => None,
    }
}

/// Parse an address or network; hosts become /32 or /128. Host bits set in a
/// network are an error that names the network probably meant.
pub fn parse_address(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    match s.parse::<IpNet>() {
        Ok(net) if net.trunc() == net => Ok(net),
        Ok(net) => Err(format!(
            "`{s}` has host bits set; did you mean {}?",
            net.trunc()
        )),
        Err(_) if looks_like_hostname(s) => Err(format!(
            "`{s}` looks like a hostname, but zones need addresses; resolve it (e.g. `getent hosts {s}`) and list the address(es)"
        )),
        Err(_) => Err(format!(
            "`{s}` is not an IPv4/IPv6 address or network (expected e.g. 198.18.10.0/24 or 198.18.1.10)"
        )),
    }
}

fn looks_like_hostname(s: &str) -> bool {
    s.contains('.')
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn port_value(file: &str, v: &Spanned<i64>, what: &str) -> Result<u16, InputError> {
    match u16::try_from(v.value) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(InputError::at(
            file,
            v.referenced.line(),
            v.referenced.column(),
            format!("{what} {} is not a valid port", v.value),
        )
        .with_help("use a TCP port between 1 and 65535")),
    }
}

/// A CIDR setting: one network, or two of different families separated by a
/// comma (dual-stack, as TKG writes it). Errors are located at the value;
/// the default stands in for a bad value so validation can go on.
fn cidr_pair(
    file: &str,
    v: &Option<Spanned<String>>,
    default: &str,
    what: &str,
    errors: &mut Vec<InputError>,
) -> (IpNet, Option<IpNet>) {
    let fallback: IpNet = default.parse().expect("valid default");
    let Some(s) = v else {
        return (fallback, None);
    };
    let (l, c) = (s.referenced.line(), s.referenced.column());
    let parts: Vec<&str> = s.value.split(',').map(str::trim).collect();
    if parts.len() > 2 {
        errors.push(
            InputError::at(file, l, c, format!("{what} lists {} networks", parts.len()))
                .with_help(format!("give one network, or two of different families for dual-stack: {default},fd00::/64")),
        );
        return (fallback, None);
    }
    let mut nets = Vec::new();
    for p in &parts {
        match parse_address(p) {
            Ok(n) => nets.push(n),
            Err(msg) => {
                errors.push(
                    InputError::at(file, l, c, msg)
                        .with_help(format!("{what} must be a network such as {default}, or two of different families separated by a comma")),
                );
                return (fallback, None);
            }
        }
    }
    match nets.as_slice() {
        [a] => (*a, None),
        [a, b] if crate::resolve::same_family(a, b) => {
            errors.push(
                InputError::at(
                    file,
                    l,
                    c,
                    format!("{what} gives two networks of the same family ({a} and {b})"),
                )
                .with_help(
                    "a dual-stack cluster has one IPv4 and one IPv6 network; keep one of these",
                ),
            );
            (fallback, None)
        }
        [a, b] => (*a, Some(*b)),
        _ => (fallback, None),
    }
}

/// Load and validate a site file from disk.
pub fn load_site_file(path: &Path) -> Result<Site, InputErrors> {
    let name = path.display().to_string();
    let text = read_text_file(path, &name, "site file")?;
    parse_site(&text, &name)
}

/// Read a whole file as UTF-8 text, with errors that say what went wrong
/// (files over [`ringfence_diag::MAX_INPUT_BYTES`] are refused unread).
pub fn read_text_file(path: &Path, name: &str, what: &str) -> Result<String, InputError> {
    ringfence_diag::read_input(path, name, what).map_err(|mut e| {
        if e.help.as_deref() == Some("check the path") {
            e.help = Some(
                "check the path; `ringfence site example` prints a site file to start from".into(),
            );
        }
        e
    })
}

/// The embedded example site.
pub fn example_site() -> Site {
    parse_site(EXAMPLE_SITE_YAML, "examples/site.yaml")
        .expect("the embedded example site is validated by the test suite")
}

/// Parse and validate a site from YAML text; `file` names it in errors.
pub fn parse_site(text: &str, file: &str) -> Result<Site, InputErrors> {
    if text.trim().is_empty() {
        return Err(InputError::whole(file, "the site file is empty")
            .with_help("start from examples/site.yaml (`ringfence site example`)")
            .into());
    }
    let raw: RawSite = from_yaml(text, file)?;
    let mut errors: Vec<InputError> = Vec::new();

    // Settings.
    let t = &raw.tkg.value;
    let version = t.version.value.as_text();
    if Catalog::for_version(&version).is_none() {
        errors.push(
            InputError::at(
                file,
                t.version.referenced.line(),
                t.version.referenced.column(),
                format!("no catalog for TKG version `{version}`"),
            )
            .with_help(format!(
                "supported versions: {} (quote it: version: \"1.5\")",
                Catalog::versions().join(", ")
            )),
        );
    }
    let api_server_port = match &t.api_server_port {
        Some(v) => port_value(file, v, "api_server_port").unwrap_or_else(|e| {
            errors.push(e);
            6443
        }),
        None => 6443,
    };
    let (service_cidr, service_cidr_secondary) = cidr_pair(
        file,
        &t.service_cidr,
        "100.64.0.0/13",
        "service_cidr",
        &mut errors,
    );
    let (cluster_cidr, cluster_cidr_secondary) = cidr_pair(
        file,
        &t.cluster_cidr,
        "100.96.0.0/11",
        "cluster_cidr",
        &mut errors,
    );
    let avi = match &t.avi {
        None => AviSettings::default(),
        Some(a) => AviSettings {
            enabled: a.enabled,
            mode: a.mode,
            nsxt_cloud: a.nsxt_cloud,
            control_plane_ha: a.control_plane_ha,
            control_plane_endpoint_port: a.control_plane_endpoint_port.as_ref().and_then(|v| {
                port_value(file, v, "control_plane_endpoint_port")
                    .map_err(|e| errors.push(e))
                    .ok()
            }),
        },
    };
    let tkg = TkgSettings {
        version: version.clone(),
        api_server_port,
        service_cidr,
        service_cidr_secondary,
        cluster_cidr,
        cluster_cidr_secondary,
        nsx: t.nsx,
        identity: t.identity,
        avi,
    };

    // Extra flows (validated against the catalog's named services).
    let catalog = Catalog::for_version(&version);
    let extra_flows = match (&catalog, raw.extra_flows) {
        (Some(cat), Some(rows)) => {
            let rows = rows
                .into_iter()
                .map(|f| {
                    let line = f.id_line();
                    (f, line)
                })
                .collect();
            match convert_flows(file, rows, &cat.services, true) {
                Ok(f) => f,
                Err(e) => {
                    errors.extend(e.0);
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    };
    let mut extra_zones: Vec<&str> = extra_flows
        .iter()
        .flat_map(|f| f.sources.iter().chain(&f.destinations))
        .filter_map(EndpointRef::zone)
        .collect();
    // Zones of the site's own that only a narrowing uses (e.g. the IdP's clients).
    let narrow_zones: Vec<String> = raw
        .narrow
        .iter()
        .flat_map(|m| &m.0)
        .flat_map(|(_, n)| {
            n.value
                .from
                .iter()
                .flatten()
                .chain(n.value.to.iter().flatten())
        })
        .filter_map(|e| match EndpointRef::parse(&e.value) {
            Ok(EndpointRef::Zone(z)) => Some(z),
            _ => None,
        })
        .collect();
    extra_zones.extend(narrow_zones.iter().map(String::as_str));
    // A zone of the site's own may also be just the host's.
    if let Some(h) = &raw.host_zone {
        extra_zones.push(h.value.as_str());
    }

    // Zones.
    let (zones_line, zones_col) = raw
        .zones
        .as_ref()
        .map(|z| (z.referenced.line(), z.referenced.column()))
        .unwrap_or((raw.name.referenced.line(), 1));
    let mut zones: BTreeMap<String, Vec<IpNet>> = BTreeMap::new();
    let mut zone_lines: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut zones_with_errors: Vec<String> = Vec::new();
    if let Some(zm) = &raw.zones {
        for (key, values) in &zm.value.0 {
            let name = key.value.clone();
            let known = catalog
                .as_ref()
                .is_some_and(|c| c.zones.contains_key(&name))
                || extra_zones.contains(&name.as_str());
            if !known {
                let mut e = InputError::at(
                    file,
                    key.referenced.line(),
                    key.referenced.column(),
                    format!("unknown zone `{name}`"),
                );
                if let Some(cat) = &catalog {
                    e = match closest(&name, cat.zones.keys().map(String::as_str)) {
                        Some(best) => e.with_help(format!("did you mean `{best}`?")),
                        None => e.with_help(format!(
                            "zones TKG uses: {}; a zone of your own must be used by an extra flow or a narrowing",
                            cat.zones.keys().cloned().collect::<Vec<_>>().join(", ")
                        )),
                    };
                }
                errors.push(e);
                continue;
            }
            if zones.contains_key(&name) {
                errors.push(
                    InputError::at(
                        file,
                        key.referenced.line(),
                        key.referenced.column(),
                        format!("zone `{name}` is listed twice"),
                    )
                    .with_help("merge the two lists into one"),
                );
                continue;
            }
            let mut nets = crate::resolve::UniqueNets::default();
            let errors_before = errors.len();
            for v in values {
                match parse_address(&v.value) {
                    Ok(n) => nets.push(n),
                    Err(msg) => errors.push(InputError::at(
                        file,
                        v.referenced.line(),
                        v.referenced.column(),
                        format!("zone `{name}`: {msg}"),
                    )),
                }
            }
            zone_lines.insert(
                name.clone(),
                (key.referenced.line(), key.referenced.column()),
            );
            if errors.len() > errors_before {
                // Already reported; do not also call the zone empty.
                zones_with_errors.push(name.clone());
            }
            zones.insert(name, nets.into_vec());
        }
    }

    // Every zone name the file writes under zones:, kept or not, for
    // "did you mean" in narrowings.
    let written_zones: Vec<String> = raw
        .zones
        .iter()
        .flat_map(|z| &z.value.0)
        .map(|(k, _)| k.value.clone())
        .collect();
    let host_zone = raw
        .host_zone
        .as_ref()
        .and_then(|h| host_zone_checked(file, h, &zones, &written_zones, &mut errors));
    let host_interfaces = match &raw.host_interfaces {
        Some(m) => host_interfaces_checked(
            file,
            m,
            raw.host_zone.is_some(),
            host_zone.as_ref().and_then(|z| zones.get(z)),
            &mut errors,
        ),
        None => BTreeMap::new(),
    };
    let mut site = Site {
        name: raw.name.value.clone(),
        tkg,
        zones,
        extra_flows,
        disable: Vec::new(),
        narrow: BTreeMap::new(),
        host_zone,
        host_interfaces,
        source: file.to_string(),
    };
    if let Some(cat) = &catalog {
        shape_flows(
            file,
            cat,
            &mut site,
            raw.disable.as_deref().unwrap_or_default(),
            raw.narrow.as_ref(),
            &written_zones,
            &mut errors,
        );
    }

    // Every zone an applicable flow needs must hold at least one address.
    // Zones listed but empty are reported at their key; zones not listed at
    // all are reported together at `zones:`, so one typo does not bury the rest.
    if let Some(cat) = &catalog {
        let mut missing: Vec<(String, String)> = Vec::new();
        for flow in site.applicable_flows(cat) {
            // A narrowed side needs the zones it keeps, not the row's.
            let n = site.narrow.get(&flow.id);
            let sources = n.and_then(|n| n.sources.as_ref()).unwrap_or(&flow.sources);
            let destinations = if flow.same_network {
                sources
            } else {
                n.and_then(|n| n.destinations.as_ref())
                    .unwrap_or(&flow.destinations)
            };
            for z in sources
                .iter()
                .chain(destinations)
                .filter_map(EndpointRef::zone)
            {
                if site.zones.get(z).is_some_and(|n| !n.is_empty())
                    || zones_with_errors.iter().any(|m| m == z)
                    || missing.iter().any(|(m, _)| m == z)
                {
                    continue;
                }
                match zone_lines.get(z) {
                    Some(&(line, col)) => {
                        errors.push(
                            InputError::at(
                                file,
                                line,
                                col,
                                format!("zone `{z}` is empty, but flow `{}` needs it", flow.id),
                            )
                            .with_help(format!("add its addresses: {z}: [198.18.x.y, ...]")),
                        );
                        missing.push((z.to_string(), flow.id.clone()));
                    }
                    None => missing.push((z.to_string(), flow.id.clone())),
                }
            }
        }
        let absent: Vec<&(String, String)> = missing
            .iter()
            .filter(|(z, _)| !zone_lines.contains_key(z))
            .collect();
        if !absent.is_empty() {
            let list = absent
                .iter()
                .map(|(z, f)| format!("`{z}` (needed by {f})"))
                .collect::<Vec<_>>()
                .join(", ");
            errors.push(
                InputError::at(
                    file,
                    zones_line,
                    zones_col,
                    format!("the site does not list these zones that its flows need: {list}"),
                )
                .with_help("add each under zones: with its addresses or networks; flows that depend on settings (identity, avi, nsx) follow the tkg: section"),
            );
        }
    }

    if errors.is_empty() {
        Ok(site)
    } else {
        errors.sort_by_key(|e| match e.locus {
            ringfence_diag::Locus::LineColumn { line, column } => (line, column),
            _ => (0, 0),
        });
        Err(InputErrors(errors))
    }
}

impl RawFlow {
    fn id_line(&self) -> u64 {
        self.id_spanned().referenced.line()
    }
}

/// Where each entry of one `narrow:` entry was written, for errors.
struct NarrowSpans {
    key: (u64, u64),
    from: Vec<(u64, u64)>,
    to: Vec<(u64, u64)>,
    services: Vec<(u64, u64)>,
}

fn at<T>(s: &Spanned<T>) -> (u64, u64) {
    (s.referenced.line(), s.referenced.column())
}

/// Validate `disable:` and `narrow:` and store them on `site`: every id
/// names a flow that applies to the site and is not a deny row, every zone
/// is one the site lists, and every narrowing keeps only a subset of its flow.
fn shape_flows(
    file: &str,
    catalog: &Catalog,
    site: &mut Site,
    disable: &[Spanned<String>],
    narrow: Option<&SpannedMap<Spanned<RawNarrowing>>>,
    written_zones: &[String],
    errors: &mut Vec<InputError>,
) {
    let known: Vec<&FlowSpec> = catalog.flows.iter().chain(&site.extra_flows).collect();
    let applies: Vec<FlowSpec> = site
        .flows_before_disable(catalog)
        .into_iter()
        .cloned()
        .collect();
    // The checks `disable:` and `narrow:` share: the id is known, the flow
    // applies to this site, and it is not a deny row.
    let check_id = |id: &str, (line, col): (u64, u64), verb: &str| -> Option<InputError> {
        if !known.iter().any(|f| f.id == id) {
            let e = InputError::at(file, line, col, format!("unknown flow `{id}`"));
            let mut ids: Vec<&str> = known.iter().map(|f| f.id.as_str()).collect();
            ids.dedup();
            return Some(match closest(id, ids.iter().copied()) {
                Some(best) => e.with_help(format!("did you mean `{best}`?")),
                None => e.with_help(format!("flow ids: {}", ids.join(", "))),
            });
        }
        let here: Vec<&FlowSpec> = applies.iter().filter(|f| f.id == id).collect();
        if here.is_empty() {
            let when: Vec<String> = known
                .iter()
                .filter(|f| f.id == id)
                .map(|f| f.when.describe())
                .collect();
            return Some(
                InputError::at(
                    file,
                    line,
                    col,
                    format!(
                        "flow `{id}` does not apply to this site, so there is nothing to {verb}"
                    ),
                )
                .with_help(format!(
                    "it applies when {}; remove the entry or change the tkg: settings",
                    when.join(", or when ")
                )),
            );
        }
        if here.iter().any(|f| f.action == crate::FlowAction::Deny) {
            return Some(
                InputError::at(
                    file,
                    line,
                    col,
                    format!("flow `{id}` is a deny row, which closes every path not allowed; it cannot be {}", if verb == "disable" { "disabled" } else { "narrowed" }),
                )
                .with_help("leaving it out would open traffic; to allow a path of your own, add an extra flow"),
            );
        }
        None
    };

    for d in disable {
        if let Some(e) = check_id(&d.value, at(d), "disable") {
            errors.push(e);
        } else if site.disable.contains(&d.value) {
            errors.push(
                InputError::at(
                    file,
                    d.referenced.line(),
                    d.referenced.column(),
                    format!("flow `{}` is listed twice under disable:", d.value),
                )
                .with_help("list each flow once"),
            );
        } else {
            site.disable.push(d.value.clone());
        }
    }

    let Some(narrow) = narrow else {
        return;
    };
    let mut spans: BTreeMap<String, NarrowSpans> = BTreeMap::new();
    for (key, entry) in &narrow.0 {
        let id = &key.value;
        let kpos = at(key);
        let epos = at(entry);
        if let Some(e) = check_id(id, kpos, "narrow") {
            errors.push(e);
            continue;
        }
        if site.disable.contains(id) {
            errors.push(
                InputError::at(
                    file,
                    kpos.0,
                    kpos.1,
                    format!("flow `{id}` is disabled, so it cannot also be narrowed"),
                )
                .with_help("keep the disable: entry or the narrow: entry, not both"),
            );
            continue;
        }
        let raw = &entry.value;
        if raw.from.is_none() && raw.to.is_none() && raw.services.is_none() {
            errors.push(
                InputError::at(
                    file,
                    epos.0,
                    epos.1,
                    format!("the narrowing of flow `{id}` restricts nothing"),
                )
                .with_help("give from:, to: or services: with the part of the flow to keep"),
            );
            continue;
        }
        let same_network = applies.iter().any(|f| f.id == *id && f.same_network);
        let errors_before = errors.len();
        let mut endpoints = |list: &Option<Vec<Spanned<String>>>, what: &str| {
            let list = list.as_ref()?;
            if list.is_empty() {
                errors.push(
                    InputError::at(
                        file,
                        epos.0,
                        epos.1,
                        format!("`{what}:` of the narrowing of flow `{id}` is empty"),
                    )
                    .with_help(format!(
                        "an empty list would keep nothing: use `disable: [{id}]` to drop the flow"
                    )),
                );
                return None;
            }
            let mut out = Vec::new();
            for s in list {
                let (l, c) = at(s);
                match EndpointRef::parse(&s.value) {
                    Ok(EndpointRef::Zone(z)) if !site.zones.contains_key(&z) => {
                        let listed = catalog.zones.contains_key(&z);
                        let e = if listed {
                            InputError::at(
                                file,
                                l,
                                c,
                                format!("zone `{z}` has no addresses in this site"),
                            )
                            .with_help(format!(
                                "list it under zones: with its addresses: {z}: [198.18.x.y, ...]"
                            ))
                        } else {
                            let e = InputError::at(file, l, c, format!("unknown zone `{z}`"));
                            let names = written_zones.iter().map(String::as_str);
                            match closest(&z, names) {
                                Some(best) => e.with_help(format!("did you mean `{best}`?")),
                                None => e.with_help(format!(
                                    "name a zone listed under zones: ({})",
                                    site.zones.keys().cloned().collect::<Vec<_>>().join(", ")
                                )),
                            }
                        };
                        errors.push(e);
                    }
                    Ok(e) => out.push(e),
                    Err(msg) => errors.push(InputError::at(file, l, c, msg)),
                }
            }
            Some(out)
        };
        let sources = endpoints(&raw.from, "from");
        let destinations = endpoints(&raw.to, "to");
        if same_network && raw.to.is_some() {
            let (l, c) = raw.to.iter().flatten().next().map(at).unwrap_or(epos);
            errors.push(
                InputError::at(
                    file,
                    l,
                    c,
                    format!("flow `{id}` pairs each network only with itself (same_network), so its destinations follow its sources"),
                )
                .with_help("narrow it with from: only"),
            );
        }
        let services = raw.services.as_ref().map(|list| {
            list.iter()
                .filter_map(|s| convert_service(file, s, &catalog.services, errors))
                .collect::<Vec<_>>()
        });
        if let Some(list) = &raw.services {
            if list.is_empty() {
                errors.push(
                    InputError::at(
                        file,
                        epos.0,
                        epos.1,
                        format!("`services:` of the narrowing of flow `{id}` is empty"),
                    )
                    .with_help(format!(
                        "an empty list would keep nothing: use `disable: [{id}]` to drop the flow"
                    )),
                );
            }
        }
        if errors.len() > errors_before {
            continue;
        }
        spans.insert(
            id.clone(),
            NarrowSpans {
                key: kpos,
                from: raw.from.iter().flatten().map(at).collect(),
                to: raw.to.iter().flatten().map(at).collect(),
                services: raw.services.iter().flatten().map(at).collect(),
            },
        );
        site.narrow.insert(
            id.clone(),
            Narrowing {
                sources,
                destinations,
                services,
            },
        );
    }

    // Every narrowing keeps a subset of each flow it narrows.
    for (id, n) in &site.narrow {
        let sp = &spans[id];
        let (s, d, v) = site.narrowing_inputs(catalog, n);
        for f in applies.iter().filter(|f| f.id == *id) {
            let orig = site.resolve_flow(catalog, f);
            let (_, problems) =
                crate::shape::narrow_flow(&orig, s.as_deref(), d.as_deref(), v.as_deref());
            for p in problems {
                errors.push(narrow_error(file, id, &orig, sp, &s, &d, p));
            }
        }
    }
}

/// `host_zone:` checked against the zones: it must name a zone the site
/// lists (errors about the zone itself are reported where it is written),
/// and that zone must hold single addresses, since every address in it is
/// taken as the host's own. `None` after an error.
fn host_zone_checked(
    file: &str,
    h: &Spanned<String>,
    zones: &BTreeMap<String, Vec<IpNet>>,
    written_zones: &[String],
    errors: &mut Vec<InputError>,
) -> Option<String> {
    let at = |msg: String| InputError::at(file, h.referenced.line(), h.referenced.column(), msg);
    let name = &h.value;
    let Some(nets) = zones.get(name) else {
        if !written_zones.contains(name) {
            let e = at(format!("host_zone `{name}` is not a zone of this site"));
            errors.push(match closest(name, written_zones.iter().map(String::as_str)) {
                Some(best) => e.with_help(format!("did you mean `{best}`?")),
                None => e.with_help(format!(
                    "list the host's addresses under zones: ({name}: [198.18.x.y]) or give them with --local"
                )),
            });
        }
        return None;
    };
    if nets.is_empty() {
        errors.push(
            at(format!("host_zone `{name}` has no addresses"))
                .with_help(format!("list the host's addresses: {name}: [198.18.x.y]")),
        );
        return None;
    }
    let networks: Vec<String> = nets
        .iter()
        .filter(|n| n.prefix_len() != n.max_prefix_len())
        .map(ToString::to_string)
        .collect();
    if !networks.is_empty() {
        errors.push(
            at(format!(
                "host_zone `{name}` holds networks ({}), but every address of the host zone is taken as the host's own",
                networks.join(", ")
            ))
            .with_help(
                "list only the host's own addresses in that zone (a network's other addresses are forwarded, not local), or give them with --local",
            ),
        );
        return None;
    }
    Some(name.clone())
}

/// Why `name` cannot be a network interface's name, by the kernel's rules
/// for one (`dev_valid_name`: 1-15 bytes, not `.` or `..`, no `/`, `:` or
/// white space; `%` is refused too, as it separates an address from its
/// interface in `ADDR%IFACE`); `None` when it can.
pub fn interface_name_problem(name: &str) -> Option<String> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c == '%' || c.is_whitespace());
    bad.then(|| {
        format!(
            "`{name}` is not an interface name: expected 1-15 characters without `/`, `:`, `%` or spaces, e.g. eth0"
        )
    })
}

/// `host_interfaces:` checked: it needs a `host_zone:` (`has_host_zone`;
/// `host_nets` is that zone's addresses once they were found valid), its
/// keys must be interface names, and each address under them a single
/// address of the host zone, under one interface only. Errors are reported
/// where the key or address is written; what is valid is kept.
fn host_interfaces_checked(
    file: &str,
    map: &Spanned<SpannedMap<Vec<Spanned<String>>>>,
    has_host_zone: bool,
    host_nets: Option<&Vec<IpNet>>,
    errors: &mut Vec<InputError>,
) -> BTreeMap<IpAddr, String> {
    let mut out: BTreeMap<IpAddr, String> = BTreeMap::new();
    if !has_host_zone {
        errors.push(
            InputError::at(
                file,
                map.referenced.line(),
                map.referenced.column(),
                "host_interfaces: says which interface holds each of the host zone's addresses, but the site has no host_zone:",
            )
            .with_help("name the zone holding the host's addresses: host_zone: <zone>"),
        );
        return out;
    }
    // The host zone was refused (reported there): nothing to check against.
    let Some(nets) = host_nets else {
        return out;
    };
    for (iface, addrs) in &map.value.0 {
        if let Some(problem) = interface_name_problem(&iface.value) {
            errors.push(InputError::at(
                file,
                iface.referenced.line(),
                iface.referenced.column(),
                format!("host_interfaces: {problem}"),
            ));
            continue;
        }
        for a in addrs {
            let at =
                |msg: String| InputError::at(file, a.referenced.line(), a.referenced.column(), msg);
            let Ok(addr) = a.value.trim().parse::<IpAddr>() else {
                errors.push(
                    at(format!(
                        "host_interfaces `{}`: `{}` is not an IP address",
                        iface.value, a.value
                    ))
                    .with_help("list single addresses of the host zone, e.g. eth0: [198.18.0.1]"),
                );
                continue;
            };
            if !nets.iter().any(|n| n.addr() == addr) {
                let listed: Vec<String> = nets.iter().map(|n| n.addr().to_string()).collect();
                errors.push(
                    at(format!(
                        "host_interfaces `{}`: {addr} is not an address of the host zone",
                        iface.value
                    ))
                    .with_help(format!(
                        "the host zone's addresses: {}; add {addr} to the zone if it is the host's",
                        listed.join(", ")
                    )),
                );
                continue;
            }
            match out.get(&addr) {
                Some(first) if *first != iface.value => errors.push(
                    at(format!(
                        "host_interfaces: {addr} is under both `{first}` and `{}`",
                        iface.value
                    ))
                    .with_help(
                        "an address is on one interface: keep it under the one that holds it",
                    ),
                ),
                Some(_) => {}
                None => {
                    out.insert(addr, iface.value.clone());
                }
            }
        }
    }
    out
}

/// A narrowing problem as a located error.
fn narrow_error(
    file: &str,
    id: &str,
    orig: &crate::ResolvedFlow,
    sp: &NarrowSpans,
    sources: &Option<Vec<(String, Vec<IpNet>)>>,
    destinations: &Option<Vec<(String, Vec<IpNet>)>>,
    p: Problem,
) -> InputError {
    let pos = |list: &[(u64, u64)], i: usize| list.get(i).copied().unwrap_or(sp.key);
    let label = |list: &Option<Vec<(String, Vec<IpNet>)>>, i: usize| {
        list.as_ref()
            .and_then(|l| l.get(i))
            .map(|(l, _)| l.clone())
            .unwrap_or_default()
    };
    let services = |s: &[crate::Service]| {
        s.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let widen_help =
        "a narrowing keeps only part of a flow; to allow a path of your own, add an extra flow";
    let ((l, c), message, help) = match p {
        Problem::SourceOutside { index, net } => (
            pos(&sp.from, index),
            format!(
                "narrowing would widen flow `{id}`: `{}` holds {net}, which is not inside its sources ({})",
                label(sources, index),
                orig.source_zones.join(", ")
            ),
            widen_help.to_string(),
        ),
        Problem::DestinationOutside { index, net } => (
            pos(&sp.to, index),
            format!(
                "narrowing would widen flow `{id}`: `{}` holds {net}, which is not inside its destinations ({})",
                label(destinations, index),
                orig.destination_zones.join(", ")
            ),
            widen_help.to_string(),
        ),
        Problem::SourceEmpty { index } => (
            pos(&sp.from, index),
            format!("`{}` has no addresses, so it keeps no source of flow `{id}`", label(sources, index)),
            "list its addresses under zones:, or use disable: to drop the flow".to_string(),
        ),
        Problem::DestinationEmpty { index } => (
            pos(&sp.to, index),
            format!("`{}` has no addresses, so it keeps no destination of flow `{id}`", label(destinations, index)),
            "list its addresses under zones:, or use disable: to drop the flow".to_string(),
        ),
        Problem::ServiceOutside { index, service } => (
            pos(&sp.services, index),
            format!(
                "narrowing would widen flow `{id}`: {service} is not inside its services ({})",
                services(&orig.services)
            ),
            "keep some of the flow's services, or a narrower port range of one".to_string(),
        ),
        Problem::DestinationGetsNothing { index, label: zone } => (
            match index {
                Some(i) => pos(&sp.to, i),
                None => sp.services.first().copied().unwrap_or(sp.key),
            },
            format!("the narrowing leaves destination `{zone}` of flow `{id}` no service"),
            format!("keep a service the flow gives `{zone}`, or leave `{zone}` out with to:"),
        ),
        Problem::ServiceReachesNothing { index, service } => (
            pos(&sp.services, index),
            format!("{service} goes to none of the destinations the narrowing keeps for flow `{id}`"),
            "drop it from services:, or keep a destination that the flow gives it to".to_string(),
        ),
    };
    InputError::at(file, l, c, message).with_help(help)
}
