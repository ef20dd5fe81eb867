//! Every verdict carries what decided it, and a check whose evidence is
//! absent or unreadable is `not-assessed`, never `pass`.

use ringfence_cis::benchmark::{Benchmark, Target};
use ringfence_cis::node::{discover, DiscoverOptions, Node};
use ringfence_cis::profile::Date;
use ringfence_cis::report::{scan, CheckResult, Report, ScanOptions, Status};
use ringfence_cis::testkit::{self, KubeletStyle};

fn node_at(root: &std::path::Path) -> Node {
    discover(&DiscoverOptions {
        root: Some(root.to_path_buf()),
        ..Default::default()
    })
    .unwrap()
}

fn run(node: &Node, bench: &str, targets: Option<Vec<Target>>) -> Report {
    scan(
        &Benchmark::embedded(bench).unwrap(),
        node,
        &ScanOptions {
            targets,
            checks: None,
            profile: None,
            waivers: &[],
            today: Date::parse("2026-01-01").unwrap(),
        },
    )
}

fn check<'a>(r: &'a Report, id: &str) -> &'a CheckResult {
    r.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} not in report"))
}

#[test]
fn every_pass_and_fail_names_its_source_subject_and_the_value_seen() {
    let nodes = [
        ("control plane", tempfile::tempdir().unwrap()),
        ("worker by flags", tempfile::tempdir().unwrap()),
        ("worker by config", tempfile::tempdir().unwrap()),
    ];
    testkit::tkg_control_plane(nodes[0].1.path());
    testkit::worker(nodes[1].1.path(), KubeletStyle::FlagsOnly);
    testkit::worker(nodes[2].1.path(), KubeletStyle::ConfigOnly);
    for (what, dir) in &nodes {
        let node = node_at(dir.path());
        for bench in ["cis-1.6", "cis-1.10"] {
            let r = run(&node, bench, None);
            for c in &r.checks {
                if !matches!(c.status, Status::Pass | Status::Fail) {
                    continue;
                }
                let e = c
                    .evidence
                    .as_ref()
                    .unwrap_or_else(|| panic!("{what} {bench} {}: no evidence: {c:?}", c.id));
                assert!(
                    e.subject.is_some() && !e.path.is_empty(),
                    "{what} {bench} {}: {e:?}",
                    c.id
                );
            }
        }
    }
}

#[test]
fn a_flag_left_at_its_default_is_evidence_when_the_component_was_found() {
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let r = run(&node_at(dir.path()), "cis-1.6", None);
    // --basic-auth-file is absent from the API server's manifest.
    let c = check(&r, "1.2.2");
    assert_eq!(c.status, Status::Pass);
    let e = c.evidence.as_ref().unwrap();
    assert_eq!(e.source, "manifest");
    assert_eq!(e.path, "/etc/kubernetes/manifests/kube-apiserver.yaml");
    assert_eq!(e.subject.as_deref(), Some("--basic-auth-file"));
    assert_eq!(e.value, None);
    // A failure says what it saw and where.
    let c = check(&r, "1.2.21");
    assert_eq!(c.status, Status::Fail);
    assert_eq!(
        c.evidence.as_ref().unwrap().describe(),
        "manifest /etc/kubernetes/manifests/kube-apiserver.yaml: --profiling not set"
    );
    // A value from the kubelet's config file names the file and key.
    let c = check(&r, "4.2.1");
    let e = c.evidence.as_ref().unwrap();
    assert_eq!(
        (e.source.as_str(), e.path.as_str(), e.subject.as_deref()),
        (
            "config",
            "/var/lib/kubelet/config.yaml",
            Some("authentication.anonymous.enabled")
        )
    );
    assert_eq!(e.value.as_deref(), Some("false"));
}

#[test]
fn checks_of_a_component_that_is_not_on_the_node_are_not_assessed_never_passed() {
    let dir = tempfile::tempdir().unwrap();
    testkit::worker(dir.path(), KubeletStyle::ConfigOnly);
    // API server checks on a worker: `--basic-auth-file is not set` would
    // hold vacuously.
    let r = run(&node_at(dir.path()), "cis-1.6", Some(vec![Target::Master]));
    let c = check(&r, "1.2.2");
    assert_eq!(c.status, Status::NotAssessed, "{c:?}");
    assert_eq!(
        c.reason.as_deref(),
        Some("kube-apiserver was not found on this node, so its --basic-auth-file cannot be read")
    );
    assert!(r.checks.iter().all(
        |c| c.status != Status::Pass || c.evidence.as_ref().is_some_and(|e| e.source == "file")
    ));
    assert_eq!(
        r.summary.not_assessed,
        r.checks
            .iter()
            .filter(|c| c.status == Status::NotAssessed)
            .count()
    );
    assert!(r.summary.not_assessed > 30, "{:?}", r.summary);
}

#[test]
fn a_required_file_that_is_missing_is_not_assessed_with_where_it_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    n.remove("/etc/kubernetes/admin.conf");
    let r = run(&node_at(dir.path()), "cis-1.6", None);
    let c = check(&r, "1.1.13");
    assert_eq!(c.status, Status::NotAssessed, "{c:?}");
    assert_eq!(
        c.reason.as_deref(),
        Some("no admin kubeconfig found (looked at /etc/kubernetes/admin.conf)")
    );
    assert_eq!(
        c.evidence.as_ref().unwrap().describe(),
        "file /etc/kubernetes/admin.conf: does not exist"
    );
}

#[test]
fn a_setting_in_an_unreadable_config_file_is_not_assessed_but_a_flag_still_decides() {
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::worker(dir.path(), KubeletStyle::ConfigOnly);
    // A directory where the kubelet's config file should be.
    n.remove("/var/lib/kubelet/config.yaml");
    n.dir("/var/lib/kubelet/config.yaml", 0o755);
    // One setting on the command line as well: the flag wins, whatever the file says.
    let env = "/var/lib/kubelet/kubeadm-flags.env";
    let text = std::fs::read_to_string(dir.path().join(&env[1..])).unwrap();
    n.file(
        env,
        &text.replace(
            "KUBELET_KUBEADM_ARGS=\"",
            "KUBELET_KUBEADM_ARGS=\"--anonymous-auth=false ",
        ),
        0o644,
    );
    let r = run(&node_at(dir.path()), "cis-1.6", None);
    assert_eq!(check(&r, "4.2.1").status, Status::Pass);
    let c = check(&r, "4.2.6");
    assert_eq!(c.status, Status::NotAssessed, "{c:?}");
    assert_eq!(
        c.reason.as_deref(),
        Some("--protect-kernel-defaults is not on kubelet's command line, and its --config /var/lib/kubelet/config.yaml: not a regular file, so protectKernelDefaults cannot be read")
    );
}
