//! `site import`: derive a site file from TKG cluster configuration files.
//!
//! A TKG cluster configuration is the flat YAML of variables given to
//! `tanzu management-cluster create --file`. It tells the deployment's
//! settings and a few addresses (vCenter, the Avi controller, the registry);
//! it cannot tell the node networks, the jumpbox, DNS or NTP. Those are
//! written as commented placeholders and listed as notes for the user.

use crate::catalog::Scalar;
use crate::site::{from_yaml, parse_address};
use ringfence_diag::{InputError, InputErrors};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The site file text, what the user still has to fill in, where the configs
/// disagree, and which variables the importer does not know.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    /// The site file, YAML with comments.
    #[serde(rename = "site_yaml")]
    pub yaml: String,
    /// Things the configs could not tell, one line each (for stderr).
    pub notes: Vec<String>,
    /// Settings the configs give two different values for, each naming both
    /// variables and values and which one the site file uses, and why.
    pub warnings: Vec<String>,
    /// Variables neither read by the importer nor known to leave the flows
    /// unchanged, by name.
    pub unknown_variables: Vec<UnknownVariable>,
}

/// A config variable the importer does not know.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnknownVariable {
    /// The variable's name.
    pub name: String,
    /// Where it is set: `file:line:column`.
    pub at: String,
    /// A variable the importer reads that is spelled almost the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub did_you_mean: Option<String>,
}

impl UnknownVariable {
    /// One line for stderr.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}: unknown variable `{}`, not used for the site file",
            self.at, self.name
        );
        if let Some(m) = &self.did_you_mean {
            s.push_str(&format!("; did you mean `{m}`?"));
        }
        s
    }
}

/// The variables the importer reads.
const READ: &[&str] = &[
    "AVI_CONTROLLER",
    "AVI_CONTROL_PLANE_HA_PROVIDER",
    "AVI_DATA_NETWORK_CIDR",
    "AVI_ENABLE",
    "AVI_INGRESS_SERVICE_TYPE",
    "CLUSTER_API_SERVER_PORT",
    "CLUSTER_CIDR",
    "CLUSTER_NAME",
    "IDENTITY_MANAGEMENT_TYPE",
    "SERVICE_CIDR",
    "TKG_CUSTOM_IMAGE_REPOSITORY",
    "TKG_IP_FAMILY",
    "VSPHERE_CONTROL_PLANE_ENDPOINT",
    "VSPHERE_CONTROL_PLANE_ENDPOINT_PORT",
    "VSPHERE_SERVER",
];

