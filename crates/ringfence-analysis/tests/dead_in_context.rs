//! Dead rules in context (issue 15): a rule is shadowed when no packet that
//! reaches it through the real call graph from the base chains, after the
//! earlier base chains of its path, matches it, not only when earlier rules
//! of its own chain cover it. Each case names the rules responsible.

use ringfence_analysis::verify::{
    auto_families, verify_checked, Checks, DeadReason, RuleFinding, VerifyReport,
};
use ringfence_model::Hook;
use ringfence_parse::{parse_ruleset, RulesetFormat};

fn run(name: &str, text: &str) -> VerifyReport {
    let rs = parse_ruleset(text, name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"));
    let site = ringfence_site::example_site().resolve();
    verify_checked(&rs, &site, Hook::Forward, auto_families(&site), None, ON)
}

/// Dead rules in context are judged only when asked for
/// (`verify --dead-in-context`).
const ON: Checks = Checks {
    dead_in_context: true,
};

/// The reference verify gives the rule on the line holding `needle`.
fn line_of(name: &str, text: &str, needle: &str) -> String {
    let n = text
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in {name}"));
    format!("{name}:{}", n + 1)
}

fn shadowed<'r>(r: &'r VerifyReport, rule: &str) -> Option<&'r RuleFinding> {
    r.shadowed.iter().find(|f| f.rule == rule)
}

fn is_reported(r: &VerifyReport, rule: &str) -> bool {
    r.shadowed
        .iter()
        .chain(&r.redundant)
        .any(|f| f.rule == rule)
}

/// Aerleon renders each term as a chain the filter's base chain jumps to:
/// replies first, then a deny term for new ssh, then the ssh accept.
const AERLEON: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:F_replies - [0:0]
:F_deny-new-ssh - [0:0]
:F_ssh - [0:0]
:F_dns - [0:0]
-A FORWARD -j F_replies
-A FORWARD -j F_deny-new-ssh
-A FORWARD -j F_ssh
-A FORWARD -j F_dns
-A F_replies -m comment --comment \"replies to allowed flows\"
-A F_replies -p all -m state --state ESTABLISHED,RELATED -j ACCEPT
-A F_deny-new-ssh -m comment --comment \"no new ssh\"
-A F_deny-new-ssh -p tcp -m tcp --dport 22 -m state --state NEW -j DROP
-A F_ssh -m comment --comment \"ssh: operators\"
-A F_ssh -s 198.18.1.10/32 -d 198.18.10.0/24 -p tcp -m tcp --dport 22 -m state --state NEW,RELATED,ESTABLISHED -j ACCEPT
-A F_dns -d 198.18.1.53/32 -p udp -m udp --dport 53 -m state --state NEW,RELATED,ESTABLISHED -j ACCEPT
COMMIT
";

#[test]
fn aerleon_ssh_accept_behind_established_and_new_ssh_drop_is_dead_in_context_iptables() {
    let r = run("aerleon.rules", AERLEON);
    let ssh = line_of("aerleon.rules", AERLEON, "-A F_ssh -s 198.18.1.10/32");
    let f = shadowed(&r, &ssh).unwrap_or_else(|| panic!("{ssh} not shadowed: {:#?}", r.shadowed));
    assert_eq!(f.reason, Some(DeadReason::Context));
    assert_eq!(f.chain, "F_ssh");
    assert_eq!(
        f.by,
        vec![
            line_of(
                "aerleon.rules",
                AERLEON,
                "--state ESTABLISHED,RELATED -j ACCEPT"
            ),
            line_of("aerleon.rules", AERLEON, "--state NEW -j DROP"),
        ]
    );
    // The rules around it are reached: the dns accept, every jump, the
    // rules that kill the ssh accept.
    for needle in [
        "-A F_dns -d",
        "-A FORWARD -j F_ssh",
        "-A FORWARD -j F_dns",
        "--state NEW -j DROP",
    ] {
        let l = line_of("aerleon.rules", AERLEON, needle);
        assert!(!is_reported(&r, &l), "{needle} reported: {:#?}", r.shadowed);
    }
    assert_eq!(r.summary.shadowed, 1, "{:#?}", r.shadowed);
    insta::assert_json_snapshot!(r.shadowed);
}

