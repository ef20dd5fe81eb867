//! `ringfence cis`: scan a node against the CIS Kubernetes Benchmark.

use crate::exit::{emit, CliError, FINDINGS, SUCCESS};
use clap::{Args, Subcommand, ValueEnum};
use ringfence_cis::benchmark::{Benchmark, Target};
use ringfence_cis::node::{discover, DiscoverOptions};
use ringfence_cis::profile::{parse_waivers, Date, Profile};
use ringfence_cis::report::{scan, ScanOptions};
use ringfence_cis::{render, select, versions};
use ringfence_diag::{closest, InputError};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Arguments of `ringfence cis`.
#[derive(Debug, Args)]
pub struct CisArgs {
    #[command(subcommand)]
    command: CisCommand,
}

#[derive(Debug, Subcommand)]
enum CisCommand {
    /// Scan this host, or a mounted node filesystem with --root, without running any command.
    Scan(Box<ScanArgs>),
    /// List the checks of a benchmark.
    List {
        /// Built-in benchmark to list, such as cis-1.6 or cis-1.12 (required: without a node
        /// there is no Kubernetes version to pick one by; leaving it out names them all).
        #[arg(long, value_name = "NAME")]
        benchmark: Option<String>,
    },
    /// Show what a check examines, what it wants and how to fix it.
    Explain {
        /// Check id, such as 1.2.6.
        id: String,
        /// Built-in benchmark the id belongs to (required: the same id names different checks in
        /// different benchmarks, and without a node there is no Kubernetes version to pick by).
        #[arg(long, value_name = "NAME")]
        benchmark: Option<String>,
    },
    /// Merge node results (`cis scan --format json`) into one fleet view.
    Merge(crate::cmd::fleet::MergeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Junit,
    Sarif,
    Markdown,
    /// kube-bench's own JSON layout (only with --kube-bench-cfg).
    KubeBenchJson,
}

/// Results that fail the run (exit 1) besides unexpected failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FailOn {
    /// A check whose evidence was absent or unreadable.
    NotAssessed,
    /// A warning (a manual or unscored check that did not pass).
    Warn,
    /// A passing check the profile still lists as an expected failure.
    Fixed,
}

#[derive(Debug, Args)]
struct ScanArgs {
    /// A node's root filesystem (a mounted disk or image, /host in a pod); default: this host.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Scan the built-in example node (a TKG v1.5.1 control plane, written to a temporary
    /// directory and removed afterwards) to see what a report looks like.
    #[arg(long, conflicts_with_all = ["root", "proc", "kube_bench_cfg", "allow_exec"])]
    example: bool,
    /// auto: the benchmark kube-bench's version mapping gives for the node's Kubernetes
    /// version (or the profile's benchmark), said in the output; or a built-in one: cis-1.6,
    /// cis-1.20, cis-1.23, cis-1.24, cis-1.7, cis-1.8, cis-1.9, cis-1.10, cis-1.11, cis-1.12.
    #[arg(long, default_value = "auto")]
    benchmark: String,
    /// Comma-separated targets: master, etcd, controlplane, node, policies (default: from the node's roles).
    #[arg(long, value_delimiter = ',')]
    targets: Option<Vec<String>>,
    /// Expected-failure profile: tkg-1.5 or a profile file.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Waiver file (id, reason, owner, expires).
    #[arg(long, value_name = "FILE")]
    waivers: Option<PathBuf>,
    /// Only these checks (comma-separated: check ids, group or section ids such as 1.2 for
    /// all their checks, ranges such as 4.2.1-4.2.6).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    check: Option<Vec<String>>,
    /// Leave out these checks (same forms as --check).
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    skip: Option<Vec<String>>,
    /// Kubernetes version, when it cannot be read from the node.
    #[arg(long, value_name = "V")]
    k8s_version: Option<String>,
    /// Read processes from this directory (for example /proc in a pod with hostPID and the
    /// node mounted at --root), for our benchmarks and kube-bench definitions alike; default:
    /// /proc for a live scan, ROOT/proc when it holds one. Reads stay inside it.
    #[arg(long, value_name = "DIR")]
    proc: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also exit 1 on these results (comma-separated): not-assessed for strict pipelines, warn, fixed (stale profile entries).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WHAT")]
    fail_on: Vec<FailOn>,
    /// Write the report here (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// Judge waiver expiry as of this date (YYYY-MM-DD) instead of today.
    #[arg(long, value_name = "DATE", hide = true)]
    today: Option<String>,
    /// Run kube-bench benchmark definitions from this cfg directory (holding config.yaml and one folder per benchmark) instead of ours.
    #[arg(long, value_name = "DIR")]
    kube_bench_cfg: Option<PathBuf>,
    /// Allow kube-bench audits that are not recognized read-only idioms to run as shell commands (/bin/sh, with a timeout and an output cap; inside chroot --root when given).
    #[arg(long)]
    allow_exec: bool,
    /// With --allow-exec: run every audit through the shell, as kube-bench does, instead of answering the read-only idioms natively.
    #[arg(long, requires = "allow_exec")]
    exec_all: bool,
    /// With --allow-exec: seconds an audit may run before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    exec_timeout: u64,
}

