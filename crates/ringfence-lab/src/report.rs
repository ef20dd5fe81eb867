//! The lab's report: per probe what the kernel did, what trace predicted and
//! what the site requires; text, JSON (docs/lab.md) and JUnit renderings.

use crate::site_lab::{ProbeResult, Proto, Seen};
use serde::Serialize;

/// Counts over a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Probes made.
    pub probes: usize,
    /// Probes the site requires open.
    pub required: usize,
    /// Required probes the kernel let through.
    pub required_open: usize,
    /// Probes the site does not require.
    pub negative: usize,
    /// Negative probes the kernel did not let through.
    pub negative_closed: usize,
    /// Probes where the kernel and trace disagree.
    pub disagreements: usize,
    /// Probes whose prediction trace marks uncertain (no prediction).
    pub uncertain: usize,
    /// Findings (see [`Finding`]).
    pub findings: usize,
}

/// Something that fails the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `disagreement` (the kernel did not do what trace predicted: one per
    /// probe), `required-closed` (a flow the site requires is closed: one per
    /// flow) or `negative-open` (a path the site does not require is open:
    /// one per protocol and port).
    pub kind: String,
    /// The flow (for `disagreement` and `required-closed`).
    pub flow: Option<String>,
    /// Protocol and port (for `disagreement` and `negative-open`).
    pub service: Option<String>,
    /// How many probes show it.
    pub probes: usize,
    /// One probe that shows it.
    pub example: String,
}

/// A lab run's report.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    /// Report format version.
    pub version: u32,
    /// The lab's name.
    pub lab: String,
    /// The ruleset language loaded (`nft` or `iptables`).
    pub ruleset: String,
    /// Counts.
    pub summary: Summary,
    /// What was not probed and why.
    pub skipped: Vec<String>,
    /// What fails the run.
    pub findings: Vec<Finding>,
    /// Every probe.
    pub probes: Vec<ProbeResult>,
}

impl LabReport {
    /// Build the report and its counts.
    pub fn new(lab: &str, ruleset: &str, probes: Vec<ProbeResult>, skipped: Vec<String>) -> Self {
        let required = probes.iter().filter(|p| p.required).count();
        let summary = Summary {
            probes: probes.len(),
            required,
            required_open: probes
                .iter()
                .filter(|p| p.required && p.kernel == Seen::Open)
                .count(),
            negative: probes.len() - required,
            negative_closed: probes
                .iter()
                .filter(|p| !p.required && p.kernel != Seen::Open)
                .count(),
            disagreements: probes.iter().filter(|p| p.is_finding()).count(),
            uncertain: probes.iter().filter(|p| p.uncertain).count(),
            findings: 0,
        };
        let mut findings: Vec<Finding> = Vec::new();
        let mut add =
            |kind: &str, flow: Option<String>, service: Option<String>, p: &ProbeResult| {
                if let Some(f) = findings
                    .iter_mut()
                    .find(|f| f.kind == kind && f.flow == flow && f.service == service)
                {
                    f.probes += 1;
                } else {
                    findings.push(Finding {
                        kind: kind.into(),
                        flow,
                        service,
                        probes: 1,
                        example: line(p),
                    });
                }
            };
        for p in &probes {
            let svc = format!("{}/{}", proto_name(p.proto), p.port);
            if p.is_finding() {
                add(
                    "disagreement",
                    Some(p.flow.clone()),
                    Some(format!("{} {} -> {}", svc, p.src, p.dst)),
                    p,
                );
            }
            if p.required && p.kernel != Seen::Open {
                add("required-closed", Some(p.flow.clone()), None, p);
            }
            if !p.required && p.kernel == Seen::Open {
                add("negative-open", None, Some(svc), p);
            }
        }
        let mut summary = summary;
        summary.findings = findings.len();
        LabReport {
            version: 1,
            lab: lab.into(),
            ruleset: ruleset.into(),
            summary,
            skipped,
            findings,
            probes,
        }
    }

    /// JSON (the layout docs/lab.md describes).
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes") + "\n"
    }

    /// Human-readable: the findings in full, then the counts.
    pub fn text(&self, verbose: bool) -> String {
        let mut out = String::new();
        for p in &self.probes {
            if verbose {
                out += &format!(
                    "{}{}\n",
                    if p.is_finding() { "DISAGREEMENT " } else { "" },
                    line(p)
                );
            }
        }
        for f in &self.findings {
            out += &format!(
                "FINDING {}{}{}: {} probe{}, e.g. {}\n",
                f.kind,
                f.flow
                    .as_ref()
                    .map(|x| format!(" flow {x}"))
                    .unwrap_or_default(),
                f.service
                    .as_ref()
                    .map(|x| format!(" {x}"))
                    .unwrap_or_default(),
                f.probes,
                if f.probes == 1 { "" } else { "s" },
                f.example
            );
        }
        let s = &self.summary;
        out += &format!(
            "lab {} ({}): {} probes; required open {}/{}; negative closed {}/{}; {} kernel/trace disagreement{} ({} uncertain predictions); {} finding{}\n",
            self.lab, self.ruleset, s.probes, s.required_open, s.required, s.negative_closed, s.negative, s.disagreements,
            if s.disagreements == 1 { "" } else { "s" }, s.uncertain, s.findings, if s.findings == 1 { "" } else { "s" }
        );
        for k in &self.skipped {
            out += &format!("not probed: {k}\n");
        }
        out
    }

    /// JUnit XML: one test case per probe; a disagreement is a failure.
    pub fn junit(&self) -> String {
        use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
        let mut r = Report::new(format!("ringfence lab {}", self.lab));
        let mut suite = TestSuite::new(format!("lab {} ({})", self.lab, self.ruleset));
        for p in &self.probes {
            let wrong_for_site =
                (p.required && p.kernel != Seen::Open) || (!p.required && p.kernel == Seen::Open);
            let status = if p.is_finding() || wrong_for_site {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                if p.is_finding() {
                    s.set_message(format!(
                        "kernel {} but trace predicts {}",
                        name(p.kernel),
                        name(p.predicted)
                    ));
                    s.set_type("disagreement");
                } else {
                    s.set_message(format!(
                        "kernel {} but the site {}",
                        name(p.kernel),
                        if p.required {
                            "requires it open"
                        } else {
                            "does not require it"
                        }
                    ));
                    s.set_type(if p.required {
                        "required-closed"
                    } else {
                        "negative-open"
                    });
                }
                s
            } else {
                TestCaseStatus::success()
            };
            let mut tc = TestCase::new(line(p), status);
            tc.set_classname(format!("lab.{}", p.flow));
            suite.add_test_case(tc);
        }
        r.add_test_suite(suite);
        r.to_string().expect("JUnit serializes")
    }
}

/// The lower-case name of an outcome.
pub fn name(s: Seen) -> &'static str {
    match s {
        Seen::Open => "open",
        Seen::Refused => "refused",
        Seen::Filtered => "filtered",
    }
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

fn line(p: &ProbeResult) -> String {
    format!(
        "{} {} -> {} {}/{}: kernel {}, trace {}{}, {}",
        p.flow,
        p.src,
        p.dst,
        match p.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        },
        p.port,
        name(p.kernel),
        name(p.predicted),
        if p.uncertain { " (uncertain)" } else { "" },
        if p.required {
            "required"
        } else {
            "not required"
        }
    )
}
