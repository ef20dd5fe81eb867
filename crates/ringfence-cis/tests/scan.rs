//! Scans of node roots built by the tests (TKG-style control plane, worker
//! nodes configured by flags or by config file).

use ringfence_cis::benchmark::{Benchmark, Target};
use ringfence_cis::component::Component;
use ringfence_cis::node::{discover, DiscoverOptions, Node, Source};
use ringfence_cis::profile::{parse_waivers, Date, Profile, Waiver};
use ringfence_cis::report::{scan, Report, ScanOptions, Status};
use ringfence_cis::testkit::{self, KubeletStyle};

const TKG_SEVEN: [&str; 7] = [
    "1.1.12", "1.2.6", "1.2.16", "1.2.21", "1.3.2", "1.4.1", "4.2.6",
];

fn tkg_profile() -> Profile {
    let (file, text) = Profile::embedded("tkg-1.5").unwrap();
    Profile::parse(&file, text).unwrap()
}

fn node_at(root: &std::path::Path) -> Node {
    discover(&DiscoverOptions {
        root: Some(root.to_path_buf()),
        ..Default::default()
    })
    .unwrap()
}

fn run(node: &Node, profile: Option<&Profile>, waivers: &[Waiver], today: Date) -> Report {
    let bench = Benchmark::embedded("cis-1.6").unwrap();
    scan(
        &bench,
        node,
        &ScanOptions {
            targets: None,
            checks: None,
            profile,
            waivers,
            today,
        },
    )
}

fn today() -> Date {
    Date::parse("2026-11-26").unwrap()
}

fn failing(r: &Report) -> Vec<&str> {
    r.checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.id.as_str())
        .collect()
}

fn check<'a>(r: &'a Report, id: &str) -> &'a ringfence_cis::report::CheckResult {
    r.checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("{id} not in report"))
}

macro_rules! need_root {
    () => {
        if !ringfence_testkit::require!(ringfence_testkit::Need::Root) {
            return;
        }
    };
}

#[test]
fn cis_1_6_has_122_checks_and_every_tkg_expected_failure_exists() {
    let b = Benchmark::embedded("cis-1.6").unwrap();
    assert_eq!(b.checks().count(), 122);
    for id in TKG_SEVEN {
        assert!(b.check(id).is_some(), "{id}");
    }
    let p = tkg_profile();
    assert_eq!(p.benchmark, "cis-1.6");
    let mut ids: Vec<&str> = p.expected.iter().map(|x| x.id.as_str()).collect();
    ids.sort();
    let mut seven = TKG_SEVEN.to_vec();
    seven.sort();
    assert_eq!(ids, seven);
    // Every target has checks, and sections carry their kube-bench targets.
    for t in Target::ALL {
        assert!(b.checks().any(|c| c.target == t), "{t}");
    }
}

#[test]
fn cis_1_10_loads_with_all_its_checks() {
    let b = Benchmark::embedded("cis-1.10").unwrap();
    assert_eq!(b.checks().count(), 130);
    // 1.1.13 there covers admin.conf and super-admin.conf.
    assert!(b.files["admin-kubeconfigs"].all);
}

#[test]
fn bad_benchmark_data_is_rejected_with_the_check_and_a_hint() {
    let yaml = "benchmark: x\nfiles: {}\nsections:\n  - id: \"1\"\n    title: t\n    target: master\n    groups:\n      - id: \"1.1\"\n        title: g\n        checks:\n          - id: \"1.1.1\"\n            title: c\n            automated: true\n            scored: true\n            component: apiserver\n            test: {flag: \"--x\", op: \"eqq\", value: \"1\"}\n            remediation: r\n";
    let e = Benchmark::parse("b.yaml", yaml).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("check 1.1.1: unknown operator \"eqq\" (did you mean eq?)"),
        "{msg}"
    );
    let e = Benchmark::parse(
        "b.yaml",
        "benchmark: x\nfiles: {}\nsections: [ {id: 1, nope: 2} ]\n",
    )
    .unwrap_err();
    assert!(e.0[0].position().starts_with("b.yaml:3:"), "{}", e.0[0]);
}

#[test]
fn tkg_control_plane_fails_exactly_the_seven_checks_tkg_documents() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let node = node_at(dir.path());
    assert_eq!(node.roles(), vec!["control-plane", "etcd", "node"]);
    assert_eq!(node.kubernetes_version.as_deref(), Some("1.22.5"));
    assert_eq!(node.name, "tkg-cp-0");
    let r = run(&node, None, &[], today());
    assert_eq!(failing(&r), TKG_SEVEN.to_vec());
    assert_eq!(r.summary.unexpected_fail, 7);
    assert_eq!(r.checks.len(), 122);
}

