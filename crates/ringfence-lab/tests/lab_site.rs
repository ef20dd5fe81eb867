//! Whole sites on the real kernel: the rulesets `generate` writes for the
//! example and all-features sites, loaded with nft and iptables-restore,
//! probed from every source namespace and compared with trace's prediction
//! from the kernel's own dump. Needs root, `ip`, `nft`, `iptables-restore`
//! (CI has them); prints "skipped: ..." otherwise.

use ringfence_generate::{generate_site, Family, Options, Target};
use ringfence_lab::report::LabReport;
use ringfence_lab::site_lab::{self, Plan, RulesetKind};
use ringfence_site::Site;
use ringfence_testkit::Need;
use std::path::PathBuf;
use std::time::Duration;

fn ready() -> bool {
    ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("nft"),
        Need::Tool("iptables-restore"),
        Need::Tool("iptables-save")
    )
}

fn site(file: &str) -> Site {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(file);
    ringfence_site::load_site_file(&p).expect("example site loads")
}

fn ruleset(site: &Site, kind: RulesetKind) -> String {
    match kind {
        RulesetKind::Nft => generate_site(site, Target::Nftables, &Options::default())
            .unwrap()
            .files[0]
            .contents
            .clone(),
        RulesetKind::Iptables => generate_site(
            site,
            Target::Iptables,
            &Options {
                family: Some(Family::V4),
                ..Options::default()
            },
        )
        .unwrap()
        .files[0]
            .contents
            .clone(),
    }
}

fn state_dir() -> PathBuf {
    std::env::temp_dir().join("ringfence-lab-site-tests")
}

fn ours(tag: &str) -> Vec<String> {
    let p = format!("rf-{tag}-");
    ringfence_lab::list_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&p))
        .collect()
}

/// up, probe, down; returns the report (the lab is gone afterwards, also on panic).
fn rehearse(tag: &str, site: &Site, text: &str, kind: RulesetKind) -> LabReport {
    let plan = Plan::new(tag, &site.zones, &site.resolve()).unwrap();
    let dir = state_dir();
    let path = site_lab::state_path(&dir, tag);
    struct Down(PathBuf, String);
    impl Drop for Down {
        fn drop(&mut self) {
            site_lab::teardown(&self.0, &self.1).unwrap();
        }
    }
    let rep = {
        let _down = Down(path.clone(), tag.into());
        site_lab::build(&plan, text, kind, &dir).unwrap();
        assert_eq!(ours(tag).len(), plan.hosts.len() + 1);
        let _servers = site_lab::serve(&plan).unwrap();
        let results =
            site_lab::run_probes(&plan, kind, Duration::from_millis(400), 64, &|_, _| {}).unwrap();
        LabReport::new(tag, &format!("{kind:?}"), results, plan.skipped.clone())
    };
    assert!(ours(tag).is_empty(), "left behind: {:?}", ours(tag));
    assert!(!path.exists());
    rep
}

fn assert_clean(rep: &LabReport, what: &str) {
    eprintln!("{what}: {}", rep.text(false).trim_end());
    let s = &rep.summary;
    assert!(
        s.required > 20 && s.negative > 20,
        "{what}: too few probes: {s:?}"
    );
    assert_eq!(
        s.disagreements,
        0,
        "{what}: kernel and trace disagree:\n{}",
        rep.text(false)
    );
    assert_eq!(
        s.required_open,
        s.required,
        "{what}: required flows closed:\n{}",
        rep.text(false)
    );
    assert_eq!(
        s.negative_closed,
        s.negative,
        "{what}: negative probes open:\n{}",
        rep.text(false)
    );
    assert!(rep.findings.is_empty());
    // Our own generated rulesets are modelled exactly (nft concatenations
    // included), so every probe is predicted and compared with the kernel.
    assert_eq!(
        s.uncertain,
        0,
        "{what}: uncertain predictions: {:?}",
        rep.probes
            .iter()
            .filter(|p| p.uncertain)
            .take(3)
            .collect::<Vec<_>>()
    );
    assert!(rep
        .probes
        .iter()
        .any(|p| p.proto == site_lab::Proto::Udp && p.required));
}

fn tag(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100_000)
}

