//! A site that disables and narrows flows, run through the built binary:
//! `flows` shows the change, `generate` no longer opens a disabled flow's
//! port and gives a narrowed flow only the narrowed sources, and `verify`
//! requires exactly the shaped flows.

mod common;
use common::{json, ok, run as ringfence, write, LabDown};
use std::path::Path;

/// An OIDC site that disables SSH to the jumpbox and lets only the IdP's
/// clients (part of the first workload network) reach Pinniped.
const SHAPED: &str = r#"name: shaped
tkg:
  version: "1.5"
  identity: oidc
zones:
  management: [198.18.10.0/24]
  workload: [198.18.20.0/24, 198.18.21.0/24]
  idp-clients: [198.18.20.0/26]
  jumpbox: [198.18.1.10]
  bootstrap: [198.18.1.11]
  harbor: [198.18.1.20]
  vcenter: [198.18.1.30]
  dns: [198.18.1.53]
  ntp: [198.18.1.123]
  dhcp: [198.18.1.67]
disable: [ssh-to-jumpbox]
narrow:
  allow-pinniped:
    from: [idp-clients]
"#;

/// The same site without `disable:` and `narrow:`.
fn unshaped() -> String {
    let cut = SHAPED.find("disable:").unwrap();
    SHAPED[..cut].replace("  idp-clients: [198.18.20.0/26]\n", "")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn flows_json_lists_the_disabled_flow_and_marks_the_narrowed_one() {
    let dir = tempfile::tempdir().unwrap();
    let site = write(dir.path(), "site.yaml", SHAPED);
    let out = ok(&["flows", "--site", s(&site), "--format", "json"]);
    let v = json(&out);
    let flows = v["flows"].as_array().unwrap();
    assert!(!flows.iter().any(|f| f["id"] == "ssh-to-jumpbox"));
    assert_eq!(v["disabled"][0]["id"], "ssh-to-jumpbox");
    let p = flows.iter().find(|f| f["id"] == "allow-pinniped").unwrap();
    assert_eq!(p["sources"], serde_json::json!(["198.18.20.0/26"]));
    assert_eq!(p["source_zones"], serde_json::json!(["idp-clients"]));
    assert_eq!(
        p["narrowed"],
        serde_json::json!({ "source_zones": ["workload"] })
    );
}

/// The nftables rules (lines with a verdict) whose comment names `id`.
fn rules_of<'a>(nft: &'a str, id: &str) -> Vec<&'a str> {
    nft.lines()
        .map(str::trim)
        .filter(|l| l.ends_with(&format!("comment \"{id}\"")))
        .collect()
}

/// The elements of nftables set `name`, as written.
fn set_elements(nft: &str, name: &str) -> String {
    let start = nft
        .find(&format!("set {name} {{"))
        .unwrap_or_else(|| panic!("no set {name}"));
    let body = &nft[start..];
    let body = &body[..body.find('}').unwrap()];
    let el = body.find("elements = {").expect("set has elements");
    body[el + "elements = {".len()..].trim().to_string()
}

#[test]
fn generate_drops_the_disabled_flow_and_narrows_the_pinniped_rule() {
    let dir = tempfile::tempdir().unwrap();
    let shaped = write(dir.path(), "shaped.yaml", SHAPED);
    let plain = write(dir.path(), "plain.yaml", &unshaped());
    let gen = |site: &Path| {
        let out = ok(&["generate", "--site", s(site), "--target", "nftables"]);
        out
    };
    let before = gen(&plain);
    let after = gen(&shaped);

    // Without the site's shaping, SSH to the jumpbox is open; with it, no
    // rule opens port 22 and none carries the flow's id.
    assert!(!rules_of(&before, "ssh-to-jumpbox").is_empty());
    assert!(before.contains("dport 22 accept"));
    assert!(rules_of(&after, "ssh-to-jumpbox").is_empty(), "{after}");
    assert!(!after.contains("dport 22 "), "{after}");

    // The Pinniped rule takes its sources from the IdP's clients only.
    let pinniped = rules_of(&after, "allow-pinniped");
    assert_eq!(
        pinniped,
        [
            "ip saddr @zone_idp_clients_v4 ip daddr @zone_management_v4 tcp dport 31234 accept comment \"allow-pinniped\""
        ],
        "{after}"
    );
    assert_eq!(
        set_elements(&after, "zone_idp_clients_v4"),
        "198.18.20.0/26"
    );
    // ...where the unshaped site opened it from every workload network.
    assert_eq!(
        rules_of(&before, "allow-pinniped"),
        [
            "ip saddr @zone_workload_v4 ip daddr @zone_management_v4 tcp dport 31234 accept comment \"allow-pinniped\""
        ]
    );
}