#[test]
fn the_profile_turns_exactly_its_checks_into_expected_failures() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let node = node_at(dir.path());
    let p = tkg_profile();
    let r = run(&node, Some(&p), &[], today());
    let expected: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.expected)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(expected, TKG_SEVEN.to_vec());
    assert_eq!(r.summary.expected_fail, 7);
    assert_eq!(r.summary.unexpected_fail, 0);
    assert_eq!(r.summary.fail, 7);
    // The remediation shown for an expected failure is the profile's.
    assert!(check(&r, "1.2.21").remediation.contains("extra arguments"));
    assert!(check(&r, "1.1.12")
        .explanation
        .as_deref()
        .unwrap()
        .contains("kubeadm"));
    // A check the profile names but that passes stays a pass.
    let n = testkit::NodeRoot::new(dir.path());
    n.file(
        "/etc/passwd",
        &format!(
            "root:x:0:0::/:/bin/sh\netcd:x:{0}:{0}::/:/bin/false\n",
            testkit::ETCD_UID
        ),
        0o644,
    );
    n.file(
        "/etc/group",
        &format!("root:x:0:\netcd:x:{}:\n", testkit::ETCD_UID),
        0o644,
    );
    n.owner("/var/lib/etcd", testkit::ETCD_UID, testkit::ETCD_UID);
    let r = run(&node_at(dir.path()), Some(&p), &[], today());
    assert_eq!(check(&r, "1.1.12").status, Status::Pass);
    assert_eq!(r.summary.expected_fail, 6);
}

#[test]
fn breaking_one_more_check_is_an_unexpected_failure() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    n.chmod("/etc/kubernetes/admin.conf", 0o666);
    let r = run(&node_at(dir.path()), Some(&tkg_profile()), &[], today());
    let unexpected: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.unexpected_failure())
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(unexpected, vec!["1.1.13"]);
    let c = check(&r, "1.1.13");
    assert_eq!(c.actual.as_deref(), Some("666"));
    assert!(
        c.reason.as_deref().unwrap().contains("grants 22"),
        "{:?}",
        c.reason
    );
}

#[test]
fn waivers_cover_failures_until_they_expire() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let node = node_at(dir.path());
    let bench = Benchmark::embedded("cis-1.6").unwrap();
    let waivers = parse_waivers(
        "w.yaml",
        "waivers:\n  - id: \"1.2.21\"\n    reason: profiling needed for a perf investigation\n    owner: platform-team\n    expires: 2026-12-31\n  - id: \"1.4.1\"\n    reason: old exception\n    owner: platform-team\n    expires: 2026-01-31\n",
        &bench,
    )
    .unwrap();
    let r = run(&node, None, &waivers, today());
    let live = check(&r, "1.2.21");
    assert!(live.covered() && !live.waiver.as_ref().unwrap().expired);
    let stale = check(&r, "1.4.1");
    assert!(stale.waiver.as_ref().unwrap().expired);
    assert!(
        stale.unexpected_failure(),
        "an expired waiver counts as a failure"
    );
    assert_eq!(r.summary.expected_fail, 1);
    assert_eq!(r.summary.unexpected_fail, 6);
    // The day after 1.2.21's expiry it no longer covers either.
    let r = run(&node, None, &waivers, Date::parse("2027-01-01").unwrap());
    assert!(check(&r, "1.2.21").unexpected_failure());
}

#[test]
fn waiver_and_profile_errors_point_at_the_line() {
    let bench = Benchmark::embedded("cis-1.6").unwrap();
    let e = parse_waivers(
        "w.yaml",
        "waivers:\n  - id: \"1.2.99\"\n    reason: r\n    owner: o\n    expires: 2026-12-31\n",
        &bench,
    )
    .unwrap_err();
    assert_eq!(e.0[0].position(), "w.yaml:2:9");
    let e = parse_waivers(
        "w.yaml",
        "waivers:\n  - id: \"1.2.6\"\n    reason: r\n    owner: o\n    expires: next week\n",
        &bench,
    )
    .unwrap_err();
    assert!(e.0[0].position().starts_with("w.yaml:5:"), "{}", e.0[0]);
    assert!(e.to_string().contains("YYYY-MM-DD"));
    let e = Profile::parse("p.yaml", "profile: p\ntitle: t\nbenchmark: cis-1.6\nexpected_failures:\n  - id: \"4.2.66\"\n    explanation: x\n    remediation: y\n").unwrap_err();
    assert!(e.0[0].position().starts_with("p.yaml:5:"));
    assert!(e.to_string().contains("did you mean"), "{e}");
}

