//! `ringfence site`: create, check and import site files.

use crate::exit::{emit, CliError, FINDINGS, SUCCESS};
use std::path::PathBuf;

/// What `site import` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ImportFormat {
    /// The site file itself (YAML with comments).
    Yaml,
    /// JSON: `site_yaml` (the site file), `notes`, `warnings` and
    /// `unknown_variables` (docs/site.md).
    Json,
}

/// Create, check and import site files.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a site file from TKG cluster configuration files (the YAML given
    /// to `tanzu management-cluster create --file`). Later files override
    /// earlier ones. Notes (what to fill in), warnings (variables that
    /// disagree, e.g. the API server port) and variables the importer does
    /// not know go to stderr. Exit 1 when there are warnings (the site file
    /// is still written), 2 on bad input.
    Import {
        /// TKG cluster configuration files.
        #[arg(long = "tkg-config", value_name = "FILE", required = true, num_args = 1..)]
        tkg_config: Vec<PathBuf>,
        /// Write the site file here (atomically) instead of stdout.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// Output: the site file (yaml), or JSON holding it with the notes,
        /// warnings and unknown variables (json).
        #[arg(long, value_enum, default_value = "yaml")]
        format: ImportFormat,
    },
    /// Validate a site file and report every problem with its location.
    Check {
        /// The site file.
        file: PathBuf,
    },
    /// Print the embedded example site, a starting point for your own.
    Example,
}

/// Run the command.
pub fn run(cmd: Command) -> Result<u8, CliError> {
    match cmd {
        Command::Import {
            tkg_config,
            out,
            format,
        } => {
            let mut cfg = ringfence_site::import::TkgConfig::default();
            for path in &tkg_config {
                let name = path.display().to_string();
                let text = ringfence_site::read_text_file(path, &name, "TKG cluster config")?;
                cfg.add(&text, &name)?;
            }
            let imported = cfg.to_site()?;
            match format {
                ImportFormat::Yaml => emit(out.as_deref(), imported.yaml.as_bytes())?,
                ImportFormat::Json => {
                    let mut text = serde_json::to_string_pretty(&imported)
                        .map_err(|e| CliError::Io(format!("writing JSON: {e}")))?;
                    text.push('\n');
                    emit(out.as_deref(), text.as_bytes())?;
                }
            }
            for note in &imported.notes {
                eprintln!("note: {note}");
            }
            for v in &imported.unknown_variables {
                eprintln!("note: {}", v.describe());
            }
            for w in &imported.warnings {
                eprintln!("warning: {w}");
            }
            Ok(if imported.warnings.is_empty() {
                SUCCESS
            } else {
                FINDINGS
            })
        }
        Command::Check { file } => {
            let site = ringfence_site::load_site_file(&file)?;
            let resolved = site.resolve();
            let narrowed = resolved
                .flows
                .iter()
                .filter(|f| f.narrowed.is_some())
                .count();
            let mut shaped = String::new();
            if !resolved.disabled.is_empty() || narrowed > 0 {
                shaped = format!(
                    " ({} disabled, {narrowed} narrowed by the site)",
                    resolved.disabled.len()
                );
            }
            eprintln!(
                "{}: ok: site `{}`, {} zones, {} flows apply{shaped}",
                file.display(),
                site.name,
                site.zones.len(),
                resolved.flows.len()
            );
            Ok(SUCCESS)
        }
        Command::Example => {
            emit(None, ringfence_site::EXAMPLE_SITE_YAML.as_bytes())?;
            Ok(SUCCESS)
        }
    }
}
