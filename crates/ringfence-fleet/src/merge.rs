//! Merge node results of `ringfence cis scan --format json` into a fleet view.
//!
//! Reading is tolerant of what it does not use (unknown fields are ignored,
//! optional fields may be missing) and strict about what it does: each file
//! needs `benchmark`, `node.name` and `checks[].id`/`status`. A file that is
//! not valid JSON, lacks those, repeats a check, repeats a node already merged
//! or was scanned against a different benchmark than the rest of the fleet is
//! left out and reported as a [`Problem`]; every other file is still merged.

use crate::natural::natural_cmp;
use ringfence_diag::{InputError, Locus};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Identifies the JSON layout of [`FleetReport`] (docs/cis-merge-json.md).
pub const FLEET_SCHEMA: &str = "ringfence.cis.fleet/v1";

/// The status of one check on one node, as the scanner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The node meets the recommendation.
    Pass,
    /// The node does not meet it (expected or not, see `expected`).
    Fail,
    /// A manual or unscored check that did not pass.
    Warn,
    /// Informational.
    Info,
    /// What the check needs could not be observed (evidence absent or
    /// unreadable): neither passed nor failed.
    #[serde(rename = "not-assessed")]
    NotAssessed,
}

/// The parts of a node result the merge uses; everything else is ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeResult {
    /// Benchmark the node was scanned against (`cis-1.6`, ...).
    pub benchmark: String,
    /// Profile of expected failures (`tkg-1.5`), if one was used.
    #[serde(default)]
    pub profile: Option<String>,
    /// The scanned node.
    pub node: NodeInfo,
    /// One entry per check.
    pub checks: Vec<CheckResult>,
    /// Waivers past their expiry date; each one fails the node's run.
    #[serde(default, deserialize_with = "null_as_default")]
    pub expired_waivers: Vec<ExpiredWaiver>,
}

/// A waiver past its expiry date, as the scanner lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ExpiredWaiver {
    /// The check it covered.
    pub id: String,
    /// Who answers for it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub owner: String,
    /// The last day it held (`YYYY-MM-DD`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub expires: String,
    /// Why the failure was accepted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub reason: String,
}

/// The part of a check's waiver the merge uses.
#[derive(Debug, Clone, Deserialize)]
pub struct WaiverState {
    /// Whether the waiver has run out (then it no longer covers a failure).
    #[serde(default, deserialize_with = "null_as_default")]
    pub expired: bool,
}

/// The node a result describes.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Roles found on the node (`master`, `etcd`, `node`, ...).
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<String>,
    /// Kubernetes version detected on the node.
    #[serde(default)]
    pub kubernetes_version: Option<String>,
}

/// One check's outcome on a node.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckResult {
    /// Benchmark check ID (`1.2.16`).
    pub id: String,
    /// Recommendation title.
    #[serde(default, deserialize_with = "null_as_default")]
    pub title: String,
    /// Target (`master`, `node`, `etcd`, `controlplane`, `policies`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub target: String,
    /// Outcome.
    pub status: Status,
    /// True when the profile expects this failure.
    #[serde(default, deserialize_with = "null_as_default")]
    pub expected: bool,
    /// True when the profile expects a failure but the check passes: the
    /// profile entry is stale.
    #[serde(default, deserialize_with = "null_as_default")]
    pub fixed: bool,
    /// The waiver covering this check, if any; an unexpired one makes a
    /// failure expected.
    #[serde(default)]
    pub waiver: Option<WaiverState>,
}

impl CheckResult {
    /// Covered by the profile or by an unexpired waiver.
    pub fn covered(&self) -> bool {
        self.expected || self.waiver.as_ref().is_some_and(|w| !w.expired)
    }
}

/// Optional fields may be missing or `null`; both mean the default.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// How one check fared across the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRow {
    /// Check ID.
    pub id: String,
    /// Title (from the first node result, in input order, that reports it).
    pub title: String,
    /// Target.
    pub target: String,
    /// Nodes whose result includes this check.
    pub nodes: usize,
    /// Nodes that pass.
    pub pass: usize,
    /// Nodes that fail where the profile or a waiver expects it.
    pub expected_fail: usize,
    /// Nodes that fail unexpectedly.
    pub unexpected_fail: usize,
    /// Nodes with a warning.
    pub warn: usize,
    /// Nodes with an informational result.
    pub info: usize,
    /// Nodes where the check could not be assessed.
    pub not_assessed: usize,
    /// Nodes that pass a check the profile still lists as an expected
    /// failure (counted in `pass` too).
    pub fixed: usize,
    /// The nodes that fail unexpectedly, naturally sorted.
    pub unexpected_nodes: Vec<String>,
}

