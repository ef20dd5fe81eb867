//! `ringfence deploy manifests`: Kubernetes objects that run the CIS scan on
//! nodes (a Job per node, or a DaemonSet), or `ringfence watch` on every
//! node's firewall (a DaemonSet with the site file in a ConfigMap), printed as
//! YAML for `kubectl apply`.

use crate::cmd::trace::HookArg;
use crate::cmd::watch;
use crate::exit::{emit, CliError, SUCCESS};
use ringfence_fleet::manifest::{
    self, ManifestOptions, WatchExtras, WatchHook, WatchSource, WorkloadKind,
};
use std::path::{Path, PathBuf};

/// Subcommands of `deploy`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print manifests that run `ringfence cis scan` on nodes (Jobs or a
    /// DaemonSet) or `ringfence watch` on every node (a DaemonSet).
    Manifests(ManifestsArgs),
}

/// Which workload runs the scan.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    /// One Job per `--node` (or one Job placed by the scheduler).
    Job,
    /// A DaemonSet: one scan on every node, including nodes that join later.
    Daemonset,
    /// A DaemonSet running `ringfence watch` on every node's own netfilter
    /// rules (host network, CAP_NET_ADMIN only), with --site in a ConfigMap.
    Watch,
}

/// The ruleset source of the watch DaemonSet.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum WatchSourceArg {
    /// nftables: `nft -j list ruleset`, followed with `nft monitor`.
    Nft,
    /// iptables: `iptables-save` and `ip6tables-save`, polled every second.
    Iptables,
}

/// Print manifests that run `ringfence cis scan` on nodes (Jobs or a
/// DaemonSet) or `ringfence watch` on every node (a DaemonSet).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example (one Job per node):\n  ringfence deploy manifests --image REGISTRY/ringfence:TAG --profile tkg-1.5 \\\n    $(kubectl get nodes -o jsonpath='{range .items[*]}--node {.metadata.name} {end}') \\\n    | kubectl apply -f -\nExample (watch every node's nftables rules):\n  ringfence deploy manifests --kind watch --site site.yaml --image REGISTRY/ringfence:TAG | kubectl apply -f -\nSee docs/fleet.md for waiting, collecting the logs and merging them, and docs/watch.md for the watch."
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
    /// Profile of expected failures passed to the scan (for example tkg-1.5;
    /// scan kinds only).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Site file the watch verifies each node's rules against (--kind watch
    /// only; required there). It is checked now and stored in a ConfigMap.
    #[arg(long, value_name = "FILE")]
    pub site: Option<PathBuf>,
    /// Ruleset source of the watch (--kind watch only).
    #[arg(long, value_enum, default_value = "nft")]
    pub watch_source: WatchSourceArg,
    /// The path the site's flows take on each node, named by its filter hook:
    /// forward (routed through the node), input (to the node), output (from
    /// the node). --kind watch only.
    #[arg(long, value_enum, default_value = "forward")]
    pub watch_hook: HookArg,
    /// Passed to the watch as --interval (how often iptables is polled).
    /// --kind watch only.
    #[arg(long, value_name = "DUR", value_parser = |s: &str| watch::parse_duration(s).map(|_| s.to_string()))]
    pub watch_interval: Option<String>,
    /// Passed to the watch as --exec: run inside the watch container for
    /// every change, so CMD must be in the image. --kind watch only.
    #[arg(long, value_name = "CMD", value_parser = |s: &str| watch::split_command(s).map(|_| s.to_string()))]
    pub watch_exec: Option<String>,
    /// Passed to the watch as --webhook (stored in the DaemonSet spec).
    /// --kind watch only.
    #[arg(long, value_name = "URL", value_parser = watch::parse_webhook)]
    pub watch_webhook: Option<String>,
    /// Keep each node's watch history (watch --record) in this absolute
    /// directory on the node (a hostPath, created when missing, mounted
    /// read-write). --kind watch only.
    #[arg(long, value_name = "NODE_DIR")]
    pub watch_record: Option<String>,
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

/// Read the site file and check it the way `watch` will, so a bad site is
/// reported here (located, exit 2) rather than by every pod of the DaemonSet.
fn read_site(path: &Path) -> Result<String, CliError> {
    let name = path.display().to_string();
    let text = ringfence_site::read_text_file(path, &name, "site file")?;
    ringfence_site::parse_site(&text, &name)?;
    Ok(text)
}