#[test]
fn verify_requires_the_shaped_flows_and_calls_the_unshaped_extra_access_excess() {
    let dir = tempfile::tempdir().unwrap();
    let shaped = write(dir.path(), "shaped.yaml", SHAPED);
    let plain = write(dir.path(), "plain.yaml", &unshaped());
    let gen = |site: &Path, name: &str| {
        let out = ok(&[
            "generate",
            "--site",
            s(site),
            "--target",
            "iptables",
            "--family",
            "4",
        ]);
        write(dir.path(), name, &out)
    };
    let shaped_rules = gen(&shaped, "shaped.rules");
    let plain_rules = gen(&plain, "plain.rules");
    let verify = |site: &Path, rules: &Path| {
        let (code, out, err) = ringfence(&[
            "verify",
            "--site",
            s(site),
            "--ruleset",
            s(rules),
            "--format",
            "json",
        ]);
        assert!(code == 0 || code == 1, "exit {code}: {err}");
        (code, json(&out))
    };

    // The shaped site's own rules: every flow it keeps allowed, nothing more.
    let (code, v) = verify(&shaped, &shaped_rules);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["summary"]["ok"], true);
    let ids: Vec<&str> = v["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(!ids.contains(&"ssh-to-jumpbox"), "{ids:?}");
    assert!(ids.contains(&"allow-pinniped"), "{ids:?}");

    // The unshaped rules open SSH and all of the workload networks to
    // Pinniped: against the shaped site that is excess.
    let (code, v) = verify(&shaped, &plain_rules);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["summary"]["ok"], false);
    let excess = v["excess"].as_array().unwrap();
    let with_port = |p: &str| {
        excess
            .iter()
            .find(|e| e["ports"] == p)
            .unwrap_or_else(|| panic!("no excess on port {p}: {excess:#?}"))
    };
    let ssh = with_port("22");
    assert_eq!(ssh["protocol"], "tcp");
    assert_eq!(ssh["destinations"], serde_json::json!(["198.18.1.10/32"]));
    // Pinniped from the workload networks outside the IdP's clients, exactly.
    let pinniped = with_port("31234");
    assert_eq!(
        pinniped["sources"],
        serde_json::json!(["198.18.20.64/26", "198.18.20.128/25", "198.18.21.0/24"])
    );
    assert_eq!(
        pinniped["destinations"],
        serde_json::json!(["198.18.10.0/24"])
    );
}

#[test]
fn a_widening_narrowing_exits_2_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let bad = SHAPED.replace("from: [idp-clients]", "from: [management]");
    let site = write(dir.path(), "bad.yaml", &bad);
    let (code, out, err) = ringfence(&["flows", "--site", s(&site)]);
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    // `management` under allow-pinniped's from: is on line 19, column 12.
    assert!(
        err.contains("bad.yaml:19:12: narrowing would widen flow `allow-pinniped`: `management` holds 198.18.10.0/24, which is not inside its sources (workload)"),
        "{err}"
    );
    // And `idp-clients`, no longer used by any narrowing, is an unknown zone.
    assert!(
        err.contains("bad.yaml:8:3: unknown zone `idp-clients`"),
        "{err}"
    );
}

#[test]
fn site_check_counts_disabled_and_narrowed_flows() {
    let dir = tempfile::tempdir().unwrap();
    let site = write(dir.path(), "site.yaml", SHAPED);
    let (code, _, err) = ringfence(&["site", "check", s(&site)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.ends_with(
            "ok: site `shaped`, 10 zones, 13 flows apply (1 disabled, 1 narrowed by the site)\n"
        ),
        "{err}"
    );
}

/// Root and the tools the lab needs, or why not (printed as the skip reason).
fn lab_ready() -> bool {
    use ringfence_testkit::Need;
    ringfence_testkit::require!(Need::Root, Need::Tool("ip"), Need::Tool("nft"))
}

#[test]
fn the_lab_expects_the_shaped_flows_on_the_real_kernel() {
    if !lab_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shaped = write(dir.path(), "shaped.yaml", SHAPED);
    let plain = write(dir.path(), "plain.yaml", &unshaped());
    let rules = |site: &Path, name: &str| {
        let out = ok(&["generate", "--site", s(site), "--target", "nftables"]);
        write(dir.path(), name, &out)
    };
    let shaped_rules = rules(&shaped, "shaped.nft");
    let plain_rules = rules(&plain, "plain.nft");
    let name = format!("sh{}", std::process::id() % 100_000);
    let state = dir.path().join("state");
    let lab = LabDown::new(&name, &state);
    let run = |ruleset: &Path| {
        let (code, out, err) = lab.lab(
            "run",
            &[
                "--site",
                s(&shaped),
                "--ruleset",
                s(ruleset),
                "--format",
                "json",
            ],
        );
        assert!(code == 0 || code == 1, "lab run exit {code}: {err}\n{out}");
        (code, json(&out))
    };

    // The shaped site's own rules: every required probe open, nothing else.
    let (code, v) = run(&shaped_rules);
    assert_eq!(code, 0, "{:#}", v["findings"]);
    let probes = v["probes"].as_array().unwrap();
    assert!(!probes
        .iter()
        .any(|p| p["flow"] == "ssh-to-jumpbox" && p["required"] == true));
    // 198.18.20.0/26, the IdP's clients.
    let in_idp = |a: std::net::Ipv4Addr| a.octets()[..3] == [198, 18, 20] && a.octets()[3] < 64;
    let pinniped: Vec<&serde_json::Value> = probes
        .iter()
        .filter(|p| p["flow"] == "allow-pinniped" && p["required"] == true)
        .collect();
    assert!(!pinniped.is_empty());
    for p in &pinniped {
        let src: std::net::Ipv4Addr = p["src"].as_str().unwrap().parse().unwrap();
        assert!(in_idp(src), "required pinniped probe from {src}");
        assert_eq!(p["kernel"], "open");
    }

    // The unshaped rules still open SSH to the jumpbox: a finding.
    let (code, v) = run(&plain_rules);
    assert_eq!(code, 1, "{:#}", v["summary"]);
    let findings = v["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["kind"] == "negative-open" && f["service"] == "tcp/22"),
        "{findings:#?}"
    );
}
