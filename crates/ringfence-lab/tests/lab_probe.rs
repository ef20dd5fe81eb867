//! `probe` inside a lab (never from the root namespace), and `--remap` on a
//! site outside 198.18.0.0/15. Needs root, `ip`, `nft`; skips otherwise.

use ringfence_generate::{generate_site, Family, Options, Target};
use ringfence_lab::live::{self, Expect, Settings, State};
use ringfence_lab::report::LabReport;
use ringfence_lab::site_lab::{self, Plan, Proto, RulesetKind};
use ringfence_testkit::Need;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn ready() -> bool {
    ringfence_testkit::require!(Need::Root, Need::Tool("ip"), Need::Tool("nft"))
}

fn nft(site: &ringfence_site::Site) -> String {
    generate_site(
        site,
        Target::Nftables,
        &Options {
            family: Some(Family::V4),
            ..Options::default()
        },
    )
    .unwrap()
    .files[0]
        .contents
        .clone()
}

struct Down(PathBuf, String);
impl Drop for Down {
    fn drop(&mut self) {
        site_lab::teardown(&self.0, &self.1).unwrap();
        assert!(ringfence_lab::list_namespaces()
            .unwrap()
            .iter()
            .all(|n| !n.starts_with(&format!("rf-{}-", self.1))));
    }
}

fn dir() -> PathBuf {
    std::env::temp_dir().join("ringfence-lab-probe-tests")
}

#[test]
fn lab_probe_from_inside_a_lab_host_finds_required_open_and_negatives_closed() {
    if !ready() {
        return;
    }
    let site = ringfence_site::example_site();
    let resolved = site.resolve();
    let tag = format!("pr{}", std::process::id() % 100_000);
    let plan = Plan::new(&tag, &site.zones, &resolved).unwrap();
    let _down = Down(site_lab::state_path(&dir(), &tag), tag.clone());
    site_lab::build(&plan, &nft(&site), RulesetKind::Nft, &dir()).unwrap();
    let _servers = site_lab::serve(&plan).unwrap();
    // From a management host: probe auto-detects its zone from its address.
    let mgmt = plan
        .hosts
        .iter()
        .find(|h| h.addr == Ipv4Addr::new(198, 18, 10, 1))
        .unwrap();
    let results = ringfence_lab::in_netns(&mgmt.ns, || {
        let local = live::local_addrs().unwrap();
        assert_eq!(
            local,
            vec![mgmt.addr],
            "probe sees only the lab host's address"
        );
        let srcs = live::addrs_in_zone(&site.zones, None, &local);
        // The lab listens on 6 sampled ports of a range: sample the same way.
        let targets = live::targets(&resolved, &srcs, None, Some(site_lab::RANGE_SAMPLE));
        let settings = Settings {
            concurrency: 64,
            rate: 0,
            ..Settings::default()
        };
        live::run(
            &resolved,
            targets,
            &settings,
            Some(Expect::Auto),
            Arc::new(|_| {}),
        )
        .unwrap()
    })
    .unwrap();
    assert!(results.len() > 10);
    let bad: Vec<_> = results.iter().filter(|r| r.ok == Some(false)).collect();
    assert!(bad.is_empty(), "not as expected: {bad:#?}");
    // DNS and NTP answer the shaped requests through the router.
    for port in [53, 123] {
        assert!(
            results.iter().any(|r| r.target.proto == Proto::Udp
                && r.target.port == port
                && r.state == State::Open),
            "no UDP answer on {port}"
        );
    }
    assert!(results
        .iter()
        .any(|r| !r.target.required && r.state == State::Filtered));
    // It is no scanner: a target that is no site destination is refused.
    let stray = live::Target {
        flow: "x".into(),
        src: mgmt.addr,
        dst: Ipv4Addr::new(198, 18, 99, 9),
        proto: Proto::Tcp,
        port: 80,
        required: false,
    };
    let settings = Settings {
        concurrency: 1,
        timeout: Some(Duration::from_millis(10)),
        rate: 0,
        retries: 0,
        ..Settings::default()
    };
    assert!(
        live::run(&resolved, vec![stray], &settings, None, Arc::new(|_| {}))
            .unwrap_err()
            .contains("in no network of the site")
    );
}

#[test]
fn lab_remap_rehearses_a_site_outside_the_lab_range_with_zero_findings() {
    if !ready() {
        return;
    }
    let text = ringfence_site::EXAMPLE_SITE_YAML.replace("198.18.", "10.77.");
    let site = ringfence_site::parse_site(&text, "prod.yaml").unwrap();
    assert!(ringfence_lab::remap::site_is_in_lab_range(&site.zones).is_err());
    let ruleset = nft(&site);
    let r = ringfence_lab::remap::Remap::new(&site.zones).unwrap();
    let mapped_rules = r.ruleset(&ruleset).unwrap();
    assert!(!mapped_rules.contains("10.77."));
    let mut mapped = site.clone();
    mapped.zones = r.zones(&site.zones);
    ringfence_lab::remap::site_is_in_lab_range(&mapped.zones).unwrap();
    let tag = format!("rm{}", std::process::id() % 100_000);
    let plan = Plan::new(&tag, &mapped.zones, &mapped.resolve()).unwrap();
    let rep = {
        let _down = Down(site_lab::state_path(&dir(), &tag), tag.clone());
        site_lab::build(&plan, &mapped_rules, RulesetKind::Nft, &dir()).unwrap();
        let _servers = site_lab::serve(&plan).unwrap();
        let res = site_lab::run_probes(
            &plan,
            RulesetKind::Nft,
            Duration::from_millis(400),
            64,
            &|_, _| {},
        )
        .unwrap();
        LabReport::new(&tag, "nft", res, plan.skipped.clone())
    };
    eprintln!("{}", rep.text(false));
    assert!(rep.summary.required > 20);
    assert_eq!(rep.summary.findings, 0, "{}", rep.text(false));
}