fn run_manifests(args: ManifestsArgs) -> Result<u8, CliError> {
    let site = match &args.site {
        Some(p) if matches!(args.kind, Kind::Watch) => Some(read_site(p)?),
        // Refused by validation below, before any file is read.
        Some(_) => Some(String::new()),
        None => None,
    };
    let opts = ManifestOptions {
        kind: match args.kind {
            Kind::Job => WorkloadKind::Job,
            Kind::Daemonset => WorkloadKind::DaemonSet,
            Kind::Watch => WorkloadKind::Watch,
        },
        nodes: args.node,
        namespace: args.namespace,
        image: args.image,
        profile: args.profile,
        include_namespace: !args.no_namespace,
        site,
        watch_source: match args.watch_source {
            WatchSourceArg::Nft => WatchSource::Nft,
            WatchSourceArg::Iptables => WatchSource::Iptables,
        },
        watch_hook: match args.watch_hook {
            HookArg::Forward => WatchHook::Forward,
            HookArg::Input => WatchHook::Input,
            HookArg::Output => WatchHook::Output,
        },
        watch_extras: WatchExtras {
            interval: args.watch_interval,
            exec: args.watch_exec,
            webhook: args.watch_webhook,
            record: args.watch_record,
        },
    };
    let yaml = manifest::render_yaml(&opts).map_err(|e| CliError::Usage(e.to_string()))?;
    emit(args.out.as_deref(), yaml.as_bytes())?;
    Ok(SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_site_file_is_refused_at_its_line_before_any_manifest_is_printed() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("site.yaml");
        std::fs::write(&bad, "name: x\nzones:\n  a: [198.18.0.1]\n").unwrap();
        let Err(CliError::Input(errs)) = read_site(&bad) else {
            panic!("a site without tkg must be refused as bad input");
        };
        let shown = errs.to_string();
        assert!(
            shown.starts_with(&format!("{}:", bad.display())) && shown.contains("tkg"),
            "{shown}"
        );
    }

    #[test]
    fn the_watch_pods_command_is_accepted_by_this_binarys_watch_parser() {
        use crate::cmd::watch::{Source, WatchFormat};
        use clap::Parser;
        for (source, hook, want_source, want_hook) in [
            (
                WatchSource::Nft,
                WatchHook::Forward,
                Source::Nft,
                HookArg::Forward,
            ),
            (
                WatchSource::Iptables,
                WatchHook::Input,
                Source::Iptables,
                HookArg::Input,
            ),
            (
                WatchSource::Nft,
                WatchHook::Output,
                Source::Nft,
                HookArg::Output,
            ),
        ] {
            let argv = manifest::watch_command(source, hook);
            let cli = crate::Cli::try_parse_from(&argv)
                .unwrap_or_else(|e| panic!("{argv:?} does not parse: {e}"));
            let Some(crate::Command::Watch(args)) = cli.command else {
                panic!("{argv:?} is not the watch command");
            };
            assert_eq!(
                args.site.site.as_deref(),
                Some(Path::new("/etc/ringfence/site.yaml"))
            );
            assert_eq!(args.sources, [want_source]);
            assert_eq!(args.hook, want_hook);
            assert_eq!(args.format, WatchFormat::Json);
            assert!(!args.once && args.exec.is_none());
        }
    }

    #[test]
    fn the_watch_pods_extra_flags_are_accepted_by_this_binarys_watch_parser() {
        use clap::Parser;
        let opts = ManifestOptions {
            kind: WorkloadKind::Watch,
            site: Some(String::new()),
            watch_extras: WatchExtras {
                interval: Some("2s".into()),
                exec: Some("logger -t 'ringfence watch'".into()),
                webhook: Some("https://hooks.example.com/x".into()),
                record: Some("/var/lib/ringfence/history".into()),
            },
            ..Default::default()
        };
        let argv = manifest::watch_args(&opts);
        let cli = crate::Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{argv:?} does not parse: {e}"));
        let Some(crate::Command::Watch(args)) = cli.command else {
            panic!("{argv:?} is not the watch command");
        };
        assert_eq!(args.interval, std::time::Duration::from_secs(2));
        assert_eq!(args.exec.as_deref(), Some("logger -t 'ringfence watch'"));
        assert_eq!(args.webhook.as_deref(), Some("https://hooks.example.com/x"));
        assert_eq!(
            args.record.as_deref(),
            Some(Path::new(manifest::WATCH_RECORD_DIR))
        );
    }

    #[test]
    fn a_good_site_file_is_stored_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("site.yaml");
        let text = format!("# kept\n{}", ringfence_site::EXAMPLE_SITE_YAML);
        std::fs::write(&good, &text).unwrap();
        assert_eq!(read_site(&good).unwrap(), text);
    }
}