/// TKG 1.5 cluster configuration variables known not to change which flows
/// a site needs or their addresses (machine sizes, credentials, vSphere
/// placement, proxies, health checks, Avi details beyond those read).
const KNOWN_IRRELEVANT: &[&str] = &[
    "AVI_CA_DATA_B64",
    "AVI_CLOUD_NAME",
    "AVI_CONTROL_PLANE_NETWORK",
    "AVI_CONTROL_PLANE_NETWORK_CIDR",
    "AVI_DATA_NETWORK",
    "AVI_DISABLE_INGRESS_CLASS",
    "AVI_INGRESS_DEFAULT_INGRESS_CONTROLLER",
    "AVI_INGRESS_NODE_NETWORK_LIST",
    "AVI_INGRESS_SHARD_VS_SIZE",
    "AVI_LABELS",
    "AVI_MANAGEMENT_CLUSTER_CONTROL_PLANE_VIP_NETWORK_CIDR",
    "AVI_MANAGEMENT_CLUSTER_CONTROL_PLANE_VIP_NETWORK_NAME",
    "AVI_MANAGEMENT_CLUSTER_SERVICE_ENGINE_GROUP",
    "AVI_MANAGEMENT_CLUSTER_VIP_NETWORK_CIDR",
    "AVI_MANAGEMENT_CLUSTER_VIP_NETWORK_NAME",
    "AVI_NSXT_T1LR",
    "AVI_PASSWORD",
    "AVI_SERVICE_ENGINE_GROUP",
    "AVI_USERNAME",
    "CLUSTER_PLAN",
    "CNI",
    "CONTROLPLANE_SIZE",
    "CONTROL_PLANE_MACHINE_COUNT",
    "DEPLOY_TKG_ON_VSPHERE7",
    "ENABLE_AUDIT_LOGGING",
    "ENABLE_AUTOSCALER",
    "ENABLE_CEIP_PARTICIPATION",
    "ENABLE_DEFAULT_STORAGE_CLASS",
    "ENABLE_MHC",
    "ENABLE_MHC_CONTROL_PLANE",
    "ENABLE_MHC_WORKER_NODE",
    "INFRASTRUCTURE_PROVIDER",
    "MHC_FALSE_STATUS_TIMEOUT",
    "MHC_UNKNOWN_STATUS_TIMEOUT",
    "NAMESPACE",
    "OS_ARCH",
    "OS_NAME",
    "OS_VERSION",
    "SIZE",
    "TKG_CUSTOM_IMAGE_REPOSITORY_CA_CERTIFICATE",
    "TKG_CUSTOM_IMAGE_REPOSITORY_SKIP_TLS_VERIFY",
    "TKG_HTTP_PROXY",
    "TKG_HTTP_PROXY_ENABLED",
    "TKG_HTTPS_PROXY",
    "TKG_NO_PROXY",
    "VSPHERE_CONTROL_PLANE_DISK_GIB",
    "VSPHERE_CONTROL_PLANE_MEM_MIB",
    "VSPHERE_CONTROL_PLANE_NUM_CPUS",
    "VSPHERE_DATACENTER",
    "VSPHERE_DATASTORE",
    "VSPHERE_FOLDER",
    "VSPHERE_INSECURE",
    "VSPHERE_NETWORK",
    "VSPHERE_PASSWORD",
    "VSPHERE_RESOURCE_POOL",
    "VSPHERE_SSH_AUTHORIZED_KEY",
    "VSPHERE_STORAGE_POLICY_ID",
    "VSPHERE_TEMPLATE",
    "VSPHERE_TLS_THUMBPRINT",
    "VSPHERE_USERNAME",
    "VSPHERE_WORKER_DISK_GIB",
    "VSPHERE_WORKER_MEM_MIB",
    "VSPHERE_WORKER_NUM_CPUS",
    "WORKER_MACHINE_COUNT",
    "WORKER_SIZE",
];

/// Families of variables that configure identity providers and the CNI in
/// detail; the importer reads only `IDENTITY_MANAGEMENT_TYPE` of them.
const KNOWN_IRRELEVANT_PREFIXES: &[&str] = &["LDAP_", "OIDC_", "ANTREA_"];

/// Variables read from one or more configs; later files override earlier ones.
#[derive(Debug, Default)]
pub struct TkgConfig {
    /// Variable → (value, file, line, column).
    vars: BTreeMap<String, (String, String, u64, u64)>,
}

impl TkgConfig {
    /// Add a config file's variables (later calls override earlier ones).
    pub fn add(&mut self, text: &str, file: &str) -> Result<(), InputErrors> {
        let map: BTreeMap<String, Spanned<Option<Scalar>>> = if text.trim().is_empty() {
            BTreeMap::new()
        } else {
            from_yaml(text, file)?
        };
        for (k, v) in map {
            let (line, col) = (v.referenced.line(), v.referenced.column());
            let value = v.value.map(|s| s.as_text()).unwrap_or_default();
            self.vars
                .insert(k, (value.trim().to_string(), file.to_string(), line, col));
        }
        Ok(())
    }

    /// `file:line:column` of variable `key`, as set last.
    fn at(&self, key: &str) -> String {
        match self.vars.get(key) {
            Some((_, file, line, col)) if *line > 0 => format!("{file}:{line}:{col}"),
            Some((_, file, ..)) => file.clone(),
            None => "<config>".into(),
        }
    }

