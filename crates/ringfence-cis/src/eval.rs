//! Evaluating a benchmark's checks against a discovered node.

use crate::benchmark::{Benchmark, Check, FileSpec, Leaf, Subject, Test};
use crate::compare::{compare, Op};
use crate::component::Component;
use crate::flags;
use crate::node::{Found, Node};
use serde::Serialize;

/// Where an observed value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// `process`, `manifest`, `systemd`, `file` or `config`.
    pub source: String,
    /// The file on the node (or `/proc/PID/cmdline`).
    pub path: String,
}

/// One observation made while evaluating a test leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// What was looked at (`--profiling`, `mode of /etc/...`).
    pub label: String,
    /// The value found; `None` when absent.
    pub value: Option<String>,
    /// Where it was found.
    pub evidence: Option<Evidence>,
    /// Whether the leaf's comparison held.
    pub pass: bool,
    /// Why it failed, when that is more than a differing value.
    pub reason: Option<String>,
    /// The leaf only asked whether a file exists.
    pub existence: bool,
}

/// The outcome of a check's test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the test passed.
    pub pass: bool,
    /// Every leaf observation, in test order.
    pub observations: Vec<Observation>,
    /// A component the test needed was not found on the node.
    pub missing: Option<Component>,
    /// Why the check does not apply to this node, when it does not.
    pub not_applicable: Option<String>,
}

impl Outcome {
    /// The observed value(s) as one string: the value when the test looked
    /// at one subject, `label=value; ...` otherwise.
    pub fn actual(&self) -> Option<String> {
        // An existence test next to a property test of the same file adds
        // nothing to show.
        let any_property = self.observations.iter().any(|o| !o.existence);
        let shown: Vec<&Observation> = self
            .observations
            .iter()
            .filter(|o| !(any_property && o.existence))
            .collect();
        if shown.iter().all(|o| o.value.is_none()) {
            return None;
        }
        let mut labels: Vec<&str> = shown.iter().map(|o| o.label.as_str()).collect();
        labels.dedup();
        if labels.len() <= 1 {
            return shown.first().and_then(|o| o.value.clone());
        }
        let mut seen = Vec::new();
        let mut parts = Vec::new();
        for o in shown {
            if seen.contains(&o.label) {
                continue;
            }
            seen.push(o.label.clone());
            parts.push(format!(
                "{}={}",
                o.label,
                o.value.as_deref().unwrap_or("<unset>")
            ));
        }
        Some(parts.join("; "))
    }

    /// Where the first observed value came from.
    pub fn evidence(&self) -> Option<Evidence> {
        self.observations.iter().find_map(|o| o.evidence.clone())
    }

    /// Why the test failed, from the first failing leaf with a reason.
    pub fn reason(&self) -> Option<String> {
        if self.pass {
            return None;
        }
        self.observations
            .iter()
            .filter(|o| !o.pass)
            .find_map(|o| o.reason.clone())
    }
}

/// Evaluate one check's test on a node.
pub fn evaluate(bench: &Benchmark, node: &Node, check: &Check, test: &Test) -> Outcome {
    let mut ctx = Ctx {
        bench,
        node,
        check,
        observations: Vec::new(),
        missing: None,
        not_applicable: None,
    };
    let pass = ctx.test(test);
    Outcome {
        pass,
        observations: ctx.observations,
        missing: ctx.missing,
        not_applicable: ctx.not_applicable,
    }
}

struct Ctx<'a> {
    bench: &'a Benchmark,
    node: &'a Node,
    check: &'a Check,
    observations: Vec<Observation>,
    missing: Option<Component>,
    not_applicable: Option<String>,
}