const AERLEON_NFT: &str = "table inet filter {
	chain forward {
		type filter hook forward priority filter; policy drop;
		jump replies
		jump deny_new_ssh
		jump ssh
		jump dns
	}
	chain replies {
		ct state established,related accept comment \"replies to allowed flows\"
	}
	chain deny_new_ssh {
		tcp dport 22 ct state new drop comment \"no new ssh\"
	}
	chain ssh {
		ip saddr 198.18.1.10 ip daddr 198.18.10.0/24 tcp dport 22 ct state new,established,related accept comment \"ssh: operators\"
	}
	chain dns {
		ip daddr 198.18.1.53 udp dport 53 ct state new,established,related accept
	}
}
";

#[test]
fn aerleon_ssh_accept_behind_established_and_new_ssh_drop_is_dead_in_context_nft() {
    let r = run("aerleon.nft", AERLEON_NFT);
    let ssh = line_of("aerleon.nft", AERLEON_NFT, "ip saddr 198.18.1.10");
    let f = shadowed(&r, &ssh).unwrap_or_else(|| panic!("{ssh} not shadowed: {:#?}", r.shadowed));
    assert_eq!(f.reason, Some(DeadReason::Context));
    assert_eq!(
        f.by,
        vec![
            line_of(
                "aerleon.nft",
                AERLEON_NFT,
                "ct state established,related accept"
            ),
            line_of("aerleon.nft", AERLEON_NFT, "ct state new drop"),
        ]
    );
    assert_eq!(r.summary.shadowed, 1, "{:#?}", r.shadowed);
    insta::assert_json_snapshot!(r.shadowed);
}

#[test]
fn a_forward_rule_whose_packets_raw_prerouting_drops_is_dead_in_context() {
    let text = "*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -s 198.18.20.0/23 -j DROP
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -s 198.18.20.0/24 -p tcp -m tcp --dport 443 -j ACCEPT
-A FORWARD -s 198.18.0.0/16 -p tcp -m tcp --dport 443 -j ACCEPT
-A INPUT -s 198.18.21.0/24 -j DROP
COMMIT
";
    let r = run("raw.rules", text);
    let raw = line_of("raw.rules", text, "-A PREROUTING -s 198.18.20.0/23 -j DROP");
    for needle in ["-s 198.18.20.0/24 -p tcp", "-A INPUT -s 198.18.21.0/24"] {
        let l = line_of("raw.rules", text, needle);
        let f =
            shadowed(&r, &l).unwrap_or_else(|| panic!("{needle} not shadowed: {:#?}", r.shadowed));
        assert_eq!(f.reason, Some(DeadReason::Context), "{needle}");
        assert_eq!(f.by, vec![raw.clone()], "{needle}");
    }
    // The wider accept is reached from the rest of 198.18.0.0/16.
    let wide = line_of("raw.rules", text, "-s 198.18.0.0/16");
    assert!(!is_reported(&r, &wide), "{:#?}", r.shadowed);
    assert_eq!(r.summary.shadowed, 2, "{:#?}", r.shadowed);
}

#[test]
fn a_mangle_drop_kills_a_filter_rule_but_a_mangle_rule_the_raw_table_lets_through_lives() {
    let text = "*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -j DROP
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 25 -j DROP
-A FORWARD -p udp -m udp --dport 53 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --dport 25 -j ACCEPT
-A FORWARD -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
";
    let r = run("mangle.rules", text);
    let smtp = line_of(
        "mangle.rules",
        text,
        "-A FORWARD -p tcp -m tcp --dport 25 -j ACCEPT",
    );
    let f = shadowed(&r, &smtp).expect("smtp accept shadowed");
    assert_eq!(f.reason, Some(DeadReason::Context));
    assert_eq!(
        f.by,
        vec![line_of(
            "mangle.rules",
            text,
            "-A FORWARD -p tcp -m tcp --dport 25 -j DROP"
        )]
    );
    // udp never gets past raw: the mangle udp accept is dead too.
    let dns = line_of("mangle.rules", text, "--dport 53 -j ACCEPT");
    let f = shadowed(&r, &dns).expect("mangle dns accept shadowed");
    assert_eq!(
        f.by,
        vec![line_of(
            "mangle.rules",
            text,
            "-A PREROUTING -p udp -j DROP"
        )]
    );
    // tcp/80 gets through raw and mangle: neither accept is dead (the
    // mangle one is redundant: its chain's policy accepts too).
    let http: Vec<String> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("-A FORWARD -p tcp -m tcp --dport 80 -j ACCEPT"))
        .map(|(i, _)| format!("mangle.rules:{}", i + 1))
        .collect();
    assert_eq!(http.len(), 2);
    assert!(shadowed(&r, &http[0]).is_none() && shadowed(&r, &http[1]).is_none());
    assert!(r.redundant.iter().any(|f| f.rule == http[0]));
    assert!(!is_reported(&r, &http[1]), "{:#?}", r.redundant);
    assert_eq!(r.summary.shadowed, 2, "{:#?}", r.shadowed);
}

