//! `ringfence diff OLD NEW`: what a ruleset change newly allows and newly blocks.

use crate::cmd::trace::{FormatArg, HookArg};
use crate::exit::{self, CliError};
use clap::{Args as ClapArgs, ValueEnum};
use ringfence_analysis::diff::diff;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Output formats of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// Human-readable.
    Text,
    /// JSON (docs/verify-json.md, section diff).
    Json,
    /// SARIF 2.1.0: newly allowed / blocked regions and flow changes; with
    /// --site also verify's findings of both rulesets, each with
    /// `baselineState` new, absent (fixed) or unchanged and a stable
    /// fingerprint in `partialFingerprints`.
    Sarif,
}

/// Arguments of `ringfence diff`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The ruleset before the change.
    pub old: PathBuf,
    /// The ruleset after the change.
    pub new: PathBuf,
    /// More files of the old ruleset (ip6tables-save beside iptables-save,
    /// `ipset save` output, further nft files), repeatable.
    #[arg(long, value_name = "FILE")]
    pub old_ruleset: Vec<PathBuf>,
    /// More files of the new ruleset, repeatable.
    #[arg(long, value_name = "FILE")]
    pub new_ruleset: Vec<PathBuf>,
    /// Also report which of this site's flows change status (without
    /// --site or --example only the rulesets are compared).
    #[arg(long, value_name = "FILE", conflicts_with = "example")]
    pub site: Option<PathBuf>,
    /// Also report which flows of the embedded example site change status.
    #[arg(long)]
    pub example: bool,
    /// Format of both ruleset files.
    #[arg(long, value_enum, default_value = "auto")]
    pub ruleset_format: FormatArg,
    /// The hook to compare.
    #[arg(long, value_enum, default_value = "forward")]
    pub hook: HookArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: DiffFormat,
    /// Write the report here (atomically) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `ringfence diff`. Exit 0 when nothing changes, 1 when something does.
pub fn run(args: Args) -> Result<u8, CliError> {
    let files = |first: &PathBuf, more: &[PathBuf]| {
        std::iter::once(first.clone())
            .chain(more.iter().cloned())
            .collect::<Vec<_>>()
    };
    let old = crate::rulesets::load(&files(&args.old, &args.old_ruleset), args.ruleset_format)?;
    let new = crate::rulesets::load(&files(&args.new, &args.new_ruleset), args.ruleset_format)?;
    // The site is optional here: without one, diff compares the rulesets
    // alone and never reports flows of a site it was not given.
    let site = if args.site.is_some() || args.example {
        Some(crate::cmd::flows::load_site(args.site.as_deref(), args.example)?.resolve())
    } else {
        None
    };
    let r = diff(&old, &new, args.hook.into(), site.as_ref());
    let out = match args.format {
        DiffFormat::Sarif => {
            crate::sarif::diff_sarif(&r, &old, &new, site.as_ref(), args.hook.into())
        }
        DiffFormat::Json => {
            let mut s = serde_json::to_string_pretty(&r).expect("diff serializes");
            s.push('\n');
            s
        }
        DiffFormat::Text => {
            let mut s = format!("diff {} -> {} (hook {})\n", r.old, r.new, r.hook);
            for (title, list) in [
                ("newly allowed", &r.newly_allowed),
                ("newly blocked", &r.newly_blocked),
            ] {
                let _ = writeln!(s, "\n{title} ({}):", list.len());
                for e in list {
                    let _ = writeln!(s, "  {}  ({})", e.describe(), e.rules.join(", "));
                }
            }
            if !r.complete {
                let _ = writeln!(
                    s,
                    "\nincomplete: part of the comparison exceeded the analysis size budget"
                );
            }
            if site.is_some() {
                let _ = writeln!(s, "\nflows that change ({}):", r.flows.len());
                for f in &r.flows {
                    let _ = writeln!(
                        s,
                        "  {}: {:?} -> {:?} (replies {:?} -> {:?})",
                        f.id, f.old, f.new, f.old_replies, f.new_replies
                    );
                }
            }
            s
        }
    };
    exit::emit(args.out.as_deref(), out.as_bytes())?;
    let changed = !r.newly_allowed.is_empty()
        || !r.newly_blocked.is_empty()
        || !r.flows.is_empty()
        || !r.complete;
    Ok(if changed {
        exit::FINDINGS
    } else {
        exit::SUCCESS
    })
}