impl Ctx<'_> {
    fn test(&mut self, t: &Test) -> bool {
        match t {
            // Evaluate every branch (no short circuit) so the report shows all
            // observations.
            Test::All(ts) => ts.iter().map(|t| self.test(t)).fold(true, |a, b| a & b),
            Test::Any(ts) => ts.iter().map(|t| self.test(t)).fold(false, |a, b| a | b),
            Test::Leaf(l) => self.leaf(l),
        }
    }

    fn record(
        &mut self,
        leaf: &Leaf,
        label: String,
        value: Option<String>,
        evidence: Option<Evidence>,
    ) -> bool {
        let v = compare(leaf.op, value.as_deref(), &leaf.value);
        self.observations.push(Observation {
            label,
            value,
            evidence,
            pass: v.pass,
            reason: v.reason,
            existence: matches!(leaf.subject, Subject::File(_)),
        });
        v.pass
    }

    fn component(&mut self) -> Option<&Found> {
        let c = self.check.component?;
        let found = self.node.components.get(&c);
        if found.is_none() {
            self.missing = Some(c);
        }
        found
    }

    fn leaf(&mut self, leaf: &Leaf) -> bool {
        match &leaf.subject {
            Subject::Flag { name, config } => {
                let Some(found) = self.component().cloned() else {
                    return self.absent_component(leaf, name);
                };
                let (value, evidence) = match found.flag(name) {
                    Some(v) => (Some(v), Some(source_evidence(&found))),
                    None => config_value(&found, config.as_deref()),
                };
                self.record(leaf, name.clone(), value, evidence)
            }
            Subject::FeatureGate { name, config } => {
                let Some(found) = self.component().cloned() else {
                    return self.absent_component(leaf, name);
                };
                let from_flag = found
                    .flag("--feature-gates")
                    .and_then(|g| flags::feature_gate(&g, name));
                let (value, evidence) = match from_flag {
                    Some(v) => (Some(v), Some(source_evidence(&found))),
                    None => config_value(&found, config.as_deref()),
                };
                self.record(leaf, format!("feature gate {name}"), value, evidence)
            }
            Subject::File(file) => {
                let paths = self.locate(file);
                let label = self.about(file);
                let ev = paths.first().map(|p| file_evidence(p));
                self.record(leaf, label, paths.first().cloned(), ev)
            }
            Subject::Mode(file) | Subject::Owner(file) => {
                let is_mode = matches!(leaf.subject, Subject::Mode(_));
                self.file_property(leaf, file, is_mode)
            }
            Subject::Content { file, path } => {
                let paths = self.locate(file);
                let label = format!("{} {path}", self.about(file));
                let Some(p) = paths.first() else {
                    let looked = self.looked_for(file);
                    return self.record_with_reason(
                        leaf,
                        label,
                        None,
                        None,
                        format!("no {} found{looked}", self.about(file)),
                    );
                };
                match self.node.fs.read(p) {
                    Ok(Some(text)) => match serde_saphyr::from_str::<serde_json::Value>(&text) {
                        Ok(doc) => {
                            let values = select(&doc, path);
                            let value = values.join(",");
                            self.record(leaf, label, Some(value), Some(file_evidence(p)))
                        }
                        Err(e) => {
                            let first =
                                e.to_string().lines().next().unwrap_or_default().to_string();
                            self.record_with_reason(
                                leaf,
                                label,
                                None,
                                Some(file_evidence(p)),
                                format!("{p} is not valid YAML: {first}"),
                            )
                        }
                    },
                    Ok(None) => self.record_with_reason(
                        leaf,
                        label,
                        None,
                        None,
                        format!("{p} does not exist"),
                    ),
                    Err(e) => self.record_with_reason(leaf, label, None, None, e.to_string()),
                }
            }
        }
    }

    fn record_with_reason(
        &mut self,
        leaf: &Leaf,
        label: String,
        value: Option<String>,
        evidence: Option<Evidence>,
        reason: String,
    ) -> bool {
        let pass = self.record(leaf, label, value, evidence);
        if !pass {
            if let Some(o) = self.observations.last_mut() {
                o.reason = Some(reason);
            }
        }
        pass
    }

    fn absent_component(&mut self, leaf: &Leaf, name: &str) -> bool {
        let c = self
            .check
            .component
            .map(|c| c.binary())
            .unwrap_or("the component");
        let reason = format!("{c} was not found on this node");
        self.record_with_reason(leaf, name.to_string(), None, None, reason)
    }

    fn about(&self, file: &str) -> String {
        self.bench
            .files
            .get(file)
            .map(|f| f.about.clone())
            .unwrap_or_else(|| file.to_string())
    }

    fn looked_for(&self, file: &str) -> String {
        let Some(spec) = self.bench.files.get(file) else {
            return String::new();
        };
        let mut places = Vec::new();
        if let Some(f) = &spec.flag {
            places.push(format!("{} {}", f.component.binary(), f.name));
        }
        places.extend(spec.candidates.iter().cloned());
        if places.is_empty() {
            String::new()
        } else {
            format!(" (looked at {})", places.join(", "))
        }
    }

    fn file_property(&mut self, leaf: &Leaf, file: &str, is_mode: bool) -> bool {
        let what = if is_mode { "mode" } else { "owner" };
        let paths = self.locate(file);
        let about = self.about(file);
        if paths.is_empty() {
            let looked = self.looked_for(file);
            if self.optional_and_unnamed(file) {
                self.not_applicable = Some(format!(
                    "no {about} on this node{looked}, so the check does not apply"
                ));
            }
            return self.record_with_reason(
                leaf,
                format!("{what} of {about}"),
                None,
                None,
                format!("no {about} found{looked}"),
            );
        }
        let mut values = Vec::new();
        let mut failing = Vec::new();
        let mut first_failing: Option<String> = None;
        let mut first_reason = None;
        for p in &paths {
            let value = match self.node.fs.stat(p) {
                Ok(Some(st)) if is_mode => Some(format!("{:o}", st.mode)),
                Ok(Some(st)) => Some(self.node.accounts.owner(st.uid, st.gid)),
                Ok(None) => None,
                Err(e) => {
                    first_reason.get_or_insert(e.to_string());
                    None
                }
            };
            let v = compare(leaf.op, value.as_deref(), &leaf.value);
            if !v.pass {
                first_failing.get_or_insert_with(|| p.clone());
                failing.push(format!(
                    "{p} is {}",
                    value.as_deref().unwrap_or("unreadable")
                ));
                if let Some(r) = v.reason {
                    first_reason.get_or_insert(format!("{p}: {r}"));
                }
            }
            values.push((p.clone(), value));
        }
        let pass = failing.is_empty();
        let value = if values.len() == 1 {
            values[0].1.clone()
        } else {
            // Several files: report the distinct values, worst first.
            let mut distinct: Vec<String> = values.iter().filter_map(|(_, v)| v.clone()).collect();
            distinct.sort();
            distinct.dedup();
            Some(distinct.join(","))
        };
        let reason = if pass {
            None
        } else if failing.len() == 1 {
            Some(first_reason.unwrap_or_else(|| failing[0].clone()))
        } else {
            Some(format!(
                "{} of {} files fail: {}",
                failing.len(),
                paths.len(),
                failing.join("; ")
            ))
        };
        let label = if paths.len() == 1 {
            format!("{what} of {}", paths[0])
        } else {
            format!("{what} of {about}")
        };
        self.observations.push(Observation {
            label,
            value,
            evidence: Some(file_evidence(first_failing.as_deref().unwrap_or(&paths[0]))),
            pass,
            reason,
            existence: false,
        });
        pass
    }

    /// The file is optional and no flag points at it.
    fn optional_and_unnamed(&self, file: &str) -> bool {
        let Some(spec) = self.bench.files.get(file) else {
            return false;
        };
        let named = spec.flag.as_ref().is_some_and(|f| {
            self.node.components.get(&f.component).is_some_and(|found| {
                found.flag(&f.name).is_some()
                    || config_value(found, f.config.as_deref()).0.is_some()
            })
        });
        spec.optional && !named
    }

    /// The node paths a named file stands for.
    fn locate(&self, file: &str) -> Vec<String> {
        let Some(spec) = self.bench.files.get(file) else {
            return Vec::new();
        };
        locate(self.node, spec)
    }
}