/// A check a node fails unexpectedly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Check ID.
    pub id: String,
    /// Title.
    pub title: String,
}

/// How one node fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRow {
    /// Node name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Kubernetes version, if the scanner found it.
    pub kubernetes_version: Option<String>,
    /// Profile used for this node's scan.
    pub profile: Option<String>,
    /// The file the result came from, as given.
    pub file: String,
    /// Checks passed.
    pub pass: usize,
    /// Expected failures.
    pub expected_fail: usize,
    /// Unexpected failures.
    pub unexpected_fail: usize,
    /// Warnings.
    pub warn: usize,
    /// Informational results.
    pub info: usize,
    /// Checks that could not be assessed.
    pub not_assessed: usize,
    /// Passing checks the profile still lists as expected failures.
    pub fixed: usize,
    /// The unexpected failures, in natural check order.
    pub unexpected: Vec<Finding>,
    /// Waivers past their expiry date, in natural check order; each one
    /// fails the node.
    pub expired_waivers: Vec<ExpiredWaiver>,
}

impl NodeRow {
    /// The node fails: a check fails unexpectedly or a waiver has expired.
    pub fn failing(&self) -> bool {
        self.unexpected_fail > 0 || !self.expired_waivers.is_empty()
    }
}

/// A file that was left out of the merge, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file as given.
    pub file: String,
    /// `file:line:column`, `file#/json/pointer` or `file`.
    pub position: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub help: Option<String>,
    /// Where in the file (also rendered into `position`).
    #[serde(skip)]
    pub locus: Locus,
}

impl From<&InputError> for Problem {
    fn from(e: &InputError) -> Self {
        Problem {
            file: e.file.clone(),
            position: e.position(),
            message: e.message.clone(),
            help: e.help.clone(),
            locus: e.locus.clone(),
        }
    }
}

impl Problem {
    /// The problem as an input error (for exit code 2 when nothing merged).
    pub fn to_input_error(&self) -> InputError {
        InputError {
            file: self.file.clone(),
            locus: self.locus.clone(),
            message: self.message.clone(),
            help: self.help.clone(),
        }
    }
}

/// Totals over the whole fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetSummary {
    /// Input files read.
    pub files: usize,
    /// Files left out (see `problems`).
    pub files_rejected: usize,
    /// Nodes merged.
    pub nodes: usize,
    /// Distinct checks seen.
    pub checks: usize,
    /// Nodes with at least one unexpected failure.
    pub nodes_with_unexpected_fail: usize,
    /// Nodes with at least one expired waiver.
    pub nodes_with_expired_waivers: usize,
    /// Nodes that fail: an unexpected failure or an expired waiver.
    pub nodes_failing: usize,
    /// Check results that pass, over all nodes.
    pub pass: usize,
    /// Expected failures, over all nodes.
    pub expected_fail: usize,
    /// Unexpected failures, over all nodes.
    pub unexpected_fail: usize,
    /// Warnings, over all nodes.
    pub warn: usize,
    /// Informational results, over all nodes.
    pub info: usize,
    /// Checks that could not be assessed, over all nodes.
    pub not_assessed: usize,
    /// Passing checks the profile still lists as expected failures, over
    /// all nodes.
    pub fixed: usize,
    /// Expired waivers, over all nodes.
    pub expired_waivers: usize,
}

/// The fleet view: per check, per node, and the files left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetReport {
    /// Always [`FLEET_SCHEMA`].
    pub schema: String,
    /// The benchmark of the merged results (`None` if nothing merged).
    pub benchmark: Option<String>,
    /// Distinct profiles used by the merged nodes, sorted.
    pub profiles: Vec<String>,
    /// Totals.
    pub summary: FleetSummary,
    /// Every check, in natural ID order.
    pub checks: Vec<CheckRow>,
    /// Every node, in natural name order.
    pub nodes: Vec<NodeRow>,
    /// Files left out, in input order.
    pub problems: Vec<Problem>,
}

