//! Choosing a benchmark for a Kubernetes version (`--benchmark auto`).
//!
//! `benchmarks/versions.yaml` keeps kube-bench's `version_mapping` (minor
//! version → benchmark) and, under `shipped`, the Kubernetes minors each
//! built-in benchmark covers. [`choose`] maps exactly as kube-bench does;
//! when kube-bench's choice is not built in, or kube-bench has none, it picks
//! nothing and names the nearest built-in benchmarks instead, so a scan never
//! runs a benchmark the user did not ask for.

use crate::benchmark::Benchmark;
use serde::Deserialize;
use std::collections::BTreeMap;

const VERSIONS: &str = include_str!("../../../benchmarks/versions.yaml");

#[derive(Deserialize)]
struct Versions {
    kube_bench: BTreeMap<String, String>,
    shipped: BTreeMap<String, Range>,
}

#[derive(Deserialize)]
struct Range {
    min: u32,
    max: u32,
}

fn data() -> Versions {
    serde_saphyr::from_str(VERSIONS).expect("embedded versions.yaml is valid")
}

/// The benchmark chosen for a node, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The benchmark to run.
    pub benchmark: String,
    /// Why, in words: the version, where it was read, and kube-bench's
    /// mapping (`Kubernetes v1.22.5 from ...; kube-bench maps 1.22 to cis-1.23`).
    pub reason: String,
}

/// Why no built-in benchmark fits, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoChoice {
    /// What is wrong.
    pub message: String,
    /// How to go on (`pass --benchmark cis-1.6 ...`).
    pub help: String,
}

