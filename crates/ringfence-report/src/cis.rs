//! CIS inputs: node results of `ringfence cis scan --format json`
//! (docs/cis-json.md) and fleet results of `ringfence cis merge --format json`
//! (docs/cis-merge-json.md). The types here are tolerant: they read only the
//! fields the report shows, so results of newer scanners still load.

use ringfence_diag::InputError;
use serde::{Deserialize, Serialize};

/// A waiver as the scanner applied it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Waiver {
    /// Why the failure is accepted.
    #[serde(default)]
    pub reason: String,
    /// Who answers for it.
    #[serde(default)]
    pub owner: String,
    /// Last day it holds.
    #[serde(default)]
    pub expires: String,
    /// Whether it has run out.
    #[serde(default)]
    pub expired: bool,
}

/// A waiver past its expiry date; each one fails the node's run.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ExpiredWaiver {
    /// The check it covered.
    pub id: String,
    /// Who answers for it.
    #[serde(default)]
    pub owner: String,
    /// The last day it held.
    #[serde(default)]
    pub expires: String,
    /// Why the failure was accepted.
    #[serde(default)]
    pub reason: String,
}

/// One check of a node result.
#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    /// Check id.
    pub id: String,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// `pass`, `fail`, `warn`, `info`, `not-assessed`.
    pub status: String,
    /// Whether the profile expects the failure.
    #[serde(default)]
    pub expected: Option<bool>,
    /// The profile expects a failure but the check passes: the profile
    /// entry is stale.
    #[serde(default)]
    pub fixed: Option<bool>,
    /// Waiver, if any.
    #[serde(default)]
    pub waiver: Option<Waiver>,
    /// What was observed.
    #[serde(default)]
    pub actual: Option<String>,
    /// What the check wants.
    #[serde(default)]
    pub expected_value: Option<String>,
    /// What to do.
    #[serde(default)]
    pub remediation: Option<String>,
}

impl Check {
    /// Covered by the profile or by an unexpired waiver.
    pub fn covered(&self) -> bool {
        self.expected.unwrap_or(false) || self.waiver.as_ref().is_some_and(|w| !w.expired)
    }
}

/// The node of a node result.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeInfo {
    /// Host name.
    pub name: String,
    /// Roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Kubernetes version.
    #[serde(default)]
    pub kubernetes_version: Option<String>,
}

/// A node result of `ringfence cis scan --format json`.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeResult {
    /// Benchmark name.
    pub benchmark: String,
    /// Profile name.
    #[serde(default)]
    pub profile: Option<String>,
    /// The node.
    pub node: NodeInfo,
    /// Results.
    pub checks: Vec<Check>,
    /// Waivers past their expiry date.
    #[serde(default)]
    pub expired_waivers: Option<Vec<ExpiredWaiver>>,
}

/// Per-class counts of a fleet node or check.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Counts {
    /// Passed.
    #[serde(default)]
    pub pass: usize,
    /// Failed as expected.
    #[serde(default)]
    pub expected_fail: usize,
    /// Failed unexpectedly.
    #[serde(default)]
    pub unexpected_fail: usize,
    /// Warnings.
    #[serde(default)]
    pub warn: usize,
    /// Informational.
    #[serde(default)]
    pub info: usize,
    /// Not assessed: the evidence was absent or unreadable.
    #[serde(default)]
    pub not_assessed: usize,
    /// Passing checks the profile still lists as expected failures (also
    /// counted in `pass`).
    #[serde(default)]
    pub fixed: usize,
}

/// An id and title.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct IdTitle {
    /// Check id.
    pub id: String,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
}

/// A node of a fleet result.
#[derive(Debug, Clone, Deserialize)]
pub struct FleetNode {
    /// Node name.
    pub name: String,
    /// Roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Kubernetes version.
    #[serde(default)]
    pub kubernetes_version: Option<String>,
    /// Profile.
    #[serde(default)]
    pub profile: Option<String>,
    /// Counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Unexpected failures.
    #[serde(default)]
    pub unexpected: Option<Vec<IdTitle>>,
    /// Waivers past their expiry date.
    #[serde(default)]
    pub expired_waivers: Option<Vec<ExpiredWaiver>>,
}

/// A check of a fleet result.
#[derive(Debug, Clone, Deserialize)]
pub struct FleetCheck {
    /// Check id.
    pub id: String,
    /// Title.
    #[serde(default)]
    pub title: Option<String>,
    /// Counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Nodes failing unexpectedly.
    #[serde(default)]
    pub unexpected_nodes: Option<Vec<String>>,
}

/// A fleet result of `ringfence cis merge --format json` (`ringfence.cis.fleet/v1`).
#[derive(Debug, Clone, Deserialize)]
pub struct FleetResult {
    /// Schema string.
    pub schema: String,
    /// Benchmark.
    #[serde(default)]
    pub benchmark: Option<String>,
    /// Profiles.
    #[serde(default)]
    pub profiles: Option<Vec<String>>,
    /// Checks.
    #[serde(default)]
    pub checks: Option<Vec<FleetCheck>>,
    /// Nodes.
    #[serde(default)]
    pub nodes: Option<Vec<FleetNode>>,
}

/// One CIS input file.
#[derive(Debug, Clone)]
pub enum CisDoc {
    /// One node's scan.
    Node(NodeResult),
    /// A merged fleet.
    Fleet(FleetResult),
}

/// A CIS input with the file it came from.
#[derive(Debug, Clone)]
pub struct CisInput {
    /// The file, as given.
    pub file: String,
    /// Its content.
    pub doc: CisDoc,
}

/// Parse a CIS result file: a node result or a fleet result (told apart by
/// the fleet's `schema` field).
pub fn parse_cis(text: &str, file: &str) -> Result<CisInput, InputError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ringfence_diag::json_error(file, &e)
            .with_help("pass the output of `ringfence cis scan --format json` or `ringfence cis merge --format json`")
    })?;
    let Some(obj) = value.as_object() else {
        return Err(InputError::at_pointer(
            file,
            "",
            "expected a JSON object (a CIS node or fleet result)",
        )
        .with_help("pass one result per file"));
    };
    let fleet = obj
        .get("schema")
        .and_then(|s| s.as_str())
        .is_some_and(|s| s.starts_with("ringfence.cis.fleet/"));
    let bad = |e: serde_json::Error, what: &str| {
        InputError::at(file, e.line() as u64, e.column() as u64, format!("not a CIS {what} result: {e}"))
            .with_help(if what == "fleet" {
                "see docs/cis-merge-json.md for the fields the report reads"
            } else {
                "see docs/report.md: the report reads benchmark, profile, node.name and checks[].id/status/expected/remediation"
            })
    };
    let doc = if fleet {
        CisDoc::Fleet(serde_json::from_str(text).map_err(|e| bad(e, "fleet"))?)
    } else {
        CisDoc::Node(serde_json::from_str(text).map_err(|e| bad(e, "node"))?)
    };
    Ok(CisInput {
        file: file.to_string(),
        doc,
    })
}
