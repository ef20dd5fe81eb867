//! kube-bench's `config.yaml`: components, candidate files and mappings.
//!
//! The global `cfg/config.yaml` is read first and the benchmark's own
//! `cfg/NAME/config.yaml` is merged over it (maps merge key by key, any other
//! value replaces), as kube-bench's configuration loader does. For a node
//! type (`master`, `node`, `etcd`, ...) the section lists `components`; each
//! component names candidate binaries (`bins`, `defaultbin`), config files
//! (`confs`, `defaultconf`), unit files (`svc`, `defaultsvc`), kubeconfigs
//! (`kubeconfig`, `defaultkubeconfig`), CA files (`cafile`, `defaultcafile`)
//! and data directories (`datadirs`, `defaultdatadir`). These become the
//! `$<component>bin`, `...conf`, `...svc`, `...kubeconfig`, `...cafile` and
//! `...datadir` variables of the controls files.

use crate::benchmark::yaml_error;
use ringfence_diag::{InputError, InputErrors};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A merged kube-bench configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The merged document.
    pub doc: Value,
}

/// What variable resolution asks of the node.
pub trait Probe {
    /// Whether a candidate binary (`kube-apiserver`, `hyperkube apiserver`)
    /// is running, by kube-bench's rule: some process's command line starts
    /// with it, optionally after a directory.
    fn running(&self, bin: &str) -> bool;
    /// Whether a path exists on the node.
    fn exists(&self, path: &str) -> bool;
}

/// The variables for one node type: suffix (`bin`, `conf`, ...) → component → value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    /// `bin`, `conf`, `svc`, `kubeconfig`, `cafile`, `datadir` maps.
    pub by_suffix: BTreeMap<&'static str, BTreeMap<String, String>>,
}

/// Suffix, list key and default key for each kind of file variable.
const FILE_KINDS: [(&str, &str, &str); 5] = [
    ("conf", "confs", "defaultconf"),
    ("svc", "svc", "defaultsvc"),
    ("kubeconfig", "kubeconfig", "defaultkubeconfig"),
    ("cafile", "cafile", "defaultcafile"),
    ("datadir", "datadirs", "defaultdatadir"),
];

fn parse_doc(file: &str, text: &str) -> Result<Value, InputErrors> {
    // A file may hold several `---` documents, some only comments (the
    // benchmark configs do); merge the ones with content in order.
    let mut merged = Value::Object(Map::new());
    let mut offset = 0usize;
    let docs: Vec<&str> = text.split("\n---").collect();
    for (i, doc) in docs.iter().enumerate() {
        let doc = if i == 0 {
            doc.strip_prefix("---").unwrap_or(doc)
        } else {
            doc
        };
        let has_content = doc
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && l.trim() != "---");
        if has_content {
            // Pad with newlines so error lines match the file.
            let padded = format!("{}{}", "\n".repeat(offset), doc);
            let v: Value = serde_saphyr::from_str(&padded).map_err(|e| yaml_error(file, &e))?;
            if !v.is_null() && !v.is_object() {
                return Err(
                    InputError::whole(file, "a kube-bench config must be a mapping").into(),
                );
            }
            merge(&mut merged, v);
        }
        offset += doc.matches('\n').count() + 1;
    }
    Ok(merged)
}

/// Merge `over` into `base`: maps key by key, anything else replaces.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (_, Value::Null) => {}
        (slot, v) => *slot = v,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    }
}

fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl Config {
    /// Parse the global config and merge the benchmark's config over it.
    pub fn load(
        global: (&str, &str),
        benchmark: Option<(&str, &str)>,
    ) -> Result<Config, InputErrors> {
        let mut doc = parse_doc(global.0, global.1)?;
        if let Some((file, text)) = benchmark {
            merge(&mut doc, parse_doc(file, text)?);
        }
        Ok(Config { doc })
    }

    /// The targets kube-bench runs for a benchmark (`target_mapping`).
    pub fn targets(&self, benchmark: &str) -> Option<Vec<String>> {
        let list = self.doc.get("target_mapping")?.get(benchmark)?;
        Some(strings(Some(list)))
    }

    /// The benchmark kube-bench picks for a Kubernetes version (`1.22.5`
    /// → the `1.22` entry of `version_mapping`).
    pub fn benchmark_for_version(&self, version: &str) -> Option<String> {
        let map = self.doc.get("version_mapping")?.as_object()?;
        let mut parts = version.trim_start_matches('v').split('.');
        let key = format!("{}.{}", parts.next()?, parts.next()?);
        map.get(&key).and_then(|v| string(Some(v)))
    }

    /// Resolve the variables of a node type's components on a node.
    pub fn variables(&self, node_type: &str, probe: &dyn Probe) -> Variables {
        let mut vars = Variables::default();
        let Some(section) = self.doc.get(node_type) else {
            return vars;
        };
        for component in strings(section.get("components")) {
            let Some(settings) = section.get(&component).filter(|v| v.is_object()) else {
                continue;
            };
            let bins = strings(settings.get("bins"));
            if !bins.is_empty() {
                let running = bins
                    .iter()
                    .find(|b| probe.running(b))
                    .cloned()
                    .or_else(|| string(settings.get("defaultbin")))
                    .unwrap_or_else(|| component.clone());
                vars.by_suffix
                    .entry("bin")
                    .or_default()
                    .insert(component.clone(), running);
            }
            for (suffix, list, default) in FILE_KINDS {
                let found = strings(settings.get(list))
                    .into_iter()
                    .find(|p| probe.exists(p))
                    .or_else(|| string(settings.get(default)))
                    .unwrap_or_else(|| component.clone());
                vars.by_suffix
                    .entry(suffix)
                    .or_default()
                    .insert(component.clone(), found);
            }
        }
        vars
    }
}

impl Variables {
    /// Substitute `$<component><suffix>` in `text` as kube-bench does: a
    /// value of several words is wrapped in single quotes; empty values are
    /// left alone. Longer names go first so no name eats a longer one.
    /// Returns the text and the components whose `bin` variable occurred.
    pub fn substitute(&self, text: &str) -> (String, Vec<String>) {
        let mut names: Vec<(String, &str, &str)> = Vec::new();
        for (suffix, map) in &self.by_suffix {
            for (component, value) in map {
                names.push((format!("${component}{suffix}"), suffix, value));
            }
        }
        names.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let mut out = text.to_string();
        let mut bins = Vec::new();
        for (name, suffix, value) in names {
            if value.is_empty() || !out.contains(&name) {
                continue;
            }
            let value = if value.split_whitespace().count() > 1 {
                format!("'{value}'")
            } else {
                value.to_string()
            };
            out = out.replace(&name, &value);
            if suffix == "bin" {
                bins.push(value);
            }
        }
        (out, bins)
    }
}
