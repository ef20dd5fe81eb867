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

/// The site file text and what the user still has to fill in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The site file, YAML with comments.
    pub yaml: String,
    /// Things the configs could not tell, one line each (for stderr).
    pub notes: Vec<String>,
}

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
        let ipv6_primary = self
            .get("TKG_IP_FAMILY")
            .is_some_and(|f| f.trim().to_ascii_lowercase().starts_with("ipv6"));
        let (svc_default, pod_default) = if ipv6_primary {
            ("fd00:100:64::/108", "fd00:100:96::/48")
        } else {
            ("100.64.0.0/13", "100.96.0.0/11")
        };
        let mut cidr = |key: &str, default: &str| match self.get(key) {
            None => default.to_string(),
            Some(v) => {
                // TKG allows "v4,v6" for dual stack: the first is the primary family.
                let first = v.split(',').next().unwrap_or(v).trim();
                match parse_address(first) {
                    Ok(n) => n.to_string(),
                    Err(msg) => {
                        errors.push(self.error(key, format!("{key}: {msg}")));
                        default.to_string()
                    }
                }
            }
        };
        let service_cidr = cidr("SERVICE_CIDR", svc_default);
        let cluster_cidr = cidr("CLUSTER_CIDR", pod_default);
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
        if !errors.is_empty() {
            return Err(InputErrors(errors));
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
        Ok(Imported { yaml: y, notes })
    }
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
