//! Cross-check with the rest of ringfence: every output, read back where a
//! kernel is involved (`nft -j list ruleset`, `iptables-save`) or as generated
//! (the NSX body), parses with `ringfence-parse` into the normalized model and,
//! traced packet by packet with `ringfence-analysis`, decides every probe as
//! the resolved site prescribes.
//! Every verdict must be certain: the network-to-itself rules, which the
//! nftables output writes as concatenations (`ip saddr . ip daddr
//! @same_<flow>_v4`), are modelled exactly (docs/nft-concatenations.md).
//!
//! Generate-then-prove: the same models also go through `verify`, which must
//! find every flow of the site allowed with its replies and nothing accepted
//! beyond the flows (no excess, certain or possible). `verify` pairs each
//! flow's destinations with all its services, so it is given the site split
//! per destination (`ResolvedSite::split_by_destination`): `dns-ntp-outbound`
//! is then DNS to the DNS servers plus NTP to the NTP servers, and the old
//! cross product (udp/123 to a DNS server) would show up as excess.

mod common;

use common::eval::{Packet, Verdict};
use common::{can_run, netns, prove, sites, temp_file};
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
fn nsxt_body_parsed_as_written_enforces_the_site_at_its_machines_and_verifies_exactly() {
    for (name, site) in sites() {
        let out = generate_site(&site, Target::Nsxt, &Options::default()).unwrap();
        // The body as written: policy and rules scoped to the protected
        // zones' groups, so the model holds a source-vNIC and a
        // destination-vNIC chain (docs/inputs.md, NSX).
        let rs = parse_ruleset(&out.files[0].contents, "nsxt.json", RulesetFormat::NsxJson)
            .unwrap_or_else(|e| panic!("{name}: ringfence-parse rejects our NSX body: {e:?}"));
        assert!(
            rs.chains.iter().any(|c| c.name == "nsx dfw at source vNIC"),
            "{name}: the scope is modelled"
        );
        assert!(rs.notes.is_empty(), "{name}: {:?}", rs.notes);
        let resolved = site.resolve();
        let protected = common::protected_nets(&site);
        let touches = |a: &std::net::IpAddr| protected.iter().any(|n| n.contains(a));
        let tracer = Tracer::new(&rs);
        let (mut enforced, mut outside) = (0, 0);
        for fam in Family::BOTH {
            for p in common::probes(&resolved, fam) {
                let t = tracer.trace(Hook::Forward, &model_packet(&p));
                assert!(!t.uncertain, "{name}: uncertain verdict for {p:?}");
                let got = if t.verdict == ringfence_model::Verdict::Accept {
                    Verdict::Accept
                } else {
                    Verdict::Drop
                };
                let want = if touches(&p.src) || touches(&p.dst) {
                    enforced += 1;
                    common::expected(&resolved, &p)
                } else {
                    // No vNIC on the way runs the policy.
                    outside += 1;
                    Verdict::Accept
                };
                assert_eq!(got, want, "{name}: model and site disagree on {p:?}");
            }
        }
        assert!(
            enforced > 100 && outside > 0,
            "{name}: {enforced} {outside}"
        );
        common::prove_touching(name, "nsxt", &rs, &resolved, &Family::BOTH, &protected);
    }
}

#[test]
fn nsxt_body_without_its_scope_closes_everything_else_and_verifies_exactly() {
    // The same rules at scope ANY (one chain): deny-all then closes every
    // path, so the plain proof holds.
    for (name, site) in sites() {
        let out = generate_site(&site, Target::Nsxt, &Options::default()).unwrap();
        let unscoped = unscope(&out.files[0].contents);
        let rs = parse_ruleset(&unscoped, "nsxt.json", RulesetFormat::NsxJson)
            .unwrap_or_else(|e| panic!("{name}: ringfence-parse rejects our NSX body: {e:?}"));
        assert_eq!(rs.chains[0].name, "nsx dfw");
        check(name, "nsxt", &rs, &site.resolve());
        prove(name, "nsxt", &rs, &site.resolve(), &Family::BOTH);
    }
}

#[test]
fn nsxt_body_scoped_to_a_group_outside_the_export_verifies_as_unknown_not_ok() {
    let site = common::example();
    let opts = Options {
        nsx_scope: vec!["tkg-vms".into()],
        ..Options::default()
    };
    let out = generate_site(&site, Target::Nsxt, &opts).unwrap();
    let rs = parse_ruleset(&out.files[0].contents, "nsxt.json", RulesetFormat::NsxJson)
        .unwrap_or_else(|e| panic!("rejected: {e:?}"));
    assert!(
        rs.notes.iter().any(|n| n.message.contains("tkg-vms")),
        "{:?}",
        rs.notes
    );
    let resolved = site.resolve().split_by_destination();
    let report = ringfence_analysis::verify::verify(&rs, &resolved, Hook::Forward);
    assert!(!report.summary.ok, "a scope nobody can resolve is never OK");
    assert!(
        report.summary.possible_excess > 0,
        "excess is possible: {:?}",
        report.summary
    );
}

/// The NSX body with every `scope` set to ANY.
fn unscope(text: &str) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            serde_json::Value::Object(o) => {
                if let Some(s) = o.get_mut("scope") {
                    *s = serde_json::json!(["ANY"]);
                }
                o.values_mut().for_each(walk);
            }
            _ => {}
        }
    }
    let mut body: serde_json::Value = serde_json::from_str(text).unwrap();
    walk(&mut body);
    body.to_string()
}

#[test]
fn generated_iptables_files_parsed_as_written_verify_as_exactly_the_sites_flows() {
    for (name, site) in sites() {
        let resolved = site.resolve();
        let out = generate_site(&site, Target::Iptables, &Options::default()).unwrap();
        for (role, fam) in [("ipv4", Family::V4), ("ipv6", Family::V6)] {
            let text = &out.file(role).unwrap().contents;
            let rs = parse_ruleset(text, role, RulesetFormat::IptablesSave).unwrap_or_else(|e| {
                panic!("{name}: ringfence-parse rejects our {role} file: {e:?}")
            });
            prove(name, role, &rs, &resolved, &[fam]);
        }
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
        prove(name, "nftables", &rs, &resolved, &Family::BOTH);
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
            prove(name, save, &rs, &resolved, &[f]);
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
