//! Kubernetes manifests that run `ringfence cis scan` on every node, or keep
//! `ringfence watch` following every node's firewall.
//!
//! Every object is built from the typed structs of the `k8s-openapi` crate, so
//! a misspelt field cannot compile, and printed as multi-document YAML with
//! serde-saphyr's serializer. The pod reads the node's filesystem through one
//! read-only hostPath mount of `/` at `/host` and sees the node's processes
//! through `hostPID`; it holds no service-account token, no capabilities and
//! a read-only root filesystem. The watch DaemonSet shares the node's network
//! namespace (`hostNetwork`) to see its netfilter rules, holds only
//! `CAP_NET_ADMIN` (which listing rules over netlink requires) and reads the
//! site file from a ConfigMap; it mounts nothing from the host. See
//! docs/fleet.md for why each choice was made.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, HostPathVolumeSource, KeyToPath,
    Namespace, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, ServiceAccount, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;
use std::fmt;

/// The Kubernetes API version whose typed structs build the manifests
/// (the `k8s-openapi` feature this crate enables).
pub const K8S_API_VERSION: &str = "1.28";

/// Where the node's root filesystem appears inside the scan container.
pub const HOST_ROOT: &str = "/host";

/// Image of the idle container that keeps a DaemonSet pod alive after its
/// scan (an init container) has finished; the kubelet's own pause image.
pub const IDLE_IMAGE: &str = "registry.k8s.io/pause:3.10";

/// Default namespace for the scan objects.
pub const DEFAULT_NAMESPACE: &str = "ringfence";

/// Value of the `app.kubernetes.io/name` label on every object and pod;
/// select on it to find the scan pods (`-l app.kubernetes.io/name=ringfence-cis`).
pub const APP_NAME: &str = "ringfence-cis";

/// Value of the `app.kubernetes.io/name` label on the watch objects and pods,
/// and the name of the watch DaemonSet and its ServiceAccount.
pub const WATCH_APP_NAME: &str = "ringfence-watch";

/// Name of the ConfigMap holding the site file of the watch DaemonSet.
pub const WATCH_SITE_CONFIG_MAP: &str = "ringfence-watch-site";

/// Directory the site ConfigMap is mounted at in the watch container.
pub const WATCH_SITE_DIR: &str = "/etc/ringfence";

/// Key of the site file in the ConfigMap (and its file name under
/// [`WATCH_SITE_DIR`]).
pub const WATCH_SITE_KEY: &str = "site.yaml";

/// Where the watch container keeps its `--record` history: the node
/// directory [`WatchExtras::record`] names is mounted here, read-write.
pub const WATCH_RECORD_DIR: &str = "/var/lib/ringfence/history";

/// Largest site file a ConfigMap can hold: the API server refuses ConfigMaps
/// whose data exceeds 1 MiB.
pub const MAX_SITE_BYTES: usize = 1024 * 1024;

/// Seconds a finished Job (and its pod, with the logs) is kept before the
/// cluster deletes it: long enough to collect the results.
pub const TTL_SECONDS_AFTER_FINISHED: i32 = 3600;

/// The default image reference: the `ringfence` image of this version, as
/// built by the repository's Dockerfile and pushed to a registry the nodes can
/// pull from (pass `--image` to name it).
pub fn default_image() -> String {
    format!("ringfence:{}", env!("CARGO_PKG_VERSION"))
}

/// Which workload runs the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// One Job per named node (or one Job the scheduler places).
    Job,
    /// One DaemonSet: a scan on every node, including nodes that join later.
    DaemonSet,
    /// One DaemonSet running `ringfence watch` on every node's own firewall,
    /// with the site file in a ConfigMap.
    Watch,
}

/// Which netfilter front end the watch DaemonSet reads (`watch --source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchSource {
    /// `nft -j list ruleset`, followed with `nft monitor`.
    #[default]
    Nft,
    /// `iptables-save` and `ip6tables-save`, polled.
    Iptables,
}

/// The path the site's flows take on the node, named by its filter hook
/// (`watch --hook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchHook {
    /// Traffic the node routes (watch's default).
    #[default]
    Forward,
    /// Traffic to the node itself.
    Input,
    /// Traffic from the node itself.
    Output,
}

