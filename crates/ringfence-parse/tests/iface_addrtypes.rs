//! Address-type tests limited to one interface of the packet (iptables
//! `-m addrtype --limit-iface-in/--limit-iface-out`, nft `fib saddr|daddr .
//! iif|oif type`) are model fields ([`ringfence_model::IfaceTypes`]), not
//! opaque matches: the type lookup runs on that interface only, so `LOCAL`
//! there means an address assigned to it (issue 15).

use ringfence_model::{AddrTypes, IfaceTypes, Match, Ruleset};
use ringfence_parse::{parse_ruleset, RulesetFormat};

fn parse(name: &str, text: &str) -> Ruleset {
    parse_ruleset(text, name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"))
}

fn filter(rules: &str) -> String {
    format!("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING - [0:0]\n{rules}\nCOMMIT\n")
}

/// The match of the first rule of chain `name`.
fn first(rs: &Ruleset, name: &str) -> Match {
    let c = rs.chain(
        rs.chain_by_name(name)
            .unwrap_or_else(|| panic!("no chain {name}")),
    );
    c.rules[0].matches.clone()
}

fn limited(src_in: u16, dst_in: u16, src_out: u16, dst_out: u16) -> Option<Box<IfaceTypes>> {
    Some(Box::new(IfaceTypes {
        src_in: AddrTypes(src_in),
        dst_in: AddrTypes(dst_in),
        src_out: AddrTypes(src_out),
        dst_out: AddrTypes(dst_out),
    }))
}

const ALL: u16 = AddrTypes::ALL.0;
const LOCAL: u16 = AddrTypes::LOCAL;

#[test]
fn limit_iface_in_makes_the_modules_type_tests_input_interface_fields_not_opaque() {
    let rs = parse(
        "lim.rules",
        &filter(
            "-A INPUT -p tcp --dport 22 -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT",
        ),
    );
    let m = first(&rs, "INPUT");
    assert!(m.opaque.is_empty(), "{:?}", m.opaque);
    assert!(rs.notes.is_empty(), "{:?}", rs.notes);
    // Not a host-wide test: the global destination type stays untested.
    assert_eq!(m.dst_type, AddrTypes::ALL);
    assert_eq!(m.iface_types, limited(ALL, LOCAL, ALL, ALL));
}

#[test]
fn limit_iface_out_limits_source_and_destination_tests_of_its_module_only() {
    // Antrea's masquerade rule: the first module is limited to the output
    // interface and negated; the second is a host-wide source test.
    let rs = parse(
        "antrea.rules",
        &filter("-A POSTROUTING -o gw0 -m addrtype ! --src-type LOCAL --limit-iface-out -m addrtype --src-type LOCAL -j ACCEPT"),
    );
    let m = first(&rs, "POSTROUTING");
    assert!(m.opaque.is_empty(), "{:?}", m.opaque);
    assert_eq!(m.src_type, AddrTypes(LOCAL));
    assert_eq!(
        m.iface_types,
        limited(ALL, ALL, AddrTypes(LOCAL).complement().0, ALL)
    );
    // The limit may come before the types it limits.
    let rs = parse(
        "order.rules",
        &filter("-A FORWARD -m addrtype --limit-iface-in --src-type UNICAST --dst-type LOCAL,BROADCAST -j DROP"),
    );
    let m = first(&rs, "FORWARD");
    assert_eq!((m.src_type, m.dst_type), (AddrTypes::ALL, AddrTypes::ALL));
    assert_eq!(
        m.iface_types,
        limited(AddrTypes::UNICAST, LOCAL | AddrTypes::BROADCAST, ALL, ALL)
    );
}

#[test]
fn a_limit_without_a_type_test_tests_nothing() {
    let rs = parse(
        "bare.rules",
        &filter("-A INPUT -m addrtype --limit-iface-in -j ACCEPT"),
    );
    let m = first(&rs, "INPUT");
    assert_eq!(m.iface_types, None);
    assert!(m.opaque.is_empty(), "{:?}", m.opaque);
    assert!(!m.has_nat_fields());
}

#[test]
fn a_negated_or_doubled_interface_limit_is_a_located_error() {
    let err = |rule: &str| match parse_ruleset(&filter(rule), "bad.rules", RulesetFormat::Auto) {
        Ok(_) => panic!("accepted: {rule}"),
        Err(e) => e.to_string(),
    };
    let e = err("-A INPUT -m addrtype --dst-type LOCAL ! --limit-iface-in -j ACCEPT");
    assert!(e.contains("bad.rules:6:"), "{e}");
    assert!(e.contains("cannot be negated; remove the `!`"), "{e}");
    let e =
        err("-A INPUT -m addrtype --dst-type LOCAL --limit-iface-in --limit-iface-out -j ACCEPT");
    assert!(e.contains("bad.rules:6:"), "{e}");
    assert!(e.contains("accepts only one"), "{e}");
}

#[test]
fn nft_fib_type_with_iif_or_oif_is_an_interface_limited_field() {
    let text = "table inet f {
  chain input {
    type filter hook input priority 0; policy drop;
    tcp dport 22 fib daddr . iif type local accept
  }
  chain post {
    type nat hook postrouting priority 100;
    fib saddr . oif type != local masquerade
  }
  chain fwd {
    type filter hook forward priority 0;
    fib daddr type local drop
  }
}
";
    let rs = parse("lim.nft", text);
    assert!(rs.notes.is_empty(), "{:?}", rs.notes);
    let m = first(&rs, "inet f input");
    assert!(m.opaque.is_empty(), "{:?}", m.opaque);
    assert_eq!(m.dst_type, AddrTypes::ALL);
    assert_eq!(m.iface_types, limited(ALL, LOCAL, ALL, ALL));
    let m = first(&rs, "inet f post");
    assert_eq!(
        m.iface_types,
        limited(ALL, ALL, AddrTypes(LOCAL).complement().0, ALL)
    );
    // Without an interface it stays the host-wide test.
    let m = first(&rs, "inet f fwd");
    assert_eq!((m.dst_type, m.iface_types), (AddrTypes(LOCAL), None));
}

#[test]
fn nft_fib_type_by_mark_stays_unsupported() {
    let text = "table inet f {
  chain input {
    type filter hook input priority 0; policy accept;
    fib daddr . mark type local drop
  }
}
";
    let rs = parse("mark.nft", text);
    let m = first(&rs, "inet f input");
    assert!(m.iface_types.is_none());
    assert!(
        !m.opaque.is_empty() || !rs.notes.is_empty(),
        "a lookup by mark must not become a decided test"
    );
}
