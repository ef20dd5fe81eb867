//! `ringfence lab` and `ringfence probe` run as a user would: the real
//! binary, real namespaces, the real kernel. Tests that build namespaces need
//! root, `ip`, `nft` and the iptables tools; without them they print why
//! they skip (CI runs as root with all of them). Every namespace is named
//! `rf-...`, every address is in 198.18.0.0/15, and every test removes what
//! it made, on failure too.

mod common;
use common::{json, lab_namespaces, refused, run as ringfence, LabDown};

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::process::Command;

fn example_site() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/site.yaml").to_string()
}

/// Root and the tools the lab needs, or why not (printed as the skip reason).
fn lab_ready() -> bool {
    use ringfence_testkit::Need;
    ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("nft"),
        Need::Tool("iptables-restore"),
        Need::Tool("iptables-save")
    )
}

/// A lab name unique to this test process (1-8 characters of a-z, 0-9).
fn lab_name(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100_000)
}

/// Links of the root namespace whose name carries the lab prefix (the lab
/// must never make one there).
fn root_rf_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
        .filter(|n| n.starts_with("rf-"))
        .collect()
}

fn generate(site: &str, target: &str, out: &Path) {
    let (code, _, err) = ringfence(&[
        "generate",
        "--site",
        site,
        "--target",
        target,
        "--family",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "generate: {err}");
}

#[test]
fn lab_run_of_the_example_site_with_generated_iptables_exits_0_with_every_flow_open() {
    if !lab_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.iptables");
    generate(&example_site(), "iptables", &rules);
    let name = lab_name("cr");
    let state = dir.path().join("state");
    let lab = LabDown::new(&name, &state);
    let (code, out, err) = lab.lab(
        "run",
        &[
            "--site",
            &example_site(),
            "--ruleset",
            rules.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "lab run: {err}\n{out}");
    let v = json(&out);
    assert_eq!(v["ruleset"], "iptables");
    let s = &v["summary"];
    assert!(s["required"].as_u64().unwrap() > 50, "{s}");
    assert_eq!(s["required_open"], s["required"], "{s}");
    assert_eq!(s["negative_closed"], s["negative"], "{s}");
    assert_eq!(s["disagreements"], 0);
    assert_eq!(s["findings"], 0);
    let probes = v["probes"].as_array().unwrap();
    for p in probes {
        let required = p["required"].as_bool().unwrap();
        assert_eq!(p["kernel"] == "open", required, "{p}");
        assert_eq!(p["kernel"], p["predicted"], "{p}");
    }
    // Every allow flow with a TCP or UDP service between lab hosts was probed.
    for flow in [
        "workload-to-mgmt",
        "mgmt-to-workload",
        "jumpbox-to-k8s",
        "to-harbor",
        "to-vcenter",
        "dns-ntp-outbound",
        "allow-pinniped",
        "avi-nodeport",
        "ako-to-avi",
    ] {
        assert!(
            probes
                .iter()
                .any(|p| p["flow"] == flow && p["kernel"] == "open"),
            "flow {flow} not probed open"
        );
    }
    // `run --site --ruleset` is up, run and down in one go.
    assert!(
        lab_namespaces(&name).is_empty(),
        "{:?}",
        lab_namespaces(&name)
    );
    assert!(!state.join(format!("lab-{name}.json")).exists());
}

/// The generated iptables ruleset without the to-harbor flow and with TCP
/// port 9 opened for everyone.
fn broken_iptables(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines() {
        if l.starts_with("-A FORWARD") && l.contains("-j rf-to-harbor") {
            continue;
        }
        out += l;
        out.push('\n');
        if l.starts_with("-A FORWARD") && l.to_lowercase().contains("established") {
            out += "-A FORWARD -p tcp --dport 9 -j ACCEPT\n";
        }
    }
    assert!(out.contains("--dport 9 -j ACCEPT") && !out.contains("-A FORWARD -j rf-to-harbor"));
    out
}

#[test]
fn lab_run_of_a_broken_ruleset_exits_1_and_names_the_missing_flow_and_the_open_port() {
    if !lab_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.iptables");
    generate(&example_site(), "iptables", &good);
    let rules = dir.path().join("broken.iptables");
    std::fs::write(
        &rules,
        broken_iptables(&std::fs::read_to_string(&good).unwrap()),
    )
    .unwrap();
    let name = lab_name("cb");
    let state = dir.path().join("state");
    let lab = LabDown::new(&name, &state);
    let (code, out, err) = lab.lab(
        "run",
        &[
            "--site",
            &example_site(),
            "--ruleset",
            rules.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "lab run: {err}\n{out}");
    let findings: Vec<&str> = out.lines().filter(|l| l.starts_with("FINDING")).collect();
    assert_eq!(findings.len(), 2, "{out}");
    assert!(
        findings
            .iter()
            .any(|l| l.starts_with("FINDING required-closed flow to-harbor:")),
        "{out}"
    );
    assert!(
        findings
            .iter()
            .any(|l| l.starts_with("FINDING negative-open tcp/9:")),
        "{out}"
    );
    // The kernel did what trace predicted: the findings are the ruleset's,
    // not the lab's.
    let summary = out.lines().find(|l| l.starts_with("lab ")).unwrap();
    let summary = summary.replace(&name, "NAME");
    insta::assert_snapshot!("lab_broken_summary", summary);
    assert!(lab_namespaces(&name).is_empty());
}

/// The example site's iptables rules with the to-harbor flow matched by two
/// ipsets instead of addresses, the `ipset save` text defining them, and an
/// ip6tables-save file: one ruleset in three files.
fn iptables_with_sets(text: &str) -> (String, String, String) {
    let site = ringfence_site::load_site_file(Path::new(&example_site())).unwrap();
    let resolved = site.resolve();
    let harbor = resolved
        .flow("to-harbor")
        .expect("the example has to-harbor");
    let mut sets = String::from("create rf-harbor-src hash:net family inet\n");
    for n in &harbor.sources {
        sets += &format!("add rf-harbor-src {n}\n");
    }
    sets += "create rf-harbor hash:ip family inet\n";
    for n in &harbor.destinations {
        sets += &format!("add rf-harbor {}\n", n.addr());
    }
    let ports: Vec<String> = harbor
        .services
        .iter()
        .map(|s| match (s.ports.first, s.ports.last) {
            (a, b) if a == b => a.to_string(),
            (a, b) => format!("{a}:{b}"),
        })
        .collect();
    let rule = format!(
        "-A FORWARD -p tcp -m set --match-set rf-harbor-src src -m set --match-set rf-harbor dst -m multiport --dports {} -m comment --comment \"to-harbor\" -j ACCEPT\n",
        ports.join(",")
    );
    let mut v4 = String::new();
    let mut placed = false;
    for l in text.lines() {
        if l.starts_with("-A FORWARD") && l.contains("-j rf-to-harbor") {
            if !placed {
                v4 += &rule;
                placed = true;
            }
            continue;
        }
        v4 += l;
        v4.push('\n');
    }
    assert!(placed, "no to-harbor jump in the generated rules");
    let v6 = "# Generated by ip6tables-save\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -s fd00:18:99::/64 -j ACCEPT\nCOMMIT\n".to_string();
    (v4, v6, sets)
}

#[test]
fn lab_with_iptables_ip6tables_and_ipset_files_loads_each_with_its_tool_and_predicts_from_all() {
    if !lab_ready() {
        return;
    }
    if !ringfence_testkit::require!(
        ringfence_testkit::Need::Tool("ipset"),
        ringfence_testkit::Need::Tool("ip6tables-restore"),
        ringfence_testkit::Need::Tool("ip6tables-save")
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.iptables");
    generate(&example_site(), "iptables", &rules);
    let (v4, v6, sets) = iptables_with_sets(&std::fs::read_to_string(&rules).unwrap());
    let (f4, f6, fsets) = (
        dir.path().join("v4.rules"),
        dir.path().join("v6.rules"),
        dir.path().join("sets.ipset"),
    );
    std::fs::write(&f4, v4).unwrap();
    std::fs::write(&f6, v6).unwrap();
    std::fs::write(&fsets, sets).unwrap();
    let name = lab_name("cm");
    let state = dir.path().join("state");
    let lab = LabDown::new(&name, &state);
    // Given in an order the tools cannot load them in: the sets must come first.
    let (code, _, err) = lab.lab(
        "up",
        &[
            "--example",
            "--ruleset",
            f4.to_str().unwrap(),
            "--ruleset",
            f6.to_str().unwrap(),
            "--ruleset",
            fsets.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "lab up: {err}");
    let router = format!("rf-{name}-r");
    let in_router = |prog: &str, args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &router, prog])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{prog}: {:?}", out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(in_router("ipset", &["list", "-n"]).contains("rf-harbor-src"));
    assert!(in_router("iptables-save", &[]).contains("--match-set rf-harbor dst"));
    assert!(in_router("ip6tables-save", &[]).contains("fd00:18:99::/64"));

    let (code, out, err) = lab.lab("run", &["--format", "json"]);
    assert_eq!(code, 0, "lab run: {err}\n{out}");
    let v = json(&out);
    assert_eq!(v["ruleset"], "ipset+iptables+ip6tables");
    let s = &v["summary"];
    assert_eq!(s["required_open"], s["required"], "{s}");
    assert_eq!(s["negative_closed"], s["negative"], "{s}");
    assert_eq!(s["disagreements"], 0, "{s}");
    // The set matches are read from `ipset save`: every prediction is certain.
    assert_eq!(s["uncertain"], 0, "{s}");
    let probes = v["probes"].as_array().unwrap();
    assert!(
        probes
            .iter()
            .any(|p| p["flow"] == "to-harbor" && p["kernel"] == "open" && p["predicted"] == "open"),
        "to-harbor (matched by the sets) not probed open"
    );
}

#[test]
fn lab_refuses_nft_mixed_with_iptables_files_and_two_files_of_one_family() {
    let dir = tempfile::tempdir().unwrap();
    let (nft, ipt, ipt2) = (
        dir.path().join("a.nft"),
        dir.path().join("b.rules"),
        dir.path().join("c.rules"),
    );
    std::fs::write(&nft, "table inet f {\n}\n").unwrap();
    let v4 = "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -s 198.18.1.0/24 -j ACCEPT\nCOMMIT\n";
    std::fs::write(&ipt, v4).unwrap();
    std::fs::write(&ipt2, v4).unwrap();
    for (files, want) in [
        (vec![&nft, &ipt], "nft files cannot be loaded together"),
        (vec![&ipt, &ipt2], "two iptables files"),
    ] {
        let mut args = vec!["lab", "run", "--example", "--name", "cx"];
        for f in &files {
            args.push("--ruleset");
            args.push(f.to_str().unwrap());
        }
        let err = refused(&args);
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn lab_up_then_down_leaves_no_namespace_veth_process_or_state_file() {
    if !lab_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.nft");
    generate(&example_site(), "nftables", &rules);
    let name = lab_name("cu");
    let state = dir.path().join("state");
    let down = LabDown::new(&name, &state);
    let before = root_rf_links();
    let (code, _, err) = down.lab(
        "up",
        &[
            "--site",
            &example_site(),
            "--ruleset",
            rules.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "lab up: {err}");
    assert!(err.contains(&format!("lab {name} is up")), "{err}");
    let made = lab_namespaces(&name);
    assert!(made.len() > 10, "{made:?}");
    assert!(made.contains(&format!("rf-{name}-r")), "{made:?}");
    // Veths live in the lab's namespaces only, never in the root namespace.
    assert_eq!(root_rf_links(), before);
    let path = state.join(format!("lab-{name}.json"));
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let pids: Vec<u32> = st["pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(pids.len(), 1, "{st}");
    assert!(Path::new(&format!("/proc/{}", pids[0])).exists());

    // The lab made by `up` answers `run --name`.
    let (code, out, err) = down.lab("run", &[]);
    assert_eq!(code, 0, "lab run: {err}\n{out}");
    assert!(out.contains("0 findings"), "{out}");

    let (code, _, err) = down.lab("down", &[]);
    assert_eq!(code, 0, "lab down: {err}");
    assert!(
        err.contains(&format!("removed {} namespaces", made.len())),
        "{err}"
    );
    assert!(lab_namespaces(&name).is_empty());
    assert_eq!(root_rf_links(), before);
    assert!(!path.exists());
    // The listener process is gone (give the kernel a moment to reap it).
    let gone = (0..50).any(|_| {
        let status = std::fs::read_to_string(format!("/proc/{}/status", pids[0]));
        let alive = status.is_ok_and(|s| !s.contains("State:\tZ"));
        if alive {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        !alive
    });
    assert!(gone, "listener process {} still runs", pids[0]);
    // A second `down` finds nothing to do and says so.
    drop(down);
}

/// A namespace this test made, removed on drop.
struct TestNs(String);

impl TestNs {
    fn new(name: String) -> Self {
        assert!(name.starts_with("rf-"));
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        let ns = TestNs(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let ok = Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip -n {} {args:?}", self.0);
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[test]
fn probe_inside_a_test_namespace_reports_open_closed_and_udp_answers_as_json() {
    if !lab_ready() {
        return;
    }
    // One namespace holding the jumpbox (198.18.1.10), Harbor (.20), DNS
    // (.53) and NTP (.123) of the example site on its loopback: every probe
    // stays inside it.
    let ns = TestNs::new(format!("rf-cp{}-a", std::process::id() % 100_000));
    for a in ["198.18.1.10", "198.18.1.20", "198.18.1.53", "198.18.1.123"] {
        ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
    }
    let at = |a: [u8; 4], p| SocketAddrV4::new(Ipv4Addr::from(a), p);
    // Harbor listens on 443; both DNS/NTP hosts answer DNS and NTP over UDP
    // and take TCP 53, except 198.18.1.53, which has nothing on TCP 53.
    let _listeners = ringfence_lab::Listeners::start_with(
        &[
            (ns.0.clone(), at([198, 18, 1, 20], 443)),
            (ns.0.clone(), at([198, 18, 1, 123], 53)),
        ],
        &[
            (ns.0.clone(), at([198, 18, 1, 53], 53)),
            (ns.0.clone(), at([198, 18, 1, 53], 123)),
            (ns.0.clone(), at([198, 18, 1, 123], 53)),
            (ns.0.clone(), at([198, 18, 1, 123], 123)),
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe.json");
    let run = |expect: Option<&str>| {
        let mut args = vec![
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_ringfence"),
            "probe",
            "--site",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/site.yaml"),
            "--from",
            "jumpbox",
            "--flows",
            "to-harbor,dns-ntp-outbound",
            "--timeout",
            "500",
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ];
        if let Some(e) = expect {
            args.extend(["--expect", e]);
        }
        let o = Command::new("ip").args(&args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(None);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    insta::assert_json_snapshot!("probe_jumpbox_json", v);
    // With --expect auto the closed TCP 53 (a required flow) fails the run.
    let (code, err) = run(Some("auto"));
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["summary"]["unexpected"], 1);
    let bad: Vec<&serde_json::Value> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == false)
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(
        (&bad[0]["dst"], &bad[0]["proto"], &bad[0]["port"]),
        (
            &serde_json::json!("198.18.1.53"),
            &serde_json::json!("tcp"),
            &serde_json::json!(53)
        )
    );
}

#[test]
fn probe_to_and_ports_probe_part_of_the_site_without_editing_flows() {
    if !lab_ready() {
        return;
    }
    // The jumpbox and Harbor on one namespace's loopback; Harbor listens on 443.
    let ns = TestNs::new(format!("rf-ct{}-a", std::process::id() % 100_000));
    for a in ["198.18.1.10", "198.18.1.20"] {
        ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
    }
    let _listeners = ringfence_lab::Listeners::start(&[(
        ns.0.clone(),
        SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 20), 443),
    )])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe.json");
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_ringfence"),
            "probe",
            "--site",
            &example_site(),
            "--from",
            "jumpbox",
            "--to",
            "harbor",
            "--ports",
            "443,444-445",
            "--expect",
            "auto",
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let got: Vec<(u64, &str, bool, &str)> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["port"].as_u64().unwrap(),
                r["state"].as_str().unwrap(),
                r["required"].as_bool().unwrap(),
                r["flow"].as_str().unwrap(),
            )
        })
        .collect();
    // 443 is the to-harbor flow's and open; 444 and 445 no flow opens, and
    // nothing listens there: closed, as expected.
    assert_eq!(
        got,
        vec![
            (443, "open", true, "to-harbor"),
            (444, "closed", false, "-"),
            (445, "closed", false, "-"),
        ]
    );
    assert!(v["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["dst"] == "198.18.1.20"));
}

#[test]
fn lab_and_probe_refuse_bad_input_with_exit_2_and_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let rules = dir.path().join("rules.nft");
    std::fs::write(&rules, "table inet f {}\n").unwrap();
    // A site file that does not exist: named in the message, before any
    // namespace is made (so this needs no root).
    let err = refused(&[
        "lab",
        "run",
        "--site",
        missing.to_str().unwrap(),
        "--ruleset",
        rules.to_str().unwrap(),
        "--name",
        "cbad",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(err.contains("missing.yaml"), "{err}");
    let err = refused(&["probe", "--site", missing.to_str().unwrap()]);
    assert!(err.contains("missing.yaml"), "{err}");
    // A ruleset file that does not exist.
    let err = refused(&[
        "lab",
        "up",
        "--site",
        &example_site(),
        "--ruleset",
        dir.path().join("nope.nft").to_str().unwrap(),
        "--name",
        "cbad",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(err.contains("nope.nft"), "{err}");
    // Half the build arguments.
    let err = refused(&["lab", "up", "--site", &example_site()]);
    assert!(err.contains("--ruleset"), "{err}");
    // `run` of a lab that was never made.
    let err = refused(&[
        "lab",
        "run",
        "--name",
        "cnone",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(err.contains("no lab named cnone"), "{err}");
    // A zone the site does not have: did-you-mean.
    let err = refused(&["probe", "--site", &example_site(), "--from", "jumpbx"]);
    assert!(err.contains("jumpbx") && err.contains("jumpbox"), "{err}");
    // --to outside the site's zones, a misspelt zone, a bad port: each
    // named with its position, before anything is probed.
    let err = refused(&["probe", "--site", &example_site(), "--to", "harbor,8.8.8.8"]);
    assert!(
        err.contains("--to: item 2 `8.8.8.8`") && err.contains("outside every zone"),
        "{err}"
    );
    let err = refused(&["probe", "--site", &example_site(), "--to", "harbr"]);
    assert!(err.contains("did you mean `harbor`?"), "{err}");
    let err = refused(&[
        "probe",
        "--site",
        &example_site(),
        "--ports",
        "22,udp:70000",
    ]);
    assert!(
        err.contains("--ports: item 2 `udp:70000`") && err.contains("not a port"),
        "{err}"
    );
    // A site outside 198.18.0.0/15 without --remap.
    let prod = dir.path().join("prod.yaml");
    std::fs::write(
        &prod,
        std::fs::read_to_string(example_site())
            .unwrap()
            .replace("198.18.", "10.77."),
    )
    .unwrap();
    let err = refused(&[
        "lab",
        "up",
        "--site",
        prod.to_str().unwrap(),
        "--ruleset",
        rules.to_str().unwrap(),
        "--name",
        "cbad",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(
        err.contains("198.18.0.0/15") && err.contains("--remap"),
        "{err}"
    );
}

#[test]
fn lab_up_of_a_ruleset_the_kernel_rejects_exits_2_names_it_and_leaves_nothing() {
    if !lab_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.nft");
    std::fs::write(
        &rules,
        "table inet f {\n  chain c {\n    type filter hook forward priority 0;\n    tcp dport 22 acept\n  }\n}\n",
    )
    .unwrap();
    let name = lab_name("ck");
    let state = dir.path().join("state");
    let err = refused(&[
        "lab",
        "up",
        "--site",
        &example_site(),
        "--ruleset",
        rules.to_str().unwrap(),
        "--ruleset-format",
        "nft",
        "--name",
        &name,
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert!(
        err.contains("acept"),
        "the kernel's complaint is shown: {err}"
    );
    assert!(
        lab_namespaces(&name).is_empty(),
        "{:?}",
        lab_namespaces(&name)
    );
    assert!(!state.join(format!("lab-{name}.json")).exists());
}
