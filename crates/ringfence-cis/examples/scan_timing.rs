//! In-process timing of a full benchmark scan of a node root:
//! `cargo run --release -p ringfence-cis --features testkit --example scan_timing -- DIR [RUNS]`.
//! Prints the median and the fastest run in milliseconds, as
//! `median_ms=... min_ms=... checks=...`. The embedded benchmark is parsed
//! once per process, so runs after the first time discovery, all checks and
//! JSON rendering; the CLI timing in bench/cis-scan.sh covers the rest.

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
