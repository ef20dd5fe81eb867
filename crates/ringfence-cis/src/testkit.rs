//! Node filesystems for tests, benchmarks and `cis scan --example`.
//!
//! [`NodeRoot`] writes files with exact modes and owners (ownership needs
//! root); [`tkg_control_plane`] and [`worker`] build kubeadm/TKG-style nodes:
//! a control plane whose only CIS v1.6 failures are the seven TKG expects,
//! and worker nodes whose kubelet is configured by flags only or by config
//! file only.

use std::cell::RefCell;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// A node root directory being built.
///
/// Built with [`NodeRoot::new`] (for tests) a failed write panics; built
/// with [`NodeRoot::lenient`] (for `cis scan --example`) the first failure is
/// kept and [`NodeRoot::finish`] returns it.
pub struct NodeRoot {
    root: PathBuf,
    /// `None`: panic on failure; otherwise the failures so far.
    failures: Option<RefCell<Vec<String>>>,
}

/// Whether this process can set file ownership (it runs as root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl NodeRoot {
    /// Start building at `root` (created if needed); failures panic.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        std::fs::create_dir_all(&root).expect("create node root");
        NodeRoot {
            root,
            failures: None,
        }
    }

    /// Start building at `root` (created if needed); failures are kept for
    /// [`NodeRoot::finish`].
    pub fn lenient(root: impl Into<PathBuf>) -> Self {
        let n = NodeRoot {
            root: root.into(),
            failures: Some(RefCell::new(Vec::new())),
        };
        n.io(std::fs::create_dir_all(&n.root), "create node root");
        n
    }

    /// The first failure of a lenient build, if any.
    pub fn finish(&self) -> Result<(), String> {
        match self
            .failures
            .as_ref()
            .and_then(|f| f.borrow().first().cloned())
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn io<T>(&self, r: std::io::Result<T>, what: &str) -> Option<T> {
        match (r, &self.failures) {
            (Ok(v), _) => Some(v),
            (Err(e), None) => panic!("{what}: {e}"),
            (Err(e), Some(f)) => {
                f.borrow_mut().push(format!("{what}: {e}"));
                None
            }
        }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn parent_dir(&self, p: &Path) {
        if let Some(parent) = p.parent() {
            self.io(std::fs::create_dir_all(parent), "mkdir");
        }
    }

    /// Write a file with a mode, owned by root:root.
    pub fn file(&self, path: &str, content: &str, mode: u32) -> &Self {
        let p = self.host(path);
        self.parent_dir(&p);
        self.io(std::fs::write(&p, content), "write");
        self.io(
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)),
            "chmod",
        );
        self.owner(path, 0, 0)
    }

    /// Create a directory with a mode, owned by root:root.
    pub fn dir(&self, path: &str, mode: u32) -> &Self {
        let p = self.host(path);
        self.io(std::fs::create_dir_all(&p), "mkdir");
        self.io(
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)),
            "chmod",
        );
        self.owner(path, 0, 0)
    }

    /// Change a path's mode.
    pub fn chmod(&self, path: &str, mode: u32) -> &Self {
        self.io(
            std::fs::set_permissions(self.host(path), std::fs::Permissions::from_mode(mode)),
            "chmod",
        );
        self
    }

    /// Change a path's owner (only when running as root; otherwise a no-op).
    pub fn owner(&self, path: &str, uid: u32, gid: u32) -> &Self {
        if is_root() {
            self.io(chown(self.host(path), Some(uid), Some(gid)), "chown");
        }
        self
    }

    /// Create a symlink at `path` pointing to `target` (written as given).
    pub fn link(&self, path: &str, target: &str) -> &Self {
        let p = self.host(path);
        self.parent_dir(&p);
        let _ = std::fs::remove_file(&p);
        self.io(symlink(target, &p), "symlink");
        self
    }

    /// Remove a file.
    pub fn remove(&self, path: &str) -> &Self {
        self.io(std::fs::remove_file(self.host(path)), "remove");
        self
    }
}

/// The etcd user id in the fixtures' `/etc/passwd` (absent on most hosts).
pub const ETCD_UID: u32 = 4242;

fn accounts(n: &NodeRoot, with_etcd: bool) {
    let mut passwd = String::from(
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n",
    );
    let mut group = String::from("root:x:0:\ndaemon:x:1:\n");
    if with_etcd {
        passwd.push_str(&format!(
            "etcd:x:{ETCD_UID}:{ETCD_UID}:etcd:/var/lib/etcd:/usr/sbin/nologin\n"
        ));
        group.push_str(&format!("etcd:x:{ETCD_UID}:\n"));
    }
    n.file("/etc/passwd", &passwd, 0o644);
    n.file("/etc/group", &group, 0o644);
}