#[test]
fn lab_example_site_generated_nftables_and_iptables_match_the_site_and_trace() {
    if !ready() {
        return;
    }
    let s = site("examples/site.yaml");
    for kind in [RulesetKind::Nft, RulesetKind::Iptables] {
        let rep = rehearse(&tag("ex"), &s, &ruleset(&s, kind), kind);
        assert_clean(&rep, &format!("example {kind:?}"));
    }
}

#[test]
fn lab_all_features_site_generated_nftables_and_iptables_match_the_site_and_trace() {
    if !ready() {
        return;
    }
    let s = site("examples/all-features.yaml");
    for kind in [RulesetKind::Nft, RulesetKind::Iptables] {
        let rep = rehearse(&tag("af"), &s, &ruleset(&s, kind), kind);
        assert_clean(&rep, &format!("all-features {kind:?}"));
    }
}

/// The example's ruleset without the `to-harbor` flow and with TCP port 9 open everywhere.
fn broken(s: &Site, kind: RulesetKind) -> String {
    let text = ruleset(s, kind);
    let mut out = String::new();
    for l in text.lines() {
        let drop_line = match kind {
            RulesetKind::Nft => l.contains("comment \"to-harbor\""),
            RulesetKind::Iptables => l.starts_with("-A FORWARD") && l.contains("-j rf-to-harbor"),
        };
        if drop_line {
            continue;
        }
        out += l;
        out.push('\n');
        if l.to_lowercase().contains("established") && l.to_lowercase().contains("accept") {
            out += match kind {
                RulesetKind::Nft => "\t\ttcp dport 9 accept\n",
                RulesetKind::Iptables => "-A FORWARD -p tcp --dport 9 -j ACCEPT\n",
            };
        }
    }
    assert!(
        out.len() < text.len() + 60 && out != text,
        "the ruleset was not broken as planned"
    );
    out
}

#[test]
fn lab_a_broken_ruleset_gives_exactly_the_missing_flow_and_the_extra_port() {
    if !ready() {
        return;
    }
    let s = site("examples/site.yaml");
    for kind in [RulesetKind::Nft, RulesetKind::Iptables] {
        let rep = rehearse(&tag("br"), &s, &broken(&s, kind), kind);
        eprintln!("{}", rep.text(false));
        assert_eq!(rep.summary.disagreements, 0, "{kind:?}");
        let got: Vec<(String, Option<String>, Option<String>)> = rep
            .findings
            .iter()
            .map(|f| (f.kind.clone(), f.flow.clone(), f.service.clone()))
            .collect();
        let mut got = got;
        got.sort();
        let want: Vec<(String, Option<String>, Option<String>)> = vec![
            ("negative-open".into(), None, Some("tcp/9".into())),
            ("required-closed".into(), Some("to-harbor".into()), None),
        ];
        assert_eq!(got, want, "{kind:?}");
    }
}

/// Child half of the kill test: builds a lab and waits to be killed.
#[test]
#[ignore = "helper: the child process that lab_a_lab_killed_midway_is_removed_by_down runs and kills; not a test of its own"]
fn lab_child_builds_a_lab_and_waits() {
    let Ok(t) = std::env::var("RF_LAB_CHILD_TAG") else {
        return;
    };
    let s = site("examples/site.yaml");
    let plan = Plan::new(&t, &s.zones, &s.resolve()).unwrap();
    site_lab::build(
        &plan,
        &ruleset(&s, RulesetKind::Nft),
        RulesetKind::Nft,
        &state_dir(),
    )
    .unwrap();
    let _servers = site_lab::serve(&plan).unwrap();
    println!("built");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn lab_a_lab_killed_midway_is_removed_by_down() {
    if !ready() {
        return;
    }
    let t = tag("kl");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lab_child_builds_a_lab_and_waits",
            "--ignored",
            "--nocapture",
        ])
        .env("RF_LAB_CHILD_TAG", &t)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let path = site_lab::state_path(&state_dir(), &t);
    // Wait until the lab is complete (its plan is in the state file), then kill.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !site_lab::load_state(&path).is_ok_and(|s| s.plan.is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never built its lab"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(
        !ours(&t).is_empty(),
        "the killed child should have left its lab"
    );
    let removed = site_lab::teardown(&path, &t).unwrap();
    assert!(!removed.is_empty());
    assert!(ours(&t).is_empty(), "left behind: {:?}", ours(&t));
    assert!(!path.exists());
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&format!("rf-{t}")));
}
