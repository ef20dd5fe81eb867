//! nft address translations (`dnat`, `snat`, `masquerade`, `redirect`,
//! ranges, maps) and the matches that read them (`ct status`, `ct
//! original`, `fib ... type`), in nft text and in `nft -j` JSON.

use ringfence_model::{Action, AddrTypes, CtNat, CtStates, NatKind, NatRewrite, Rule, Ruleset};
use ringfence_parse::{parse_ruleset, RulesetFormat};
use std::net::IpAddr;

fn parse(name: &str, text: &str) -> Ruleset {
    parse_ruleset(text, name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"))
}

fn rules<'a>(rs: &'a Ruleset, chain: &str) -> &'a [Rule] {
    &rs.chain(rs.chain_by_name(chain).expect(chain)).rules
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn nat(kind: NatKind, addrs: Option<(&str, &str)>, ports: Option<(u16, u16)>) -> Action {
    Action::Nat(NatRewrite {
        kind,
        addrs: addrs.map(|(a, b)| (ip(a), ip(b))),
        ports,
    })
}

/// A DNAT to one address and one port.
fn dnat_to(addr: &str, port: u16) -> Action {
    nat(NatKind::Dnat, Some((addr, addr)), Some((port, port)))
}

const TEXT: &str = "\
table ip nat {
  chain pre {
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local tcp dport 30080 dnat to 10.1.0.1:8080
    ip daddr 10.96.0.10 udp dport 53 dnat to 10.1.0.5-10.1.0.6:5353
    dnat to ip daddr map { 10.96.0.1 : 10.1.0.1, 10.96.0.2 : 10.1.0.2 }
    tcp dport 80 redirect to :3128
  }
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat masquerade random
    ip saddr 10.0.0.0/8 snat to 198.18.0.1
  }
}
table inet filter {
  chain fwd {
    type filter hook forward priority 0; policy drop;
    ct status & dnat == dnat accept
    ct original ip daddr 10.96.0.10 ct original proto-dst 53 accept
    fib saddr type != local drop
  }
}
";

#[test]
fn nft_text_translations_become_rewrites_and_maps_one_rule_per_element() {
    let rs = parse("nat.nft", TEXT);
    let pre = rules(&rs, "ip nat pre");
    assert_eq!(pre[0].matches.dst_type, AddrTypes(AddrTypes::LOCAL));
    assert_eq!(pre[0].action, dnat_to("10.1.0.1", 8080));
    assert_eq!(
        pre[1].action,
        nat(
            NatKind::Dnat,
            Some(("10.1.0.5", "10.1.0.6")),
            Some((5353, 5353))
        )
    );
    // The map: one rule per element, narrowed by its key, one origin.
    assert_eq!(pre[2].origin, pre[3].origin);
    assert!(pre[2].matches.dst.contains(ip("10.96.0.1")));
    assert!(!pre[2].matches.dst.contains(ip("10.96.0.2")));
    assert_eq!(
        pre[2].action,
        nat(NatKind::Dnat, Some(("10.1.0.1", "10.1.0.1")), None)
    );
    assert_eq!(
        pre[3].action,
        nat(NatKind::Dnat, Some(("10.1.0.2", "10.1.0.2")), None)
    );
    assert_eq!(
        pre[4].action,
        nat(NatKind::Redirect, None, Some((3128, 3128)))
    );
    // nat chains see only a connection's first packet.
    for r in pre {
        assert_eq!(
            r.matches.ct_state,
            CtStates(CtStates::NEW | CtStates::RELATED)
        );
    }
    let post = rules(&rs, "ip nat post");
    assert_eq!(post[0].matches.ct_nat, CtNat::dnat());
    assert_eq!(post[0].action, nat(NatKind::Masquerade, None, None));
    assert_eq!(
        post[1].action,
        nat(NatKind::Snat, Some(("198.18.0.1", "198.18.0.1")), None)
    );
    let fwd = rules(&rs, "inet filter fwd");
    assert_eq!(fwd[0].matches.ct_nat, CtNat::dnat());
    assert_eq!(fwd[0].matches.ct_state, CtStates(CtStates::TRACKED));
    let o = fwd[1].matches.ct_orig.as_ref().expect("original tuple");
    assert!(o.holds(ip("10.0.0.1"), ip("10.96.0.10"), 1000, 53));
    assert!(!o.holds(ip("10.0.0.1"), ip("10.96.0.10"), 1000, 54));
    assert!(fwd[1].matches.src.v6.is_empty(), "an IPv4 original tuple");
    assert_eq!(
        fwd[2].matches.src_type,
        AddrTypes(AddrTypes::LOCAL).complement()
    );
    for r in pre.iter().chain(post).chain(fwd) {
        assert!(
            r.matches.opaque.is_empty(),
            "{}: {:?}",
            r.origin,
            r.matches.opaque
        );
    }
}

