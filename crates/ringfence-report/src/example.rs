//! The embedded example: the example site (`examples/site.yaml`), a ruleset
//! for it with deliberate defects (`examples/ruleset.rules`, the defects are
//! listed in its header and in [`DEFECTS`]) and a CIS result of a TKG control
//! plane node (`examples/cis-tkg-control-plane.json`, made by the real scanner
//! from the CIS crate's test node; a CLI test keeps it current).

/// The example ruleset (iptables-save).
pub const RULESET: &str = include_str!("../../../examples/ruleset.rules");
/// The name the example ruleset is reported under.
pub const RULESET_NAME: &str = "examples/ruleset.rules";
/// The example CIS result (`ringfence cis scan --profile tkg-1.5 --format json`).
pub const CIS_RESULT: &str = include_str!("../../../examples/cis-tkg-control-plane.json");
/// The name the example CIS result is reported under.
pub const CIS_RESULT_NAME: &str = "examples/cis-tkg-control-plane.json";

/// The example's deliberate defects, as the report should find them.
pub const DEFECTS: &[&str] = &[
    "to-vcenter is missing: no rule opens vCenter (tcp/443), so the required flow is blocked",
    "avi-nodeport opens only 30000-31999 of the NodePort range 30000-32767: partial",
    "harbor also accepts tcp/8080 from anywhere: an extra port beyond the required flows",
    "a kubelet rule (tcp/10250) inside the management subnet comes after the rule that accepts everything there: shadowed",
    "a Harbor rule for one management host comes before the rule for the whole subnet: redundant",
    "CIS: the control plane's kubelet allows anonymous access (4.2.1), a failure the TKG profile does not expect",
];

/// The example report: the example site, [`RULESET`] verified on the forward
/// hook and [`CIS_RESULT`], stamped with `generated` and `version`.
pub fn report(generated: &str, version: &str) -> crate::Report {
    let site = ringfence_site::example_site();
    let rs = ringfence_parse::parse_ruleset(
        RULESET,
        RULESET_NAME,
        ringfence_parse::RulesetFormat::IptablesSave,
    )
    .expect("the example ruleset parses (checked by tests)");
    let verified =
        ringfence_analysis::verify::verify(&rs, &site.resolve(), ringfence_model::Hook::Forward);
    let cis = crate::cis::parse_cis(CIS_RESULT, CIS_RESULT_NAME)
        .expect("the example CIS result parses (checked by tests)");
    crate::build(&crate::Inputs {
        site: &site,
        site_file: "embedded example: examples/site.yaml".into(),
        ruleset: Some(crate::RulesetInput {
            verify: &verified,
            text: RULESET,
            format: "iptables-save",
        }),
        cis: vec![cis],
        lab: None,
        generated: generated.into(),
        version: version.into(),
        example: true,
    })
}
