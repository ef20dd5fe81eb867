//! Evaluating a benchmark's checks against a discovered node.

use crate::benchmark::{Benchmark, Check, FileSpec, Leaf, Subject, Test};
use crate::compare::{compare, Op};
use crate::component::Component;
use crate::flags;
use crate::node::{Found, Node};
use serde::Serialize;

/// Where an observed value came from, and what was seen there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// `process`, `manifest`, `systemd`, `file` or `config` (`native` or
    /// `exec` for kube-bench definitions).
    pub source: String,
    /// The file on the node (or `/proc/PID/cmdline`).
    pub path: String,
    /// What was looked at there: a flag (`--profiling`), a config key
    /// (`protectKernelDefaults`), `mode`, `owner`, `exists` or a path in a
    /// document; `null` when the source says it all.
    pub subject: Option<String>,
    /// The value seen; `null` when the subject is absent (not set, no such
    /// file).
    pub value: Option<String>,
}

impl Evidence {
    fn new(source: &str, path: &str, subject: &str, value: Option<&str>) -> Self {
        Evidence {
            source: source.to_string(),
            path: path.to_string(),
            subject: Some(subject.to_string()),
            value: value.map(String::from),
        }
    }

    /// One line for people: `manifest /etc/.../kube-apiserver.yaml:
    /// --profiling not set`.
    pub fn describe(&self) -> String {
        match (&self.subject, &self.value) {
            (None, _) => format!("{} {}", self.source, self.path),
            (Some(s), Some(v)) => format!("{} {}: {s} = {v}", self.source, self.path),
            (Some(s), None) if s == "exists" => {
                format!("{} {}: does not exist", self.source, self.path)
            }
            (Some(s), None) => format!("{} {}: {s} not set", self.source, self.path),
        }
    }
}

/// A leaf's (or a test's) result in three values: a check whose evidence
/// is absent or unreadable is neither passed nor failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The comparison held.
    Pass,
    /// The comparison did not hold.
    Fail,
    /// What the comparison needs could not be observed.
    Unknown,
}

/// One observation made while evaluating a test leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// What was looked at (`--profiling`, `mode of /etc/...`).
    pub label: String,
    /// The value found; `None` when absent.
    pub value: Option<String>,
    /// Where it was found (or looked for).
    pub evidence: Option<Evidence>,
    /// The leaf's verdict.
    pub verdict: Verdict,
    /// Why it failed or could not be assessed, when that is more than a
    /// differing value.
    pub reason: Option<String>,
    /// The leaf only asked whether a file exists.
    pub existence: bool,
}

/// The outcome of a check's test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The test's verdict (`all` / `any` combine leaves in three-valued
    /// logic: a failing leaf fails `all`, a passing one passes `any`, and
    /// otherwise an unknown leaf leaves the test unknown).
    pub verdict: Verdict,
    /// Every leaf observation, in test order.
    pub observations: Vec<Observation>,
    /// A component the test needed was not found on the node.
    pub missing: Option<Component>,
    /// Why the check does not apply to this node, when it does not.
    pub not_applicable: Option<String>,
}

impl Outcome {
    /// Whether the test passed.
    pub fn pass(&self) -> bool {
        self.verdict == Verdict::Pass
    }

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

    /// The observation that decided the verdict: the first leaf with the
    /// test's own verdict (the first failing leaf of a failure, the first
    /// unknown one of an unknown test), else the first leaf.
    fn deciding(&self) -> Option<&Observation> {
        self.observations
            .iter()
            .find(|o| o.verdict == self.verdict && o.evidence.is_some())
            .or_else(|| self.observations.iter().find(|o| o.evidence.is_some()))
    }

    /// What decided the verdict: where it was seen, and the value seen.
    pub fn evidence(&self) -> Option<Evidence> {
        self.deciding().and_then(|o| o.evidence.clone())
    }

