//! Replay property test of the incremental verifier (issue 19): random
//! change sequences — rule inserts, deletes, replacements and whole-chain
//! rewrites (a kube-proxy-like resync) — on the repository's example
//! ruleset; after every step the incremental verifier's findings have
//! exactly the fingerprints of a full `verify` of the ruleset as it is now.

use proptest::prelude::*;
use ringfence_analysis::fingerprint::verify_findings;
use ringfence_analysis::incremental::Incremental;
use ringfence_analysis::verify::{verify, MAX_REGIONS};
use ringfence_model::{Hook, Ruleset};
use ringfence_parse::{parse_ruleset, RulesetFormat};

const EXAMPLE: &str = include_str!("../../../examples/ruleset.rules");

fn parse(text: &str) -> Ruleset {
    parse_ruleset(text, "ruleset.rules", RulesetFormat::Auto)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Sorted fingerprints of a full verify, and of the incremental verifier.
fn both(inc: &Incremental, rs: &Ruleset) -> (Vec<String>, Vec<String>, String) {
    let site = ringfence_site::example_site().resolve();
    let report = verify(rs, &site, Hook::Forward);
    assert!(report.summary.excess <= MAX_REGIONS, "every region listed");
    let mut full: Vec<String> = verify_findings(&report, rs)
        .iter()
        .map(|f| format!("{} {:?} {}", f.fingerprint.hex(), f.kind, f.subject))
        .collect();
    let (inc_f, _) = inc.findings(usize::MAX);
    let mut mine: Vec<String> = inc_f
        .iter()
        .map(|f| format!("{} {:?} {}", f.fingerprint.hex(), f.kind, f.subject))
        .collect();
    full.sort();
    mine.sort();
    (full, mine, format!("{report:#?}"))
}

/// A rule line for chain `chain` from generated numbers: site addresses
/// (198.18.0.0/16), a port or range, an action (accept, drop, reject,
/// return, or a jump to a user chain other than `chain`).
fn rule_line(chain: &str, g: &[u16; 6]) -> String {
    let src = match g[0] % 5 {
        0 => String::new(),
        1 => format!("-s 198.18.{}.0/24 ", g[1] % 12),
        2 => format!("-s 198.18.{}.{}/32 ", g[1] % 12, g[2] % 64),
        3 => "-s 198.18.0.0/16 ".to_string(),
        _ => format!("! -s 198.18.{}.0/24 ", g[1] % 12),
    };
    let dst = match g[2] % 4 {
        0 => String::new(),
        1 => format!("-d 198.18.{}.0/24 ", g[3] % 12),
        _ => format!("-d 198.18.{}.{}/32 ", g[3] % 12, g[4] % 64),
    };
    let proto = match g[4] % 4 {
        0 => String::new(),
        1 => format!(
            "-p tcp -m tcp --dport {} ",
            [22, 443, 6443, 8080, 10250][g[5] as usize % 5]
        ),
        2 => format!(
            "-p udp -m udp --dport {}:{} ",
            50 + g[5] % 10,
            60 + g[5] % 40
        ),
        _ => "-p tcp ".to_string(),
    };
    let user: Vec<&str> = ["TKG", "INFRA"]
        .into_iter()
        .filter(|c| *c != chain)
        .collect();
    let action = match g[5] % 6 {
        0 | 1 => "ACCEPT".to_string(),
        2 => "DROP".to_string(),
        3 => "REJECT".to_string(),
        4 if chain != "FORWARD" => "RETURN".to_string(),
        _ if chain == "FORWARD" || chain == "TKG" => user[g[0] as usize % user.len()].to_string(),
        _ => "ACCEPT".to_string(),
    };
    format!("-A {chain} {src}{dst}{proto}-j {action}")
}

#[derive(Debug, Clone)]
enum Step {
    Insert(u16, [u16; 6]),
    Delete(u16),
    Replace(u16, [u16; 6]),
    /// Rewrite a whole user chain: its rules, some replaced.
    Resync(u16, Vec<[u16; 6]>),
}

fn step() -> impl Strategy<Value = Step> {
    let g = prop::array::uniform6(0u16..1000);
    prop_oneof![
        (any::<u16>(), g.clone()).prop_map(|(a, g)| Step::Insert(a, g)),
        any::<u16>().prop_map(Step::Delete),
        (any::<u16>(), g.clone()).prop_map(|(a, g)| Step::Replace(a, g)),
        (any::<u16>(), prop::collection::vec(g, 0..4)).prop_map(|(a, v)| Step::Resync(a, v)),
    ]
}

/// Apply a step to the ruleset text (chain declarations stay; only `-A`
/// lines change).
fn apply(text: &str, s: &Step) -> String {
    let lines: Vec<String> = text.lines().map(String::from).collect();
    let rules: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("-A "))
        .collect();
    let chain_of = |i: usize| lines[i].split_whitespace().nth(1).unwrap().to_string();
    let mut out = lines.clone();
    match s {
        Step::Insert(a, g) => {
            let i = rules[*a as usize % rules.len()];
            out.insert(i, rule_line(&chain_of(i), g));
        }
        Step::Delete(a) if rules.len() > 3 => {
            out.remove(rules[*a as usize % rules.len()]);
        }
        Step::Delete(_) => {}
        Step::Replace(a, g) => {
            let i = rules[*a as usize % rules.len()];
            out[i] = rule_line(&chain_of(i), g);
        }
        Step::Resync(a, gs) => {
            let chain = ["TKG", "INFRA"][*a as usize % 2];
            let mine: Vec<usize> = rules
                .iter()
                .copied()
                .filter(|&i| chain_of(i) == chain)
                .collect();
            let at = mine
                .first()
                .copied()
                .unwrap_or_else(|| lines.iter().position(|l| l == "COMMIT").unwrap());
            // The same rules again (new line numbers for all of them), the
            // first few replaced by generated ones.
            let mut body: Vec<String> = mine.iter().map(|&i| lines[i].clone()).collect();
            for (k, g) in gs.iter().enumerate() {
                if k < body.len() {
                    body[k] = rule_line(chain, g);
                } else {
                    body.push(rule_line(chain, g));
                }
            }
            out = Vec::new();
            for (i, l) in lines.iter().enumerate() {
                if i == at {
                    out.push(format!("# resync of {chain}"));
                    out.extend(body.iter().cloned());
                }
                if !mine.contains(&i) {
                    out.push(l.clone());
                }
            }
        }
    }
    let mut t = out.join("\n");
    t.push('\n');
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn incremental_findings_equal_a_full_verify_after_every_change(
        steps in prop::collection::vec(step(), 1..8)
    ) {
        let site = ringfence_site::example_site().resolve();
        let mut text = EXAMPLE.to_string();
        let mut inc = Incremental::new(parse(&text), &site, Hook::Forward);
        prop_assert!(inc.not_incremental().is_none(), "{:?}", inc.not_incremental());
        let (full, mine, _) = both(&inc, &parse(&text));
        prop_assert_eq!(full, mine);
        for s in &steps {
            text = apply(&text, s);
            let rs = parse(&text);
            let rec = inc.update(rs.clone());
            // Nothing in these changes needs a full verify: the replay
            // tests the incremental path itself.
            prop_assert_eq!(&rec.full, &None, "after {:?}", s);
            let (full, mine, report) = both(&inc, &rs);
            prop_assert_eq!(full, mine, "after {:?} ({:?})\n{}\n{}", s, rec, text, report);
        }
    }
}

