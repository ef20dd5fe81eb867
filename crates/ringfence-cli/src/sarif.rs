//! SARIF 2.1.0 output of `verify` and `diff`, for code-scanning dashboards.
//!
//! Every result carries the finding's stable fingerprint
//! (`ringfence_analysis::fingerprint`) in `partialFingerprints` under
//! [`SCHEME`], so a dashboard matches a finding across runs even when the
//! rule that causes it moved to another line or got another nft handle.
//! `diff` results also carry `baselineState`: a finding only the new
//! ruleset has is `new`, one only the old ruleset had is `absent` (fixed),
//! one both have is `unchanged`.

use ringfence_analysis::diff::DiffReport;
use ringfence_analysis::fingerprint::{
    diff_findings, verify_findings, Finding, FindingKind, SCHEME,
};
use ringfence_analysis::verify::{verify, Status, VerifyReport};
use ringfence_model::{Hook, Ruleset};
use ringfence_site::ResolvedSite;
use serde_sarif::sarif::{
    ArtifactLocation, Location, LogicalLocation, Message, MultiformatMessageString,
    PhysicalLocation, Region, ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif,
    Tool, ToolComponent,
};
use std::collections::{BTreeMap, HashSet};

/// The rules (result kinds) ringfence reports, with a one-line description.
const RULES: &[(&str, &str)] = &[
    (
        "flow-blocked",
        "A required flow's new connections are not accepted.",
    ),
    (
        "flow-partial",
        "Only part of a required flow's new connections are accepted.",
    ),
    (
        "flow-unknown",
        "A rule the model cannot evaluate decides part of a required flow.",
    ),
    (
        "reply-blocked",
        "Replies of a required flow are not accepted.",
    ),
    (
        "reply-partial",
        "Only part of a required flow's replies are accepted.",
    ),
    (
        "reply-unknown",
        "A rule the model cannot evaluate decides part of a flow's replies.",
    ),
    (
        "excess",
        "Traffic accepted beyond the required flows (certainly or possibly).",
    ),
    (
        "shadowed-rule",
        "A rule that never matches: earlier rules cover it.",
    ),
    ("redundant-rule", "A rule whose removal changes nothing."),
    (
        "analysis-note",
        "A construct the model cannot evaluate exactly, or an incomplete analysis.",
    ),
    (
        "newly-allowed",
        "Accepted by the new ruleset, not by the old.",
    ),
    (
        "newly-blocked",
        "Accepted by the old ruleset, not by the new.",
    ),
    (
        "flow-change",
        "A required flow's status differs between the two rulesets.",
    ),
];

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Allowed => "allowed",
        Status::Partial => "partial",
        Status::Blocked => "blocked",
        Status::Unknown => "unknown",
        Status::Redirected => "redirected",
    }
}

/// A rule reference: `file:line` becomes a physical location, anything
/// else (an nft handle, an NSX path, a chain policy) a logical one.
fn location(rule: &str) -> Location {
    match rule.rsplit_once(':') {
        Some((file, line)) if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) => {
            Location::builder()
                .physical_location(
                    PhysicalLocation::builder()
                        .artifact_location(ArtifactLocation::builder().uri(file).build())
                        .region(
                            Region::builder()
                                .start_line(line.parse::<i64>().unwrap_or(1).max(1))
                                .build(),
                        )
                        .build(),
                )
                .build()
        }
        _ => Location::builder()
            .logical_locations(vec![LogicalLocation::builder()
                .fully_qualified_name(rule)
                .build()])
            .build(),
    }
}

/// Rule id, level and message of a finding; None for findings that are no
/// problem (an allowed flow).
fn describe(f: &Finding) -> Option<(String, ResultLevel, String)> {
    if !f.is_problem() {
        return None;
    }
    let status = f.status.map_or("unknown", status_str);
    Some(match f.kind {
        FindingKind::Flow => (
            format!("flow-{status}"),
            ResultLevel::Error,
            format!("required flow {} is {status}", f.subject),
        ),
        FindingKind::Replies => (
            format!("reply-{status}"),
            ResultLevel::Error,
            format!("replies of flow {} are {status}", f.subject),
        ),
        FindingKind::Excess => (
            "excess".into(),
            ResultLevel::Warning,
            format!("accepted beyond the required flows: {}", f.subject),
        ),
        FindingKind::PossibleExcess => (
            "excess".into(),
            ResultLevel::Warning,
            format!(
                "possibly accepted (a rule the model cannot evaluate decides it) beyond the required flows: {}",
                f.subject
            ),
        ),
        FindingKind::Shadowed => (
            "shadowed-rule".into(),
            ResultLevel::Note,
            format!("rule never matches; covered by {}", f.rules.join(", ")),
        ),
        FindingKind::Redundant => (
            "redundant-rule".into(),
            ResultLevel::Note,
            format!(
                "removing the rule changes nothing; decided the same by {}",
                f.rules.join(", ")
            ),
        ),
        FindingKind::Note => ("analysis-note".into(), ResultLevel::Warning, f.subject.clone()),
        FindingKind::NewlyAllowed => (
            "newly-allowed".into(),
            ResultLevel::Warning,
            format!("newly accepted: {}", f.subject),
        ),
        FindingKind::NewlyBlocked => (
            "newly-blocked".into(),
            ResultLevel::Note,
            format!("no longer accepted: {}", f.subject),
        ),
        FindingKind::FlowChange => (
            "flow-change".into(),
            if f.status == Some(Status::Allowed) {
                ResultLevel::Note
            } else {
                ResultLevel::Error
            },
            format!("required flow {} is now {status}", f.subject),
        ),
    })
}

