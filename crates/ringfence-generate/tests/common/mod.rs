//! Shared test plumbing: sites, tool checks, network namespaces.
#![allow(dead_code)]

pub mod eval;
pub mod nfteval;

use ringfence_site::Site;
use ringfence_testkit::Need;
use std::io::Write;

/// The all-features site (dual stack, LDAP, Avi with NSX cloud, NSX DHCP, extra flows).
pub const ALL_FEATURES_YAML: &str = include_str!("../sites/all-features.yaml");

pub fn example() -> Site {
    ringfence_site::example_site()
}

pub fn all_features() -> Site {
    ringfence_site::parse_site(ALL_FEATURES_YAML, "tests/sites/all-features.yaml")
        .expect("all-features site is valid")
}

pub fn sites() -> Vec<(&'static str, Site)> {
    vec![("example", example()), ("all-features", all_features())]
}

pub use ringfence_testkit::Netns;

/// Root, `ip` and every tool named are available. Otherwise the test is
/// recorded as skipped (and fails under `CI=true`): see `ringfence_testkit::prereq`.
pub fn can_run(what: &str, tools: &[&'static str]) -> bool {
    let mut needs = vec![Need::Root, Need::Tool("ip")];
    needs.extend(tools.iter().map(|t| Need::Tool(t)));
    let test = ringfence_testkit::prereq::current_test(module_path!());
    ringfence_testkit::prereq::require(&format!("{test} ({what})"), &needs)
}

/// A namespace for one generate test (`rf-gen<pid>-<n>`).
pub fn netns() -> Netns {
    Netns::new("gen")
}

/// Whether `.venv/bin/aclgen` exists (`scripts/test.sh` creates the venv);
/// otherwise the test is recorded as skipped (and fails under `CI=true`).
/// Render with `ringfence_testkit::repo::run_aclgen`.
pub fn have_aclgen() -> bool {
    ringfence_testkit::require!(ringfence_testkit::repo::venv_tool("aclgen"))
}

use eval::Packet;
use ipnet::IpNet;
use ringfence_generate::Family;
use ringfence_site::{Protocol, ResolvedSite};
use std::collections::BTreeSet;
use std::net::IpAddr;

fn host(net: &IpNet, last: bool) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let base = u32::from(n.network());
            let a = if n.prefix_len() >= 31 {
                base
            } else if last {
                u32::from(n.broadcast()) - 1
            } else {
                base + 1
            };
            IpAddr::V4(a.into())
        }
        IpNet::V6(n) => {
            let base = u128::from(n.network());
            let a = if n.prefix_len() >= 127 {
                base
            } else if last {
                u128::from(n.broadcast()) - 1
            } else {
                base + 1
            };
            IpAddr::V6(a.into())
        }
    }
}

/// Probe packets that exercise every flow of `site` in family `fam`: every
/// pair of representative addresses (first and last host of each network,
/// plus one address outside every zone) times every protocol/port edge
/// (first, last, one below, one above each range; ICMP; GRE for "all").
pub fn probes(site: &ResolvedSite, fam: Family) -> Vec<Packet> {
    let mut addrs: BTreeSet<IpAddr> = BTreeSet::new();
    let mut ports: BTreeSet<(u8, u16)> = BTreeSet::new();
    let icmp = if fam == Family::V4 { 1 } else { 58 };
    for p in [(6, 80), (17, 9999), (icmp, 0), (47, 0)] {
        ports.insert(p);
    }
    addrs.insert(match fam {
        Family::V4 => "198.19.255.1".parse().unwrap(),
        Family::V6 => "fd00:ffff::1".parse().unwrap(),
    });
    for f in &site.flows {
        for n in f.sources.iter().chain(&f.destinations) {
            if Family::of(n) != fam || n.prefix_len() == 0 {
                continue;
            }
            addrs.insert(host(n, false));
            addrs.insert(host(n, true));
        }
        for s in &f.services {
            let pr = match s.protocol {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
                Protocol::Icmp => {
                    ports.insert((icmp, 0));
                    continue;
                }
                Protocol::Any => {
                    ports.insert((6, 1));
                    ports.insert((17, 1));
                    continue;
                }
            };
            let (a, b) = (s.ports.first, s.ports.last);
            for p in [Some(a), Some(b), a.checked_sub(1), b.checked_add(1)]
                .into_iter()
                .flatten()
            {
                ports.insert((pr, p));
            }
        }
    }
    let mut out = Vec::new();
    for s in &addrs {
        for d in &addrs {
            for (proto, dport) in &ports {
                out.push(Packet {
                    src: *s,
                    dst: *d,
                    proto: *proto,
                    dport: *dport,
                });
            }
        }
    }
    out
}

/// Write `text` to a fresh temp file and return it (kept alive by the handle).
pub fn temp_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write temp file");
    f.flush().expect("flush");
    f
}

