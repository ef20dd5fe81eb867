//! kube-bench controls files (`DIR/NAME/<target>.yaml`): types and loading.
//!
//! The shapes follow `controls.md`: a controls document has an id, text,
//! `type` (the node type: master, node, etcd, controlplane, policies,
//! managedservices) and groups; a group has checks; a check has `audit`,
//! `audit_config`, `audit_env`, `type` (manual, skip), `tests` with `bin_op`
//! and `test_items`, `remediation`, `scored` and `use_multiple_values`.
//! Scalars are read as their text (`id: 1.10` stays `1.10`, `value: false`
//! is the string `false`), as kube-bench's YAML decoder reads them into
//! strings; unknown keys are ignored, as kube-bench ignores them.
//!
//! kube-bench rejects a file whose YAML does not have these shapes, or whose
//! `type` is not the node type the file was loaded for, and it stops with a
//! panic on a `regex` comparison whose pattern does not compile. We reject
//! all three at load time, with the file, line and column.

use crate::benchmark::{yaml_error, Target};
use ringfence_diag::{InputError, InputErrors};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A comparison: operator name (kept as written; an unknown name fails the
/// test at run time, as in kube-bench) and expected value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Compare {
    /// Operator name (`eq`, `bitmask`, ...).
    pub op: String,
    /// Expected value, as text.
    pub value: String,
}

/// One test item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestItem {
    /// Flag looked up in the audit output.
    pub flag: String,
    /// JSONPath looked up in the audit_config output.
    pub path: String,
    /// Environment variable looked up in the audit_env output.
    pub env: String,
    /// Whether the keyword must be present (default true).
    pub set: bool,
    /// The comparison, when there is one.
    pub compare: Option<Compare>,
}

/// A check's tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tests {
    /// `and` (also when empty), `or`, or anything else (a run-time failure).
    pub bin_op: String,
    /// The items.
    pub items: Vec<TestItem>,
}

/// One kube-bench check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Check id (`1.1.1`).
    pub id: String,
    /// Description.
    pub text: String,
    /// `manual`, `skip` or empty.
    pub kind: String,
    /// Audit command.
    pub audit: String,
    /// Environment audit command (generated when empty and an item has `env`).
    pub audit_env: String,
    /// Config audit command.
    pub audit_config: String,
    /// Tests; `None` when absent.
    pub tests: Option<Tests>,
    /// Remediation text.
    pub remediation: String,
    /// Whether a failure is FAIL (true) or WARN (false).
    pub scored: bool,
    /// Evaluate every output line separately (`use_multiple_values`).
    pub multiple: bool,
    /// Do not generate an environment audit.
    pub disable_env_testing: bool,
    /// Line of the check in its file.
    pub line: usize,
}

/// A group of checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group id (`1.1`).
    pub id: String,
    /// Description.
    pub text: String,
    /// `type: skip` or `skip: true`: every check is reported INFO.
    pub skip: bool,
    /// Checks.
    pub checks: Vec<Check>,
}

/// One controls file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controls {
    /// The file it came from.
    pub file: String,
    /// Controls id (`1`).
    pub id: String,
    /// Benchmark version text (`cis-1.6`).
    pub version: String,
    /// Description.
    pub text: String,
    /// Node type (`master`, `node`, ...).
    pub node_type: Target,
    /// Groups.
    pub groups: Vec<Group>,
}

impl Controls {
    /// Every check with its group.
    pub fn checks(&self) -> impl Iterator<Item = (&Group, &Check)> {
        self.groups
            .iter()
            .flat_map(|g| g.checks.iter().map(move |c| (g, c)))
    }
}

#[derive(Deserialize)]
struct RawControls {
    id: Option<String>,
    version: Option<String>,
    text: Option<String>,
    #[serde(rename = "type")]
    node_type: Option<Spanned<String>>,
    groups: Option<Vec<RawGroup>>,
}

#[derive(Deserialize)]
struct RawGroup {
    id: Option<String>,
    text: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    skip: Option<bool>,
    checks: Option<Vec<Spanned<RawCheck>>>,
}

#[derive(Deserialize)]
struct RawCheck {
    id: Option<String>,
    text: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    audit: Option<String>,
    audit_env: Option<String>,
    audit_config: Option<String>,
    tests: Option<RawTests>,
    remediation: Option<String>,
    scored: Option<bool>,
    use_multiple_values: Option<bool>,
    #[serde(alias = "disableEnvTesting", alias = "disableenvtesting")]
    disable_env_testing: Option<bool>,
}

#[derive(Deserialize)]
struct RawTests {
    bin_op: Option<String>,
    test_items: Option<Vec<RawItem>>,
}