#[test]
fn nft_json_translation_maps_with_concatenated_data_carry_address_and_port() {
    let json = r#"{"nftables": [
 {"table": {"family": "ip", "name": "nat", "handle": 1}},
 {"chain": {"family": "ip", "table": "nat", "name": "pre", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
 {"rule": {"family": "ip", "table": "nat", "chain": "pre", "handle": 4, "expr": [
   {"dnat": {"family": "ip", "addr": {"map": {"key": {"payload": {"protocol": "ip", "field": "daddr"}},
      "data": {"set": [["10.96.0.1", {"concat": ["10.1.0.1", 8080]}], ["10.96.0.2", {"concat": ["10.1.0.2", 9090]}]]}}}}}]}},
 {"rule": {"family": "ip", "table": "nat", "chain": "pre", "handle": 5, "expr": [
   {"dnat": {"addr": {"range": ["10.2.0.1", "10.2.0.4"]}, "port": {"range": [80, 81]}}}]}},
 {"rule": {"family": "ip", "table": "nat", "chain": "pre", "handle": 6, "expr": [
   {"dnat": {"addr": "10.3.0.1", "flags": ["netmap"]}}]}}
]}"#;
    let rs = parse("nat.json", json);
    let pre = rules(&rs, "ip nat pre");
    assert_eq!(pre[0].action, dnat_to("10.1.0.1", 8080));
    assert_eq!(pre[1].action, dnat_to("10.1.0.2", 9090));
    assert!(pre[1].matches.dst.contains(ip("10.96.0.2")));
    assert_eq!(
        pre[2].action,
        nat(
            NatKind::Dnat,
            Some(("10.2.0.1", "10.2.0.4")),
            Some((80, 81))
        )
    );
    // A form the model does not follow stays an unknown target.
    match &pre[3].action {
        Action::Jump { target } => assert!(rs.chain(*target).is_unknown_target()),
        a => panic!("expected a jump to an unknown target, got {a:?}"),
    }
}

#[test]
fn nft_text_translation_errors_are_located() {
    let text = "table ip nat {\n  chain pre {\n    type nat hook prerouting priority dstnat;\n    dnat to 10.0.0.300:80\n  }\n}\n";
    let e = parse_ruleset(text, "bad.nft", RulesetFormat::Auto)
        .expect_err("a bad address is an error")
        .to_string();
    assert!(e.contains("bad.nft:4:13"), "{e}");
    assert!(e.contains("expected ADDR[-ADDR][:PORT[-PORT]]"), "{e}");
}

