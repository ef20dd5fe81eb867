//! Golden tests for issue 15: `verify` sees every iptables table on the
//! packet's path and never reports OK when a table it used to ignore blocks,
//! redirects or possibly opens traffic. The clean base is
//! `data/exact.rules`, which opens exactly the example site's flows.

use ringfence_analysis::verify::{auto_families, verify, verify_with, Status, VerifyReport};
use ringfence_model::{AddrSet, Hook};
use ringfence_parse::{parse_ruleset, RulesetFormat};

const BASE: &str = include_str!("data/exact.rules");

/// The clean base with `tables` (more iptables-save tables) appended.
fn with_tables(tables: &str) -> String {
    format!("{BASE}{tables}")
}

/// The clean base with `rule` inserted into FORWARD just before its final
/// catch-all DROP, and `tables` appended.
fn with_forward_rule(rule: &str, tables: &str) -> String {
    let last = "-A FORWARD -j DROP\n";
    assert!(BASE.contains(last));
    format!("{}{tables}", BASE.replace(last, &format!("{rule}\n{last}")))
}

fn run(name: &str, text: &str) -> VerifyReport {
    let rs = parse_ruleset(text, name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"));
    let site = ringfence_site::example_site().resolve();
    verify(&rs, &site, Hook::Forward)
}

fn flow<'r>(r: &'r VerifyReport, id: &str) -> &'r ringfence_analysis::verify::FlowResult {
    r.flows.iter().find(|f| f.id == id).expect(id)
}

/// The line of `needle` in `text` (1-based), as verify names rules.
fn line_of(name: &str, text: &str, needle: &str) -> String {
    let n = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in {name}"));
    format!("{name}:{}", n + 1)
}

const NAT_HEAD: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";

#[test]
fn the_clean_base_is_ok() {
    let r = run("exact.rules", BASE);
    assert!(r.summary.ok, "{:?}", r.summary);
}

#[test]
fn a_mangle_drop_blocks_the_flows_it_matches() {
    let text = with_tables(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A FORWARD -p tcp --dport 443 -j DROP\nCOMMIT\n",
    );
    let r = run("mangle.rules", &text);
    let drop = line_of("mangle.rules", &text, "--dport 443 -j DROP");
    for id in ["to-harbor", "to-vcenter"] {
        let f = flow(&r, id);
        assert_eq!(f.status, Status::Blocked, "{id}");
        assert_eq!(f.rules, vec![drop.clone()], "{id}");
    }
    assert!(!r.summary.ok);
    insta::assert_json_snapshot!(r.summary);
}

#[test]
fn a_raw_prerouting_drop_blocks_the_workload_network() {
    let text = with_tables(
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -s 198.18.20.0/23 -j DROP\nCOMMIT\n",
    );
    let r = run("raw.rules", &text);
    let f = flow(&r, "workload-to-mgmt");
    assert_eq!(f.status, Status::Blocked);
    assert_eq!(
        f.rules,
        vec![line_of("raw.rules", &text, "-s 198.18.20.0/23 -j DROP")]
    );
    assert!(!r.summary.ok);
    insta::assert_json_snapshot!(r.summary);
}

/// The host the example rulesets run on, for `--local`: an address of the
/// firewall itself, in no zone of the site.
fn host() -> AddrSet {
    AddrSet::v4_prefix("198.18.0.1".parse().unwrap(), 32)
}

