//! The text forms of port, protocol and address sets and of excess regions
//! (issue 16): lists joined with ", ", `all but ...` for a set that is
//! everything except a few values, hosts without a prefix length, IPv6
//! endpoints in brackets. Property tests read each text form back and
//! compare it with the set it came from.

use proptest::prelude::*;
use ringfence_analysis::space::{
    fam_full, format_addrs, format_addrs_text, format_endpoint, format_ports, format_ports_text,
    format_proto, format_proto_text, parse_addrs, parse_ports, parse_protos, Fam, ISet,
};
use ringfence_analysis::verify::Region;

/// Read a text port set back: `any`, a list, or `all but` a list.
fn read_ports_text(text: &str) -> ISet<u16> {
    match text.strip_prefix("all but ") {
        Some(rest) => parse_ports(rest).expect("list").complement(),
        None => parse_ports(text).expect("list"),
    }
}

fn read_protos_text(text: &str) -> ISet<u8> {
    match text.strip_prefix("all but ") {
        Some(rest) => parse_protos(rest).expect("list").complement(),
        None => parse_protos(text).expect("list"),
    }
}

/// Read a text address set back (hosts get their prefix length again).
fn read_addrs_text(fam: Fam, text: &str) -> ISet<u128> {
    let items = |t: &str| -> Vec<String> {
        t.split(", ")
            .map(|i| {
                if i.contains('/') || i.contains('-') {
                    i.to_string()
                } else if fam == Fam::V4 {
                    format!("{i}/32")
                } else {
                    format!("{i}/128")
                }
            })
            .collect()
    };
    match text.strip_prefix("all but ") {
        Some(rest) => fam_full(fam).difference(&parse_addrs(&items(rest)).expect("list").1),
        None => parse_addrs(&items(text)).expect("list").1,
    }
}

fn ports(r: &[(u16, u16)]) -> ISet<u16> {
    ISet::from_ranges(r.iter().copied())
}

#[test]
fn ports_are_listed_with_ranges_and_complements_say_all_but() {
    assert_eq!(
        format_ports_text(&ports(&[(22, 22), (80, 89)])),
        "22, 80-89"
    );
    assert_eq!(
        format_ports_text(&ports(&[(0, 5), (7, 65535)])),
        "all but 6"
    );
    assert_eq!(
        format_ports_text(&ports(&[(0, 21), (23, 79), (81, 65535)])),
        "all but 22, 80"
    );
    assert_eq!(format_ports_text(&ISet::full()), "any");
    assert_eq!(format_ports_text(&ports(&[(443, 443)])), "443");
    // One range touching one end stays a range; a large gap stays a list.
    assert_eq!(format_ports_text(&ports(&[(1, 65535)])), "1-65535");
    assert_eq!(
        format_ports_text(&ports(&[(0, 99), (60000, 65535)])),
        "0-99, 60000-65535"
    );
}

#[test]
fn protocols_are_named_and_complements_say_all_but() {
    let p = |r: &[(u8, u8)]| ISet::from_ranges(r.iter().copied());
    assert_eq!(format_proto_text(&p(&[(6, 6), (17, 17)])), "tcp, udp");
    assert_eq!(format_proto_text(&p(&[(0, 5), (7, 255)])), "all but tcp");
    assert_eq!(format_proto_text(&p(&[(0, 0), (2, 255)])), "all but icmp");
    assert_eq!(format_proto_text(&ISet::full()), "any");
}

#[test]
fn addresses_drop_host_lengths_and_complements_say_all_but() {
    let v4 = |a: [u8; 4]| u128::from(u32::from_be_bytes(a));
    let host = v4([198, 18, 1, 20]);
    assert_eq!(
        format_addrs_text(Fam::V4, &ISet::single(host)),
        "198.18.1.20"
    );
    assert_eq!(
        format_addrs_text(
            Fam::V4,
            &ISet::range(v4([198, 18, 10, 0]), v4([198, 18, 10, 255]))
        ),
        "198.18.10.0/24"
    );
    let all_but = fam_full(Fam::V4).difference(&ISet::single(v4([10, 0, 0, 5])));
    assert_eq!(format_addrs_text(Fam::V4, &all_but), "all but 10.0.0.5");
    assert_eq!(format_addrs_text(Fam::V4, &fam_full(Fam::V4)), "0.0.0.0/0");
    let v6: u128 = "2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().into();
    assert_eq!(format_addrs_text(Fam::V6, &ISet::single(v6)), "2001:db8::1");
    assert_eq!(format_addrs_text(Fam::V6, &fam_full(Fam::V6)), "::/0");
}