    /// The variables the importer does not know, with a suggestion when one
    /// it reads is spelled almost the same.
    fn unknown_variables(&self) -> Vec<UnknownVariable> {
        self.vars
            .keys()
            .filter(|k| {
                !READ.contains(&k.as_str())
                    && !KNOWN_IRRELEVANT.contains(&k.as_str())
                    && !KNOWN_IRRELEVANT_PREFIXES.iter().any(|p| k.starts_with(p))
            })
            .map(|k| UnknownVariable {
                name: k.clone(),
                at: self.at(k),
                did_you_mean: ringfence_diag::closest(k, READ.iter().copied()).map(String::from),
            })
            .collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(|(v, ..)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// An error about variable `key`, located at its value.
    fn error(&self, key: &str, message: String) -> InputError {
        match self.vars.get(key) {
            Some((_, file, line, col)) if *line > 0 => InputError::at(file, *line, *col, message),
            Some((_, file, ..)) => InputError::whole(file, message),
            None => InputError::whole("<config>", message),
        }
    }

    fn flag(&self, key: &str) -> Result<bool, InputError> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => {
                Err(self.error(key, format!("{key} is `{other}`; expected true or false")))
            }
        }
    }

    fn port(&self, key: &str) -> Result<Option<u16>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.parse::<u16>() {
                Ok(p) if p > 0 => Ok(Some(p)),
                _ => Err(self.error(
                    key,
                    format!("{key} is `{v}`; expected a port between 1 and 65535"),
                )),
            },
        }
    }

    /// Build the site file.
    pub fn to_site(&self) -> Result<Imported, InputErrors> {
        let mut errors = Vec::new();
        let mut notes = Vec::new();
        fn take<T>(errors: &mut Vec<InputError>, r: Result<T, InputError>, default: T) -> T {
            r.unwrap_or_else(|e| {
                errors.push(e);
                default
            })
        }
        let api_port = take(
            &mut errors,
            self.port("CLUSTER_API_SERVER_PORT")
                .map(|p| p.unwrap_or(6443)),
            6443,
        );
        let endpoint_port = take(
            &mut errors,
            self.port("VSPHERE_CONTROL_PLANE_ENDPOINT_PORT"),
            None,
        );
        let avi_enabled = take(&mut errors, self.flag("AVI_ENABLE"), false);
        let avi_ha = take(
            &mut errors,
            self.flag("AVI_CONTROL_PLANE_HA_PROVIDER"),
            false,
        );
        // TKG_IP_FAMILY: ipv4 (the default), ipv6, or both in primary-first
        // order; each family gets TKG's default networks.
        let families: Vec<&str> = match self.get("TKG_IP_FAMILY") {
            None => vec!["ipv4"],
            Some(f) => {
                let parts: Vec<String> = f
                    .split(',')
                    .map(|p| p.trim().to_ascii_lowercase())
                    .collect();
                match parts
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .as_slice()
                {
                    ["ipv4"] => vec!["ipv4"],
                    ["ipv6"] => vec!["ipv6"],
                    ["ipv4", "ipv6"] => vec!["ipv4", "ipv6"],
                    ["ipv6", "ipv4"] => vec!["ipv6", "ipv4"],
                    _ => {
                        errors.push(self.error(
                            "TKG_IP_FAMILY",
                            format!("TKG_IP_FAMILY is `{f}`; expected ipv4, ipv6, ipv4,ipv6 or ipv6,ipv4"),
                        ));
                        vec!["ipv4"]
                    }
                }
            }
        };
        let default_of = |v4: &str, v6: &str| {
            families
                .iter()
                .map(|f| if *f == "ipv6" { v6 } else { v4 })
                .collect::<Vec<_>>()
                .join(",")
        };
        let svc_default = default_of("100.64.0.0/13", "fd00:100:64::/108");
        let pod_default = default_of("100.96.0.0/11", "fd00:100:96::/48");
        // TKG writes a dual-stack network as "v4,v6" (or "v6,v4"): one of
        // each family, the first of the primary family. Both are kept.
        let mut cidr = |key: &str, default: &str| match self.get(key) {
            None => default.to_string(),
            Some(v) => {
                let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                let mut nets = Vec::new();
                for p in &parts {
                    match parse_address(p) {
                        Ok(n) => nets.push(n),
                        Err(msg) => errors.push(self.error(key, format!("{key}: {msg}"))),
                    }
                }
                match nets.as_slice() {
                    _ if nets.len() != parts.len() => default.to_string(),
                    [a] => a.to_string(),
                    [a, b] if a.addr().is_ipv4() != b.addr().is_ipv4() => format!("{a},{b}"),
                    _ => {
                        errors.push(self.error(
                            key,
                            format!("{key} is `{v}`; expected one network, or one IPv4 and one IPv6 network separated by a comma"),
                        ));
                        default.to_string()
                    }
                }
            }
        };
        let service_cidr = cidr("SERVICE_CIDR", &svc_default);
        let cluster_cidr = cidr("CLUSTER_CIDR", &pod_default);
        let identity = match self
            .get("IDENTITY_MANAGEMENT_TYPE")
            .map(str::to_ascii_lowercase)
        {
            None => "none".to_string(),
            Some(v) if ["none", "oidc", "ldap"].contains(&v.as_str()) => v,
            Some(v) => {
                errors.push(self.error(
                    "IDENTITY_MANAGEMENT_TYPE",
                    format!("IDENTITY_MANAGEMENT_TYPE is `{v}`; expected none, oidc or ldap"),
                ));
                "none".to_string()
            }
        };
        let mode = match self
            .get("AVI_INGRESS_SERVICE_TYPE")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("nodeportlocal") => "nodeportlocal",
            _ => "nodeport",
        };
        let endpoint = self.get("VSPHERE_CONTROL_PLANE_ENDPOINT");
        let endpoint_addr_port = endpoint.and_then(port_in_endpoint);
        if let Some(Err(msg)) = &endpoint_addr_port {
            errors.push(self.error("VSPHERE_CONTROL_PLANE_ENDPOINT", msg.clone()));
        }
        if !errors.is_empty() {
            return Err(InputErrors(errors));
        }
        let endpoint_addr_port = endpoint_addr_port.and_then(Result::ok);
        let mut warnings = self.api_port_warnings(
            api_port,
            endpoint_port,
            endpoint_addr_port,
            avi_enabled && avi_ha,
        );
        for (key, value) in [
            ("SERVICE_CIDR", &service_cidr),
            ("CLUSTER_CIDR", &cluster_cidr),
        ] {
            if let Some(w) = self.family_warning(key, value, &families) {
                warnings.push(w);
            }
        }

        let name = self.get("CLUSTER_NAME").unwrap_or("imported-site");
        let mut y = String::new();
        let _ = writeln!(
            y,
            "# Site file written by `ringfence site import` from TKG cluster configuration."
        );
        let _ = writeln!(y, "# Fill in the commented placeholders, then check it with `ringfence flows --site FILE`.");
        let _ = writeln!(y, "name: {}", yaml_str(name));
        let _ = writeln!(y, "tkg:");
        let _ = writeln!(y, "  version: \"1.5\"");
        let _ = writeln!(y, "  api_server_port: {api_port}");
        if !warnings.is_empty() {
            let _ = writeln!(
                y,
                "  # The configs disagree about the API server port; see the warnings of `ringfence site import`."
            );
        }
        let _ = writeln!(y, "  service_cidr: {service_cidr}");
        let _ = writeln!(y, "  cluster_cidr: {cluster_cidr}");
        let _ = writeln!(y, "  nsx: false                 # set true if NSX serves DHCP (not in the cluster config)");
        let _ = writeln!(y, "  identity: {identity}");
        let _ = writeln!(y, "  avi:");
        let _ = writeln!(y, "    enabled: {avi_enabled}");
        let _ = writeln!(y, "    mode: {mode}");
        let _ = writeln!(
            y,
            "    nsxt_cloud: false        # set true if Avi uses an NSX-T cloud connector"
        );
        let _ = writeln!(y, "    control_plane_ha: {avi_ha}");
        if let Some(p) = endpoint_port {
            let _ = writeln!(y, "    control_plane_endpoint_port: {p}");
        }
        let _ = writeln!(y, "zones:");

        let mut zone_line = |zone: &str, value: Option<&str>, what: &str, needed: bool| match value
        {
            Some(v) => match parse_address(v) {
                Ok(n) => {
                    let _ = writeln!(y, "  {zone}: [{n}]");
                }
                Err(_) => {
                    let _ = writeln!(
                            y,
                            "  # {zone}: [{v}]   # `{v}` is a hostname: zones need addresses; replace it with its address(es)"
                        );
                    notes.push(format!(
                        "zone `{zone}`: `{v}` is a hostname; replace it with its address(es)"
                    ));
                }
            },
            None if needed => {
                let _ = writeln!(y, "  # {zone}: []   # {what}");
                notes.push(format!(
                    "zone `{zone}` ({what}) is not in the cluster configuration: fill it in"
                ));
            }
            None => {}
        };
        zone_line(
            "management",
            None,
            "the management cluster's node network",
            true,
        );
        zone_line(
            "workload",
            None,
            "workload cluster node networks, one entry per network",
            true,
        );
        zone_line("jumpbox", None, "the jumpbox address", true);
        if identity != "none" {
            zone_line(
                "bootstrap",
                None,
                "the bootstrap machine where the Tanzu CLI runs",
                true,
            );
        }
        let registry_host = self.get("TKG_CUSTOM_IMAGE_REPOSITORY").map(|r| {
            let r = r
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let host = r.split('/').next().unwrap_or(r);
            // Strip a :port, but not from a bare IPv6 address.
            match host.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => {
                    h.to_string()
                }
                _ => host.to_string(),
            }
        });
        zone_line(
            "harbor",
            registry_host.as_deref(),
            "the Harbor registry",
            true,
        );
        zone_line(
            "vcenter",
            self.get("VSPHERE_SERVER"),
            "the vCenter Server",
            true,
        );
        zone_line("dns", None, "DNS servers", true);
        zone_line("ntp", None, "NTP servers", true);
        zone_line("dhcp", None, "DHCP servers (or set tkg.nsx: true)", true);
        if avi_enabled {
            zone_line(
                "avi-controller",
                self.get("AVI_CONTROLLER"),
                "the Avi controller",
                true,
            );
            zone_line(
                "avi-se",
                self.get("AVI_DATA_NETWORK_CIDR"),
                "Avi service engine data networks",
                true,
            );
        }
        let _ = writeln!(y, "extra_flows: []");
        let unknown_variables = self.unknown_variables();
        Ok(Imported {
            yaml: y,
            notes,
            warnings,
            unknown_variables,
        })
    }

    /// A warning when CIDR variable `key` (imported as `value`) does not give
    /// one network per family of `TKG_IP_FAMILY`.
    fn family_warning(&self, key: &str, value: &str, families: &[&str]) -> Option<String> {
        self.get(key)?;
        let mut have: Vec<&str> = value
            .split(',')
            .map(|n| if n.contains(':') { "ipv6" } else { "ipv4" })
            .collect();
        let mut want = families.to_vec();
        have.sort_unstable();
        want.sort_unstable();
        if have == want {
            return None;
        }
        let family = match self.get("TKG_IP_FAMILY") {
            Some(f) => format!("TKG_IP_FAMILY is {f} ({})", self.at("TKG_IP_FAMILY")),
            None => "TKG_IP_FAMILY is not set (TKG's default ipv4)".to_string(),
        };
        Some(format!(
            "{key} is `{value}` ({}) but {family}: the site file keeps {key} as given, so its flows cover only {} addresses; give one network per family the cluster uses",
            self.at(key),
            have.join(" and ")
        ))
    }

    /// Where the API server port variables disagree: each warning names both
    /// variables with their values and locations, the value the site file
    /// uses, and why. `api_port` is `CLUSTER_API_SERVER_PORT` (or 6443),
    /// `endpoint_port` is `VSPHERE_CONTROL_PLANE_ENDPOINT_PORT`,
    /// `in_endpoint` a port written in `VSPHERE_CONTROL_PLANE_ENDPOINT`
    /// itself; `avi_endpoint` is true when NSX ALB provides the endpoint.
    fn api_port_warnings(
        &self,
        api_port: u16,
        endpoint_port: Option<u16>,
        in_endpoint: Option<u16>,
        avi_endpoint: bool,
    ) -> Vec<String> {
        let api = match self.get("CLUSTER_API_SERVER_PORT") {
            Some(_) => format!(
                "CLUSTER_API_SERVER_PORT is {api_port} ({})",
                self.at("CLUSTER_API_SERVER_PORT")
            ),
            None => format!("CLUSTER_API_SERVER_PORT is not set (TKG's default {api_port})"),
        };
        let ep_port = |p: u16| {
            format!(
                "VSPHERE_CONTROL_PLANE_ENDPOINT_PORT is {p} ({})",
                self.at("VSPHERE_CONTROL_PLANE_ENDPOINT_PORT")
            )
        };
        let mut out = Vec::new();
        // The port the site file's flows use (Site::effective_api_port).
        let (chosen, chosen_by) = match endpoint_port {
            Some(p) if avi_endpoint => (p, "VSPHERE_CONTROL_PLANE_ENDPOINT_PORT"),
            _ => (api_port, "CLUSTER_API_SERVER_PORT"),
        };
        if let Some(p) = endpoint_port.filter(|p| *p != api_port) {
            let explicit_api = self.get("CLUSTER_API_SERVER_PORT").is_some();
            if avi_endpoint && explicit_api {
                out.push(format!(
                    "{} but {api}: the site's flows use {p}, because NSX Advanced Load Balancer provides the control-plane endpoint (AVI_ENABLE and AVI_CONTROL_PLANE_HA_PROVIDER are true) and TKG then serves the API on VSPHERE_CONTROL_PLANE_ENDPOINT_PORT",
                    ep_port(p)
                ));
            } else if !avi_endpoint {
                out.push(format!(
                    "{} but {api}: the site's flows use {api_port}, because VSPHERE_CONTROL_PLANE_ENDPOINT_PORT applies only when NSX Advanced Load Balancer provides the control-plane endpoint (AVI_ENABLE and AVI_CONTROL_PLANE_HA_PROVIDER true), which these configs do not set",
                    ep_port(p)
                ));
            }
        }
        if let Some(p) = in_endpoint.filter(|p| *p != chosen) {
            let other = if chosen_by == "CLUSTER_API_SERVER_PORT" {
                api.clone()
            } else {
                ep_port(chosen)
            };
            out.push(format!(
                "VSPHERE_CONTROL_PLANE_ENDPOINT is `{}` ({}), port {p}, but {other}: the site's flows use {chosen} from {chosen_by}, the port TKG configures the API servers with; if clients really reach the endpoint on {p}, set api_server_port: {p} in the site file",
                self.get("VSPHERE_CONTROL_PLANE_ENDPOINT").unwrap_or_default(),
                self.at("VSPHERE_CONTROL_PLANE_ENDPOINT"),
            ));
        }
        out
    }
}

/// The port written in a control-plane endpoint (`198.18.10.5:6443`,
/// `[fd00::5]:6443`, `cp.example:6443`, optionally with `https://`), if
/// any. A bare IPv6 address has no port.
fn port_in_endpoint(endpoint: &str) -> Option<Result<u16, String>> {
    let e = endpoint
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let port = if let Some(rest) = e.strip_prefix('[') {
        rest.split_once(']')?.1.strip_prefix(':')?
    } else {
        let (host, port) = e.rsplit_once(':')?;
        if host.contains(':') {
            return None; // a bare IPv6 address
        }
        port
    };
    Some(match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "VSPHERE_CONTROL_PLANE_ENDPOINT is `{endpoint}`; its port `{port}` is not a port between 1 and 65535"
        )),
    })
}

fn yaml_str(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !s.is_empty()
    {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}