#[test]
fn a_rule_reached_only_through_a_statistic_jump_is_not_dead() {
    let text = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:WEB - [0:0]
:WEB2 - [0:0]
-A FORWARD -p tcp -m tcp --dport 80 -m statistic --mode random --probability 0.50000000000 -j WEB
-A FORWARD -p tcp -m tcp --dport 80 -j DROP
-A FORWARD -j WEB2
-A WEB -p tcp -m tcp --dport 80 -j ACCEPT
-A WEB2 -p tcp -m tcp --dport 80 -j ACCEPT
-A WEB2 -p tcp -m tcp --dport 81 -j ACCEPT
COMMIT
";
    let r = run("statistic.rules", text);
    // Reached on the branch where the statistic match holds.
    let web = line_of("statistic.rules", text, "-A WEB -p tcp");
    assert!(!is_reported(&r, &web), "{:#?}", r.shadowed);
    // Either way, tcp/80 never gets to WEB2: accepted in WEB or dropped.
    let web2 = line_of("statistic.rules", text, "-A WEB2 -p tcp -m tcp --dport 80");
    let f = shadowed(&r, &web2).expect("WEB2's accept is dead");
    assert_eq!(f.reason, Some(DeadReason::Context));
    // The jump that may or may not happen is not named: it may not match.
    assert_eq!(
        f.by,
        vec![line_of("statistic.rules", text, "--dport 80 -j DROP")]
    );
    assert_eq!(r.summary.shadowed, 1, "{:#?}", r.shadowed);
}

#[test]
fn a_chain_two_callers_reach_is_alive_when_only_one_of_them_kills_its_rule() {
    let both = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:SSH - [0:0]
-A FORWARD -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j DROP
-A FORWARD -s 10.0.0.0/8 -j SSH
-A FORWARD -s 192.168.0.0/16 -j SSH
-A SSH -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
";
    let r = run("two.rules", both);
    let accept = line_of("two.rules", both, "-A SSH -p tcp");
    assert!(!is_reported(&r, &accept), "{:#?}", r.shadowed);
    assert_eq!(r.summary.shadowed, 0, "{:#?}", r.shadowed);
    // Without the second caller, the one left kills it.
    let one = both.replace("-A FORWARD -s 192.168.0.0/16 -j SSH\n", "");
    let r = run("one.rules", &one);
    let accept = line_of("one.rules", &one, "-A SSH -p tcp");
    let f = shadowed(&r, &accept).expect("dead with one caller");
    assert_eq!(f.reason, Some(DeadReason::Context));
    assert_eq!(f.by, vec![line_of("one.rules", &one, "--dport 22 -j DROP")]);
}

#[test]
fn a_rule_outside_every_jump_to_its_chain_is_dead_and_names_the_jump() {
    let text = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:TCP - [0:0]
-A FORWARD -p tcp -j TCP
-A TCP -p udp -m udp --dport 53 -j ACCEPT
-A TCP -p tcp -m tcp --dport 443 -j ACCEPT
COMMIT
";
    let r = run("cut.rules", text);
    let udp = line_of("cut.rules", text, "-p udp");
    let f = shadowed(&r, &udp).expect("udp rule in a tcp-only chain");
    assert_eq!(f.reason, Some(DeadReason::Context));
    assert_eq!(
        f.by,
        vec![line_of("cut.rules", text, "-A FORWARD -p tcp -j TCP")]
    );
    assert_eq!(r.summary.shadowed, 1, "{:#?}", r.shadowed);
}

