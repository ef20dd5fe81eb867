//! The generated manifests: their content (snapshots), their security
//! settings, and their validity against the Kubernetes schemas of every
//! version TKG ships, checked offline with PyPI's kubernetes-validate.

use ringfence_fleet::manifest::{
    build, render_yaml, ManifestOptions, OptionsError, WatchHook, WatchSource, WorkloadKind,
    MAX_SITE_BYTES,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn job_for(nodes: &[&str]) -> ManifestOptions {
    ManifestOptions {
        nodes: nodes.iter().map(|s| (*s).to_string()).collect(),
        image: "registry.example.com/ringfence:0.1.0".into(),
        profile: Some("tkg-1.5".into()),
        ..Default::default()
    }
}

fn daemon_set() -> ManifestOptions {
    ManifestOptions {
        kind: WorkloadKind::DaemonSet,
        image: "registry.example.com/ringfence:0.1.0".into(),
        ..Default::default()
    }
}

/// A small site file for the watch manifests (the library stores it as
/// given; the CLI checks it before).
const WATCH_SITE: &str = "name: lab\ntkg:\n  version: \"1.5\"\nzones:\n  management: [198.18.10.0/24]\n  harbor: [198.18.1.20]\n";

fn watch(source: WatchSource) -> ManifestOptions {
    ManifestOptions {
        kind: WorkloadKind::Watch,
        image: "registry.example.com/ringfence:0.1.0".into(),
        site: Some(WATCH_SITE.into()),
        watch_source: source,
        ..Default::default()
    }
}

#[test]
fn job_manifest_for_two_nodes_snapshot() {
    insta::assert_snapshot!(render_yaml(&job_for(&["worker-1", "cp-1"])).unwrap());
}

#[test]
fn daemonset_manifest_snapshot() {
    insta::assert_snapshot!(render_yaml(&daemon_set()).unwrap());
}

#[test]
fn watch_daemonset_manifest_snapshot() {
    insta::assert_snapshot!(render_yaml(&watch(WatchSource::Nft)).unwrap());
}

fn docs(yaml: &str) -> Vec<serde_json::Value> {
    // Read the YAML back with serde-saphyr: each `---` document is one object.
    serde_saphyr::from_multiple::<serde_json::Value>(yaml).expect("generated YAML parses")
}

fn scan_pods(yaml: &str) -> Vec<serde_json::Value> {
    docs(yaml)
        .into_iter()
        .filter(|d| d["kind"] != "Namespace")
        .map(|d| d["spec"]["template"]["spec"].clone())
        .collect()
}

#[test]
fn scan_pods_read_the_host_read_only_without_token_or_capabilities() {
    for yaml in [
        render_yaml(&job_for(&["n1"])).unwrap(),
        render_yaml(&daemon_set()).unwrap(),
    ] {
        for pod in scan_pods(&yaml) {
            assert_eq!(pod["hostPID"], true);
            assert_eq!(pod["automountServiceAccountToken"], false);
            let vols = pod["volumes"].as_array().unwrap();
            assert_eq!(vols.len(), 1, "one hostPath volume: the host root");
            assert_eq!(vols[0]["hostPath"]["path"], "/");
            let scan = pod["containers"]
                .as_array()
                .unwrap()
                .iter()
                .chain(pod["initContainers"].as_array().into_iter().flatten())
                .find(|c| c["name"] == "scan")
                .expect("a scan container")
                .clone();
            assert_eq!(scan["volumeMounts"][0]["mountPath"], "/host");
            assert_eq!(scan["volumeMounts"][0]["readOnly"], true);
            let cmd: Vec<&str> = scan["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(&cmd[..5], ["ringfence", "cis", "scan", "--root", "/host"]);
            assert_eq!(&cmd[cmd.len() - 2..], ["--format", "json"]);
            let sc = &scan["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true);
            assert_eq!(sc["allowPrivilegeEscalation"], false);
            assert_eq!(sc["privileged"], false);
            assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
            assert!(
                sc["capabilities"]["add"].is_null(),
                "no capability is added"
            );
            assert_eq!(sc["runAsUser"], 0);
            assert!(scan["resources"]["limits"]["memory"].is_string());
            let tol: Vec<&str> = pod["tolerations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["key"].as_str().unwrap())
                .collect();
            assert_eq!(
                tol,
                [
                    "node-role.kubernetes.io/control-plane",
                    "node-role.kubernetes.io/master"
                ]
            );
        }
    }
}

#[test]
fn jobs_are_pinned_to_their_node_and_never_restart() {
    let yaml = render_yaml(&job_for(&["cp-1.example.com"])).unwrap();
    let d = docs(&yaml);
    assert_eq!(d[0]["kind"], "Namespace");
    assert_eq!(
        d[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    let job = &d[1];
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["metadata"]["name"], "ringfence-cis-cp-1-example-com");
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert!(job["spec"]["ttlSecondsAfterFinished"].as_i64().unwrap() > 0);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["nodeName"], "cp-1.example.com");
    assert_eq!(pod["restartPolicy"], "Never");
}

/// Kubernetes versions whose schemas the installed kubernetes-validate
/// bundles, from 1.22 (the oldest TKG ships) up: read from the package's own
/// schema directory, so a newer pin tests newer versions automatically.
fn bundled_versions(venv: &Path) -> Vec<(u32, u32)> {
    let lib = venv.join("lib");
    let mut found = Vec::new();
    for py in std::fs::read_dir(&lib).into_iter().flatten().flatten() {
        let dir = py
            .path()
            .join("site-packages/kubernetes_validate/kubernetes-json-schema");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Directories are named like v1.28.0-local and v1.28.0-local-strict.
            let Some(rest) = name
                .strip_prefix("v")
                .and_then(|r| r.strip_suffix("-local"))
            else {
                continue;
            };
            let mut parts = rest.split('.');
            if let (Some(Ok(maj)), Some(Ok(min))) =
                (parts.next().map(str::parse), parts.next().map(str::parse))
            {
                if (maj, min) >= (1, 22) {
                    found.push((maj, min));
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv")
}

#[test]
fn every_manifest_validates_against_each_bundled_kubernetes_schema() {
    let venv = venv();
    let tool = venv.join("bin/kubernetes-validate");
    if !ringfence_testkit::require!(ringfence_testkit::repo::venv_tool("kubernetes-validate")) {
        return;
    }
    let versions = bundled_versions(&venv);
    for v in [
        (1, 22),
        (1, 23),
        (1, 24),
        (1, 25),
        (1, 26),
        (1, 27),
        (1, 28),
    ] {
        assert!(
            versions.contains(&v),
            "kubernetes-validate lacks the {}.{} schemas TKG needs; found {versions:?}",
            v.0,
            v.1
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, opts) in [
        ("job-one.yaml", job_for(&[])),
        ("job-nodes.yaml", job_for(&["cp-1", "worker-1.example.com"])),
        ("daemonset.yaml", daemon_set()),
        ("watch-nft.yaml", watch(WatchSource::Nft)),
        ("watch-iptables.yaml", watch(WatchSource::Iptables)),
        // Names a YAML 1.1 reader (PyYAML, as kubectl's ancestors) would take
        // for numbers, booleans or null unless the serializer quotes them.
        (
            "ambiguous-names.yaml",
            ManifestOptions {
                namespace: "123".into(),
                ..job_for(&["on", "yes", "null", "1e3", "0x1f", "1.5"])
            },
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, render_yaml(&opts).unwrap()).unwrap();
        files.push(p);
    }
    for (maj, min) in &versions {
        let out = Command::new(&tool)
            .arg("--strict")
            .arg("-k")
            .arg(format!("{maj}.{min}.0"))
            .args(&files)
            .output()
            .expect("run kubernetes-validate");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stdout.contains("ERROR") && !stdout.contains("WARN"),
            "Kubernetes {maj}.{min}: kubernetes-validate failed\n{stdout}\n{stderr}"
        );
        // Each document is reported as valid, so nothing was silently skipped.
        assert_eq!(
            stdout.matches("passed for resource").count(),
            2 + 3 + 2 + 4 + 4 + 7,
            "Kubernetes {maj}.{min}:\n{stdout}"
        );
    }
    eprintln!("validated against Kubernetes {versions:?}");

    // Negative control: the same validator, on a Job with one misspelt
    // field, must fail; otherwise the passes above prove nothing.
    let bad = dir.path().join("bad.yaml");
    let yaml = render_yaml(&job_for(&["n1"]))
        .unwrap()
        .replace("hostPID:", "hostPId:");
    assert!(yaml.contains("hostPId:"));
    std::fs::write(&bad, yaml).unwrap();
    let out = Command::new(&tool)
        .args(["--strict", "-k", "1.28.0"])
        .arg(&bad)
        .output()
        .expect("run kubernetes-validate");
    assert!(
        !out.status.success(),
        "a misspelt field must fail strict validation"
    );
}

fn strings(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn watch_pod(yaml: &str) -> serde_json::Value {
    let d = docs(yaml);
    let ds: Vec<&serde_json::Value> = d.iter().filter(|o| o["kind"] == "DaemonSet").collect();
    assert_eq!(ds.len(), 1, "one DaemonSet");
    assert_eq!(ds[0]["metadata"]["name"], "ringfence-watch");
    ds[0]["spec"]["template"]["spec"].clone()
}

#[test]
fn watch_objects_are_namespace_service_account_site_config_map_and_daemon_set() {
    let d = docs(&render_yaml(&watch(WatchSource::Nft)).unwrap());
    let kinds: Vec<&str> = d.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["Namespace", "ServiceAccount", "ConfigMap", "DaemonSet"]
    );
    assert_eq!(
        d[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged",
        "baseline Pod Security refuses hostNetwork and NET_ADMIN"
    );
    for o in &d[1..] {
        assert_eq!(o["metadata"]["namespace"], "ringfence");
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/name"],
            "ringfence-watch"
        );
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "ringfence"
        );
    }
    assert_eq!(d[1]["automountServiceAccountToken"], false);
    let pod = watch_pod(&render_yaml(&watch(WatchSource::Nft)).unwrap());
    assert_eq!(pod["serviceAccountName"], "ringfence-watch");
    assert_eq!(pod["automountServiceAccountToken"], false);
    // --no-namespace leaves out only the Namespace.
    let without = docs(
        &render_yaml(&ManifestOptions {
            include_namespace: false,
            ..watch(WatchSource::Nft)
        })
        .unwrap(),
    );
    assert_eq!(without.len(), 3);
    assert_ne!(without[0]["kind"], "Namespace");
}

#[test]
fn watch_pod_shares_the_host_network_with_net_admin_only_and_a_read_only_root() {
    let pod = watch_pod(&render_yaml(&watch(WatchSource::Nft)).unwrap());
    assert_eq!(pod["hostNetwork"], true);
    assert!(pod["hostPID"].is_null() && pod["hostIPC"].is_null());
    assert!(pod["initContainers"].is_null());
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["name"], "watch");
    assert_eq!(c["image"], "registry.example.com/ringfence:0.1.0");
    let sc = &c["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["add"]), ["NET_ADMIN"]);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    // Root because Kubernetes hands added capabilities to uid 0 only.
    assert_eq!(sc["runAsUser"], 0);
    assert_eq!(sc["runAsNonRoot"], false);
    for r in ["requests", "limits"] {
        assert!(c["resources"][r]["cpu"].is_string(), "{r} cpu");
        assert!(c["resources"][r]["memory"].is_string(), "{r} memory");
    }
    let tol: Vec<&str> = pod["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        tol,
        [
            "node-role.kubernetes.io/control-plane",
            "node-role.kubernetes.io/master"
        ]
    );
}

#[test]
fn watch_mounts_only_the_site_config_map_read_only_and_nothing_of_the_host() {
    let pod = watch_pod(&render_yaml(&watch(WatchSource::Nft)).unwrap());
    let vols = pod["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 1, "one volume: {vols:?}");
    assert!(vols[0]["hostPath"].is_null());
    assert_eq!(vols[0]["configMap"]["name"], "ringfence-watch-site");
    assert_eq!(vols[0]["configMap"]["items"][0]["key"], "site.yaml");
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0]["name"], vols[0]["name"]);
    assert_eq!(mounts[0]["mountPath"], "/etc/ringfence");
    assert_eq!(mounts[0]["readOnly"], true);
}

#[test]
fn watch_runs_on_the_mounted_site_with_the_chosen_source_and_hook_printing_json() {
    for (source, hook, source_arg, hook_arg) in [
        (WatchSource::Nft, WatchHook::Forward, "nft", "forward"),
        (
            WatchSource::Iptables,
            WatchHook::Forward,
            "iptables",
            "forward",
        ),
        (WatchSource::Nft, WatchHook::Input, "nft", "input"),
        (
            WatchSource::Iptables,
            WatchHook::Output,
            "iptables",
            "output",
        ),
    ] {
        let opts = ManifestOptions {
            watch_hook: hook,
            ..watch(source)
        };
        let pod = watch_pod(&render_yaml(&opts).unwrap());
        assert_eq!(
            strings(&pod["containers"][0]["command"]),
            [
                "ringfence",
                "watch",
                "--site",
                "/etc/ringfence/site.yaml",
                "--source",
                source_arg,
                "--hook",
                hook_arg,
                "--format",
                "json"
            ]
        );
    }
}

#[test]
fn watch_site_config_map_holds_the_site_file_byte_for_byte() {
    // Text a careless YAML writer would change: indentation, trailing
    // spaces, a document marker, YAML 1.1 booleans, quotes, a tab, non-ASCII,
    // no final newline.
    let tricky =
        "  indented: yes\n---\nname: \"on\" # comment \ntrailing:   \n\tzone: ü\n\n\nlast: 0x1f";
    for site in [WATCH_SITE, tricky, "one line"] {
        let d = docs(
            &render_yaml(&ManifestOptions {
                site: Some(site.into()),
                ..watch(WatchSource::Nft)
            })
            .unwrap(),
        );
        let cm = d.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
        assert_eq!(cm["metadata"]["name"], "ringfence-watch-site");
        assert_eq!(cm["data"]["site.yaml"], site, "site {site:?}");
    }
}

#[test]
fn watch_options_that_cannot_work_are_refused_with_the_reason() {
    let no_site = ManifestOptions {
        site: None,
        ..watch(WatchSource::Nft)
    };
    assert_eq!(build(&no_site).unwrap_err(), OptionsError::NoSite);
    assert!(OptionsError::NoSite.to_string().contains("--site FILE"));
    let profile = ManifestOptions {
        profile: Some("tkg-1.5".into()),
        ..watch(WatchSource::Nft)
    };
    let e = build(&profile).unwrap_err();
    assert!(e.to_string().starts_with("--profile applies to"), "{e}");
    let nodes = ManifestOptions {
        nodes: vec!["n1".into()],
        ..watch(WatchSource::Nft)
    };
    assert_eq!(build(&nodes).unwrap_err(), OptionsError::NodesWithDaemonSet);
    let huge = ManifestOptions {
        site: Some("#".repeat(MAX_SITE_BYTES + 1)),
        ..watch(WatchSource::Nft)
    };
    assert_eq!(
        build(&huge).unwrap_err(),
        OptionsError::SiteTooLarge(MAX_SITE_BYTES + 1)
    );
    // The watch options on a scan kind.
    for kind in [WorkloadKind::Job, WorkloadKind::DaemonSet] {
        let site_on_scan = ManifestOptions {
            kind,
            profile: None,
            ..watch(WatchSource::Nft)
        };
        let e = build(&site_on_scan).unwrap_err();
        assert!(
            e.to_string().starts_with("--site applies to --kind watch"),
            "{e}"
        );
        let source_on_scan = ManifestOptions {
            kind,
            site: None,
            ..watch(WatchSource::Iptables)
        };
        let e = build(&source_on_scan).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--watch-source applies to --kind watch"),
            "{e}"
        );
        let hook_on_scan = ManifestOptions {
            kind,
            site: None,
            watch_hook: WatchHook::Input,
            ..watch(WatchSource::Nft)
        };
        let e = build(&hook_on_scan).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--watch-hook applies to --kind watch"),
            "{e}"
        );
    }
}