/// The node paths a file spec stands for on a node.
pub fn locate(node: &Node, spec: &FileSpec) -> Vec<String> {
    let from_flag = spec.flag.as_ref().and_then(|f| {
        let found = node.components.get(&f.component)?;
        found
            .flag(&f.name)
            .or_else(|| config_value(found, f.config.as_deref()).0)
    });
    let from_manifest = spec
        .manifest_of
        .and_then(|c| node.manifests.get(&c).cloned());
    let roots: Vec<String> = match from_flag.or(from_manifest) {
        Some(p) => vec![p],
        None => {
            let existing = spec
                .candidates
                .iter()
                .filter(|c| node.fs.exists(c))
                .cloned();
            if spec.all {
                existing.collect()
            } else {
                existing.take(1).collect()
            }
        }
    };
    if !spec.walk {
        return roots.into_iter().filter(|p| node.fs.exists(p)).collect();
    }
    let mut out = Vec::new();
    for dir in roots {
        if spec.walk_self && node.fs.exists(&dir) {
            out.push(dir.clone());
        }
        for p in node.fs.walk(&dir).unwrap_or_default() {
            if !spec.suffix.as_deref().is_none_or(|s| p.ends_with(s)) {
                continue;
            }
            if spec.files_only && matches!(node.fs.stat(&p), Ok(Some(st)) if st.is_dir) {
                continue;
            }
            out.push(p);
        }
    }
    out
}