#[test]
fn owner_names_come_from_the_node_root_not_the_host() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    // The node's passwd knows uid 4242 as etcd; the scanning host does not.
    n.file(
        "/etc/passwd",
        &format!(
            "root:x:0:0::/root:/bin/sh\netcd:x:{0}:{0}::/var/lib/etcd:/sbin/nologin\n",
            testkit::ETCD_UID
        ),
        0o644,
    );
    n.file(
        "/etc/group",
        &format!("root:x:0:\netcd:x:{}:\n", testkit::ETCD_UID),
        0o644,
    );
    n.owner("/var/lib/etcd", testkit::ETCD_UID, testkit::ETCD_UID);
    let r = run(&node_at(dir.path()), None, &[], today());
    let c = check(&r, "1.1.12");
    assert_eq!(c.status, Status::Pass);
    assert_eq!(c.actual.as_deref(), Some("etcd:etcd"));
    // Without the entry the id shows as a number rather than a host name.
    n.file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644);
    let r = run(&node_at(dir.path()), None, &[], today());
    assert_eq!(check(&r, "1.1.12").actual.as_deref(), Some("4242:etcd"));
}

#[test]
fn kubelet_configured_only_by_flags_is_read_from_its_systemd_unit() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::worker(dir.path(), KubeletStyle::FlagsOnly);
    let node = node_at(dir.path());
    assert_eq!(node.roles(), vec!["node"]);
    let k = &node.components[&Component::Kubelet];
    assert_eq!(k.source, Source::Systemd);
    assert_eq!(
        k.path,
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
    );
    assert!(k.config.is_none());
    let r = run(&node, None, &[], today());
    assert_eq!(
        r.checks
            .iter()
            .map(|c| c.target)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1
    );
    assert!(failing(&r).is_empty(), "{:?}", failing(&r));
    // A bare --protect-kernel-defaults means true.
    let c = check(&r, "4.2.6");
    assert_eq!(
        (c.status, c.actual.as_deref()),
        (Status::Pass, Some("true"))
    );
    assert_eq!(c.evidence.as_ref().unwrap().source, "systemd");
    // `--authorization-mode Webhook` (space-separated) is read as a value.
    assert_eq!(check(&r, "4.2.2").actual.as_deref(), Some("Webhook"));
    // No config file at all: 4.1.9 and 4.1.10 do not apply (kube-bench
    // fails them, which is one of its users' common complaints).
    for id in ["4.1.9", "4.1.10"] {
        let c = check(&r, id);
        assert_eq!(c.status, Status::Info, "{id}");
        assert!(
            c.reason.as_deref().unwrap().contains("does not apply"),
            "{:?}",
            c.reason
        );
    }
}

#[test]
fn kubelet_configured_only_by_config_file_is_read_from_the_file() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::worker(dir.path(), KubeletStyle::ConfigOnly);
    let node = node_at(dir.path());
    let k = &node.components[&Component::Kubelet];
    assert_eq!(
        k.config.as_ref().unwrap().path,
        "/var/lib/kubelet/config.yaml"
    );
    let r = run(&node, None, &[], today());
    assert!(failing(&r).is_empty(), "{:?}", failing(&r));
    for id in ["4.2.1", "4.2.2", "4.2.3", "4.2.6"] {
        let c = check(&r, id);
        assert_eq!(c.status, Status::Pass, "{id}");
        assert_eq!(c.evidence.as_ref().unwrap().source, "config", "{id}");
    }
    assert_eq!(check(&r, "4.2.1").actual.as_deref(), Some("false"));
    assert_eq!(
        check(&r, "4.2.13").actual.as_deref(),
        Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    );
}

#[test]
fn a_kubelet_flag_wins_over_the_config_file() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::worker(dir.path(), KubeletStyle::ConfigOnly);
    let cfg = testkit::KUBELET_CONFIG.replace("enabled: false", "enabled: true")
        + "protectKernelDefaults: false\n";
    n.file("/var/lib/kubelet/config.yaml", &cfg, 0o644);
    n.file(
        "/etc/default/kubelet",
        "KUBELET_EXTRA_ARGS=--anonymous-auth=false --protect-kernel-defaults=true\n",
        0o644,
    );
    let r = run(&node_at(dir.path()), None, &[], today());
    for id in ["4.2.1", "4.2.6"] {
        let c = check(&r, id);
        assert_eq!(c.status, Status::Pass, "{id}");
        assert_eq!(c.evidence.as_ref().unwrap().source, "systemd", "{id}");
    }
}