impl WatchHook {
    /// The value passed to `ringfence watch --hook`.
    pub fn as_arg(self) -> &'static str {
        match self {
            WatchHook::Forward => "forward",
            WatchHook::Input => "input",
            WatchHook::Output => "output",
        }
    }
}

impl WatchSource {
    /// The value passed to `ringfence watch --source`.
    pub fn as_arg(self) -> &'static str {
        match self {
            WatchSource::Nft => "nft",
            WatchSource::Iptables => "iptables",
        }
    }
}

/// `ringfence watch` flags the watch DaemonSet passes through when given.
/// The CLI checks each with watch's own parser before it gets here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchExtras {
    /// `--interval` for polled sources, as written (`2s`, `500ms`).
    pub interval: Option<String>,
    /// `--exec CMD`, run inside the watch container: CMD must be in the image.
    pub exec: Option<String>,
    /// `--webhook URL`. It is stored in the DaemonSet's spec, readable by
    /// whoever may read DaemonSets in the namespace.
    pub webhook: Option<String>,
    /// An absolute directory on each node where the watch keeps its history
    /// (`--record`): a hostPath volume (created when missing) mounted
    /// read-write at [`WATCH_RECORD_DIR`], so the history outlives the pod.
    pub record: Option<String>,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct ManifestOptions {
    /// Job or DaemonSet.
    pub kind: WorkloadKind,
    /// For Jobs: one Job per node, pinned with `nodeName`. Empty: one Job
    /// placed by the scheduler.
    pub nodes: Vec<String>,
    /// Namespace of the objects.
    pub namespace: String,
    /// Image holding the `ringfence` binary.
    pub image: String,
    /// `--profile` passed to the scan (for example `tkg-1.5`), if any.
    pub profile: Option<String>,
    /// Emit a Namespace object first (with the Pod Security label hostPID,
    /// hostPath and hostNetwork need).
    pub include_namespace: bool,
    /// For [`WorkloadKind::Watch`]: the site file's text, stored in a
    /// ConfigMap and read by `watch --site`. Required for that kind, refused
    /// for the others.
    pub site: Option<String>,
    /// For [`WorkloadKind::Watch`]: the ruleset source the watch reads.
    pub watch_source: WatchSource,
    /// For [`WorkloadKind::Watch`]: the hook the site's flows are checked on.
    pub watch_hook: WatchHook,
    /// For [`WorkloadKind::Watch`]: interval, alerting and history flags.
    pub watch_extras: WatchExtras,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        Self {
            kind: WorkloadKind::Job,
            nodes: Vec::new(),
            namespace: DEFAULT_NAMESPACE.to_string(),
            image: default_image(),
            profile: None,
            include_namespace: true,
            site: None,
            watch_source: WatchSource::Nft,
            watch_hook: WatchHook::Forward,
            watch_extras: WatchExtras::default(),
        }
    }
}

