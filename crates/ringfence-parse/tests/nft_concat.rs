//! Concatenations (`ip saddr . tcp dport @set`) become exact model rules: one
//! per element box, sharing the source rule's handle. The fixture
//! tests/data/nft/concat.json is the real `nft -j list ruleset` dump of
//! concat.nft (made by regen.sh); a root-gated test loads concat.nft again
//! into a throwaway namespace and checks that the fresh dump parses to the
//! same model.

mod nft_support;

use ringfence_model::{Action, ChainId, CtStates, Hook, Packet, Policy, Ruleset, Verdict};
use ringfence_parse::nft;
use std::fmt::Write;
use std::net::IpAddr;

fn data(name: &str) -> String {
    format!("{}/tests/data/nft/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> Ruleset {
    let text = std::fs::read_to_string(data("concat.json")).unwrap();
    nft::parse(&text, "concat.json").unwrap_or_else(|e| panic!("{e}"))
}

enum Flow {
    Verdict(Verdict),
    Fallthrough,
}

/// First-match evaluation of the model; panics on an opaque rule that matches.
fn eval(rs: &Ruleset, id: ChainId, p: &Packet, hits: &mut Vec<String>) -> Flow {
    for rule in &rs.chain(id).rules {
        if !rule.matches.matches_fields(p) {
            continue;
        }
        assert!(
            rule.matches.opaque.is_empty(),
            "{} is opaque: {:?}",
            rule.origin,
            rule.matches.opaque
        );
        hits.push(rule.origin.to_string());
        match &rule.action {
            Action::Accept => return Flow::Verdict(Verdict::Accept),
            Action::Drop => return Flow::Verdict(Verdict::Drop),
            Action::Reject { .. } => return Flow::Verdict(Verdict::Reject),
            Action::Continue => {}
            Action::Mark(_) => unreachable!("these rulesets set no marks"),
            Action::Nat(_) => unreachable!("these rulesets translate no addresses"),
            Action::Return => return Flow::Fallthrough,
            Action::Jump { target } => {
                if let Flow::Verdict(v) = eval(rs, *target, p, hits) {
                    return Flow::Verdict(v);
                }
            }
            Action::Goto { target } => return eval(rs, *target, p, hits),
        }
    }
    Flow::Fallthrough
}

fn verdict(rs: &Ruleset, p: &Packet) -> (Verdict, Vec<String>) {
    let mut hits = Vec::new();
    for id in rs.base_chains(Hook::Forward) {
        let v = match eval(rs, id, p, &mut hits) {
            Flow::Verdict(v) => v,
            Flow::Fallthrough => match rs.chain(id).base.as_ref().unwrap().policy {
                Policy::Accept => Verdict::Accept,
                Policy::Drop => Verdict::Drop,
            },
        };
        if v != Verdict::Accept {
            return (v, hits);
        }
    }
    (Verdict::Accept, hits)
}

fn pkt(src: &str, dst: &str, proto: u8, dport: u16, iif: &str, oif: &str) -> Packet {
    let mut p = Packet::new_connection(
        src.parse::<IpAddr>().unwrap(),
        dst.parse::<IpAddr>().unwrap(),
        proto,
        40000,
        dport,
    );
    p.iif = Some(iif.into());
    p.oif = Some(oif.into());
    p.ct_state = CtStates::NEW;
    p
}

#[test]
fn concatenations_parse_into_one_rule_per_element_box() {
    insta::assert_snapshot!(nft_support::render(&fixture()));
}

#[test]
fn no_concatenation_match_is_left_opaque() {
    let rs = fixture();
    for c in &rs.chains {
        for r in &c.rules {
            assert!(
                r.matches.opaque.is_empty(),
                "{} stays opaque: {:?}",
                r.origin,
                r.matches.opaque
            );
        }
    }
    assert!(
        rs.notes.iter().all(|n| !n.message.contains("concat")),
        "{:?}",
        rs.notes
    );
}

/// Each packet with the verdict the kernel gives it under concat.nft, and
/// the handle of the rule that decides (read from concat.json).
#[test]
fn packets_get_the_verdict_of_the_element_they_fall_in() {
    let rs = fixture();
    let handle = |h: u64| format!("inet cat fw handle {h}");
    let cases: &[(Packet, Verdict, Option<u64>)] = &[
        // same_v4: each /24 to itself, and 198.18.3.1-5 to 198.18.1.10.
        (
            pkt("198.18.1.5", "198.18.1.9", 6, 9999, "eth9", "eth9"),
            Verdict::Accept,
            Some(10),
        ),
        (
            pkt("198.18.2.5", "198.18.2.200", 17, 9999, "eth9", "eth9"),
            Verdict::Accept,
            Some(10),
        ),
        (
            pkt("198.18.3.3", "198.18.1.10", 6, 9999, "eth9", "eth9"),
            Verdict::Accept,
            Some(10),
        ),
        // Across networks: not in same_v4, so the `!=` reject decides port 8080.
        (
            pkt("198.18.3.6", "198.18.1.10", 6, 8080, "eth9", "eth9"),
            Verdict::Reject,
            Some(17),
        ),
        (
            pkt("198.18.1.5", "198.18.2.9", 6, 8080, "eth9", "eth9"),
            Verdict::Reject,
            Some(17),
        ),
        // ... and other ports fall to the policy.
        (
            pkt("198.18.1.5", "198.18.2.9", 6, 8081, "eth9", "eth9"),
            Verdict::Drop,
            None,
        ),
        // Anonymous set with a prefix and a port range.
        (
            pkt("198.18.0.1", "198.18.9.9", 6, 22, "eth9", "eth9"),
            Verdict::Accept,
            Some(12),
        ),
        (
            pkt("198.18.0.2", "198.18.9.9", 6, 22, "eth9", "eth9"),
            Verdict::Drop,
            None,
        ),
        (
            pkt("198.18.200.2", "198.18.9.9", 6, 85, "eth9", "eth9"),
            Verdict::Accept,
            Some(12),
        ),
        (
            pkt("198.18.200.2", "198.18.9.9", 17, 85, "eth9", "eth9"),
            Verdict::Drop,
            None,
        ),
        // Three parts: address . protocol . th port.
        (
            pkt("198.18.2.20", "198.18.9.9", 17, 53, "eth9", "eth9"),
            Verdict::Accept,
            Some(13),
        ),
        (
            pkt("198.18.2.20", "198.18.9.9", 6, 53, "eth9", "eth9"),
            Verdict::Drop,
            None,
        ),
        // Interface wildcard and a commented element.
        (
            pkt("198.18.1.77", "198.18.9.9", 6, 1, "rf-x", "eth9"),
            Verdict::Drop,
            Some(14),
        ),
        (
            pkt("198.18.2.1", "198.18.9.9", 6, 1, "eth0", "eth9"),
            Verdict::Drop,
            Some(14),
        ),
        // IPv6 part.
        (
            pkt("2001:db8:5::1", "2001:db8::9", 6, 85, "eth9", "eth9"),
            Verdict::Accept,
            Some(15),
        ),
        (
            pkt("2001:db8:1::1", "2001:db8::9", 6, 443, "eth9", "eth9"),
            Verdict::Accept,
            Some(15),
        ),
        (
            pkt("2001:db8:1::2", "2001:db9::9", 6, 443, "eth9", "eth9"),
            Verdict::Drop,
            None,
        ),
        // Jump through the interval set; sub returns port 1500 and accepts the rest.
        (
            pkt("198.18.7.7", "198.18.9.9", 6, 1200, "eth9", "eth9"),
            Verdict::Accept,
            None,
        ),
        (
            pkt("198.18.7.7", "198.18.9.9", 6, 1500, "eth9", "eth9"),
            Verdict::Drop,
            None,
        ),
        (
            pkt("198.18.1.7", "198.18.9.9", 6, 2600, "eth9", "eth9"),
            Verdict::Accept,
            None,
        ),
        // oifname . udp dport with a wildcard.
        (
            pkt("198.18.7.7", "198.18.9.9", 17, 123, "eth9", "rf-b1"),
            Verdict::Accept,
            Some(20),
        ),
        (
            pkt("198.18.7.7", "198.18.9.9", 17, 123, "eth9", "rf-a"),
            Verdict::Drop,
            None,
        ),
        // Verdict map with a concatenated key.
        (
            pkt("198.18.0.1", "198.18.9.9", 6, 2222, "eth9", "eth9"),
            Verdict::Accept,
            Some(22),
        ),
        (
            pkt("198.18.0.2", "198.18.9.9", 6, 3050, "eth9", "eth9"),
            Verdict::Drop,
            Some(22),
        ),
    ];
    let mut failures = String::new();
    for (p, want, by) in cases {
        let (got, hits) = verdict(&rs, p);
        let decided_by_ok = match by {
            Some(h) => hits.last() == Some(&handle(*h)),
            None => true,
        };
        if got != *want || !decided_by_ok {
            writeln!(
                failures,
                "{p:?}: want {want:?} by {by:?}, got {got:?} after {hits:?}"
            )
            .unwrap();
        }
    }
    assert!(failures.is_empty(), "{failures}");
}

#[test]
fn jump_copies_are_disjoint_so_the_sub_chain_runs_once() {
    let rs = fixture();
    // 198.18.1.7 . 1800 lies in the first element only; every packet must hit
    // the jump rule at most once.
    for port in [1000, 1500, 1800, 2000, 2500, 2999] {
        let p = pkt("198.18.1.7", "198.18.9.9", 6, port, "eth9", "eth9");
        let (_, hits) = verdict(&rs, &p);
        let jumps = hits.iter().filter(|h| h.ends_with("handle 18")).count();
        assert!(jumps <= 1, "port {port}: {hits:?}");
    }
}

fn set_json(name: &str, elems: &[String]) -> String {
    format!(
        r#"{{"set": {{"family": "inet", "table": "t", "name": "{name}", "type": ["ipv4_addr", "inet_service"], "handle": 1, "flags": ["interval"], "elem": [{}]}}}}"#,
        elems.join(",")
    )
}

fn ruleset_json(sets: &[String], rules: &[String]) -> String {
    let mut items = vec![
        r#"{"table": {"family": "inet", "name": "t", "handle": 1}}"#.to_string(),
        r#"{"chain": {"family": "inet", "table": "t", "name": "fw", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}"#.to_string(),
        r#"{"chain": {"family": "inet", "table": "t", "name": "sub", "handle": 2}}"#.to_string(),
    ];
    items.extend(sets.iter().cloned());
    for (i, r) in rules.iter().enumerate() {
        items.push(format!(
            r#"{{"rule": {{"family": "inet", "table": "t", "chain": "fw", "handle": {}, "expr": {r}}}}}"#,
            100 + i
        ));
    }
    format!(r#"{{"nftables": [{}]}}"#, items.join(","))
}

fn big_set(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"concat": ["10.{}.{}.1", {}]}}"#,
                i / 256,
                i % 256,
                1000 + i
            )
        })
        .collect()
}

