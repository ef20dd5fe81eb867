//! `ringfence diff OLD NEW`: what a ruleset change newly allows and newly blocks.

use crate::cmd::trace::{FormatArg, HookArg};
use crate::cmd::verify::quote::RuleQuoter;
use crate::cmd::verify::{status_str, write_rules};
use crate::exit::{self, CliError};
use clap::{Args as ClapArgs, ValueEnum};
use ringfence_analysis::diff::diff_host;
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
    /// The packet mark packets arrive with: `zero` (packets enter the
    /// ruleset with mark 0, and marks set by the ruleset are followed
    /// exactly) or `any` (tc or eBPF may mark packets first: every mark test
    /// may or may not match, and results it touches are unknown).
    #[arg(long, value_enum, default_value = "zero")]
    pub initial_mark: super::verify::InitialMark,
    /// The host's own addresses (comma-separated, repeatable; loopback is
    /// always included, on `lo`): after prerouting, packets to them (after
    /// any DNAT or REDIRECT) go to input and the others through forward and
    /// postrouting, whatever --hook says for the forward and input paths;
    /// address-type `LOCAL` tests read them. ADDR%IFACE (e.g.
    /// 198.18.0.5%eth0) also names the interface holding the address, for
    /// tests limited to one interface (`--limit-iface-in/out`, nft `fib
    /// daddr . iif type`). The site's `host_zone:` adds its addresses (on
    /// the interfaces its `host_interfaces:` names).
    #[arg(long, value_name = "ADDR[%IFACE][,...]", value_delimiter = ',')]
    pub local: Vec<super::verify::HostAddr>,
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
    let (old_files, new_files) = (
        files(&args.old, &args.old_ruleset),
        files(&args.new, &args.new_ruleset),
    );
    let old = args
        .initial_mark
        .apply(crate::rulesets::load(&old_files, args.ruleset_format)?);
    let new = args
        .initial_mark
        .apply(crate::rulesets::load(&new_files, args.ruleset_format)?);
    // The site is optional here: without one, diff compares the rulesets
    // alone and never reports flows of a site it was not given.
    let site = if args.site.is_some() || args.example {
        Some(crate::cmd::flows::load_site(
            args.site.as_deref(),
            args.example,
        )?)
    } else {
        None
    };
    let locals = super::verify::local_addrs(&args.local, site.as_ref());
    let site = site.map(|s| s.resolve());
    let r = diff_host(&old, &new, args.hook.into(), site.as_ref(), locals.as_ref());
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
            let refs = |list: &[ringfence_analysis::verify::Region]| {
                list.iter()
                    .flat_map(|e| e.rules.clone())
                    .collect::<Vec<String>>()
            };
            let (old_refs, new_refs) = (refs(&r.newly_blocked), refs(&r.newly_allowed));
            let old_q = RuleQuoter::new(&old, &old_files, old_refs.iter().map(String::as_str));
            let new_q = RuleQuoter::new(&new, &new_files, new_refs.iter().map(String::as_str));
            // Newly allowed regions are named by the new ruleset's accepting
            // rules, newly blocked ones by the old ruleset's.
            for (title, list, lead, q) in [
                ("newly allowed", &r.newly_allowed, "accepted by", &new_q),
                ("newly blocked", &r.newly_blocked, "was accepted by", &old_q),
            ] {
                let _ = writeln!(s, "\n{title} ({}):", list.len());
                for e in list {
                    let _ = writeln!(s, "  {}", e.describe());
                    if e.rules.is_empty() {
                        let _ = writeln!(
                            s,
                            "    {lead} no rule: no base chain on the {} path filters it",
                            r.hook
                        );
                    }
                    write_rules(&mut s, "    ", lead, &e.rules, q);
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
                        "  {}: {} -> {} (replies {} -> {})",
                        f.id,
                        status_str(f.old),
                        status_str(f.new),
                        status_str(f.old_replies),
                        status_str(f.new_replies)
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
