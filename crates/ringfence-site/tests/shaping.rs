//! `disable:` and `narrow:`: a site drops flows by id and narrows a flow to
//! part of what its row gives; anything that would widen a flow, or names
//! an unknown flow or zone, is a located error.

use ringfence_site::render::{render, FlowFormat};
use ringfence_site::{parse_site, PortRange, Protocol, ResolvedSite, Service};

/// An OIDC site; SHAPE is replaced by each test's `disable:`/`narrow:`, and
/// IDP by a zone of the site's own, `idp-clients`, inside the first
/// workload network, when the shape uses it.
const BASE: &str = r#"name: shaped
tkg:
  version: "1.5"
  identity: oidc
zones:
  management: [198.18.10.0/24]
  workload: [198.18.20.0/24, 198.18.21.0/24]
IDP  jumpbox: [198.18.1.10]
  bootstrap: [198.18.1.11]
  harbor: [198.18.1.20]
  vcenter: [198.18.1.30]
  dns: [198.18.1.53]
  ntp: [198.18.1.123]
  dhcp: [198.18.1.67]
SHAPE
"#;

fn text(shape: &str) -> String {
    let idp = if shape.contains("idp-client") {
        "  idp-clients: [198.18.20.0/26]\n"
    } else {
        ""
    };
    BASE.replace("SHAPE", shape).replace("IDP", idp)
}

fn resolve(shape: &str) -> ResolvedSite {
    parse_site(&text(shape), "site.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .resolve()
}

fn err(shape: &str) -> String {
    match parse_site(&text(shape), "site.yaml") {
        Ok(_) => panic!("expected an error for:\n{shape}"),
        Err(e) => e.to_string(),
    }
}

/// 1-based line and column in the site file of the `nth` (0-based)
/// occurrence of `needle` in `shape`.
fn pos(shape: &str, needle: &str, nth: usize) -> (usize, usize) {
    let t = text(shape);
    let first = shape.lines().next().unwrap();
    let start = t.lines().position(|l| l == first).unwrap();
    let mut seen = 0;
    for (i, l) in t.lines().enumerate().skip(start) {
        let mut from = 0;
        while let Some(c) = l[from..].find(needle) {
            if seen == nth {
                return (i + 1, from + c + 1);
            }
            seen += 1;
            from += c + 1;
        }
    }
    panic!("{needle} not in {t}");
}

fn tcp(first: u16, last: u16) -> Service {
    Service {
        protocol: Protocol::Tcp,
        ports: PortRange { first, last },
    }
}

fn udp(p: u16) -> Service {
    Service {
        protocol: Protocol::Udp,
        ports: PortRange::single(p),
    }
}

fn nets(v: &[&str]) -> Vec<ipnet::IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn disable_removes_the_flow_and_lists_it_as_disabled() {
    let plain = resolve("");
    assert!(plain.flow("ssh-to-jumpbox").is_some());
    let r = resolve("disable: [ssh-to-jumpbox, bootstrap-allow-pinniped]");
    assert!(r.flow("ssh-to-jumpbox").is_none());
    assert!(r.flow("bootstrap-allow-pinniped").is_none());
    assert_eq!(r.flows.len(), plain.flows.len() - 2);
    let ids: Vec<&str> = r.disabled.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["ssh-to-jumpbox", "bootstrap-allow-pinniped"]);
    assert_eq!(
        r.disabled[0].purpose,
        "Operators reach the jumpbox over SSH from outside."
    );
}

