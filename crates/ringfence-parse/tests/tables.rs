//! Every iptables table is read into the model as base chains at the
//! kernel's priorities, with targets read by their effect; nft nat chains
//! and translation statements likewise (issue 15).

use ringfence_model::{
    Action, AddrTypes, CtNat, CtStates, Hook, NatKind, NatRewrite, Policy, Ruleset,
};
use ringfence_parse::{parse_ruleset, RulesetFormat};

fn parse(name: &str, text: &str) -> Ruleset {
    parse_ruleset(text, name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"))
}

const ALL_TABLES: &str = "\
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
*security
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
";

/// (name, hook, priority, policy) of every base chain.
fn bases(rs: &Ruleset) -> Vec<(String, Hook, i32, Policy)> {
    rs.chains
        .iter()
        .filter_map(|c| {
            c.base
                .as_ref()
                .map(|b| (c.name.clone(), b.hook, b.priority, b.policy))
        })
        .collect()
}

#[test]
fn every_table_becomes_base_chains_at_the_kernel_priorities() {
    let rs = parse("all.rules", ALL_TABLES);
    let got = bases(&rs);
    let want = [
        ("raw:PREROUTING", Hook::Prerouting, -300, Policy::Accept),
        ("raw:OUTPUT", Hook::Output, -300, Policy::Accept),
        ("mangle:PREROUTING", Hook::Prerouting, -150, Policy::Accept),
        ("mangle:INPUT", Hook::Input, -150, Policy::Accept),
        ("mangle:FORWARD", Hook::Forward, -150, Policy::Drop),
        ("mangle:OUTPUT", Hook::Output, -150, Policy::Accept),
        (
            "mangle:POSTROUTING",
            Hook::Postrouting,
            -150,
            Policy::Accept,
        ),
        ("nat:PREROUTING", Hook::Prerouting, -100, Policy::Accept),
        ("nat:INPUT", Hook::Input, 100, Policy::Accept),
        ("nat:OUTPUT", Hook::Output, -100, Policy::Accept),
        ("nat:POSTROUTING", Hook::Postrouting, 100, Policy::Accept),
        ("INPUT", Hook::Input, 0, Policy::Accept),
        ("FORWARD", Hook::Forward, 0, Policy::Drop),
        ("OUTPUT", Hook::Output, 0, Policy::Accept),
        ("security:INPUT", Hook::Input, 50, Policy::Accept),
        ("security:FORWARD", Hook::Forward, 50, Policy::Accept),
        ("security:OUTPUT", Hook::Output, 50, Policy::Accept),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|&(n, h, p, pol)| (n.to_string(), h, p, pol))
        .collect();
    assert_eq!(got, want);
    assert!(rs.notes.is_empty(), "{:?}", rs.notes);
}

#[test]
fn the_forward_path_orders_chains_by_hook_then_priority_and_skips_empty_accepting_ones() {
    let rs = parse("all.rules", ALL_TABLES);
    let names = |h: Hook| -> Vec<&str> {
        rs.path_chains(h)
            .into_iter()
            .map(|c| rs.chain(c).name.as_str())
            .collect()
    };
    // Off the forward hook every chain is empty and accepts: left out. On
    // it, every base chain stays (as before the other tables were read).
    assert_eq!(
        names(Hook::Forward),
        ["mangle:FORWARD", "FORWARD", "security:FORWARD"]
    );
    let with_rules = ALL_TABLES
        .replace(
            "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
            "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j NOTRACK\n",
        )
        .replace(
            ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter",
            ":POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n*filter",
        );
    let rs = parse("rules.rules", &with_rules);
    let names: Vec<&str> = rs
        .path_chains(Hook::Forward)
        .into_iter()
        .map(|c| rs.chain(c).name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "raw:PREROUTING",
            "mangle:FORWARD",
            "FORWARD",
            "security:FORWARD",
            "nat:POSTROUTING"
        ]
    );
}