#[test]
fn ipv6_endpoints_are_bracketed_and_ipv4_are_not() {
    assert_eq!(format_endpoint("2001:db8::1", 443), "[2001:db8::1]:443");
    assert_eq!(format_endpoint("198.18.1.20", 443), "198.18.1.20:443");
}

fn region(protocol: &str, ports: &str, sources: &[&str], destinations: &[&str]) -> Region {
    Region {
        sources: sources.iter().map(|s| s.to_string()).collect(),
        destinations: destinations.iter().map(|s| s.to_string()).collect(),
        protocol: protocol.into(),
        ports: ports.into(),
        source_ports: None,
        header: None,
        source_zones: vec![],
        destination_zones: vec![],
        rules: vec![],
        certain: true,
        dnat: None,
    }
}

#[test]
fn a_region_reads_as_protocol_sources_destinations_and_ports() {
    let r = region("tcp", "8080", &["0.0.0.0/0"], &["198.18.1.20/32"]);
    assert_eq!(r.describe(), "tcp 0.0.0.0/0 -> 198.18.1.20 port 8080");
    let r = region(
        "udp",
        "0-52,54-65535",
        &["198.18.10.0/24"],
        &["198.18.1.53/32"],
    );
    assert_eq!(
        r.describe(),
        "udp 198.18.10.0/24 -> 198.18.1.53 ports all but 53"
    );
    let r = region(
        "tcp",
        "any",
        &["198.18.10.0/24"],
        &["198.18.1.20/32", "198.18.1.30/32"],
    );
    assert_eq!(
        r.describe(),
        "tcp 198.18.10.0/24 -> 198.18.1.20, 198.18.1.30 any port"
    );
    let r = region(
        "0-5,7-255",
        "any",
        &["2001:db8::/64"],
        &["2001:db8:1::1/128"],
    );
    assert_eq!(r.describe(), "all but tcp 2001:db8::/64 -> 2001:db8:1::1");
    let r = region(
        "any",
        "any",
        &["0.0.0.0-10.0.0.4", "10.0.0.6-255.255.255.255"],
        &["198.18.1.0/24"],
    );
    assert_eq!(
        r.describe(),
        "any protocol all but 10.0.0.5 -> 198.18.1.0/24"
    );
    let mut r = region("tcp", "22,80-89", &["198.18.10.0/24"], &["198.18.1.10/32"]);
    r.source_ports = Some("1024-65535".into());
    assert_eq!(
        r.describe(),
        "tcp 198.18.10.0/24 source ports 1024-65535 -> 198.18.1.10 ports 22, 80-89"
    );
}

fn port_set() -> impl Strategy<Value = ISet<u16>> {
    prop::collection::vec((any::<u16>(), any::<u16>()), 1..6)
        .prop_map(|v| ISet::from_ranges(v.into_iter().map(|(a, b)| (a.min(b), a.max(b)))))
}

fn proto_set() -> impl Strategy<Value = ISet<u8>> {
    prop::collection::vec((any::<u8>(), any::<u8>()), 1..5)
        .prop_map(|v| ISet::from_ranges(v.into_iter().map(|(a, b)| (a.min(b), a.max(b)))))
}

fn v4_set() -> impl Strategy<Value = ISet<u128>> {
    prop::collection::vec((any::<u32>(), any::<u32>()), 1..5).prop_map(|v| {
        ISet::from_ranges(
            v.into_iter()
                .map(|(a, b)| (u128::from(a.min(b)), u128::from(a.max(b)))),
        )
    })
}

proptest! {
    #[test]
    fn port_text_reads_back_to_the_same_set(s in port_set()) {
        prop_assert_eq!(read_ports_text(&format_ports_text(&s)), s.clone());
        prop_assert_eq!(parse_ports(&format_ports(&s)), Some(s));
    }

    #[test]
    fn port_text_is_never_longer_in_pieces_than_the_plain_list(s in port_set()) {
        let text = format_ports_text(&s);
        let pieces = text.trim_start_matches("all but ").split(", ").count();
        prop_assert!(text == "any" || pieces <= s.ranges().len());
    }

    #[test]
    fn protocol_text_reads_back_to_the_same_set(s in proto_set()) {
        prop_assert_eq!(read_protos_text(&format_proto_text(&s)), s.clone());
        prop_assert_eq!(parse_protos(&format_proto(&s)), Some(s));
    }

    #[test]
    fn address_text_reads_back_to_the_same_set(s in v4_set()) {
        prop_assert_eq!(read_addrs_text(Fam::V4, &format_addrs_text(Fam::V4, &s)), s.clone());
        prop_assert_eq!(parse_addrs(&format_addrs(Fam::V4, &s)), Some((Fam::V4, s)));
    }
}