const MATCH_BIG: &str = r#"{"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]}, "right": "@big"}}"#;

#[test]
fn a_large_set_used_by_many_rules_is_exact_within_the_budget() {
    let sets = vec![set_json("big", &big_set(2500))];
    let rules: Vec<String> = (0..40)
        .map(|_| format!("[{MATCH_BIG}, {{\"accept\": null}}]"))
        .collect();
    let rs = nft::parse(&ruleset_json(&sets, &rules), "big.json").unwrap();
    let fw = &rs.chains[0];
    assert_eq!(fw.rules.len(), 40 * 2500);
    assert!(fw.rules.iter().all(|r| r.matches.opaque.is_empty()));
}

#[test]
fn over_the_total_budget_later_matches_stay_opaque_with_a_note() {
    let sets = vec![set_json("big", &big_set(2500))];
    let rules: Vec<String> = (0..120)
        .map(|_| format!("[{MATCH_BIG}, {{\"accept\": null}}]"))
        .collect();
    let rs = nft::parse(&ruleset_json(&sets, &rules), "big.json").unwrap();
    let fw = &rs.chains[0];
    let exact = fw
        .rules
        .iter()
        .filter(|r| r.matches.opaque.is_empty())
        .count();
    let opaque: Vec<_> = fw
        .rules
        .iter()
        .filter(|r| !r.matches.opaque.is_empty())
        .collect();
    assert_eq!(
        exact,
        100 * 2500,
        "the budget admits 100 rules of 2,500 elements"
    );
    assert_eq!(opaque.len(), 20);
    // An opaque concatenation still only matches TCP over IPv4.
    for r in opaque {
        assert_eq!(r.matches.protocol.ranges(), &[(6, 6)]);
        assert!(r.matches.src.v6.is_empty());
    }
    assert_eq!(
        rs.notes
            .iter()
            .filter(|n| n.message.contains("budget"))
            .count(),
        20,
        "{:?}",
        rs.notes.first()
    );
}