#[test]
fn a_disabled_flows_zone_is_no_longer_required() {
    // Without dhcp: the dhcp zone is missing and the site is refused...
    let no_dhcp = text("").replace("  dhcp: [198.18.1.67]\n", "");
    let e = parse_site(&no_dhcp, "site.yaml").unwrap_err().to_string();
    assert!(e.contains("`dhcp` (needed by dhcp)"), "{e}");
    // ...unless the site disables the flow that needs it.
    let shaped = format!("{no_dhcp}disable: [dhcp]\n");
    let r = parse_site(&shaped, "site.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .resolve();
    assert!(r.flow("dhcp").is_none());
}

#[test]
fn narrowing_sources_keeps_only_the_named_zone() {
    let r = resolve("narrow:\n  allow-pinniped:\n    from: [idp-clients]");
    let f = r.flow("allow-pinniped").unwrap();
    assert_eq!(f.sources, nets(&["198.18.20.0/26"]));
    assert_eq!(f.source_zones, ["idp-clients"]);
    assert_eq!(f.destinations, nets(&["198.18.10.0/24"]));
    assert_eq!(f.services, [tcp(31234, 31234)]);
    let n = f.narrowed.as_ref().expect("marked as narrowed");
    assert_eq!(
        n.source_zones.as_deref(),
        Some(&["workload".to_string()][..])
    );
    assert_eq!(n.destination_zones, None);
    assert_eq!(n.services, None);
    // Other flows are untouched.
    assert_eq!(r.flow("bootstrap-allow-pinniped").unwrap().narrowed, None);
}

#[test]
fn narrowing_an_any_source_to_an_address_keeps_only_that_address() {
    let r = resolve("narrow:\n  ssh-to-jumpbox:\n    from: [198.18.2.0/24]");
    let f = r.flow("ssh-to-jumpbox").unwrap();
    assert_eq!(f.sources, nets(&["198.18.2.0/24"]));
    assert_eq!(f.source_zones, ["198.18.2.0/24"]);
    assert!(f.admits(
        "198.18.2.7".parse().unwrap(),
        "198.18.1.10".parse().unwrap(),
        Protocol::Tcp,
        22
    ));
    assert!(!f.admits(
        "198.18.3.7".parse().unwrap(),
        "198.18.1.10".parse().unwrap(),
        Protocol::Tcp,
        22
    ));
}

#[test]
fn narrowing_services_keeps_a_subset_and_a_narrower_range() {
    let r = resolve(
        "narrow:\n  mgmt-to-workload:\n    services: [{ protocol: tcp, ports: api_server }]",
    );
    let f = r.flow("mgmt-to-workload").unwrap();
    assert_eq!(f.services, [tcp(6443, 6443)]);
    assert_eq!(
        f.narrowed.as_ref().unwrap().services.as_deref(),
        Some(&[tcp(6443, 6443), tcp(5556, 5556)][..])
    );

    let avi =
        text("narrow:\n  mc-pods-internal:\n    services: [{ protocol: tcp, ports: \"443\" }]");
    let f = parse_site(&avi, "site.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .resolve();
    assert_eq!(
        f.flow("mc-pods-internal").unwrap().services,
        [tcp(443, 443)]
    );
}

#[test]
fn narrowing_destinations_keeps_only_their_own_services() {
    let r = resolve("narrow:\n  dns-ntp-outbound:\n    to: [ntp]");
    let f = r.flow("dns-ntp-outbound").unwrap();
    assert_eq!(f.destinations, nets(&["198.18.1.123/32"]));
    assert_eq!(f.destination_zones, ["ntp"]);
    assert_eq!(f.services, [udp(123)]);
    assert!(f.destination_services.is_empty());
    assert_eq!(
        f.narrowed.as_ref().unwrap().destination_zones.as_deref(),
        Some(&["dns".to_string(), "ntp".to_string()][..])
    );

    // Narrowing the services of a flow whose destinations receive different
    // services keeps each destination's own.
    let r = resolve(
        "narrow:\n  dns-ntp-outbound:\n    services: [{ protocol: udp, ports: \"53\" }, NTP]",
    );
    let f = r.flow("dns-ntp-outbound").unwrap();
    assert_eq!(f.services, [udp(53), udp(123)]);
    assert_eq!(f.destination_services.len(), 2);
    assert_eq!(f.destination_services[0].zone, "dns");
    assert_eq!(f.destination_services[0].services, [udp(53)]);
    assert_eq!(f.destination_services[1].services, [udp(123)]);
}

#[test]
fn narrowing_a_same_network_flow_pairs_the_kept_network_with_itself() {
    let r = resolve("narrow:\n  allow-wl-subnet:\n    from: [198.18.21.0/25]");
    let f = r.flow("allow-wl-subnet").unwrap();
    assert!(f.same_network);
    assert_eq!(f.sources, nets(&["198.18.21.0/25"]));
    assert_eq!(f.destinations, f.sources);
    assert_eq!(f.network_pairs().len(), 1);
}

#[test]
fn every_format_shows_narrowed_and_disabled_flows() {
    let r =
        resolve("disable: [ssh-to-jumpbox]\nnarrow:\n  allow-pinniped:\n    from: [idp-clients]");
    let table = render(&r, FlowFormat::Table);
    let row = table
        .lines()
        .find(|l| l.starts_with("allow-pinniped "))
        .unwrap();
    assert!(
        row.ends_with("[narrowed by the site: sources were workload]"),
        "{row}"
    );
    let last = table.lines().last().unwrap();
    assert!(
        last.starts_with("ssh-to-jumpbox ") && last.contains(" disabled "),
        "{last}"
    );
    let md = render(&r, FlowFormat::Markdown);
    assert!(md.contains(
        "| `ssh-to-jumpbox` | - | - | - | disabled | Operators reach the jumpbox over SSH from outside. |"
    ), "{md}");
    assert!(md.contains("[narrowed by the site: sources were workload] |"));
    let csv = render(&r, FlowFormat::Csv);
    assert!(
        csv.contains(
            "\nssh-to-jumpbox,,,,disabled,Operators reach the jumpbox over SSH from outside.\n"
        ),
        "{csv}"
    );
    assert!(csv.contains("\nallow-pinniped,198.18.20.0/26,198.18.10.0/24,tcp/31234,allow,"));
    let json: serde_json::Value = serde_json::from_str(&render(&r, FlowFormat::Json)).unwrap();
    assert_eq!(json["disabled"][0]["id"], "ssh-to-jumpbox");
    let pinniped = json["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "allow-pinniped")
        .unwrap();
    assert_eq!(pinniped["narrowed"]["source_zones"][0], "workload");
    assert_eq!(pinniped["source_zones"][0], "idp-clients");
    let dot = render(&r, FlowFormat::Dot);
    assert!(
        dot.contains(
            "idp_clients -> management [label=\"allow-pinniped (tcp/31234) [narrowed]\"];"
        ),
        "{dot}"
    );
    assert!(dot.contains("  // disabled by the site: ssh-to-jumpbox\n"));
    assert!(!dot.contains("ssh-to-jumpbox ("));
    let mermaid = render(&r, FlowFormat::Mermaid);
    assert!(
        mermaid.contains("idp_clients -->|\"allow-pinniped (tcp/31234) [narrowed]\"| management"),
        "{mermaid}"
    );
    assert!(mermaid.contains("  %% disabled by the site: ssh-to-jumpbox\n"));
}

#[test]
fn a_narrowing_that_widens_the_sources_is_a_located_error() {
    let shape = "narrow:\n  allow-pinniped:\n    from: [management]";
    let (l, c) = pos(shape, "management]", 0);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: narrowing would widen flow `allow-pinniped`: `management` holds 198.18.10.0/24, which is not inside its sources (workload)\n  help: a narrowing keeps only part of a flow; to allow a path of your own, add an extra flow"
        )
    );
}

#[test]
fn a_narrowing_that_widens_the_destinations_is_a_located_error() {
    let shape = "narrow:\n  to-harbor:\n    to: [harbor, vcenter]";
    let (l, c) = pos(shape, "vcenter]", 0);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: narrowing would widen flow `to-harbor`: `vcenter` holds 198.18.1.30/32, which is not inside its destinations (harbor)\n  help: a narrowing keeps only part of a flow; to allow a path of your own, add an extra flow"
        )
    );
}

