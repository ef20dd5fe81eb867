//! `site import` turns TKG cluster configuration variables into a site file.

use ringfence_site::import::TkgConfig;
use ringfence_site::parse_site;

fn import(files: &[&str]) -> ringfence_site::import::Imported {
    let mut cfg = TkgConfig::default();
    for (i, f) in files.iter().enumerate() {
        cfg.add(f, &format!("cfg{i}.yaml")).unwrap();
    }
    cfg.to_site().unwrap()
}

const CONFIG: &str = r#"
CLUSTER_NAME: tkg-mgmt-01
CLUSTER_API_SERVER_PORT: 8443
SERVICE_CIDR: 100.64.0.0/13
CLUSTER_CIDR: 100.96.0.0/11
IDENTITY_MANAGEMENT_TYPE: ldap
AVI_ENABLE: "true"
AVI_CONTROLLER: 198.18.1.40
AVI_DATA_NETWORK_CIDR: 198.18.30.0/24
AVI_INGRESS_SERVICE_TYPE: NodePortLocal
AVI_CONTROL_PLANE_HA_PROVIDER: "false"
VSPHERE_SERVER: vcenter.corp.example
TKG_CUSTOM_IMAGE_REPOSITORY: harbor.corp.example:8443/tkg
VSPHERE_CONTROL_PLANE_ENDPOINT: 198.18.10.5
"#;

#[test]
fn settings_carry_over_and_hostnames_become_notes() {
    let out = import(&[CONFIG]);
    assert!(out.yaml.contains("name: tkg-mgmt-01"));
    assert!(out.yaml.contains("api_server_port: 8443"));
    assert!(out.yaml.contains("identity: ldap"));
    assert!(out.yaml.contains("mode: nodeportlocal"));
    assert!(out.yaml.contains("  avi-controller: [198.18.1.40/32]"));
    assert!(out.yaml.contains("  avi-se: [198.18.30.0/24]"));
    assert!(out.yaml.contains("# vcenter: [vcenter.corp.example]"));
    assert!(
        out.yaml.contains("# harbor: [harbor.corp.example]"),
        "{}",
        out.yaml
    );
    for zone in [
        "management",
        "workload",
        "jumpbox",
        "bootstrap",
        "dns",
        "ntp",
        "vcenter",
        "harbor",
    ] {
        assert!(
            out.notes.iter().any(|n| n.contains(&format!("`{zone}`"))),
            "no note for {zone}: {:?}",
            out.notes
        );
    }
}

#[test]
fn blank_cidrs_take_tkg_defaults_per_ip_family() {
    let v4 = import(&["SERVICE_CIDR: \"\"\nCLUSTER_CIDR:\n"]);
    assert!(
        v4.yaml.contains("service_cidr: 100.64.0.0/13")
            && v4.yaml.contains("cluster_cidr: 100.96.0.0/11")
    );
    let v6 = import(&["TKG_IP_FAMILY: ipv6\n"]);
    assert!(
        v6.yaml.contains("service_cidr: fd00:100:64::/108"),
        "{}",
        v6.yaml
    );
    assert!(v6.yaml.contains("cluster_cidr: fd00:100:96::/48"));
}

