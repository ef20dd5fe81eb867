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

/// Where a command's site comes from: `--site FILE` or `--example`. There is
/// no default: a command given neither stops with [`NO_SITE`] (exit 2), so
/// the example's flows are never reported as if they were the user's.
#[derive(Debug, Clone, clap::Args)]
pub struct SiteArgs {
    /// The site file (YAML): zones, their networks and TKG settings.
    /// Required unless --example is given.
    #[arg(long, value_name = "FILE", conflicts_with = "example")]
    pub site: Option<PathBuf>,
    /// Use the embedded example site instead of a site file (the one
    /// `ringfence site example` prints, addresses in 198.18.0.0/15).
    #[arg(long)]
    pub example: bool,
}

impl SiteArgs {
    /// Load the site these arguments name.
    pub fn load(&self) -> Result<ringfence_site::Site, CliError> {
        load_site(self.site.as_deref(), self.example)
    }
}

/// What a command that needs a site says when it is given none.
pub const NO_SITE: &str = "no site given: pass --site FILE (your site file; `ringfence site example` prints one to start from), or --example for the embedded example site";

/// List the flows a site needs, resolved to addresses, protocols and ports.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// Load the site file `path`, or with `example` the embedded example site;
/// with neither, the usage error [`NO_SITE`] (exit 2).
pub fn load_site(
    path: Option<&std::path::Path>,
    example: bool,
) -> Result<ringfence_site::Site, CliError> {
    match (path, example) {
        (Some(p), _) => Ok(ringfence_site::load_site_file(p)?),
        (None, true) => Ok(ringfence_site::example_site()),
        (None, false) => Err(CliError::Usage(NO_SITE.into())),
    }
}

/// Run the command.
pub fn run(args: Args) -> Result<u8, CliError> {
    let site = args.site.load()?;
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