/// The verdict the site itself prescribes for a new connection, straight from
/// the resolved flows (independent of every generator): accept when some
/// allow flow has a path (source network, destination network, the services
/// that destination receives) holding source and destination and a service
/// matching protocol and port; everything else falls to deny-all.
pub fn expected(site: &ResolvedSite, p: &Packet) -> eval::Verdict {
    for f in site.allowed() {
        for (s, d, svcs) in f.paths() {
            if !(s.contains(&p.src) && d.contains(&p.dst)) {
                continue;
            }
            let svc_ok = svcs.iter().any(|s| match s.protocol {
                Protocol::Any => true,
                Protocol::Tcp => {
                    p.proto == 6 && s.ports.first <= p.dport && p.dport <= s.ports.last
                }
                Protocol::Udp => {
                    p.proto == 17 && s.ports.first <= p.dport && p.dport <= s.ports.last
                }
                Protocol::Icmp => p.proto == 1 || p.proto == 58,
            });
            if svc_ok {
                return eval::Verdict::Accept;
            }
        }
    }
    eval::Verdict::Drop
}

/// Load our iptables output for `fam` into a fresh namespace and read it back
/// with `iptables-save` / `ip6tables-save`.
pub fn load_ours(site: &Site, fam: Family, opts: &ringfence_generate::Options) -> eval::Ruleset {
    let out = ringfence_generate::generate_site(
        site,
        ringfence_generate::Target::Iptables,
        &ringfence_generate::Options {
            family: Some(fam),
            ..opts.clone()
        },
    )
    .expect("generate iptables");
    let (restore, save) = match fam {
        Family::V4 => ("iptables-restore", "iptables-save"),
        Family::V6 => ("ip6tables-restore", "ip6tables-save"),
    };
    let ns = netns();
    ns.ok(restore, &[], out.files[0].contents.as_bytes());
    eval::Ruleset::parse(&ns.ok(save, &["-t", "filter"], b""))
}

/// `verify` of a generated ruleset finds exactly the site's flows: each
/// allowed with replies, nothing excess, the list of excess complete.
/// `families` names the address families the ruleset covers (an
/// iptables-save dump holds one).
pub fn prove(
    name: &str,
    what: &str,
    rs: &ringfence_model::Ruleset,
    resolved: &ringfence_site::ResolvedSite,
    families: &[Family],
) {
    prove_site(name, what, rs, resolved.split_by_destination(), families)
}

/// The networks of the site's protected zones (what the NSX policy's scope
/// names).
pub fn protected_nets(site: &Site) -> Vec<IpNet> {
    site.resolve()
        .protected_zones
        .iter()
        .flat_map(|z| site.zones[z].clone())
        .collect()
}

/// [`prove`] for a firewall enforced at the protected machines only (the
/// scoped NSX policy): each deny row closes only what comes from or goes to
/// a protected network; traffic between two machines outside the site is
/// not the policy's to close.
pub fn prove_touching(
    name: &str,
    what: &str,
    rs: &ringfence_model::Ruleset,
    resolved: &ringfence_site::ResolvedSite,
    families: &[Family],
    protected: &[IpNet],
) {
    let mut site = resolved.split_by_destination();
    let mut flows = Vec::new();
    for f in site.flows {
        if f.action == ringfence_site::FlowAction::Allow {
            flows.push(f);
            continue;
        }
        flows.push(ringfence_site::ResolvedFlow {
            sources: protected.to_vec(),
            ..f.clone()
        });
        flows.push(ringfence_site::ResolvedFlow {
            destinations: protected.to_vec(),
            ..f
        });
    }
    site.flows = flows;
    prove_site(name, what, rs, site, families)
}

fn prove_site(
    name: &str,
    what: &str,
    rs: &ringfence_model::Ruleset,
    mut site: ringfence_site::ResolvedSite,
    families: &[Family],
) {
    // Keep the flows (and the deny rows' scope) of the covered families only.
    for f in &mut site.flows {
        let keep = |n: &ipnet::IpNet| families.contains(&Family::of(n));
        f.sources.retain(keep);
        f.destinations.retain(keep);
    }
    site.flows
        .retain(|f| !f.sources.is_empty() && !f.destinations.is_empty());
    let report = ringfence_analysis::verify::verify(rs, &site, ringfence_model::Hook::Forward);
    for f in &report.flows {
        assert_eq!(
            (f.status, f.replies),
            (
                ringfence_analysis::verify::Status::Allowed,
                ringfence_analysis::verify::Status::Allowed
            ),
            "{name} {what}: flow {} is not exactly allowed: {f:?}",
            f.id
        );
    }
    assert!(
        report.excess.is_empty(),
        "{name} {what}: accepted beyond the site's flows: {:#?}",
        report.excess
    );
    assert!(
        report.summary.excess_complete,
        "{name} {what}: excess list incomplete"
    );
    assert!(
        report.summary.ok,
        "{name} {what}: verify is not OK: {:?}",
        report.summary
    );
}
