//! Benchmarks as data: the typed format of `benchmarks/*.yaml`.
//!
//! A benchmark names the files its checks examine (`files`) and lists its
//! checks in sections and groups. Each check has an id, the benchmark's title,
//! whether it is automated and scored, the target it belongs to, an optional
//! test, and a remediation. A test is a tree of `all` / `any` over leaves; a
//! leaf observes one subject (a component flag with an optional config-file
//! key, a feature gate, a file's mode, owner, existence or content) and
//! compares it with [`crate::compare`]. The format is described for users in
//! `docs/cis-json.md`.

use crate::compare::Op;
use crate::component::Component;
use ringfence_diag::{closest, InputError, InputErrors};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The benchmarks built into ringfence: (name, YAML text).
pub const EMBEDDED: [(&str, &str); 2] = [
    ("cis-1.6", include_str!("../../../benchmarks/cis-1.6.yaml")),
    (
        "cis-1.10",
        include_str!("../../../benchmarks/cis-1.10.yaml"),
    ),
];

/// The same benchmarks as JSON, converted from the YAML by `build.rs`
/// (parsing JSON at startup is several times faster than parsing YAML).
const EMBEDDED_JSON: [&str; 2] = [
    include_str!(concat!(env!("OUT_DIR"), "/cis-1.6.json")),
    include_str!(concat!(env!("OUT_DIR"), "/cis-1.10.json")),
];

/// Where a check belongs, as kube-bench groups them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Control-plane components and their files.
    Master,
    /// etcd.
    Etcd,
    /// Control-plane configuration (authentication, logging).
    Controlplane,
    /// Worker node (kubelet, kube-proxy).
    Node,
    /// Cluster policies (RBAC, pod security, network policy).
    Policies,
    /// Managed-service settings (kube-bench's EKS/GKE/AKS definitions only;
    /// not in [`Target::ALL`], which lists the targets of our own benchmarks).
    Managedservices,
}

impl Target {
    /// Every target in benchmark order.
    pub const ALL: [Target; 5] = [
        Target::Master,
        Target::Etcd,
        Target::Controlplane,
        Target::Node,
        Target::Policies,
    ];

    /// The target's name.
    pub fn name(self) -> &'static str {
        match self {
            Target::Master => "master",
            Target::Etcd => "etcd",
            Target::Controlplane => "controlplane",
            Target::Node => "node",
            Target::Policies => "policies",
            Target::Managedservices => "managedservices",
        }
    }

    /// Parse a target name.
    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL
            .into_iter()
            .chain([Target::Managedservices])
            .find(|t| t.name() == s)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A flag (or config key) whose value is a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagRef {
    /// The component whose command line holds the flag.
    pub component: Component,
    /// The flag, with dashes.
    pub name: String,
    /// The key in the component's config file used when the flag is absent.
    #[serde(default)]
    pub config: Option<String>,
}

/// How to find a named file on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// What the file is, in a few words.
    pub about: String,
    /// A flag whose value is the path; it wins over the candidates.
    #[serde(default)]
    pub flag: Option<FlagRef>,
    /// The static pod manifest the component was found in (or that exists
    /// for it), wherever the kubelet's static pod directory is; it wins over
    /// the candidates.
    #[serde(default)]
    pub manifest_of: Option<Component>,
    /// Conventional locations, in order of preference.
    #[serde(default)]
    pub candidates: Vec<String>,
    /// Examine every existing candidate, not only the first.
    #[serde(default)]
    pub all: bool,
    /// The located paths are directories: examine what is below them.
    #[serde(default)]
    pub walk: bool,
    /// With `walk`, examine the directory itself too.
    #[serde(default)]
    pub walk_self: bool,
    /// With `walk`, keep only names ending with this.
    #[serde(default)]
    pub suffix: Option<String>,
    /// With `walk`, examine only what is not a directory: subdirectories are
    /// searched but not judged (a state directory's 755 is not a file
    /// permission finding).
    #[serde(default)]
    pub files_only: bool,
    /// When no flag names the file and no candidate exists, checks of it do
    /// not apply (status info) instead of failing: for example a kubelet run
    /// without a config file has no config file to protect.
    #[serde(default)]
    pub optional: bool,
}

/// What a test leaf observes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A command-line flag of the check's component, falling back to a key of
    /// the component's config file (`--config`); the flag wins.
    Flag {
        /// The flag, with dashes.
        name: String,
        /// Dotted path into the config file.
        config: Option<String>,
    },
    /// One gate of `--feature-gates` (or the config file's `featureGates`).
    FeatureGate {
        /// The gate's name.
        name: String,
        /// Dotted path into the config file.
        config: Option<String>,
    },
    /// The octal permission bits of a named file.
    Mode(String),
    /// The `user:group` owner of a named file.
    Owner(String),
    /// Whether a named file exists (`set`) or not (`unset`).
    File(String),
    /// Values inside a named YAML/JSON file at a path (`a.*.b.0.@keys`).
    Content {
        /// The named file.
        file: String,
        /// The path inside it.
        path: String,
    },
}

