//! Dual-stack clusters: `service_cidr` and `cluster_cidr` may give one
//! network of each family, as TKG's `SERVICE_CIDR`/`CLUSTER_CIDR` do, and
//! flows through `@cluster_cidr` and the first hosts cover both families.

use ringfence_site::{parse_site, EXAMPLE_SITE_YAML};

fn with_cidrs(service: &str, cluster: &str) -> String {
    EXAMPLE_SITE_YAML
        .replace(
            "service_cidr: 100.64.0.0/13",
            &format!("service_cidr: {service}"),
        )
        .replace(
            "cluster_cidr: 100.96.0.0/11",
            &format!("cluster_cidr: {cluster}"),
        )
}

fn nets(v: &[&str]) -> Vec<ipnet::IpNet> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn both_halves_of_dual_stack_cidrs_resolve() {
    let text = with_cidrs(
        "100.64.0.0/13,fd00:100:64::/108",
        "100.96.0.0/11, fd00:100:96::/48",
    );
    let site = parse_site(&text, "site.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        site.tkg.cluster_cidrs(),
        nets(&["100.96.0.0/11", "fd00:100:96::/48"])
    );
    assert_eq!(
        site.tkg.service_cidrs(),
        nets(&["100.64.0.0/13", "fd00:100:64::/108"])
    );
    let r = site.resolve();
    let f = r.flow("mc-pods-internal").unwrap();
    assert_eq!(f.sources, nets(&["100.96.0.0/11", "fd00:100:96::/48"]));
    assert_eq!(
        f.destinations,
        nets(&[
            "100.64.0.1/32",
            "fd00:100:64::1/128",
            "100.96.0.1/32",
            "fd00:100:96::1/128"
        ])
    );
    // Each family's pods reach only their own family's addresses.
    let pairs = f.network_pairs();
    assert_eq!(pairs.len(), 4);
    assert!(pairs
        .iter()
        .all(|(s, d)| s.addr().is_ipv4() == d.addr().is_ipv4()));
}

#[test]
fn a_single_cidr_stays_single() {
    let site = parse_site(EXAMPLE_SITE_YAML, "site.yaml").unwrap();
    assert_eq!(site.tkg.cluster_cidr_secondary, None);
    assert_eq!(site.tkg.cluster_cidrs(), nets(&["100.96.0.0/11"]));
}

#[test]
fn two_networks_of_one_family_are_a_located_error() {
    let text = with_cidrs("100.64.0.0/13", "100.96.0.0/11,10.96.0.0/11");
    let e = parse_site(&text, "site.yaml").unwrap_err().to_string();
    let line = line_of(&text, "cluster_cidr:");
    assert_eq!(
        e,
        format!("site.yaml:{line}:17: cluster_cidr gives two networks of the same family (100.96.0.0/11 and 10.96.0.0/11)\n  help: a dual-stack cluster has one IPv4 and one IPv6 network; keep one of these")
    );
}

#[test]
fn three_networks_or_a_bad_half_are_located_errors() {
    let text = with_cidrs("100.64.0.0/13,fd00::/108,fd01::/108", "100.96.0.0/11");
    let e = parse_site(&text, "site.yaml").unwrap_err().to_string();
    let line = line_of(&text, "service_cidr:");
    assert!(
        e.starts_with(&format!(
            "site.yaml:{line}:17: service_cidr lists 3 networks"
        )),
        "{e}"
    );
    let text = with_cidrs("100.64.0.0/13,fd00:100:64::1/108", "100.96.0.0/11");
    let e = parse_site(&text, "site.yaml").unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "site.yaml:{line}:17: `fd00:100:64::1/108` has host bits set; did you mean fd00:100:64::/108?"
        )),
        "{e}"
    );
}
