//! Bad site files: one test per kind of mistake, each asserting the exact
//! file:line:column and the hint we give.

use ringfence_site::parse_site;

fn err(text: &str) -> String {
    match parse_site(text, "site.yaml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn example_with(from: &str, to: &str) -> String {
    let t = ringfence_site::EXAMPLE_SITE_YAML.to_string();
    assert!(t.contains(from), "example lacks {from:?}");
    t.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn unknown_key_names_position_and_closest_key() {
    let text = example_with("extra_flows: []", "extra_flow: []");
    let e = err(&text);
    let line = line_of(&text, "extra_flow:");
    assert!(
        e.starts_with(&format!("site.yaml:{line}:1: unknown field `extra_flow`")),
        "{e}"
    );
    assert!(e.contains("did you mean `extra_flows`?"), "{e}");
}

#[test]
fn unknown_nested_key_is_located() {
    let text = example_with("    nsxt_cloud: false", "    nsx_cloud: false");
    let e = err(&text);
    let line = line_of(&text, "nsx_cloud");
    assert!(
        e.starts_with(&format!("site.yaml:{line}:5: unknown field `nsx_cloud`")),
        "{e}"
    );
    assert!(e.contains("did you mean `nsxt_cloud`?"), "{e}");
}

#[test]
fn bad_address_is_located_at_the_value() {
    let text = example_with("harbor: [198.18.1.20]", "harbor: [198.18.1.300]");
    let e = err(&text);
    let line = line_of(&text, "harbor:");
    assert!(
        e.starts_with(&format!(
            "site.yaml:{line}:12: zone `harbor`: `198.18.1.300` is not"
        )),
        "{e}"
    );
}

#[test]
fn host_bits_suggest_the_network_meant() {
    let text = example_with(
        "management: [198.18.10.0/24]",
        "management: [198.18.10.7/24]",
    );
    let e = err(&text);
    let line = line_of(&text, "management:");
    assert!(e.starts_with(&format!("site.yaml:{line}:16:")), "{e}");
    assert!(
        e.contains("has host bits set; did you mean 198.18.10.0/24?"),
        "{e}"
    );
}

#[test]
fn hostname_in_a_zone_says_addresses_are_needed() {
    let text = example_with("vcenter: [198.18.1.30]", "vcenter: [vcenter.corp.example]");
    let e = err(&text);
    assert!(e.contains("looks like a hostname"), "{e}");
}

#[test]
fn unknown_zone_suggests_the_closest_zone() {
    let text = example_with("  harbor: [198.18.1.20]", "  harbour: [198.18.1.20]");
    let e = err(&text);
    let line = line_of(&text, "harbour:");
    assert!(
        e.contains(&format!("site.yaml:{line}:3: unknown zone `harbour`")),
        "{e}"
    );
    assert!(e.contains("did you mean `harbor`?"), "{e}");
    // The now-missing harbor zone is reported too, once, at `zones:`.
    let zl = line_of(&text, "management:"); // the first entry under zones:
    assert!(
        e.contains(&format!("site.yaml:{zl}:")) && e.contains("`harbor` (needed by to-harbor)"),
        "{e}"
    );
}

#[test]
fn empty_zone_needed_by_a_flow_names_the_flow() {
    let text = example_with("dns: [198.18.1.53]", "dns: []");
    let e = err(&text);
    let line = line_of(&text, "dns: []");
    assert!(
        e.contains(&format!(
            "site.yaml:{line}:3: zone `dns` is empty, but flow `dns-ntp-outbound` needs it"
        )),
        "{e}"
    );
}

#[test]
fn empty_zone_that_no_flow_needs_is_fine() {
    // nsx-manager is only needed with an NSX-T cloud for Avi; the example has none.
    let text = example_with("nsx-manager: [198.18.1.50]", "nsx-manager: []");
    assert!(parse_site(&text, "site.yaml").is_ok());
}

#[test]
fn invalid_port_is_located() {
    let text = example_with("api_server_port: 6443", "api_server_port: 70000");
    let e = err(&text);
    let line = line_of(&text, "api_server_port");
    assert!(
        e.starts_with(&format!(
            "site.yaml:{line}:20: api_server_port 70000 is not a valid port"
        )),
        "{e}"
    );
}

#[test]
fn invalid_extra_flow_port_range_is_located() {
    let text = example_with(
        "extra_flows: []",
        "extra_flows:\n  - id: x\n    sources: [jumpbox]\n    destinations: [harbor]\n    services: [{protocol: tcp, ports: \"9000-8000\"}]\n",
    );
    let e = err(&text);
    let line = line_of(&text, "9000-8000");
    assert!(e.contains(&format!("site.yaml:{line}:")), "{e}");
    assert!(e.contains("backwards; write 8000-9000"), "{e}");
}

#[test]
fn unknown_service_name_suggests_the_closest() {
    let text = example_with(
        "extra_flows: []",
        "extra_flows:\n  - id: x\n    sources: [jumpbox]\n    destinations: [harbor]\n    services: [HTTP]\n",
    );
    let e = err(&text);
    assert!(
        e.contains("unknown service `HTTP`") && e.contains("did you mean `HTTPS`?"),
        "{e}"
    );
}

#[test]
fn unknown_identity_value_is_located() {
    let text = example_with("identity: ldap", "identity: ldapp");
    let e = err(&text);
    let line = line_of(&text, "identity:");
    assert!(e.starts_with(&format!("site.yaml:{line}:")), "{e}");
    assert!(e.contains("ldapp"), "{e}");
}

#[test]
fn unsupported_version_lists_supported_ones() {
    let text = example_with("version: \"1.5\"", "version: \"2.9\"");
    let e = err(&text);
    let line = line_of(&text, "version:");
    assert!(
        e.starts_with(&format!(
            "site.yaml:{line}:12: no catalog for TKG version `2.9`"
        )),
        "{e}"
    );
    assert!(e.contains("supported versions: 1.5"), "{e}");
}

#[test]
fn yaml_syntax_error_is_located() {
    let e = err("name: x\ntkg: [unclosed\n");
    assert!(e.starts_with("site.yaml:"), "{e}");
}

#[test]
fn empty_file_says_how_to_start() {
    let e = err("   \n");
    assert!(
        e.contains("the site file is empty") && e.contains("site example"),
        "{e}"
    );
}

/// The example with a gateway zone of two addresses as the host zone, and
/// `host_interfaces` as given.
fn gateway_host(interfaces: &str) -> String {
    example_with(
        "harbor: [198.18.1.20]",
        "harbor: [198.18.1.20]\n  gateway: [198.18.0.1, 198.18.10.1]",
    ) + "host_zone: gateway\n"
        + interfaces
}

#[test]
fn host_interfaces_place_the_host_zones_addresses() {
    let site = parse_site(
        &gateway_host("host_interfaces:\n  eth0: [198.18.0.1]\n"),
        "site.yaml",
    )
    .unwrap();
    let addrs = site.host_addresses();
    assert_eq!(
        addrs,
        [
            ("198.18.0.1".parse().unwrap(), Some("eth0".to_string())),
            ("198.18.10.1".parse().unwrap(), None),
        ]
    );
}

#[test]
fn host_interfaces_without_a_host_zone_is_refused() {
    let text = example_with(
        "extra_flows: []",
        "extra_flows: []\nhost_interfaces:\n  eth0: [198.18.1.20]",
    );
    let e = err(&text);
    let line = line_of(&text, "eth0:");
    assert!(
        e.starts_with(&format!(
            "site.yaml:{line}:3: host_interfaces: says which interface"
        )),
        "{e}"
    );
    assert!(e.contains("host_zone: <zone>"), "the fix is named: {e}");
}

#[test]
fn a_host_interface_address_outside_the_host_zone_is_located() {
    let text = gateway_host("host_interfaces:\n  eth0: [198.18.0.1, 198.18.0.2]\n");
    let e = err(&text);
    let line = line_of(&text, "eth0:");
    assert!(
        e.starts_with(&format!(
            "site.yaml:{line}:22: host_interfaces `eth0`: 198.18.0.2 is not an address of the host zone"
        )),
        "{e}"
    );
    assert!(
        e.contains("198.18.0.1, 198.18.10.1"),
        "the zone's addresses are listed: {e}"
    );
}

#[test]
fn a_host_address_under_two_interfaces_is_refused() {
    let text = gateway_host("host_interfaces:\n  eth0: [198.18.0.1]\n  eth1: [198.18.0.1]\n");
    let e = err(&text);
    let line = line_of(&text, "eth1:");
    assert!(
        e.starts_with(&format!(
            "site.yaml:{line}:10: host_interfaces: 198.18.0.1 is under both `eth0` and `eth1`"
        )),
        "{e}"
    );
}

#[test]
fn a_bad_interface_name_or_address_is_located() {
    let text = gateway_host("host_interfaces:\n  eth/0: [198.18.0.1]\n");
    let e = err(&text);
    let line = line_of(&text, "eth/0:");
    assert!(
        e.starts_with(&format!(
            "site.yaml:{line}:3: host_interfaces: `eth/0` is not an interface name"
        )),
        "{e}"
    );
    let text = gateway_host("host_interfaces:\n  eth0: [198.18.0.0/24]\n");
    let e = err(&text);
    assert!(
        e.contains("host_interfaces `eth0`: `198.18.0.0/24` is not an IP address"),
        "{e}"
    );
}
