//! In-process timing of a full benchmark scan of a node root:
//! `cargo run --release -p ringfence-cis --features testkit --example scan_timing -- DIR [RUNS] [all]`.
//! Prints the median and the fastest run in milliseconds, as
//! `median_ms=... min_ms=... checks=...`. The embedded benchmark is parsed
//! once per process, so runs after the first time discovery, all checks and
//! JSON rendering; the CLI timing in bench/cis-scan.sh covers the rest.
//!
//! With `all`, one run scans the node with every built-in benchmark in turn
//! (discovery, all checks and JSON for each, as one CLI run per benchmark
//! would): it prints `all_first_ms=...` for the first run of the process,
//! which also parses every embedded benchmark, then the median and fastest
//! of the repeated runs, the number of benchmarks and of checks judged.

use ringfence_cis::benchmark::Benchmark;
use ringfence_cis::node::{discover, DiscoverOptions};
use ringfence_cis::profile::{Date, Profile};
use ringfence_cis::render;
use ringfence_cis::report::{scan, ScanOptions};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let root = args.next().expect("usage: scan_timing DIR [RUNS]");
    let runs: usize = args
        .next()
        .map(|r| r.parse().expect("RUNS is a number"))
        .unwrap_or(50);
    if args.next().as_deref() == Some("all") {
        return all_benchmarks(&root, runs);
    }
    let (file, text) = Profile::embedded("tkg-1.5").expect("embedded profile");
    let mut times = Vec::new();
    let mut checks = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let profile = Profile::parse(&file, text).expect("profile");
        let bench = Benchmark::embedded("cis-1.6").expect("benchmark");
        let node = discover(&DiscoverOptions {
            root: Some(root.clone().into()),
            ..Default::default()
        })
        .expect("discover");
        let report = scan(
            &bench,
            &node,
            &ScanOptions {
                targets: None,
                checks: None,
                profile: Some(&profile),
                waivers: &[],
                today: Date::today(),
            },
        );
        let json = render::json(&report);
        std::hint::black_box(json);
        checks = report.checks.len();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "median_ms={:.2} min_ms={:.2} checks={checks}",
        times[times.len() / 2],
        times[0]
    );
}

/// Scan `root` with every built-in benchmark, `runs` times; print the first
/// run (cold: benchmark data parsed then), median and fastest.
fn all_benchmarks(root: &str, runs: usize) {
    let names = Benchmark::embedded_names();
    let mut times = Vec::new();
    let mut checks = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        checks = 0;
        for name in &names {
            let bench = Benchmark::embedded(name).expect("benchmark");
            let node = discover(&DiscoverOptions {
                root: Some(root.into()),
                ..Default::default()
            })
            .expect("discover");
            let report = scan(
                &bench,
                &node,
                &ScanOptions {
                    targets: None,
                    checks: None,
                    profile: None,
                    waivers: &[],
                    today: Date::today(),
                },
            );
            checks += report.checks.len();
            std::hint::black_box(render::json(&report));
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let first = times[0];
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "all_first_ms={first:.2} all_median_ms={:.2} all_min_ms={:.2} benchmarks={} checks={checks}",
        times[times.len() / 2],
        times[0],
        names.len()
    );
}
