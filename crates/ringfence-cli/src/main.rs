//! `ringfence`: the command-line front end. Each subcommand lives in its own
//! module under `cmd/`, parses its arguments with clap and calls one library
//! crate; this file only dispatches and maps errors to exit codes.

mod cmd;
mod exit;
mod rulesets;
mod sarif;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// Firewall paths and CIS hardening for Tanzu Kubernetes Grid and Cluster API sites.
#[derive(Debug, Parser)]
#[command(name = "ringfence", version, long_about = None)]
#[command(
    after_help = "Start with the embedded example:\n  ringfence report --example --out report.html\n  ringfence flows --example\n  ringfence verify --example --ruleset examples/ruleset.rules\nCommands that work on a site take --site FILE, or --example for the embedded example site."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the flows a site needs, resolved to addresses, protocols and ports.
    Flows(cmd::flows::Args),
    /// Create, check and import site files.
    #[command(subcommand)]
    Site(cmd::site::Command),
    /// Generate firewall rules for a site: nftables, iptables, NSX DFW or Aerleon.
    Generate(cmd::generate::GenerateArgs),
    /// Verify a ruleset against a site: flows, replies, excess, shadowed and redundant rules.
    Verify(cmd::verify::Args),
    /// Trace one packet (or a batch of JSON-lines packets) through a ruleset.
    ///
    /// Exit status: 0 when every packet's fate is decided (accept, drop or
    /// reject on every outcome), 1 when some packet's verdict is `unknown`
    /// or `depends` (a match the model cannot evaluate decides), 2 on bad
    /// input.
    Trace(cmd::trace::Args),
    /// What a ruleset change newly allows and newly blocks.
    Diff(cmd::diff::Args),
    /// Verify a live ruleset (nft, iptables or a file) and report each change of its findings.
    Watch(cmd::watch::Args),
    /// Rehearse a ruleset for a site on the real kernel in network namespaces.
    #[command(subcommand)]
    Lab(cmd::lab::Command),
    /// Probe the site's flows from this machine (TCP connects, DNS/NTP-shaped UDP).
    Probe(cmd::probe::Args),
    /// CIS Kubernetes Benchmark: scan a node, list and explain checks, merge fleet results.
    Cis(cmd::cis::CisArgs),
    /// Generate Kubernetes manifests that run the CIS scan across a fleet.
    #[command(subcommand)]
    Deploy(cmd::deploy::Command),
    /// One self-contained HTML (or Markdown) report: matrix, flows, rules, CIS.
    Report(cmd::report::Args),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => exit::write_stdout(
            concat!(
                "ringfence ",
                env!("CARGO_PKG_VERSION"),
                ": firewall paths and CIS hardening for TKG / Cluster API sites.\n\n",
                "See it at a glance: render the example report and open it in a browser:\n",
                "  ringfence report --example --out report.html\n\n",
                "All commands and options: ringfence --help\n"
            )
            .as_bytes(),
        )
        .map(|()| exit::SUCCESS),
        Some(Command::Flows(args)) => cmd::flows::run(args),
        Some(Command::Site(c)) => cmd::site::run(c),
        Some(Command::Deploy(c)) => cmd::deploy::run(c),
        Some(Command::Completions { shell }) => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "ringfence", &mut std::io::stdout());
            Ok(exit::SUCCESS)
        }
        Some(Command::Cis(args)) => cmd::cis::run(args),
        Some(Command::Man) => {
            let man = clap_mangen::Man::new(Cli::command());
            let mut out = Vec::new();
            man.render(&mut out)
                .map_err(|e| exit::CliError::Io(format!("rendering man page: {e}")))
                .and_then(|()| exit::write_stdout(&out))
                .map(|()| exit::SUCCESS)
        }
        Some(Command::Trace(args)) => cmd::trace::run(args),
        Some(Command::Generate(args)) => cmd::generate::run(args),
        Some(Command::Verify(args)) => cmd::verify::run(args),
        Some(Command::Diff(args)) => cmd::diff::run(args),
        Some(Command::Watch(args)) => cmd::watch::run(args),
        Some(Command::Report(args)) => cmd::report::run(args),
        Some(Command::Lab(c)) => cmd::lab::run(c),
        Some(Command::Probe(args)) => cmd::probe::run(args),
    };
    exit::finish(result)
}