/// Why manifests could not be produced: options that cannot make valid
/// objects (or, as a bug, a serializer failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionsError {
    /// The namespace is not a DNS-1123 label.
    Namespace(String),
    /// A node name is not a DNS-1123 subdomain.
    Node(String),
    /// The image reference is empty or holds whitespace.
    Image(String),
    /// The profile name is empty or holds whitespace.
    Profile(String),
    /// `nodes` was given for a DaemonSet, which already runs on every node.
    NodesWithDaemonSet,
    /// An option was given to a kind that does not use it.
    NotForKind {
        /// The option, as the CLI spells it.
        option: &'static str,
        /// The kinds it applies to.
        applies_to: &'static str,
    },
    /// [`WorkloadKind::Watch`] without a site file.
    NoSite,
    /// The site file is larger than a ConfigMap can hold (its size in bytes).
    SiteTooLarge(usize),
    /// The history directory is not an absolute, normalized node path.
    RecordPath(String),
    /// A pass-through watch flag is empty (the flag, as the CLI spells it).
    EmptyWatchFlag(&'static str),
    /// The YAML serializer refused an object (a bug in ringfence: the objects
    /// are plain strings, numbers and maps).
    Serialize(String),
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::Namespace(n) => write!(
                f,
                "namespace {n:?} is not a valid Kubernetes name: use at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
            ),
            OptionsError::Node(n) => write!(
                f,
                "node name {n:?} is not a valid Kubernetes node name: use lower-case letters, digits, '-' and '.', at most 253 characters (see `kubectl get nodes`)"
            ),
            OptionsError::Image(i) => write!(
                f,
                "image reference {i:?} is empty or contains whitespace; expected something like registry.example.com/ringfence:0.1.0"
            ),
            OptionsError::Profile(p) => {
                write!(f, "profile {p:?} is empty or contains whitespace")
            }
            OptionsError::NodesWithDaemonSet => write!(
                f,
                "--node applies to --kind job only: a DaemonSet already runs on every node"
            ),
            OptionsError::NotForKind { option, applies_to } => write!(
                f,
                "{option} applies to {applies_to} only; leave it out for this kind"
            ),
            OptionsError::NoSite => write!(
                f,
                "--kind watch needs --site FILE: the site file the watch verifies each node's rules against (`ringfence site example` prints one to start from)"
            ),
            OptionsError::SiteTooLarge(n) => write!(
                f,
                "the site file has {n} bytes, more than the {MAX_SITE_BYTES} a ConfigMap can hold; drop comments or unused zones"
            ),
            OptionsError::RecordPath(p) => write!(
                f,
                "--watch-record {p:?} must be an absolute directory on the nodes, without '.' or '..' parts and not / itself, e.g. /var/lib/ringfence/history"
            ),
            OptionsError::EmptyWatchFlag(flag) => write!(f, "{flag} needs a value"),
            OptionsError::Serialize(e) => write!(f, "{e} (a bug in ringfence; please report it)"),
        }
    }
}

impl std::error::Error for OptionsError {}

/// One generated Kubernetes object.
#[derive(Debug, Clone)]
pub enum Manifest {
    /// The namespace the scan runs in.
    Namespace(Box<Namespace>),
    /// A scan Job.
    Job(Box<Job>),
    /// The scan DaemonSet, or the watch DaemonSet.
    DaemonSet(Box<DaemonSet>),
    /// The watch DaemonSet's ServiceAccount (holding no permissions).
    ServiceAccount(Box<ServiceAccount>),
    /// The site file of the watch DaemonSet.
    ConfigMap(Box<ConfigMap>),
}

impl serde::Serialize for Manifest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Manifest::Namespace(o) => o.serialize(s),
            Manifest::Job(o) => o.serialize(s),
            Manifest::DaemonSet(o) => o.serialize(s),
            Manifest::ServiceAccount(o) => o.serialize(s),
            Manifest::ConfigMap(o) => o.serialize(s),
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn has_space_or_empty(s: &str) -> bool {
    s.is_empty() || s.chars().any(char::is_whitespace)
}

impl ManifestOptions {
    /// Check the options; the first problem found is returned.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if !is_dns_label(&self.namespace) {
            return Err(OptionsError::Namespace(self.namespace.clone()));
        }
        if let Some(bad) = self.nodes.iter().find(|n| !is_dns_subdomain(n)) {
            return Err(OptionsError::Node(bad.clone()));
        }
        if has_space_or_empty(&self.image) {
            return Err(OptionsError::Image(self.image.clone()));
        }
        if let Some(p) = &self.profile {
            if has_space_or_empty(p) {
                return Err(OptionsError::Profile(p.clone()));
            }
        }
        if self.kind != WorkloadKind::Job && !self.nodes.is_empty() {
            return Err(OptionsError::NodesWithDaemonSet);
        }
        if self.kind == WorkloadKind::Watch {
            if self.profile.is_some() {
                return Err(OptionsError::NotForKind {
                    option: "--profile",
                    applies_to: "--kind job and --kind daemonset (the CIS scan)",
                });
            }
            match &self.site {
                None => return Err(OptionsError::NoSite),
                Some(s) if s.len() > MAX_SITE_BYTES => {
                    return Err(OptionsError::SiteTooLarge(s.len()))
                }
                Some(_) => {}
            }
            let x = &self.watch_extras;
            for (flag, v) in [
                ("--watch-interval", &x.interval),
                ("--watch-exec", &x.exec),
                ("--watch-webhook", &x.webhook),
            ] {
                if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    return Err(OptionsError::EmptyWatchFlag(flag));
                }
            }
            if let Some(p) = &x.record {
                let bad_part = p
                    .split('/')
                    .skip(1)
                    .any(|c| c.is_empty() || c == "." || c == "..");
                if !p.starts_with('/') || p == "/" || bad_part {
                    return Err(OptionsError::RecordPath(p.clone()));
                }
            }
        } else {
            let x = &self.watch_extras;
            for (option, given) in [
                ("--watch-interval", x.interval.is_some()),
                ("--watch-exec", x.exec.is_some()),
                ("--watch-webhook", x.webhook.is_some()),
                ("--watch-record", x.record.is_some()),
            ] {
                if given {
                    return Err(OptionsError::NotForKind {
                        option,
                        applies_to: "--kind watch",
                    });
                }
            }
            if self.site.is_some() {
                return Err(OptionsError::NotForKind {
                    option: "--site",
                    applies_to: "--kind watch",
                });
            }
            if self.watch_source != WatchSource::Nft {
                return Err(OptionsError::NotForKind {
                    option: "--watch-source",
                    applies_to: "--kind watch",
                });
            }
            if self.watch_hook != WatchHook::Forward {
                return Err(OptionsError::NotForKind {
                    option: "--watch-hook",
                    applies_to: "--kind watch",
                });
            }
        }
        Ok(())
    }
}