/// Where a finding is: its rule for rule findings, the rules involved
/// otherwise, the ruleset itself when there are none.
fn locations(f: &Finding, ruleset: &str) -> Vec<Location> {
    let refs: Vec<&str> = match f.kind {
        FindingKind::Shadowed | FindingKind::Redundant => vec![f.subject.as_str()],
        _ => f.rules.iter().map(String::as_str).collect(),
    };
    if refs.is_empty() {
        vec![location(ruleset)]
    } else {
        refs.into_iter().map(location).collect()
    }
}

fn result(f: &Finding, ruleset: &str, baseline: Option<&str>) -> Option<SarifResult> {
    let (rule_id, level, text) = describe(f)?;
    let index = RULES.iter().position(|(id, _)| *id == rule_id);
    let fingerprints = BTreeMap::from([(SCHEME.to_string(), f.fingerprint.hex())]);
    let b = SarifResult::builder()
        .rule_id(rule_id)
        .level(level)
        .message(Message::builder().text(text).build())
        .locations(locations(f, ruleset))
        .partial_fingerprints(fingerprints);
    Some(match (index, baseline) {
        (Some(i), Some(s)) => b
            .rule_index(i as i64)
            .baseline_state(serde_json::json!(s))
            .build(),
        (Some(i), None) => b.rule_index(i as i64).build(),
        (None, Some(s)) => b.baseline_state(serde_json::json!(s)).build(),
        (None, None) => b.build(),
    })
}

fn log(results: Vec<SarifResult>) -> String {
    let rules: Vec<ReportingDescriptor> = RULES
        .iter()
        .map(|(id, what)| {
            ReportingDescriptor::builder()
                .id(*id)
                .short_description(MultiformatMessageString::builder().text(*what).build())
                .build()
        })
        .collect();
    let run = Run::builder()
        .tool(
            Tool::builder()
                .driver(
                    ToolComponent::builder()
                        .name("ringfence")
                        .version(env!("CARGO_PKG_VERSION"))
                        .rules(rules)
                        .build(),
                )
                .build(),
        )
        .results(results)
        .build();
    let doc = Sarif::builder()
        .version(serde_json::json!("2.1.0"))
        .schema(serde_sarif::sarif::SCHEMA_URL)
        .runs(vec![run])
        .build();
    let mut s = serde_json::to_string_pretty(&doc).expect("SARIF serializes");
    s.push('\n');
    s
}

/// SARIF of a verify report: one result per problem finding (a flow not
/// allowed, replies not allowed, excess, shadowed and redundant rules,
/// notes), each with its fingerprint. `rs` is the ruleset verified (rule
/// findings are fingerprinted by its rule text).
pub fn verify_sarif(report: &VerifyReport, rs: &Ruleset) -> String {
    let results = verify_findings(report, rs)
        .iter()
        .filter_map(|f| result(f, &report.ruleset, None))
        .collect();
    log(results)
}

/// SARIF of a diff: the regions newly allowed (`baselineState: new`) and
/// newly blocked (`absent`) and the flows that change. With a site, also
/// every problem finding of `verify` on both rulesets, matched by
/// fingerprint: `new` (only after the change), `absent` (fixed by it) or
/// `unchanged`.
pub fn diff_sarif(
    report: &DiffReport,
    old: &Ruleset,
    new: &Ruleset,
    site: Option<&ResolvedSite>,
    hook: Hook,
) -> String {
    let mut results = Vec::new();
    for f in diff_findings(report) {
        let state = match f.kind {
            FindingKind::NewlyBlocked => "absent",
            _ => "new",
        };
        let ruleset = if f.kind == FindingKind::NewlyBlocked {
            &report.old
        } else {
            &report.new
        };
        results.extend(result(&f, ruleset, Some(state)));
    }
    if let Some(site) = site {
        let before = verify_findings(&verify(old, site, hook), old);
        let after = verify_findings(&verify(new, site, hook), new);
        let had: HashSet<_> = before.iter().map(|f| f.fingerprint).collect();
        let has: HashSet<_> = after.iter().map(|f| f.fingerprint).collect();
        for f in &after {
            let state = if had.contains(&f.fingerprint) {
                "unchanged"
            } else {
                "new"
            };
            results.extend(result(f, &report.new, Some(state)));
        }
        for f in before.iter().filter(|f| !has.contains(&f.fingerprint)) {
            results.extend(result(f, &report.old, Some("absent")));
        }
    }
    log(results)
}