fn static_pod(name: &str, image: &str, command: &[&str]) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: kube-system\n  labels:\n    component: {name}\n    tier: control-plane\nspec:\n  hostNetwork: true\n  priorityClassName: system-node-critical\n  containers:\n  - name: {name}\n    image: {image}\n    imagePullPolicy: IfNotPresent\n    command:\n"
    );
    for c in command {
        s.push_str(&format!("    - {c}\n"));
    }
    s.push_str("    volumeMounts:\n    - mountPath: /etc/kubernetes/pki\n      name: k8s-certs\n      readOnly: true\n  volumes:\n  - hostPath:\n      path: /etc/kubernetes/pki\n      type: DirectoryOrCreate\n    name: k8s-certs\n");
    s
}

const IMAGE_REPO: &str = "projects.registry.vmware.com/tkg";
/// The Kubernetes version of the TKG v1.5.1 fixtures.
pub const TKG_K8S: &str = "v1.22.5_vmware.1";

/// The kube-apiserver flags of the TKG-style control plane.
pub fn apiserver_flags() -> Vec<String> {
    [
        "--advertise-address=10.0.0.10",
        "--allow-privileged=true",
        "--audit-log-maxage=30",
        "--audit-log-maxbackup=10",
        "--audit-log-maxsize=100",
        "--audit-log-path=/var/log/kubernetes/audit.log",
        "--audit-policy-file=/etc/kubernetes/audit-policy.yaml",
        "--authorization-mode=Node,RBAC",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--cloud-provider=external",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
        "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
        "--etcd-servers=https://127.0.0.1:2379",
        "--insecure-port=0",
        "--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt",
        "--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        "--proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt",
        "--proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
        "--secure-port=6443",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
        "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key",
        "--service-cluster-ip-range=100.64.0.0/13",
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
        "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// kube-controller-manager flags.
pub fn controller_manager_flags() -> Vec<String> {
    [
        "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--bind-address=127.0.0.1",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt",
        "--cluster-signing-key-file=/etc/kubernetes/pki/ca.key",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--leader-elect=true",
        "--root-ca-file=/etc/kubernetes/pki/ca.crt",
        "--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
        "--terminated-pod-gc-threshold=500",
        "--use-service-account-credentials=true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// kube-scheduler flags.
pub fn scheduler_flags() -> Vec<String> {
    [
        "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
        "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
        "--bind-address=127.0.0.1",
        "--kubeconfig=/etc/kubernetes/scheduler.conf",
        "--leader-elect=true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// etcd flags (data in /var/lib/etcd).
pub fn etcd_flags() -> Vec<String> {
    [
        "--advertise-client-urls=https://10.0.0.10:2379",
        "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
        "--client-cert-auth=true",
        "--data-dir=/var/lib/etcd",
        "--initial-advertise-peer-urls=https://10.0.0.10:2380",
        "--key-file=/etc/kubernetes/pki/etcd/server.key",
        "--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.10:2379",
        "--name=tkg-cp-0",
        "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
        "--peer-client-cert-auth=true",
        "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
        "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
        "--snapshot-count=10000",
        "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn manifest(n: &NodeRoot, file: &str, name: &str, flags: &[String]) {
    let mut cmd: Vec<&str> = vec![name];
    cmd.extend(flags.iter().map(String::as_str));
    let image = format!("{IMAGE_REPO}/{name}:{TKG_K8S}");
    n.file(
        &format!("/etc/kubernetes/manifests/{file}"),
        &static_pod(name, &image, &cmd),
        0o600,
    );
}

const KUBEADM_DROPIN: &str = "# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
# This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime.
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# A file users may use to override the kubelet arguments.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

const KUBELET_UNIT: &str = "[Unit]
Description=kubelet: The Kubernetes Node Agent
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
";

/// The TKG-style kubelet config file (no protectKernelDefaults: check 4.2.6).
pub const KUBELET_CONFIG: &str = "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 100.64.0.10
clusterDomain: cluster.local
eventRecordQPS: 0
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 4h0m0s
tlsCipherSuites:
- TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
- TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
";

fn pki(n: &NodeRoot) {
    n.dir("/etc/kubernetes/pki", 0o755);
    n.dir("/etc/kubernetes/pki/etcd", 0o755);
    for c in [
        "ca",
        "apiserver",
        "apiserver-kubelet-client",
        "apiserver-etcd-client",
        "front-proxy-ca",
        "front-proxy-client",
        "etcd/ca",
        "etcd/server",
        "etcd/peer",
    ] {
        n.file(
            &format!("/etc/kubernetes/pki/{c}.crt"),
            "-----BEGIN CERTIFICATE-----\n",
            0o644,
        );
        n.file(
            &format!("/etc/kubernetes/pki/{c}.key"),
            "-----BEGIN PRIVATE KEY-----\n",
            0o600,
        );
    }
    n.file(
        "/etc/kubernetes/pki/sa.key",
        "-----BEGIN PRIVATE KEY-----\n",
        0o600,
    );
    n.file(
        "/etc/kubernetes/pki/sa.pub",
        "-----BEGIN PUBLIC KEY-----\n",
        0o644,
    );
}

fn kubelet_systemd(n: &NodeRoot, kubeadm_args: &str) {
    n.file(
        "/usr/lib/systemd/system/kubelet.service",
        KUBELET_UNIT,
        0o644,
    );
    n.file(
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        KUBEADM_DROPIN,
        0o644,
    );
    n.file(
        "/var/lib/kubelet/kubeadm-flags.env",
        &format!("KUBELET_KUBEADM_ARGS=\"{kubeadm_args}\"\n"),
        0o644,
    );
    n.file(
        "/etc/kubernetes/kubelet.conf",
        "apiVersion: v1\nkind: Config\n",
        0o600,
    );
    n.file(
        "/etc/kubernetes/bootstrap-kubelet.conf",
        "apiVersion: v1\nkind: Config\n",
        0o600,
    );
}

const KUBEADM_ARGS: &str = "--container-runtime=remote --container-runtime-endpoint=/var/run/containerd/containerd.sock --pod-infra-container-image=projects.registry.vmware.com/tkg/pause:3.5";

/// A TKG v1.5.1-style control-plane node laid out as kubeadm and Antrea
/// leave it: static pod manifests, the kubelet from systemd with its config
/// file in /var/lib/kubelet, Antrea's CNI config and its host-local IPAM
/// state. On cis-1.6 it fails exactly the seven checks of the `tkg-1.5`
/// profile.
pub fn tkg_control_plane(root: impl Into<PathBuf>) -> NodeRoot {
    let n = NodeRoot::new(root);
    build_tkg_control_plane(&n);
    n
}

/// Write the example node of `cis scan --example` (the control plane of
/// [`tkg_control_plane`]) under `dir`. When not run as root its files belong
/// to the running user, whom the example's own `etc/passwd` and `etc/group`
/// then name `root`, so owner checks read as on a real node.
pub fn example_control_plane(dir: &Path) -> Result<(), String> {
    let n = NodeRoot::lenient(dir);
    build_tkg_control_plane(&n);
    if !is_root() {
        // SAFETY: getuid and getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        n.file(
            "/etc/passwd",
            &format!("root:x:{uid}:{gid}:root:/root:/bin/bash\n"),
            0o644,
        );
        n.file("/etc/group", &format!("root:x:{gid}:\n"), 0o644);
    }
    n.finish()
}

fn build_tkg_control_plane(n: &NodeRoot) {
    accounts(n, false);
    n.file("/etc/hostname", "tkg-cp-0\n", 0o644);
    n.dir("/etc/kubernetes/manifests", 0o755);
    let mut cmd = vec!["kube-apiserver".to_string()];
    cmd.extend(apiserver_flags());
    let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
    n.file(
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        &static_pod(
            "kube-apiserver",
            &format!("{IMAGE_REPO}/kube-apiserver:{TKG_K8S}"),
            &refs,
        ),
        0o600,
    );
    manifest(
        n,
        "kube-controller-manager.yaml",
        "kube-controller-manager",
        &controller_manager_flags(),
    );
    manifest(
        n,
        "kube-scheduler.yaml",
        "kube-scheduler",
        &scheduler_flags(),
    );
    manifest(n, "etcd.yaml", "etcd", &etcd_flags());
    for f in ["admin.conf", "scheduler.conf", "controller-manager.conf"] {
        n.file(
            &format!("/etc/kubernetes/{f}"),
            "apiVersion: v1\nkind: Config\n",
            0o600,
        );
    }
    n.file(
        "/etc/kubernetes/audit-policy.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\n",
        0o600,
    );
    pki(n);
    n.dir("/var/lib/etcd", 0o700);
    n.dir("/var/lib/etcd/member", 0o700);
    kubelet_systemd(n, KUBEADM_ARGS);
    n.file("/var/lib/kubelet/config.yaml", KUBELET_CONFIG, 0o644);
    n.dir("/etc/cni/net.d", 0o755);
    n.file(
        "/etc/cni/net.d/10-antrea.conflist",
        "{\"cniVersion\":\"0.3.0\",\"name\":\"antrea\",\"plugins\":[{\"type\":\"antrea\",\"ipam\":{\"type\":\"host-local\"}}]}\n",
        0o644,
    );
    // Antrea allocates pod addresses with the host-local IPAM plugin, which
    // keeps one file per address (and its lock) under /var/lib/cni/networks.
    n.dir("/var/lib/cni/networks/antrea", 0o755);
    n.file("/var/lib/cni/networks/antrea/lock", "", 0o644);
    n.file(
        "/var/lib/cni/networks/antrea/100.96.0.2",
        "5f1c0e6b9a2d\neth0",
        0o644,
    );
    n.file(
        "/var/lib/cni/networks/antrea/last_reserved_ip.0",
        "100.96.0.2",
        0o644,
    );
}

/// [`tkg_control_plane`] with two files moved behind symlinks, as some image
/// builds and configuration tools do: the API server manifest becomes a
/// relative link into /opt/tkg/manifests and the kubelet config an absolute
/// link to /etc/kubelet/config.yaml. Both links must resolve inside the
/// root. kube-bench's `stat -c %a` reports a link's own mode (777) here, where
/// a check of the file itself sees 600 and 644.
pub fn tkg_control_plane_linked(root: impl Into<PathBuf>) -> NodeRoot {
    let n = tkg_control_plane(root);
    n.dir("/opt/tkg/manifests", 0o755);
    std::fs::rename(
        n.host("/etc/kubernetes/manifests/kube-apiserver.yaml"),
        n.host("/opt/tkg/manifests/kube-apiserver.yaml"),
    )
    .expect("move the manifest");
    n.link(
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "../../../opt/tkg/manifests/kube-apiserver.yaml",
    );
    n.dir("/etc/kubelet", 0o755);
    std::fs::rename(
        n.host("/var/lib/kubelet/config.yaml"),
        n.host("/etc/kubelet/config.yaml"),
    )
    .expect("move the kubelet config");
    n.link("/var/lib/kubelet/config.yaml", "/etc/kubelet/config.yaml");
    n
}

/// How a worker's kubelet is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeletStyle {
    /// Every setting on the command line; no config file.
    FlagsOnly,
    /// Every setting in the config file; only `--config` on the command line.
    ConfigOnly,
}

/// A worker node whose kubelet meets every scored cis-1.6 node check.
pub fn worker(root: impl Into<PathBuf>, style: KubeletStyle) -> NodeRoot {
    let n = NodeRoot::new(root);
    accounts(&n, false);
    n.file("/etc/hostname", "tkg-md-0\n", 0o644);
    pki(&n);
    match style {
        KubeletStyle::FlagsOnly => {
            let flags = format!(
                "{KUBEADM_ARGS} --anonymous-auth=false --authorization-mode Webhook --client-ca-file=/etc/kubernetes/pki/ca.crt --read-only-port=0 --protect-kernel-defaults --make-iptables-util-chains=true --rotate-certificates --event-qps=0 --streaming-connection-idle-timeout=5m"
            );
            n.file(
                "/usr/lib/systemd/system/kubelet.service",
                KUBELET_UNIT,
                0o644,
            );
            n.file(
                "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
                "[Service]\nEnvironment=\"KUBELET_KUBECONFIG_ARGS=--kubeconfig=/etc/kubernetes/kubelet.conf\"\nEnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_KUBEADM_ARGS\n",
                0o644,
            );
            n.file(
                "/var/lib/kubelet/kubeadm-flags.env",
                &format!("KUBELET_KUBEADM_ARGS=\"{flags}\"\n"),
                0o644,
            );
            n.file(
                "/etc/kubernetes/kubelet.conf",
                "apiVersion: v1\nkind: Config\n",
                0o600,
            );
        }
        KubeletStyle::ConfigOnly => {
            kubelet_systemd(&n, KUBEADM_ARGS);
            let cfg = format!("{KUBELET_CONFIG}protectKernelDefaults: true\nreadOnlyPort: 0\n");
            n.file("/var/lib/kubelet/config.yaml", &cfg, 0o644);
        }
    }
    n
}

/// Add a running kube-proxy to a node root, as a kube-proxy DaemonSet pod
/// shows it: a process entry under `ROOT/proc` (command line and command
/// name) whose flags bind the metrics endpoint to localhost and name its
/// kubeconfig, `/etc/kubernetes/proxy.conf` (mode 600, root:root). Every
/// kube-proxy check of the benchmarks then has its component and file.
pub fn with_kube_proxy(n: &NodeRoot) -> &NodeRoot {
    let argv = [
        "/usr/local/bin/kube-proxy",
        "--kubeconfig=/etc/kubernetes/proxy.conf",
        "--metrics-bind-address=127.0.0.1:10249",
    ];
    let mut cmdline = argv.join("\0");
    cmdline.push('\0');
    n.file("/proc/4711/cmdline", &cmdline, 0o444);
    n.file("/proc/4711/comm", "kube-proxy\n", 0o444);
    n.file(
        "/etc/kubernetes/proxy.conf",
        "apiVersion: v1\nkind: Config\n",
        0o600,
    )
}
