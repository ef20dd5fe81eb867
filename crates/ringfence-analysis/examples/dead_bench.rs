//! Driver for the dead-rules-in-context pass alone (not a test): parses a
//! ruleset, then times `Engine::anomalies` on one thread without and with
//! the context pass, as CPU seconds of this process, and prints how many
//! rules each finds shadowed.
//!
//! Usage: dead_bench RULESET [ROUNDS]

use ringfence_analysis::engine::Engine;
use ringfence_parse::{parse_ruleset, RulesetFormat};

fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .expect("fields")
        .split_whitespace()
        .collect();
    let tick = 100.0;
    (f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime")) / tick
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("read ruleset");
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let rs = parse_ruleset(&text, &args[1], RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..rounds {
        for ctx in [false, true] {
            let t = cpu_s();
            let e = Engine::for_ruleset(&rs).with_dead_in_context(ctx);
            let built = cpu_s() - t;
            let t = cpu_s();
            let a = e.anomalies(20_000);
            println!(
                "context {ctx}: build {built:.2} s, anomalies {:.2} s CPU, shadowed {}, redundant {}",
                cpu_s() - t,
                a.shadowed.len(),
                a.redundant.len()
            );
            if let (true, Some(out)) = (ctx, std::env::var_os("OUT")) {
                let text = format!("{:#?}\n{:#?}\n", a.shadowed, a.redundant);
                std::fs::write(out, text).expect("write OUT");
            }
        }
    }
}
