//! Hostile node roots: every read of a `--root` scan, the process table
//! included, stays inside the root, never opens a FIFO or a device, never
//! reads more than the size cap, and never consults the scanning host.
//!
//! Each scan runs in its own thread with a deadline, so a scan that blocks
//! (on a FIFO it opened) fails its test instead of hanging the suite.

use ringfence_cis::benchmark::Benchmark;
use ringfence_cis::component::Component;
use ringfence_cis::kubebench::audit::ProcTable;
use ringfence_cis::node::{discover, DiscoverOptions, Node, Source};
use ringfence_cis::profile::Date;
use ringfence_cis::report::{scan, Report, ScanOptions, Status};
use ringfence_cis::testkit::{self, KubeletStyle};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A scan must finish in well under a second; past this it is stuck.
const DEADLINE: Duration = Duration::from_secs(5);

/// Discover and scan (cis-1.6, every target the node's roles call for) in a
/// thread; panic when it does not finish before [`DEADLINE`]. Returns the
/// node, the report and how long it took.
fn scan_with_deadline(opts: DiscoverOptions) -> (Node, Report, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        let node = discover(&opts).expect("discovery succeeds");
        let bench = Benchmark::embedded("cis-1.6").unwrap();
        let report = scan(
            &bench,
            &node,
            &ScanOptions {
                targets: None,
                checks: None,
                profile: None,
                waivers: &[],
                today: Date::parse("2026-01-01").unwrap(),
            },
        );
        let _ = tx.send((node, report, start.elapsed()));
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(r) => r,
        Err(_) => panic!("the scan did not finish within {DEADLINE:?}: it blocked"),
    }
}

fn in_root(root: &Path) -> DiscoverOptions {
    DiscoverOptions {
        root: Some(root.to_path_buf()),
        ..Default::default()
    }
}

fn mkfifo(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(p);
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

fn write(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(p);
    std::fs::write(p, bytes).unwrap();
}

fn link(p: &Path, target: impl AsRef<Path>) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(p);
    symlink(target, p).unwrap();
}

/// A NUL-separated command line.
fn cmdline(argv: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for a in argv {
        v.extend_from_slice(a.as_bytes());
        v.push(0);
    }
    v
}

/// A temporary directory holding `root/` and, beside it, files a scan of
/// `root` must never read.
struct Hostile {
    base: tempfile::TempDir,
}

impl Hostile {
    fn new() -> Self {
        let base = tempfile::tempdir().unwrap();
        std::fs::create_dir(base.path().join("root")).unwrap();
        Hostile { base }
    }
    fn root(&self) -> PathBuf {
        self.base.path().join("root")
    }
    fn r(&self, p: &str) -> PathBuf {
        self.root().join(p.trim_start_matches('/'))
    }
    fn outside(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }
}

fn status<'a>(r: &'a Report, id: &str) -> &'a ringfence_cis::report::CheckResult {
    r.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

/// An outside file with a kube-apiserver command line that would fail
/// 1.2.21 (`--profiling=true`) and a marker no report may contain.
const OUTSIDE_ARGV: [&str; 4] = [
    "kube-apiserver",
    "--profiling=true",
    "--anonymous-auth=true",
    "--token-auth-file=/OUTSIDE-MARKER",
];

