//! `ringfence lab`: rehearse a ruleset for a site on the real kernel, in
//! network namespaces (`up`, `run`, `down`; `run --site --ruleset` does all three).

use crate::exit::{emit, CliError, FINDINGS, SUCCESS};
use clap::{Args as ClapArgs, ValueEnum};
use ringfence_diag::InputError;
use ringfence_lab::report::LabReport;
use ringfence_lab::site_lab::{self, Loader, Plan, RulesetFile};
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Ruleset languages `lab` loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabRulesetFormat {
    /// Decide from each file's content: `ipset save` output (`create` lines),
    /// iptables-save text (`*filter` / `-A` lines; IPv6 when its header names
    /// ip6tables or its first address is IPv6), else nft text.
    Auto,
    /// nftables text, loaded with `nft -f`.
    Nft,
    /// iptables-save or ip6tables-save text (the family from the file) and
    /// `ipset save` files.
    Iptables,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabFormat {
    /// Findings and counts (`--verbose`: every probe).
    Text,
    /// The JSON report described in docs/lab.md.
    Json,
    /// JUnit XML, one test case per probe.
    Junit,
}

/// Which lab, and where its state file lives.
#[derive(Debug, ClapArgs)]
pub struct NameArgs {
    /// The lab's name (1-8 characters of a-z, 0-9): namespaces are `rf-<name>-*`.
    #[arg(long, default_value = "lab")]
    pub name: String,
    /// Directory of the state file `lab-<name>.json`.
    #[arg(long, value_name = "DIR", default_value = "/run/ringfence")]
    pub state_dir: PathBuf,
}

/// What to build.
#[derive(Debug, ClapArgs)]
pub struct BuildArgs {
    /// The site file. Required (or --example) with `up`, and with `run`
    /// when it builds the lab itself.
    #[arg(long, value_name = "FILE", conflicts_with = "example")]
    pub site: Option<PathBuf>,
    /// Use the embedded example site (addresses in 198.18.0.0/15).
    #[arg(long)]
    pub example: bool,
    /// A ruleset file to load into the lab router: nft -f text, iptables-save
    /// or ip6tables-save text, or `ipset save` output. Repeat for a ruleset
    /// kept in several files (iptables-save + ip6tables-save + ipset save,
    /// or nft text split over files, read in order); the prediction reads
    /// them back as one ruleset.
    #[arg(long, value_name = "FILE")]
    pub ruleset: Vec<PathBuf>,
    /// The ruleset's language.
    #[arg(long, value_enum, default_value = "auto")]
    pub ruleset_format: LabRulesetFormat,
    /// Move every site network into 198.18.0.0/15 (prefix lengths kept) and
    /// rewrite the ruleset's addresses the same way.
    #[arg(long)]
    pub remap: bool,
}

/// How to probe and report.
#[derive(Debug, ClapArgs)]
pub struct RunOpts {
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: LabFormat,
    /// Write the report here (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Per-probe timeout in milliseconds (below the 1 s SYN retransmit).
    #[arg(long, default_value_t = 400)]
    pub timeout: u64,
    /// Probes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Text report: list every probe, not only findings.
    #[arg(long)]
    pub verbose: bool,
}

/// `ringfence lab` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Build the site in namespaces, load the ruleset, start listeners.
    Up {
        #[command(flatten)]
        build: BuildArgs,
        #[command(flatten)]
        name: NameArgs,
    },
    /// Probe a lab made by `up`; with --site and --ruleset: up, probe, down in one go.
    Run {
        #[command(flatten)]
        build: BuildArgs,
        #[command(flatten)]
        name: NameArgs,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Remove everything a lab made (from its state file, then every `rf-<name>-` namespace).
    Down {
        #[command(flatten)]
        name: NameArgs,
    },
    /// Internal: keep the listeners of a lab made by `up` running.
    #[command(hide = true)]
    Serve {
        #[command(flatten)]
        name: NameArgs,
    },
}

fn lab_err(e: impl std::fmt::Display) -> CliError {
    CliError::Io(format!("lab: {e}"))
}

/// Load, remap and plan; returns the plan and the ruleset files.
fn prepare(b: &BuildArgs, tag: &str) -> Result<(Plan, Vec<RulesetFile>), CliError> {
    let mut site = crate::cmd::flows::load_site(b.site.as_deref(), b.example)?;
    let site_path = b
        .site
        .clone()
        .unwrap_or_else(|| PathBuf::from("examples/site.yaml"));
    if b.ruleset.is_empty() {
        return Err(CliError::Usage(
            "no ruleset given: pass --ruleset FILE, the rules to load into the lab router".into(),
        ));
    }
    let remap = if b.remap {
        let r = ringfence_lab::remap::Remap::new(&site.zones)
            .map_err(|m| InputError::whole(site_path.display().to_string(), m))?;
        Some(r)
    } else {
        if let Err(m) = ringfence_lab::remap::site_is_in_lab_range(&site.zones) {
            return Err(InputError::whole(site_path.display().to_string(), m)
                .with_help("the lab only uses 198.18.0.0/15; --remap moves the site there")
                .into());
        }
        None
    };
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for rs_path in &b.ruleset {
        let name = rs_path.display().to_string();
        let mut text = match ringfence_site::read_text_file(rs_path, &name, "ruleset") {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if let Some(r) = &remap {
            match r.ruleset(&text) {
                Ok(t) => text = t,
                Err(m) => {
                    errors.push(InputError::whole(name, m));
                    continue;
                }
            }
        }
        let detected = Loader::detect(&text);
        let loader = match (b.ruleset_format, detected) {
            (LabRulesetFormat::Auto, l) => l,
            (LabRulesetFormat::Nft, _) => Loader::Nft,
            (LabRulesetFormat::Iptables, l @ (Loader::Ipset | Loader::Ip6tables)) => l,
            (LabRulesetFormat::Iptables, _) => Loader::Iptables,
        };
        files.push(RulesetFile { name, text, loader });
    }
    if !errors.is_empty() {
        return Err(CliError::Input(ringfence_diag::InputErrors(errors)));
    }
    site_lab::check_files(&files).map_err(|m| {
        CliError::Usage(format!(
            "{m}; the lab loads one ruleset: nft files, or iptables-save, ip6tables-save and ipset save files"
        ))
    })?;
    if let Some(r) = &remap {
        site.zones = r.zones(&site.zones);
    }
    let resolved = site.resolve();
    let plan = Plan::new(tag, &site.zones, &resolved).map_err(lab_err)?;
    Ok((plan, files))
}

fn preflight(loaders: &[Loader]) -> Result<(), CliError> {
    let mut tools: Vec<&str> = loaders.iter().flat_map(|l| l.tools()).copied().collect();
    // The lab's own plumbing uses nft whatever the ruleset's language.
    tools.push("nft");
    ringfence_lab::preflight(&tools).map_err(lab_err)
}

fn progress_bar(total: usize) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new(total as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} probes")
                .expect("valid template"),
        );
        pb.set_message("probing");
        pb
    } else {
        indicatif::ProgressBar::hidden()
    }
}

