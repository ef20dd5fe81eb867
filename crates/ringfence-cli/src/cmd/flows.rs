//! `ringfence flows`: the flows a site needs, resolved.

use crate::exit::{emit, CliError, SUCCESS};
use ringfence_site::render::{render, FlowFormat};
use std::path::PathBuf;

/// Output format for `flows`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// Markdown table.
    Markdown,
    /// CSV with a header row.
    Csv,
    /// Stable JSON (docs/flows-json.md).
    Json,
    /// Graphviz DOT diagram (`dot -Tsvg`).
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

/// List the flows a site needs, resolved to addresses, protocols and ports.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Site file (YAML). Without it, the embedded example site is used.
    #[arg(long, value_name = "FILE")]
    pub site: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// Load the site named by `--site`, or the embedded example.
pub fn load_site(path: Option<&std::path::Path>) -> Result<ringfence_site::Site, CliError> {
    match path {
        Some(p) => Ok(ringfence_site::load_site_file(p)?),
        None => Ok(ringfence_site::example_site()),
    }
}

/// Run the command.
pub fn run(args: Args) -> Result<u8, CliError> {
    let site = load_site(args.site.as_deref())?;
    let format = match args.format {
        Format::Table => FlowFormat::Table,
        Format::Markdown => FlowFormat::Markdown,
        Format::Csv => FlowFormat::Csv,
        Format::Json => FlowFormat::Json,
        Format::Dot => FlowFormat::Dot,
        Format::Mermaid => FlowFormat::Mermaid,
    };
    let text = render(&site.resolve(), format);
    emit(args.out.as_deref(), text.as_bytes())?;
    Ok(SUCCESS)
}
