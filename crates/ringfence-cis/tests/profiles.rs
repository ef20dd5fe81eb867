//! Profiles and waivers that stay honest: a listed check that passes is
//! `fixed` (the profile entry is stale), and a waiver past its expiry fails
//! the run, naming its owner.

use ringfence_cis::benchmark::Benchmark;
use ringfence_cis::node::{discover, DiscoverOptions, Node};
use ringfence_cis::profile::{parse_waivers, Date, Profile, Waiver};
use ringfence_cis::render;
use ringfence_cis::report::{scan, Report, ScanOptions, Status};
use ringfence_cis::testkit;

fn tkg_profile() -> Profile {
    let (file, text) = Profile::embedded("tkg-1.5").unwrap();
    Profile::parse(&file, text).unwrap()
}

fn node_at(root: &std::path::Path) -> Node {
    discover(&DiscoverOptions {
        root: Some(root.to_path_buf()),
        ..Default::default()
    })
    .unwrap()
}

fn run(node: &Node, profile: Option<&Profile>, waivers: &[Waiver], today: &str) -> Report {
    scan(
        &Benchmark::embedded("cis-1.6").unwrap(),
        node,
        &ScanOptions {
            targets: None,
            checks: None,
            profile,
            waivers,
            today: Date::parse(today).unwrap(),
        },
    )
}

#[test]
fn a_check_the_profile_expects_to_fail_but_passes_is_fixed_not_expected() {
    let dir = tempfile::tempdir().unwrap();
    let n = testkit::tkg_control_plane(dir.path());
    // The node now protects kernel defaults: 4.2.6, listed by tkg-1.5, passes.
    let cfg = format!("{}protectKernelDefaults: true\n", testkit::KUBELET_CONFIG);
    n.file("/var/lib/kubelet/config.yaml", &cfg, 0o644);
    let profile = tkg_profile();
    let r = run(&node_at(dir.path()), Some(&profile), &[], "2026-01-01");
    let c = r.checks.iter().find(|c| c.id == "4.2.6").unwrap();
    assert_eq!((c.status, c.expected, c.fixed), (Status::Pass, false, true));
    assert_eq!(r.summary.fixed, 1);
    assert!(r
        .checks
        .iter()
        .filter(|c| c.id != "4.2.6")
        .all(|c| !c.fixed));
    let text = render::text(&r, &Benchmark::embedded("cis-1.6").unwrap(), false);
    assert!(text.contains("  FIXED    4.2.6 "), "{text}");
    assert!(
        text.contains(
            "tkg-1.5 lists it as an expected failure, but it passes: the profile entry is stale"
        ),
        "{text}"
    );
    assert!(
        text.contains("fixed (passing, but the profile expects them to fail): 4.2.6"),
        "{text}"
    );
    // Still listed failures stay expected.
    let c = r.checks.iter().find(|c| c.id == "1.2.21").unwrap();
    assert_eq!((c.status, c.expected, c.fixed), (Status::Fail, true, false));
}

#[test]
fn an_expired_waiver_fails_the_run_naming_its_owner_even_when_its_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    testkit::tkg_control_plane(dir.path());
    let bench = Benchmark::embedded("cis-1.6").unwrap();
    let waivers = parse_waivers(
        "waivers.yaml",
        "waivers:\n  - id: \"4.2.1\"\n    reason: anonymous probes during the migration\n    owner: team-orbit\n    expires: 2026-03-31\n",
        &bench,
    )
    .unwrap();
    let node = node_at(dir.path());
    let profile = tkg_profile();
    // Through its last day the waiver holds and the run passes.
    let r = run(&node, Some(&profile), &waivers, "2026-03-31");
    assert!(r.expired_waivers.is_empty() && !r.failed());
    // The day after, 4.2.1 still passes, but the stale waiver fails the run.
    let r = run(&node, Some(&profile), &waivers, "2026-04-01");
    assert_eq!(r.summary.unexpected_fail, 0);
    assert_eq!(r.summary.expired_waivers, 1);
    assert!(r.failed());
    assert_eq!(
        r.expired_waivers[0].describe(),
        "the waiver for 4.2.1 expired on 2026-03-31; its owner team-orbit must renew or remove it (anonymous probes during the migration)"
    );
    let text = render::text(&r, &bench, false);
    assert!(text.contains("its owner team-orbit must renew"), "{text}");
}
