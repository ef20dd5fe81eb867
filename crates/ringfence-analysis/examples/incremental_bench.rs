//! Benchmark driver for the incremental verifier (bench/watch.sh runs it;
//! not a test). On a ruleset file and a site it measures, in one process:
//! a full `verify`, building the incremental verifier, then CHANGES random
//! one-rule changes (delete a random rule, insert it back; replace a random
//! rule by a copy with another destination port, put it back), each timed
//! from the call to its updated verdict, and a kube-proxy-style resync that
//! rewrites every KUBE-* chain (same rules, one service's rule changed).
//! At the end it compares the incremental findings with a full verify of
//! the final ruleset.
//!
//! Each change is timed twice: wall time, and wall time less the time the
//! thread waited for a CPU (`/proc/thread-self/schedstat`), which is what
//! the change cost on a machine shared with other work. The slowest 1% by
//! the second are listed by change kind and chain kind.
//!
//! Usage: incremental_bench RULESET SITE.yaml [CHANGES] [SEED]
//! (`DEAD_IN_CONTEXT=1`: the verifies and the incremental verifier keep
//! dead rules in context too, as `--dead-in-context` asks).
//! Prints `key value` lines (seconds, counts, MB).

use ringfence_analysis::fingerprint::verify_findings;
use ringfence_analysis::incremental::{Incremental, RuleChange};
use ringfence_analysis::verify::{auto_families, verify_checked, Checks};
use ringfence_model::{Action, Hook, IntervalSet};
use ringfence_parse::{parse_ruleset, RulesetFormat};
use ringfence_testkit::Rng;
use std::collections::BTreeMap;
use std::time::Instant;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Nanoseconds this thread has waited for a CPU so far (the second field
/// of /proc/thread-self/schedstat, updated whenever the thread is put back
/// on a CPU): a change's wall time less what this grew by is the time the
/// change really ran, which on a loaded machine can be a fraction of it.
fn run_delay_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The current resident set, MB.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A chain's name without its numbered or hashed suffix (KUBE-SVC-…,
/// ACL-APP-…), to say which kind of chain the slow changes were in.
fn chain_kind(name: &str) -> String {
    match name.rsplit_once('-') {
        Some((head, tail)) if tail.chars().all(|c| c.is_ascii_hexdigit()) && !tail.is_empty() => {
            format!("{head}-*")
        }
        _ => name.to_string(),
    }
}

fn pct(v: &[f64], q: f64) -> f64 {
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: incremental_bench RULESET SITE.yaml [CHANGES] [SEED]");
        std::process::exit(2);
    }
    let changes: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let seed: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(19);
    let checks = Checks {
        dead_in_context: std::env::var_os("DEAD_IN_CONTEXT").is_some_and(|v| v == "1"),
    };
    let verify = |rs: &ringfence_model::Ruleset, site: &ringfence_site::ResolvedSite, hook| {
        verify_checked(rs, site, hook, auto_families(site), None, checks)
    };
    let text = std::fs::read_to_string(&args[1]).expect("read ruleset");
    let site_text = std::fs::read_to_string(&args[2]).expect("read site");
    let site = ringfence_site::parse_site(&site_text, &args[2])
        .unwrap_or_else(|e| panic!("{e}"))
        .resolve();
    let t = Instant::now();
    let rs = parse_ruleset(&text, &args[1], RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"));
    println!("parse_s {:.3}", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let report = verify(&rs, &site, Hook::Forward);
    println!("full_verify_s {:.3}", t.elapsed().as_secs_f64());
    println!("full_verify_rss_mb {:.0}", peak_rss_mb());
    drop(report);
    let t = Instant::now();
    let mut inc = Incremental::with_checks(rs, &site, Hook::Forward, None, checks);
    println!("build_s {:.3}", t.elapsed().as_secs_f64());
    println!("build_rss_mb {:.0}", rss_mb());
    if let Some(why) = inc.not_incremental() {
        println!("not_incremental {why}");
    }
    let verbose = std::env::var_os("VERBOSE").is_some();
    let mut rng = Rng::from_state(seed);
    // Per change: wall seconds, on-CPU seconds, what it was, its record.
    let mut done: Vec<(f64, f64, String)> = Vec::with_capacity(changes);
    let mut fallbacks: BTreeMap<String, usize> = BTreeMap::new();
    let mut rejudged = (0usize, 0usize, 0usize);
    while done.len() < changes {
        // A random rule of the whole ruleset.
        let rs = inc.ruleset();
        let total: usize = rs.chains.iter().map(|c| c.rules.len()).sum();
        let mut k = rng.index(total);
        let ci = rs
            .chains
            .iter()
            .position(|c| {
                if k < c.rules.len() {
                    true
                } else {
                    k -= c.rules.len();
                    false
                }
            })
            .expect("a rule");
        let chain = rs.chains[ci].name.clone();
        let rule = rs.chains[ci].rules[k].clone();
        let (first, back) = if rng.index(2) == 0 {
            (
                RuleChange::Delete {
                    chain: chain.clone(),
                    at: k,
                },
                RuleChange::Insert {
                    chain: chain.clone(),
                    at: k,
                    rule,
                },
            )
        } else {
            let mut other = rule.clone();
            let port = 1 + rng.index(65_000) as u16;
            other.matches.dport = IntervalSet::single(port);
            (
                RuleChange::Replace {
                    chain: chain.clone(),
                    at: k,
                    rule: other,
                },
                RuleChange::Replace {
                    chain: chain.clone(),
                    at: k,
                    rule,
                },
            )
        };
        for ch in [first, back] {
            let what = match &ch {
                RuleChange::Delete { .. } => "delete",
                RuleChange::Insert { .. } => "insert",
                _ => "replace",
            };
            let waited = run_delay_ns();
            let t = Instant::now();
            let rec = inc.apply(vec![ch]);
            let secs = t.elapsed().as_secs_f64();
            let waited = run_delay_ns().saturating_sub(waited) as f64 / 1e9;
            let cpu = (secs - waited).max(0.0);
            if verbose {
                eprintln!("{secs:.6} {cpu:.6} {what} {chain} {rec:?}");
            }
            rejudged.0 += rec.flows_rejudged;
            rejudged.1 += rec.excess_boxes;
            rejudged.2 += rec.rules_rejudged;
            if let Some(why) = &rec.full {
                *fallbacks.entry(why.clone()).or_default() += 1;
            }
            done.push((
                secs,
                cpu,
                format!(
                    "{what} {} flows={} excess_boxes={} rules={}",
                    chain_kind(&chain),
                    rec.flows_rejudged,
                    rec.excess_boxes,
                    rec.rules_rejudged
                ),
            ));
        }
    }
    let sorted = |i: usize| {
        let mut v: Vec<f64> = done
            .iter()
            .map(|d| if i == 0 { d.0 } else { d.1 })
            .collect();
        v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
        v
    };
    let (wall, cpu) = (sorted(0), sorted(1));
    println!("changes {}", wall.len());
    println!("change_median_s {:.6}", pct(&wall, 0.5));
    println!("change_p90_s {:.6}", pct(&wall, 0.9));
    println!("change_p99_s {:.6}", pct(&wall, 0.99));
    println!("change_max_s {:.6}", wall[wall.len() - 1]);
    println!(
        "change_mean_s {:.6}",
        wall.iter().sum::<f64>() / wall.len() as f64
    );
    println!("change_cpu_median_s {:.6}", pct(&cpu, 0.5));
    println!("change_cpu_p90_s {:.6}", pct(&cpu, 0.9));
    println!("change_cpu_p99_s {:.6}", pct(&cpu, 0.99));
    println!("change_cpu_max_s {:.6}", cpu[cpu.len() - 1]);
    // What the slowest 1% (by time on a CPU) were.
    let mut by_cpu: Vec<&(f64, f64, String)> = done.iter().collect();
    by_cpu.sort_by(|a, b| b.1.partial_cmp(&a.1).expect("no NaN"));
    let tail = (done.len() / 100).max(1);
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for d in &by_cpu[..tail] {
        let what: Vec<&str> = d.2.split_whitespace().take(2).collect();
        *kinds.entry(what.join(" ")).or_default() += 1;
    }
    for (k, n) in &kinds {
        println!("tail_kind {n} {k}");
    }
    for d in by_cpu.iter().take(10) {
        println!("slowest cpu={:.6} wall={:.6} {}", d.1, d.0, d.2);
    }
    println!(
        "rejudged_flows_excessboxes_rules {} {} {}",
        rejudged.0, rejudged.1, rejudged.2
    );
    for (why, n) in &fallbacks {
        println!("full_verify_fallback {n} {why}");
    }
    // A kube-proxy resync: every KUBE-* chain rewritten, one service changed.
    let rs = inc.ruleset();
    let kube: Vec<usize> = (0..rs.chains.len())
        .filter(|&i| rs.chains[i].name.starts_with("KUBE-"))
        .collect();
    let changed = kube
        .iter()
        .copied()
        .find(|&i| rs.chains[i].name.starts_with("KUBE-SVC-"));
    let resync: Vec<RuleChange> = kube
        .iter()
        .map(|&i| {
            let mut rules = rs.chains[i].rules.clone();
            if Some(i) == changed {
                if let Some(r) = rules.iter_mut().find(|r| r.action == Action::Accept) {
                    r.action = Action::Drop;
                }
            }
            RuleChange::ReplaceChain {
                chain: rs.chains[i].name.clone(),
                rules,
            }
        })
        .collect();
    let n = resync.len();
    let waited = run_delay_ns();
    let t = Instant::now();
    let rec = inc.apply(resync);
    let secs = t.elapsed().as_secs_f64();
    let waited = run_delay_ns().saturating_sub(waited) as f64 / 1e9;
    println!("resync_chains {n}");
    println!("resync_s {secs:.6}");
    println!("resync_cpu_s {:.6}", (secs - waited).max(0.0));
    println!("resync_record {rec:?}");
    println!("peak_rss_mb {:.0}", peak_rss_mb());
    // The end state against a full verify (its list of regions is cut at
    // 200, so regions are compared by count).
    let rs = inc.ruleset().clone();
    let report = verify(&rs, &site, Hook::Forward);
    let full = verify_findings(&report, &rs);
    let (mine, summary) = inc.findings(0);
    let key = |f: &ringfence_analysis::fingerprint::Finding| f.fingerprint.hex();
    let mut a: Vec<String> = full
        .iter()
        .filter(|f| f.region.is_none())
        .map(key)
        .collect();
    let mut b: Vec<String> = mine
        .iter()
        .filter(|f| f.region.is_none())
        .map(key)
        .collect();
    a.sort();
    b.sort();
    println!("final_non_region_findings_equal {}", a == b);
    println!(
        "final_excess_regions full={} incremental={}",
        report.summary.excess, summary.excess
    );
}
