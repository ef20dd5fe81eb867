//! Running a benchmark on a node and the report it produces.
//!
//! The report's JSON form is stable and documented in `docs/cis-json.md`.

use crate::benchmark::{Benchmark, Check, Target};
use crate::eval::{describe, evaluate, Evidence, Verdict};
use crate::node::Node;
use crate::profile::{Date, ExpectedFailure, Profile, Waiver};
use serde::Serialize;

/// A check's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The node meets the recommendation.
    Pass,
    /// A scored, automated check failed.
    Fail,
    /// A manual or unscored check did not pass, or it needs a person.
    Warn,
    /// Not applicable here (an optional component is absent).
    Info,
    /// What the check needs could not be observed (the component is not on
    /// the node, a file it reads is missing or unreadable): neither passed
    /// nor failed.
    #[serde(rename = "not-assessed")]
    NotAssessed,
}

impl Status {
    /// The status name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Warn => "warn",
            Status::Info => "info",
            Status::NotAssessed => "not-assessed",
        }
    }
}

/// A waiver as applied to a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedWaiver {
    /// Why the failure is accepted.
    pub reason: String,
    /// Who answers for it.
    pub owner: String,
    /// Last day it holds (`YYYY-MM-DD`).
    pub expires: String,
    /// Whether it has run out (then it no longer covers the failure).
    pub expired: bool,
}

/// The node as the report describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// Host name.
    pub name: String,
    /// `control-plane`, `etcd`, `node`.
    pub roles: Vec<String>,
    /// Kubernetes version, when known.
    pub kubernetes_version: Option<String>,
    /// The scanned root directory; `null` for a live scan.
    pub root: Option<String>,
}

impl NodeInfo {
    /// How the report describes a discovered node.
    pub fn of(node: &Node) -> Self {
        NodeInfo {
            name: node.name.clone(),
            roles: node.roles().into_iter().map(String::from).collect(),
            kubernetes_version: node.kubernetes_version.clone(),
            root: node.root.as_ref().map(|r| r.display().to_string()),
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Check id.
    pub id: String,
    /// Recommendation title.
    pub title: String,
    /// Target (`master`, `etcd`, `controlplane`, `node`, `policies`).
    pub target: Target,
    /// Outcome.
    pub status: Status,
    /// The profile lists this check as an expected failure and it did not
    /// pass.
    pub expected: bool,
    /// The profile lists this check as an expected failure, but it passes:
    /// the profile entry is stale.
    pub fixed: bool,
    /// The waiver covering this check, if any.
    pub waiver: Option<AppliedWaiver>,
    /// What was observed.
    pub actual: Option<String>,
    /// What the check wants.
    pub expected_value: Option<String>,
    /// Where the observation came from.
    pub evidence: Option<Evidence>,
    /// What to do (the profile's remediation for expected failures).
    pub remediation: String,
    /// Why the check did not pass, beyond differing values (not in JSON).
    #[serde(skip)]
    pub reason: Option<String>,
    /// The profile's explanation for an expected failure (not in JSON).
    #[serde(skip)]
    pub explanation: Option<String>,
}

impl CheckResult {
    /// A failure that neither the profile nor a live waiver covers.
    pub fn unexpected_failure(&self) -> bool {
        self.status == Status::Fail && !self.covered()
    }

    /// Covered by the profile or by an unexpired waiver.
    pub fn covered(&self) -> bool {
        self.expected || self.waiver.as_ref().is_some_and(|w| !w.expired)
    }
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Passed checks.
    pub pass: usize,
    /// Failed checks (expected or not).
    pub fail: usize,
    /// Warnings.
    pub warn: usize,
    /// Informational results.
    pub info: usize,
    /// Checks whose evidence was absent or unreadable.
    pub not_assessed: usize,
    /// Passing checks the profile still lists as expected failures.
    pub fixed: usize,
    /// Waivers past their expiry date (each fails the run).
    pub expired_waivers: usize,
    /// Failures the profile or a live waiver covers.
    pub expected_fail: usize,
    /// Failures nothing covers: these make the exit code 1.
    pub unexpected_fail: usize,
}

/// A scan's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Benchmark name.
    pub benchmark: String,
    /// Why `--benchmark auto` chose it (the node's Kubernetes version, where
    /// it was read, and kube-bench's mapping); absent when the benchmark was
    /// named or pinned by a profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benchmark_reason: Option<String>,
    /// Profile name, if one was applied.
    pub profile: Option<String>,
    /// The node.
    pub node: NodeInfo,
    /// Results in benchmark order.
    pub checks: Vec<CheckResult>,
    /// Every waiver past its expiry date, whether or not its check ran or
    /// failed: each one fails the run until its owner renews or removes it.
    pub expired_waivers: Vec<ExpiredWaiver>,
    /// Counts.
    pub summary: Summary,
}

/// A waiver past its expiry date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiredWaiver {
    /// The check it covered.
    pub id: String,
    /// Who answers for it.
    pub owner: String,
    /// The last day it held (`YYYY-MM-DD`).
    pub expires: String,
    /// Why the failure was accepted.
    pub reason: String,
}

impl ExpiredWaiver {
    /// One line for people, naming the owner.
    pub fn describe(&self) -> String {
        format!(
            "the waiver for {} expired on {}; its owner {} must renew or remove it ({})",
            self.id, self.expires, self.owner, self.reason
        )
    }
}

/// The waivers of `waivers` that have expired on `today`.
pub fn expired_waivers(waivers: &[Waiver], today: Date) -> Vec<ExpiredWaiver> {
    waivers
        .iter()
        .filter(|w| w.expired(today))
        .map(|w| ExpiredWaiver {
            id: w.id.clone(),
            owner: w.owner.clone(),
            expires: w.expires.to_string(),
            reason: w.reason.clone(),
        })
        .collect()
}

