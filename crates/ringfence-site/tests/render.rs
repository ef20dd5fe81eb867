//! Snapshots of every `flows` output format for the embedded example site.

use ringfence_site::render::{render, FlowFormat};

#[test]
fn example_flows_as_json() {
    insta::assert_snapshot!(render(
        &ringfence_site::example_site().resolve(),
        FlowFormat::Json
    ));
}

#[test]
fn example_flows_as_markdown() {
    insta::assert_snapshot!(render(
        &ringfence_site::example_site().resolve(),
        FlowFormat::Markdown
    ));
}

#[test]
fn example_flows_as_csv() {
    insta::assert_snapshot!(render(
        &ringfence_site::example_site().resolve(),
        FlowFormat::Csv
    ));
}

#[test]
fn example_flows_as_table() {
    insta::assert_snapshot!(render(
        &ringfence_site::example_site().resolve(),
        FlowFormat::Table
    ));
}

#[test]
fn json_has_the_documented_shape() {
    let text = render(&ringfence_site::example_site().resolve(), FlowFormat::Json);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["site"], "example-dc");
    let f = &v["flows"][0];
    for key in [
        "id",
        "purpose",
        "sources",
        "destinations",
        "services",
        "action",
    ] {
        assert!(f.get(key).is_some(), "flow lacks {key}");
    }
    assert_eq!(f["services"][0]["protocol"], "tcp");
    assert_eq!(f["services"][0]["ports"], "6443");
    let deny = v["flows"].as_array().unwrap().last().unwrap();
    assert_eq!(deny["action"], "deny");
    assert_eq!(deny["services"][0]["ports"], "any");
}

#[test]
fn example_flows_as_dot() {
    insta::assert_snapshot!(render(
        &ringfence_site::example_site().resolve(),
        FlowFormat::Dot
    ));
}

#[test]
fn example_flows_as_mermaid() {
    insta::assert_snapshot!(render(
        &ringfence_site::example_site().resolve(),
        FlowFormat::Mermaid
    ));
}

#[test]
fn diagrams_draw_same_network_flows_as_self_loops_only() {
    let dot = render(&ringfence_site::example_site().resolve(), FlowFormat::Dot);
    assert!(dot.contains("workload -> workload [label=\"allow-wl-subnet (all)\"]"));
    assert!(dot.contains("any -> any [label=\"deny-all (all)\", style=dashed"));
}