/// Build the objects the options describe: the Namespace (unless left out),
/// then one Job per node (sorted, duplicates removed) or the DaemonSet; for
/// the watch, the ServiceAccount, the site ConfigMap and the DaemonSet.
pub fn build(opts: &ManifestOptions) -> Result<Vec<Manifest>, OptionsError> {
    opts.validate()?;
    let mut out = Vec::new();
    if opts.include_namespace {
        out.push(Manifest::Namespace(Box::new(namespace(&opts.namespace))));
    }
    match opts.kind {
        WorkloadKind::Job => {
            let mut nodes = opts.nodes.clone();
            nodes.sort();
            nodes.dedup();
            if nodes.is_empty() {
                out.push(Manifest::Job(Box::new(job(opts, None))));
            }
            for n in &nodes {
                out.push(Manifest::Job(Box::new(job(opts, Some(n)))));
            }
        }
        WorkloadKind::DaemonSet => out.push(Manifest::DaemonSet(Box::new(daemon_set(opts)))),
        WorkloadKind::Watch => {
            out.push(Manifest::ServiceAccount(Box::new(watch_service_account(
                opts,
            ))));
            out.push(Manifest::ConfigMap(Box::new(watch_config_map(opts))));
            out.push(Manifest::DaemonSet(Box::new(watch_daemon_set(opts))));
        }
    }
    Ok(out)
}