/// One comparison of one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// What is observed.
    pub subject: Subject,
    /// How it is compared.
    pub op: Op,
    /// The expected value (empty for `set` / `unset`).
    pub value: String,
}

/// A check's test: leaves combined with `all` (and) / `any` (or).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    /// Every sub-test must pass.
    All(Vec<Test>),
    /// At least one sub-test must pass.
    Any(Vec<Test>),
    /// A single comparison.
    Leaf(Leaf),
}

/// One recommendation of the benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The benchmark's id, such as `1.2.6`.
    pub id: String,
    /// The benchmark's recommendation title.
    pub title: String,
    /// Whether the benchmark calls the check automated.
    pub automated: bool,
    /// Whether a failure counts (unscored failures are warnings).
    pub scored: bool,
    /// The section's target.
    pub target: Target,
    /// The component whose flags the test reads.
    pub component: Option<Component>,
    /// The test; `None` for checks a person must judge.
    pub test: Option<Test>,
    /// Why there is no test, when it needs something a node scan lacks
    /// (`cluster-api`).
    pub needs: Option<String>,
    /// What to do when it fails, in a sentence or two.
    pub remediation: String,
}

/// A group of checks (`1.2 API Server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group id.
    pub id: String,
    /// Group title.
    pub title: String,
    /// The group's checks.
    pub checks: Vec<Check>,
}

/// A section (`1 Master Node Security Configuration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Section id.
    pub id: String,
    /// Section title.
    pub title: String,
    /// The target every check of the section belongs to.
    pub target: Target,
    /// The section's groups.
    pub groups: Vec<Group>,
}

/// A whole benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Benchmark {
    /// Its name, such as `cis-1.6`.
    pub name: String,
    /// Named files the checks examine.
    pub files: BTreeMap<String, FileSpec>,
    /// Sections in order.
    pub sections: Vec<Section>,
}

impl Benchmark {
    /// Load a built-in benchmark by name (parsed once per process).
    pub fn embedded(name: &str) -> Result<Benchmark, InputError> {
        static PARSED: [std::sync::OnceLock<Result<Benchmark, InputError>>; EMBEDDED.len()] =
            [const { std::sync::OnceLock::new() }; EMBEDDED.len()];
        match EMBEDDED.iter().position(|(n, _)| *n == name) {
            Some(i) => PARSED[i]
                .get_or_init(|| {
                    let file = format!("benchmarks/{}.yaml", EMBEDDED[i].0);
                    let raw: RawBenchmark = serde_json::from_str(EMBEDDED_JSON[i])
                        .map_err(|e| InputError::whole(&file, e.to_string()))?;
                    Benchmark::build(&file, raw)
                        .map_err(|e| e.0.into_iter().next().expect("at least one error"))
                })
                .clone(),
            None => {
                let names = EMBEDDED.iter().map(|(n, _)| *n);
                let mut err = InputError::whole(
                    "--benchmark",
                    format!("unknown benchmark {name:?}; ringfence ships cis-1.6 and cis-1.10"),
                );
                if let Some(c) = closest(name, names) {
                    err = err.with_help(format!("did you mean {c}?"));
                }
                Err(err)
            }
        }
    }

    /// Names of the built-in benchmarks.
    pub fn embedded_names() -> Vec<&'static str> {
        EMBEDDED.iter().map(|(n, _)| *n).collect()
    }

    /// Parse and validate benchmark YAML; `file` labels errors.
    pub fn parse(file: &str, text: &str) -> Result<Benchmark, InputErrors> {
        let raw: RawBenchmark = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;
        Benchmark::build(file, raw)
    }

    fn build(file: &str, raw: RawBenchmark) -> Result<Benchmark, InputErrors> {
        let mut errors = Vec::new();
        let mut sections = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for s in raw.sections {
            let mut groups = Vec::new();
            for g in s.groups {
                let mut checks = Vec::new();
                for c in g.checks {
                    if !seen.insert(c.id.clone()) {
                        errors.push(InputError::whole(
                            file,
                            format!("check {} appears twice", c.id),
                        ));
                    }
                    let test = match c.test {
                        None => None,
                        Some(t) => match build_test(&t, &raw.files) {
                            Ok(t) => Some(t),
                            Err(msg) => {
                                errors.push(InputError::whole(
                                    file,
                                    format!("check {}: {msg}", c.id),
                                ));
                                None
                            }
                        },
                    };
                    if test.as_ref().is_some_and(uses_flags) && c.component.is_none() {
                        errors.push(InputError::whole(
                            file,
                            format!(
                                "check {}: its test reads flags but names no component",
                                c.id
                            ),
                        ));
                    }
                    checks.push(Check {
                        id: c.id,
                        title: c.title,
                        automated: c.automated,
                        scored: c.scored,
                        target: s.target,
                        component: c.component,
                        test,
                        needs: c.needs,
                        remediation: c.remediation,
                    });
                }
                groups.push(Group {
                    id: g.id,
                    title: g.title,
                    checks,
                });
            }
            sections.push(Section {
                id: s.id,
                title: s.title,
                target: s.target,
                groups,
            });
        }
        if !errors.is_empty() {
            return Err(InputErrors(errors));
        }
        Ok(Benchmark {
            name: raw.benchmark,
            files: raw.files,
            sections,
        })
    }

    /// Every check in benchmark order.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.sections
            .iter()
            .flat_map(|s| s.groups.iter())
            .flat_map(|g| g.checks.iter())
    }

    /// The check with this id.
    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks().find(|c| c.id == id)
    }

    /// The title of the group or section with this id.
    pub fn heading(&self, id: &str) -> Option<&str> {
        for s in &self.sections {
            if s.id == id {
                return Some(&s.title);
            }
            for g in &s.groups {
                if g.id == id {
                    return Some(&g.title);
                }
            }
        }
        None
    }
}