/// The minor version of `1.22.5` / `v1.22`.
pub fn minor(version: &str) -> Option<u32> {
    let v = version.trim().trim_start_matches('v');
    let mut it = v.split('.');
    (it.next()? == "1").then_some(())?;
    let m = it.next()?;
    let digits: String = m.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// kube-bench's version mapping for Kubernetes 1.x: minor → benchmark.
pub fn kube_bench_mapping() -> BTreeMap<u32, String> {
    data()
        .kube_bench
        .into_iter()
        .filter_map(|(v, b)| Some((minor(&v)?, b)))
        .collect()
}

/// Pick the benchmark for a node's Kubernetes `version`, read from `source`
/// (`--k8s-version`, an image tag, a binary), as kube-bench's version
/// mapping does. `Err` when the version is unknown or unreadable, or when
/// kube-bench's choice is not built in or it has none: the message names the
/// nearest built-in benchmarks.
pub fn choose(version: Option<&str>, source: Option<&str>) -> Result<Choice, NoChoice> {
    let builtin = Benchmark::embedded_names();
    let list = builtin.join(", ");
    let Some(version) = version else {
        return Err(NoChoice {
            message: "cannot tell the node's Kubernetes version (no image tag in its static pod manifests, no component binary with a version stamp), so --benchmark auto cannot pick a benchmark".into(),
            help: format!("pass --k8s-version (such as 1.28.3), or --benchmark with one of {list}"),
        });
    };
    let Some(m) = minor(version) else {
        return Err(NoChoice {
            message: format!(
                "cannot read Kubernetes version {version:?}{}",
                source.map(|s| format!(" (from {s})")).unwrap_or_default()
            ),
            help: format!("pass --k8s-version (such as 1.28.3), or --benchmark with one of {list}"),
        });
    };
    let data = data();
    let shown = format!("v{}", version.trim().trim_start_matches('v'));
    let from = source.map(|s| format!(" from {s}")).unwrap_or_default();
    let kb = kube_bench_mapping().remove(&m);
    if let Some(kb) = kb.as_ref().filter(|kb| builtin.contains(&kb.as_str())) {
        return Ok(Choice {
            benchmark: kb.clone(),
            reason: format!("Kubernetes {shown}{from}; kube-bench maps 1.{m} to {kb}"),
        });
    }
    // Nothing fits: name the built-in benchmarks whose range is nearest.
    let distance = |r: &Range| {
        if m < r.min {
            r.min - m
        } else {
            m.saturating_sub(r.max)
        }
    };
    let ranged: Vec<(&String, &Range)> = data
        .shipped
        .iter()
        .filter(|(n, _)| builtin.contains(&n.as_str()))
        .collect();
    let best = ranged.iter().map(|(_, r)| distance(r)).min();
    let nearest: Vec<String> = ranged
        .iter()
        .filter(|(_, r)| Some(distance(r)) == best)
        .map(|(n, r)| {
            if r.min == r.max {
                format!("{n} (Kubernetes 1.{})", r.min)
            } else {
                format!("{n} (Kubernetes 1.{}-1.{})", r.min, r.max)
            }
        })
        .collect();
    let first = nearest
        .first()
        .and_then(|n| n.split(' ').next())
        .unwrap_or("NAME")
        .to_string();
    let why = match &kb {
        Some(kb) => format!("kube-bench maps 1.{m} to {kb}, which ringfence does not build in"),
        None => format!("kube-bench has no benchmark for Kubernetes 1.{m}"),
    };
    let older = ranged.iter().all(|(_, r)| m < r.min);
    Err(NoChoice {
        message: format!(
            "Kubernetes {shown}{from}{}: {why}; the nearest built-in benchmark{} {}",
            if older {
                " is older than every built-in benchmark"
            } else {
                ""
            },
            if nearest.len() == 1 { " is" } else { "s are" },
            nearest.join(" and ")
        ),
        help: format!(
            "pass --benchmark {first} to scan with it anyway (its checks may not match this version), or --k8s-version if the version is wrong"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kube_bench_mapping_from_1_16_to_1_34_resolves_to_its_own_benchmark() {
        let map = kube_bench_mapping();
        for m in 16..=34 {
            let want = map.get(&m).unwrap_or_else(|| panic!("1.{m} is not mapped"));
            let c = choose(Some(&format!("1.{m}.0")), None)
                .unwrap_or_else(|e| panic!("1.{m}: {}", e.message));
            assert_eq!(&c.benchmark, want, "1.{m}");
            assert!(
                c.reason
                    .ends_with(&format!("kube-bench maps 1.{m} to {want}")),
                "{}",
                c.reason
            );
        }
    }

    #[test]
    fn versions_pick_what_kube_bench_picks_and_say_why() {
        let cases = [
            ("1.17.3", "cis-1.6"),
            ("v1.19.0", "cis-1.20"),
            ("1.21", "cis-1.20"),
            ("1.22.5", "cis-1.23"),
            ("1.23.17", "cis-1.23"),
            ("1.24.2", "cis-1.24"),
            ("1.25.0", "cis-1.7"),
            ("1.26.1", "cis-1.8"),
            ("1.27.4", "cis-1.9"),
            ("v1.28.2", "cis-1.10"),
            ("1.31.0", "cis-1.11"),
            ("1.34.1", "cis-1.12"),
        ];
        for (v, want) in cases {
            assert_eq!(choose(Some(v), None).unwrap().benchmark, want, "{v}");
        }
        let c = choose(
            Some("1.22.9"),
            Some("the kubelet binary at /usr/bin/kubelet"),
        )
        .unwrap();
        assert_eq!(
            c.reason,
            "Kubernetes v1.22.9 from the kubelet binary at /usr/bin/kubelet; kube-bench maps 1.22 to cis-1.23"
        );
    }

    #[test]
    fn old_new_unknown_and_unreadable_versions_pick_nothing_and_say_what_to_do() {
        let e = choose(Some("1.15.3"), None).unwrap_err();
        assert!(
            e.message.contains("older than every built-in benchmark")
                && e.message.contains("kube-bench maps 1.15 to cis-1.5")
                && e.message.contains("cis-1.6 (Kubernetes 1.16-1.18)"),
            "{}",
            e.message
        );
        assert!(e.help.contains("--benchmark cis-1.6"), "{}", e.help);
        let e = choose(Some("1.12"), None).unwrap_err();
        assert!(
            e.message
                .contains("kube-bench has no benchmark for Kubernetes 1.12"),
            "{}",
            e.message
        );
        let e = choose(Some("1.35.0"), Some("--k8s-version")).unwrap_err();
        assert!(
            e.message
                .starts_with("Kubernetes v1.35.0 from --k8s-version: kube-bench has no benchmark")
                && e.message.contains("cis-1.12 (Kubernetes 1.32-1.34)"),
            "{}",
            e.message
        );
        assert!(choose(None, None)
            .unwrap_err()
            .message
            .contains("cannot tell the node's Kubernetes version"));
        assert!(choose(Some("2.1"), Some("--k8s-version"))
            .unwrap_err()
            .message
            .contains("cannot read Kubernetes version \"2.1\" (from --k8s-version)"));
        assert_eq!(minor("2.1"), None);
    }

    #[test]
    fn shipped_lists_exactly_the_embedded_benchmarks() {
        let shipped: Vec<String> = data().shipped.into_keys().collect();
        let mut embedded = Benchmark::embedded_names();
        embedded.sort();
        assert_eq!(
            shipped, embedded,
            "benchmarks/versions.yaml `shipped` must name every benchmarks/cis-*.yaml and nothing else"
        );
    }

    #[test]
    fn shipped_ranges_are_the_minors_kube_bench_maps_to_each_benchmark() {
        let data = data();
        for (name, range) in &data.shipped {
            let minors: Vec<u32> = data
                .kube_bench
                .iter()
                .filter(|(_, b)| *b == name)
                .map(|(v, _)| minor(v).unwrap())
                .collect();
            let (lo, hi) = (minors.iter().min(), minors.iter().max());
            assert_eq!(
                (lo, hi),
                (Some(&range.min), Some(&range.max)),
                "{name}: shipped range 1.{}-1.{} is not what kube-bench maps to it",
                range.min,
                range.max
            );
        }
    }
}
