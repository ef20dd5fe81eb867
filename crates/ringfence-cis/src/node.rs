//! Node discovery without a shell.
//!
//! A [`Node`] is what the checks read: each component's argument vector and
//! where it came from, the kubelet's (and kube-proxy's) config file, the
//! node's accounts and its filesystem. Components are found, in order:
//!
//! 1. running processes: `/proc` for a live scan, `ROOT/proc` when a mounted
//!    root carries one, or the directory `--proc` names; whether run directly
//!    or as containerd static pods — both show up as host processes. The
//!    table is read through [`Procfs`], confined like every file read;
//! 2. static pod manifests in `etc/kubernetes/manifests/` and in the
//!    directory the kubelet's `staticPodPath` / `--pod-manifest-path` names
//!    (`command` + `args`);
//! 3. the kubelet's systemd unit and drop-ins: `Environment=`,
//!    `EnvironmentFile=` (such as `/var/lib/kubelet/kubeadm-flags.env`) and
//!    the `$VAR` / `${VAR}` expansion of the last `ExecStart=`.
//!
//! Nothing is executed, and nothing is written.

use crate::benchmark::yaml_error;
use crate::component::Component;
use crate::flags;
use crate::procfs::Procfs;
use crate::rootfs::{Accounts, FsError, RootFs};
use ringfence_diag::{InputError, InputErrors};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Where a component's command line was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A running process (`/proc/PID/cmdline`).
    Process,
    /// A static pod manifest.
    Manifest,
    /// A systemd unit and its drop-ins.
    Systemd,
}

impl Source {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Source::Process => "process",
            Source::Manifest => "manifest",
            Source::Systemd => "systemd",
        }
    }
}

/// A component's parsed config file (`--config`).
#[derive(Debug, Clone)]
pub struct ConfigFile {
    /// The path on the node (of the `--config` file, else of the first
    /// drop-in).
    pub path: String,
    /// The parsed document: the `--config` file with the kubelet's
    /// `--config-dir` drop-ins merged over it, in name order.
    pub doc: serde_json::Value,
    /// Each file and its own document, in merge order.
    pub layers: Vec<(String, serde_json::Value)>,
}

impl ConfigFile {
    /// The file a dotted key's value comes from: the last layer that sets it.
    pub fn source_of(&self, key: &str) -> &str {
        self.layers
            .iter()
            .rev()
            .find(|(_, doc)| {
                let mut cur = doc;
                key.split('.').all(|part| match cur.get(part) {
                    Some(v) => {
                        cur = v;
                        true
                    }
                    None => false,
                })
            })
            .map_or(self.path.as_str(), |(p, _)| p.as_str())
    }
}

/// Merge `over` into `base` as the kubelet merges its config drop-ins (JSON
/// decoding over the config so far): objects merge key by key, anything else
/// replaces.
fn merge_config(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_config(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A component found on the node.
#[derive(Debug, Clone)]
pub struct Found {
    /// Which component.
    pub component: Component,
    /// Its arguments, without the program name.
    pub args: Vec<String>,
    /// Where they came from.
    pub source: Source,
    /// The file they came from (`/proc/PID/cmdline`, the manifest, the unit).
    pub path: String,
    /// The container image, for static pods.
    pub image: Option<String>,
    /// Its config file, when `--config` names one that exists.
    pub config: Option<ConfigFile>,
    /// Why the file `--config` names could not be read (missing, not a
    /// regular file, too large, unreadable): settings that may live there
    /// cannot be judged.
    pub config_error: Option<String>,
    /// Why its command line may be incomplete (an `EnvironmentFile=` that
    /// could not be read): no flag of it can be judged.
    pub args_error: Option<String>,
    /// The process id, for a running process.
    pub pid: Option<u32>,
    /// For a running process, the filesystem as it sees it
    /// (`/proc/PID/root`): a containerised component's own files live there.
    pub proc_root: Option<RootFs>,
}

impl Found {
    /// The value of a flag, as the component would read it.
    pub fn flag(&self, name: &str) -> Option<String> {
        flags::lookup(&self.args, name)
    }
}

/// How to look at a node.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// The node's root directory; `None` scans the running host (`/`).
    pub root: Option<PathBuf>,
    /// Where to read processes from; default `/proc` for live scans and
    /// `ROOT/proc` (when present) for `--root` scans.
    pub proc_dir: Option<PathBuf>,
    /// The Kubernetes version, when the user knows it.
    pub kubernetes_version: Option<String>,
    /// Only consider these process ids (for hosts that run several
    /// clusters' components, and for tests); `None` considers all.
    pub only_pids: Option<Vec<u32>>,
}

/// Everything a scan knows about a node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Host name (from the root's `etc/hostname`).
    pub name: String,
    /// The scanned root, `None` for the live host.
    pub root: Option<PathBuf>,
    /// The filesystem, confined to the root.
    pub fs: RootFs,
    /// User and group names from the root.
    pub accounts: Accounts,
    /// The components found.
    pub components: BTreeMap<Component, Found>,
    /// The static pod manifest of each component that has one (even when
    /// the component was found as a running process).
    pub manifests: BTreeMap<Component, String>,
    /// The Kubernetes version (user-given, or from an image tag).
    pub kubernetes_version: Option<String>,
    /// Where the version was read, in words: `--k8s-version`, `the
    /// kube-apiserver image tag in /etc/kubernetes/manifests/kube-apiserver.yaml`,
    /// `the kubelet binary at /usr/bin/kubelet`.
    pub kubernetes_version_source: Option<String>,
    /// The process table read (`/proc`, `ROOT/proc` or `--proc DIR`), if any.
    pub procfs: Option<Procfs>,
    /// Problems noticed while looking that did not stop the scan.
    pub notes: Vec<String>,
}

