//! `ringfence report`: one self-contained HTML page (or Markdown for a pull
//! request) with the connectivity matrix, flow verdicts, excess, rule findings,
//! CIS and lab results. See docs/report.md. With `--history DIR`: the
//! timeline of a `watch --record` log instead.

use crate::cmd::trace::{FormatArg, HookArg};
use crate::exit::{self, CliError};
use clap::{Args as ClapArgs, ValueEnum};
use ringfence_analysis::verify::verify;
use ringfence_model::Hook;
use ringfence_report::{cis, example, lab, Inputs, RulesetInput};
use std::path::{Path, PathBuf};

/// Output formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML file (inline CSS, no scripts, prints well).
    Html,
    /// GitHub-flavoured Markdown, for a pull-request comment.
    Markdown,
    /// JSON data (with --history only): the timeline's events, findings and
    /// open findings.
    Json,
}

/// Arguments of `ringfence report`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Site file (YAML). Required unless --example or --history is given.
    #[arg(long, value_name = "FILE", conflicts_with = "example")]
    pub site: Option<PathBuf>,
    /// The ruleset to verify against the site (iptables-save, nft text or
    /// JSON, or NSX export); repeat for one ruleset in several files
    /// (ip6tables-save beside iptables-save, `ipset save`, nft files in order).
    #[arg(long, value_name = "FILE", conflicts_with = "example")]
    pub ruleset: Vec<PathBuf>,
    /// Format of the ruleset file.
    #[arg(long, value_enum, default_value = "auto")]
    pub ruleset_format: FormatArg,
    /// The hook the site's flows traverse.
    #[arg(long, value_enum, default_value = "forward")]
    pub hook: HookArg,
    /// CIS results: `ringfence cis scan --format json` node results or
    /// `ringfence cis merge --format json` fleet results (repeatable).
    #[arg(long, value_name = "RESULT.json", conflicts_with = "example")]
    pub cis: Vec<PathBuf>,
    /// Lab probe results (JSON; see docs/report.md).
    #[arg(long, value_name = "RESULT.json", conflicts_with = "example")]
    pub lab: Option<PathBuf>,
    /// Render the embedded example: example site, a ruleset with deliberate
    /// defects and the CIS result of a TKG control-plane node.
    #[arg(long)]
    pub example: bool,
    /// Instead of verifying, show the history a `ringfence watch --record
    /// DIR` kept: when each finding (by fingerprint) appeared and
    /// disappeared, the ruleset change that did it, and what is still open
    /// at the end. A damaged log is reported at its file and line (exit 2).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["example", "site", "ruleset", "cis", "lab"]
    )]
    pub history: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "html")]
    pub format: ReportFormat,
    /// The generation time shown in the report (default: now, or
    /// SOURCE_DATE_EPOCH when set, for reproducible output).
    #[arg(long, value_name = "TEXT")]
    pub time: Option<String>,
    /// Write the report here (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn generated(flag: Option<String>) -> Result<String, CliError> {
    if let Some(t) = flag {
        return Ok(t);
    }
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: u64 = v.trim().parse().map_err(|_| {
            CliError::Usage(format!(
                "SOURCE_DATE_EPOCH must be seconds since 1970-01-01 UTC, not {v:?}"
            ))
        })?;
        return Ok(format_utc(secs));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(format_utc(now))
}

fn read(path: &Path) -> Result<String, ringfence_diag::InputError> {
    ringfence_diag::read_input(path, &path.display().to_string(), "report input")
}

