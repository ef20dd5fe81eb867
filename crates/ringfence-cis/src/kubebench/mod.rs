//! Running kube-bench benchmark definitions unchanged.
//!
//! [`Definitions::load`] reads a kube-bench `cfg/` directory: `config.yaml`
//! with the benchmark's own `NAME/config.yaml` merged over it
//! ([`config`]), and the controls files `NAME/*.yaml` ([`controls`]).
//! [`scan`] resolves the `$<component><suffix>` variables on the node,
//! answers each check's audits and judges them with kube-bench's rules
//! ([`eval`]). Audits are answered natively when they are recognized
//! read-only idioms ([`audit::Native`]); any other audit needs the user's
//! explicit permission to run a shell ([`audit::Exec`]), and without it the
//! scan refuses before running anything ([`Refusal`]). Results become the
//! same [`Report`] native benchmarks produce (profiles and waivers apply),
//! and [`output::kube_bench_json`] writes kube-bench's own JSON layout.

pub mod audit;
pub mod config;
pub mod controls;
pub mod eval;
pub mod jsonpath;
pub mod output;

use crate::benchmark::{self, Benchmark, Target};
use crate::eval::Evidence;
use crate::node::Node;
use crate::report::{self, AppliedWaiver, CheckResult, NodeInfo, Report, Status};
use audit::{Exec, Native, ProcTable};
use config::{Config, Probe, Variables};
use controls::{Check, Controls};
use eval::{default_env_audit, run_check, AuditResult, Outcome, State};
use ringfence_diag::{closest, InputError, InputErrors};
use std::path::{Path, PathBuf};

/// A loaded kube-bench benchmark.
#[derive(Debug, Clone)]
pub struct Definitions {
    /// Benchmark folder name (`cis-1.6`).
    pub name: String,
    /// Merged configuration.
    pub config: Config,
    /// Controls files, one per node type, in target order.
    pub controls: Vec<Controls>,
}

fn read(path: &Path) -> Result<String, InputErrors> {
    ringfence_diag::read_input(
        path,
        &path.display().to_string(),
        "kube-bench definitions file",
    )
    .map_err(Into::into)
}

