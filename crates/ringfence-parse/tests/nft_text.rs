//! nft text (`nft list ruleset` output, `nft -f` scripts) gives the verdicts
//! of the JSON dump of the same ruleset.
//!
//! Without root: each fixture script in tests/data/nft/*.nft against its
//! committed `nft -j` dump. With root: each fixture and ringfence's own
//! generated nftables (example and all-features sites, forward and input
//! hooks) is loaded into a namespace this test creates, dumped as text and
//! as JSON, and the two dumps (and the script itself) must agree on every
//! probe packet.

mod probe_support;

use ringfence_model::Ruleset;
use ringfence_parse::{nft, nft_text, parse_ruleset, RulesetFormat};
use ringfence_testkit::{Need, Netns};

const FIXTURES: [&str; 5] = ["concat", "kube", "matches", "mixed", "vmap"];

fn data(name: &str) -> String {
    let p = format!("{}/tests/data/nft/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn text(t: &str, name: &str) -> Ruleset {
    nft_text::parse(t, name).unwrap_or_else(|e| panic!("{name}:\n{e}"))
}

fn json(t: &str, name: &str) -> Ruleset {
    nft::parse(t, name).unwrap_or_else(|e| panic!("{name}:\n{e}"))
}

fn assert_same(a: &Ruleset, b: &Ruleset, what: &str) {
    let packets = probe_support::packets(&[a, b], 3000);
    let d = probe_support::disagreements(a, b, &packets);
    assert!(
        d.is_empty(),
        "{what}: {} of {} probes disagree, first:\n{}",
        d.len(),
        packets.len() * 3,
        d[..d.len().min(5)].join("\n")
    );
}

/// ringfence's own nftables output for the example and all-features sites.
fn generated() -> Vec<(String, String)> {
    use ringfence_generate::{generate_site, Options, Target};
    let all = ringfence_site::load_site_file(&ringfence_testkit::repo::path(
        "examples/all-features.yaml",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for (name, site) in [
        ("example", ringfence_site::example_site()),
        ("all-features", all),
    ] {
        for hook in [
            ringfence_generate::Hook::Forward,
            ringfence_generate::Hook::Input,
        ] {
            let opts = Options {
                hook,
                ..Options::default()
            };
            let o = generate_site(&site, Target::Nftables, &opts).unwrap();
            out.push((
                format!("{name}-{}.nft", hook.nft_name()),
                o.files[0].contents.clone(),
            ));
        }
    }
    out
}

#[test]
fn fixture_scripts_give_the_verdicts_of_their_json_dumps() {
    for f in FIXTURES {
        let script = text(&data(&format!("{f}.nft")), &format!("{f}.nft"));
        let dump = json(&data(&format!("{f}.json")), &format!("{f}.json"));
        assert_same(&script, &dump, f);
    }
}

#[test]
fn probes_tell_different_rulesets_apart() {
    // The comparison is only worth something if it notices a difference.
    let kube = text(&data("kube.nft"), "kube.nft");
    let mut changed = data("kube.nft");
    changed = changed.replace("udp dport 53 accept", "udp dport 54 accept");
    let changed = text(&changed, "kube-changed.nft");
    let packets = probe_support::packets(&[&kube, &changed], 3000);
    assert!(!probe_support::disagreements(&kube, &changed, &packets).is_empty());
}

#[test]
fn generated_nftables_is_read_exactly_icmp_types_included() {
    for (name, t) in generated() {
        let rs = parse_ruleset(&t, &name, RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"));
        // Everything ringfence generates is read exactly: no note, no
        // opaque match (ICMP types are fields).
        assert!(rs.notes.is_empty(), "{name}: {:?}", rs.notes);
        assert!(
            rs.chains
                .iter()
                .flat_map(|c| &c.rules)
                .all(|r| r.matches.opaque.is_empty() || c_is_synth(&rs, r)),
            "{name}: an opaque match"
        );
        assert!(
            rs.chains
                .iter()
                .any(|c| c.base.is_some() && !c.rules.is_empty()),
            "{name}: no rules read"
        );
    }
}

/// Whether `r` is the one rule of a chain standing for a target the model
/// cannot follow.
fn c_is_synth(rs: &ringfence_model::Ruleset, r: &ringfence_model::Rule) -> bool {
    rs.chains
        .iter()
        .any(|c| c.is_unknown_target() && c.rules.first() == Some(r))
}

#[test]
fn kernel_text_and_json_dumps_give_the_same_verdicts() {
    if !ringfence_testkit::require!(Need::Root, Need::Tool("ip"), Need::Tool("nft")) {
        return;
    }
    let mut cases: Vec<(String, String)> = FIXTURES
        .iter()
        .map(|f| (format!("{f}.nft"), data(&format!("{f}.nft"))))
        .collect();
    cases.extend(generated());
    for (name, script) in cases {
        let ns = Netns::new("nftxt");
        ns.load_nft(&script);
        let listed = ns.ok("nft", &["list", "ruleset"], b"");
        let dumped = ns.ok("nft", &["-j", "list", "ruleset"], b"");
        let from_text = text(&listed, &format!("{name} (nft list ruleset)"));
        let from_json = json(&dumped, &format!("{name} (nft -j list ruleset)"));
        let from_script = text(&script, &name);
        assert_same(
            &from_text,
            &from_json,
            &format!("{name}: text vs JSON dump"),
        );
        assert_same(
            &from_script,
            &from_json,
            &format!("{name}: script vs JSON dump"),
        );
        // `nft -a` adds `# handle N` comments; they change nothing.
        let handles = ns.ok("nft", &["-a", "list", "ruleset"], b"");
        assert_same(
            &text(&handles, &format!("{name} (nft -a list ruleset)")),
            &from_json,
            &format!("{name}: text with handles vs JSON dump"),
        );
    }
}
