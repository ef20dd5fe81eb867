//! A row's `destination_services` gives each destination only its own
//! services: `dns-ntp-outbound` opens DNS to the DNS servers and NTP to the
//! NTP servers, never the cross product (udp/123 to a DNS server, udp/53 to
//! an NTP server). Mistakes in the key are located errors.

use ipnet::IpNet;
use ringfence_site::{parse_site, Catalog, Protocol, Service, EXAMPLE_SITE_YAML};
use std::collections::BTreeSet;

/// What the catalog's named service `name` holds.
fn named(name: &str) -> BTreeSet<Service> {
    Catalog::for_version("1.5").unwrap().services[name]
        .iter()
        .map(|(p, r)| Service {
            protocol: *p,
            ports: *r,
        })
        .collect()
}

fn zone(site: &ringfence_site::Site, z: &str) -> Vec<IpNet> {
    site.zones[z].clone()
}

#[test]
fn dns_ntp_outbound_opens_dns_only_to_dns_servers_and_ntp_only_to_ntp_servers() {
    let site = ringfence_site::example_site();
    let r = site.resolve();
    let f = r.flow("dns-ntp-outbound").unwrap();
    let (dns, ntp) = (zone(&site, "dns"), zone(&site, "ntp"));
    let mut seen = 0;
    for (_, d, svcs) in f.paths() {
        let got: BTreeSet<Service> = svcs.into_iter().collect();
        if dns.contains(&d) {
            assert_eq!(got, named("DNS"), "to DNS server {d}");
        } else {
            assert!(ntp.contains(&d), "{d} is neither a DNS nor an NTP server");
            assert_eq!(got, named("NTP"), "to NTP server {d}");
        }
        seen += 1;
    }
    assert_eq!(
        seen,
        f.network_pairs().len(),
        "every pair carries something"
    );
    // The row as a whole still carries the table's "DNS, NTP".
    let all: BTreeSet<Service> = f.services.iter().copied().collect();
    assert_eq!(all, &named("DNS") | &named("NTP"));
    // No NTP port to a DNS server and no DNS port to an NTP server.
    for d in &dns {
        assert!(f
            .services_to(d)
            .iter()
            .all(|s| !(s.protocol == Protocol::Udp && s.ports.first == 123)));
    }
    for n in &ntp {
        assert!(f.services_to(n).iter().all(|s| s.ports.first != 53));
    }
}

#[test]
fn a_server_in_both_the_dns_and_ntp_zones_receives_both_services() {
    let text = EXAMPLE_SITE_YAML.replace("ntp: [198.18.1.123]", "ntp: [198.18.1.53]");
    let site = parse_site(&text, "both.yaml").unwrap();
    let r = site.resolve();
    let f = r.flow("dns-ntp-outbound").unwrap();
    let server: IpNet = "198.18.1.53/32".parse().unwrap();
    let got: BTreeSet<Service> = f.services_to(&server).into_iter().collect();
    assert_eq!(got, &named("DNS") | &named("NTP"));
}

#[test]
fn flows_without_destination_services_give_every_destination_every_service() {
    let r = ringfence_site::example_site().resolve();
    for f in r.flows.iter().filter(|f| f.destination_services.is_empty()) {
        for (_, d, svcs) in f.paths() {
            assert_eq!(svcs, f.services, "{} to {d}", f.id);
        }
    }
}

fn err(text: &str) -> String {
    match parse_site(text, "site.yaml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn with_extra(flow: &str) -> String {
    EXAMPLE_SITE_YAML.replace("extra_flows: []", &format!("extra_flows:\n{flow}"))
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn extra_flows_may_give_each_destination_its_own_services() {
    let text = with_extra(
        "  - id: infra\n    sources: [management]\n    destinations: [harbor, vcenter]\n    services: [HTTPS, SSH]\n    destination_services: { vcenter: [HTTPS] }\n",
    );
    let site = parse_site(&text, "x.yaml").unwrap();
    let r = site.resolve();
    let f = r.flow("infra").unwrap();
    let harbor = site.zones["harbor"][0];
    let vcenter = site.zones["vcenter"][0];
    // Unnamed destinations receive every service of the row.
    assert_eq!(f.services_to(&harbor), f.services);
    let v: BTreeSet<Service> = f.services_to(&vcenter).into_iter().collect();
    assert_eq!(v, named("HTTPS"));
}

#[test]
fn destination_services_key_that_is_not_a_destination_is_located_with_a_suggestion() {
    let text = with_extra(
        "  - id: infra\n    sources: [management]\n    destinations: [harbor, vcenter]\n    services: [HTTPS, SSH]\n    destination_services: { vcentre: [HTTPS] }\n",
    );
    let e = err(&text);
    let line = line_of(&text, "vcentre");
    assert!(
        e.contains(&format!(
            "site.yaml:{line}:29: `vcentre` is not a destination of flow `infra`"
        )),
        "{e}"
    );
    assert!(e.contains("did you mean `vcenter`?"), "{e}");
}

#[test]
fn destination_services_may_name_only_the_flows_own_services() {
    let text = with_extra(
        "  - id: infra\n    sources: [management]\n    destinations: [harbor, vcenter]\n    services: [HTTPS]\n    destination_services: { vcenter: [SSH] }\n",
    );
    let e = err(&text);
    let line = line_of(&text, "destination_services");
    assert!(
        e.contains(&format!(
            "site.yaml:{line}:39: service `SSH` is not one of flow `infra`'s services"
        )),
        "{e}"
    );
}

#[test]
fn a_service_given_to_no_destination_is_an_error() {
    let text = with_extra(
        "  - id: infra\n    sources: [management]\n    destinations: [harbor, vcenter]\n    services: [HTTPS, SSH]\n    destination_services: { harbor: [HTTPS], vcenter: [HTTPS] }\n",
    );
    let e = err(&text);
    assert!(
        e.contains("service `SSH` of flow `infra` goes to none of its destinations"),
        "{e}"
    );
}

#[test]
fn same_network_flows_cannot_split_services_per_destination() {
    let text = with_extra(
        "  - id: mesh\n    sources: [management]\n    destinations: [management]\n    same_network: true\n    services: [HTTPS, SSH]\n    destination_services: { management: [HTTPS] }\n",
    );
    let e = err(&text);
    assert!(
        e.contains("flow `mesh` sets same_network, which cannot also give its destinations different services"),
        "{e}"
    );
}

#[test]
fn split_by_destination_opens_exactly_what_paths_open() {
    let r = ringfence_site::example_site().resolve();
    let split = r.split_by_destination();
    let paths = |site: &ringfence_site::ResolvedSite| -> BTreeSet<(String, IpNet, IpNet, Service)> {
        let mut out = BTreeSet::new();
        for f in &site.flows {
            for (s, d, svcs) in f.paths() {
                for svc in svcs {
                    out.insert((f.id.clone(), s, d, svc));
                }
            }
        }
        out
    };
    let cross = |site: &ringfence_site::ResolvedSite| -> BTreeSet<(String, IpNet, IpNet, Service)> {
        let mut out = BTreeSet::new();
        for f in &site.flows {
            for (s, d) in f.network_pairs() {
                for svc in &f.services {
                    out.insert((f.id.clone(), s, d, *svc));
                }
            }
        }
        out
    };
    assert_eq!(paths(&split), paths(&r));
    assert_eq!(cross(&split), paths(&r), "no cross product left to pair");
    assert!(split
        .flows
        .iter()
        .all(|f| f.destination_services.is_empty()));
    assert!(
        cross(&r).len() > paths(&r).len(),
        "the example has a split row"
    );
}
