//! Writing reports: text, Markdown, JSON, JUnit XML and SARIF.

use crate::benchmark::Benchmark;
use crate::report::{CheckResult, Report, Status};
use std::fmt::Write;

/// JSON, pretty-printed, with a trailing newline (format: `docs/cis-json.md`).
pub fn json(report: &Report) -> String {
    let mut s = serde_json::to_string_pretty(report).expect("report serializes");
    s.push('\n');
    s
}

fn section_of(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

fn group_of(id: &str) -> &str {
    id.rsplit_once('.').map_or(id, |(group, _)| group)
}

fn tag(c: &CheckResult) -> &'static str {
    match c.status {
        Status::Fail if c.expected => "EXPECTED",
        Status::Fail if c.covered() => "WAIVED",
        Status::Pass if c.fixed => "FIXED",
        Status::Pass => "PASS",
        Status::Fail => "FAIL",
        Status::Warn => "WARN",
        Status::Info => "INFO",
        Status::NotAssessed => "NOT-ASSESSED",
    }
}

fn paint(s: &str, colour: bool, code: &str) -> String {
    if colour {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn tag_colour(t: &str) -> &'static str {
    match t {
        "PASS" => "32",
        "FAIL" => "1;31",
        "WARN" => "33",
        "EXPECTED" | "WAIVED" | "FIXED" => "36",
        "NOT-ASSESSED" => "35",
        _ => "34",
    }
}

/// Human-readable text grouped by section, ending with the summary; ANSI
/// colour only when `colour` is set (the CLI sets it for terminals).
pub fn text(report: &Report, bench: &Benchmark, colour: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} on {} ({}), Kubernetes {}{}",
        report.benchmark,
        report.node.name,
        if report.node.roles.is_empty() {
            "no roles".to_string()
        } else {
            report.node.roles.join(", ")
        },
        report
            .node
            .kubernetes_version
            .as_deref()
            .unwrap_or("unknown"),
        report
            .profile
            .as_ref()
            .map(|p| format!(", profile {p}"))
            .unwrap_or_default()
    );
    if let Some(why) = &report.benchmark_reason {
        let _ = writeln!(out, "benchmark auto: {} ({why})", report.benchmark);
    }
    let mut section = "";
    let mut group = "";
    for c in &report.checks {
        let s = section_of(&c.id);
        if s != section {
            section = s;
            let title = bench.heading(s).unwrap_or("");
            let _ = writeln!(out, "\n{}", paint(&format!("[{s}] {title}"), colour, "1"));
        }
        let g = group_of(&c.id);
        if g != group && g != s {
            group = g;
            let _ = writeln!(out, "  {g} {}", bench.heading(g).unwrap_or(""));
        }
        let t = tag(c);
        let _ = writeln!(
            out,
            "  {:<8} {} {}",
            paint(t, colour, tag_colour(t)),
            c.id,
            c.title
        );
        if c.fixed {
            let _ = writeln!(
                out,
                "           {} lists it as an expected failure, but it passes: the profile entry is stale",
                report.profile.as_deref().unwrap_or("the profile")
            );
            if let Some(e) = &c.evidence {
                let _ = writeln!(out, "           from: {}", e.describe());
            }
        }
        if c.status != Status::Pass {
            if let Some(a) = &c.actual {
                let _ = writeln!(out, "           found: {a}");
            }
            if let Some(r) = &c.reason {
                let _ = writeln!(out, "           why: {r}");
            }
            if let Some(e) = &c.evidence {
                let _ = writeln!(out, "           from: {}", e.describe());
            }
            if let Some(x) = &c.explanation {
                let _ = writeln!(
                    out,
                    "           expected by {}: {x}",
                    report.profile.as_deref().unwrap_or("profile")
                );
            }
            if let Some(w) = &c.waiver {
                let state = if w.expired { "EXPIRED" } else { "until" };
                let _ = writeln!(
                    out,
                    "           waiver ({}, {state} {}): {}",
                    w.owner, w.expires, w.reason
                );
            }
            if matches!(c.status, Status::Fail | Status::Warn) {
                let _ = writeln!(out, "           fix: {}", c.remediation);
            }
        }
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\n{} pass, {} fail ({} expected, {} unexpected), {} warn, {} info, {} not assessed",
        s.pass, s.fail, s.expected_fail, s.unexpected_fail, s.warn, s.info, s.not_assessed
    );
    if s.fixed > 0 {
        let fixed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| c.fixed)
            .map(|c| c.id.as_str())
            .collect();
        let _ = writeln!(
            out,
            "{}",
            paint(
                &format!(
                    "fixed (passing, but the profile expects them to fail): {}",
                    fixed.join(", ")
                ),
                colour,
                "36"
            )
        );
    }
    for w in &report.expired_waivers {
        let _ = writeln!(out, "{}", paint(&w.describe(), colour, "1;31"));
    }
    let unexpected: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.unexpected_failure())
        .map(|c| c.id.as_str())
        .collect();
    if unexpected.is_empty() {
        let _ = writeln!(out, "{}", paint("no unexpected failures", colour, "32"));
    } else {
        let _ = writeln!(
            out,
            "{}",
            paint(
                &format!("unexpected failures: {}", unexpected.join(", ")),
                colour,
                "1;31"
            )
        );
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown report: summary table, then one table per section.
pub fn markdown(report: &Report, bench: &Benchmark) -> String {
    let mut out = String::new();
    let s = &report.summary;
    let _ = writeln!(
        out,
        "# CIS scan: {} on {}\n",
        report.benchmark,
        md_escape(&report.node.name)
    );
    let _ = writeln!(
        out,
        "Roles: {} · Kubernetes: {} · Profile: {}\n",
        if report.node.roles.is_empty() {
            "none".to_string()
        } else {
            report.node.roles.join(", ")
        },
        report
            .node
            .kubernetes_version
            .as_deref()
            .unwrap_or("unknown"),
        report.profile.as_deref().unwrap_or("none")
    );
    if let Some(why) = &report.benchmark_reason {
        let _ = writeln!(
            out,
            "Benchmark chosen by `--benchmark auto`: {}\n",
            md_escape(why)
        );
    }
    let _ = writeln!(
        out,
        "| pass | fail | expected fail | unexpected fail | warn | info | not assessed |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} | {} |",
        s.pass, s.fail, s.expected_fail, s.unexpected_fail, s.warn, s.info, s.not_assessed
    );
    let mut section = "";
    for c in &report.checks {
        let sec = section_of(&c.id);
        if sec != section {
            section = sec;
            let _ = writeln!(out, "\n## {sec} {}\n", bench.heading(sec).unwrap_or(""));
            let _ = writeln!(out, "| id | status | title | found | remediation |");
            let _ = writeln!(out, "|---|---|---|---|---|");
        }
        let rem = if c.status == Status::Pass {
            String::new()
        } else {
            md_escape(&c.remediation)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            c.id,
            tag(c),
            md_escape(&c.title),
            md_escape(c.actual.as_deref().unwrap_or("")),
            rem
        );
    }
    out
}

fn detail(c: &CheckResult) -> String {
    let mut d = String::new();
    if let Some(a) = &c.actual {
        let _ = writeln!(d, "found: {a}");
    }
    if let Some(e) = &c.expected_value {
        let _ = writeln!(d, "wanted: {e}");
    }
    if let Some(r) = &c.reason {
        let _ = writeln!(d, "why: {r}");
    }
    if let Some(e) = &c.evidence {
        let _ = writeln!(d, "from: {}", e.describe());
    }
    let _ = writeln!(d, "fix: {}", c.remediation);
    d
}

/// JUnit XML: one test suite per target, one test case per check. Unexpected
/// failures are failures; covered failures, warnings and info are skipped.
pub fn junit(report: &Report) -> String {
    use quick_junit::{NonSuccessKind, Report as JReport, TestCase, TestCaseStatus, TestSuite};
    let mut jr = JReport::new(format!("ringfence cis {}", report.benchmark));
    let mut targets: Vec<_> = report.checks.iter().map(|c| c.target).collect();
    targets.dedup();
    for t in targets {
        let mut suite = TestSuite::new(format!("{} {}", report.benchmark, t));
        for c in report.checks.iter().filter(|c| c.target == t) {
            let status = match c.status {
                Status::Pass => TestCaseStatus::success(),
                Status::Fail if !c.covered() => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(
                        c.reason
                            .clone()
                            .unwrap_or_else(|| format!("{} failed", c.id)),
                    );
                    s.set_type("cis-fail");
                    s.set_description(detail(c));
                    s
                }
                _ => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(format!(
                        "{}: {}",
                        tag(c).to_lowercase(),
                        c.reason.clone().unwrap_or_default()
                    ));
                    s
                }
            };
            let mut tc = TestCase::new(format!("{} {}", c.id, c.title), status);
            tc.set_classname(format!("cis.{}", t));
            suite.add_test_case(tc);
        }
        jr.add_test_suite(suite);
    }
    jr.to_string().expect("JUnit serializes")
}