fn uses_flags(t: &Test) -> bool {
    match t {
        Test::All(v) | Test::Any(v) => v.iter().any(uses_flags),
        Test::Leaf(l) => matches!(
            l.subject,
            Subject::Flag { .. } | Subject::FeatureGate { .. }
        ),
    }
}

/// Turn a serde-saphyr error into an [`InputErrors`] with its position.
pub(crate) fn yaml_error(file: &str, e: &serde_saphyr::Error) -> InputErrors {
    let message = ringfence_diag::yaml_message(&e.without_snippet().to_string());
    let err = match e.location() {
        Some(l) if l.line() > 0 => InputError::at(file, l.line(), l.column().max(1), message),
        _ => InputError::whole(file, message),
    };
    err.into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBenchmark {
    benchmark: String,
    files: BTreeMap<String, FileSpec>,
    sections: Vec<RawSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    id: String,
    title: String,
    target: Target,
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    id: String,
    title: String,
    checks: Vec<RawCheck>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    id: String,
    title: String,
    automated: bool,
    scored: bool,
    #[serde(default)]
    component: Option<Component>,
    #[serde(default)]
    test: Option<RawTest>,
    #[serde(default)]
    needs: Option<String>,
    remediation: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    #[serde(default)]
    all: Option<Vec<RawTest>>,
    #[serde(default)]
    any: Option<Vec<RawTest>>,
    #[serde(default)]
    flag: Option<String>,
    #[serde(default)]
    feature_gate: Option<String>,
    #[serde(default)]
    config: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

fn build_test(t: &RawTest, files: &BTreeMap<String, FileSpec>) -> Result<Test, String> {
    let known_file = |name: &str| -> Result<String, String> {
        if files.contains_key(name) {
            Ok(name.to_string())
        } else {
            let hint = closest(name, files.keys().map(String::as_str))
                .map(|c| format!(" (did you mean {c}?)"))
                .unwrap_or_default();
            Err(format!("unknown file {name:?}{hint}"))
        }
    };
    if let Some(list) = t.all.as_ref().or(t.any.as_ref()) {
        if t.all.is_some() && t.any.is_some() {
            return Err("a test has both `all` and `any`".into());
        }
        if list.is_empty() {
            return Err("`all` / `any` needs at least one test".into());
        }
        let subs = list
            .iter()
            .map(|s| build_test(s, files))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if t.all.is_some() {
            Test::All(subs)
        } else {
            Test::Any(subs)
        });
    }
    let subjects = [
        t.flag.is_some(),
        t.feature_gate.is_some(),
        t.mode.is_some(),
        t.owner.is_some(),
        t.file.is_some(),
        t.content.is_some(),
    ];
    if subjects.iter().filter(|b| **b).count() != 1 {
        return Err(
            "a test leaf needs exactly one of flag, feature_gate, mode, owner, file, content"
                .into(),
        );
    }
    let subject = if let Some(f) = &t.flag {
        Subject::Flag {
            name: f.clone(),
            config: t.config.clone(),
        }
    } else if let Some(g) = &t.feature_gate {
        Subject::FeatureGate {
            name: g.clone(),
            config: t.config.clone(),
        }
    } else if let Some(f) = &t.mode {
        Subject::Mode(known_file(f)?)
    } else if let Some(f) = &t.owner {
        Subject::Owner(known_file(f)?)
    } else if let Some(f) = &t.file {
        Subject::File(known_file(f)?)
    } else {
        let file = known_file(t.content.as_deref().unwrap_or_default())?;
        let path = t.path.clone().ok_or("a content test needs a `path`")?;
        Subject::Content { file, path }
    };
    let op_name = t.op.as_deref().ok_or("a test leaf needs an `op`")?;
    let op = Op::parse(op_name).ok_or_else(|| {
        let hint = closest(op_name, crate::compare::Op::ALL.iter().map(|o| o.name()))
            .map(|c| format!(" (did you mean {c}?)"))
            .unwrap_or_default();
        format!("unknown operator {op_name:?}{hint}")
    })?;
    let value = t.value.clone().unwrap_or_default();
    if op.needs_value() && t.value.is_none() {
        return Err(format!("operator {op} needs a `value`"));
    }
    if matches!(subject, Subject::File(_)) && op.needs_value() {
        return Err("a `file` test only takes set or unset".into());
    }
    if op == Op::Regex {
        regex::Regex::new(&value).map_err(|e| format!("bad regex {value:?}: {e}"))?;
    }
    Ok(Test::Leaf(Leaf { subject, op, value }))
}
