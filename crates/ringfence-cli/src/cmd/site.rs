//! `ringfence site`: create, check and import site files.

use crate::exit::{emit, CliError, SUCCESS};
use std::path::PathBuf;

/// Create, check and import site files.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Write a site file from TKG cluster configuration files (the YAML given
    /// to `tanzu management-cluster create --file`). Later files override earlier ones.
    Import {
        /// TKG cluster configuration files.
        #[arg(long = "tkg-config", value_name = "FILE", required = true, num_args = 1..)]
        tkg_config: Vec<PathBuf>,
        /// Write the site file here (atomically) instead of stdout.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
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
        Command::Import { tkg_config, out } => {
            let mut cfg = ringfence_site::import::TkgConfig::default();
            for path in &tkg_config {
                let name = path.display().to_string();
                let text = ringfence_site::read_text_file(path, &name, "TKG cluster config")?;
                cfg.add(&text, &name)?;
            }
            let imported = cfg.to_site()?;
            emit(out.as_deref(), imported.yaml.as_bytes())?;
            for note in &imported.notes {
                eprintln!("note: {note}");
            }
            Ok(SUCCESS)
        }
        Command::Check { file } => {
            let site = ringfence_site::load_site_file(&file)?;
            let resolved = site.resolve();
            eprintln!(
                "{}: ok: site `{}`, {} zones, {} flows apply",
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