impl Node {
    /// Roles derived from the components: `control-plane`, `etcd`, `node`.
    pub fn roles(&self) -> Vec<&'static str> {
        let has = |c| self.components.contains_key(&c);
        let mut roles = Vec::new();
        if has(Component::Apiserver)
            || has(Component::ControllerManager)
            || has(Component::Scheduler)
        {
            roles.push("control-plane");
        }
        if has(Component::Etcd) {
            roles.push("etcd");
        }
        if has(Component::Kubelet) {
            roles.push("node");
        }
        roles
    }
}

/// Discover the components of a node.
pub fn discover(opts: &DiscoverOptions) -> Result<Node, InputErrors> {
    let fs = RootFs::new(opts.root.clone().unwrap_or_else(|| PathBuf::from("/")));
    if let Some(root) = &opts.root {
        if !root.is_dir() {
            return Err(InputError::whole(
                root.display().to_string(),
                "--root must be a directory holding a node's filesystem",
            )
            .into());
        }
    }
    let mut notes = Vec::new();
    let mut components: BTreeMap<Component, Found> = BTreeMap::new();

    if let Some(dir) = &opts.proc_dir {
        if !dir.is_dir() {
            return Err(InputError::whole(
                dir.display().to_string(),
                "--proc must be a directory holding a process table (a procfs, such as /proc)",
            )
            .into());
        }
    }
    let procfs = Procfs::for_scan(opts.root.as_deref(), opts.proc_dir.as_deref(), &fs);
    if let Some(procfs) = &procfs {
        for f in processes(procfs, opts.only_pids.as_deref(), &mut notes) {
            components.entry(f.component).or_insert(f);
        }
    }
    // The kubelet first: its config may move the static pod directory.
    if let std::collections::btree_map::Entry::Vacant(slot) = components.entry(Component::Kubelet) {
        if let Some(f) = kubelet_unit(&fs, &mut notes) {
            slot.insert(f);
        }
    }
    if let Some(kubelet) = components.get_mut(&Component::Kubelet) {
        load_config(&fs, kubelet, &mut notes)?;
    }
    let mut manifest_dirs = vec![MANIFEST_DIR.to_string()];
    if let Some(k) = components.get(&Component::Kubelet) {
        let from_config = k
            .config
            .as_ref()
            .and_then(|c| c.doc.get("staticPodPath"))
            .and_then(|v| v.as_str())
            .map(String::from);
        if let Some(dir) = k.flag("--pod-manifest-path").or(from_config) {
            let dir = dir.trim_end_matches('/').to_string();
            if !manifest_dirs.contains(&dir) {
                manifest_dirs.push(dir);
            }
        }
    }
    let mut images = Vec::new();
    let mut manifest_files = BTreeMap::new();
    for dir in &manifest_dirs {
        for f in manifests(&fs, dir, &mut notes)? {
            if let Some(img) = &f.image {
                images.push((f.component, img.clone()));
            }
            manifest_files
                .entry(f.component)
                .or_insert_with(|| f.path.clone());
            components.entry(f.component).or_insert(f);
        }
    }
    if let Some(proxy) = components.get_mut(&Component::Proxy) {
        load_config(&fs, proxy, &mut notes)?;
    }
    let version = match &opts.kubernetes_version {
        Some(v) => Some((v.clone(), "--k8s-version".to_string())),
        None => images
            .iter()
            .find(|(c, _)| *c == Component::Apiserver)
            .or(images.first())
            .and_then(|(c, img)| {
                let v = version_from_image(img)?;
                let place = manifest_files
                    .get(c)
                    .map(|m| format!(" in {m}"))
                    .unwrap_or_default();
                Some((v, format!("the {} image tag{place}", c.binary())))
            })
            .or_else(|| version_from_binaries(&fs, procfs.as_ref(), &components)),
    };
    let (kubernetes_version, kubernetes_version_source) = version.unzip();
    let name = fs
        .read("/etc/hostname")
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            opts.root.is_none().then(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default()
            })
        })
        .unwrap_or_else(|| "unknown".to_string());
    Ok(Node {
        name,
        root: opts.root.clone(),
        accounts: Accounts::load(&fs),
        fs,
        components,
        manifests: manifest_files,
        kubernetes_version,
        kubernetes_version_source,
        procfs,
        notes,
    })
}

