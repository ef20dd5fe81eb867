//! Site files: one deployment's settings and the addresses of its zones.
//!
//! Parsing keeps the line and column of every value, so validation can name
//! exactly where a problem is and say how to fix it.

use crate::catalog::{convert_flows, Catalog, EndpointRef, FlowSpec, RawFlow, Scalar};
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
    /// `SERVICE_CIDR`.
    pub service_cidr: IpNet,
    /// `CLUSTER_CIDR`.
    pub cluster_cidr: IpNet,
    /// NSX serves DHCP.
    pub nsx: bool,
    /// Identity provider.
    pub identity: Identity,
    /// NSX Advanced Load Balancer.
    pub avi: AviSettings,
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
    /// The file it came from, as named by the user.
    pub source: String,
}

impl Site {
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
    let mut cidr = |v: &Option<Spanned<String>>, default: &str, what: &str| -> IpNet {
        match v {
            None => default.parse().expect("valid default"),
            Some(s) => match parse_address(&s.value) {
                Ok(n) => n,
                Err(msg) => {
                    errors.push(
                        InputError::at(file, s.referenced.line(), s.referenced.column(), msg)
                            .with_help(format!("{what} must be a network such as {default}")),
                    );
                    default.parse().expect("valid default")
                }
            },
        }
    };
    let service_cidr = cidr(&t.service_cidr, "100.64.0.0/13", "service_cidr");
    let cluster_cidr = cidr(&t.cluster_cidr, "100.96.0.0/11", "cluster_cidr");
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
        cluster_cidr,
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
    let extra_zones: Vec<&str> = extra_flows
        .iter()
        .flat_map(|f| f.sources.iter().chain(&f.destinations))
        .filter_map(EndpointRef::zone)
        .collect();

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
                            "zones TKG uses: {}; a zone of your own must be used by an extra flow",
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

    let site = Site {
        name: raw.name.value.clone(),
        tkg,
        zones,
        extra_flows,
        source: file.to_string(),
    };

    // Every zone an applicable flow needs must hold at least one address.
    // Zones listed but empty are reported at their key; zones not listed at
    // all are reported together at `zones:`, so one typo does not bury the rest.
    if let Some(cat) = &catalog {
        let mut missing: Vec<(String, String)> = Vec::new();
        for flow in site.applicable_flows(cat) {
            for z in flow
                .sources
                .iter()
                .chain(&flow.destinations)
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