#[test]
fn a_chain_no_base_chain_reaches_is_one_never_reached_finding() {
    let text = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ORPHAN - [0:0]
:LATE - [0:0]
:EMPTY - [0:0]
-A FORWARD -p tcp -m tcp --dport 443 -j ACCEPT
-A FORWARD -j DROP
-A FORWARD -j LATE
-A ORPHAN -p tcp -m tcp --dport 22 -j ACCEPT
-A ORPHAN -p tcp -m tcp --dport 22 -j DROP
-A LATE -p tcp -m tcp --dport 80 -j ACCEPT
-A LATE -j ORPHAN
COMMIT
";
    let r = run("orphan.rules", text);
    let orphan = r
        .shadowed
        .iter()
        .find(|f| f.chain == "ORPHAN")
        .expect("ORPHAN never reached");
    assert_eq!(orphan.reason, Some(DeadReason::NeverReached));
    assert_eq!(
        orphan.rule,
        line_of(
            "orphan.rules",
            text,
            "-A ORPHAN -p tcp -m tcp --dport 22 -j ACCEPT"
        )
    );
    // Only LATE jumps to it, and LATE is never reached either.
    assert!(orphan.by.is_empty(), "{:?}", orphan.by);
    let late = r
        .shadowed
        .iter()
        .find(|f| f.chain == "LATE")
        .expect("LATE never reached");
    assert_eq!(late.reason, Some(DeadReason::NeverReached));
    // The one jump to it comes after a catch-all drop (itself shadowed in its chain).
    let jump = line_of("orphan.rules", text, "-A FORWARD -j LATE");
    assert_eq!(late.by, vec![jump.clone()]);
    let f = shadowed(&r, &jump).expect("the jump is shadowed");
    assert_eq!(f.reason, None);
    // One finding per chain: none for their rules (ORPHAN's drop would
    // otherwise be shadowed in its own chain), none for the empty chain.
    assert_eq!(r.summary.shadowed, 3, "{:#?}", r.shadowed);
    assert!(
        r.redundant.iter().all(|f| f.chain == "FORWARD"),
        "{:#?}",
        r.redundant
    );
    insta::assert_json_snapshot!(r.shadowed);
}

/// The incremental verifier's shadowed findings (subject and fingerprint),
/// and a full verify's, sorted.
fn incremental_and_full(
    inc: &ringfence_analysis::incremental::Incremental,
    text: &str,
) -> (Vec<String>, Vec<String>) {
    use ringfence_analysis::fingerprint::{verify_findings, FindingKind};
    let rs = parse_ruleset(text, "aerleon.rules", RulesetFormat::Auto).expect("parses");
    let keep = |k: FindingKind| matches!(k, FindingKind::Shadowed | FindingKind::Redundant);
    let mut full: Vec<String> = verify_findings(&run("aerleon.rules", text), &rs)
        .into_iter()
        .filter(|f| keep(f.kind))
        .map(|f| format!("{:?} {} {}", f.kind, f.subject, f.fingerprint.hex()))
        .collect();
    let mut mine: Vec<String> = inc
        .findings(usize::MAX)
        .0
        .into_iter()
        .filter(|f| keep(f.kind))
        .map(|f| format!("{:?} {} {}", f.kind, f.subject, f.fingerprint.hex()))
        .collect();
    full.sort();
    mine.sort();
    (full, mine)
}