fn source_evidence(found: &Found) -> Evidence {
    Evidence {
        source: found.source.name().to_string(),
        path: found.path.clone(),
    }
}

fn file_evidence(path: &str) -> Evidence {
    Evidence {
        source: "file".to_string(),
        path: path.to_string(),
    }
}

/// A key of the component's config file, rendered as text.
fn config_value(found: &Found, key: Option<&str>) -> (Option<String>, Option<Evidence>) {
    let (Some(key), Some(cfg)) = (key, &found.config) else {
        return (None, None);
    };
    let mut cur = &cfg.doc;
    for part in key.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return (None, None),
        }
    }
    let ev = Evidence {
        source: "config".to_string(),
        path: cfg.path.clone(),
    };
    match scalar_text(cur) {
        Some(v) => (Some(v), Some(ev)),
        None => (None, None),
    }
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(items) => Some(
            items
                .iter()
                .filter_map(scalar_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
        serde_json::Value::Object(_) => Some(v.to_string()),
    }
}

/// Values at a path in a document: segments separated by `.`; `*` takes
/// every element or member, a number indexes a list, `@keys` takes a map's
/// keys.
pub fn select(doc: &serde_json::Value, path: &str) -> Vec<String> {
    let mut cur: Vec<serde_json::Value> = vec![doc.clone()];
    for seg in path.split('.') {
        let mut next = Vec::new();
        for v in cur {
            match (seg, &v) {
                ("*", serde_json::Value::Array(a)) => next.extend(a.iter().cloned()),
                ("*", serde_json::Value::Object(m)) => next.extend(m.values().cloned()),
                ("@keys", serde_json::Value::Object(m)) => {
                    next.extend(m.keys().map(|k| serde_json::Value::String(k.clone())))
                }
                (s, serde_json::Value::Array(a)) => {
                    if let Some(x) = s.parse::<usize>().ok().and_then(|i| a.get(i)) {
                        next.push(x.clone());
                    }
                }
                (s, serde_json::Value::Object(m)) => {
                    if let Some(x) = m.get(s) {
                        next.push(x.clone());
                    }
                }
                _ => {}
            }
        }
        cur = next;
    }
    cur.iter().filter_map(scalar_text).collect()
}

/// A short description of what a test expects (`--profiling eq false`).
pub fn describe(bench: &Benchmark, t: &Test) -> String {
    match t {
        Test::All(ts) => ts
            .iter()
            .map(|t| describe(bench, t))
            .collect::<Vec<_>>()
            .join(" and "),
        Test::Any(ts) => ts
            .iter()
            .map(|t| describe(bench, t))
            .collect::<Vec<_>>()
            .join(" or "),
        Test::Leaf(l) => {
            let about = |f: &str| {
                bench
                    .files
                    .get(f)
                    .map(|s| s.about.clone())
                    .unwrap_or_else(|| f.to_string())
            };
            let subject = match &l.subject {
                Subject::Flag { name, .. } => name.clone(),
                Subject::FeatureGate { name, .. } => format!("feature gate {name}"),
                Subject::Mode(f) => format!("mode of {}", about(f)),
                Subject::Owner(f) => format!("owner of {}", about(f)),
                Subject::File(f) => about(f),
                Subject::Content { file, path } => format!("{} {path}", about(file)),
            };
            let file = matches!(l.subject, Subject::File(_));
            match l.op {
                Op::Set if file => format!("{subject} exists"),
                Op::Unset if file => format!("{subject} is absent"),
                Op::Set => format!("{subject} is set"),
                Op::Unset => format!("{subject} is not set"),
                op => format!("{subject} {op} {}", l.value),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_walks_lists_maps_indexes_and_keys() {
        let doc: serde_json::Value = serde_json::json!({
            "resources": [
                {"resources": ["secrets"], "providers": [{"aescbc": {}}, {"identity": {}}]},
                {"providers": [{"kms": {"name": "x"}}]}
            ]
        });
        assert_eq!(
            select(&doc, "resources.*.providers.0.@keys"),
            vec!["aescbc", "kms"]
        );
        assert_eq!(
            select(&doc, "resources.*.providers.*.@keys"),
            vec!["aescbc", "identity", "kms"]
        );
        assert_eq!(select(&doc, "resources.0.resources"), vec!["secrets"]);
        assert!(select(&doc, "nothing.here").is_empty());
    }
}