#[test]
fn avi_endpoint_port_overrides_when_avi_provides_the_endpoint() {
    let out = import(&[
        CONFIG,
        "AVI_CONTROL_PLANE_HA_PROVIDER: true\nVSPHERE_CONTROL_PLANE_ENDPOINT_PORT: 9443\n",
    ]);
    // Fill in the placeholders as a user would, then resolve.
    let filled = out
        .yaml
        .replace("  # management: []", "  management: [198.18.10.0/24]")
        .replace("  # workload: []", "  workload: [198.18.20.0/24]")
        .replace("  # jumpbox: []", "  jumpbox: [198.18.1.10]")
        .replace("  # bootstrap: []", "  bootstrap: [198.18.1.10]")
        .replace(
            "  # vcenter: [vcenter.corp.example]",
            "  vcenter: [198.18.1.30]",
        )
        .replace(
            "  # harbor: [harbor.corp.example]",
            "  harbor: [198.18.1.20]",
        )
        .replace("  # dns: []", "  dns: [198.18.1.53]")
        .replace("  # ntp: []", "  ntp: [198.18.1.123]")
        .replace("  # dhcp: []", "  dhcp: [198.18.1.67]");
    let filled: String = filled
        .lines()
        .map(|l| match l.find("   #") {
            Some(i) if !l.trim_start().starts_with('#') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let site = parse_site(&filled, "imported.yaml").unwrap_or_else(|e| panic!("{e}\n{filled}"));
    assert_eq!(site.effective_api_port(), 9443);
    let r = site.resolve();
    assert_eq!(
        r.flow("workload-to-mgmt").unwrap().services[0].ports.first,
        9443
    );
}

#[test]
fn later_files_override_earlier_ones() {
    let out = import(&[
        "CLUSTER_API_SERVER_PORT: 7443\n",
        "CLUSTER_API_SERVER_PORT: 6444\n",
    ]);
    assert!(out.yaml.contains("api_server_port: 6444"));
}

#[test]
fn bad_values_are_errors_naming_the_variable() {
    let mut cfg = TkgConfig::default();
    cfg.add(
        "CLUSTER_API_SERVER_PORT: 99999\nAVI_ENABLE: maybe\n",
        "c.yaml",
    )
    .unwrap();
    let e = cfg.to_site().unwrap_err().to_string();
    assert!(
        e.contains("c.yaml:1:26: CLUSTER_API_SERVER_PORT is `99999`"),
        "{e}"
    );
    assert!(
        e.contains("AVI_ENABLE is `maybe`; expected true or false"),
        "{e}"
    );
}

/// A fixture under tests/data/tkg-config, imported under its own name.
fn import_fixture(name: &str, text: &str) -> ringfence_site::import::Imported {
    let mut cfg = TkgConfig::default();
    cfg.add(text, name).unwrap();
    cfg.to_site().unwrap()
}

const DUAL_STACK: &str = include_str!("data/tkg-config/dual-stack.yaml");
const ENDPOINT_PORT_MISMATCH: &str = include_str!("data/tkg-config/endpoint-port-mismatch.yaml");
const ENDPOINT_PORT_WITHOUT_AVI: &str =
    include_str!("data/tkg-config/endpoint-port-without-avi.yaml");
const UNKNOWN_VARIABLES: &str = include_str!("data/tkg-config/unknown-variables.yaml");

/// The imported site with every zone placeholder filled in, as a user would.
fn fill(yaml: &str) -> String {
    let mut out = String::new();
    for l in yaml.lines() {
        let t = l.trim_start();
        let line = if let Some(rest) = t.strip_prefix("# ") {
            match rest.split_once(':') {
                Some((zone, _)) if l.starts_with("  # ") && !zone.contains(' ') => {
                    format!("  {zone}: [198.18.1.{}]", 100 + out.len() % 100)
                }
                _ => l.to_string(),
            }
        } else {
            l.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.replace("  management: [198.18.1.", "  management: [198.18.2.")
}

#[test]
fn dual_stack_cidrs_keep_both_halves() {
    let out = import_fixture("dual.yaml", DUAL_STACK);
    assert!(
        out.yaml
            .contains("  cluster_cidr: 100.96.0.0/11,fd00:100:96::/48\n"),
        "{}",
        out.yaml
    );
    assert!(out
        .yaml
        .contains("  service_cidr: 100.64.0.0/13,fd00:100:64::/108\n"));
    let site = parse_site(&fill(&out.yaml), "imported.yaml").unwrap_or_else(|e| panic!("{e}"));
    let f = site.resolve();
    let pods = f.flow("mc-pods-internal").unwrap();
    let sources: Vec<String> = pods.sources.iter().map(ToString::to_string).collect();
    assert_eq!(sources, ["100.96.0.0/11", "fd00:100:96::/48"]);
    assert!(pods
        .destinations
        .contains(&"fd00:100:64::1/128".parse().unwrap()));
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn an_ipv6_primary_dual_stack_cidr_keeps_its_order() {
    let out = import(&["CLUSTER_CIDR: fd00:100:96::/48,100.96.0.0/11\n"]);
    assert!(
        out.yaml
            .contains("cluster_cidr: fd00:100:96::/48,100.96.0.0/11\n"),
        "{}",
        out.yaml
    );
}

#[test]
fn two_cidrs_of_one_family_are_an_error_naming_the_variable() {
    let mut cfg = TkgConfig::default();
    cfg.add("SERVICE_CIDR: 100.64.0.0/13,10.64.0.0/13\n", "c.yaml")
        .unwrap();
    let e = cfg.to_site().unwrap_err().to_string();
    assert_eq!(
        e,
        "c.yaml:1:15: SERVICE_CIDR is `100.64.0.0/13,10.64.0.0/13`; expected one network, or one IPv4 and one IPv6 network separated by a comma"
    );
}

#[test]
fn a_port_in_the_endpoint_that_disagrees_is_a_warning_naming_both() {
    let out = import_fixture("ep.yaml", ENDPOINT_PORT_MISMATCH);
    assert_eq!(
        out.warnings,
        ["VSPHERE_CONTROL_PLANE_ENDPOINT is `198.18.10.5:8443` (ep.yaml:5:33), port 8443, but CLUSTER_API_SERVER_PORT is 6443 (ep.yaml:3:26): the site's flows use 6443 from CLUSTER_API_SERVER_PORT, the port TKG configures the API servers with; if clients really reach the endpoint on 8443, set api_server_port: 8443 in the site file"]
    );
    assert!(out
        .yaml
        .contains("  api_server_port: 6443\n  # The configs disagree about the API server port"));
    // With no CLUSTER_API_SERVER_PORT, TKG's default is what disagrees.
    let out = import(&["VSPHERE_CONTROL_PLANE_ENDPOINT: \"[fd00::5]:8443\"\n"]);
    assert_eq!(out.warnings.len(), 1);
    assert!(
        out.warnings[0]
            .contains("port 8443, but CLUSTER_API_SERVER_PORT is not set (TKG's default 6443)"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn the_endpoint_port_variable_without_avi_is_a_warning_explaining_the_choice() {
    let out = import_fixture("kv.yaml", ENDPOINT_PORT_WITHOUT_AVI);
    assert_eq!(
        out.warnings,
        ["VSPHERE_CONTROL_PLANE_ENDPOINT_PORT is 9443 (kv.yaml:5:38) but CLUSTER_API_SERVER_PORT is 8443 (kv.yaml:3:26): the site's flows use 8443, because VSPHERE_CONTROL_PLANE_ENDPOINT_PORT applies only when NSX Advanced Load Balancer provides the control-plane endpoint (AVI_ENABLE and AVI_CONTROL_PLANE_HA_PROVIDER true), which these configs do not set"]
    );
    assert!(out.yaml.contains("  api_server_port: 8443\n"));
}

#[test]
fn the_endpoint_port_variable_with_avi_wins_and_says_so() {
    let out = import(&[
        CONFIG,
        "AVI_CONTROL_PLANE_HA_PROVIDER: true\nVSPHERE_CONTROL_PLANE_ENDPOINT_PORT: 9443\n",
    ]);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(
        out.warnings[0].starts_with("VSPHERE_CONTROL_PLANE_ENDPOINT_PORT is 9443 (cfg1.yaml:2:38) but CLUSTER_API_SERVER_PORT is 8443 (cfg0.yaml:3:26): the site's flows use 9443, because NSX Advanced Load Balancer provides the control-plane endpoint"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn ports_that_agree_give_no_warning() {
    for cfg in [
        "VSPHERE_CONTROL_PLANE_ENDPOINT: 198.18.10.5:6443\n",
        "CLUSTER_API_SERVER_PORT: 8443\nVSPHERE_CONTROL_PLANE_ENDPOINT: https://cp.corp.example:8443/\n",
        "VSPHERE_CONTROL_PLANE_ENDPOINT: fd00::5\n",
        "VSPHERE_CONTROL_PLANE_ENDPOINT: cp.corp.example\n",
    ] {
        let out = import(&[cfg]);
        assert!(out.warnings.is_empty(), "{cfg}: {:?}", out.warnings);
    }
}

#[test]
fn a_bad_port_in_the_endpoint_is_a_located_error() {
    let mut cfg = TkgConfig::default();
    cfg.add(
        "VSPHERE_CONTROL_PLANE_ENDPOINT: 198.18.10.5:70000\n",
        "c.yaml",
    )
    .unwrap();
    let e = cfg.to_site().unwrap_err().to_string();
    assert_eq!(
        e,
        "c.yaml:1:33: VSPHERE_CONTROL_PLANE_ENDPOINT is `198.18.10.5:70000`; its port `70000` is not a port between 1 and 65535"
    );
}

#[test]
fn unknown_variables_are_listed_with_the_closest_known_name() {
    let out = import_fixture("u.yaml", UNKNOWN_VARIABLES);
    let listed: Vec<(&str, &str, Option<&str>)> = out
        .unknown_variables
        .iter()
        .map(|v| (v.name.as_str(), v.at.as_str(), v.did_you_mean.as_deref()))
        .collect();
    assert_eq!(
        listed,
        [
            ("AVI_ENABEL", "u.yaml:8:13", Some("AVI_ENABLE")),
            (
                "CLUSTER_API_SERVR_PORT",
                "u.yaml:7:25",
                Some("CLUSTER_API_SERVER_PORT")
            ),
            ("MY_SITE_TAG", "u.yaml:9:14", None),
        ]
    );
    assert_eq!(
        out.unknown_variables[0].describe(),
        "u.yaml:8:13: unknown variable `AVI_ENABEL`, not used for the site file; did you mean `AVI_ENABLE`?"
    );
    // The misspelt port was not read: the default stands.
    assert!(out.yaml.contains("api_server_port: 6443"));
    // The fixture's own known variables (CLUSTER_PLAN, VSPHERE_DATACENTER,
    // LDAP_HOST) are not listed; a clean config lists nothing.
    assert!(import(&[CONFIG]).unknown_variables.is_empty());
}

#[test]
fn a_dual_stack_ip_family_without_cidrs_takes_both_tkg_defaults() {
    let out = import(&["TKG_IP_FAMILY: ipv6,ipv4\n"]);
    assert!(
        out.yaml
            .contains("  service_cidr: fd00:100:64::/108,100.64.0.0/13\n"),
        "{}",
        out.yaml
    );
    assert!(out
        .yaml
        .contains("  cluster_cidr: fd00:100:96::/48,100.96.0.0/11\n"));
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
}

#[test]
fn a_cidr_missing_a_family_of_the_ip_family_is_a_warning() {
    let out = import(&["TKG_IP_FAMILY: ipv4,ipv6\nCLUSTER_CIDR: 100.96.0.0/11\n"]);
    assert_eq!(
        out.warnings,
        ["CLUSTER_CIDR is `100.96.0.0/11` (cfg0.yaml:2:15) but TKG_IP_FAMILY is ipv4,ipv6 (cfg0.yaml:1:16): the site file keeps CLUSTER_CIDR as given, so its flows cover only ipv4 addresses; give one network per family the cluster uses"]
    );
}

#[test]
fn an_unknown_ip_family_is_an_error() {
    let mut cfg = TkgConfig::default();
    cfg.add("TKG_IP_FAMILY: ipv5\n", "c.yaml").unwrap();
    assert_eq!(
        cfg.to_site().unwrap_err().to_string(),
        "c.yaml:1:16: TKG_IP_FAMILY is `ipv5`; expected ipv4, ipv6, ipv4,ipv6 or ipv6,ipv4"
    );
}