#[test]
fn a_narrowing_that_widens_the_services_is_a_located_error() {
    let shape = "narrow:\n  allow-pinniped:\n    services: [HTTPS]";
    let (l, c) = pos(shape, "HTTPS", 0);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: narrowing would widen flow `allow-pinniped`: tcp/443 is not inside its services (tcp/31234)\n  help: keep some of the flow's services, or a narrower port range of one"
        )
    );
    // A wider range than the row's is widening too.
    let shape = "narrow:\n  allow-pinniped:\n    services: [{ protocol: tcp, ports: 31000-32000 }]";
    assert!(
        err(shape).contains("tcp/31000-32000 is not inside its services (tcp/31234)"),
        "{}",
        err(shape)
    );
}

#[test]
fn a_narrowing_naming_an_unknown_zone_suggests_the_closest() {
    let shape = "narrow:\n  allow-pinniped:\n    from: [idp-client]";
    let (l, c) = pos(shape, "idp-client]", 0);
    let e = err(shape);
    assert!(
        e.contains(&format!(
            "site.yaml:{l}:{c}: unknown zone `idp-client`\n  help: did you mean `idp-clients`?"
        )),
        "{e}"
    );
}

#[test]
fn a_narrowing_naming_a_catalog_zone_the_site_does_not_list_says_so() {
    let shape = "narrow:\n  to-vcenter:\n    from: [avi-se]";
    let (l, c) = pos(shape, "avi-se", 0);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: zone `avi-se` has no addresses in this site\n  help: list it under zones: with its addresses: avi-se: [198.18.x.y, ...]"
        )
    );
}

