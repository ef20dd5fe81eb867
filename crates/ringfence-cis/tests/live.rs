//! Live mode: components found as running processes in /proc.
//!
//! A real etcd (Debian's etcd-server) is started on loopback with TLS material
//! this test generates, next to stand-in processes whose argv carries the
//! other components' flags (`/bin/sh` run under the component's name). Every
//! process is killed when the test ends, on failure too.

use ringfence_cis::benchmark::{Benchmark, Target};
use ringfence_cis::component::Component;
use ringfence_cis::node::{discover, DiscoverOptions, Source};
use ringfence_cis::profile::Date;
use ringfence_cis::report::{scan, ScanOptions, Status};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills and reaps every child on drop.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tls(dir: &Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "rf-live-etcd-ca");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
    for name in ["server", "peer"] {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name
            .push(DnType::CommonName, format!("rf-live-{name}"));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// A long-running stand-in whose /proc cmdline is `name flags...`.
fn stand_in(name: &str, flags: &[&str]) -> Child {
    Command::new("/bin/sh")
        .arg0(name)
        .arg("-c")
        .arg("while :; do sleep 1; done")
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn stand-in")
}

#[test]
fn live_scan_reads_a_real_etcd_and_component_processes_from_proc() {
    let etcd = Path::new("/usr/bin/etcd");
    if !ringfence_testkit::require!(ringfence_testkit::Need::File {
        path: etcd.into(),
        install: "apt-get install etcd-server",
    }) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    tls(&pki);
    let data = dir.path().join("etcd-data");
    let (client, peer) = (free_port(), free_port());
    let p = |f: &str| pki.join(f).display().to_string();
    let client_url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("https://127.0.0.1:{peer}");
    let mut children = Children(Vec::new());
    children.0.push(
        Command::new(etcd)
            .args([
                "--name=rf-live".to_string(),
                format!("--data-dir={}", data.display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=rf-live={peer_url}"),
                format!("--cert-file={}", p("server.crt")),
                format!("--key-file={}", p("server.key")),
                "--client-cert-auth=true".to_string(),
                format!("--trusted-ca-file={}", p("ca.crt")),
                format!("--peer-cert-file={}", p("peer.crt")),
                format!("--peer-key-file={}", p("peer.key")),
                "--peer-client-cert-auth=true".to_string(),
                format!("--peer-trusted-ca-file={}", p("ca.crt")),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd"),
    );
    children.0.push(stand_in(
        "kube-apiserver",
        &[
            "--profiling=false",
            "--authorization-mode=Node,RBAC",
            "--anonymous-auth=false",
            "--secure-port",
            "6443",
        ],
    ));
    children.0.push(stand_in(
        "kube-controller-manager",
        &["--profiling", "--bind-address=0.0.0.0"],
    ));
    children.0.push(stand_in(
        "kube-scheduler",
        &["--profiling=true", "--profiling=false"],
    ));
    children.0.push(stand_in(
        "kubelet",
        &["--protect-kernel-defaults", "--read-only-port=10255"],
    ));

    // Wait until etcd serves on its client port (loopback only).
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "etcd did not start"
        );
        if let Ok(Some(status)) = children.0[0].try_wait() {
            panic!("etcd exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pids: Vec<u32> = children.0.iter().map(Child::id).collect();
    let node = discover(&DiscoverOptions {
        root: None,
        proc_dir: None,
        kubernetes_version: Some("1.18.0".into()),
        only_pids: Some(pids.clone()),
    })
    .unwrap();
    for (c, pid) in [
        (Component::Etcd, pids[0]),
        (Component::Apiserver, pids[1]),
        (Component::ControllerManager, pids[2]),
        (Component::Scheduler, pids[3]),
        (Component::Kubelet, pids[4]),
    ] {
        let f = &node.components[&c];
        assert_eq!(f.source, Source::Process, "{c}");
        assert_eq!(f.path, format!("/proc/{pid}/cmdline"), "{c}");
    }
    let bench = Benchmark::embedded("cis-1.6").unwrap();
    let r = scan(
        &bench,
        &node,
        &ScanOptions {
            targets: Some(vec![Target::Master, Target::Etcd, Target::Node]),
            checks: Some(vec![
                "2".into(),
                "1.1.11".into(),
                "1.2.1".into(),
                "1.2.20".into(),
                "1.2.21".into(),
                "1.3.2".into(),
                "1.3.7".into(),
                "1.4.1".into(),
                "4.2.4".into(),
                "4.2.6".into(),
            ]),
            profile: None,
            waivers: &[],
            today: Date::today(),
        },
    );
    let status = |id: &str| {
        let c = r.checks.iter().find(|c| c.id == id).unwrap();
        (c.status, c.actual.clone())
    };
    for id in ["2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "2.7"] {
        assert_eq!(status(id).0, Status::Pass, "{id}");
    }
    let c = r.checks.iter().find(|c| c.id == "2.2").unwrap();
    assert_eq!(c.evidence.as_ref().unwrap().source, "process");
    // etcd created its data directory 700.
    assert_eq!(status("1.1.11"), (Status::Pass, Some("700".into())));
    assert_eq!(status("1.2.1").0, Status::Pass);
    // `--secure-port 6443` (space-separated) is a number above 0.
    assert_eq!(status("1.2.20"), (Status::Pass, Some("6443".into())));
    assert_eq!(status("1.2.21"), (Status::Pass, Some("false".into())));
    // A bare --profiling is true.
    assert_eq!(status("1.3.2"), (Status::Fail, Some("true".into())));
    assert_eq!(status("1.3.7").0, Status::Fail);
    // Repeated flag: the last one wins.
    assert_eq!(status("1.4.1"), (Status::Pass, Some("false".into())));
    assert_eq!(status("4.2.6"), (Status::Pass, Some("true".into())));
    assert_eq!(status("4.2.4"), (Status::Warn, Some("10255".into())));
    drop(children);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}/cmdline")).exists()
                || std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| b.is_empty())
                    .unwrap_or(true),
            "{pid} still running"
        );
    }
}

#[test]
fn a_containerised_components_config_is_read_through_its_own_root() {
    if !ringfence_testkit::require!(
        ringfence_testkit::Need::Root,
        ringfence_testkit::Need::File {
            path: "/usr/bin/unshare".into(),
            install: "apt-get install util-linux",
        }
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg_dir = dir.path().join("kube-proxy");
    std::fs::create_dir(&cfg_dir).unwrap();
    let cfg = cfg_dir.join("config.conf");
    // The stand-in kube-proxy gets a private tmpfs over cfg_dir holding its
    // config: the host's view of cfg_dir stays empty, as with a ConfigMap
    // mounted into a DaemonSet pod.
    let script = format!(
        "mount -t tmpfs rf-test {d} && printf 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\\nkind: KubeProxyConfiguration\\nmetricsBindAddress: 127.0.0.1:10249\\n' > {c} && exec -a kube-proxy /bin/sh -c 'while :; do sleep 1; done' --config={c} --v=2",
        d = cfg_dir.display(),
        c = cfg.display()
    );
    let mut children = Children(vec![Command::new("/usr/bin/unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "/usr/bin/bash",
            "-c",
            &script,
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn unshare")]);
    let pid = children.0[0].id();
    let start = Instant::now();
    loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"kube-proxy\0") {
            break;
        }
        if let Ok(Some(status)) = children.0[0].try_wait() {
            panic!("stand-in exited: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "stand-in did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!cfg.exists(), "the host must not see the private mount");
    let node = discover(&DiscoverOptions {
        root: None,
        proc_dir: None,
        kubernetes_version: None,
        only_pids: Some(vec![pid]),
    })
    .unwrap();
    let proxy = &node.components[&Component::Proxy];
    assert_eq!(
        proxy.config.as_ref().unwrap().path,
        cfg.display().to_string()
    );
    let bench = Benchmark::embedded("cis-1.10").unwrap();
    let r = scan(
        &bench,
        &node,
        &ScanOptions {
            targets: Some(vec![Target::Node]),
            checks: Some(vec!["4.3.1".into()]),
            profile: None,
            waivers: &[],
            today: Date::today(),
        },
    );
    let c = &r.checks[0];
    assert_eq!(c.status, Status::Pass);
    assert_eq!(c.actual.as_deref(), Some("127.0.0.1:10249"));
    assert_eq!(c.evidence.as_ref().unwrap().source, "config");
    drop(children);
}