/// [`run`] on the host [`host`] (`verify --local 198.18.0.1`).
fn run_local(name: &str, text: &str, locals: &AddrSet) -> VerifyReport {
    let rs = parse_ruleset(text, name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"));
    let site = ringfence_site::example_site().resolve();
    let families = auto_families(&site);
    verify_with(&rs, &site, Hook::Forward, families, Some(locals))
}

const BACKDOOR_DNAT: &str =
    "-A PREROUTING -d 198.18.10.11/32 -p tcp --dport 8022 -j DNAT --to-destination 198.18.10.12:22";

#[test]
fn a_dnat_backdoor_with_a_ctstate_dnat_accept_is_certain_excess_naming_both_rules() {
    let text = with_forward_rule(
        "-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT",
        &format!("{NAT_HEAD}{BACKDOOR_DNAT}\nCOMMIT\n"),
    );
    let dnat = line_of("backdoor.rules", &text, "-j DNAT");
    let ct = line_of("backdoor.rules", &text, "--ctstate DNAT");
    for r in [
        run_local("backdoor.rules", &text, &host()),
        run("backdoor.rules", &text),
    ] {
        // Everything outside the management network that asks for
        // 198.18.10.11:8022 reaches ssh on 198.18.10.12: certain excess,
        // named as it arrives, with where it goes and both rules.
        let door: Vec<_> = r
            .excess
            .iter()
            .filter(|e| e.dnat.as_deref() == Some("198.18.10.12:22"))
            .collect();
        assert_eq!(door.len(), 1, "{:#?}", r.excess);
        let e = door[0];
        assert!(e.certain);
        assert_eq!(e.destinations, ["198.18.10.11/32"]);
        assert_eq!((e.protocol.as_str(), e.ports.as_str()), ("tcp", "8022"));
        assert_eq!(e.rules, [dnat.clone(), ct.clone()]);
        assert!(!e.sources.iter().any(|s| s == "198.18.10.0/24"), "{e:?}");
        assert_eq!(r.summary.possible_excess, 0);
        // The management nodes' own connections to that port are delivered
        // inside the management network (any port): allowed; their replies
        // come back from the rewritten address (198.18.10.12:22), swapped,
        // and the established accept lets them through.
        let f = flow(&r, "allow-mgmt-subnet");
        assert_eq!(f.status, Status::Allowed);
        assert_eq!(f.replies, Status::Allowed, "{:?}", f.reply_rules);
        assert!(!f.reply_rules.contains(&dnat), "{:?}", f.reply_rules);
        assert!(!r.summary.ok);
    }
    let r = run_local("backdoor.rules", &text, &host());
    assert!(
        r.notes.iter().all(|n| !n.contains("--local")),
        "{:?}",
        r.notes
    );
    insta::assert_json_snapshot!(r.summary);
    // Without --local the result is not OK for routing alone, and says so.
    let r = run("backdoor.rules", &text);
    assert!(r
        .notes
        .iter()
        .any(|n| n.starts_with(&dnat) && n.contains("--local")));
}

#[test]
fn a_dnat_of_every_harbor_packet_makes_the_harbor_flow_redirected() {
    let text = with_tables(&format!(
        "{NAT_HEAD}-A PREROUTING -d 198.18.1.20/32 -j DNAT --to-destination 198.18.1.99\nCOMMIT\n"
    ));
    let r = run_local("harbor-dnat.rules", &text, &host());
    let f = flow(&r, "to-harbor");
    assert_eq!(f.status, Status::Redirected);
    assert_eq!(f.redirected_to, ["198.18.1.99:443"]);
    // The rewrite, then the drop that the rewritten packets meet.
    assert_eq!(
        f.rules,
        [
            line_of("harbor-dnat.rules", &text, "-j DNAT"),
            line_of("harbor-dnat.rules", &text, "-A FORWARD -j DROP"),
        ]
    );
    assert!(f.blocked_example.is_some());
    assert_eq!(r.summary.unknown, 0);
    assert!(!r.summary.ok);
    insta::assert_json_snapshot!(r.summary);
}

const HARBOR_DNAT: &str = "-A PREROUTING -d 198.18.1.20/32 -j DNAT --to-destination 198.18.1.99";

#[test]
fn a_translated_connections_replies_are_judged_from_where_its_packets_went() {
    // Harbor's packets go to .99; its replies come back from .99:443
    // (conntrack gives them Harbor's address only in nat postrouting).
    // A mangle rule dropping what .99 sends blocks exactly those replies.
    let text = with_tables(&format!(
        "{NAT_HEAD}{HARBOR_DNAT}\nCOMMIT\n\
         *mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
         :OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         -A FORWARD -s 198.18.1.99/32 -p tcp --sport 443 -j DROP\nCOMMIT\n"
    ));
    let r = run_local("harbor-replies.rules", &text, &host());
    let f = flow(&r, "to-harbor");
    assert_eq!(f.status, Status::Redirected);
    assert_eq!(f.replies, Status::Blocked, "{:?}", f.reply_rules);
    assert_eq!(
        f.reply_rules,
        [line_of(
            "harbor-replies.rules",
            &text,
            "--sport 443 -j DROP"
        )]
    );
    // Without that rule the same replies pass the established accept.
    let text = with_tables(&format!("{NAT_HEAD}{HARBOR_DNAT}\nCOMMIT\n"));
    let r = run_local("harbor-dnat.rules", &text, &host());
    assert_eq!(flow(&r, "to-harbor").replies, Status::Allowed);
}

#[test]
fn a_chain_after_the_reply_gets_its_address_back_makes_translated_replies_unknown() {
    // iptables-nft runs the security table's INPUT at 150, after nat INPUT
    // (100), where a reply to the host already carries the address it was
    // first sent to: the model does not follow that, so the replies of a
    // translated connection are unknown, named by the chain's first rule.
    let text = with_tables(&format!(
        "{NAT_HEAD}{HARBOR_DNAT}\nCOMMIT\n\
         *security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A INPUT -s 198.18.1.20/32 -j ACCEPT\nCOMMIT\n"
    ));
    let r = run_local("late-chain.rules", &text, &host());
    let f = flow(&r, "to-harbor");
    assert_eq!(f.replies, Status::Unknown);
    assert_eq!(
        f.reply_rules,
        [line_of(
            "late-chain.rules",
            &text,
            "-A INPUT -s 198.18.1.20/32 -j ACCEPT"
        )]
    );
    assert!(!r.summary.ok);
}

#[test]
fn statistic_balanced_dnat_targets_are_branches_each_followed_exactly() {
    // kube-proxy's endpoint choice: half to .98, the rest to .99; filter
    // accepts harbor traffic to .98 only. Each branch is exact: the flow
    // is redirected to both, and what reaches .98 is accepted.
    let text = with_forward_rule(
        "-A FORWARD -d 198.18.1.98/32 -p tcp --dport 443 -j ACCEPT",
        &format!(
            "{NAT_HEAD}:SVC - [0:0]\n-A PREROUTING -d 198.18.1.20/32 -p tcp --dport 443 -j SVC\n\
             -A SVC -m statistic --mode random --probability 0.5 -j DNAT --to-destination 198.18.1.98\n\
             -A SVC -j DNAT --to-destination 198.18.1.99\nCOMMIT\n"
        ),
    );
    let r = run_local("balanced.rules", &text, &host());
    let f = flow(&r, "to-harbor");
    assert_eq!(f.status, Status::Redirected);
    assert_eq!(f.redirected_to, ["198.18.1.98:443", "198.18.1.99:443"]);
    // Sources that no flow allows to .98: possible excess (one branch),
    // named by the rule where the branches part.
    let stat = line_of("balanced.rules", &text, "-m statistic");
    let to98: Vec<_> = r
        .excess
        .iter()
        .filter(|e| e.destinations == ["198.18.1.20/32"])
        .collect();
    assert!(!to98.is_empty(), "{:#?}", r.excess);
    assert!(
        to98.iter().all(|e| !e.certain && e.rules == [stat.clone()]),
        "{to98:#?}"
    );
    assert!(!r.summary.ok);
}

#[test]
fn with_local_addresses_a_flow_to_the_host_is_judged_by_input_and_through_it_by_forward() {
    // The firewall is Harbor's address itself: harbor traffic goes to
    // INPUT, whose policy drops; FORWARD's accept no longer applies.
    let text = BASE.replace(":INPUT ACCEPT [0:0]", ":INPUT DROP [0:0]");
    let harbor = AddrSet::v4_prefix("198.18.1.20".parse().unwrap(), 32);
    let r = run_local("input.rules", &text, &harbor);
    let f = flow(&r, "to-harbor");
    assert_eq!(f.status, Status::Blocked);
    assert_eq!(f.rules, ["policy of INPUT"]);
    // Through the host, nothing changed.
    assert_eq!(flow(&r, "to-vcenter").status, Status::Allowed);
    // Without --local, the hook names the path: forward, allowed.
    let r = run("input.rules", &text);
    assert_eq!(flow(&r, "to-harbor").status, Status::Allowed);
    assert!(r.summary.ok, "{:?}", r.summary);
    // A REDIRECT of harbor traffic to the host: delivered to the host
    // (redirected), and with INPUT dropping, not accepted.
    let text = with_tables(&format!(
        "{NAT_HEAD}-A PREROUTING -d 198.18.1.20/32 -p tcp --dport 443 -j REDIRECT --to-ports 8443\nCOMMIT\n"
    ))
    .replace(":INPUT ACCEPT [0:0]", ":INPUT DROP [0:0]");
    let r = run_local("redirect.rules", &text, &host());
    let f = flow(&r, "to-harbor");
    assert_eq!(f.status, Status::Redirected);
    assert_eq!(f.redirected_to, ["198.18.0.1:8443"]);
    assert_eq!(f.rules.last().map(String::as_str), Some("policy of INPUT"));
    // Without --local the host's address is not known: unknown.
    let r = run("redirect.rules", &text);
    assert_eq!(flow(&r, "to-harbor").status, Status::Unknown);
}

#[test]
fn addrtype_local_reads_the_local_addresses_and_is_two_branches_without_them() {
    // A nodeport-style DNAT of packets to the host's own address.
    let text = with_tables(&format!(
        "{NAT_HEAD}-A PREROUTING -m addrtype --dst-type LOCAL -p tcp --dport 443 -j DNAT --to-destination 198.18.1.99\nCOMMIT\n"
    ));
    // The host is 198.18.0.1: harbor (198.18.1.20) is not local, so the
    // rule never matches its traffic and the flow stays allowed.
    let r = run_local("addrtype.rules", &text, &host());
    assert_eq!(flow(&r, "to-harbor").status, Status::Allowed);
    // The host is harbor's address: every harbor packet is rewritten.
    let harbor = AddrSet::v4_prefix("198.18.1.20".parse().unwrap(), 32);
    let r = run_local("addrtype.rules", &text, &harbor);
    let f = flow(&r, "to-harbor");
    assert_eq!(f.status, Status::Redirected, "{f:?}");
    assert_eq!(f.redirected_to, ["198.18.1.99:443"]);
    // Without --local the rule may or may not match: unknown, named by it.
    let r = run("addrtype.rules", &text);
    let f = flow(&r, "to-harbor");
    assert_eq!(f.status, Status::Unknown);
    assert_eq!(
        f.rules.first(),
        Some(&line_of("addrtype.rules", &text, "--dst-type LOCAL"))
    );
}

#[test]
fn a_random_accept_is_possible_excess_from_its_network() {
    let text = with_forward_rule(
        "-A FORWARD -s 198.18.20.0/23 -m statistic --mode random --probability 0.5 -j ACCEPT",
        "",
    );
    let r = run("statistic.rules", &text);
    let rule = line_of("statistic.rules", &text, "-m statistic");
    assert!(!r.excess.is_empty());
    for e in &r.excess {
        assert!(!e.certain, "{e:?}");
        assert_eq!(e.rules, std::slice::from_ref(&rule));
        assert!(e.sources.iter().all(|s| s.starts_with("198.18.2")), "{e:?}");
    }
    // The flows are accepted before the rule is reached.
    assert!(r.flows.iter().all(|f| f.status == Status::Allowed));
    assert!(!r.summary.ok);
    insta::assert_json_snapshot!(r.summary);
}

#[test]
fn tables_that_only_mark_log_or_masquerade_keep_a_clean_ruleset_ok() {
    let text = with_tables(&format!(
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -p udp --dport 69 -j CT --helper tftp\nCOMMIT\n\
         *mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         -A PREROUTING -s 198.18.20.0/23 -j MARK --set-xmark 0x4/0x4\n\
         -A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n\
         -A FORWARD -d 198.18.1.20/32 -j ACCEPT\n\
         -A POSTROUTING -j DSCP --set-dscp 0x0a\nCOMMIT\n\
         {NAT_HEAD}-A POSTROUTING -s 198.18.20.0/23 ! -d 198.18.20.0/23 -j MASQUERADE\n\
         -A POSTROUTING -j LOG\nCOMMIT\n"
    ));
    let r = run("benign.rules", &text);
    // A mangle ACCEPT ends only the mangle chain: the filter table still
    // decides, so nothing is excess.
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert!(
        r.flows
            .iter()
            .all(|f| f.status == Status::Allowed && f.replies == Status::Allowed),
        "{:#?}",
        r.flows
    );
    assert!(r.summary.ok, "{:?}", r.summary);
}

#[test]
fn an_accept_in_an_earlier_table_does_not_bypass_the_filter_drop() {
    // mangle accepts everything to the SSH port of a management node; the
    // filter table drops it: not excess, and not OK only for the drop.
    let text = with_tables(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A FORWARD -j ACCEPT\nCOMMIT\n",
    );
    let r = run("mangle-accept.rules", &text);
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert!(r.summary.ok, "{:?}", r.summary);
}

#[test]
fn excess_pivots_on_the_first_drop_policy_chain_and_classifies_from_the_start() {
    // The pivot is mangle FORWARD (drop policy, first on the path); an
    // accept there is not excess unless filter accepts too, and raw's drop
    // before it removes part of what filter would accept.
    let text = with_forward_rule(
        "-A FORWARD -d 198.18.1.99/32 -p tcp --dport 80 -j ACCEPT",
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -s 198.18.10.0/24 -d 198.18.1.99/32 -j DROP\nCOMMIT\n\
         *mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A FORWARD -j ACCEPT\nCOMMIT\n",
    );
    let r = run("pivot.rules", &text);
    let accept = line_of("pivot.rules", &text, "--dport 80 -j ACCEPT");
    assert!(!r.excess.is_empty());
    for e in &r.excess {
        assert!(e.certain, "{e:?}");
        assert_eq!(e.destinations, ["198.18.1.99/32"]);
        assert_eq!(e.ports, "80");
        assert_eq!(e.rules, std::slice::from_ref(&accept));
        // raw drops the management network's packets first.
        assert!(!e.sources.iter().any(|s| s == "198.18.10.0/24"), "{e:?}");
    }
    assert!(!r.summary.ok);
}

/// The clean base with `rule` inserted at the top of FORWARD, right after
/// the accept of established connections: before every flow's accept.
fn with_first_forward_rule(rule: &str) -> String {
    let first = "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n";
    assert!(BASE.contains(first));
    BASE.replace(first, &format!("{first}{rule}\n"))
}

/// The flows whose every source is in the workload networks (198.18.20.0/23).
const WORKLOAD_FLOWS: [&str; 2] = ["workload-to-mgmt", "allow-pinniped"];

#[test]
fn a_random_accept_before_the_flows_accepts_leaves_them_allowed_and_is_possible_excess() {
    // Issue 15: the flows from the workload networks are accepted whether
    // the statistic rule matches or not, so they are allowed; what it alone
    // accepts is possible excess, named by it.
    let text = with_first_forward_rule(
        "-A FORWARD -s 198.18.20.0/23 -m statistic --mode random --probability 0.5 -j ACCEPT",
    );
    let r = run("statistic-first.rules", &text);
    let rule = line_of("statistic-first.rules", &text, "-m statistic");
    assert!(
        r.flows
            .iter()
            .all(|f| f.status == Status::Allowed && f.replies == Status::Allowed),
        "{:#?}",
        r.flows
    );
    assert_eq!(r.summary.unknown, 0);
    assert!(!r.excess.is_empty());
    for e in &r.excess {
        assert!(!e.certain, "{e:?}");
        assert_eq!(e.rules, std::slice::from_ref(&rule));
        assert!(e.sources.iter().all(|s| s.starts_with("198.18.2")), "{e:?}");
    }
    assert_eq!(r.summary.possible_excess, r.summary.excess);
    assert!(!r.summary.ok);
}

#[test]
fn a_rate_limited_log_changes_nothing() {
    let text = with_first_forward_rule(
        "-A FORWARD -m limit --limit 5/min --limit-burst 10 -j LOG --log-prefix \"fw: \"",
    );
    let r = run("limit-log.rules", &text);
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert_eq!(r.summary.unknown, 0);
    assert!(r.summary.ok, "{:?}", r.summary);
    // A packet of a flow has one certain outcome.
    let rs = parse_ruleset(&text, "limit-log.rules", RulesetFormat::Auto).unwrap();
    let p = ringfence_model::Packet::new_connection(
        "198.18.20.5".parse().unwrap(),
        "198.18.10.5".parse().unwrap(),
        6,
        40000,
        6443,
    );
    let t = ringfence_analysis::Tracer::new(&rs).trace(Hook::Forward, &p);
    assert!(!t.uncertain);
    assert_eq!(t.outcomes.len(), 1);
}

#[test]
fn a_random_drop_before_the_accepts_makes_the_flows_from_its_network_unknown() {
    let text = with_first_forward_rule(
        "-A FORWARD -s 198.18.20.0/23 -m statistic --mode random --probability 0.5 -j DROP",
    );
    let r = run("statistic-drop.rules", &text);
    let rule = line_of("statistic-drop.rules", &text, "-m statistic");
    for id in WORKLOAD_FLOWS {
        let f = flow(&r, id);
        assert_eq!(f.status, Status::Unknown, "{id}");
        // The rule that makes it unknown comes first.
        assert_eq!(f.rules.first(), Some(&rule), "{id}: {:?}", f.rules);
        assert!(f.blocked_example.is_some(), "{id}");
    }
    // Flows from elsewhere never meet it.
    assert_eq!(flow(&r, "mgmt-to-workload").status, Status::Allowed);
    // A random drop opens nothing.
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert!(!r.summary.ok);
}

const NFT_BASE: &str = include_str!("data/exact.nft");

/// The generated nftables base with `rule` at the top of the forward chain.
fn nft_with_first_forward_rule(rule: &str) -> String {
    let first = "ct state established,related accept comment \"replies to allowed flows\"\n";
    assert!(NFT_BASE.contains(first));
    NFT_BASE.replace(first, &format!("{first}\t\t{rule}\n"))
}

#[test]
fn nft_numgen_is_two_branches_like_statistic() {
    let r = run("exact.nft", NFT_BASE);
    assert!(r.summary.ok, "{:?}", r.summary);

    let text = nft_with_first_forward_rule("ip saddr 198.18.20.0/23 numgen random mod 2 0 accept");
    let r = run("numgen-accept.nft", &text);
    let rule = line_of("numgen-accept.nft", &text, "numgen");
    assert!(r.flows.iter().all(|f| f.status == Status::Allowed));
    assert!(!r.excess.is_empty());
    assert!(r
        .excess
        .iter()
        .all(|e| !e.certain && e.rules == std::slice::from_ref(&rule)));
    assert!(!r.summary.ok);

    let text = nft_with_first_forward_rule("ip saddr 198.18.20.0/23 numgen random mod 2 0 drop");
    let r = run("numgen-drop.nft", &text);
    let rule = line_of("numgen-drop.nft", &text, "numgen");
    for id in WORKLOAD_FLOWS {
        let f = flow(&r, id);
        assert_eq!(f.status, Status::Unknown, "{id}");
        assert_eq!(f.rules.first(), Some(&rule), "{id}");
    }
    assert!(r.excess.is_empty());
    assert!(!r.summary.ok);

    // A numgen that only logs changes nothing.
    let text = nft_with_first_forward_rule("numgen random mod 2 0 log prefix \"sampled \"");
    let r = run("numgen-log.nft", &text);
    assert!(r.summary.ok, "{:?}", r.summary);
}

const RAW_HEAD: &str = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";
const MANGLE_HEAD: &str = "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";

#[test]
fn a_ctstate_new_drop_in_raw_drops_nothing_because_raw_runs_before_conntrack() {
    // raw PREROUTING (priority -300) runs before conntrack: the kernel's
    // conntrack match reads every packet there as INVALID, so NEW never
    // matches and the ruleset stays clean (exit 0).
    let text = with_tables(&format!(
        "{RAW_HEAD}-A PREROUTING -m conntrack --ctstate NEW -j DROP\nCOMMIT\n"
    ));
    let r = run("raw-new.rules", &text);
    assert!(r.flows.iter().all(|f| f.status == Status::Allowed));
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert!(r.summary.ok, "{:?}", r.summary);

    // The same rule in mangle PREROUTING (priority -150, after conntrack)
    // drops every new connection: not OK (exit 1), named by the rule.
    let text = with_tables(&format!(
        "{MANGLE_HEAD}-A PREROUTING -m conntrack --ctstate NEW -j DROP\nCOMMIT\n"
    ));
    let r = run("mangle-new.rules", &text);
    let drop = line_of("mangle-new.rules", &text, "--ctstate NEW -j DROP");
    for f in &r.flows {
        assert_eq!(f.status, Status::Blocked, "{}", f.id);
        assert_eq!(f.rules, vec![drop.clone()], "{}", f.id);
    }
    assert!(!r.summary.ok);
}

#[test]
fn a_ctstate_invalid_drop_in_raw_drops_every_packet_because_raw_runs_before_conntrack() {
    // In a user chain jumped to from raw PREROUTING: the stage is the
    // caller's, so INVALID matches every packet and every flow is blocked
    // (exit 1), named by the rule.
    let text = with_tables(&format!(
        "{RAW_HEAD}:EARLY - [0:0]\n-A PREROUTING -j EARLY\n-A EARLY -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n"
    ));
    let r = run("raw-invalid.rules", &text);
    let drop = line_of(
        "raw-invalid.rules",
        &text,
        "-A EARLY -m conntrack --ctstate INVALID",
    );
    for f in &r.flows {
        assert_eq!(f.status, Status::Blocked, "{}", f.id);
        assert_eq!(f.rules.last(), Some(&drop), "{}", f.id);
    }
    assert!(!r.summary.ok);
}

#[test]
fn nft_ct_state_before_conntrack_reads_invalid_and_after_it_reads_the_real_state() {
    let chain = |prio: i32, rule: &str| {
        format!(
            "{NFT_BASE}\ntable ip early {{\n\tchain pre {{\n\t\ttype filter hook prerouting priority {prio}; policy accept;\n\t\t{rule}\n\t}}\n}}\n"
        )
    };
    // Priority -250: before conntrack, `ct state new` never holds.
    let r = run("pre-ct.nft", &chain(-250, "ct state new drop"));
    assert!(r.flows.iter().all(|f| f.status == Status::Allowed));
    assert!(r.summary.ok, "{:?}", r.summary);
    // ... and `ct state invalid` always does.
    let text = chain(-250, "ct state invalid drop");
    let r = run("pre-ct-invalid.nft", &text);
    let drop = line_of("pre-ct-invalid.nft", &text, "ct state invalid drop");
    assert!(r
        .flows
        .iter()
        .all(|f| f.status == Status::Blocked && f.rules == std::slice::from_ref(&drop)));
    assert!(!r.summary.ok);
    // Priority -150: after conntrack, `ct state new` drops new connections.
    let r = run("post-ct.nft", &chain(-150, "ct state new drop"));
    assert!(r.flows.iter().all(|f| f.status == Status::Blocked));
    assert!(!r.summary.ok);
}

#[test]
fn an_output_interface_match_before_routing_compares_the_empty_name() {
    // iptables refuses -o in PREROUTING but not in a user chain it jumps
    // to. Before routing a packet has no output interface: `-o eth9` never
    // matches (clean, exit 0) ...
    let tables = |rule: &str| {
        with_tables(&format!(
            "{MANGLE_HEAD}:ROUTED - [0:0]\n-A PREROUTING -j ROUTED\n-A ROUTED {rule}\nCOMMIT\n"
        ))
    };
    let r = run("oif.rules", &tables("-o eth9 -j DROP"));
    assert!(r.flows.iter().all(|f| f.status == Status::Allowed));
    assert!(r.excess.is_empty(), "{:#?}", r.excess);
    assert!(r.summary.ok, "{:?}", r.summary);
    // ... and `! -o eth9` always does: every flow blocked (exit 1).
    let text = tables("! -o eth9 -j DROP");
    let r = run("not-oif.rules", &text);
    let drop = line_of("not-oif.rules", &text, "! -o eth9 -j DROP");
    for f in &r.flows {
        assert_eq!(f.status, Status::Blocked, "{}", f.id);
        assert_eq!(f.rules.last(), Some(&drop), "{}", f.id);
    }
    assert!(!r.summary.ok);
    // In FORWARD the packet has both interfaces: `-o eth9` drops only
    // packets routed out of eth9, so the flows are no longer certainly
    // allowed.
    let text = with_first_forward_rule("-A FORWARD -o eth9 -j DROP");
    let r = run("fwd-oif.rules", &text);
    assert!(r.flows.iter().all(|f| f.status != Status::Allowed));
    assert!(!r.summary.ok);
}

#[test]
fn an_input_interface_match_on_a_packet_the_host_sends_compares_the_empty_name() {
    // A user chain jumped to from mangle OUTPUT: a packet the host sends has
    // no input interface, even if the packet line names one.
    let text = format!(
        "{MANGLE_HEAD}:LOCAL - [0:0]\n-A OUTPUT -j LOCAL\n-A LOCAL -i eth0 -j DROP\n-A LOCAL ! -i eth0 -p udp -j DROP\nCOMMIT\n"
    );
    let rs = parse_ruleset(&text, "out.rules", RulesetFormat::Auto).unwrap();
    let tracer = ringfence_analysis::Tracer::new(&rs);
    let mut p = ringfence_model::Packet::new_connection(
        "198.18.0.1".parse().unwrap(),
        "198.18.1.1".parse().unwrap(),
        6,
        40000,
        443,
    );
    p.iif = Some("eth0".into());
    p.oif = Some("eth1".into());
    let t = tracer.trace(Hook::Output, &p);
    assert_eq!(t.verdict, ringfence_model::Verdict::Accept);
    assert!(!t.uncertain);
    p.protocol = 17;
    let t = tracer.trace(Hook::Output, &p);
    assert_eq!(t.verdict, ringfence_model::Verdict::Drop);
    assert_eq!(
        t.rule.map(|r| r.to_string()),
        Some(line_of("out.rules", &text, "! -i eth0 -p udp -j DROP"))
    );
    // The engine agrees: nothing tcp is dropped on the output path.
    let engine = ringfence_analysis::Engine::for_ruleset(&rs);
    let tcp = ringfence_analysis::space::packet_box(
        &ringfence_model::Packet {
            protocol: 6,
            ..p.clone()
        },
        &engine.u,
    );
    let out = engine.classify(Hook::Output, vec![tcp]).unwrap();
    assert!(out
        .iter()
        .all(|o| o.fate == ringfence_analysis::Fate::Accept));
}