/// SARIF 2.1.0: one rule per check in the report, one result per check that
/// did not pass (unexpected failures are errors, warnings are warnings);
/// failures the profile or a live waiver covers carry a suppression.
pub fn sarif(report: &Report) -> String {
    use serde_sarif::sarif::{
        ArtifactLocation, Location, Message, MultiformatMessageString, PhysicalLocation,
        ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif, Suppression, Tool,
        ToolComponent,
    };
    let rules: Vec<ReportingDescriptor> = report
        .checks
        .iter()
        .map(|c| {
            ReportingDescriptor::builder()
                .id(c.id.clone())
                .name(format!("{} {}", report.benchmark, c.id))
                .short_description(
                    MultiformatMessageString::builder()
                        .text(c.title.clone())
                        .build(),
                )
                .help(
                    MultiformatMessageString::builder()
                        .text(c.remediation.clone())
                        .build(),
                )
                .build()
        })
        .collect();
    let mut results = Vec::new();
    for (index, c) in report.checks.iter().enumerate() {
        let level = match c.status {
            Status::Fail => ResultLevel::Error,
            Status::Warn => ResultLevel::Warning,
            Status::NotAssessed => ResultLevel::Note,
            Status::Pass | Status::Info => continue,
        };
        let mut text = format!("{} {}: {}", c.id, tag(c).to_lowercase(), c.title);
        if let Some(a) = &c.actual {
            let _ = write!(text, "; found {a}");
        }
        if let Some(r) = &c.reason {
            let _ = write!(text, "; {r}");
        }
        let locations: Vec<Location> = c
            .evidence
            .iter()
            .map(|e| {
                Location::builder()
                    .physical_location(
                        PhysicalLocation::builder()
                            .artifact_location(
                                ArtifactLocation::builder().uri(e.path.clone()).build(),
                            )
                            .build(),
                    )
                    .build()
            })
            .collect();
        let message = Message::builder().text(text).build();
        let result = if c.status == Status::Fail && c.covered() {
            let why = c
                .explanation
                .clone()
                .or_else(|| {
                    c.waiver
                        .as_ref()
                        .map(|w| format!("waived by {}: {}", w.owner, w.reason))
                })
                .unwrap_or_default();
            SarifResult::builder()
                .rule_id(c.id.clone())
                .rule_index(index as i64)
                .level(level)
                .message(message)
                .locations(locations)
                .suppressions(vec![Suppression::builder()
                    .kind(serde_json::json!("external"))
                    .justification(why)
                    .build()])
                .build()
        } else {
            SarifResult::builder()
                .rule_id(c.id.clone())
                .rule_index(index as i64)
                .level(level)
                .message(message)
                .locations(locations)
                .build()
        };
        results.push(result);
    }
    let run = Run::builder()
        .tool(
            Tool::builder()
                .driver(
                    ToolComponent::builder()
                        .name("ringfence-cis".to_string())
                        .version(env!("CARGO_PKG_VERSION").to_string())
                        .rules(rules)
                        .build(),
                )
                .build(),
        )
        .results(results)
        .build();
    let log = Sarif::builder()
        .version(serde_json::json!("2.1.0"))
        .schema(serde_sarif::sarif::SCHEMA_URL.to_string())
        .runs(vec![run])
        .build();
    let mut s = serde_json::to_string_pretty(&log).expect("SARIF serializes");
    s.push('\n');
    s
}