#[test]
fn a_rule_change_is_handled_incrementally_and_says_what_it_rejudged() {
    let site = ringfence_site::example_site().resolve();
    let mut inc = Incremental::new(parse(EXAMPLE), &site, Hook::Forward);
    // Open vCenter (the example's blocked to-vcenter flow).
    let text = EXAMPLE.replacen(
        "-A FORWARD ",
        "-A FORWARD -d 198.18.1.30/32 -p tcp -m tcp --dport 443 -j ACCEPT\n-A FORWARD ",
        1,
    );
    let rec = inc.update(parse(&text));
    assert_eq!(rec.full, None, "{rec:?}");
    assert_eq!(rec.rules_changed, 1);
    assert!(
        rec.flows_rejudged >= 1 && rec.flows_rejudged < 15,
        "{rec:?}"
    );
    let (full, mine, _) = both(&inc, &parse(&text));
    assert_eq!(full, mine);
}

#[test]
fn a_policy_change_falls_back_to_a_full_verify_and_says_so() {
    let site = ringfence_site::example_site().resolve();
    let mut inc = Incremental::new(parse(EXAMPLE), &site, Hook::Forward);
    let text = EXAMPLE.replace(":FORWARD DROP", ":FORWARD ACCEPT");
    let rec = inc.update(parse(&text));
    assert!(rec.full.is_some(), "{rec:?}");
    let (full, mine, _) = both(&inc, &parse(&text));
    assert_eq!(full, mine);
}

#[test]
fn a_ruleset_that_translates_addresses_is_verified_in_full_on_every_change() {
    let site = ringfence_site::example_site().resolve();
    let nat = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -d 198.18.1.99/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.1.20:443\nCOMMIT\n";
    let text = format!("{EXAMPLE}{nat}");
    let mut inc = Incremental::new(parse(&text), &site, Hook::Forward);
    let why = inc.not_incremental().map(str::to_string);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("translated")),
        "{why:?}"
    );
    let changed = text.replacen(
        "-A FORWARD ",
        "-A FORWARD -d 198.18.1.30/32 -p tcp -m tcp --dport 443 -j ACCEPT\n-A FORWARD ",
        1,
    );
    let rec = inc.update(parse(&changed));
    assert!(rec.full.is_some(), "{rec:?}");
    let (full, mine, _) = both(&inc, &parse(&changed));
    assert_eq!(full, mine);
}
