//! The `ringfence` binary's foundation commands, run as a user would.

mod common;
use common::run as ringfence;

#[test]
fn flows_json_on_the_embedded_example_lists_the_seed_rows() {
    let (code, out, _) = ringfence(&["flows", "--example", "--format", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.first(), Some(&"workload-to-mgmt"));
    assert_eq!(ids.last(), Some(&"deny-all"));
    assert!(ids.contains(&"allow-pinniped") && ids.contains(&"avi-nodeport"));
}

#[test]
fn flows_for_the_all_features_site_include_every_gated_row() {
    let site = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/all-features.yaml"
    );
    let (code, out, err) = ringfence(&["flows", "--site", site, "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    for id in [
        "avi-to-nsxt",
        "bootstrap-allow-pinniped",
        "ako-to-avi",
        "dhcp",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{id},"))),
            "{id} missing"
        );
    }
}

#[test]
fn a_bad_site_file_exits_2_with_a_located_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "name: x\ntkg:\n  version: \"1.5\"\n  api_server_prt: 6443\n",
    )
    .unwrap();
    let (code, out, err) = ringfence(&["flows", "--site", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("bad.yaml:4:3: unknown field `api_server_prt`"),
        "{err}"
    );
    assert!(err.contains("did you mean `api_server_port`?"), "{err}");
}

#[test]
fn a_missing_site_file_exits_2() {
    let (code, _, err) = ringfence(&["flows", "--site", "/nonexistent/site.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read site file"), "{err}");
}

#[test]
fn flows_out_writes_the_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.md");
    let (code, out, _) = ringfence(&[
        "flows",
        "--example",
        "--format",
        "markdown",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(out.is_empty());
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains("| `deny-all` |"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[test]
fn site_import_writes_a_site_and_lists_placeholders_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mgmt.yaml");
    std::fs::write(
        &cfg,
        "CLUSTER_NAME: mgmt\nIDENTITY_MANAGEMENT_TYPE: oidc\nVSPHERE_SERVER: 198.18.1.30\n",
    )
    .unwrap();
    let (code, out, err) = ringfence(&["site", "import", "--tkg-config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("identity: oidc") && out.contains("  vcenter: [198.18.1.30/32]"),
        "{out}"
    );
    assert!(err.contains("note: zone `management`"), "{err}");
}

#[test]
fn site_check_accepts_the_example() {
    let (code, _, err) = ringfence(&[
        "site",
        "check",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/site.yaml"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ok: site `example-dc`"));
}

#[test]
fn completions_and_man_page_render() {
    let (code, out, _) = ringfence(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(out.contains("ringfence"));
    let (code, out, _) = ringfence(&["man"]);
    assert_eq!(code, 0);
    assert!(out.contains(".TH ringfence"));
}