    /// Why the test failed or could not be assessed.
    pub fn reason(&self) -> Option<String> {
        if self.verdict == Verdict::Pass {
            return None;
        }
        self.observations
            .iter()
            .filter(|o| o.verdict == self.verdict)
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
    let verdict = ctx.test(test);
    Outcome {
        verdict,
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

/// Where a named file was looked for, what was found, and what stopped the
/// search.
struct Located {
    /// The node paths it stands for.
    paths: Vec<String>,
    /// Why a place could not be examined (a loop, a permission).
    errors: Vec<String>,
    /// The flag that names it, when its component is there and the flag
    /// (or config key) is not set: the evidence that nothing configures it.
    unset_flag: Option<Evidence>,
}

impl Ctx<'_> {
    fn test(&mut self, t: &Test) -> Verdict {
        match t {
            // Evaluate every branch (no short circuit) so the report shows all
            // observations.
            Test::All(ts) => {
                let vs: Vec<Verdict> = ts.iter().map(|t| self.test(t)).collect();
                if vs.contains(&Verdict::Fail) {
                    Verdict::Fail
                } else if vs.contains(&Verdict::Unknown) {
                    Verdict::Unknown
                } else {
                    Verdict::Pass
                }
            }
            Test::Any(ts) => {
                let vs: Vec<Verdict> = ts.iter().map(|t| self.test(t)).collect();
                if vs.contains(&Verdict::Pass) {
                    Verdict::Pass
                } else if vs.contains(&Verdict::Unknown) {
                    Verdict::Unknown
                } else {
                    Verdict::Fail
                }
            }
            Test::Leaf(l) => self.leaf(l),
        }
    }

    fn record(
        &mut self,
        leaf: &Leaf,
        label: String,
        value: Option<String>,
        evidence: Option<Evidence>,
    ) -> Verdict {
        let v = compare(leaf.op, value.as_deref(), &leaf.value);
        let verdict = if v.pass { Verdict::Pass } else { Verdict::Fail };
        self.observations.push(Observation {
            label,
            value,
            evidence,
            verdict,
            reason: v.reason,
            existence: matches!(leaf.subject, Subject::File(_)),
        });
        verdict
    }

    /// A leaf whose subject could not be observed.
    fn unknown(
        &mut self,
        leaf: &Leaf,
        label: String,
        evidence: Option<Evidence>,
        reason: String,
    ) -> Verdict {
        self.observations.push(Observation {
            label,
            value: None,
            evidence,
            verdict: Verdict::Unknown,
            reason: Some(reason),
            existence: matches!(leaf.subject, Subject::File(_)),
        });
        Verdict::Unknown
    }

    fn component(&mut self) -> Option<&Found> {
        let c = self.check.component?;
        let found = self.node.components.get(&c);
        if found.is_none() {
            self.missing = Some(c);
        }
        found
    }

    /// A flag-like setting: the flag from the command line, else the key in
    /// the component's config file. An absent setting is evidence (the
    /// component's default applies) only when every place it could be set
    /// was read.
    fn setting(
        &mut self,
        leaf: &Leaf,
        found: &Found,
        label: String,
        from_flag: Option<String>,
        shown_flag: &str,
        config: Option<&str>,
    ) -> Verdict {
        if let Some(why) = &found.args_error {
            let ev = source_evidence(found, shown_flag, from_flag.as_deref());
            let reason = format!(
                "{}'s command line may be incomplete: its {why} could not be read",
                found.component
            );
            return self.unknown(leaf, label, Some(ev), reason);
        }
        if let Some(v) = from_flag {
            let ev = source_evidence(found, shown_flag, Some(&v));
            return self.record(leaf, label, Some(v), Some(ev));
        }
        if let (Some(key), Some(why)) = (config, &found.config_error) {
            let ev = source_evidence(found, shown_flag, None);
            let reason = format!(
                "{shown_flag} is not on {}'s command line, and its {why}, so {key} cannot be read",
                found.component
            );
            return self.unknown(leaf, label, Some(ev), reason);
        }
        let (value, evidence) = match config_value(found, config) {
            (Some(v), Some(ev)) => (Some(v), ev),
            _ => match (config, &found.config) {
                (Some(key), Some(cfg)) => (None, Evidence::new("config", &cfg.path, key, None)),
                _ => (None, source_evidence(found, shown_flag, None)),
            },
        };
        self.record(leaf, label, value, Some(evidence))
    }

    fn leaf(&mut self, leaf: &Leaf) -> Verdict {
        match &leaf.subject {
            Subject::Flag { name, config } => {
                let Some(found) = self.component().cloned() else {
                    return self.absent_component(leaf, name);
                };
                let value = found.flag(name);
                self.setting(leaf, &found, name.clone(), value, name, config.as_deref())
            }
            Subject::FeatureGate { name, config } => {
                let Some(found) = self.component().cloned() else {
                    return self.absent_component(leaf, name);
                };
                let from_flag = found
                    .flag("--feature-gates")
                    .and_then(|g| flags::feature_gate(&g, name));
                self.setting(
                    leaf,
                    &found,
                    format!("feature gate {name}"),
                    from_flag,
                    &format!("--feature-gates {name}"),
                    config.as_deref(),
                )
            }
            Subject::File(file) => {
                let loc = self.locate(file);
                let label = self.about(file);
                if let Some(p) = loc.paths.first() {
                    let ev = Evidence::new("file", p, "exists", Some(p));
                    let p = p.clone();
                    return self.record(leaf, label, Some(p), Some(ev));
                }
                if let Some(e) = loc.errors.first() {
                    let e = e.clone();
                    return self.unknown(leaf, label, None, e);
                }
                let ev = self.looked_evidence(file, &loc);
                self.record(leaf, label, None, ev)
            }
            Subject::Mode(file) | Subject::Owner(file) => {
                let is_mode = matches!(leaf.subject, Subject::Mode(_));
                self.file_property(leaf, file, is_mode)
            }
            Subject::Content { file, path } => {
                let loc = self.locate(file);
                let label = format!("{} {path}", self.about(file));
                let Some(p) = loc.paths.first().cloned() else {
                    if let Some(e) = loc.errors.first() {
                        let e = e.clone();
                        return self.unknown(leaf, label, None, e);
                    }
                    let looked = self.looked_for(file);
                    let about = self.about(file);
                    // Nothing configures the file: that is the evidence.
                    if let Some(ev) = loc.unset_flag {
                        let pass = self.record(leaf, label, None, Some(ev));
                        self.set_reason(pass, format!("no {about} is configured{looked}"));
                        return pass;
                    }
                    return self.unknown(leaf, label, None, format!("no {about} found{looked}"));
                };
                let read = self.node.fs.read(&p);
                match read {
                    Ok(Some(text)) => match serde_saphyr::from_str::<serde_json::Value>(&text) {
                        Ok(doc) => {
                            let values = select(&doc, path);
                            let value = values.join(",");
                            let ev = Evidence::new("file", &p, path, Some(&value));
                            self.record(leaf, label, Some(value), Some(ev))
                        }
                        Err(e) => {
                            let first =
                                e.to_string().lines().next().unwrap_or_default().to_string();
                            let ev = Evidence::new("file", &p, path, None);
                            self.unknown(
                                leaf,
                                label,
                                Some(ev),
                                format!("{p} is not valid YAML: {first}"),
                            )
                        }
                    },
                    Ok(None) => self.unknown(leaf, label, None, format!("{p} does not exist")),
                    Err(e) => self.unknown(leaf, label, None, e.to_string()),
                }
            }
        }
    }

    fn set_reason(&mut self, verdict: Verdict, reason: String) {
        if verdict != Verdict::Pass {
            if let Some(o) = self.observations.last_mut() {
                o.reason = Some(reason);
            }
        }
    }

    fn absent_component(&mut self, leaf: &Leaf, name: &str) -> Verdict {
        let c = self
            .check
            .component
            .map(|c| c.binary())
            .unwrap_or("the component");
        let reason = format!("{c} was not found on this node, so its {name} cannot be read");
        self.unknown(leaf, name.to_string(), None, reason)
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

    /// Evidence that a file is absent: the flag that does not name it, else
    /// the first place it was looked for.
    fn looked_evidence(&self, file: &str, loc: &Located) -> Option<Evidence> {
        if let Some(ev) = &loc.unset_flag {
            return Some(ev.clone());
        }
        let spec = self.bench.files.get(file)?;
        let first = spec.candidates.first()?;
        Some(Evidence::new("file", first, "exists", None))
    }

    fn file_property(&mut self, leaf: &Leaf, file: &str, is_mode: bool) -> Verdict {
        let what = if is_mode { "mode" } else { "owner" };
        let loc = self.locate(file);
        let about = self.about(file);
        if loc.paths.is_empty() {
            let looked = self.looked_for(file);
            let label = format!("{what} of {about}");
            if let Some(e) = loc.errors.first() {
                let e = e.clone();
                return self.unknown(leaf, label, None, e);
            }
            let ev = self.looked_evidence(file, &loc);
            if self.optional_and_unnamed(file) {
                self.not_applicable = Some(format!(
                    "no {about} on this node{looked}, so the check does not apply"
                ));
            }
            return self.unknown(leaf, label, ev, format!("no {about} found{looked}"));
        }
        let paths = loc.paths;
        let mut values = Vec::new();
        let mut failing = Vec::new();
        let mut first_failing: Option<(String, Option<String>)> = None;
        let mut first_reason = None;
        let mut unreadable: Option<(String, String)> = None;
        for p in &paths {
            let value = match self.node.fs.stat(p) {
                Ok(Some(st)) if is_mode => Some(format!("{:o}", st.mode)),
                Ok(Some(st)) => Some(self.node.accounts.owner(st.uid, st.gid)),
                Ok(None) => None,
                Err(e) => {
                    unreadable.get_or_insert((p.clone(), e.to_string()));
                    values.push((p.clone(), None));
                    continue;
                }
            };
            let v = compare(leaf.op, value.as_deref(), &leaf.value);
            if !v.pass {
                first_failing.get_or_insert_with(|| (p.clone(), value.clone()));
                failing.push(format!("{p} is {}", value.as_deref().unwrap_or("missing")));
                if let Some(r) = v.reason {
                    first_reason.get_or_insert(format!("{p}: {r}"));
                }
            }
            values.push((p.clone(), value));
        }
        let verdict = if !failing.is_empty() {
            Verdict::Fail
        } else if unreadable.is_some() {
            Verdict::Unknown
        } else {
            Verdict::Pass
        };
        let value = if values.len() == 1 {
            values[0].1.clone()
        } else {
            // Several files: report the distinct values, worst first.
            let mut distinct: Vec<String> = values.iter().filter_map(|(_, v)| v.clone()).collect();
            distinct.sort();
            distinct.dedup();
            Some(distinct.join(","))
        };
        let reason = match verdict {
            Verdict::Pass => None,
            Verdict::Unknown => unreadable.as_ref().map(|(_, e)| e.clone()),
            Verdict::Fail if failing.len() == 1 => {
                Some(first_reason.unwrap_or_else(|| failing[0].clone()))
            }
            Verdict::Fail => Some(format!(
                "{} of {} files fail: {}",
                failing.len(),
                paths.len(),
                failing.join("; ")
            )),
        };
        let label = if paths.len() == 1 {
            format!("{what} of {}", paths[0])
        } else {
            format!("{what} of {about}")
        };
        let (ev_path, ev_value) = match (verdict, first_failing, &unreadable) {
            (Verdict::Fail, Some((p, v)), _) => (p, v),
            (Verdict::Unknown, _, Some((p, _))) => (p.clone(), None),
            _ => (paths[0].clone(), values[0].1.clone()),
        };
        self.observations.push(Observation {
            label,
            value,
            evidence: Some(Evidence::new("file", &ev_path, what, ev_value.as_deref())),
            verdict,
            reason,
            existence: false,
        });
        verdict
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
    fn locate(&self, file: &str) -> Located {
        let Some(spec) = self.bench.files.get(file) else {
            return Located {
                paths: Vec::new(),
                errors: Vec::new(),
                unset_flag: None,
            };
        };
        locate_all(self.node, spec)
    }
}

/// The node paths a file spec stands for on a node.
pub fn locate(node: &Node, spec: &FileSpec) -> Vec<String> {
    locate_all(node, spec).paths
}

fn locate_all(node: &Node, spec: &FileSpec) -> Located {
    let mut errors = Vec::new();
    let mut unset_flag = None;
    let exists = |p: &str, errors: &mut Vec<String>| match node.fs.stat(p) {
        Ok(Some(_)) => true,
        Ok(None) => false,
        Err(e) => {
            errors.push(e.to_string());
            false
        }
    };
    let from_flag = spec.flag.as_ref().and_then(|f| {
        let found = node.components.get(&f.component)?;
        let v = found
            .flag(&f.name)
            .or_else(|| config_value(found, f.config.as_deref()).0);
        if v.is_none() {
            unset_flag = Some(source_evidence(found, &f.name, None));
        }
        v
    });
    let from_manifest = spec
        .manifest_of
        .and_then(|c| node.manifests.get(&c).cloned());
    let roots: Vec<String> = match from_flag.or(from_manifest) {
        Some(p) => vec![p],
        None => {
            let mut existing = Vec::new();
            for c in &spec.candidates {
                if exists(c, &mut errors) {
                    existing.push(c.clone());
                    if !spec.all {
                        break;
                    }
                }
            }
            existing
        }
    };
    if !roots.is_empty() {
        unset_flag = None;
    }
    if !spec.walk {
        let paths = roots
            .into_iter()
            .filter(|p| exists(p, &mut errors))
            .collect();
        return Located {
            paths,
            errors,
            unset_flag,
        };
    }
    let mut out = Vec::new();
    for dir in roots {
        if spec.walk_self && exists(&dir, &mut errors) {
            out.push(dir.clone());
        }
        let below = match node.fs.walk(&dir) {
            Ok(b) => b,
            Err(e) => {
                errors.push(e.to_string());
                Vec::new()
            }
        };
        for p in below {
            if !spec.suffix.as_deref().is_none_or(|s| p.ends_with(s)) {
                continue;
            }
            if spec.files_only && matches!(node.fs.stat(&p), Ok(Some(st)) if st.is_dir) {
                continue;
            }
            out.push(p);
        }
    }
    Located {
        paths: out,
        errors,
        unset_flag,
    }
}

/// Evidence from a component's command line (`process`, `manifest` or
/// `systemd`).
fn source_evidence(found: &Found, subject: &str, value: Option<&str>) -> Evidence {
    Evidence::new(found.source.name(), &found.path, subject, value)
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
    match scalar_text(cur) {
        Some(v) => {
            let ev = Evidence::new("config", cfg.source_of(key), key, Some(&v));
            (Some(v), Some(ev))
        }
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
