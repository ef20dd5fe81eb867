//! The watch DaemonSet passes `--interval`, `--exec`, `--webhook` and
//! `--record` through to `ringfence watch` when given, keeps the history in
//! a node directory mounted read-write (the only writable mount), refuses
//! those options for the scan kinds and bad history paths, and still
//! validates against the Kubernetes schemas.

use ringfence_fleet::manifest::{
    build, render_yaml, ManifestOptions, OptionsError, WatchExtras, WorkloadKind, WATCH_RECORD_DIR,
};
use std::path::Path;
use std::process::Command;

const SITE: &str = "name: lab\ntkg:\n  version: \"1.5\"\nzones:\n  management: [198.18.10.0/24]\n";

fn watch(extras: WatchExtras) -> ManifestOptions {
    ManifestOptions {
        kind: WorkloadKind::Watch,
        image: "registry.example.com/ringfence:0.1.0".into(),
        site: Some(SITE.into()),
        watch_extras: extras,
        ..Default::default()
    }
}

fn every_extra() -> WatchExtras {
    WatchExtras {
        interval: Some("2s".into()),
        exec: Some("logger -t 'ringfence watch'".into()),
        webhook: Some("https://hooks.example.com/ringfence".into()),
        record: Some("/var/lib/ringfence/history".into()),
    }
}

fn pod(opts: &ManifestOptions) -> serde_json::Value {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&render_yaml(opts).unwrap()).expect("YAML parses");
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    ds["spec"]["template"]["spec"].clone()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn watch_daemonset_with_every_extra_snapshot() {
    insta::assert_snapshot!(render_yaml(&watch(every_extra())).unwrap());
}

#[test]
fn given_flags_are_passed_to_watch_after_its_usual_ones() {
    let p = pod(&watch(every_extra()));
    let argv = strings(&p["containers"][0]["command"]);
    assert_eq!(
        argv[10..],
        [
            "--interval",
            "2s",
            "--exec",
            "logger -t 'ringfence watch'",
            "--webhook",
            "https://hooks.example.com/ringfence",
            "--record",
            WATCH_RECORD_DIR,
        ]
    );
    // Only what is given is passed.
    let p = pod(&watch(WatchExtras {
        webhook: Some("http://alerts.ringfence.svc:8080/".into()),
        ..Default::default()
    }));
    let argv = strings(&p["containers"][0]["command"]);
    assert_eq!(
        argv[10..],
        ["--webhook", "http://alerts.ringfence.svc:8080/"]
    );
    assert_eq!(
        p["volumes"].as_array().unwrap().len(),
        1,
        "no history volume"
    );
}

#[test]
fn the_history_is_a_node_directory_and_the_only_writable_mount() {
    let p = pod(&watch(every_extra()));
    let vols = p["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 2);
    let h = vols.iter().find(|v| v["name"] == "history").unwrap();
    assert_eq!(h["hostPath"]["path"], "/var/lib/ringfence/history");
    assert_eq!(h["hostPath"]["type"], "DirectoryOrCreate");
    let c = &p["containers"][0];
    let mounts = c["volumeMounts"].as_array().unwrap();
    let writable: Vec<&serde_json::Value> =
        mounts.iter().filter(|m| m["readOnly"] != true).collect();
    assert_eq!(writable.len(), 1, "{mounts:?}");
    assert_eq!(writable[0]["name"], "history");
    assert_eq!(writable[0]["mountPath"], WATCH_RECORD_DIR);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
}

#[test]
fn extras_on_a_scan_kind_and_bad_history_paths_are_refused() {
    for kind in [WorkloadKind::Job, WorkloadKind::DaemonSet] {
        for (extras, flag) in [
            (
                WatchExtras {
                    interval: Some("2s".into()),
                    ..Default::default()
                },
                "--watch-interval",
            ),
            (
                WatchExtras {
                    exec: Some("true".into()),
                    ..Default::default()
                },
                "--watch-exec",
            ),
            (
                WatchExtras {
                    webhook: Some("https://x.example.com/".into()),
                    ..Default::default()
                },
                "--watch-webhook",
            ),
            (
                WatchExtras {
                    record: Some("/var/lib/x".into()),
                    ..Default::default()
                },
                "--watch-record",
            ),
        ] {
            let opts = ManifestOptions {
                kind,
                site: None,
                ..watch(extras)
            };
            let e = build(&opts).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("{flag} applies to --kind watch")),
                "{e}"
            );
        }
    }
    for bad in [
        "relative/dir",
        "/",
        "/var/../etc",
        "/var/./x",
        "/var//x",
        "/var/x/",
    ] {
        let e = build(&watch(WatchExtras {
            record: Some(bad.into()),
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(e, OptionsError::RecordPath(bad.into()));
        assert!(e.to_string().contains("absolute directory"), "{e}");
    }
    let e = build(&watch(WatchExtras {
        exec: Some("  ".into()),
        ..Default::default()
    }))
    .unwrap_err();
    assert_eq!(e, OptionsError::EmptyWatchFlag("--watch-exec"));
}

#[test]
fn the_daemonset_with_every_extra_validates_against_the_kubernetes_schemas() {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
    if !ringfence_testkit::require!(ringfence_testkit::repo::venv_tool("kubernetes-validate")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("watch-extras.yaml");
    std::fs::write(&file, render_yaml(&watch(every_extra())).unwrap()).unwrap();
    for v in ["1.22.0", "1.25.0", "1.28.0"] {
        let out = Command::new(venv.join("bin/kubernetes-validate"))
            .args(["--strict", "-k", v])
            .arg(&file)
            .output()
            .expect("run kubernetes-validate");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !stdout.contains("ERROR") && !stdout.contains("WARN"),
            "Kubernetes {v}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Namespace, ServiceAccount, ConfigMap, DaemonSet.
        assert_eq!(stdout.matches("passed for resource").count(), 4, "{stdout}");
    }
}