/// Run `ringfence cis`.
pub fn run(args: CisArgs) -> Result<u8, CliError> {
    match args.command {
        CisCommand::Scan(a) => run_scan(*a),
        CisCommand::List { benchmark } => list(&named_benchmark("list", benchmark)?),
        CisCommand::Explain { id, benchmark } => {
            explain(&id, &named_benchmark("explain", benchmark)?)
        }
        CisCommand::Merge(a) => crate::cmd::fleet::run_merge(a),
    }
}

fn load_profile(spec: &str) -> Result<Profile, CliError> {
    if let Some((file, text)) = Profile::embedded(spec) {
        return Ok(Profile::parse(&file, text)?);
    }
    let path = PathBuf::from(spec);
    if !path.exists() {
        let mut e = InputError::whole(
            "--profile",
            format!("{spec:?} is neither a built-in profile (tkg-1.5) nor an existing file"),
        );
        if let Some(c) = closest(spec, ["tkg-1.5"]) {
            e = e.with_help(format!("did you mean {c}?"));
        }
        return Err(e.into());
    }
    let text = ringfence_diag::read_input(&path, spec, "profile")?;
    Ok(Profile::parse(spec, &text)?)
}

/// The scanner never writes under the node it scans: refuse `--out` there.
fn refuse_out_under_root(out: &std::path::Path, root: &std::path::Path) -> Result<(), CliError> {
    let root = std::fs::canonicalize(root)
        .map_err(|e| CliError::Io(format!("reading {}: {e}", root.display())))?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if let Ok(parent) = std::fs::canonicalize(parent) {
        if parent.starts_with(&root) {
            return Err(CliError::Usage(format!(
                "--out {} is inside the scanned root {}; a scan never writes to the node it reads, so write the report elsewhere",
                out.display(),
                root.display()
            )));
        }
    }
    Ok(())
}

/// The example node's directory, removed when the scan is done.
struct ExampleRoot(PathBuf);

