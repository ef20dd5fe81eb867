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
