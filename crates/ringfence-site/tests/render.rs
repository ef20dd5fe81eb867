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

/// The example site with SSH to the jumpbox disabled and Pinniped narrowed
/// to the IdP's clients, as docs/site.md shows it.
fn shaped_example() -> ringfence_site::ResolvedSite {
    let text = ringfence_site::EXAMPLE_SITE_YAML
        .replace(
            "  workload: [198.18.20.0/24, 198.18.21.0/24]\n",
            "  workload: [198.18.20.0/24, 198.18.21.0/24]\n  idp-clients: [198.18.20.0/26]\n",
        )
        .replace(
            "extra_flows: []",
            "extra_flows: []\ndisable: [ssh-to-jumpbox]\nnarrow:\n  allow-pinniped:\n    from: [idp-clients]\n  dns-ntp-outbound:\n    to: [ntp]\n",
        );
    ringfence_site::parse_site(&text, "shaped.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .resolve()
}

#[test]
fn shaped_flows_in_every_format() {
    for (name, format) in [
        ("table", FlowFormat::Table),
        ("markdown", FlowFormat::Markdown),
        ("csv", FlowFormat::Csv),
        ("json", FlowFormat::Json),
        ("dot", FlowFormat::Dot),
        ("mermaid", FlowFormat::Mermaid),
    ] {
        insta::assert_snapshot!(
            format!("shaped_flows_as_{name}"),
            render(&shaped_example(), format)
        );
    }
}
