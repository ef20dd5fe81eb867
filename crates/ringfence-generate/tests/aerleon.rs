//! Aerleon (pinned in `.venv`, see docs/generate.md) renders our export to its
//! `iptables` and `speedway` targets (and, once the header names them, to
//! `juniper` and `cisco`); the iptables and speedway renderings, loaded into
//! network namespaces, decide every probe packet exactly as our own iptables
//! output does.
//!
//! Generate-then-prove: both renderings, read back from the kernel with
//! `iptables-save` and parsed by ringfence-parse, go through `verify`: every
//! flow is allowed *with its replies* (the export's first term accepts
//! established and related packets), nothing is accepted beyond the flows.
//!
//! How the comparison works: each ruleset is loaded into its own namespace
//! (speedway output with `iptables-restore`, the `iptables` target's command
//! lines one by one with `iptables`, ours with `iptables-restore`), read back
//! with `iptables-save`, and evaluated by `common::eval` on the same probe set
//! (`common::probes`: every pair of representative addresses times every
//! protocol/port edge of every flow, including addresses outside every zone).

mod common;

use common::eval::{tokenize, Ruleset};
use common::{can_run, have_aclgen, netns, probes, sites, Netns};
use ringfence_generate::{generate_site, Family, Options, Target};
use std::path::Path;

fn write_tree(root: &Path, out: &ringfence_generate::Output) {
    for f in &out.files {
        let p = root.join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.contents).unwrap();
    }
}

fn dump_text(ns: &Netns, fam: Family) -> String {
    let save = match fam {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    };
    ns.ok(save, &["-t", "filter"], b"")
}

fn dump(ns: &Netns, fam: Family) -> Ruleset {
    Ruleset::parse(&dump_text(ns, fam))
}

/// `verify` on an iptables-save text: exactly the site's flows, replies included.
fn prove_text(
    name: &str,
    what: &str,
    text: &str,
    site: &ringfence_site::ResolvedSite,
    fam: Family,
) {
    let rs =
        ringfence_parse::parse_ruleset(text, what, ringfence_parse::RulesetFormat::IptablesSave)
            .unwrap_or_else(|e| panic!("{name}: ringfence-parse rejects {what}: {e:?}"));
    common::prove(name, what, &rs, site, &[fam]);
}

#[test]
fn aclgen_renders_our_export_and_its_rules_decide_like_ours() {
    if !have_aclgen() {
        return;
    }
    if !can_run(
        "aerleon comparison",
        &[
            "iptables",
            "ip6tables",
            "iptables-restore",
            "ip6tables-restore",
            "iptables-save",
            "ip6tables-save",
        ],
    ) {
        return;
    }
    for (name, site) in sites() {
        let export = generate_site(&site, Target::Aerleon, &Options::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_tree(dir.path(), &export);
        // The same terms must also render for other platforms once the header names them.
        for f in export
            .files
            .iter()
            .filter(|f| f.role.starts_with("policy-"))
        {
            let path = dir.path().join(&f.path);
            let af = if f.role == "policy-v6" { " inet6" } else { "" };
            let text = f.contents.replace(
                "    terms:\n",
                &format!(
                    "        juniper: rf-edge{af}\n        cisco: rf-edge {}\n    terms:\n",
                    if af.is_empty() { "extended" } else { "inet6" }
                ),
            );
            assert_ne!(text, f.contents, "header not found in {}", f.path);
            std::fs::write(path, text).unwrap();
        }
        ringfence_testkit::repo::run_aclgen(dir.path());
        let resolved = site.resolve();
        for fam in Family::BOTH {
            let stem = format!(
                "{}-v{}",
                ringfence_generate::plan::sanitize(&resolved.site),
                fam.number()
            );
            let iptables_out = dir.path().join("out").join(&stem);
            let speedway_out = dir.path().join("out").join(format!("{stem}.ipt"));
            if export.file(&format!("policy-v{}", fam.number())).is_none() {
                continue;
            }
            for ext in ["jcl", "acl"] {
                let p = dir.path().join("out").join(format!("{stem}.{ext}"));
                let text = std::fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("{name}: no {ext} rendering {p:?}: {e}"));
                assert!(
                    text.contains("rf-edge"),
                    "{name}: {ext} rendering lacks the filter"
                );
            }
            let speedway = std::fs::read_to_string(&speedway_out)
                .unwrap_or_else(|e| panic!("{name}: no speedway output {speedway_out:?}: {e}"));
            let iptables = std::fs::read_to_string(&iptables_out)
                .unwrap_or_else(|e| panic!("{name}: no iptables output {iptables_out:?}: {e}"));
            let (restore, cmd) = match fam {
                Family::V4 => ("iptables-restore", "iptables"),
                Family::V6 => ("ip6tables-restore", "ip6tables"),
            };

            let ns_speedway = netns();
            ns_speedway.ok(restore, &[], speedway.as_bytes());
            let speedway_rs = dump(&ns_speedway, fam);
            prove_text(
                name,
                "speedway (kernel)",
                &dump_text(&ns_speedway, fam),
                &resolved,
                fam,
            );

            let ns_iptables = netns();
            for line in iptables.lines().filter(|l| l.starts_with('-')) {
                let args = tokenize(line);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ns_iptables.ok(cmd, &args, b"");
            }
            let iptables_rs = dump(&ns_iptables, fam);
            prove_text(
                name,
                "aerleon iptables (kernel)",
                &dump_text(&ns_iptables, fam),
                &resolved,
                fam,
            );

            let ours = generate_site(
                &site,
                Target::Iptables,
                &Options {
                    family: Some(fam),
                    ..Options::default()
                },
            )
            .unwrap();
            let ns_ours = netns();
            ns_ours.ok(restore, &[], ours.files[0].contents.as_bytes());
            let ours_rs = dump(&ns_ours, fam);

            let packets = probes(&resolved, fam);
            assert!(packets.len() > 100, "{name}: too few probes");
            let mut accepted = 0;
            for p in &packets {
                let want = ours_rs.eval("FORWARD", p);
                if want == common::eval::Verdict::Accept {
                    accepted += 1;
                }
                assert_eq!(
                    speedway_rs.eval("FORWARD", p),
                    want,
                    "{name} IPv{}: speedway and ours disagree on {p:?}",
                    fam.number()
                );
                assert_eq!(
                    iptables_rs.eval("FORWARD", p),
                    want,
                    "{name} IPv{}: aerleon iptables and ours disagree on {p:?}",
                    fam.number()
                );
            }
            assert!(accepted > 0, "{name}: no probe accepted at all");
            eprintln!(
                "{name} IPv{}: {} probes agree ({accepted} accepted); rules: ours {}, speedway {}, iptables {}",
                fam.number(),
                packets.len(),
                ours_rs.rule_count(),
                speedway_rs.rule_count(),
                iptables_rs.rule_count()
            );
        }
    }
}