#[test]
fn a_cmdline_symlinked_out_of_the_root_is_resolved_inside_it() {
    let h = Hostile::new();
    write(&h.outside("cmdline"), &cmdline(&OUTSIDE_ARGV));
    // Inside the root, at the place the links land when kept inside: a
    // secure command line.
    let inside = cmdline(&["kube-apiserver", "--profiling=false"]);
    write(&h.r("/cmdline"), &inside);
    // By absolute host path (means ROOT/<that path>: absent), and by `..`s
    // (clamped at the root: ROOT/cmdline).
    link(&h.r("/proc/100/cmdline"), h.outside("cmdline"));
    link(
        &h.r("/proc/200/cmdline"),
        "../../../../../../../../../../cmdline",
    );
    // A whole pid directory pointing at the host's own process.
    link(&h.r("/proc/300"), "/proc/self");
    let (node, report, took) = scan_with_deadline(in_root(&h.root()));
    let api = &node.components[&Component::Apiserver];
    assert_eq!(api.source, Source::Process);
    assert_eq!(api.path, "/proc/200/cmdline");
    assert_eq!(api.args, vec!["--profiling=false"]);
    let c = status(&report, "1.2.21");
    assert_eq!(c.status, Status::Pass, "{c:?}");
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("OUTSIDE-MARKER"), "an outside byte was used");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn a_fifo_as_a_process_cmdline_is_noted_and_never_opened() {
    let h = Hostile::new();
    testkit::worker(h.root(), KubeletStyle::ConfigOnly);
    mkfifo(&h.r("/proc/100/cmdline"));
    write(
        &h.r("/proc/101/cmdline"),
        &cmdline(&["kube-proxy", "--v=2"]),
    );
    let (node, _report, took) = scan_with_deadline(in_root(&h.root()));
    assert!(
        node.notes
            .iter()
            .any(|n| n == "process skipped: /proc/100/cmdline: not a regular file"),
        "{:?}",
        node.notes
    );
    // The readable neighbour is still found.
    assert_eq!(node.components[&Component::Proxy].pid, Some(101));
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn a_fifo_as_the_kubelet_config_never_blocks_and_its_settings_are_not_assessed() {
    let h = Hostile::new();
    testkit::worker(h.root(), KubeletStyle::ConfigOnly);
    mkfifo(&h.r("/var/lib/kubelet/config.yaml"));
    let (node, report, took) = scan_with_deadline(in_root(&h.root()));
    let kubelet = &node.components[&Component::Kubelet];
    assert!(kubelet.config.is_none());
    assert_eq!(
        kubelet.config_error.as_deref(),
        Some("--config /var/lib/kubelet/config.yaml: not a regular file")
    );
    // Settings the config file would hold cannot be judged: never a pass.
    for id in ["4.2.1", "4.2.4", "4.2.6", "4.2.11"] {
        let c = status(&report, id);
        assert_eq!(c.status, Status::NotAssessed, "{id}: {c:?}");
        assert!(
            c.reason
                .as_deref()
                .is_some_and(|r| r.contains("not a regular file")),
            "{id}: {c:?}"
        );
    }
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn link_loops_in_the_process_table_and_config_end_with_a_note() {
    let h = Hostile::new();
    testkit::worker(h.root(), KubeletStyle::ConfigOnly);
    link(&h.r("/proc/100/cmdline"), "/proc/100/cmdline");
    link(&h.r("/proc/101/cmdline"), "loop-b");
    link(&h.r("/proc/101/loop-b"), "cmdline");
    link(
        &h.r("/var/lib/kubelet/config.yaml"),
        "/var/lib/kubelet/config.yaml",
    );
    let (node, report, took) = scan_with_deadline(in_root(&h.root()));
    for pid in [100, 101] {
        let note =
            format!("process skipped: /proc/{pid}/cmdline: too many levels of symbolic links");
        assert!(node.notes.contains(&note), "{:?}", node.notes);
    }
    assert_eq!(status(&report, "4.2.1").status, Status::NotAssessed);
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn huge_files_are_refused_at_the_size_cap_without_reading_them() {
    let h = Hostile::new();
    testkit::worker(h.root(), KubeletStyle::ConfigOnly);
    // 5 GiB sparse files: reading them would take seconds and gigabytes.
    for p in ["/proc/100/cmdline", "/var/lib/kubelet/config.yaml"] {
        let _ = std::fs::remove_file(h.r(p));
        std::fs::create_dir_all(h.r(p).parent().unwrap()).unwrap();
        let f = std::fs::File::create(h.r(p)).unwrap();
        f.set_len(5 << 30).unwrap();
    }
    let (node, report, took) = scan_with_deadline(in_root(&h.root()));
    assert!(
        node.notes
            .contains(&"process skipped: /proc/100/cmdline: larger than 4194304 bytes".to_string()),
        "{:?}",
        node.notes
    );
    let c = status(&report, "4.2.6");
    assert_eq!(c.status, Status::NotAssessed, "{c:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn unreadable_files_are_not_assessed_rather_than_passed() {
    // Root reads any file whatever its mode; the CLI test drops privileges
    // to cover this as root.
    if testkit::is_root() {
        eprintln!("skipped: root reads files with mode 000 (covered by cis_confinement.rs)");
        return;
    }
    let h = Hostile::new();
    testkit::worker(h.root(), KubeletStyle::ConfigOnly);
    testkit::NodeRoot::new(h.root()).chmod("/var/lib/kubelet/config.yaml", 0o000);
    let (_node, report, _) = scan_with_deadline(in_root(&h.root()));
    let c = status(&report, "4.2.1");
    assert_eq!(c.status, Status::NotAssessed, "{c:?}");
    assert!(
        c.reason.as_deref().unwrap().contains("ermission denied"),
        "{c:?}"
    );
}

#[test]
fn a_process_exe_outside_the_root_never_gives_the_version() {
    let h = Hostile::new();
    // An outside "binary" stamped with a version no node has.
    write(
        &h.outside("kubelet"),
        b"\0k8s.io/component-base/version.gitVersion=v1.99.1\0",
    );
    write(&h.r("/proc/100/cmdline"), &cmdline(&["kubelet", "--v=2"]));
    link(&h.r("/proc/100/exe"), h.outside("kubelet"));
    // The scanning host's own executable, by its magic link.
    link(&h.r("/proc/101/exe"), "/proc/self/exe");
    write(
        &h.r("/proc/101/cmdline"),
        &cmdline(&["kube-apiserver", "--v=2"]),
    );
    let (node, _, _) = scan_with_deadline(in_root(&h.root()));
    assert_eq!(node.components[&Component::Kubelet].pid, Some(100));
    assert_eq!(node.kubernetes_version, None);
}

#[test]
fn a_process_exe_inside_the_root_gives_the_version() {
    let h = Hostile::new();
    write(
        &h.r("/usr/local/bin/kubelet-1.28"),
        b"\0k8s.io/component-base/version.gitVersion=v1.28.4\0",
    );
    write(&h.r("/proc/100/cmdline"), &cmdline(&["kubelet", "--v=2"]));
    link(&h.r("/proc/100/exe"), "/usr/local/bin/kubelet-1.28");
    let (node, _, _) = scan_with_deadline(in_root(&h.root()));
    assert_eq!(node.kubernetes_version.as_deref(), Some("1.28.4"));
}

#[test]
fn proc_dir_is_read_by_native_discovery_and_the_kube_bench_process_table() {
    let h = Hostile::new();
    testkit::worker(h.root(), KubeletStyle::ConfigOnly);
    // ROOT/proc holds a decoy; --proc names the table to use.
    write(
        &h.r("/proc/7/cmdline"),
        &cmdline(&["kube-proxy", "--decoy"]),
    );
    let procdir = h.outside("procfs");
    write(
        &procdir.join("55/cmdline"),
        &cmdline(&["kube-proxy", "--hostname-override=from-proc-dir"]),
    );
    write(&procdir.join("55/comm"), b"kube-proxy\n");
    // A symlink in the --proc directory is resolved inside that directory.
    write(&h.outside("evil"), &cmdline(&OUTSIDE_ARGV));
    link(&procdir.join("56/cmdline"), h.outside("evil"));
    let (node, _, _) = scan_with_deadline(DiscoverOptions {
        root: Some(h.root()),
        proc_dir: Some(procdir.clone()),
        ..Default::default()
    });
    let proxy = &node.components[&Component::Proxy];
    assert_eq!(proxy.args, vec!["--hostname-override=from-proc-dir"]);
    assert!(!node.components.contains_key(&Component::Apiserver));
    let table = ProcTable::new(&node);
    let cmds: Vec<&str> = table
        .procs
        .iter()
        .filter(|p| p.pid.is_some())
        .map(|p| p.cmd.as_str())
        .collect();
    assert_eq!(cmds, ["kube-proxy --hostname-override=from-proc-dir"]);
}

#[test]
fn kube_bench_find_idioms_do_not_descend_a_symlink_out_of_the_root() {
    use ringfence_cis::benchmark::Target;
    use ringfence_cis::kubebench::{self, Definitions, Mode};
    let h = Hostile::new();
    testkit::tkg_control_plane(h.root());
    // The CNI state directory is a link to a directory outside the root,
    // by its absolute host path.
    let outside = h.outside("cni-state");
    write(&outside.join("OUTSIDE-MARKER"), b"x");
    // A mode no file of the node has: it shows if the outside file is statted.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        outside.join("OUTSIDE-MARKER"),
        std::fs::Permissions::from_mode(0o606),
    )
    .unwrap();
    std::fs::remove_dir_all(h.r("/var/lib/cni/networks")).unwrap();
    link(&h.r("/var/lib/cni/networks"), &outside);
    let cfg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kube-bench/cfg");
    let defs = Definitions::load(&cfg, "cis-1.6").unwrap();
    let node = discover(&in_root(&h.root())).unwrap();
    let r = kubebench::scan(
        &defs,
        &node,
        &ScanOptions {
            targets: Some(vec![Target::Master]),
            checks: Some(vec!["1.1.9".into(), "1.1.10".into()]),
            profile: None,
            waivers: &[],
            today: Date::parse("2026-01-01").unwrap(),
        },
        &Mode::Native,
    )
    .unwrap_or_else(|r| panic!("{}", r.message()));
    assert_eq!(r.ran.len(), 2);
    let seen = format!("{:?}", r.ran);
    assert!(
        !seen.contains("OUTSIDE-MARKER") && !seen.contains("606"),
        "{seen}"
    );
}
