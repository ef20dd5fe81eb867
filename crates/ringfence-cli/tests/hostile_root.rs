//! `ringfence cis scan --root DIR` on a hostile node root: symlinks that try to
//! leave the root (absolute, `..` chains, to the host's /etc/shadow), symlink
//! loops, a FIFO and a device where files should be, and a huge file. The scan
//! must stay inside the root, never open the special files (a FIFO would
//! block forever), and still report results.

use ringfence_cis::testkit::{self, KubeletStyle};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run ringfence with a deadline; a hang (an opened FIFO) fails the test
/// instead of blocking the suite.
fn run_with_deadline(args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("ringfence {args:?} still running after {limit:?}: it blocked (opened a FIFO?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        std::fs::read_to_string(out).unwrap(),
        std::fs::read_to_string(err).unwrap(),
    )
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(
        unsafe { libc_mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {}",
        p.display()
    );
}

fn mknod_char(p: &Path, major: u32, minor: u32) -> bool {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let dev = ((major as u64) << 8) | (minor as u64);
    unsafe { libc_mknod(c.as_ptr(), 0o020644, dev) == 0 }
}

extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
    #[link_name = "mknod"]
    fn libc_mknod(path: *const std::ffi::c_char, mode: u32, dev: u64) -> i32;
}

fn status_of<'a>(report: &'a serde_json::Value, id: &str) -> &'a str {
    report["checks"]
        .as_array()
        .expect("checks array")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in report"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn scan_of_a_hostile_root_stays_inside_never_opens_special_files_and_reports() {
    if !ringfence_testkit::require!(ringfence_testkit::Need::Root) {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    let node = testkit::worker(&root, KubeletStyle::ConfigOnly);
    let r = |p: &str| root.join(p.trim_start_matches('/'));

    // Outside the root, right next to it: an insecure kubelet config and a
    // FIFO. Escaping the root would read the first (failing 4.2.1) or block
    // on the second.
    std::fs::write(
        base.path().join("evil-config.yaml"),
        testkit::KUBELET_CONFIG.replace("enabled: false", "enabled: true"),
    )
    .unwrap();
    mkfifo(&base.path().join("trap.fifo"));

    // The kubelet's --config is a `..` chain that climbs far above the root;
    // clamped at the root it lands on the node's own /evil-config.yaml, which
    // holds the node's real (secure) config.
    let real_cfg = std::fs::read_to_string(r("/var/lib/kubelet/config.yaml")).unwrap();
    std::fs::write(r("/evil-config.yaml"), &real_cfg).unwrap();
    std::fs::remove_file(r("/var/lib/kubelet/config.yaml")).unwrap();
    symlink(
        "../../../../../../../../../../evil-config.yaml",
        r("/var/lib/kubelet/config.yaml"),
    )
    .unwrap();

    // Absolute links are the node's absolute paths, not the host's.
    node.remove("/etc/kubernetes/kubelet.conf");
    symlink("/etc/shadow", r("/etc/kubernetes/kubelet.conf")).unwrap();
    std::fs::write(r("/etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    // A link to the host's FIFO by its absolute host path, and by `..`s.
    let host_fifo = base.path().join("trap.fifo");
    symlink(&host_fifo, r("/etc/kubernetes/bootstrap-kubelet.conf")).unwrap_or(());
    std::fs::create_dir_all(r("/etc/default")).unwrap();
    symlink(
        "../../../../../../../../trap.fifo",
        r("/etc/default/kubelet"),
    )
    .unwrap();
    // `..` to the very top, repeatedly.
    symlink("../../../..", r("/etc/kubernetes/up")).unwrap();
    // A loop.
    symlink("loop-b", r("/etc/kubernetes/loop-a")).unwrap();
    symlink("loop-a", r("/etc/kubernetes/loop-b")).unwrap();
    // Special files where files should be: a FIFO as a static pod manifest
    // and as the kubelet's env file, a device as the client CA.
    std::fs::create_dir_all(r("/etc/kubernetes/manifests")).unwrap();
    mkfifo(&r("/etc/kubernetes/manifests/kube-apiserver.yaml"));
    let _ = std::fs::remove_file(r("/var/lib/kubelet/kubeadm-flags.env"));
    mkfifo(&r("/var/lib/kubelet/kubeadm-flags.env"));
    let _ = std::fs::remove_file(r("/etc/kubernetes/pki/ca.crt"));
    assert!(mknod_char(&r("/etc/kubernetes/pki/ca.crt"), 1, 5), "mknod");
    // A manifest that is a symlink loop, and one 5 GiB sparse file.
    symlink(
        "/etc/kubernetes/loop-a",
        r("/etc/kubernetes/manifests/etcd.yaml"),
    )
    .unwrap();
    let big = std::fs::File::create(r("/etc/kubernetes/manifests/kube-scheduler.yaml")).unwrap();
    big.set_len(5 << 30).unwrap();
    drop(big);

    let root_s = root.to_str().unwrap();
    let (code, stdout, stderr) = run_with_deadline(
        &[
            "cis",
            "scan",
            "--root",
            root_s,
            "--format",
            "json",
            "--benchmark",
            "cis-1.6",
        ],
        Duration::from_secs(60),
    );
    assert!(
        matches!(code, Some(0) | Some(1)),
        "scan must finish with results, got {code:?}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    // The kubelet's flags come partly from the FIFO env file, which is never
    // read: none of its settings can be judged, so 4.2.1 is not assessed
    // (rather than passed on the config file alone, or failed on the
    // outside one).
    assert_eq!(status_of(&report, "4.2.1"), "not-assessed");
    assert!(
        stderr.contains("EnvironmentFile /var/lib/kubelet/kubeadm-flags.env: not a regular file"),
        "{stderr}"
    );
    // The config file itself was read inside the root (through the `..`
    // chain clamped at the root): no note about it.
    assert!(!stderr.contains("--config"), "{stderr}");
    // Host paths outside the root never appear in the report.
    let base_s = base.path().to_str().unwrap();
    for outside in ["evil-config.yaml", "trap.fifo"] {
        assert!(
            !stdout.contains(&format!("{base_s}/{outside}")),
            "{outside} leaked"
        );
    }
    // The unreadable manifests were skipped with a note each, not opened.
    for note in [
        "note: static pod manifest skipped: /etc/kubernetes/manifests/etcd.yaml: too many levels of symbolic links",
        "note: static pod manifest skipped: /etc/kubernetes/manifests/kube-apiserver.yaml: not a regular file",
        "note: static pod manifest skipped: /etc/kubernetes/manifests/kube-scheduler.yaml: larger than 4194304 bytes",
    ] {
        assert!(stderr.contains(note), "missing {note:?} in:\n{stderr}");
    }
    assert!(
        report["checks"].as_array().unwrap().len() > 10,
        "a full report"
    );
}
