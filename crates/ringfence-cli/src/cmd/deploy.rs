//! `ringfence deploy manifests`: Kubernetes objects that run the CIS scan on
//! nodes (a Job per node, or a DaemonSet), printed as YAML for `kubectl apply`.

use crate::exit::{emit, CliError, SUCCESS};
use ringfence_fleet::manifest::{self, ManifestOptions, WorkloadKind};
use std::path::PathBuf;

/// Subcommands of `deploy`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print Job or DaemonSet manifests that run `ringfence cis scan` on nodes.
    Manifests(ManifestsArgs),
}

/// Which workload runs the scan.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    /// One Job per `--node` (or one Job placed by the scheduler).
    Job,
    /// A DaemonSet: one scan on every node, including nodes that join later.
    Daemonset,
}

/// Print Job or DaemonSet manifests that run `ringfence cis scan` on nodes.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example (one Job per node):\n  ringfence deploy manifests --image REGISTRY/ringfence:TAG --profile tkg-1.5 \\\n    $(kubectl get nodes -o jsonpath='{range .items[*]}--node {.metadata.name} {end}') \\\n    | kubectl apply -f -\nSee docs/fleet.md for waiting, collecting the logs and merging them."
)]
pub struct ManifestsArgs {
    /// Workload kind.
    #[arg(long, value_enum, default_value = "job")]
    pub kind: Kind,
    /// Pin a Job to this node (repeat for one Job per node; Jobs only).
    #[arg(long, value_name = "NAME")]
    pub node: Vec<String>,
    /// Namespace of the objects.
    #[arg(long, value_name = "NS", default_value = manifest::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Image holding the ringfence binary (built from the repository's Dockerfile).
    #[arg(long, value_name = "REF", default_value_t = manifest::default_image())]
    pub image: String,
    /// Profile of expected failures passed to the scan (for example tkg-1.5).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Leave out the Namespace object (when the namespace exists and is managed elsewhere).
    #[arg(long)]
    pub no_namespace: bool,
    /// Write to this file (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// Run a `deploy` subcommand.
pub fn run(command: Command) -> Result<u8, CliError> {
    match command {
        Command::Manifests(args) => run_manifests(args),
    }
}

fn run_manifests(args: ManifestsArgs) -> Result<u8, CliError> {
    let opts = ManifestOptions {
        kind: match args.kind {
            Kind::Job => WorkloadKind::Job,
            Kind::Daemonset => WorkloadKind::DaemonSet,
        },
        nodes: args.node,
        namespace: args.namespace,
        image: args.image,
        profile: args.profile,
        include_namespace: !args.no_namespace,
    };
    let yaml = manifest::render_yaml(&opts).map_err(|e| CliError::Usage(e.to_string()))?;
    emit(args.out.as_deref(), yaml.as_bytes())?;
    Ok(SUCCESS)
}