impl ExampleRoot {
    fn create() -> Result<Self, CliError> {
        let dir = std::env::temp_dir().join(format!("ringfence-example-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = ExampleRoot(dir);
        ringfence_cis::testkit::example_control_plane(&root.0).map_err(|e| {
            CliError::Io(format!(
                "writing the example node under {}: {e}",
                root.0.display()
            ))
        })?;
        Ok(root)
    }
}

impl Drop for ExampleRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How reports name the example node's root.
const EXAMPLE_ROOT: &str = "(example: TKG v1.5.1 control plane)";

fn run_scan(mut a: ScanArgs) -> Result<u8, CliError> {
    let example = if a.example {
        let e = ExampleRoot::create()?;
        a.root = Some(e.0.clone());
        Some(e)
    } else {
        None
    };
    if let (Some(out), Some(root)) = (&a.out, &a.root) {
        refuse_out_under_root(out, root)?;
    }
    let profile = a.profile.as_deref().map(load_profile).transpose()?;
    let targets = match &a.targets {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for t in list {
                let Some(target) = Target::parse(t.trim()) else {
                    let mut e = InputError::whole(
                        "--targets",
                        format!("unknown target {t:?}; use master, etcd, controlplane, node or policies"),
                    );
                    if let Some(c) = closest(t, Target::ALL.iter().map(|t| t.name())) {
                        e = e.with_help(format!("did you mean {c}?"));
                    }
                    return Err(e.into());
                };
                out.push(target);
            }
            Some(out)
        }
    };
    let today = match &a.today {
        None => Date::today(),
        Some(s) => Date::parse(s).ok_or_else(|| {
            InputError::whole("--today", format!("{s:?} is not a YYYY-MM-DD date"))
        })?,
    };
    if let Some(v) = &a.k8s_version {
        if versions::minor(v).is_none() {
            return Err(InputError::whole(
                "--k8s-version",
                format!("{v:?} is not a Kubernetes version"),
            )
            .with_help("write it as 1.22 or v1.22.5")
            .into());
        }
    }
    if a.kube_bench_cfg.is_none() {
        if a.allow_exec {
            return Err(CliError::Usage(
                "--allow-exec applies only to kube-bench definitions (--kube-bench-cfg DIR); ringfence's own benchmarks never run a command".into(),
            ));
        }
        if a.format == Format::KubeBenchJson {
            return Err(CliError::Usage(
                "--format kube-bench-json needs --kube-bench-cfg DIR; use --format json for ringfence's own benchmarks".into(),
            ));
        }
    }
    let node = discover(&DiscoverOptions {
        root: a.root.clone(),
        proc_dir: a.proc.clone(),
        kubernetes_version: a.k8s_version.clone(),
        only_pids: None,
    })?;
    if node.components.is_empty() {
        let place = a
            .root
            .as_ref()
            .map(|r| r.display().to_string())
            .unwrap_or_else(|| "this host".to_string());
        return Err(InputError::whole(
            a.root.as_ref().map(|r| r.display().to_string()).unwrap_or_else(|| "/".into()),
            format!("no Kubernetes component found on {place} (looked at processes, etc/kubernetes/manifests and the kubelet's systemd unit)"),
        )
        .with_help("point --root at a node's root filesystem")
        .into());
    }
    if let Some(cfg) = a.kube_bench_cfg.clone() {
        return run_kube_bench(&a, &cfg, profile.as_ref(), targets, today, &node);
    }
    let (bench_name, reason) = match (a.benchmark.as_str(), &profile) {
        ("auto", Some(p)) => (p.benchmark.clone(), None),
        ("auto", None) => {
            let choice = versions::choose(
                node.kubernetes_version.as_deref(),
                node.kubernetes_version_source.as_deref(),
            )
            .map_err(|e| InputError::whole("--benchmark auto", e.message).with_help(e.help))?;
            (choice.benchmark, Some(choice.reason))
        }
        (name, Some(p)) if name != p.benchmark => {
            return Err(CliError::Usage(format!(
                "profile {} pins {}, but --benchmark asks for {name}",
                p.name, p.benchmark
            )))
        }
        (name, _) => (name.to_string(), None),
    };
    let bench = Benchmark::embedded(&bench_name)?;
    let waivers = match &a.waivers {
        None => Vec::new(),
        Some(path) => {
            let text =
                ringfence_diag::read_input(path, &path.display().to_string(), "waiver file")?;
            parse_waivers(&path.display().to_string(), &text, &bench)?
        }
    };
    let ids: Vec<&str> = bench.checks().map(|c| c.id.as_str()).collect();
    let selection = select::resolve(
        &bench_name,
        &ids,
        &|h| bench.heading(h).is_some(),
        a.check.as_deref(),
        a.skip.as_deref(),
    )?;
    for note in &node.notes {
        eprintln!("note: {note}");
    }
    let mut report = scan(
        &bench,
        &node,
        &ScanOptions {
            targets,
            checks: selection,
            profile: profile.as_ref(),
            waivers: &waivers,
            today,
        },
    );
    report.benchmark_reason = reason;
    if example.is_some() {
        report.node.root = Some(EXAMPLE_ROOT.to_string());
        if profile.is_none() {
            eprintln!("note: this is the built-in example node; --profile tkg-1.5 scans it with cis-1.6 and marks the seven failures TKG documents as expected");
        }
    }
    let colour = a.out.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let bytes = match a.format {
        Format::Text => render::text(&report, &bench, colour),
        Format::Json => render::json(&report),
        Format::Junit => render::junit(&report),
        Format::Sarif => render::sarif(&report),
        Format::Markdown => render::markdown(&report, &bench),
        Format::KubeBenchJson => unreachable!("rejected above without --kube-bench-cfg"),
    };
    emit(a.out.as_deref(), bytes.as_bytes())?;
    Ok(exit_code(&report, &a.fail_on))
}

fn run_kube_bench(
    a: &ScanArgs,
    cfg: &std::path::Path,
    profile: Option<&Profile>,
    targets: Option<Vec<Target>>,
    today: Date,
    node: &ringfence_cis::node::Node,
) -> Result<u8, CliError> {
    use ringfence_cis::kubebench::{self, audit::Exec, Definitions, Mode};
    let mut reason = None;
    let name = match (a.benchmark.as_str(), profile) {
        ("auto", Some(p)) => p.benchmark.clone(),
        ("auto", None) => {
            // Pick as kube-bench does, from its version_mapping.
            let global = cfg.join("config.yaml");
            let text = ringfence_diag::read_input(
                &global,
                &global.display().to_string(),
                "kube-bench config",
            )?;
            let conf =
                kubebench::config::Config::load((&global.display().to_string(), &text), None)?;
            let version = node.kubernetes_version.clone().ok_or_else(|| {
                CliError::Usage(
                    "cannot tell the Kubernetes version of this node; pass --benchmark NAME (a folder of --kube-bench-cfg) or --k8s-version".into(),
                )
            })?;
            let mapped = conf.benchmark_for_version(&version).ok_or_else(|| {
                CliError::Usage(format!(
                    "kube-bench's version_mapping has no benchmark for Kubernetes {version}; pass --benchmark NAME"
                ))
            })?;
            let from = node
                .kubernetes_version_source
                .as_ref()
                .map(|s| format!(" from {s}"))
                .unwrap_or_default();
            let minor = versions::minor(&version)
                .map(|m| format!("1.{m}"))
                .unwrap_or_else(|| version.clone());
            reason = Some(format!(
                "Kubernetes v{}{from}; {} maps {minor} to {mapped}",
                version.trim_start_matches('v'),
                global.display()
            ));
            mapped
        }
        (n, Some(p)) if n != p.benchmark => {
            return Err(CliError::Usage(format!(
                "profile {} pins {}, but --benchmark asks for {n}",
                p.name, p.benchmark
            )))
        }
        (n, _) => n.to_string(),
    };
    let defs = Definitions::load(cfg, &name)?;
    let skeleton = defs.skeleton();
    let waivers = match &a.waivers {
        None => Vec::new(),
        Some(path) => {
            let text =
                ringfence_diag::read_input(path, &path.display().to_string(), "waiver file")?;
            parse_waivers(&path.display().to_string(), &text, &skeleton)?
        }
    };
    let ids: Vec<&str> = skeleton.checks().map(|c| c.id.as_str()).collect();
    let selection = select::resolve(
        &name,
        &ids,
        &|h| skeleton.heading(h).is_some(),
        a.check.as_deref(),
        a.skip.as_deref(),
    )?;
    let exec = Exec {
        timeout: std::time::Duration::from_secs(a.exec_timeout.max(1)),
        root: a.root.clone(),
        ..Exec::default()
    };
    if a.allow_exec {
        if let Some(r) = &a.root {
            if !r.join("bin/sh").exists() {
                return Err(CliError::Usage(format!(
                    "--allow-exec with --root runs audits inside chroot {}, which has no /bin/sh; scan without --allow-exec, or mount a node root that has its shell",
                    r.display()
                )));
            }
        }
    }
    let mode = match (a.allow_exec, a.exec_all) {
        (false, _) => Mode::Native,
        (true, false) => Mode::Mixed(exec),
        (true, true) => Mode::Exec(exec),
    };
    for note in &node.notes {
        eprintln!("note: {note}");
    }
    let mut result = kubebench::scan(
        &defs,
        node,
        &ringfence_cis::report::ScanOptions {
            targets,
            checks: selection,
            profile,
            waivers: &waivers,
            today,
        },
        &mode,
    )
    .map_err(|r| CliError::Usage(r.message()))?;
    result.report.benchmark_reason = reason;
    let report = &result.report;
    let colour = a.out.is_none()
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none();
    let bytes = match a.format {
        Format::Text => render::text(report, &skeleton, colour),
        Format::Json => render::json(report),
        Format::Junit => render::junit(report),
        Format::Sarif => render::sarif(report),
        Format::Markdown => render::markdown(report, &skeleton),
        Format::KubeBenchJson => kubebench::output::kube_bench_json(&result),
    };
    emit(a.out.as_deref(), bytes.as_bytes())?;
    Ok(exit_code(report, &a.fail_on))
}

/// 1 when the report has an unexpected failure, an expired waiver (named
/// with its owner on stderr), or a result `--fail-on` names; 0 otherwise.
fn exit_code(report: &ringfence_cis::report::Report, fail_on: &[FailOn]) -> u8 {
    for w in &report.expired_waivers {
        eprintln!("error: {}", w.describe());
    }
    let s = &report.summary;
    let strict = fail_on.iter().any(|f| match f {
        FailOn::NotAssessed => s.not_assessed > 0,
        FailOn::Warn => s.warn > 0,
        FailOn::Fixed => s.fixed > 0,
    });
    if report.failed() || strict {
        FINDINGS
    } else {
        SUCCESS
    }
}

/// The benchmark `cis list` and `cis explain` read: they have no node whose
/// Kubernetes version could pick one (as `cis scan --benchmark auto` does), and
/// a check id means different checks in different benchmarks, so the user
/// names it; without `--benchmark` this is bad input naming the built-in ones.
fn named_benchmark(sub: &str, benchmark: Option<String>) -> Result<String, CliError> {
    benchmark.ok_or_else(|| {
        let names = Benchmark::embedded_names();
        let mut e = InputError::whole(
            "--benchmark",
            format!(
                "cis {sub} needs --benchmark NAME (there is no node to pick one by its Kubernetes version); built in: {}",
                names.join(", ")
            ),
        );
        // The newest: the built-in benchmark kube-bench maps the highest
        // Kubernetes minor to (names do not sort by age: cis-1.24 < cis-1.7).
        if let Some((minor, newest)) = versions::kube_bench_mapping()
            .into_iter()
            .rev()
            .find(|(_, b)| names.contains(&b.as_str()))
        {
            e = e.with_help(format!(
                "pass the benchmark your nodes are scanned with, e.g. --benchmark {newest} (the newest, for Kubernetes 1.{minor})"
            ));
        }
        e.into()
    })
}

fn list(name: &str) -> Result<u8, CliError> {
    let bench = Benchmark::embedded(name)?;
    let mut out = String::new();
    for s in &bench.sections {
        out.push_str(&format!("{} {} [{}]\n", s.id, s.title, s.target));
        for g in &s.groups {
            out.push_str(&format!("  {} {}\n", g.id, g.title));
            for c in &g.checks {
                let kind = match (c.automated, c.scored) {
                    (true, true) => "automated, scored",
                    (true, false) => "automated, unscored",
                    (false, true) => "manual, scored",
                    (false, false) => "manual, unscored",
                };
                out.push_str(&format!("    {:<8} {} ({kind})\n", c.id, c.title));
            }
        }
    }
    emit(None, out.as_bytes())?;
    Ok(SUCCESS)
}

fn explain(id: &str, name: &str) -> Result<u8, CliError> {
    let bench = Benchmark::embedded(name)?;
    let Some(check) = bench.check(id) else {
        let mut e = InputError::whole("ID", format!("{name} has no check {id:?}"));
        if let Some(c) = closest(id, bench.checks().map(|c| c.id.as_str())) {
            e = e.with_help(format!("did you mean {c}?"));
        }
        return Err(e.into());
    };
    let mut out = format!("{} {}\n", check.id, check.title);
    out.push_str(&format!(
        "benchmark: {}   target: {}   {}, {}\n",
        bench.name,
        check.target,
        if check.automated {
            "automated"
        } else {
            "manual"
        },
        if check.scored { "scored" } else { "unscored" }
    ));
    if let Some(c) = check.component {
        out.push_str(&format!("component: {c}\n"));
    }
    match &check.test {
        Some(t) => out.push_str(&format!(
            "passes when: {}\n",
            ringfence_cis::eval::describe(&bench, t)
        )),
        None if check.needs.as_deref() == Some("cluster-api") => out
            .push_str("needs the Kubernetes API: a node scan reports it as a warning to review\n"),
        None => out.push_str("manual: a node scan reports it as a warning to review\n"),
    }
    out.push_str(&format!("remediation: {}\n", check.remediation));
    for (pname, text) in ringfence_cis::profile::EMBEDDED {
        let file = format!("profiles/{pname}.yaml");
        if let Ok(p) = Profile::parse(&file, text) {
            if p.benchmark == bench.name {
                if let Some(x) = p.expected(id) {
                    out.push_str(&format!(
                        "expected failure in {pname}: {}\n  remediation: {}\n",
                        x.explanation, x.remediation
                    ));
                }
            }
        }
    }
    emit(None, out.as_bytes())?;
    Ok(SUCCESS)
}
