//! Choosing a benchmark for a Kubernetes version.

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

/// The benchmark chosen for a version, and a note when it differs from
/// kube-bench's choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The benchmark to run.
    pub benchmark: String,
    /// Why, when it is not what kube-bench would run.
    pub note: Option<String>,
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

/// Pick a benchmark for a Kubernetes version (`None`: unknown version, which
/// gives the newest shipped benchmark).
pub fn choose(version: Option<&str>) -> Choice {
    let data: Versions = serde_saphyr::from_str(VERSIONS).expect("embedded versions.yaml is valid");
    let newest = data
        .shipped
        .iter()
        .max_by_key(|(_, r)| r.max)
        .map(|(n, _)| n.clone())
        .expect("at least one shipped benchmark");
    let Some(version) = version else {
        return Choice {
            note: Some(format!(
                "Kubernetes version unknown; using {newest} (pass --k8s-version to choose)"
            )),
            benchmark: newest,
        };
    };
    let Some(m) = minor(version) else {
        return Choice {
            note: Some(format!(
                "cannot read Kubernetes version {version:?}; using {newest}"
            )),
            benchmark: newest,
        };
    };
    let kb = data.kube_bench.get(&format!("1.{m}"));
    if let Some(kb) = kb.filter(|kb| data.shipped.contains_key(*kb)) {
        return Choice {
            benchmark: kb.clone(),
            note: None,
        };
    }
    let distance = |r: &Range| {
        if m < r.min {
            r.min - m
        } else {
            m.saturating_sub(r.max)
        }
    };
    let (best, _) = data
        .shipped
        .iter()
        .min_by_key(|(_, r)| distance(r))
        .expect("at least one shipped benchmark");
    let why = match kb {
        Some(kb) => {
            format!("kube-bench maps Kubernetes 1.{m} to {kb}, which ringfence does not ship")
        }
        None => format!("kube-bench has no benchmark for Kubernetes 1.{m}"),
    };
    Choice {
        benchmark: best.clone(),
        note: Some(format!(
            "{why}; using the nearest shipped benchmark, {best}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_like_kube_bench_when_the_benchmark_is_shipped() {
        assert_eq!(
            choose(Some("1.17.3")),
            Choice {
                benchmark: "cis-1.6".into(),
                note: None
            }
        );
        assert_eq!(
            choose(Some("v1.28.2")),
            Choice {
                benchmark: "cis-1.10".into(),
                note: None
            }
        );
    }

    #[test]
    fn shipped_lists_exactly_the_embedded_benchmarks() {
        let data: Versions = serde_saphyr::from_str(VERSIONS).unwrap();
        let shipped: Vec<&str> = data.shipped.keys().map(String::as_str).collect();
        let mut embedded = crate::benchmark::Benchmark::embedded_names();
        embedded.sort();
        assert_eq!(
            shipped, embedded,
            "benchmarks/versions.yaml `shipped` must name every benchmarks/cis-*.yaml and nothing else"
        );
    }

    #[test]
    fn shipped_ranges_are_the_minors_kube_bench_maps_to_each_benchmark() {
        let data: Versions = serde_saphyr::from_str(VERSIONS).unwrap();
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

    #[test]
    fn unshipped_choices_fall_back_to_the_nearest_with_a_note() {
        let c = choose(Some("1.22.5"));
        assert_eq!(c.benchmark, "cis-1.6");
        assert!(c.note.unwrap().contains("cis-1.23"));
        assert_eq!(choose(Some("1.26")).benchmark, "cis-1.10");
        assert_eq!(choose(Some("1.34")).benchmark, "cis-1.10");
        assert_eq!(choose(None).benchmark, "cis-1.10");
        assert_eq!(minor("2.1"), None);
    }
}
