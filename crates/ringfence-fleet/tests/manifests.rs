//! The generated manifests: their content (snapshots), their security
//! settings, and their validity against the Kubernetes schemas of every
//! version TKG ships, checked offline with PyPI's kubernetes-validate.

use ringfence_fleet::manifest::{render_yaml, ManifestOptions, WorkloadKind};
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

#[test]
fn job_manifest_for_two_nodes_snapshot() {
    insta::assert_snapshot!(render_yaml(&job_for(&["worker-1", "cp-1"])).unwrap());
}

#[test]
fn daemonset_manifest_snapshot() {
    insta::assert_snapshot!(render_yaml(&daemon_set()).unwrap());
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
            2 + 3 + 2 + 7,
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
