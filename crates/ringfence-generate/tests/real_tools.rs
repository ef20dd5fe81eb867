//! The real tools accept what we generate: `nft -c -f`, `iptables-restore --test`,
//! `ip6tables-restore --test`, each inside a network namespace the test creates
//! and always deletes. Loaded iptables rules are read back with `iptables-save`
//! and evaluated to prove they open every flow and keep workload networks apart.

mod common;

use common::eval::{Packet, Ruleset, Verdict};
use common::{can_run, netns, sites, temp_file};
use ringfence_generate::{generate_site, Family, Hook, Options, Target};

fn opts(hook: Hook) -> Options {
    Options {
        hook,
        ..Options::default()
    }
}

#[test]
fn nft_check_accepts_the_nftables_output_for_every_site_and_hook() {
    if !can_run("nft check", &["nft"]) {
        return;
    }
    for (name, site) in sites() {
        for hook in [Hook::Forward, Hook::Input, Hook::Output] {
            let out = generate_site(&site, Target::Nftables, &opts(hook)).unwrap();
            let file = temp_file(&out.files[0].contents);
            let ns = netns();
            let path = file.path().to_str().unwrap();
            let res = ns.run("nft", &["-c", "-f", path], b"");
            assert!(
                res.status.success(),
                "nft -c rejected {name} ({hook:?}):\n{}",
                String::from_utf8_lossy(&res.stderr)
            );
        }
    }
}

#[test]
fn nftables_output_loads_twice_and_replaces_its_own_table() {
    if !can_run("nft load", &["nft"]) {
        return;
    }
    let site = common::all_features();
    let out = generate_site(&site, Target::Nftables, &Options::default()).unwrap();
    let file = temp_file(&out.files[0].contents);
    let path = file.path().to_str().unwrap();
    let ns = netns();
    ns.ok("nft", &["-f", path], b"");
    ns.ok("nft", &["-f", path], b"");
    let listing = ns.ok("nft", &["list", "table", "inet", "ringfence"], b"");
    assert_eq!(listing.matches("chain forward").count(), 1, "{listing}");
    assert!(listing.contains("policy drop"), "{listing}");
    assert!(listing.contains("comment \"allow-wl-subnet\""), "{listing}");
    assert!(listing.contains("set zone_workload_v6"), "{listing}");
}

#[test]
fn iptables_restore_test_accepts_both_families_for_every_site_and_hook() {
    if !can_run(
        "iptables-restore --test",
        &["iptables-restore", "ip6tables-restore"],
    ) {
        return;
    }
    for (name, site) in sites() {
        for hook in [Hook::Forward, Hook::Input, Hook::Output] {
            let out = generate_site(&site, Target::Iptables, &opts(hook)).unwrap();
            assert_eq!(out.files.len(), 2);
            let ns = netns();
            for (role, tool) in [("ipv4", "iptables-restore"), ("ipv6", "ip6tables-restore")] {
                let f = out.file(role).unwrap();
                let res = ns.run(tool, &["--test"], f.contents.as_bytes());
                assert!(
                    res.status.success(),
                    "{tool} --test rejected {name} {role} ({hook:?}):\n{}",
                    String::from_utf8_lossy(&res.stderr)
                );
            }
        }
    }
}

fn loaded(site: &ringfence_site::Site, fam: Family) -> Ruleset {
    common::load_ours(site, fam, &Options::default())
}

#[test]
fn loaded_iptables_rules_decide_every_probe_as_the_site_prescribes() {
    if !can_run(
        "iptables vs site",
        &[
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
        for fam in Family::BOTH {
            let rs = loaded(&site, fam);
            for p in common::probes(&resolved, fam) {
                assert_eq!(
                    rs.eval("FORWARD", &p),
                    common::expected(&resolved, &p),
                    "{name}: loaded rules and the site disagree on {p:?}"
                );
            }
        }
    }
}

#[test]
fn loaded_iptables_rules_open_every_flow_pair_and_keep_workload_networks_apart() {
    if !can_run(
        "iptables semantics",
        &[
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
        for fam in Family::BOTH {
            let rs = loaded(&site, fam);
            // Every allowed flow: first host to first host, first and last port.
            for flow in resolved.allowed() {
                for (s, d, svcs) in flow.paths() {
                    if Family::of(&s) != fam {
                        continue;
                    }
                    for svc in &svcs {
                        let proto = match svc.protocol {
                            ringfence_site::Protocol::Tcp => 6,
                            ringfence_site::Protocol::Udp => 17,
                            ringfence_site::Protocol::Icmp => {
                                if fam == Family::V4 {
                                    1
                                } else {
                                    58
                                }
                            }
                            ringfence_site::Protocol::Any => 47,
                        };
                        for port in [svc.ports.first, svc.ports.last] {
                            let p = Packet {
                                src: first(&s),
                                dst: first(&d),
                                proto,
                                dport: port,
                            };
                            assert_eq!(
                                rs.eval("FORWARD", &p),
                                Verdict::Accept,
                                "{name}: flow {} should allow {p:?}",
                                flow.id
                            );
                        }
                    }
                }
            }
            // Two different workload networks stay apart (except where a flow opens a port).
            let wl: Vec<_> = site.zones["workload"]
                .iter()
                .filter(|n| Family::of(n) == fam)
                .collect();
            for a in &wl {
                for b in &wl {
                    if a == b {
                        continue;
                    }
                    let p = Packet {
                        src: first(a),
                        dst: first(b),
                        proto: 6,
                        dport: 80,
                    };
                    assert_eq!(
                        rs.eval("FORWARD", &p),
                        Verdict::Drop,
                        "{name}: {a} and {b} must not talk"
                    );
                }
            }
        }
    }
}

fn first(n: &ipnet::IpNet) -> std::net::IpAddr {
    match n {
        ipnet::IpNet::V4(v) if v.prefix_len() < 31 => {
            std::net::IpAddr::V4((u32::from(v.network()) + 1).into())
        }
        ipnet::IpNet::V6(v) if v.prefix_len() < 127 => {
            std::net::IpAddr::V6((u128::from(v.network()) + 1).into())
        }
        n => n.network(),
    }
}

#[test]
fn loaded_nftables_ruleset_decides_every_probe_as_the_site_prescribes() {
    if !can_run("nftables vs site", &["nft"]) {
        return;
    }
    for (name, site) in sites() {
        let resolved = site.resolve();
        let out = generate_site(&site, Target::Nftables, &Options::default()).unwrap();
        let file = temp_file(&out.files[0].contents);
        let ns = netns();
        ns.ok("nft", &["-f", file.path().to_str().unwrap()], b"");
        let dump = ns.ok("nft", &["-j", "list", "ruleset"], b"");
        let chain = common::nfteval::NftChain::parse(&dump, "forward");
        let mut accepted = 0;
        for fam in Family::BOTH {
            for p in common::probes(&resolved, fam) {
                let want = common::expected(&resolved, &p);
                if want == Verdict::Accept {
                    accepted += 1;
                }
                assert_eq!(
                    chain.eval(&p),
                    want,
                    "{name}: loaded nftables rules and the site disagree on {p:?}"
                );
            }
        }
        assert!(
            accepted > 100,
            "{name}: too few accepted probes ({accepted})"
        );
    }
}