impl FleetReport {
    /// The exit code the CLI uses: 1 when a node fails a check unexpectedly,
    /// a node has an expired waiver or a file was left out, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(
            self.summary.unexpected_fail > 0
                || self.summary.expired_waivers > 0
                || !self.problems.is_empty(),
        )
    }
}

/// Turn a serde_path_to_error path into an RFC 6901 JSON pointer.
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut p = String::new();
    for seg in path.iter() {
        p.push('/');
        match seg {
            Segment::Seq { index } => p.push_str(&index.to_string()),
            Segment::Map { key } => p.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => p.push_str(variant),
            Segment::Unknown => p.push('?'),
        }
    }
    p
}

/// Parse one node result. Syntax errors are located by line and column, shape
/// errors by JSON pointer (with the line and column in the message).
pub fn parse_node_result(file: &str, bytes: &[u8]) -> Result<NodeResult, InputError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(InputError::whole(
            file,
            "the file is empty; expected a node result of `ringfence cis scan --format json`",
        )
        .with_help("re-collect the pod log; an empty log usually means the scan pod never ran"));
    }
    // serde would accept a struct written as an array; a node result is
    // always an object, so say so plainly instead.
    if let Some(pos) = bytes.iter().position(|b| !b.is_ascii_whitespace()) {
        if bytes[pos] != b'{' {
            let line = 1 + bytes[..pos].iter().filter(|&&b| b == b'\n').count() as u64;
            let col = 1 + bytes[..pos]
                .iter()
                .rev()
                .take_while(|&&b| b != b'\n')
                .count() as u64;
            return Err(InputError::at(
                file,
                line,
                col,
                "expected a JSON object (a node result of `ringfence cis scan --format json`)",
            )
            .with_help("pass one node's result per file, not an array or other output"));
        }
    }
    match serde_json::from_slice::<NodeResult>(bytes) {
        Ok(r) => Ok(r),
        Err(first) => {
            use serde_json::error::Category;
            match first.classify() {
                Category::Syntax | Category::Eof | Category::Io => Err(ringfence_diag::json_error(
                    file, &first,
                )
                .with_help(
                    "pass the pod's log of `ringfence cis scan --format json` unchanged (no `kubectl logs --prefix`, no other output mixed in)",
                )),
                Category::Data => {
                    let mut de = serde_json::Deserializer::from_slice(bytes);
                    let err = match serde_path_to_error::deserialize::<_, NodeResult>(&mut de) {
                        Ok(_) => first,
                        Err(e) => {
                            let ptr = pointer_of(e.path());
                            let inner = e.into_inner();
                            return Err(InputError::at_pointer(
                                file,
                                if ptr.is_empty() { "/".to_string() } else { ptr },
                                format!(
                                    "{} (line {}, column {}); expected a node result of `ringfence cis scan --format json`",
                                    strip_position(&inner.to_string()),
                                    inner.line(),
                                    inner.column()
                                ),
                            ));
                        }
                    };
                    Err(ringfence_diag::json_error(file, &err))
                }
            }
        }
    }
}