/// nft nat base chains are marked as nat chains (the kernel runs a hook's
/// nat chains together at the nat priority, -100 on prerouting, and only
/// until one sets up the translation): no rule is synthesized for that, and
/// the hook's chains come in the kernel's order, the nat chains (among
/// themselves by their own priority) before a filter chain at priority 0
/// even when one of them says 150.
#[test]
fn nat_chains_are_marked_and_run_together_at_the_nat_priority() {
    let text = r#"
table ip a {
	chain pre {
		type nat hook prerouting priority -50; policy accept;
		ip daddr 198.18.1.15 dnat to 198.18.1.16
	}
	chain f {
		type filter hook prerouting priority 0; policy accept;
		ip daddr 198.18.1.16 drop
	}
	chain m {
		type filter hook prerouting priority -120; policy accept;
	}
}
table ip b {
	chain pre {
		type nat hook prerouting priority 150; policy accept;
		tcp dport 80 redirect to :8080
	}
}
"#;
    let rs = ringfence_parse::parse_ruleset(text, "n.nft", ringfence_parse::RulesetFormat::Auto)
        .expect("parses");
    let chain = |n: &str| rs.chains.iter().find(|c| c.name == n).expect(n);
    assert!(chain("ip a pre").base.as_ref().unwrap().nat);
    assert!(chain("ip b pre").base.as_ref().unwrap().nat);
    assert!(!chain("ip a f").base.as_ref().unwrap().nat);
    assert_eq!(chain("ip b pre").rules.len(), 1, "nothing synthesized");
    let order: Vec<&str> = rs
        .base_chains(ringfence_model::Hook::Prerouting)
        .into_iter()
        .map(|c| rs.chain(c).name.as_str())
        .collect();
    assert_eq!(order, ["ip a m", "ip a pre", "ip b pre", "ip a f"]);
}

/// The iptables nat table's built-in chains are nat chains; the other
/// tables' are not.
#[test]
fn iptables_nat_table_chains_are_nat_chains() {
    let text = "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:FORWARD DROP [0:0]\nCOMMIT\n";
    let rs = ringfence_parse::parse_ruleset(text, "n.rules", ringfence_parse::RulesetFormat::Auto)
        .expect("parses");
    let nat = |n: &str| {
        rs.chains
            .iter()
            .filter(|c| c.name == n)
            .map(|c| c.base.as_ref().expect("base").nat)
            .collect::<Vec<_>>()
    };
    assert_eq!(nat("nat:PREROUTING"), [true]);
    assert_eq!(nat("nat:POSTROUTING"), [true]);
    assert_eq!(nat("FORWARD"), [false]);
}

/// nft prints an IPv6 translation address without a port unbracketed
/// (`nft list ruleset` prints `dnat to ::1`): the whole word is the
/// address, not `:` and port 1, in text as in `nft -j` JSON; a bracketed
/// address takes a port, and `:PORT` alone still keeps the address.
#[test]
fn nft_ipv6_translation_addresses_with_leading_colons_are_addresses() {
    let text = "table ip6 nat {\n  chain pre {\n    type nat hook prerouting priority dstnat;\n    ip6 daddr 2001:2::5 dnat to ::1\n    ip6 daddr 2001:2::6 udp dport 53 dnat to [::1]:5353\n    ip6 daddr 2001:2::7 tcp dport 80 redirect to :8080\n  }\n}\n";
    let rs = parse("v6.nft", text);
    let pre = rules(&rs, "ip6 nat pre");
    assert_eq!(
        pre[0].action,
        nat(NatKind::Dnat, Some(("::1", "::1")), None)
    );
    assert_eq!(pre[1].action, dnat_to("::1", 5353));
    assert_eq!(
        pre[2].action,
        nat(NatKind::Redirect, None, Some((8080, 8080)))
    );
    let json = r#"{"nftables": [
 {"table": {"family": "ip6", "name": "nat", "handle": 1}},
 {"chain": {"family": "ip6", "table": "nat", "name": "pre", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
 {"rule": {"family": "ip6", "table": "nat", "chain": "pre", "handle": 2, "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "2001:2::5"}},
   {"dnat": {"addr": "::1"}}]}}]}"#;
    let rs = parse("v6.json", json);
    assert_eq!(
        rules(&rs, "ip6 nat pre")[0].action,
        nat(NatKind::Dnat, Some(("::1", "::1")), None)
    );
}