#[test]
fn an_unknown_flow_id_suggests_the_closest() {
    let shape = "narrow:\n  allow-pinnipd:\n    from: [idp-clients]";
    let (l, c) = pos(shape, "allow-pinnipd", 0);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: unknown flow `allow-pinnipd`\n  help: did you mean `allow-pinniped`?"
        )
    );
    let shape = "disable: [ssh-to-jumbox]";
    let (l, c) = pos(shape, "ssh-to-jumbox", 0);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: unknown flow `ssh-to-jumbox`\n  help: did you mean `ssh-to-jumpbox`?"
        )
    );
}

#[test]
fn the_deny_row_can_be_neither_disabled_nor_narrowed() {
    let shape = "disable: [deny-all]";
    let (l, c) = pos(shape, "deny-all", 0);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: flow `deny-all` is a deny row, which closes every path not allowed; it cannot be disabled\n  help: leaving it out would open traffic; to allow a path of your own, add an extra flow"
        )
    );
    let e = err("narrow:\n  deny-all:\n    from: [jumpbox]");
    assert!(e.contains("it cannot be narrowed"), "{e}");
}

#[test]
fn a_flow_that_does_not_apply_cannot_be_shaped() {
    let shape = "disable: [avi-nodeport]";
    let (l, c) = pos(shape, "avi-nodeport", 0);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: flow `avi-nodeport` does not apply to this site, so there is nothing to disable\n  help: it applies when tkg.avi.enabled is true and tkg.avi.mode is nodeport; remove the entry or change the tkg: settings"
        )
    );
}

#[test]
fn a_flow_both_disabled_and_narrowed_is_an_error() {
    let shape = "disable: [allow-pinniped]\nnarrow:\n  allow-pinniped:\n    from: [idp-clients]";
    let (l, c) = pos(shape, "allow-pinniped", 1);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: flow `allow-pinniped` is disabled, so it cannot also be narrowed\n  help: keep the disable: entry or the narrow: entry, not both"
        )
    );
}

#[test]
fn listing_a_flow_twice_under_disable_is_an_error() {
    let shape = "disable: [dhcp, dhcp]";
    let (l, c) = pos(shape, "dhcp", 1);
    assert!(
        err(shape).starts_with(&format!(
            "site.yaml:{l}:{c}: flow `dhcp` is listed twice under disable:"
        )),
        "{}",
        err(shape)
    );
}