/// serde_json appends " at line L column C"; we report the position ourselves.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Expand the inputs: files as given, directories to their `*.json` files
/// (not recursive); only a directory that cannot be listed is an error. The
/// result is naturally sorted and free of duplicates, so
/// the merge does not depend on argument or directory order.
pub fn collect_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, InputError> {
    let mut out = Vec::new();
    for p in inputs {
        // A path that cannot be inspected is kept: reading it fails and the
        // merge reports it at the end with the other bad files.
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| {
                InputError::whole(
                    p.display().to_string(),
                    format!("cannot list directory: {e}"),
                )
            })?;
            for entry in rd {
                let entry = entry.map_err(|e| {
                    InputError::whole(
                        p.display().to_string(),
                        format!("cannot list directory: {e}"),
                    )
                })?;
                let path = entry.path();
                if path.extension().is_some_and(|x| x == "json") && path.is_file() {
                    out.push(path);
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    out.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    out.dedup();
    Ok(out)
}

/// Read and parse files on up to `threads` threads (1: on this thread), then
/// merge. Unreadable files become problems like unparsable ones.
pub fn merge_files(paths: &[PathBuf], threads: usize) -> FleetReport {
    let parse = |p: &Path| {
        let name = p.display().to_string();
        // The same size limit and UTF-8 check as every other input file: a
        // fleet directory may hold a stray core dump or a huge log.
        let parsed = match ringfence_diag::read_input(p, &name, "scan result") {
            Ok(text) => parse_node_result(&name, text.as_bytes()),
            Err(e) => Err(e),
        };
        (name, parsed)
    };
    let threads = threads.clamp(1, paths.len().max(1));
    let parsed: Vec<(String, Result<NodeResult, InputError>)> = if threads == 1 {
        paths.iter().map(|p| parse(p)).collect()
    } else {
        let chunk = paths.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = paths
                .chunks(chunk)
                .map(|c| s.spawn(move || c.iter().map(|p| parse(p)).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a parser thread panicked"))
                .collect()
        })
    };
    merge_parsed(parsed)
}

/// Merge in-memory sources, each `(file name, bytes)`, in the given order.
pub fn merge_sources(sources: &[(String, Vec<u8>)]) -> FleetReport {
    merge_parsed(
        sources
            .iter()
            .map(|(name, bytes)| (name.clone(), parse_node_result(name, bytes)))
            .collect(),
    )
}

#[derive(Default)]
struct CheckAgg {
    title: String,
    target: String,
    nodes: usize,
    pass: usize,
    expected_fail: usize,
    unexpected_fail: usize,
    warn: usize,
    info: usize,
    not_assessed: usize,
    fixed: usize,
    unexpected_nodes: Vec<String>,
}

/// Merge parsed results (in input order; the first file wins on conflicts).
pub fn merge_parsed(parsed: Vec<(String, Result<NodeResult, InputError>)>) -> FleetReport {
    let files = parsed.len();
    let mut problems: Vec<InputError> = Vec::new();

    // The fleet's benchmark is the one most files were scanned against (ties:
    // the naturally smaller name), so one stray file cannot reject the rest.
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, r) in &parsed {
        if let Ok(r) = r {
            *votes.entry(r.benchmark.as_str()).or_default() += 1;
        }
    }
    let benchmark: Option<String> = votes
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| natural_cmp(b.0, a.0)))
        .map(|(b, _)| (*b).to_string());
    let majority = benchmark.as_deref().map(|b| votes[b]).unwrap_or_default();
    let accepted_total: usize = votes.values().sum();

    let mut checks: HashMap<String, CheckAgg> = HashMap::new();
    let mut nodes: Vec<NodeRow> = Vec::new();
    let mut seen_nodes: HashMap<String, String> = HashMap::new();
    let mut profiles: BTreeSet<String> = BTreeSet::new();

    for (file, result) in parsed {
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if Some(&r.benchmark) != benchmark.as_ref() {
            let fleet = benchmark.as_deref().unwrap_or_default();
            problems.push(
                InputError::at_pointer(
                    &file,
                    "/benchmark",
                    format!(
                        "benchmark {:?} differs from {fleet:?}, which {majority} of {accepted_total} results use; a check ID means different things in different benchmarks, so this node is not merged",
                        r.benchmark
                    ),
                )
                .with_help(format!(
                    "rescan the node with `--benchmark {fleet}`, or merge the {} results on their own",
                    r.benchmark
                )),
            );
            continue;
        }
        if r.node.name.is_empty() {
            problems.push(
                InputError::at_pointer(&file, "/node/name", "the node name is empty")
                    .with_help("scan with the node's name set (the Job sets it from the node)"),
            );
            continue;
        }
        if let Some(first) = seen_nodes.get(&r.node.name) {
            problems.push(
                InputError::at_pointer(
                    &file,
                    "/node/name",
                    format!(
                        "node {:?} is already merged from {first}; this result is left out",
                        r.node.name
                    ),
                )
                .with_help("pass one result per node (the newest), or remove the duplicate file"),
            );
            continue;
        }
        let mut ids: HashSet<&str> = HashSet::with_capacity(r.checks.len());
        if let Some((i, c)) = r
            .checks
            .iter()
            .enumerate()
            .find(|(_, c)| !ids.insert(c.id.as_str()))
        {
            problems.push(InputError::at_pointer(
                &file,
                format!("/checks/{i}/id"),
                format!(
                    "check {:?} appears twice in this node result; the node is not merged",
                    c.id
                ),
            ));
            continue;
        }

        seen_nodes.insert(r.node.name.clone(), file.clone());
        if let Some(p) = &r.profile {
            profiles.insert(p.clone());
        }
        let mut row = NodeRow {
            name: r.node.name.clone(),
            roles: r.node.roles.clone(),
            kubernetes_version: r.node.kubernetes_version.clone(),
            profile: r.profile.clone(),
            file: file.clone(),
            pass: 0,
            expected_fail: 0,
            unexpected_fail: 0,
            warn: 0,
            info: 0,
            not_assessed: 0,
            fixed: 0,
            unexpected: Vec::new(),
            expired_waivers: r.expired_waivers.clone(),
        };
        row.expired_waivers
            .sort_by(|a, b| natural_cmp(&a.id, &b.id));
        for c in r.checks {
            let agg = checks.entry(c.id.clone()).or_insert_with(|| CheckAgg {
                title: c.title.clone(),
                target: c.target.clone(),
                ..Default::default()
            });
            agg.nodes += 1;
            let covered = c.covered();
            match (c.status, covered) {
                (Status::Pass, _) => {
                    agg.pass += 1;
                    row.pass += 1;
                    if c.fixed {
                        agg.fixed += 1;
                        row.fixed += 1;
                    }
                }
                (Status::Fail, true) => {
                    agg.expected_fail += 1;
                    row.expected_fail += 1;
                }
                (Status::Fail, false) => {
                    agg.unexpected_fail += 1;
                    agg.unexpected_nodes.push(row.name.clone());
                    row.unexpected_fail += 1;
                    row.unexpected.push(Finding {
                        id: c.id,
                        title: c.title,
                    });
                }
                (Status::Warn, _) => {
                    agg.warn += 1;
                    row.warn += 1;
                }
                (Status::Info, _) => {
                    agg.info += 1;
                    row.info += 1;
                }
                (Status::NotAssessed, _) => {
                    agg.not_assessed += 1;
                    row.not_assessed += 1;
                }
            }
        }
        row.unexpected.sort_by(|a, b| natural_cmp(&a.id, &b.id));
        nodes.push(row);
    }

    nodes.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    let mut check_rows: Vec<CheckRow> = checks
        .into_iter()
        .map(|(id, mut a)| {
            a.unexpected_nodes.sort_by(|x, y| natural_cmp(x, y));
            CheckRow {
                id,
                title: a.title,
                target: a.target,
                nodes: a.nodes,
                pass: a.pass,
                expected_fail: a.expected_fail,
                unexpected_fail: a.unexpected_fail,
                warn: a.warn,
                info: a.info,
                not_assessed: a.not_assessed,
                fixed: a.fixed,
                unexpected_nodes: a.unexpected_nodes,
            }
        })
        .collect();
    check_rows.sort_by(|a, b| natural_cmp(&a.id, &b.id));

    let mut summary = FleetSummary {
        files,
        files_rejected: problems.len(),
        nodes: nodes.len(),
        checks: check_rows.len(),
        nodes_with_unexpected_fail: nodes.iter().filter(|n| n.unexpected_fail > 0).count(),
        nodes_with_expired_waivers: nodes
            .iter()
            .filter(|n| !n.expired_waivers.is_empty())
            .count(),
        nodes_failing: nodes.iter().filter(|n| n.failing()).count(),
        ..Default::default()
    };
    for n in &nodes {
        summary.pass += n.pass;
        summary.expected_fail += n.expected_fail;
        summary.unexpected_fail += n.unexpected_fail;
        summary.warn += n.warn;
        summary.info += n.info;
        summary.not_assessed += n.not_assessed;
        summary.fixed += n.fixed;
        summary.expired_waivers += n.expired_waivers.len();
    }
    FleetReport {
        schema: FLEET_SCHEMA.to_string(),
        benchmark: if nodes.is_empty() { None } else { benchmark },
        profiles: profiles.into_iter().collect(),
        summary,
        checks: check_rows,
        nodes,
        problems: problems.iter().map(Problem::from).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, bench: &str, checks: &[(&str, &str, bool)]) -> Vec<u8> {
        let checks: Vec<serde_json::Value> = checks
            .iter()
            .map(|(id, st, exp)| {
                serde_json::json!({"id": id, "title": format!("t{id}"), "target": "master",
                    "status": st, "expected": exp, "waiver": null, "future_field": [1, 2]})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "benchmark": bench, "profile": "tkg-1.5",
            "node": {"name": name, "roles": ["master"], "kubernetes_version": "1.22.9", "root": "/host"},
            "checks": checks,
            "summary": {}
        }))
        .unwrap()
    }

    #[test]
    fn counts_each_status_and_lists_unexpected_failures_per_node() {
        let r = merge_sources(&[
            (
                "a.json".into(),
                node(
                    "n2",
                    "cis-1.6",
                    &[("1.2.10", "fail", false), ("1.2.9", "pass", false)],
                ),
            ),
            (
                "b.json".into(),
                node(
                    "n10",
                    "cis-1.6",
                    &[
                        ("1.2.10", "fail", true),
                        ("1.2.9", "warn", false),
                        ("4.1.1", "info", false),
                    ],
                ),
            ),
        ]);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let ids: Vec<&str> = r.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["1.2.9", "1.2.10", "4.1.1"]);
        let c = &r.checks[1];
        assert_eq!((c.nodes, c.unexpected_fail, c.expected_fail), (2, 1, 1));
        assert_eq!(c.unexpected_nodes, ["n2"]);
        let names: Vec<&str> = r.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["n2", "n10"]);
        assert_eq!(r.nodes[0].unexpected[0].id, "1.2.10");
        assert_eq!(r.summary.unexpected_fail, 1);
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn shape_errors_point_into_the_document() {
        let bad = br#"{"benchmark":"cis-1.6","node":{"name":"x"},"checks":[{"id":"1.1.1","status":"pass"},{"id":"1.1.2","status":"maybe"}]}"#;
        let e = parse_node_result("x.json", bad).unwrap_err();
        assert_eq!(e.position(), "x.json#/checks/1/status", "{e}");
        assert!(e.message.contains("maybe"), "{e}");
    }

    #[test]
    fn a_top_level_array_is_refused_at_its_position() {
        let e = parse_node_result("z.json", b"\n  [1, 2]").unwrap_err();
        assert_eq!(e.position(), "z.json:2:3", "{e}");
        assert!(e.message.contains("expected a JSON object"), "{e}");
    }

    #[test]
    fn optional_fields_may_be_null_or_missing() {
        let doc = br#"{"benchmark":"cis-1.6","profile":null,"node":{"name":"n","roles":null},
            "checks":[{"id":"1.1.1","status":"fail","title":null,"expected":null},{"id":"1.1.2","status":"pass"}]}"#;
        let r = parse_node_result("n.json", doc).unwrap();
        assert!(r.node.roles.is_empty() && r.checks[0].title.is_empty() && !r.checks[0].expected);
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let e = parse_node_result("y.json", b"{\n  \"benchmark\": \"cis-1.6\",\n  oops\n}")
            .unwrap_err();
        assert_eq!(e.position(), "y.json:3:3", "{e}");
        assert!(!e.message.contains(" at line "), "{e}");
    }

    #[test]
    fn duplicate_nodes_and_checks_are_left_out_and_reported() {
        let r = merge_sources(&[
            (
                "a.json".into(),
                node("n1", "cis-1.6", &[("1.1.1", "pass", false)]),
            ),
            (
                "b.json".into(),
                node("n1", "cis-1.6", &[("1.1.1", "fail", false)]),
            ),
            (
                "c.json".into(),
                node(
                    "n3",
                    "cis-1.6",
                    &[("1.1.1", "pass", false), ("1.1.1", "pass", false)],
                ),
            ),
        ]);
        assert_eq!(r.summary.nodes, 1);
        assert_eq!(r.problems.len(), 2);
        assert_eq!(r.problems[0].position, "b.json#/node/name");
        assert!(r.problems[0].message.contains("already merged from a.json"));
        assert_eq!(r.problems[1].position, "c.json#/checks/1/id");
    }

    #[test]
    fn the_majority_benchmark_wins_and_the_odd_file_is_reported() {
        let r = merge_sources(&[
            (
                "odd.json".into(),
                node("n0", "cis-1.10", &[("1.1.1", "pass", false)]),
            ),
            (
                "a.json".into(),
                node("n1", "cis-1.6", &[("1.1.1", "pass", false)]),
            ),
            (
                "b.json".into(),
                node("n2", "cis-1.6", &[("1.1.1", "pass", false)]),
            ),
        ]);
        assert_eq!(r.benchmark.as_deref(), Some("cis-1.6"));
        assert_eq!(r.summary.nodes, 2);
        assert_eq!(r.problems[0].position, "odd.json#/benchmark");
        assert!(
            r.problems[0].message.contains("2 of 3"),
            "{}",
            r.problems[0].message
        );
    }
}
