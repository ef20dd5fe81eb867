//! The excess search shared by threads (issue 15): the pivot boxes' walks
//! are handed out to every thread that helps, and their outcomes put back
//! in plan order, so the answer is the same, outcome for outcome and in the
//! same order, on one thread, on several, and with helpers that join from
//! outside (as verify's shadowed/redundant workers do).

use ringfence_analysis::engine::DEFAULT_BUDGET;
use ringfence_analysis::{Engine, IfaceUniverse, Outcome};
use ringfence_model::{CtStates, Hook, Ruleset};
use ringfence_parse::{parse_ruleset, RulesetFormat};
use ringfence_testkit::Rng;
use std::fmt::Write;

/// An iptables-save ruleset shaped like `bench/gen_shapes.py`'s `overlap`
/// and `return`: FORWARD drops by policy and jumps to zone chains by
/// sources that nest (/16, /20, /24), the zone chains accept, drop and
/// return by destination and port, some destinations negated or missing,
/// some rules opaque (`-m statistic`, a fork), and one zone chain sets a
/// mark when `marks` is set (a path that rewrites marks).
fn ruleset(seed: u64, zones: usize, marks: bool) -> Ruleset {
    let mut r = Rng::new(seed);
    let mut t =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for z in 0..zones {
        writeln!(t, ":Z{z} - [0:0]").unwrap();
    }
    for z in 0..zones {
        let src = match r.below(3) {
            0 => format!("10.{}.0.0/16", r.below(4)),
            1 => format!("10.{}.{}.0/20", r.below(4), 16 * r.below(16)),
            _ => format!("10.{}.{}.0/24", r.below(4), r.below(256)),
        };
        writeln!(t, "-A FORWARD -s {src} -j Z{z}").unwrap();
    }
    writeln!(
        t,
        "-A FORWARD -m state --state ESTABLISHED,RELATED -j ACCEPT"
    )
    .unwrap();
    for z in 0..zones {
        if marks && z == zones / 2 {
            writeln!(t, "-A Z{z} -p tcp --dport 8443 -j MARK --set-mark 0x4").unwrap();
        }
        for _ in 0..4 + r.below(8) {
            let dst = match r.below(6) {
                0 => String::new(),
                1 => format!(" ! -d 172.{}.0.0/16", 16 + r.below(4)),
                _ => format!(" -d 172.{}.{}.0/24", 16 + r.below(4), r.below(64)),
            };
            let port = *r.pick(&[22u16, 53, 80, 443, 5432, 8443]);
            let fork = if r.chance(5) {
                " -m statistic --mode random --probability 0.5"
            } else {
                ""
            };
            let action = *r.pick(&["ACCEPT", "ACCEPT", "ACCEPT", "DROP", "RETURN"]);
            writeln!(t, "-A Z{z} -p tcp{dst} --dport {port}{fork} -j {action}").unwrap();
        }
    }
    t.push_str("COMMIT\n");
    parse_ruleset(&t, "gen.rules", RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"))
}

/// The excess list as text: every field of every outcome, in order.
fn text(out: &[Outcome]) -> Vec<String> {
    out.iter().map(|o| format!("{o:?}")).collect()
}

/// The search with `outside` threads helping from outside while this one
/// finishes it.
fn with_outside_helpers(
    engine: &Engine,
    scope: &[ringfence_analysis::PBox],
    outside: usize,
) -> (Vec<Outcome>, bool) {
    let search = engine.excess_search(Hook::Forward, scope, &[], DEFAULT_BUDGET);
    std::thread::scope(|s| {
        for _ in 0..outside {
            s.spawn(|| search.help());
        }
        search.finish()
    })
}

#[test]
fn excess_is_the_same_list_in_the_same_order_on_any_number_of_threads() {
    for seed in 1..=4 {
        let rs = ruleset(seed, 60, false);
        let engine = Engine::new(&rs, IfaceUniverse::new([&rs]));
        let scope = engine.hook_space(Hook::Forward, CtStates::NEW);
        let search = engine.excess_search(Hook::Forward, &scope, &[], DEFAULT_BUDGET);
        let (one, inc_one) = search.run_on(1);
        // Enough excess that the walks come in many chunks.
        assert!(one.len() > 50, "seed {seed}: only {} outcomes", one.len());
        for threads in [2, 3, 8] {
            let search = engine.excess_search(Hook::Forward, &scope, &[], DEFAULT_BUDGET);
            let (many, inc_many) = search.run_on(threads);
            assert_eq!(inc_one, inc_many, "seed {seed}, {threads} threads");
            assert_eq!(text(&one), text(&many), "seed {seed}, {threads} threads");
        }
        let (helped, inc_helped) = with_outside_helpers(&engine, &scope, 2);
        assert_eq!(inc_one, inc_helped, "seed {seed}, outside helpers");
        assert_eq!(text(&one), text(&helped), "seed {seed}, outside helpers");
        // And `accepted_beyond` itself, on every core.
        let (all, inc_all) = engine.accepted_beyond(Hook::Forward, &scope, &[], DEFAULT_BUDGET);
        assert_eq!(inc_one, inc_all);
        assert_eq!(text(&one), text(&all), "seed {seed}, accepted_beyond");
    }
}

/// A path that rewrites marks: the pivot boxes' walks and the candidates'
/// classifications are shared, and the list is the same, outcome for
/// outcome and in the same order, on 1, 2 and 3 threads, with helpers that
/// join from outside, and when a thread helps before finishing the search
/// itself (it must not wait for itself).
#[test]
fn a_path_that_rewrites_marks_gives_the_same_list_on_1_2_and_3_threads() {
    for seed in [9, 10, 11] {
        let rs = ruleset(seed, 60, true);
        let engine = Engine::new(&rs, IfaceUniverse::new([&rs]));
        let scope = engine.hook_space(Hook::Forward, CtStates::NEW);
        let search = engine.excess_search(Hook::Forward, &scope, &[], DEFAULT_BUDGET);
        let (one, inc_one) = search.run_on(1);
        // Enough candidates that both shared steps come in many chunks.
        assert!(one.len() > 50, "seed {seed}: only {} outcomes", one.len());
        for threads in [2, 3] {
            let search = engine.excess_search(Hook::Forward, &scope, &[], DEFAULT_BUDGET);
            let (many, inc_many) = search.run_on(threads);
            assert_eq!(inc_one, inc_many, "seed {seed}, {threads} threads");
            assert_eq!(text(&one), text(&many), "seed {seed}, {threads} threads");
        }
        let (helped, inc_helped) = with_outside_helpers(&engine, &scope, 2);
        assert_eq!(inc_one, inc_helped, "seed {seed}, outside helpers");
        assert_eq!(text(&one), text(&helped), "seed {seed}, outside helpers");
        let search = engine.excess_search(Hook::Forward, &scope, &[], DEFAULT_BUDGET);
        search.help();
        let (own, inc_own) = search.finish();
        assert_eq!(
            inc_one, inc_own,
            "seed {seed}, helped on its own thread first"
        );
        assert_eq!(
            text(&one),
            text(&own),
            "seed {seed}, helped on its own thread first"
        );
    }
}
