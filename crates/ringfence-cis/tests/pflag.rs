//! Flags read the way the components read them: pflag's rules for booleans
//! and repeats, systemd's order for units, drop-ins and environment files,
//! and the kubelet's order for its config file and config drop-ins.

use ringfence_cis::benchmark::Benchmark;
use ringfence_cis::component::Component;
use ringfence_cis::node::{discover, DiscoverOptions, Node};
use ringfence_cis::profile::Date;
use ringfence_cis::report::{scan, CheckResult, Report, ScanOptions, Status};
use ringfence_cis::testkit::{self, KubeletStyle, NodeRoot};

fn node_at(root: &std::path::Path) -> Node {
    discover(&DiscoverOptions {
        root: Some(root.to_path_buf()),
        ..Default::default()
    })
    .unwrap()
}

fn run(node: &Node, ids: &[&str]) -> Report {
    scan(
        &Benchmark::embedded("cis-1.6").unwrap(),
        node,
        &ScanOptions {
            targets: None,
            checks: Some(ids.iter().map(|s| s.to_string()).collect()),
            profile: None,
            waivers: &[],
            today: Date::parse("2026-01-01").unwrap(),
        },
    )
}

fn check<'a>(r: &'a Report, id: &str) -> &'a CheckResult {
    r.checks.iter().find(|c| c.id == id).unwrap()
}

/// A control plane whose API server runs with `extra` appended to its flags.
fn apiserver_with(extra: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    let path = "/etc/kubernetes/manifests/kube-apiserver.yaml";
    let text = std::fs::read_to_string(dir.path().join(&path[1..])).unwrap();
    let mut add = String::new();
    for e in extra {
        add.push_str(&format!("    - {e}\n"));
    }
    let text = text.replacen(
        "    - --secure-port=6443\n",
        &format!("    - --secure-port=6443\n{add}"),
        1,
    );
    n.file(path, &text, 0o600);
    dir
}

#[test]
fn a_boolean_flag_does_not_take_the_next_argument_so_profiling_false_spaced_is_on() {
    let dir = apiserver_with(&["--profiling", "\"false\""]);
    let r = run(&node_at(dir.path()), &["1.2.21"]);
    let c = check(&r, "1.2.21");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert_eq!(c.actual.as_deref(), Some("true"));
    let dir = apiserver_with(&["--profiling=false"]);
    let r = run(&node_at(dir.path()), &["1.2.21"]);
    assert_eq!(check(&r, "1.2.21").status, Status::Pass);
}

#[test]
fn a_repeated_flag_takes_its_last_value() {
    let dir = apiserver_with(&["--profiling=false", "--profiling=true"]);
    let r = run(&node_at(dir.path()), &["1.2.21"]);
    assert_eq!(check(&r, "1.2.21").status, Status::Fail);
    let dir = apiserver_with(&["--profiling=true", "--profiling=false"]);
    let r = run(&node_at(dir.path()), &["1.2.21"]);
    assert_eq!(check(&r, "1.2.21").status, Status::Pass);
}

#[test]
fn environment_files_override_environment_lines_and_later_drop_ins_win() {
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::worker(dir.path(), KubeletStyle::FlagsOnly);
    // An Environment= line after the EnvironmentFile= line still loses to
    // the file, as in systemd.
    n.file(
        "/etc/systemd/system/kubelet.service.d/20-env.conf",
        "[Service]\nEnvironment=\"KUBELET_KUBEADM_ARGS=--anonymous-auth=true\"\n",
        0o644,
    );
    let node = node_at(dir.path());
    let r = run(&node, &["4.2.1"]);
    assert_eq!(check(&r, "4.2.1").status, Status::Pass, "{r:?}");
    // A later drop-in resets ExecStart= and gives its own command line.
    n.file(
        "/etc/systemd/system/kubelet.service.d/30-exec.conf",
        "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --anonymous-auth=true $KUBELET_KUBEADM_ARGS --anonymous-auth=true\n",
        0o644,
    );
    let node = node_at(dir.path());
    assert_eq!(
        node.components[&Component::Kubelet].path,
        "/etc/systemd/system/kubelet.service.d/30-exec.conf"
    );
    let r = run(&node, &["4.2.1"]);
    assert_eq!(check(&r, "4.2.1").status, Status::Fail);
    // A drop-in of the same name in /usr/lib is hidden by the /etc one.
    n.file(
        "/usr/lib/systemd/system/kubelet.service.d/30-exec.conf",
        "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --anonymous-auth=false\n",
        0o644,
    );
    let r = run(&node_at(dir.path()), &["4.2.1"]);
    assert_eq!(check(&r, "4.2.1").status, Status::Fail);
}

#[test]
fn kubelet_config_drop_ins_merge_over_the_config_file_and_flags_win_over_both() {
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::worker(dir.path(), KubeletStyle::ConfigOnly);
    let env = "/var/lib/kubelet/kubeadm-flags.env";
    let text = std::fs::read_to_string(dir.path().join(&env[1..])).unwrap();
    let with_dir = |extra: &str| {
        text.replace(
            "KUBELET_KUBEADM_ARGS=\"",
            &format!("KUBELET_KUBEADM_ARGS=\"--config-dir=/etc/kubernetes/kubelet.conf.d {extra}"),
        )
    };
    n.file(env, &with_dir(""), 0o644);
    NodeRoot::new(dir.path())
        .file(
            "/etc/kubernetes/kubelet.conf.d/10-auth.conf",
            "authentication:\n  anonymous:\n    enabled: true\n",
            0o644,
        )
        .file(
            "/etc/kubernetes/kubelet.conf.d/20-port.conf",
            "readOnlyPort: 10255\n",
            0o644,
        )
        .file(
            "/etc/kubernetes/kubelet.conf.d/30-port.conf",
            "readOnlyPort: 10250\n",
            0o644,
        );
    let r = run(&node_at(dir.path()), &["4.2.1", "4.2.3", "4.2.4"]);
    let c = check(&r, "4.2.1");
    assert_eq!(c.status, Status::Fail);
    assert_eq!(
        c.evidence.as_ref().unwrap().path,
        "/etc/kubernetes/kubelet.conf.d/10-auth.conf"
    );
    // Keys the drop-ins leave alone stay as the config file has them.
    let c = check(&r, "4.2.3");
    assert_eq!(c.status, Status::Pass);
    assert_eq!(
        c.evidence.as_ref().unwrap().path,
        "/var/lib/kubelet/config.yaml"
    );
    // The last drop-in wins.
    assert_eq!(check(&r, "4.2.4").actual.as_deref(), Some("10250"));
    // Flags win over config file and drop-ins.
    n.file(
        env,
        &with_dir("--anonymous-auth=false --read-only-port=0 "),
        0o644,
    );
    let r = run(&node_at(dir.path()), &["4.2.1", "4.2.4"]);
    assert_eq!(check(&r, "4.2.1").status, Status::Pass);
    assert_eq!(check(&r, "4.2.4").status, Status::Pass);
}