/// The action of the only rule of chain `chain`, with a jump's target named.
fn action_of(rs: &Ruleset, chain: &str) -> String {
    let c = rs.chain(rs.chain_by_name(chain).expect(chain));
    assert_eq!(c.rules.len(), 1, "{chain}");
    match &c.rules[0].action {
        Action::Jump { target } => format!("jump {}", rs.chain(*target).name),
        a => format!("{a:?}"),
    }
}

#[test]
fn targets_are_read_by_their_effect() {
    let text = "\
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -j NOTRACK
-A OUTPUT -j CT --notrack
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp --dport 80 -j TPROXY --on-port 3128 --tproxy-mark 0x1/0x1
-A INPUT -j MARK --set-mark 0x1
-A FORWARD -p tcp -j TCPMSS --clamp-mss-to-pmtu
-A OUTPUT -j TTL --ttl-set 64
-A POSTROUTING -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SEP - [0:0]
-A PREROUTING -p tcp --dport 8080 -j REDIRECT --to-ports 80
-A INPUT -j SNAT --to-source 10.0.0.1
-A OUTPUT -j KUBE-SEP
-A POSTROUTING -j MASQUERADE
-A KUBE-SEP -p tcp -j DNAT --to-destination 10.1.0.1:80
COMMIT
";
    let rs = parse("targets.rules", text);
    assert_eq!(action_of(&rs, "raw:PREROUTING"), "jump ?NOTRACK");
    assert_eq!(action_of(&rs, "raw:OUTPUT"), "jump ?CT");
    assert_eq!(action_of(&rs, "mangle:PREROUTING"), "jump ?TPROXY");
    // MARK is a mark rewrite the model follows (tests/marks.rs).
    assert!(action_of(&rs, "mangle:INPUT").starts_with("Mark("));
    assert_eq!(action_of(&rs, "mangle:FORWARD"), "Continue");
    assert_eq!(action_of(&rs, "mangle:OUTPUT"), "Continue");
    assert_eq!(action_of(&rs, "mangle:POSTROUTING"), "Drop");
    // Address translations are rewrites the model follows.
    assert_eq!(
        action_of(&rs, "nat:PREROUTING"),
        "Nat(NatRewrite { kind: Redirect, addrs: None, ports: Some((80, 80)) })"
    );
    assert_eq!(
        action_of(&rs, "nat:INPUT"),
        "Nat(NatRewrite { kind: Snat, addrs: Some((10.0.0.1, 10.0.0.1)), ports: None })"
    );
    assert_eq!(action_of(&rs, "nat:OUTPUT"), "jump nat:KUBE-SEP");
    assert_eq!(
        action_of(&rs, "nat:POSTROUTING"),
        "Nat(NatRewrite { kind: Masquerade, addrs: None, ports: None })"
    );
    assert_eq!(
        action_of(&rs, "nat:KUBE-SEP"),
        "Nat(NatRewrite { kind: Dnat, addrs: Some((10.1.0.1, 10.1.0.1)), ports: Some((80, 80)) })"
    );
    // A synthesized chain's one rule may match anything and decides.
    let tp = rs.chain(rs.chain_by_name("?TPROXY").unwrap());
    assert!(!tp.rules[0].matches.opaque.is_empty());
    // nat rules see only a connection's first packet.
    for name in ["nat:PREROUTING", "nat:KUBE-SEP", "nat:POSTROUTING"] {
        let c = rs.chain(rs.chain_by_name(name).unwrap());
        assert_eq!(
            c.rules[0].matches.ct_state,
            CtStates(CtStates::NEW | CtStates::RELATED),
            "{name}"
        );
    }
    // Rules of other tables keep every state.
    let c = rs.chain(rs.chain_by_name("mangle:POSTROUTING").unwrap());
    assert_eq!(c.rules[0].matches.ct_state, CtStates::ALL);
}

