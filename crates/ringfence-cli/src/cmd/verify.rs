//! `ringfence verify`: does a ruleset open every required flow (with replies),
//! and nothing more? Exit 0 clean, 1 findings, 2 bad input.

use crate::cmd::trace::{FormatArg, HookArg};
use crate::exit::{self, CliError};
use clap::{Args as ClapArgs, ValueEnum};
use ringfence_analysis::verify::{verify, Status, VerifyReport};
use ringfence_model::Hook;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Output formats of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// Human-readable.
    Text,
    /// The JSON report of docs/verify-json.md.
    Json,
    /// JUnit XML: one test case per flow, per excess region.
    Junit,
    /// SARIF 2.1.0 for code-scanning dashboards.
    Sarif,
}

/// Arguments of `ringfence verify`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub site: crate::cmd::flows::SiteArgs,
    /// The ruleset: iptables-save, nft text or JSON, or NSX export. Repeat
    /// for one ruleset in several files: ip6tables-save beside
    /// iptables-save (a family with no file is reported as not covered),
    /// `ipset save` output, nft files read in order.
    #[arg(long, value_name = "FILE", required = true)]
    pub ruleset: Vec<PathBuf>,
    /// Format of the ruleset file.
    #[arg(long, value_enum, default_value = "auto")]
    pub ruleset_format: FormatArg,
    /// The path the site's flows take, named by its filter hook: forward
    /// (prerouting, forward, postrouting), input (prerouting, input) or
    /// output (output, postrouting). Every table's base chains on the path
    /// are evaluated in kernel order.
    #[arg(long, value_enum, default_value = "forward")]
    pub hook: HookArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: VerifyFormat,
    /// Write the report here (atomically) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Allowed => "allowed",
        Status::Partial => "partial",
        Status::Blocked => "blocked",
        Status::Unknown => "unknown",
    }
}

/// Run `ringfence verify`.
pub fn run(args: Args) -> Result<u8, CliError> {
    let site = args.site.load()?;
    let rs = crate::rulesets::load_for_site(&args.ruleset, args.ruleset_format, &site)?;
    let hook: Hook = args.hook.into();
    let report = verify(&rs, &site.resolve(), hook);
    let out = match args.format {
        VerifyFormat::Json => {
            let mut s = serde_json::to_string_pretty(&report).expect("report serializes");
            s.push('\n');
            s
        }
        VerifyFormat::Text => text(&report),
        VerifyFormat::Junit => junit(&report)?,
        VerifyFormat::Sarif => crate::sarif::verify_sarif(&report, &rs),
    };
    // The process ends right after the report: freeing a 100k-rule model rule
    // by rule would only cost time.
    std::mem::forget(rs);
    exit::emit(args.out.as_deref(), out.as_bytes())?;
    Ok(if report.summary.ok {
        exit::SUCCESS
    } else {
        exit::FINDINGS
    })
}

fn text(r: &VerifyReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "verify {} against site {} ({}), hook {}",
        r.ruleset, r.site, r.catalog, r.hook
    );
    let _ = writeln!(s, "\nflows:");
    for f in &r.flows {
        let _ = writeln!(
            s,
            "  {:<8} replies {:<8} {}",
            status_str(f.status),
            status_str(f.replies),
            f.id
        );
        if let Some(e) = &f.blocked_example {
            let _ = writeln!(
                s,
                "           e.g. {} {}:{} -> {}:{} not accepted",
                e.proto, e.src, e.sport, e.dst, e.dport
            );
        }
        if f.status != Status::Allowed && !f.rules.is_empty() {
            let _ = writeln!(s, "           decided by {}", f.rules.join(", "));
        }
    }
    let _ = writeln!(
        s,
        "\nexcess ({}{}{}):",
        r.summary.excess,
        if r.summary.possible_excess > 0 {
            format!(", {} possible", r.summary.possible_excess)
        } else {
            String::new()
        },
        if r.summary.excess_complete {
            ""
        } else {
            ", incomplete: the analysis hit its size budget, more may be accepted"
        }
    );
    for e in &r.excess {
        let rules = e.rules.join(", ");
        let _ = if e.certain {
            writeln!(s, "  {}  by {rules}", e.describe())
        } else {
            writeln!(
                s,
                "  possible: {}  may be accepted: {rules} cannot be evaluated exactly",
                e.describe()
            )
        };
    }
    for (title, why, list) in [
        ("shadowed", "covered by", &r.shadowed),
        ("redundant", "same result via", &r.redundant),
    ] {
        let _ = writeln!(s, "\n{title} rules ({}):", list.len());
        for x in list {
            let _ = writeln!(
                s,
                "  {} (chain {}) {why} {}",
                x.rule,
                x.chain,
                x.by.join(", ")
            );
        }
    }
    let _ = writeln!(
        s,
        "\ndefault deny: {}",
        if r.default_deny { "yes" } else { "no" }
    );
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let m = &r.summary;
    let _ = writeln!(
        s,
        "\nsummary: {} flows: {} allowed, {} partial, {} blocked, {} unknown; replies not allowed: {}; excess: {}{}{}; shadowed: {}; redundant: {}: {}",
        m.flows, m.allowed, m.partial, m.blocked, m.unknown, m.replies_not_allowed, m.excess,
        if m.possible_excess > 0 { format!(" ({} possible)", m.possible_excess) } else { String::new() },
        if m.excess_complete { "" } else { " (incomplete)" },
        m.shadowed, m.redundant,
        if m.ok { "OK" } else { "FINDINGS" }
    );
    s
}

fn junit(r: &VerifyReport) -> Result<String, CliError> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("ringfence verify");
    let mut flows = TestSuite::new("flows");
    for f in &r.flows {
        let ok = f.status == Status::Allowed && f.replies == Status::Allowed;
        let status = if ok {
            TestCaseStatus::success()
        } else {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let mut msg = format!(
                "new connections {}, replies {}",
                status_str(f.status),
                status_str(f.replies)
            );
            if let Some(e) = &f.blocked_example {
                let _ = write!(
                    msg,
                    "; e.g. {} {}:{} -> {}:{}",
                    e.proto, e.src, e.sport, e.dst, e.dport
                );
            }
            if !f.rules.is_empty() {
                let _ = write!(msg, "; decided by {}", f.rules.join(", "));
            }
            st.set_message(msg);
            st
        };
        let mut tc = TestCase::new(f.id.clone(), status);
        tc.set_classname("flows");
        flows.add_test_case(tc);
    }
    report.add_test_suite(flows);
    let mut excess = TestSuite::new("excess");
    let mut tc = if r.excess.is_empty() && r.summary.excess_complete {
        TestCase::new("deny-all", TestCaseStatus::success())
    } else {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
        st.set_message(format!(
            "{} region(s) accepted beyond the required flows",
            r.summary.excess
        ));
        st.set_description(
            r.excess
                .iter()
                .map(|e| {
                    format!(
                        "{}{} by {}",
                        if e.certain { "" } else { "possible: " },
                        e.describe(),
                        e.rules.join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        );
        TestCase::new("deny-all", st)
    };
    tc.set_classname("excess");
    excess.add_test_case(tc);
    report.add_test_suite(excess);
    report
        .to_string()
        .map_err(|e| CliError::Io(format!("rendering JUnit XML: {e}")))
}