/// Serialize objects as multi-document YAML (`---` before each document).
pub fn to_yaml(manifests: &[Manifest]) -> Result<String, String> {
    let mut out = String::new();
    for m in manifests {
        let doc = serde_saphyr::to_string(m).map_err(|e| format!("serializing manifest: {e}"))?;
        out.push_str("---\n");
        out.push_str(&doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

/// Build and serialize in one step.
pub fn render_yaml(opts: &ManifestOptions) -> Result<String, OptionsError> {
    let manifests = build(opts)?;
    to_yaml(&manifests).map_err(OptionsError::Serialize)
}

fn labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    app_labels(APP_NAME, extra)
}

fn app_labels(app: &str, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("app.kubernetes.io/name".to_string(), app.to_string());
    l.insert(
        "app.kubernetes.io/part-of".to_string(),
        "ringfence".to_string(),
    );
    for (k, v) in extra {
        l.insert((*k).to_string(), (*v).to_string());
    }
    l
}

fn namespace(name: &str) -> Namespace {
    let mut l = BTreeMap::new();
    l.insert(
        "app.kubernetes.io/part-of".to_string(),
        "ringfence".to_string(),
    );
    // hostPID and hostPath volumes are refused by the "baseline" and
    // "restricted" Pod Security levels; the scan needs both. The watch needs
    // hostNetwork and CAP_NET_ADMIN, which "baseline" refuses too.
    l.insert(
        "pod-security.kubernetes.io/enforce".to_string(),
        "privileged".to_string(),
    );
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(l),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A Job name for a node: `ringfence-cis-<node>` with dots turned into dashes;
/// names longer than a label allows are cut and given a hash of the full node
/// name, so two long node names never share a Job.
pub fn job_name(node: Option<&str>) -> String {
    let Some(node) = node else {
        return APP_NAME.to_string();
    };
    let slug: String = node
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .collect();
    let full = format!("{APP_NAME}-{slug}");
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a, 32 bits: stable across platforms and releases.
    let mut h: u32 = 0x811c_9dc5;
    for b in node.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let suffix = format!("-{h:08x}");
    let keep = 63 - suffix.len();
    let head = full[..keep].trim_end_matches('-');
    format!("{head}{suffix}")
}

fn scan_command(opts: &ManifestOptions) -> Vec<String> {
    let mut c: Vec<String> = ["ringfence", "cis", "scan", "--root", HOST_ROOT]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    if let Some(p) = &opts.profile {
        c.push("--profile".to_string());
        c.push(p.clone());
    }
    c.push("--format".to_string());
    c.push("json".to_string());
    c
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    let mut m = BTreeMap::new();
    m.insert("cpu".to_string(), Quantity(cpu.to_string()));
    m.insert("memory".to_string(), Quantity(memory.to_string()));
    m
}

/// What differs between the scan and watch containers; everything else
/// (uid 0 with every capability dropped but `add`, no privilege
/// escalation, read-only root, the runtime's default seccomp profile, one
/// read-only mount) is shared by [`root_container`].
struct RootContainer<'a> {
    name: &'a str,
    image: &'a str,
    command: Vec<String>,
    /// (cpu, memory) requested and the limits.
    requests: (&'a str, &'a str),
    limits: (&'a str, &'a str),
    /// Capabilities added back after dropping ALL.
    add: Option<Vec<String>>,
    /// The one volume, mounted read-only: (volume name, mount path).
    mount: (&'a str, &'a str),
}

fn root_container(c: RootContainer<'_>) -> Container {
    Container {
        name: c.name.to_string(),
        image: Some(c.image.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: Some(c.command),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(c.requests.0, c.requests.1)),
            limits: Some(quantities(c.limits.0, c.limits.1)),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                add: c.add,
                drop: Some(vec!["ALL".to_string()]),
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: c.mount.0.to_string(),
            mount_path: c.mount.1.to_string(),
            read_only: Some(true),
            ..Default::default()
        }]),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Default::default()
    }
}

fn scan_container(opts: &ManifestOptions) -> Container {
    // Host files the checks read (kubelet config, PKI keys, static pod
    // manifests) are owned by root with modes like 0600: uid 0 reads them
    // as their owner, which needs no capability at all.
    root_container(RootContainer {
        name: "scan",
        image: &opts.image,
        command: scan_command(opts),
        requests: ("50m", "64Mi"),
        limits: ("500m", "256Mi"),
        add: None,
        mount: ("host-root", HOST_ROOT),
    })
}