#[test]
fn ctstate_dnat_snat_are_translation_fields_split_into_disjoint_rules() {
    let text = "\
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW,SNAT -j ACCEPT
-A FORWARD -m conntrack ! --ctstate NEW,DNAT -j ACCEPT
-A FORWARD -m conntrack --ctstatus CONFIRMED -j ACCEPT
-A FORWARD -m conntrack --ctstatus DNAT --ctorigdst 10.0.0.1 --ctorigdstport 8022 -j ACCEPT
COMMIT
";
    let rs = parse("ct.rules", text);
    let rules = &rs.chains[0].rules;
    let origin = |i: usize| rules[i].origin.to_string();
    // `--ctstate DNAT`: any state, destination translated.
    assert_eq!(rules[0].matches.ct_state, CtStates::ALL);
    assert_eq!(rules[0].matches.ct_nat, CtNat::dnat());
    assert!(rules[0].matches.opaque.is_empty());
    // `NEW,SNAT`: NEW; or any other state with the source translated.
    assert_eq!(origin(1), origin(2));
    assert_eq!(rules[1].matches.ct_state, CtStates(CtStates::NEW));
    assert_eq!(rules[1].matches.ct_nat, CtNat::ALL);
    assert_eq!(
        rules[2].matches.ct_state,
        CtStates(CtStates::NEW).complement()
    );
    assert_eq!(rules[2].matches.ct_nat, CtNat::snat());
    // Negated: neither NEW nor a destination translation.
    assert_eq!(
        rules[3].matches.ct_state,
        CtStates(CtStates::NEW).complement()
    );
    assert_eq!(rules[3].matches.ct_nat, CtNat::dnat().complement());
    // Statuses other than SNAT/DNAT stay "may match".
    assert_eq!(rules[4].matches.ct_state, CtStates(CtStates::TRACKED));
    assert_eq!(rules[4].matches.opaque.len(), 1);
    // Status and original tuple are fields; they need a connection.
    let m = &rules[5].matches;
    assert!(m.opaque.is_empty());
    assert_eq!(m.ct_nat, CtNat::dnat());
    assert_eq!(m.ct_state, CtStates(CtStates::TRACKED));
    let o = m.ct_orig.as_ref().expect("original tuple test");
    assert!(o.holds(
        "1.2.3.4".parse().unwrap(),
        "10.0.0.1".parse().unwrap(),
        5000,
        8022
    ));
    assert!(!o.holds(
        "1.2.3.4".parse().unwrap(),
        "10.0.0.2".parse().unwrap(),
        5000,
        8022
    ));
    assert_eq!(rules.len(), 6);
}

#[test]
fn addrtype_and_translation_targets_read_their_arguments() {
    let text = "\
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -p tcp --dport 30080 -j DNAT --to-destination 10.1.0.1-10.1.0.3:8080-8090
-A PREROUTING -m addrtype ! --src-type LOCAL,MULTICAST -j DNAT --to-destination :8443
-A OUTPUT -p tcp -j REDIRECT --to-ports 15001
-A POSTROUTING -j MASQUERADE --to-ports 1024-2048 --random-fully
-A POSTROUTING -j SNAT --to-source 10.9.0.1-10.9.0.2
COMMIT
";
    let rs = parse("nat.rules", text);
    let pre = rs.chain(rs.chain_by_name("nat:PREROUTING").unwrap());
    assert_eq!(pre.rules[0].matches.dst_type, AddrTypes(AddrTypes::LOCAL));
    assert_eq!(
        pre.rules[0].action,
        Action::Nat(NatRewrite {
            kind: NatKind::Dnat,
            addrs: Some(("10.1.0.1".parse().unwrap(), "10.1.0.3".parse().unwrap())),
            ports: Some((8080, 8090)),
        })
    );
    assert_eq!(
        pre.rules[1].matches.src_type,
        AddrTypes(AddrTypes::LOCAL | AddrTypes::MULTICAST).complement()
    );
    assert_eq!(
        pre.rules[1].action,
        Action::Nat(NatRewrite {
            kind: NatKind::Dnat,
            addrs: None,
            ports: Some((8443, 8443)),
        })
    );
    let post = rs.chain(rs.chain_by_name("nat:POSTROUTING").unwrap());
    assert_eq!(
        post.rules[0].action,
        Action::Nat(NatRewrite {
            kind: NatKind::Masquerade,
            addrs: None,
            ports: Some((1024, 2048)),
        })
    );
    // The random source port is said in a note.
    assert!(rs
        .notes
        .iter()
        .any(|n| n.location == "nat.rules:8:19" && n.message.contains("at random")));
}