/// How a profile sees a check's status: `(expected, fixed)` and, when
/// listed, its entry.
pub fn profile_marks<'p>(
    profile: Option<&'p Profile>,
    id: &str,
    status: Status,
) -> (bool, bool, Option<&'p ExpectedFailure>) {
    let entry = profile.and_then(|p| p.expected(id));
    let listed = entry.is_some();
    (
        listed && status != Status::Pass,
        listed && status == Status::Pass,
        entry,
    )
}

impl Report {
    /// Whether the run fails: an unexpected failure or an expired waiver.
    pub fn failed(&self) -> bool {
        self.summary.unexpected_fail > 0 || !self.expired_waivers.is_empty()
    }
}

/// What to scan and how to judge it.
#[derive(Debug, Clone)]
pub struct ScanOptions<'a> {
    /// Targets to run; `None` derives them from the node's roles.
    pub targets: Option<Vec<Target>>,
    /// Only these check ids (or group/section ids).
    pub checks: Option<Vec<String>>,
    /// Expected failures.
    pub profile: Option<&'a Profile>,
    /// Accepted failures.
    pub waivers: &'a [Waiver],
    /// The date waivers are judged against.
    pub today: Date,
}

/// The targets a node's roles call for.
pub fn targets_for(node: &Node) -> Vec<Target> {
    let roles = node.roles();
    let mut t = Vec::new();
    if roles.contains(&"control-plane") {
        t.extend([Target::Master, Target::Controlplane, Target::Policies]);
    }
    if roles.contains(&"etcd") {
        t.push(Target::Etcd);
    }
    if roles.contains(&"node") {
        t.push(Target::Node);
    }
    t.sort();
    t
}

fn selected(check: &Check, ids: &[String]) -> bool {
    ids.iter()
        .any(|id| check.id == *id || check.id.starts_with(&format!("{id}.")))
}

/// Run a benchmark on a node.
pub fn scan(bench: &Benchmark, node: &Node, opts: &ScanOptions<'_>) -> Report {
    let targets = opts.targets.clone().unwrap_or_else(|| targets_for(node));
    let mut checks = Vec::new();
    for check in bench.checks() {
        if !targets.contains(&check.target) {
            continue;
        }
        if let Some(ids) = &opts.checks {
            if !selected(check, ids) {
                continue;
            }
        }
        checks.push(run_check(bench, node, check, opts));
    }
    let expired = expired_waivers(opts.waivers, opts.today);
    let mut summary = summarize(&checks);
    summary.expired_waivers = expired.len();
    Report {
        benchmark: bench.name.clone(),
        benchmark_reason: None,
        profile: opts.profile.map(|p| p.name.clone()),
        node: NodeInfo::of(node),
        checks,
        expired_waivers: expired,
        summary,
    }
}

/// Count results by status, and failures by whether a profile or a live
/// waiver covers them.
pub fn summarize(checks: &[CheckResult]) -> Summary {
    let mut summary = Summary::default();
    for c in checks {
        match c.status {
            Status::Pass => summary.pass += 1,
            Status::Fail => summary.fail += 1,
            Status::Warn => summary.warn += 1,
            Status::Info => summary.info += 1,
            Status::NotAssessed => summary.not_assessed += 1,
        }
        if c.fixed {
            summary.fixed += 1;
        }
        if c.status == Status::Fail {
            if c.covered() {
                summary.expected_fail += 1;
            } else {
                summary.unexpected_fail += 1;
            }
        }
    }
    summary
}

fn run_check(bench: &Benchmark, node: &Node, check: &Check, opts: &ScanOptions<'_>) -> CheckResult {
    let (status, actual, evidence, reason, expected_value) = match &check.test {
        None => {
            let why = if check.needs.as_deref() == Some("cluster-api") {
                "needs the Kubernetes API; a node scan cannot evaluate it"
            } else {
                "manual check: review it by hand"
            };
            (Status::Warn, None, None, Some(why.to_string()), None)
        }
        Some(test) => {
            let out = evaluate(bench, node, check, test);
            let status = match (out.verdict, out.missing) {
                _ if out.not_applicable.is_some() => Status::Info,
                (_, Some(c)) if c.optional() => Status::Info,
                (Verdict::Pass, _) => Status::Pass,
                (Verdict::Unknown, _) => Status::NotAssessed,
                (Verdict::Fail, _) if check.scored => Status::Fail,
                (Verdict::Fail, _) => Status::Warn,
            };
            (
                status,
                out.actual(),
                out.evidence(),
                out.not_applicable.clone().or_else(|| out.reason()),
                Some(describe(bench, test)),
            )
        }
    };
    let (expected, fixed, entry) = profile_marks(opts.profile, &check.id, status);
    let waiver = opts
        .waivers
        .iter()
        .find(|w| w.id == check.id)
        .map(|w| AppliedWaiver {
            reason: w.reason.clone(),
            owner: w.owner.clone(),
            expires: w.expires.to_string(),
            expired: w.expired(opts.today),
        });
    CheckResult {
        id: check.id.clone(),
        title: check.title.clone(),
        target: check.target,
        status,
        expected,
        fixed,
        waiver,
        actual,
        expected_value,
        evidence,
        remediation: entry
            .filter(|_| expected)
            .map(|x| x.remediation.clone())
            .unwrap_or_else(|| check.remediation.clone()),
        reason,
        explanation: entry.map(|x| x.explanation.clone()),
    }
}