fn idle_container() -> Container {
    Container {
        name: "idle".to_string(),
        image: Some(IDLE_IMAGE.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        resources: Some(ResourceRequirements {
            requests: Some(quantities("1m", "8Mi")),
            limits: Some(quantities("10m", "16Mi")),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(65535),
            run_as_group: Some(65535),
            run_as_non_root: Some(true),
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn tolerations() -> Vec<Toleration> {
    [
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    ]
    .iter()
    .map(|k| Toleration {
        key: Some((*k).to_string()),
        operator: Some("Exists".to_string()),
        effect: Some("NoSchedule".to_string()),
        ..Default::default()
    })
    .collect()
}

fn pod_spec(opts: &ManifestOptions, node: Option<&str>) -> PodSpec {
    let mut spec = PodSpec {
        host_pid: Some(true),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        node_name: node.map(str::to_string),
        tolerations: Some(tolerations()),
        termination_grace_period_seconds: Some(5),
        security_context: Some(PodSecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        volumes: Some(vec![Volume {
            name: "host-root".to_string(),
            host_path: Some(HostPathVolumeSource {
                path: "/".to_string(),
                type_: Some("Directory".to_string()),
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    match opts.kind {
        WorkloadKind::Job => {
            spec.restart_policy = Some("Never".to_string());
            spec.containers = vec![scan_container(opts)];
        }
        // (The watch pod is built by `watch_daemon_set`.)
        WorkloadKind::DaemonSet | WorkloadKind::Watch => {
            // A DaemonSet pod must restart its containers, so the scan runs
            // once as an init container and a pause container keeps the pod
            // (and the scan's log) around until the DaemonSet is deleted.
            spec.restart_policy = Some("Always".to_string());
            spec.init_containers = Some(vec![scan_container(opts)]);
            spec.containers = vec![idle_container()];
        }
    }
    spec
}

fn job(opts: &ManifestOptions, node: Option<&str>) -> Job {
    let pod_labels = labels(&[("app.kubernetes.io/component", "scan")]);
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(node)),
            namespace: Some(opts.namespace.clone()),
            labels: Some(labels(&[])),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // The scan is deterministic and exits 1 when it finds an
            // unexpected failure: a retry would only repeat the finding.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(600),
            ttl_seconds_after_finished: Some(TTL_SECONDS_AFTER_FINISHED),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(pod_spec(opts, node)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn daemon_set(opts: &ManifestOptions) -> DaemonSet {
    let pod_labels = labels(&[("app.kubernetes.io/component", "scan")]);
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(APP_NAME.to_string()),
            namespace: Some(opts.namespace.clone()),
            labels: Some(labels(&[])),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(pod_labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(pod_spec(opts, None)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The command of the watch container: `ringfence watch` on the mounted
/// site file, reading the node's rules from the chosen source and checking
/// the flows on the chosen hook, printing JSON lines to stdout (the
/// container log).
pub fn watch_command(source: WatchSource, hook: WatchHook) -> Vec<String> {
    let site = format!("{WATCH_SITE_DIR}/{WATCH_SITE_KEY}");
    [
        "ringfence",
        "watch",
        "--site",
        site.as_str(),
        "--source",
        source.as_arg(),
        "--hook",
        hook.as_arg(),
        "--format",
        "json",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect()
}

/// The watch container's whole command: [`watch_command`], then the
/// interval, `--exec`, `--webhook` and `--record` flags that were given.
pub fn watch_args(opts: &ManifestOptions) -> Vec<String> {
    let mut argv = watch_command(opts.watch_source, opts.watch_hook);
    let x = &opts.watch_extras;
    for (flag, v) in [
        ("--interval", x.interval.as_deref()),
        ("--exec", x.exec.as_deref()),
        ("--webhook", x.webhook.as_deref()),
        ("--record", x.record.as_ref().map(|_| WATCH_RECORD_DIR)),
    ] {
        if let Some(v) = v {
            argv.push(flag.to_string());
            argv.push(v.to_string());
        }
    }
    argv
}

fn watch_service_account(opts: &ManifestOptions) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(WATCH_APP_NAME.to_string()),
            namespace: Some(opts.namespace.clone()),
            labels: Some(app_labels(WATCH_APP_NAME, &[])),
            ..Default::default()
        },
        // The watch never talks to the API server: no token, and no Role is
        // bound to this account.
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

fn watch_config_map(opts: &ManifestOptions) -> ConfigMap {
    let mut data = BTreeMap::new();
    data.insert(
        WATCH_SITE_KEY.to_string(),
        opts.site.clone().unwrap_or_default(),
    );
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(WATCH_SITE_CONFIG_MAP.to_string()),
            namespace: Some(opts.namespace.clone()),
            labels: Some(app_labels(WATCH_APP_NAME, &[])),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

fn watch_container(opts: &ManifestOptions) -> Container {
    // nft and iptables list rules over netlink (nfnetlink, or the legacy
    // getsockopt interface), and the kernel answers only a caller holding
    // CAP_NET_ADMIN in the node's network namespace, for reading as for
    // writing; `nft monitor` needs it to join the nftables multicast group
    // too. Kubernetes gives added capabilities to uid 0 only (a non-root
    // process would need file capabilities on nft and iptables-save, which
    // allowPrivilegeEscalation: false disables), so the container runs as
    // uid 0 with every other capability dropped and nothing of the host
    // mounted. Each re-read runs a full verify: memory grows with the
    // ruleset (kube-proxy's iptables mode writes many rules).
    let mut c = root_container(RootContainer {
        name: "watch",
        image: &opts.image,
        command: watch_args(opts),
        requests: ("50m", "128Mi"),
        limits: ("1", "512Mi"),
        add: Some(vec!["NET_ADMIN".to_string()]),
        mount: ("site", WATCH_SITE_DIR),
    });
    // --record: the one writable mount, the history directory of the node.
    if opts.watch_extras.record.is_some() {
        if let Some(m) = &mut c.volume_mounts {
            m.push(VolumeMount {
                name: "history".to_string(),
                mount_path: WATCH_RECORD_DIR.to_string(),
                read_only: Some(false),
                ..Default::default()
            });
        }
    }
    c
}

fn watch_daemon_set(opts: &ManifestOptions) -> DaemonSet {
    let pod_labels = app_labels(WATCH_APP_NAME, &[("app.kubernetes.io/component", "watch")]);
    let pod = PodSpec {
        // The node's netfilter rules live in its network namespace.
        host_network: Some(true),
        service_account_name: Some(WATCH_APP_NAME.to_string()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        tolerations: Some(tolerations()),
        restart_policy: Some("Always".to_string()),
        // watch stops cleanly on SIGTERM (it kills and waits for nft monitor).
        termination_grace_period_seconds: Some(10),
        security_context: Some(PodSecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        containers: vec![watch_container(opts)],
        volumes: Some(vec![Volume {
            name: "site".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: WATCH_SITE_CONFIG_MAP.to_string(),
                items: Some(vec![KeyToPath {
                    key: WATCH_SITE_KEY.to_string(),
                    path: WATCH_SITE_KEY.to_string(),
                    mode: None,
                }]),
                default_mode: Some(0o444),
                optional: Some(false),
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let mut pod = pod;
    if let (Some(dir), Some(vols)) = (&opts.watch_extras.record, &mut pod.volumes) {
        // The history outlives the pod (restarts, upgrades): a node directory,
        // created when missing, holding nothing but the watch's segments.
        vols.push(Volume {
            name: "history".to_string(),
            host_path: Some(HostPathVolumeSource {
                path: dir.clone(),
                type_: Some("DirectoryOrCreate".to_string()),
            }),
            ..Default::default()
        });
    }
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(WATCH_APP_NAME.to_string()),
            namespace: Some(opts.namespace.clone()),
            labels: Some(app_labels(WATCH_APP_NAME, &[])),
            ..Default::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(pod_labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_are_labels_even_for_long_node_names() {
        assert_eq!(job_name(None), "ringfence-cis");
        assert_eq!(
            job_name(Some("cp-1.example.com")),
            "ringfence-cis-cp-1-example-com"
        );
        let long_a = format!("{}.a", "n".repeat(80));
        let long_b = format!("{}.b", "n".repeat(80));
        let (a, b) = (job_name(Some(&long_a)), job_name(Some(&long_b)));
        assert!(a.len() <= 63 && is_dns_label(&a), "{a}");
        assert_ne!(a, b, "distinct long node names must give distinct Jobs");
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let mut o = ManifestOptions {
            namespace: "Ring_Fence".into(),
            ..Default::default()
        };
        assert!(matches!(build(&o), Err(OptionsError::Namespace(_))));
        o.namespace = "ok".into();
        o.nodes = vec!["Node A".into()];
        assert!(matches!(build(&o), Err(OptionsError::Node(_))));
        o.nodes = vec!["node-a".into()];
        o.kind = WorkloadKind::DaemonSet;
        assert_eq!(build(&o).unwrap_err(), OptionsError::NodesWithDaemonSet);
        o.kind = WorkloadKind::Job;
        o.image = "has space".into();
        assert!(matches!(build(&o), Err(OptionsError::Image(_))));
    }

    #[test]
    fn one_job_per_distinct_node_sorted() {
        let o = ManifestOptions {
            nodes: vec!["w-2".into(), "cp-1".into(), "w-2".into()],
            include_namespace: false,
            ..Default::default()
        };
        let names: Vec<String> = build(&o)
            .unwrap()
            .into_iter()
            .map(|m| match m {
                Manifest::Job(j) => j.metadata.name.unwrap(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(names, ["ringfence-cis-cp-1", "ringfence-cis-w-2"]);
    }
}