#[test]
fn bad_translation_arguments_are_located_errors() {
    let err = |rule: &str| {
        let text = format!("*nat\n:PREROUTING ACCEPT [0:0]\n{rule}\nCOMMIT\n");
        match parse_ruleset(&text, "bad.rules", RulesetFormat::Auto) {
            Ok(_) => panic!("accepted: {rule}"),
            Err(e) => e.to_string(),
        }
    };
    let e = err("-A PREROUTING -j DNAT --to-destination 10.0.0.300");
    assert!(e.contains("bad.rules:3:40"), "{e}");
    assert!(e.contains("not an IPv4 address"), "{e}");
    let e = err("-A PREROUTING -j DNAT");
    assert!(e.contains("needs `--to-destination`"), "{e}");
    let e = err("-A PREROUTING -j REDIRECT --to-ports 90-80");
    assert!(e.contains("expected PORT or PORT-PORT"), "{e}");
    let e = err("-A PREROUTING -m addrtype --dst-type LOCALE -j ACCEPT");
    assert!(e.contains("unknown address type `LOCALE`"), "{e}");
    let e = err("-A PREROUTING -j DNAT --to-destination 10.0.0.1 --bogus");
    assert!(e.contains("option `--bogus`"), "{e}");
}

#[test]
fn chain_names_resolve_inside_their_own_table() {
    // The same user chain name in two tables: two chains; each jump lands
    // in its own table.
    let text = "\
*nat
:PREROUTING ACCEPT [0:0]
:X - [0:0]
-A PREROUTING -j X
COMMIT
*filter
:FORWARD DROP [0:0]
:X - [0:0]
-A FORWARD -j X
COMMIT
";
    let rs = parse("dup.rules", text);
    assert_eq!(action_of(&rs, "nat:PREROUTING"), "jump nat:X");
    assert_eq!(action_of(&rs, "FORWARD"), "jump X");
}

#[test]
fn jumps_to_built_in_or_undeclared_chains_of_other_tables_are_errors() {
    let err = |text: &str| match parse_ruleset(text, "bad.rules", RulesetFormat::Auto) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    };
    let e = err("*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -j POSTROUTING\nCOMMIT\n");
    assert!(e.contains("bad.rules:4:"), "{e}");
    assert!(e.contains("jump to built-in chain `POSTROUTING`"), "{e}");
    // A filter chain is not visible from nat; the suggestion is nat's own.
    let e = err("*filter\n:FORWARD DROP [0:0]\n:KUBE-SVC - [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVCS - [0:0]\n-A PREROUTING -j KUBE-SVC\nCOMMIT\n");
    assert!(e.contains("bad.rules:8:"), "{e}");
    assert!(e.contains("did you mean `KUBE-SVCS`?"), "{e}");
}

#[test]
fn unknown_tables_are_skipped_with_a_note() {
    let rs = parse(
        "odd.rules",
        "*broute\n:BROUTING ACCEPT [0:0]\n-A BROUTING -j DROP\nCOMMIT\n*filter\n:FORWARD DROP [0:0]\nCOMMIT\n",
    );
    assert_eq!(rs.chains.len(), 1);
    assert!(rs
        .notes
        .iter()
        .any(|n| n.message.contains("table `broute` ignored")));
}