#[test]
fn a_same_network_flow_cannot_be_narrowed_with_to() {
    let shape = "narrow:\n  allow-wl-subnet:\n    to: [198.18.21.0/25]";
    let (l, c) = pos(shape, "198.18.21.0/25", 0);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: flow `allow-wl-subnet` pairs each network only with itself (same_network), so its destinations follow its sources\n  help: narrow it with from: only"
        )
    );
}

#[test]
fn a_narrowing_that_leaves_a_destination_no_service_is_an_error() {
    let shape = "narrow:\n  dns-ntp-outbound:\n    to: [dns]\n    services: [NTP]";
    let (l, c) = pos(shape, "dns]", 0);
    let e = err(shape);
    assert!(
        e.starts_with(&format!(
            "site.yaml:{l}:{c}: the narrowing leaves destination `dns` of flow `dns-ntp-outbound` no service"
        )),
        "{e}"
    );
    let (l, c) = pos(shape, "NTP]", 0);
    assert!(
        e.contains(&format!(
            "site.yaml:{l}:{c}: udp/123 goes to none of the destinations the narrowing keeps for flow `dns-ntp-outbound`"
        )),
        "{e}"
    );
}

#[test]
fn an_empty_narrowing_is_an_error() {
    let shape = "narrow:\n  allow-pinniped: {}";
    let (l, c) = pos(shape, "{}", 0);
    assert_eq!(
        err(shape),
        format!(
            "site.yaml:{l}:{c}: the narrowing of flow `allow-pinniped` restricts nothing\n  help: give from:, to: or services: with the part of the flow to keep"
        )
    );
    let e = err("narrow:\n  allow-pinniped:\n    from: []");
    assert!(
        e.contains("`from:` of the narrowing of flow `allow-pinniped` is empty"),
        "{e}"
    );
    assert!(e.contains("use `disable: [allow-pinniped]`"), "{e}");
}

#[test]
fn an_unknown_key_in_a_narrowing_suggests_the_closest() {
    let shape = "narrow:\n  allow-pinniped:\n    service: [HTTPS]";
    let (l, c) = pos(shape, "service", 0);
    let e = err(shape);
    assert!(
        e.starts_with(&format!("site.yaml:{l}:{c}: unknown field `service`")),
        "{e}"
    );
    assert!(e.contains("did you mean `services`?"), "{e}");
}

#[test]
fn a_zone_used_only_by_a_narrowing_is_accepted_and_any_other_is_not() {
    // idp-clients is used by the narrowing: accepted.
    resolve("narrow:\n  allow-pinniped:\n    from: [idp-clients]");
    // Without a narrowing (or extra flow) using it, the zone is unknown.
    let t = text("").replace("  jumpbox:", "  idp-clients: [198.18.20.0/26]\n  jumpbox:");
    let e = parse_site(&t, "site.yaml").unwrap_err().to_string();
    assert!(e.contains("unknown zone `idp-clients`"), "{e}");
    assert!(e.contains("used by an extra flow or a narrowing"), "{e}");
}

#[test]
fn a_zone_a_narrowing_leaves_out_is_no_longer_required() {
    // Only NTP is kept of dns-ntp-outbound, so the site need not list DNS.
    let t =
        text("narrow:\n  dns-ntp-outbound:\n    to: [ntp]").replace("  dns: [198.18.1.53]\n", "");
    let r = parse_site(&t, "site.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .resolve();
    assert_eq!(r.flow("dns-ntp-outbound").unwrap().services, [udp(123)]);
    // Without the narrowing the missing zone is reported.
    let t = text("").replace("  dns: [198.18.1.53]\n", "");
    let e = parse_site(&t, "site.yaml").unwrap_err().to_string();
    assert!(e.contains("`dns` (needed by dns-ntp-outbound)"), "{e}");
}
