//! Each deployment setting switches exactly its flows on or off, and the two
//! API-port overrides behave as TKG documents them.

use ringfence_site::{parse_site, PortRange, Protocol, ResolvedSite};

const BASE: &str = r#"
name: gates
tkg:
  version: "1.5"
  nsx: NSX
  identity: IDENTITY
  avi:
    enabled: AVI
    mode: MODE
    nsxt_cloud: CLOUD
AVIEXTRA
zones:
  management: [198.18.10.0/24]
  workload: [198.18.20.0/24]
  jumpbox: [198.18.1.10]
  bootstrap: [198.18.1.10]
  harbor: [198.18.1.20]
  vcenter: [198.18.1.30]
  dns: [198.18.1.53]
  ntp: [198.18.1.123]
  dhcp: [198.18.1.67]
  avi-controller: [198.18.1.40]
  avi-se: [198.18.30.0/24]
  nsx-manager: [198.18.1.50]
"#;

fn site(
    nsx: bool,
    identity: &str,
    avi: bool,
    mode: &str,
    cloud: bool,
    avi_extra: &str,
) -> ResolvedSite {
    let text = BASE
        .replace("NSX", &nsx.to_string())
        .replace("IDENTITY", identity)
        .replace("AVIEXTRA", avi_extra)
        .replace("AVI", &avi.to_string())
        .replace("MODE", mode)
        .replace("CLOUD", &cloud.to_string());
    parse_site(&text, "gates.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .resolve()
}

fn ids(r: &ResolvedSite) -> Vec<&str> {
    r.flows.iter().map(|f| f.id.as_str()).collect()
}

#[test]
fn pinniped_flows_exist_only_with_an_external_identity_provider() {
    for (identity, present) in [("none", false), ("oidc", true), ("ldap", true)] {
        let r = site(false, identity, false, "nodeport", false, "");
        assert_eq!(ids(&r).contains(&"allow-pinniped"), present, "{identity}");
        assert_eq!(
            ids(&r).contains(&"bootstrap-allow-pinniped"),
            present,
            "{identity}"
        );
    }
}

#[test]
fn avi_flows_follow_enablement_mode_and_cloud() {
    let off = site(false, "none", false, "nodeport", true, "");
    for id in [
        "avi-nodeport",
        "avi-nodeportlocal",
        "ako-to-avi",
        "avi-to-nsxt",
    ] {
        assert!(!ids(&off).contains(&id), "{id} needs Avi");
    }
    let np = site(false, "none", true, "nodeport", false, "");
    assert!(ids(&np).contains(&"avi-nodeport") && ids(&np).contains(&"ako-to-avi"));
    assert!(!ids(&np).contains(&"avi-nodeportlocal") && !ids(&np).contains(&"avi-to-nsxt"));
    let npl = site(false, "none", true, "nodeportlocal", true, "");
    assert!(ids(&npl).contains(&"avi-nodeportlocal") && ids(&npl).contains(&"avi-to-nsxt"));
    assert!(!ids(&npl).contains(&"avi-nodeport"));
    let f = npl.flow("avi-nodeportlocal").unwrap();
    assert_eq!(
        f.services[0].ports,
        PortRange {
            first: 61000,
            last: 62000
        }
    );
}

#[test]
fn dhcp_goes_to_the_dhcp_zone_without_nsx_and_anywhere_with_it() {
    let plain = site(false, "none", false, "nodeport", false, "");
    let d = plain.flow("dhcp").unwrap();
    assert_eq!(d.destinations, vec!["198.18.1.67/32".parse().unwrap()]);
    let nsx = site(true, "none", false, "nodeport", false, "");
    let d = nsx.flow("dhcp").unwrap();
    assert_eq!(d.destination_zones, vec!["any"]);
    assert_eq!(d.services[0].protocol, Protocol::Udp);
    assert_eq!(ids(&nsx).iter().filter(|i| **i == "dhcp").count(), 1);
}

#[test]
fn avi_control_plane_endpoint_port_overrides_the_api_port() {
    let extra = "  api_server_port: 7443\n";
    // Without Avi HA the cluster API server port applies.
    let text = BASE.replace("AVIEXTRA", extra);
    let r = site(false, "none", true, "nodeport", false, extra);
    assert_eq!(
        r.flow("workload-to-mgmt").unwrap().services[0].ports.first,
        7443,
        "{text}"
    );
    // With Avi providing the control-plane endpoint, its port wins.
    let ha = "    control_plane_ha: true\n    control_plane_endpoint_port: 9443\n  api_server_port: 7443\n";
    let r = site(false, "none", true, "nodeport", false, ha);
    for id in ["workload-to-mgmt", "mgmt-to-workload", "jumpbox-to-k8s"] {
        assert_eq!(r.flow(id).unwrap().services[0].ports.first, 9443, "{id}");
    }
    // The endpoint port is ignored when Avi is off, as in TKG.
    let r = site(false, "none", false, "nodeport", false, ha);
    assert_eq!(
        r.flow("workload-to-mgmt").unwrap().services[0].ports.first,
        7443
    );
}

#[test]
fn allow_wl_subnet_pairs_each_network_only_with_itself() {
    let r = ringfence_site::example_site().resolve();
    let f = r.flow("allow-wl-subnet").unwrap();
    let pairs = f.network_pairs();
    assert_eq!(pairs.len(), 2);
    assert!(
        pairs.iter().all(|(s, d)| s == d),
        "no pair between two workload networks: {pairs:?}"
    );
}

#[test]
fn mc_pods_internal_targets_the_first_hosts_of_service_and_cluster_cidr() {
    let r = ringfence_site::example_site().resolve();
    let f = r.flow("mc-pods-internal").unwrap();
    assert_eq!(f.sources, vec!["100.96.0.0/11".parse().unwrap()]);
    assert_eq!(
        f.destinations,
        vec![
            "100.64.0.1/32".parse().unwrap(),
            "100.96.0.1/32".parse().unwrap()
        ]
    );
}

#[test]
fn extra_flows_resolve_literals_and_zones_before_deny_all() {
    let text = ringfence_site::EXAMPLE_SITE_YAML.replace(
        "extra_flows: []",
        "extra_flows:\n  - id: backup\n    purpose: nightly backup\n    sources: [management]\n    destinations: [198.18.2.0/24]\n    services: [{protocol: tcp, ports: 8443}]\n",
    );
    let r = parse_site(&text, "x.yaml").unwrap().resolve();
    let ids = ids(&r);
    let pos = ids.iter().position(|i| *i == "backup").unwrap();
    assert_eq!(ids.last(), Some(&"deny-all"));
    assert!(pos < ids.len() - 1);
    let f = r.flow("backup").unwrap();
    assert_eq!(f.destinations, vec!["198.18.2.0/24".parse().unwrap()]);
    assert_eq!(f.services[0].ports, PortRange::single(8443));
}
