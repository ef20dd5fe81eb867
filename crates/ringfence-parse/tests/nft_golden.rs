//! Golden tests: real `nft -j list ruleset` dumps (tests/data/nft, made by
//! regen.sh from the .nft sources beside them) parse into the expected model.

mod nft_support;

use ringfence_parse::nft;

fn golden(name: &str) -> String {
    let path = format!("{}/tests/data/nft/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let rs = nft::parse(&text, &format!("{name}.json")).unwrap_or_else(|e| panic!("{e}"));
    nft_support::render(&rs)
}

#[test]
fn mixed_ruleset_parses_into_expected_model() {
    insta::assert_snapshot!(golden("mixed"));
}

#[test]
fn match_forms_parse_into_expected_model() {
    insta::assert_snapshot!(golden("matches"));
}

#[test]
fn kube_style_ruleset_parses_into_expected_model() {
    insta::assert_snapshot!(golden("kube"));
}

#[test]
fn verdict_maps_become_one_rule_per_element() {
    insta::assert_snapshot!(golden("vmap"));
}

#[test]
fn iptables_nft_compat_expressions_are_opaque_or_exact_where_the_dump_allows() {
    insta::assert_snapshot!(golden("iptables-nft"));
}
