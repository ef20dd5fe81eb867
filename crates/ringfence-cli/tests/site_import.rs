//! `ringfence site import` through the built binary: dual-stack CIDRs, the
//! API server port disagreement and unknown variables reach stderr, the
//! JSON output and the exit code.

mod common;
use common::{repo_root, run as ringfence};

fn fixture(name: &str) -> String {
    repo_root()
        .join("crates/ringfence-site/tests/data/tkg-config")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_dual_stack_config_imports_both_halves_and_exits_0() {
    let (code, out, err) = ringfence(&[
        "site",
        "import",
        "--tkg-config",
        &fixture("dual-stack.yaml"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  cluster_cidr: 100.96.0.0/11,fd00:100:96::/48\n"),
        "{out}"
    );
    assert!(
        out.contains("  service_cidr: 100.64.0.0/13,fd00:100:64::/108\n"),
        "{out}"
    );
    assert!(!err.contains("warning:"), "{err}");
}

#[test]
fn a_port_disagreement_is_a_warning_on_stderr_and_exit_1() {
    let path = fixture("endpoint-port-mismatch.yaml");
    let (code, out, err) = ringfence(&["site", "import", "--tkg-config", &path]);
    assert_eq!(code, 1, "{err}");
    // The site file is still written.
    assert!(out.contains("  api_server_port: 6443\n"), "{out}");
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(warning.starts_with(&format!(
        "warning: VSPHERE_CONTROL_PLANE_ENDPOINT is `198.18.10.5:8443` ({path}:5:33), port 8443, but CLUSTER_API_SERVER_PORT is 6443 ({path}:3:26): the site's flows use 6443"
    )), "{warning}");
}

#[test]
fn unknown_variables_are_notes_on_stderr_and_listed_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("import.json");
    let path = fixture("unknown-variables.yaml");
    let (code, out, err) = ringfence(&[
        "site",
        "import",
        "--tkg-config",
        &path,
        "--format",
        "json",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains(&format!("note: {path}:8:13: unknown variable `AVI_ENABEL`, not used for the site file; did you mean `AVI_ENABLE`?\n")),
        "{err}"
    );
    assert!(err.contains("unknown variable `MY_SITE_TAG`"), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    let names: Vec<&str> = v["unknown_variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["AVI_ENABEL", "CLUSTER_API_SERVR_PORT", "MY_SITE_TAG"]
    );
    assert_eq!(
        v["unknown_variables"][1]["did_you_mean"],
        "CLUSTER_API_SERVER_PORT"
    );
    assert_eq!(v["unknown_variables"][2].get("did_you_mean"), None);
    assert_eq!(v["warnings"], serde_json::json!([]));
    assert!(v["site_yaml"]
        .as_str()
        .unwrap()
        .starts_with("# Site file written by `ringfence site import`"));
    assert!(v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n.as_str().unwrap().contains("`management`")));
}