/// Parse the file a component's `--config` names (kubelet, kube-proxy).
fn load_config(fs: &RootFs, found: &mut Found, notes: &mut Vec<String>) -> Result<(), InputErrors> {
    let file = found.flag("--config");
    // The kubelet (1.28 and later) merges the *.conf files of --config-dir
    // over its config file, in name order; its flags still win over both.
    let dropin_dir = (found.component == Component::Kubelet)
        .then(|| found.flag("--config-dir"))
        .flatten();
    if file.is_none() && dropin_dir.is_none() {
        return Ok(());
    }
    let mut layers: Vec<(String, serde_json::Value)> = Vec::new();
    let mut fail = |found: &mut Found, why: String| {
        notes.push(format!("{}: {why}", found.component));
        found.config_error.get_or_insert(why);
    };
    if let Some(path) = file {
        // A containerised component (a static pod, a DaemonSet such as
        // kube-proxy) sees its own mounts: look there, confined to its root,
        // when the node's filesystem does not have the file.
        let mut text = fs.read(&path);
        if matches!(text, Ok(None)) {
            if let Some(proc_root) = &found.proc_root {
                if let Ok(Some(t)) = proc_root.read(&path) {
                    text = Ok(Some(t));
                }
            }
        }
        match text {
            Ok(Some(text)) => {
                let doc: serde_json::Value =
                    serde_saphyr::from_str(&text).map_err(|e| yaml_error(&path, &e))?;
                layers.push((path, doc));
            }
            Ok(None) => fail(
                found,
                format!("--config {path} does not exist on this node"),
            ),
            Err(e) => fail(found, format!("--config {e}")),
        }
    }
    if let Some(dir) = dropin_dir {
        let dir = dir.trim_end_matches('/').to_string();
        match fs.list(&dir) {
            Ok(names) => {
                for name in names.into_iter().filter(|n| n.ends_with(".conf")) {
                    let path = format!("{dir}/{name}");
                    match fs.read(&path) {
                        Ok(Some(text)) => {
                            let doc: serde_json::Value =
                                serde_saphyr::from_str(&text).map_err(|e| yaml_error(&path, &e))?;
                            layers.push((path, doc));
                        }
                        Ok(None) => {}
                        Err(e) => fail(found, format!("--config-dir drop-in {e}")),
                    }
                }
            }
            Err(e) => fail(found, format!("--config-dir {e}")),
        }
    }
    let Some(path) = layers.first().map(|(p, _)| p.clone()) else {
        return Ok(());
    };
    let mut doc = serde_json::Value::Object(Default::default());
    for (_, layer) in &layers {
        merge_config(&mut doc, layer.clone());
    }
    found.config = Some(ConfigFile { path, doc, layers });
    Ok(())
}