impl Definitions {
    /// Load `DIR/config.yaml`, `DIR/NAME/config.yaml` and `DIR/NAME/*.yaml`.
    pub fn load(dir: &Path, name: &str) -> Result<Definitions, InputErrors> {
        let global = dir.join("config.yaml");
        if !global.is_file() {
            return Err(InputError::whole(
                global.display().to_string(),
                "kube-bench's config.yaml is missing",
            )
            .with_help("--kube-bench-cfg must name kube-bench's cfg directory (the one holding config.yaml and one folder per benchmark)")
            .into());
        }
        let bench_dir = dir.join(name);
        if !bench_dir.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            let mut e = InputError::whole(
                bench_dir.display().to_string(),
                format!("{} has no benchmark folder {name:?}", dir.display()),
            );
            if let Some(c) = closest(name, names.iter().map(String::as_str)) {
                e = e.with_help(format!("did you mean {c}?"));
            }
            return Err(e.into());
        }
        let global_text = read(&global)?;
        let own = bench_dir.join("config.yaml");
        let own_text = if own.is_file() {
            Some(read(&own)?)
        } else {
            None
        };
        let own_label = own.display().to_string();
        let config = Config::load(
            (&global.display().to_string(), &global_text),
            own_text.as_deref().map(|t| (own_label.as_str(), t)),
        )?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(&bench_dir)
            .map_err(|e| {
                InputErrors::from(InputError::whole(
                    bench_dir.display().to_string(),
                    e.to_string(),
                ))
            })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                    && p.file_stem().is_some_and(|s| s != "config")
            })
            .collect();
        files.sort();
        let mut controls = Vec::new();
        let mut errors = Vec::new();
        for f in files {
            let label = f.display().to_string();
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            match controls::parse(&label, &read(&f)?, Target::parse(stem)) {
                Ok(c) => controls.push(c),
                Err(e) => errors.extend(e.0),
            }
        }
        if !errors.is_empty() {
            return Err(InputErrors(errors));
        }
        if controls.is_empty() {
            return Err(InputError::whole(
                bench_dir.display().to_string(),
                "no controls files (*.yaml besides config.yaml)",
            )
            .into());
        }
        controls.sort_by_key(|c| target_order(c.node_type));
        Ok(Definitions {
            name: name.to_string(),
            config,
            controls,
        })
    }

    /// A benchmark skeleton (ids, titles, targets) for renderers, profiles
    /// and waiver files; its checks carry no native tests.
    pub fn skeleton(&self) -> Benchmark {
        Benchmark {
            name: self.name.clone(),
            files: Default::default(),
            sections: self
                .controls
                .iter()
                .map(|c| benchmark::Section {
                    id: c.id.clone(),
                    title: c.text.clone(),
                    target: c.node_type,
                    groups: c
                        .groups
                        .iter()
                        .map(|g| benchmark::Group {
                            id: g.id.clone(),
                            title: g.text.clone(),
                            checks: g
                                .checks
                                .iter()
                                .map(|k| benchmark::Check {
                                    id: k.id.clone(),
                                    title: k.text.clone(),
                                    automated: k.kind != "manual",
                                    scored: k.scored,
                                    target: c.node_type,
                                    component: None,
                                    test: None,
                                    needs: None,
                                    remediation: k.remediation.clone(),
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// The targets kube-bench would run for this benchmark (its
    /// `target_mapping`, else every controls file).
    pub fn mapped_targets(&self) -> Vec<Target> {
        match self.config.targets(&self.name) {
            Some(list) => {
                let mut t: Vec<Target> = list.iter().filter_map(|s| Target::parse(s)).collect();
                t.retain(|x| self.controls.iter().any(|c| c.node_type == *x));
                t.sort_by_key(|x| target_order(*x));
                t
            }
            None => self.controls.iter().map(|c| c.node_type).collect(),
        }
    }
}

fn target_order(t: Target) -> usize {
    [
        Target::Master,
        Target::Etcd,
        Target::Controlplane,
        Target::Node,
        Target::Policies,
        Target::Managedservices,
    ]
    .iter()
    .position(|x| *x == t)
    .unwrap_or(9)
}

/// One check ready to run: variables substituted, environment audit added.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Node type.
    pub target: Target,
    /// Controls id, version and text.
    pub controls: (String, String, String),
    /// Group id and text.
    pub group: (String, String),
    /// Whether the group is skipped.
    pub skip: bool,
    /// The check, substituted.
    pub check: Check,
}

impl Planned {
    /// Whether its audits run at all (manual, skipped and test-less checks
    /// do not run them).
    pub fn runs_audits(&self) -> bool {
        let c = &self.check;
        !(self.skip
            || c.kind == "skip"
            || c.kind == "manual"
            || c.tests.as_ref().is_none_or(|t| t.items.is_empty()))
    }

    /// Its audit commands that are not empty.
    pub fn audits(&self) -> Vec<&str> {
        [
            &self.check.audit_env,
            &self.check.audit,
            &self.check.audit_config,
        ]
        .into_iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect()
    }
}

struct NodeProbe<'a> {
    node: &'a Node,
    procs: &'a ProcTable,
}

impl Probe for NodeProbe<'_> {
    fn running(&self, bin: &str) -> bool {
        self.procs.running(bin)
    }
    fn exists(&self, path: &str) -> bool {
        self.node.fs.exists(path)
    }
}

fn substitute_check(check: &Check, vars: &Variables) -> (Check, Vec<String>) {
    let mut bins = Vec::new();
    let mut sub = |s: &str| {
        let (out, b) = vars.substitute(s);
        for x in b {
            if !bins.contains(&x) {
                bins.push(x);
            }
        }
        out
    };
    let mut c = check.clone();
    c.id = sub(&c.id);
    c.text = sub(&c.text);
    c.audit = sub(&c.audit);
    c.audit_env = sub(&c.audit_env);
    c.audit_config = sub(&c.audit_config);
    c.remediation = sub(&c.remediation);
    if let Some(t) = &mut c.tests {
        for i in &mut t.items {
            i.flag = sub(&i.flag);
            i.path = sub(&i.path);
            i.env = sub(&i.env);
            if let Some(cmp) = &mut i.compare {
                cmp.value = sub(&cmp.value);
            }
        }
    }
    (c, bins)
}

/// Select and prepare the checks of `targets` (all mapped targets when
/// `None`) and `ids` (check, group or section ids; all when `None`).
pub fn plan(
    defs: &Definitions,
    node: &Node,
    procs: &ProcTable,
    targets: &[Target],
    ids: Option<&[String]>,
) -> Vec<Planned> {
    let probe = NodeProbe { node, procs };
    let mut out = Vec::new();
    for controls in &defs.controls {
        if !targets.contains(&controls.node_type) {
            continue;
        }
        let vars = defs.config.variables(controls.node_type.name(), &probe);
        // kube-bench substitutes the whole file at once, so the binary used
        // for a generated environment audit is known only when the file
        // mentions exactly one component binary.
        let mut file_bins: Vec<String> = Vec::new();
        let mut checks = Vec::new();
        for (g, c) in controls.checks() {
            let (sc, bins) = substitute_check(c, &vars);
            for b in bins {
                if !file_bins.contains(&b) {
                    file_bins.push(b);
                }
            }
            checks.push((g, sc));
        }
        for (g, mut c) in checks {
            if let Some(ids) = ids {
                let hit = ids.iter().any(|id| {
                    c.id == *id
                        || g.id == *id
                        || controls.id == *id
                        || c.id.starts_with(&format!("{id}."))
                });
                if !hit {
                    continue;
                }
            }
            let wants_env = c
                .tests
                .as_ref()
                .is_some_and(|t| t.items.iter().any(|i| !i.env.is_empty()));
            if wants_env && !c.disable_env_testing && c.audit_env.is_empty() {
                let bin = if file_bins.len() == 1 {
                    file_bins[0].as_str()
                } else {
                    ""
                };
                c.audit_env = default_env_audit(bin);
            }
            out.push(Planned {
                target: controls.node_type,
                controls: (
                    controls.id.clone(),
                    controls.version.clone(),
                    controls.text.clone(),
                ),
                group: (g.id.clone(), g.text.clone()),
                skip: g.skip,
                check: c,
            });
        }
    }
    out
}

/// The scan would need a shell and the user did not allow one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Check ids and their audits that are not recognized idioms.
    pub needs_shell: Vec<(String, String)>,
}

impl Refusal {
    /// A message that says why and how to allow it.
    pub fn message(&self) -> String {
        let mut s = format!(
            "{} check(s) have audit commands that are not read-only idioms ringfence can answer itself; running them means running shell commands from the benchmark files on this machine, which ringfence does only when you pass --allow-exec:\n",
            self.needs_shell.len()
        );
        for (id, audit) in self.needs_shell.iter().take(10) {
            let one: String = audit.split_whitespace().collect::<Vec<_>>().join(" ");
            let one: String = one.chars().take(100).collect();
            s.push_str(&format!("  {id}: {one}\n"));
        }
        if self.needs_shell.len() > 10 {
            s.push_str(&format!("  ... and {} more\n", self.needs_shell.len() - 10));
        }
        s.push_str("Review the definitions, then rerun with --allow-exec (each audit runs in /bin/sh with a timeout and an output cap), or leave those checks out with --check.");
        s
    }
}

/// How a scan answers audits.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// Recognized idioms natively; refuse when any audit is not one.
    #[default]
    Native,
    /// Every audit through the shell (`--allow-exec`), as kube-bench does.
    Exec(Exec),
    /// Idioms natively, the rest through the shell.
    Mixed(Exec),
}

/// One check's run.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The planned check.
    pub planned: Planned,
    /// Its outcome.
    pub outcome: Outcome,
}

/// A scan's result: kube-bench's view and the common report.
#[derive(Debug, Clone)]
pub struct KubeBenchReport {
    /// Every check run, in order.
    pub ran: Vec<Ran>,
    /// The report in our model.
    pub report: Report,
}

/// The default targets for a node: the benchmark's mapped targets that the
/// node's roles call for (managed-service checks whenever mapped).
pub fn default_targets(defs: &Definitions, node: &Node) -> Vec<Target> {
    let roles = report::targets_for(node);
    defs.mapped_targets()
        .into_iter()
        .filter(|t| roles.contains(t) || *t == Target::Managedservices)
        .collect()
}

/// Scan a node with kube-bench definitions: what to scan and how to judge
/// it as for a native benchmark (`opts`), with audits answered as `mode`
/// says.
pub fn scan(
    defs: &Definitions,
    node: &Node,
    opts: &report::ScanOptions<'_>,
    mode: &Mode,
) -> Result<KubeBenchReport, Refusal> {
    let procs = ProcTable::new(node);
    let targets = opts
        .targets
        .clone()
        .unwrap_or_else(|| default_targets(defs, node));
    let planned = plan(defs, node, &procs, &targets, opts.checks.as_deref());
    if matches!(mode, Mode::Native) {
        let needs: Vec<(String, String)> = planned
            .iter()
            .filter(|p| p.runs_audits())
            .flat_map(|p| {
                p.audits()
                    .into_iter()
                    .filter(|a| !audit::recognized(a))
                    .map(|a| (p.check.id.clone(), a.to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        if !needs.is_empty() {
            return Err(Refusal { needs_shell: needs });
        }
    }
    let native = Native {
        node,
        procs: &procs,
    };
    let mut ran = Vec::new();
    for p in planned {
        let mut answer = |cmd: &str| -> AuditResult {
            match mode {
                Mode::Exec(e) => e.run(cmd),
                Mode::Native => native.answer(cmd).unwrap_or_else(|| AuditResult {
                    output: String::new(),
                    error: Some("not a recognized idiom and --allow-exec not given".into()),
                    how: "refused".into(),
                }),
                Mode::Mixed(e) => native.answer(cmd).unwrap_or_else(|| e.run(cmd)),
            }
        };
        let outcome = run_check(&p.check, p.skip, &mut answer);
        ran.push(Ran {
            planned: p,
            outcome,
        });
    }
    let report = to_report(defs, node, &ran, opts);
    Ok(KubeBenchReport { ran, report })
}

fn to_report(
    defs: &Definitions,
    node: &Node,
    ran: &[Ran],
    opts: &report::ScanOptions<'_>,
) -> Report {
    let mut checks = Vec::new();
    for r in ran {
        let c = &r.planned.check;
        let o = &r.outcome;
        let status = match o.state {
            State::Pass => Status::Pass,
            State::Fail => Status::Fail,
            State::Warn => Status::Warn,
            State::Info => Status::Info,
        };
        let (expected, fixed, entry) = report::profile_marks(opts.profile, &c.id, status);
        let waiver = opts
            .waivers
            .iter()
            .find(|w| w.id == c.id)
            .map(|w| AppliedWaiver {
                reason: w.reason.clone(),
                owner: w.owner.clone(),
                expires: w.expires.to_string(),
                expired: w.expired(opts.today),
            });
        let evidence = (!o.how.is_empty()).then(|| {
            let exec = o.how.iter().any(|h| h.starts_with("exec"));
            // What the tests looked for in the audits' output, and what the
            // judgement saw.
            let subject = c.tests.as_ref().and_then(|t| {
                let names: Vec<&str> = t
                    .items
                    .iter()
                    .map(|i| [&i.flag, &i.path, &i.env])
                    .filter_map(|f| f.into_iter().find(|x| !x.is_empty()))
                    .map(String::as_str)
                    .collect();
                (!names.is_empty()).then(|| names.join(", "))
            });
            Evidence {
                source: if exec { "exec" } else { "native" }.to_string(),
                path: o.how.join("; "),
                subject,
                value: (!o.actual_value.is_empty()).then(|| o.actual_value.clone()),
            }
        });
        checks.push(CheckResult {
            id: c.id.clone(),
            title: c.text.clone(),
            target: r.planned.target,
            status,
            expected,
            fixed,
            waiver,
            actual: (!o.actual_value.is_empty()).then(|| o.actual_value.clone()),
            expected_value: (!o.expected_result.is_empty()).then(|| o.expected_result.clone()),
            evidence,
            remediation: entry
                .filter(|_| expected)
                .map(|x| x.remediation.clone())
                .unwrap_or_else(|| c.remediation.trim().to_string()),
            reason: (!o.reason.is_empty()).then(|| o.reason.clone()),
            explanation: entry.map(|x| x.explanation.clone()),
        });
    }
    let expired = report::expired_waivers(opts.waivers, opts.today);
    let mut summary = report::summarize(&checks);
    summary.expired_waivers = expired.len();
    Report {
        benchmark: defs.name.clone(),
        benchmark_reason: None,
        profile: opts.profile.map(|p| p.name.clone()),
        node: NodeInfo::of(node),
        checks,
        expired_waivers: expired,
        summary,
    }
}