/// Run `ringfence report`.
pub fn run(args: Args) -> Result<u8, CliError> {
    let time = generated(args.time)?;
    if let Some(dir) = &args.history {
        return history(dir, &time, args.format, args.out.as_deref());
    }
    if args.format == ReportFormat::Json {
        return Err(CliError::Usage(
            "--format json is for --history DIR only; the report is html or markdown".into(),
        ));
    }
    if args.example {
        let report = example::report(&time, env!("CARGO_PKG_VERSION"));
        return write(&report, args.format, args.out.as_deref());
    }
    let hook: Hook = args.hook.into();
    let p = args
        .site
        .as_deref()
        .ok_or_else(|| CliError::Usage(crate::cmd::flows::NO_SITE.into()))?;
    let (site, site_file) = (
        crate::cmd::flows::load_site(Some(p), false)?,
        p.display().to_string(),
    );
    let resolved = site.resolve();

    // Ruleset.
    let ruleset = match args.ruleset.first() {
        // Rule texts are quoted from the file the references name (one file).
        Some(p) => Some((
            crate::rulesets::load_for_site(&args.ruleset, args.ruleset_format, &site)?,
            read(p)?,
        )),
        None => None,
    };
    let verified = ruleset
        .as_ref()
        .map(|(rs, _)| (verify(rs, &resolved, hook), rs.format));

    // CIS and lab: every bad file is reported, then exit 2.
    let mut errors = Vec::new();
    let mut cis_inputs = Vec::new();
    for p in &args.cis {
        let name = p.display().to_string();
        match read(p) {
            Ok(text) => match cis::parse_cis(&text, &name) {
                Ok(c) => cis_inputs.push(c),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(e),
        }
    }
    let lab_input = match &args.lab {
        Some(p) => {
            let name = p.display().to_string();
            match read(p) {
                Ok(text) => match lab::parse_lab(&text, &name) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        }
        None => None,
    };
    if !errors.is_empty() {
        return Err(CliError::Input(ringfence_diag::InputErrors(errors)));
    }

    let format_name = verified.as_ref().map(|(_, f)| {
        serde_json::to_value(f)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    });
    let inputs = Inputs {
        site: &site,
        site_file,
        ruleset: match (&verified, &ruleset, &format_name) {
            (Some((v, _)), Some((_, text)), Some(f)) => Some(RulesetInput {
                verify: v,
                text,
                format: f,
            }),
            _ => None,
        },
        cis: cis_inputs,
        lab: lab_input,
        generated: time,
        version: env!("CARGO_PKG_VERSION").to_string(),
        example: false,
    };
    let report = ringfence_report::build(&inputs);
    write(&report, args.format, args.out.as_deref())
}

/// `report --history DIR`: read the log (every damaged segment reported at
/// its file and line), build the timeline and render it.
fn history(
    dir: &Path,
    time: &str,
    format: ReportFormat,
    out: Option<&Path>,
) -> Result<u8, CliError> {
    use ringfence_report::history;
    let segments = history::log::read_log(dir)?;
    let h = history::build(
        &dir.display().to_string(),
        &segments,
        time,
        env!("CARGO_PKG_VERSION"),
    );
    let text = match format {
        ReportFormat::Html => history::render_html(&h),
        ReportFormat::Markdown => history::render_markdown(&h),
        ReportFormat::Json => {
            let mut v = serde_json::to_value(&h).expect("history serializes");
            if let Some(o) = v.as_object_mut() {
                o.remove("palette");
            }
            Ok(serde_json::to_string_pretty(&v).expect("history serializes") + "\n")
        }
    }
    .map_err(|e| CliError::Io(format!("rendering the history: {e:#}")))?;
    exit::emit(out, text.as_bytes())?;
    if let Some(out) = out {
        eprintln!(
            "wrote {}: {} changes, {} findings seen, {} open at the end",
            out.display(),
            h.summary.changes,
            h.summary.findings,
            h.summary.open
        );
    }
    Ok(exit::SUCCESS)
}

fn write(
    report: &ringfence_report::Report,
    format: ReportFormat,
    out: Option<&Path>,
) -> Result<u8, CliError> {
    let text = match format {
        ReportFormat::Html => ringfence_report::render_html(report),
        ReportFormat::Markdown => ringfence_report::render_markdown(report),
        ReportFormat::Json => {
            return Err(CliError::Usage(
                "--format json is for --history DIR only".into(),
            ))
        }
    }
    .map_err(|e| CliError::Io(format!("rendering the report: {e:#}")))?;
    exit::emit(out, text.as_bytes())?;
    if let Some(out) = out {
        eprintln!(
            "wrote {}: {}",
            out.display(),
            if report.summary.all_ok {
                "no findings".to_string()
            } else {
                format!(
                    "findings ({} of {} flows not fine, {} excess, {} unexpected CIS failures)",
                    report.summary.flows - report.summary.ok,
                    report.summary.flows,
                    report.summary.excess,
                    report.summary.cis_unexpected_fail
                )
            }
        );
    }
    Ok(exit::SUCCESS)
}
