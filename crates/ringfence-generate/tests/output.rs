//! Golden snapshots of every target for the example and all-features sites,
//! and the properties every output must have (deterministic, headed, deny-all
//! as the default, `any` without an address match).

mod common;

use ringfence_generate::{generate_site, Family, Hook, Options, Target, VERSION};

#[test]
fn every_target_matches_its_golden_snapshot_for_both_sites() {
    for (name, site) in common::sites() {
        for target in Target::ALL {
            let out = generate_site(&site, target, &Options::default()).unwrap();
            for f in &out.files {
                let snap = format!("{name}__{target}__{}", f.role);
                insta::assert_snapshot!(snap, &f.contents);
            }
        }
    }
}

#[test]
fn the_same_site_gives_byte_identical_output() {
    for (_, site) in common::sites() {
        for target in Target::ALL {
            let a = generate_site(&site, target, &Options::default()).unwrap();
            // Re-parse the site from scratch so no state is shared.
            let again = if site.name == "example-dc" {
                common::example()
            } else {
                common::all_features()
            };
            let b = generate_site(&again, target, &Options::default()).unwrap();
            assert_eq!(a, b, "{target} output differs between runs");
        }
    }
}

#[test]
fn every_file_names_site_catalog_and_ringfence_version() {
    for (_, site) in common::sites() {
        for target in Target::ALL {
            let out = generate_site(&site, target, &Options::default()).unwrap();
            for f in &out.files {
                // JSON has no comments: the NSX header is the security policy's
                // description (and tags), so look at the whole body there.
                let head: String = if target == Target::Nsxt {
                    f.contents.clone()
                } else {
                    f.contents.chars().take(400).collect()
                };
                for needle in [
                    format!("ringfence {VERSION}"),
                    format!("site: {}", site.name),
                    "catalog: tkg-1.5".to_string(),
                ] {
                    assert!(
                        head.contains(&needle),
                        "{target} {} lacks `{needle}`",
                        f.path
                    );
                }
            }
        }
    }
}

#[test]
fn deny_all_is_the_default_policy_not_a_rule() {
    let site = common::example();
    let nft = &generate_site(&site, Target::Nftables, &Options::default())
        .unwrap()
        .files[0]
        .contents;
    assert!(nft.contains("policy drop;"));
    assert!(!nft.contains("comment \"deny-all\""));
    let ipt = generate_site(&site, Target::Iptables, &Options::default()).unwrap();
    for f in &ipt.files {
        assert!(f.contents.contains(":FORWARD DROP [0:0]"));
        assert!(!f.contents.contains("rf-deny-all"));
    }
    let ae = generate_site(&site, Target::Aerleon, &Options::default()).unwrap();
    let pol = &ae.file("policy-v4").unwrap().contents;
    assert!(pol.contains("iptables: FORWARD DROP"));
    assert!(!pol.contains("name: deny-all"));
}

#[test]
fn any_source_carries_no_address_match() {
    let site = common::example();
    let nft = &generate_site(&site, Target::Nftables, &Options::default())
        .unwrap()
        .files[0]
        .contents;
    let ssh: Vec<&str> = nft
        .lines()
        .filter(|l| l.contains("comment \"ssh-to-jumpbox\""))
        .collect();
    assert_eq!(ssh.len(), 1);
    assert!(!ssh[0].contains("saddr"), "{}", ssh[0]);
    assert!(ssh[0].contains("ip daddr @zone_jumpbox_v4 tcp dport 22 accept"));
    let ipt = generate_site(&site, Target::Iptables, &Options::default()).unwrap();
    let v4 = &ipt.file("ipv4").unwrap().contents;
    assert!(v4.contains("-A FORWARD -m comment --comment \"ssh-to-jumpbox\" -j rf-ssh-to-jumpbox"));
    assert!(!v4.contains("0.0.0.0/0"));
}

#[test]
fn hook_and_family_options_shape_the_output() {
    let site = common::all_features();
    let nft = generate_site(
        &site,
        Target::Nftables,
        &Options {
            hook: Hook::Input,
            family: Some(Family::V6),
            ..Options::default()
        },
    )
    .unwrap();
    let text = &nft.files[0].contents;
    assert!(text.contains("chain input {"));
    assert!(text.contains("type filter hook input priority filter; policy drop;"));
    assert!(
        !text.contains("ip saddr") && !text.contains("_v4"),
        "IPv4 leaked into --family 6"
    );
    assert!(text.contains("meta nfproto ipv6 udp dport 67-68 accept comment \"dhcp\""));
    let ipt = generate_site(
        &site,
        Target::Iptables,
        &Options {
            hook: Hook::Output,
            family: Some(Family::V4),
            ..Options::default()
        },
    )
    .unwrap();
    assert_eq!(ipt.files.len(), 1);
    assert!(ipt.files[0].contents.contains(":OUTPUT DROP [0:0]"));
    assert!(ipt.files[0].contents.contains(":FORWARD ACCEPT [0:0]"));
    assert!(!ipt.files[0].contents.contains("fd00:"));
}

#[test]
fn same_network_flows_become_pairs_of_each_network_with_itself() {
    let site = common::all_features();
    let nft = &generate_site(&site, Target::Nftables, &Options::default())
        .unwrap()
        .files[0]
        .contents;
    assert!(nft.contains("198.18.20.0/24 . 198.18.20.0/24"));
    assert!(nft.contains("198.18.22.0/23 . 198.18.22.0/23"));
    assert!(nft.contains("fd00:18:21::/64 . fd00:18:21::/64"));
    assert!(!nft.contains("198.18.20.0/24 . 198.18.21.0/24"));
    let wl_rules: Vec<&str> = nft
        .lines()
        .filter(|l| l.contains("comment \"allow-wl-subnet\""))
        .collect();
    assert_eq!(wl_rules.len(), 2, "one rule per family");
    for r in wl_rules {
        assert!(
            r.contains("saddr . ") && r.contains("@same_allow_wl_subnet_v"),
            "{r}"
        );
    }
}

#[test]
fn iptables_port_lists_use_multiport_split_at_15_values() {
    let site = common::all_features();
    let ipt = generate_site(&site, Target::Iptables, &Options::default()).unwrap();
    let v4 = &ipt.file("ipv4").unwrap().contents;
    let mp: Vec<&str> = v4
        .lines()
        .filter(|l| l.starts_with("-A rf-monitoring-scrape") && l.contains("-p tcp"))
        .collect();
    // Two destination zones (management, workload nets) x two multiport groups.
    assert!(mp
        .iter()
        .all(|l| l.contains("-m multiport --dports") || l.contains("--dport ")));
    assert!(mp.iter().any(|l| l.contains("--dports 9100:9102,9104,")));
    for l in &mp {
        let list = l
            .split("--dports ")
            .nth(1)
            .map(|r| r.split(' ').next().unwrap());
        if let Some(list) = list {
            let cost: usize = list
                .split(',')
                .map(|p| if p.contains(':') { 2 } else { 1 })
                .sum();
            assert!(cost <= 15, "{l}");
        }
    }
}

#[test]
fn list_targets_names_four_targets() {
    let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["nftables", "iptables", "nsxt", "aerleon"]);
    for t in Target::ALL {
        assert_eq!(t.name().parse::<Target>().unwrap(), t);
        assert!(!t.description().contains('\n'));
    }
    assert!("juniper".parse::<Target>().is_err());
}