#[test]
fn the_incremental_verifier_follows_a_rule_killed_and_revived_by_changes_in_other_chains() {
    use ringfence_analysis::incremental::Incremental;
    let parse = |t: &str| parse_ruleset(t, "aerleon.rules", RulesetFormat::Auto).expect("parses");
    let site = ringfence_site::example_site().resolve();
    // Without the deny term the ssh accept is reached (new ssh gets there).
    let without = AERLEON.replace("-A FORWARD -j F_deny-new-ssh\n", "");
    let mut inc = Incremental::with_checks(parse(&without), &site, Hook::Forward, None, ON);
    assert_eq!(inc.not_incremental(), None);
    let ssh_line = |t: &str| line_of("aerleon.rules", t, "-A F_ssh -s 198.18.1.10/32");
    let ssh_dead = |v: &[String], t: &str| {
        v.iter()
            .any(|f| f.contains(&format!("Shadowed {} ", ssh_line(t))))
    };
    let (full, mine) = incremental_and_full(&inc, &without);
    assert_eq!(full, mine);
    assert!(!ssh_dead(&mine, &without), "{mine:?}");
    // A jump added in FORWARD kills a rule of F_ssh (another chain).
    let rec = inc.update(parse(AERLEON));
    assert_eq!(rec.full, None, "{rec:?}");
    let (full, mine) = incremental_and_full(&inc, AERLEON);
    assert_eq!(full, mine);
    assert!(ssh_dead(&mine, AERLEON), "{mine:?}");
    // The deny term turned to telnet: a change in F_deny-new-ssh revives it.
    let telnet = AERLEON.replace(
        "--dport 22 -m state --state NEW -j DROP",
        "--dport 23 -m state --state NEW -j DROP",
    );
    let rec = inc.update(parse(&telnet));
    assert_eq!(rec.full, None, "{rec:?}");
    let (full, mine) = incremental_and_full(&inc, &telnet);
    assert_eq!(full, mine);
    assert!(!ssh_dead(&mine, &telnet), "{mine:?}");
    // The jump to F_ssh removed: the chain is never reached (one finding
    // on its first rule), and put back: every rule judged again.
    let unjumped = telnet.replace("-A FORWARD -j F_ssh\n", "");
    inc.update(parse(&unjumped));
    let (full, mine) = incremental_and_full(&inc, &unjumped);
    assert_eq!(full, mine);
    let first = line_of("aerleon.rules", &unjumped, "-A F_ssh -m comment");
    assert!(
        mine.iter()
            .any(|f| f.contains(&format!("Shadowed {first} "))),
        "{mine:?}"
    );
    inc.update(parse(&telnet));
    let (full, mine) = incremental_and_full(&inc, &telnet);
    assert_eq!(full, mine);
    assert!(!ssh_dead(&mine, &telnet), "{mine:?}");
}

/// A kube-proxy-style service chain: only new connections to its cluster
/// IP and port get there, so no corner of a rule's own match (which spans
/// every destination) does.
const SERVICE: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 443 -j KUBE-SVC-A
-A KUBE-SVC-A -s 10.244.0.0/16 -j ACCEPT
-A KUBE-SVC-A -p tcp -j REJECT --reject-with icmp-port-unreachable
COMMIT
";

#[test]
fn rules_put_into_a_service_chain_behind_a_narrow_jump_are_judged_as_a_full_verify_judges_them() {
    use ringfence_analysis::incremental::Incremental;
    let parse = |t: &str| parse_ruleset(t, "aerleon.rules", RulesetFormat::Auto).expect("parses");
    let site = ringfence_site::example_site().resolve();
    let mut inc = Incremental::with_checks(parse(SERVICE), &site, Hook::Forward, None, ON);
    assert_eq!(inc.not_incremental(), None);
    let (full, mine) = incremental_and_full(&inc, SERVICE);
    assert_eq!(full, mine);
    let shadowed = |v: &[String], t: &str, needle: &str| {
        let line = line_of("aerleon.rules", t, needle);
        v.iter().any(|f| f.contains(&format!("Shadowed {line} ")))
    };
    // Nodes' sources accepted too: reached by the service's packets only.
    let nodes = SERVICE.replace(
        "-A KUBE-SVC-A -p tcp",
        "-A KUBE-SVC-A -s 192.168.0.0/22 -j ACCEPT\n-A KUBE-SVC-A -p tcp",
    );
    let rec = inc.update(parse(&nodes));
    assert_eq!(rec.full, None, "{rec:?}");
    let (full, mine) = incremental_and_full(&inc, &nodes);
    assert_eq!(full, mine);
    assert!(!shadowed(&mine, &nodes, "-s 192.168.0.0/22"), "{mine:?}");
    // The same rule on another port: no packet of the jump matches it.
    let other = nodes.replace(
        "-s 192.168.0.0/22 -j ACCEPT",
        "-s 192.168.0.0/22 -p tcp -m tcp --dport 80 -j ACCEPT",
    );
    let rec = inc.update(parse(&other));
    assert_eq!(rec.full, None, "{rec:?}");
    let (full, mine) = incremental_and_full(&inc, &other);
    assert_eq!(full, mine);
    assert!(shadowed(&mine, &other, "--dport 80"), "{mine:?}");
    // And back.
    inc.update(parse(&nodes));
    let (full, mine) = incremental_and_full(&inc, &nodes);
    assert_eq!(full, mine);
    assert!(!shadowed(&mine, &nodes, "-s 192.168.0.0/22"), "{mine:?}");
}

