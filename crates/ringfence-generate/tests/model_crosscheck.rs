//! Cross-check with the rest of ringfence: every output, read back where a
//! kernel is involved (`nft -j list ruleset`, `iptables-save`) or as generated
//! (the NSX body), parses with `ringfence-parse` into the normalized model and,
//! traced packet by packet with `ringfence-analysis`, decides every probe as
//! the resolved site prescribes.
//! Every verdict must be certain: the network-to-itself rules, which the
//! nftables output writes as concatenations (`ip saddr . ip daddr
//! @same_<flow>_v4`), are modelled exactly (docs/nft-concatenations.md).

mod common;

use common::eval::{Packet, Verdict};
use common::{can_run, netns, sites, temp_file};
use ringfence_analysis::Tracer;
use ringfence_generate::{generate_site, Family, Options, Target};
use ringfence_model::Hook;
use ringfence_parse::{parse_ruleset, RulesetFormat};

fn model_packet(p: &Packet) -> ringfence_model::Packet {
    ringfence_model::Packet::new_connection(p.src, p.dst, p.proto, 40000, p.dport)
}

fn check(
    name: &str,
    what: &str,
    rs: &ringfence_model::Ruleset,
    resolved: &ringfence_site::ResolvedSite,
) {
    let tracer = Tracer::new(rs);
    let mut accepted = 0;
    for fam in Family::BOTH {
        for p in common::probes(resolved, fam) {
            let t = tracer.trace(Hook::Forward, &model_packet(&p));
            let got = match t.verdict {
                ringfence_model::Verdict::Accept => Verdict::Accept,
                _ => Verdict::Drop,
            };
            assert!(!t.uncertain, "{name} {what}: uncertain verdict for {p:?}");
            let want = common::expected(resolved, &p);
            if want == Verdict::Accept {
                accepted += 1;
            }
            assert_eq!(
                got, want,
                "{name} {what}: model trace and site disagree on {p:?}"
            );
        }
    }
    assert!(accepted > 100, "{name} {what}: too few accepted probes");
}

#[test]
fn nsxt_body_parsed_into_the_model_decides_every_probe_as_the_site_prescribes() {
    for (name, site) in sites() {
        let out = generate_site(&site, Target::Nsxt, &Options::default()).unwrap();
        let rs = parse_ruleset(&out.files[0].contents, "nsxt.json", RulesetFormat::NsxJson)
            .unwrap_or_else(|e| panic!("{name}: ringfence-parse rejects our NSX body: {e:?}"));
        check(name, "nsxt", &rs, &site.resolve());
    }
}

#[test]
fn kernel_dumps_of_nftables_and_iptables_output_parse_and_trace_like_the_site() {
    if !can_run(
        "model cross-check",
        &[
            "nft",
            "iptables-restore",
            "iptables-save",
            "ip6tables-restore",
            "ip6tables-save",
        ],
    ) {
        return;
    }
    for (name, site) in sites() {
        let resolved = site.resolve();
        // nftables, as the kernel holds it.
        let out = generate_site(&site, Target::Nftables, &Options::default()).unwrap();
        let file = temp_file(&out.files[0].contents);
        let ns = netns();
        ns.ok("nft", &["-f", file.path().to_str().unwrap()], b"");
        let dump = ns.ok("nft", &["-j", "list", "ruleset"], b"");
        let rs = parse_ruleset(&dump, "nft.json", RulesetFormat::NftJson)
            .unwrap_or_else(|e| panic!("{name}: ringfence-parse rejects the nft dump: {e:?}"));
        check(name, "nftables", &rs, &resolved);
        // iptables: both families loaded into one namespace, one dump each.
        let out = generate_site(&site, Target::Iptables, &Options::default()).unwrap();
        let ns = netns();
        ns.ok(
            "iptables-restore",
            &[],
            out.file("ipv4").unwrap().contents.as_bytes(),
        );
        ns.ok(
            "ip6tables-restore",
            &[],
            out.file("ipv6").unwrap().contents.as_bytes(),
        );
        for (save, fam) in [("iptables-save", "v4"), ("ip6tables-save", "v6")] {
            let dump = ns.ok(save, &["-t", "filter"], b"");
            let rs = parse_ruleset(&dump, "iptables-save", RulesetFormat::IptablesSave)
                .unwrap_or_else(|e| panic!("{name}: ringfence-parse rejects {save}: {e:?}"));
            let tracer = Tracer::new(&rs);
            let f = if fam == "v4" { Family::V4 } else { Family::V6 };
            for p in common::probes(&resolved, f) {
                let t = tracer.trace(Hook::Forward, &model_packet(&p));
                assert!(!t.uncertain, "{name} {save}: uncertain for {p:?}");
                let got = if t.verdict == ringfence_model::Verdict::Accept {
                    Verdict::Accept
                } else {
                    Verdict::Drop
                };
                assert_eq!(got, common::expected(&resolved, &p), "{name} {save}: {p:?}");
            }
        }
    }
}