fn report(plan: &Plan, loaders: &[Loader], opts: &RunOpts) -> Result<u8, CliError> {
    let pb = progress_bar(plan.probes.len());
    let results = site_lab::run_probes_loaded(
        plan,
        loaders,
        Duration::from_millis(opts.timeout),
        opts.concurrency,
        &|d, _| pb.set_position(d as u64),
    )
    .map_err(lab_err)?;
    pb.finish_and_clear();
    // "nft", "iptables", or the tools joined: "ipset+iptables+ip6tables".
    let kind_name = loaders
        .iter()
        .map(|l| l.name())
        .collect::<Vec<_>>()
        .join("+");
    let rep = LabReport::new(&plan.tag, &kind_name, results, plan.skipped.clone());
    let text = match opts.format {
        LabFormat::Text => rep.text(opts.verbose),
        LabFormat::Json => rep.json(),
        LabFormat::Junit => rep.junit(),
    };
    emit(opts.out.as_deref(), text.as_bytes())?;
    Ok(if rep.summary.findings > 0 {
        FINDINGS
    } else {
        SUCCESS
    })
}

/// Removes the lab when dropped: on success, error and panic alike.
struct Guard<'a> {
    path: &'a Path,
    tag: &'a str,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Err(e) = site_lab::teardown(self.path, self.tag) {
            eprintln!(
                "ringfence lab: cleanup failed: {e}; run `ringfence lab down --name {}`",
                self.tag
            );
        }
    }
}