#[test]
fn negation_of_a_set_too_large_to_complement_stays_opaque_with_a_note() {
    // A diagonal of single address . port points (nothing merges): its
    // complement needs about two boxes per element, past the budget.
    let elems: Vec<String> = (0..15_000)
        .map(|i| format!(r#"{{"concat": ["10.0.{}.{}", {}]}}"#, i / 250, i % 250, i))
        .collect();
    let m = MATCH_BIG.replace(r#""op": "==""#, r#""op": "!=""#);
    let rs = nft::parse(
        &ruleset_json(
            &[set_json("big", &elems)],
            &[format!("[{m}, {{\"drop\": null}}]")],
        ),
        "neg.json",
    )
    .unwrap();
    let fw = &rs.chains[0];
    assert_eq!(fw.rules.len(), 1);
    assert!(!fw.rules[0].matches.opaque.is_empty());
    assert!(
        rs.notes
            .iter()
            .any(|n| n.message.contains("`!=`") && n.message.contains("budget")),
        "{:?}",
        rs.notes
    );
}

#[test]
fn an_element_with_the_wrong_number_of_parts_is_an_error_at_the_element() {
    let sets = vec![set_json(
        "s",
        &[r#"{"concat": ["10.0.0.1", 22, 7]}"#.to_string()],
    )];
    let rule = format!(
        "[{}, {{\"accept\": null}}]",
        MATCH_BIG.replace("@big", "@s")
    );
    let errs = nft::parse(&ruleset_json(&sets, &[rule]), "bad.json").unwrap_err();
    let text = errs.to_string();
    assert!(text.contains("/nftables/3/set/elem/0"), "{text}");
    assert!(
        text.contains("3 parts") && text.contains("2 fields"),
        "{text}"
    );
}

/// Loads concat.nft with the real nft into a throwaway namespace and checks
/// that today's dump parses to exactly the fixture's model.
#[test]
fn fresh_dump_of_the_fixture_source_parses_like_the_stored_fixture() {
    use ringfence_testkit::Need;
    if !ringfence_testkit::require!(Need::Root, Need::Tool("ip"), Need::Tool("nft")) {
        return;
    }
    let ns = ringfence_testkit::Netns::new("nftcat");
    ns.ok("nft", &["-f", &data("concat.nft")], b"");
    let dump = ns.ok("nft", &["-j", "list", "ruleset"], b"");
    let fresh = nft::parse(&dump, "concat.json").unwrap_or_else(|e| panic!("{e}"));
    // Pointers into the file differ with pretty-printing; compare the model.
    let strip = |s: String| -> String {
        s.lines()
            .filter(|l| !l.starts_with("note "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip(nft_support::render(&fresh)),
        strip(nft_support::render(&fixture()))
    );
}