#[derive(Deserialize)]
struct RawItem {
    flag: Option<String>,
    path: Option<String>,
    env: Option<String>,
    set: Option<bool>,
    compare: Option<RawCompare>,
}

#[derive(Deserialize)]
struct RawCompare {
    op: Option<Spanned<String>>,
    value: Option<String>,
}

/// Parse one controls file; `expected` is the node type it is loaded as
/// (the target name), checked against the file's `type` as kube-bench does.
pub fn parse(file: &str, text: &str, expected: Option<Target>) -> Result<Controls, InputErrors> {
    // kube-bench files open with an empty `controls:` key; unknown keys are ignored.
    let raw: RawControls = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e))?;
    let mut errors = Vec::new();
    let node_type = match &raw.node_type {
        None => {
            return Err(InputError::whole(
                file,
                "the controls have no `type`; kube-bench needs one of master, node, etcd, controlplane, policies, managedservices",
            )
            .into())
        }
        Some(t) => {
            let at = (t.referenced.line(), t.referenced.column());
            match Target::parse(t.value.trim()) {
                None => {
                    return Err(InputError::at(
                        file,
                        at.0,
                        at.1,
                        format!("unknown controls type {:?}", t.value),
                    )
                    .with_help("use master, node, etcd, controlplane, policies or managedservices")
                    .into())
                }
                Some(nt) => {
                    if let Some(exp) = expected {
                        if exp != nt {
                            errors.push(
                                InputError::at(
                                    file,
                                    at.0,
                                    at.1,
                                    format!(
                                        "this file is loaded for the {exp} target but says `type: {nt}` (kube-bench stops with \"non-{exp} controls file specified\")"
                                    ),
                                )
                                .with_help(format!("set `type: {exp}` or rename the file to {nt}.yaml")),
                            );
                        }
                    }
                    nt
                }
            }
        }
    };
    let mut groups = Vec::new();
    for g in raw.groups.unwrap_or_default() {
        let mut checks = Vec::new();
        for sc in g.checks.unwrap_or_default() {
            let line = sc.referenced.line() as usize;
            let c = sc.value;
            let tests = c.tests.map(|t| Tests {
                bin_op: t.bin_op.unwrap_or_default().trim().to_string(),
                items: t
                    .test_items
                    .unwrap_or_default()
                    .into_iter()
                    .map(|i| {
                        let compare = i.compare.map(|cmp| {
                            let (op, at) = match cmp.op {
                                Some(op) => (
                                    op.value,
                                    Some((op.referenced.line(), op.referenced.column())),
                                ),
                                None => (String::new(), None),
                            };
                            let value = cmp.value.unwrap_or_default();
                            if op == "regex" {
                                if let Err(e) = regex::Regex::new(&value) {
                                    let (l, col) = at.unwrap_or((line as u64, 1));
                                    errors.push(
                                        InputError::at(
                                            file,
                                            l,
                                            col,
                                            format!("the regex {value:?} does not compile: {e}"),
                                        )
                                        .with_help("kube-bench stops with a panic on this pattern; fix or quote it (single quotes keep backslashes)"),
                                    );
                                }
                            }
                            Compare { op, value }
                        });
                        TestItem {
                            flag: i.flag.unwrap_or_default(),
                            path: i.path.unwrap_or_default(),
                            env: i.env.unwrap_or_default(),
                            set: i.set.unwrap_or(true),
                            compare,
                        }
                    })
                    .collect(),
            });
            checks.push(Check {
                id: c.id.unwrap_or_default(),
                text: c.text.unwrap_or_default(),
                kind: c.kind.unwrap_or_default().trim().to_string(),
                audit: c.audit.unwrap_or_default(),
                audit_env: c.audit_env.unwrap_or_default(),
                audit_config: c.audit_config.unwrap_or_default(),
                tests,
                remediation: c.remediation.unwrap_or_default(),
                scored: c.scored.unwrap_or(false),
                multiple: c.use_multiple_values.unwrap_or(false),
                disable_env_testing: c.disable_env_testing.unwrap_or(false),
                line,
            });
        }
        groups.push(Group {
            id: g.id.unwrap_or_default(),
            text: g.text.unwrap_or_default(),
            skip: g.skip.unwrap_or(false) || g.kind.as_deref().map(str::trim) == Some("skip"),
            checks,
        });
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    Ok(Controls {
        file: file.to_string(),
        id: raw.id.unwrap_or_default(),
        version: raw.version.unwrap_or_default(),
        text: raw.text.unwrap_or_default(),
        node_type,
        groups,
    })
}