/// The version stamped into a component binary, and where it was read: a
/// running process's executable (`/proc/PID/exe`, see [`Procfs::exe`]),
/// else the usual install paths under the root.
fn version_from_binaries(
    fs: &RootFs,
    procfs: Option<&Procfs>,
    components: &BTreeMap<Component, Found>,
) -> Option<(String, String)> {
    for (component, found) in components {
        if let (Some(pid), Some(procfs)) = (found.pid, procfs) {
            if let Some(f) = procfs.exe(pid) {
                if let Some(v) = crate::binver::version_from_binary(f) {
                    return Some((
                        v,
                        format!("the {} executable of process {pid}", component.binary()),
                    ));
                }
            }
        }
    }
    for name in ["kubelet", "kube-apiserver", "kubeadm", "kubectl"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/opt/bin"] {
            let path = format!("{dir}/{name}");
            if let Ok(Some(f)) = fs.open_regular(&path) {
                if let Some(v) = crate::binver::version_from_binary(f) {
                    return Some((v, format!("the {name} binary at {path}")));
                }
            }
        }
    }
    None
}

/// The Kubernetes version in an image reference's tag
/// (`.../kube-apiserver:v1.22.5_vmware.1` gives `1.22.5`).
pub fn version_from_image(image: &str) -> Option<String> {
    let tag = image.rsplit('/').next()?.split_once(':')?.1;
    let tag = tag.split('@').next()?.trim_start_matches('v');
    let end = tag
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(tag.len());
    let v = tag[..end].trim_end_matches('.');
    let parts: Vec<&str> = v.split('.').collect();
    (parts.len() >= 2 && parts.iter().all(|p| !p.is_empty())).then(|| v.to_string())
}

fn processes(procfs: &Procfs, only: Option<&[u32]>, notes: &mut Vec<String>) -> Vec<Found> {
    // Our own process only counts in a live table (its pid means nothing in
    // a mounted root's).
    let me = procfs.is_kernel().then(std::process::id);
    let mut out = Vec::new();
    for pid in procfs.pids() {
        if Some(pid) == me || !only.is_none_or(|o| o.contains(&pid)) {
            continue;
        }
        let argv = match procfs.cmdline(pid) {
            Ok(Some(argv)) => argv,
            // Gone since the listing (or never there): nothing to say.
            Ok(None) | Err(FsError::NotFound(_)) => continue,
            // A FIFO, a link loop, a huge file: never opened, never used.
            Err(e) => {
                notes.push(format!("process skipped: {e}"));
                continue;
            }
        };
        if let Some((component, args)) = component_of(&argv) {
            out.push(Found {
                component,
                args,
                source: Source::Process,
                path: format!("/proc/{pid}/cmdline"),
                image: None,
                config: None,
                config_error: None,
                args_error: None,
                pid: Some(pid),
                proc_root: procfs.root_of(pid),
            });
        }
    }
    out
}