/// Two nat chains on prerouting: the kernel runs the later one only for
/// connections the earlier one did not translate. `dead` makes the earlier
/// chain's DNAT unreachable (an accept of the same packets before it).
fn two_nat_chains(dead: bool) -> String {
    let first = if dead {
        "\t\ttcp dport 8080 accept\n\t\ttcp dport 8080 dnat to 198.18.10.5:80\n"
    } else {
        "\t\ttcp dport 8080 dnat to 198.18.10.5:80\n"
    };
    format!(
        "table ip nat {{
\tchain pre_first {{
\t\ttype nat hook prerouting priority -110; policy accept;
{first}\t}}
\tchain pre_second {{
\t\ttype nat hook prerouting priority -100; policy accept;
\t\ttcp dport 9090 dnat to 198.18.10.6:80
\t}}
}}
table ip filter {{
\tchain forward {{
\t\ttype filter hook forward priority 0; policy drop;
\t\tct state established,related accept
\t\tip daddr 198.18.10.0/24 tcp dport 80 accept
\t}}
}}
"
    )
}

#[test]
fn a_later_nat_chain_is_not_dead_behind_an_earlier_one_and_a_dead_dnat_is_reported() {
    for dead in [false, true] {
        let text = two_nat_chains(dead);
        let r = run("nat.nft", &text);
        // The later chain's DNAT gets the connections the earlier one
        // leaves alone (tcp 9090): never a finding, nor anything the model
        // synthesizes for how a hook's nat chains run.
        let second = line_of("nat.nft", &text, "dnat to 198.18.10.6");
        for f in r.shadowed.iter().chain(&r.redundant) {
            assert_ne!(f.rule, second, "earlier DNAT dead: {dead}: {f:#?}");
            assert!(
                !f.rule.contains("policy") && !f.rule.contains("skipped"),
                "synthesized rule reported (earlier DNAT dead: {dead}): {f:#?}"
            );
        }
        // The earlier chain's DNAT behind the accept of the same packets is
        // a real dead rule, and is reported.
        let first = line_of("nat.nft", &text, "dnat to 198.18.10.5");
        assert_eq!(shadowed(&r, &first).is_some(), dead, "{:#?}", r.shadowed);
    }
}

/// Before conntrack (raw) a connection-mark test never holds, negated or
/// not: the rule after one is reached by every packet, in its own chain
/// and in context, while the test's own rule never matches. (Found by the
/// engine-against-trace property test: the own-chain question was asked
/// as if the chain ran after conntrack.)
#[test]
fn a_rule_after_a_connection_mark_test_in_raw_is_not_shadowed_by_it() {
    const RAW: &str = "*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT DROP [0:0]
:EMPTY - [0:0]
-A OUTPUT ! -i eth+ -m connmark ! --mark 0x1 -g EMPTY
-A OUTPUT ! -i eth+ -j ACCEPT
COMMIT
";
    let mark = line_of("raw.rules", RAW, "connmark");
    let accept = line_of("raw.rules", RAW, "-j ACCEPT");
    for checks in [ON, Checks::default()] {
        let rs = parse_ruleset(RAW, "raw.rules", RulesetFormat::Auto).expect("parses");
        let site = ringfence_site::example_site().resolve();
        let r = verify_checked(
            &rs,
            &site,
            Hook::Forward,
            auto_families(&site),
            None,
            checks,
        );
        assert!(!is_reported(&r, &accept), "{:?}", r.shadowed);
        let dead = shadowed(&r, &mark).expect("the connection-mark rule never matches");
        assert!(dead.by.is_empty(), "{dead:?}");
    }
}
