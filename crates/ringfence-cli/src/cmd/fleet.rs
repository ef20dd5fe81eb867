//! Merge many node results of `ringfence cis scan --format json` into one
//! fleet report (`ringfence cis merge`).

use crate::exit::{emit, CliError};
use ringfence_diag::InputErrors;
use ringfence_fleet::merge::{collect_inputs, merge_files};
use ringfence_fleet::render::{render, FleetFormat};
use std::path::PathBuf;

/// Output format of the fleet report.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum MergeFormat {
    /// Aligned columns.
    Text,
    /// Stable JSON (docs/cis-merge-json.md).
    Json,
    /// Markdown tables.
    Markdown,
    /// One self-contained HTML page.
    Html,
}

/// Combine node results into a fleet view: per check, how many nodes pass,
/// fail as expected or fail unexpectedly; per node, its unexpected failures.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when every node passes or fails only as expected, 1 when a node fails a check unexpectedly or a file was left out (listed at the end), 2 when no input could be merged."
)]
pub struct MergeArgs {
    /// Node result files (JSON from `ringfence cis scan --format json`), or
    /// directories whose *.json files are read.
    #[arg(required = true, value_name = "RESULT.json")]
    pub inputs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: MergeFormat,
    /// Threads reading and parsing files (default: the available cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// Run the merge.
pub fn run_merge(args: MergeArgs) -> Result<u8, CliError> {
    let paths = collect_inputs(&args.inputs)?;
    if paths.is_empty() {
        return Err(CliError::Usage(
            "no node results found: the directories given hold no *.json files".to_string(),
        ));
    }
    let threads = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    });
    let report = merge_files(&paths, threads);
    if report.summary.nodes == 0 {
        // Nothing merged: there is no report to show, only the reasons.
        let errors = report.problems.iter().map(|p| p.to_input_error()).collect();
        return Err(CliError::Input(InputErrors(errors)));
    }
    let format = match args.format {
        MergeFormat::Text => FleetFormat::Text,
        MergeFormat::Json => FleetFormat::Json,
        MergeFormat::Markdown => FleetFormat::Markdown,
        MergeFormat::Html => FleetFormat::Html,
    };
    emit(args.out.as_deref(), render(&report, format).as_bytes())?;
    if !report.problems.is_empty() {
        eprintln!(
            "{} of {} files were left out of the merge:",
            report.problems.len(),
            report.summary.files
        );
        for p in &report.problems {
            eprintln!("error: {}: {}", p.position, p.message);
            if let Some(h) = &p.help {
                eprintln!("  help: {h}");
            }
        }
    }
    Ok(report.exit_code())
}