#[test]
fn static_pods_with_args_and_symlinks_out_of_the_root_stay_inside() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    // A manifest with `args` instead of flags in `command`.
    n.file(
        "/etc/kubernetes/manifests/kube-scheduler.yaml",
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: kube-scheduler\n    image: r/kube-scheduler:v1.22.5\n    command: [kube-scheduler]\n    args: [\"--bind-address=127.0.0.1\", \"--profiling=false\", \"--kubeconfig=/etc/kubernetes/scheduler.conf\"]\n",
        0o600,
    );
    // An admin.conf that is a symlink climbing out of the root: it must
    // resolve to the root's own /etc/kubernetes/real-admin.conf.
    n.file("/etc/kubernetes/real-admin.conf", "x", 0o600);
    n.remove("/etc/kubernetes/admin.conf");
    n.link(
        "/etc/kubernetes/admin.conf",
        "../../../../../../../etc/kubernetes/real-admin.conf",
    );
    let r = run(&node_at(dir.path()), None, &[], today());
    assert_eq!(check(&r, "1.4.1").status, Status::Pass);
    let c = check(&r, "1.1.13");
    assert_eq!((c.status, c.actual.as_deref()), (Status::Pass, Some("600")));
}

#[test]
fn a_fifo_where_a_config_should_be_neither_blocks_nor_is_read() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::worker(dir.path(), KubeletStyle::ConfigOnly);
    let cfg = dir.path().join("var/lib/kubelet/config.yaml");
    std::fs::remove_file(&cfg).unwrap();
    let c = std::ffi::CString::new(cfg.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc_mkfifo(c.as_ptr(), 0o644) }, 0);
    let node = node_at(dir.path());
    assert!(node.components[&Component::Kubelet].config.is_none());
    assert!(
        node.notes.iter().any(|n| n.contains("not a regular file")),
        "{:?}",
        node.notes
    );
    let r = run(&node, None, &[], today());
    // The setting lives in the file that could not be read: not a verdict.
    let c = check(&r, "4.2.1");
    assert_eq!(c.status, Status::NotAssessed, "{c:?}");
}

extern "C" {
    #[link_name = "mkfifo"]
    fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
}

#[test]
fn a_broken_manifest_is_bad_input_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::NodeRoot::new(dir.path());
    n.file(
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "spec:\n  containers:\n  - name: [unclosed\n",
        0o600,
    );
    let e = discover(&DiscoverOptions {
        root: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        e.0[0]
            .position()
            .starts_with("/etc/kubernetes/manifests/kube-apiserver.yaml:"),
        "{}",
        e.0[0]
    );
}

#[test]
fn targets_and_check_selection_limit_the_scan() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let node = node_at(dir.path());
    let bench = Benchmark::embedded("cis-1.6").unwrap();
    let r = scan(
        &bench,
        &node,
        &ScanOptions {
            targets: Some(vec![Target::Etcd]),
            checks: None,
            profile: None,
            waivers: &[],
            today: today(),
        },
    );
    assert_eq!(r.checks.len(), 7);
    let r = scan(
        &bench,
        &node,
        &ScanOptions {
            targets: None,
            checks: Some(vec!["1.4".into(), "4.2.6".into()]),
            profile: None,
            waivers: &[],
            today: today(),
        },
    );
    let ids: Vec<&str> = r.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["1.4.1", "1.4.2", "4.2.6"]);
}

#[test]
fn static_pods_are_found_where_the_kubelets_config_puts_them() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    // The linked layout: the kubelet config is reached through a symlink and
    // the API server manifest through a relative one, which must keep
    // resolving after the move.
    let n = testkit::tkg_control_plane_linked(dir.path());
    // Move every manifest to the directory the kubelet config names.
    let old = dir.path().join("etc/kubernetes/manifests");
    let new = dir.path().join("etc/kubernetes/static-pods");
    std::fs::rename(&old, &new).unwrap();
    // The relative apiserver link was written for the old depth; it still
    // works because both directories sit at the same depth.
    let cfg = testkit::KUBELET_CONFIG.replace(
        "staticPodPath: /etc/kubernetes/manifests",
        "staticPodPath: /etc/kubernetes/static-pods",
    );
    n.file("/etc/kubelet/config.yaml", &cfg, 0o644);
    n.chmod("/etc/kubernetes/static-pods/kube-scheduler.yaml", 0o664);
    let node = node_at(dir.path());
    assert_eq!(node.roles(), vec!["control-plane", "etcd", "node"]);
    assert_eq!(
        node.manifests[&Component::Scheduler],
        "/etc/kubernetes/static-pods/kube-scheduler.yaml"
    );
    let r = run(&node, Some(&tkg_profile()), &[], today());
    let unexpected: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.unexpected_failure())
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(unexpected, vec!["1.1.5"]);
    assert_eq!(
        check(&r, "1.1.5").evidence.as_ref().unwrap().path,
        "/etc/kubernetes/static-pods/kube-scheduler.yaml"
    );
}

#[test]
fn the_embedded_json_form_equals_the_yaml_source() {
    for (name, yaml) in ringfence_cis::benchmark::EMBEDDED {
        let from_yaml = Benchmark::parse(name, yaml).unwrap();
        assert_eq!(Benchmark::embedded(name).unwrap(), from_yaml, "{name}");
    }
}