const NFT_NAT: &str = r#"{"nftables": [
 {"table": {"family": "ip", "name": "nat", "handle": 1}},
 {"chain": {"family": "ip", "table": "nat", "name": "pre", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
 {"chain": {"family": "ip", "table": "nat", "name": "post", "handle": 2, "type": "nat", "hook": "postrouting", "prio": "srcnat", "policy": "accept"}},
 {"chain": {"family": "ip", "table": "nat", "name": "rt", "handle": 3, "type": "route", "hook": "output", "prio": -150, "policy": "accept"}},
 {"rule": {"family": "ip", "table": "nat", "chain": "pre", "handle": 4, "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8022}},
   {"dnat": {"addr": "10.0.0.2", "port": 22}}]}},
 {"rule": {"family": "ip", "table": "nat", "chain": "pre", "handle": 5, "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}},
   {"redirect": {"port": 3128}}]}},
 {"rule": {"family": "ip", "table": "nat", "chain": "post", "handle": 6, "expr": [{"masquerade": null}]}},
 {"rule": {"family": "ip", "table": "nat", "chain": "post", "handle": 7, "expr": [{"snat": {"addr": "10.0.0.9"}}]}},
 {"rule": {"family": "ip", "table": "nat", "chain": "rt", "handle": 8, "expr": [
   {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 1}}]}},
 {"rule": {"family": "ip", "table": "nat", "chain": "rt", "handle": 9, "expr": [
   {"mangle": {"key": {"payload": {"protocol": "ip", "field": "daddr"}}, "value": "10.0.0.3"}}]}}
]}"#;

#[test]
fn nft_nat_and_route_chains_read_translations_by_their_effect() {
    let rs = parse("nat.json", NFT_NAT);
    let actions = |chain: &str| -> Vec<String> {
        let c = rs.chain(rs.chain_by_name(chain).expect(chain));
        c.rules
            .iter()
            .map(|r| match &r.action {
                Action::Jump { target } => format!("jump {}", rs.chain(*target).name),
                a => format!("{a:?}"),
            })
            .collect()
    };
    assert_eq!(
        actions("ip nat pre"),
        [
            "Nat(NatRewrite { kind: Dnat, addrs: Some((10.0.0.2, 10.0.0.2)), ports: Some((22, 22)) })",
            "Nat(NatRewrite { kind: Redirect, addrs: None, ports: Some((3128, 3128)) })"
        ]
    );
    assert_eq!(
        actions("ip nat post"),
        [
            "Nat(NatRewrite { kind: Masquerade, addrs: None, ports: None })",
            "Nat(NatRewrite { kind: Snat, addrs: Some((10.0.0.9, 10.0.0.9)), ports: None })"
        ]
    );
    // `meta mark set 1` is a mark rewrite the model follows.
    assert_eq!(
        actions("ip nat rt"),
        [
            "Mark(MarkRewrite { field: Packet, clear: 4294967295, xor: 1, copy: 0 })",
            "jump ?mangle"
        ]
    );
    let bases = bases(&rs);
    assert_eq!(
        bases,
        [
            (
                "ip nat pre".to_string(),
                Hook::Prerouting,
                -100,
                Policy::Accept
            ),
            (
                "ip nat post".to_string(),
                Hook::Postrouting,
                100,
                Policy::Accept
            ),
            ("ip nat rt".to_string(), Hook::Output, -150, Policy::Accept),
        ]
    );
    // nat chains see first packets only; route chains every packet.
    let pre = rs.chain(rs.chain_by_name("ip nat pre").unwrap());
    assert_eq!(
        pre.rules[0].matches.ct_state,
        CtStates(CtStates::NEW | CtStates::RELATED)
    );
    let rt = rs.chain(rs.chain_by_name("ip nat rt").unwrap());
    assert_eq!(rt.rules[0].matches.ct_state, CtStates::ALL);
}