/// On Ctrl-C or SIGTERM: remove the lab, then exit 130.
fn teardown_on_signal(path: PathBuf, tag: String) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let signalled = rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                // No handler: the guard still cleans up on a normal exit.
                return false;
            };
            // Whichever comes first.
            std::future::poll_fn(|cx| {
                if int.poll_recv(cx).is_ready() || term.poll_recv(cx).is_ready() {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
            true
        });
        if !signalled {
            return;
        }
        let _ = site_lab::teardown(&path, &tag);
        std::process::exit(130);
    });
}

/// Run the command.
pub fn run(cmd: Command) -> Result<u8, CliError> {
    match cmd {
        Command::Up { build, name } => {
            let (plan, files) = prepare(&build, &name.name)?;
            preflight(&site_lab::loaders_of(&files))?;
            let path = site_lab::build_files(&plan, &files, &name.state_dir).map_err(lab_err)?;
            let guard = Guard {
                path: &path,
                tag: &name.name,
            };
            let exe = std::env::current_exe().map_err(lab_err)?;
            let mut child = std::process::Command::new(exe)
                .args(["lab", "serve", "--name", &name.name, "--state-dir"])
                .arg(&name.state_dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(lab_err)?;
            let mut line = String::new();
            let out = child.stdout.take().expect("piped stdout");
            std::io::BufReader::new(out)
                .read_line(&mut line)
                .map_err(lab_err)?;
            if line.trim() != "ready" {
                let _ = child.kill();
                return Err(lab_err("the listener process did not start"));
            }
            let mut st = site_lab::load_state(&path).map_err(lab_err)?;
            st.pids.push(child.id());
            let bytes = serde_json::to_vec_pretty(&st).map_err(lab_err)?;
            ringfence_diag::write_atomic(&path, &bytes).map_err(lab_err)?;
            std::mem::forget(guard);
            eprintln!(
                "lab {} is up: {} host namespaces, {} probes planned; state in {}\nnext: ringfence lab run --name {n}; then ringfence lab down --name {n}",
                plan.tag,
                plan.hosts.len(),
                plan.probes.len(),
                path.display(),
                n = plan.tag
            );
            Ok(SUCCESS)
        }
        Command::Serve { name } => {
            let path = site_lab::state_path(&name.state_dir, &name.name);
            let st = site_lab::load_state(&path).map_err(lab_err)?;
            let plan = st.plan.ok_or_else(|| lab_err("the lab is not complete"))?;
            let _servers = site_lab::serve(&plan).map_err(lab_err)?;
            println!("ready");
            use std::io::Write;
            std::io::stdout().flush().map_err(lab_err)?;
            loop {
                std::thread::park();
            }
        }
        Command::Run { build, name, opts } => {
            if build.site.is_some() || build.example || !build.ruleset.is_empty() {
                let (plan, files) = prepare(&build, &name.name)?;
                let loaders = site_lab::loaders_of(&files);
                preflight(&loaders)?;
                let path = site_lab::state_path(&name.state_dir, &name.name);
                teardown_on_signal(path.clone(), name.name.clone());
                let _guard = Guard {
                    path: &path,
                    tag: &name.name,
                };
                site_lab::build_files(&plan, &files, &name.state_dir).map_err(lab_err)?;
                let _servers = site_lab::serve(&plan).map_err(lab_err)?;
                report(&plan, &loaders, &opts)
            } else {
                let path = site_lab::state_path(&name.state_dir, &name.name);
                if !path.exists() {
                    return Err(CliError::Usage(format!(
                        "no lab named {} ({} does not exist): run `ringfence lab up` first, or give --site and --ruleset",
                        name.name,
                        path.display()
                    )));
                }
                let st = site_lab::load_state(&path).map_err(lab_err)?;
                let loaders = st.loaders();
                let plan = st.plan.ok_or_else(|| {
                    lab_err("the lab is not complete; run `ringfence lab down` and `up` again")
                })?;
                preflight(&loaders)?;
                report(&plan, &loaders, &opts)
            }
        }
        Command::Down { name } => {
            ringfence_lab::preflight(&[]).map_err(lab_err)?;
            let path = site_lab::state_path(&name.state_dir, &name.name);
            let removed = site_lab::teardown(&path, &name.name).map_err(lab_err)?;
            eprintln!("lab {}: removed {} namespaces", name.name, removed.len());
            Ok(SUCCESS)
        }
    }
}