/// The component an argument vector runs, and its arguments.
fn component_of(argv: &[String]) -> Option<(Component, Vec<String>)> {
    let first = argv.first()?;
    let base = first.rsplit('/').next().unwrap_or(first);
    if base == "hyperkube" {
        let sub = argv.get(1)?;
        let c = Component::from_binary(sub)
            .or_else(|| Component::ALL.into_iter().find(|c| c.key() == sub))?;
        return Some((c, argv[2..].to_vec()));
    }
    Some((Component::from_binary(base)?, argv[1..].to_vec()))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Pod {
    spec: PodSpec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PodSpec {
    containers: Vec<Container>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Container {
    name: String,
    image: Option<String>,
    command: Vec<String>,
    args: Vec<String>,
}

const MANIFEST_DIR: &str = "/etc/kubernetes/manifests";

fn manifests(fs: &RootFs, dir: &str, notes: &mut Vec<String>) -> Result<Vec<Found>, InputErrors> {
    let mut out = Vec::new();
    let names = match fs.list(dir) {
        Ok(names) => names,
        // A manifest directory that is a link loop or cannot be listed: say
        // so, and scan what else the node has.
        Err(e) => {
            notes.push(format!("static pod manifests not read: {e}"));
            Vec::new()
        }
    };
    for name in names {
        if !(name.ends_with(".yaml")
            || name.ends_with(".yml")
            || name.ends_with(".manifest")
            || name.ends_with(".json"))
        {
            continue;
        }
        let path = format!("{dir}/{name}");
        let text = match fs.read(&path) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            // One unreadable manifest (a FIFO, a symlink loop, a huge file)
            // must not stop the scan of the rest: say so and go on.
            Err(e) => {
                notes.push(format!("static pod manifest skipped: {e}"));
                continue;
            }
        };
        let pod: Pod = serde_saphyr::from_str(&text).map_err(|e| yaml_error(&path, &e))?;
        for c in pod.spec.containers {
            let mut argv = c.command.clone();
            argv.extend(c.args.iter().cloned());
            let by_command = component_of(&argv);
            let (component, args) = match by_command {
                Some(x) => x,
                None => {
                    // No recognisable command: fall back to the container name.
                    let Some(comp) = Component::from_binary(&c.name) else {
                        continue;
                    };
                    let skip = usize::from(!c.command.is_empty());
                    (comp, argv.into_iter().skip(skip).collect())
                }
            };
            out.push(Found {
                component,
                args,
                source: Source::Manifest,
                path: path.clone(),
                image: c.image,
                config: None,
                config_error: None,
                args_error: None,
                pid: None,
                proc_root: None,
            });
        }
    }
    Ok(out)
}

const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Reconstruct the kubelet's command line from its systemd unit.
fn kubelet_unit(fs: &RootFs, notes: &mut Vec<String>) -> Option<Found> {
    let unit = UNIT_DIRS
        .iter()
        .map(|d| format!("{d}/kubelet.service"))
        .find(|p| fs.exists(p));
    // Drop-ins from every unit directory, ordered by file name; a name in an
    // earlier directory hides the same name in a later one.
    let mut dropins: BTreeMap<String, String> = BTreeMap::new();
    for d in UNIT_DIRS.iter().rev() {
        let dir = format!("{d}/kubelet.service.d");
        for name in fs.list(&dir).unwrap_or_default() {
            if name.ends_with(".conf") {
                dropins.insert(name.clone(), format!("{dir}/{name}"));
            }
        }
    }
    if unit.is_none() && dropins.is_empty() {
        return None;
    }
    let mut files: Vec<String> = unit.iter().cloned().collect();
    files.extend(dropins.into_values());
    // systemd's order: the unit, then its drop-ins by name. `Environment=`
    // assignments apply in that order (an empty one clears them); the files
    // of `EnvironmentFile=` (an empty one clears the list) are read when the
    // service starts, in order, and override `Environment=`, whatever the
    // order of the lines; the last `ExecStart=` (after an empty one resets
    // it) is the command.
    let mut assigned: Vec<(String, String)> = Vec::new();
    let mut env_files: Vec<(String, bool, String)> = Vec::new();
    let mut exec: Option<(String, String)> = None;
    for file in &files {
        let Ok(Some(text)) = fs.read(file) else {
            continue;
        };
        for (key, value) in unit_service_entries(&text) {
            match key.as_str() {
                "Environment" if value.trim().is_empty() => assigned.clear(),
                "Environment" => {
                    for word in split_words(&value) {
                        if let Some((k, v)) = word.split_once('=') {
                            assigned.push((k.to_string(), v.to_string()));
                        }
                    }
                }
                "EnvironmentFile" if value.trim().is_empty() => env_files.clear(),
                "EnvironmentFile" => {
                    let optional = value.starts_with('-');
                    let path = value.trim_start_matches('-').trim().to_string();
                    env_files.push((path, optional, file.clone()));
                }
                "ExecStart" => {
                    exec = if value.trim().is_empty() {
                        None
                    } else {
                        Some((value, file.clone()))
                    };
                }
                _ => {}
            }
        }
    }
    let mut env: HashMap<String, String> = assigned.into_iter().collect();
    let mut args_error = None;
    for (path, optional, file) in env_files {
        match fs.read(&path) {
            Ok(Some(t)) => env.extend(parse_env_file(&t)),
            Ok(None) if optional => {}
            Ok(None) => notes.push(format!("{file}: EnvironmentFile {path} is missing")),
            // A FIFO, a loop, a huge file: systemd would read it, we cannot.
            Err(e) => {
                let why = format!("EnvironmentFile {e} (named in {file})");
                notes.push(format!("{file}: EnvironmentFile {e}"));
                args_error.get_or_insert(why);
            }
        }
    }
    let (line, file) = exec?;
    let argv = expand_exec(&line, &env);
    let (component, args) = component_of(&argv)?;
    (component == Component::Kubelet).then_some(Found {
        component,
        args,
        source: Source::Systemd,
        path: file,
        image: None,
        config: None,
        config_error: None,
        args_error,
        pid: None,
        proc_root: None,
    })
}

/// `(key, value)` entries of a unit's `[Service]` section, with line
/// continuations joined.
fn unit_service_entries(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_service = false;
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(body) = line.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let full = full.trim();
        if full.starts_with('[') {
            in_service = full == "[Service]";
            continue;
        }
        if !in_service {
            continue;
        }
        if let Some((k, v)) = full.split_once('=') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// Split a unit value into words, honouring double and single quotes.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// `KEY=value` lines of an environment file (comments and blank lines skipped,
/// surrounding quotes removed).
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// Expand an `ExecStart=` line as systemd does: a word that is exactly
/// `$NAME` becomes the variable's whitespace-separated words (none when it is
/// empty or unset); `${NAME}` inside a word is replaced in place.
fn expand_exec(line: &str, env: &HashMap<String, String>) -> Vec<String> {
    let line = line.trim_start_matches(['-', '@', '+', '!', ':']);
    let mut out = Vec::new();
    for word in split_words(line) {
        if let Some(name) = word.strip_prefix('$').filter(|n| is_var_name(n)) {
            if let Some(v) = env.get(name) {
                out.extend(v.split_whitespace().map(String::from));
            }
            continue;
        }
        out.push(substitute(&word, env));
    }
    out
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn substitute(word: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                out.push_str(env.get(&after[..j]).map(String::as_str).unwrap_or(""));
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_give_the_kubernetes_version() {
        assert_eq!(
            version_from_image("projects.registry.vmware.com/tkg/kube-apiserver:v1.22.5_vmware.1")
                .as_deref(),
            Some("1.22.5")
        );
        assert_eq!(
            version_from_image("registry:5000/kube-apiserver:v1.28.2").as_deref(),
            Some("1.28.2")
        );
        assert_eq!(version_from_image("kube-apiserver"), None);
        assert_eq!(version_from_image("kube-apiserver:latest"), None);
    }

    #[test]
    fn exec_start_expands_whole_word_variables_into_words_and_braced_ones_in_place() {
        let env: HashMap<String, String> = [
            (
                "KUBELET_KUBEADM_ARGS",
                "--container-runtime=remote --node-ip=10.0.0.5",
            ),
            (
                "KUBELET_CONFIG_ARGS",
                "--config=/var/lib/kubelet/config.yaml",
            ),
            ("EMPTY", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let argv = expand_exec(
            "/usr/bin/kubelet $KUBELET_KUBEADM_ARGS $EMPTY $UNSET --x=${KUBELET_CONFIG_ARGS}y",
            &env,
        );
        assert_eq!(
            argv,
            vec![
                "/usr/bin/kubelet",
                "--container-runtime=remote",
                "--node-ip=10.0.0.5",
                "--x=--config=/var/lib/kubelet/config.yamly"
            ]
        );
    }

    #[test]
    fn unit_entries_join_continuations_and_skip_other_sections() {
        let text = "[Unit]\nDescription=x\n[Service]\n# c\nEnvironment=\"A=1\" \"B=two words\"\nExecStart=\nExecStart=/usr/bin/kubelet \\\n  --a=1\n";
        let e = unit_service_entries(text);
        assert_eq!(
            e[0],
            ("Environment".into(), "\"A=1\" \"B=two words\"".into())
        );
        assert_eq!(e[1], ("ExecStart".into(), "".into()));
        assert_eq!(e[2].1, "/usr/bin/kubelet  --a=1");
        assert_eq!(split_words(&e[0].1), vec!["A=1", "B=two words"]);
    }

    #[test]
    fn env_files_strip_quotes_and_comments() {
        let v = parse_env_file("# x\nKUBELET_KUBEADM_ARGS=\"--a=1 --b\"\n\nX='y'\n");
        assert_eq!(
            v,
            vec![
                ("KUBELET_KUBEADM_ARGS".into(), "--a=1 --b".into()),
                ("X".into(), "y".into())
            ]
        );
    }

    #[test]
    fn hyperkube_sub_commands_are_recognised() {
        let argv: Vec<String> = ["/hyperkube", "kubelet", "--v=2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            component_of(&argv),
            Some((Component::Kubelet, vec!["--v=2".to_string()]))
        );
        let argv: Vec<String> = ["/usr/local/bin/kube-apiserver", "--x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(component_of(&argv).unwrap().0, Component::Apiserver);
        let argv: Vec<String> = ["/bin/bash"].iter().map(|s| s.to_string()).collect();
        assert_eq!(component_of(&argv), None);
    }
}
