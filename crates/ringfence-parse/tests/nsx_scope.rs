//! NSX `scope` ("Applied To") and `direction` in the model: a scoped rule runs
//! only on the vNICs of the VMs its scope groups hold, a packet must pass the
//! source VM's vNIC and the destination VM's vNIC, and a scope the export
//! cannot resolve leaves the rule's packets unknown, naming the rule.

use ringfence_analysis::trace::Overall;
use ringfence_analysis::Tracer;
use ringfence_model::{Hook, Packet, Verdict};
use ringfence_parse::nsx;
use serde_json::{json, Value};

/// Site machines 198.18.1.0/24 (group `site`), a shared server 198.18.2.10,
/// and a VM outside everything, 198.18.3.5.
const SITE: &str = "198.18.1.10";
const SITE2: &str = "198.18.1.20";
const SHARED: &str = "198.18.2.10";
const OUTSIDE: &str = "198.18.3.5";
const OUTSIDE2: &str = "198.18.3.6";

fn group(id: &str, expr: Value) -> Value {
    json!({"resource_type": "ChildGroup", "Group": {
        "resource_type": "Group", "id": id, "expression": expr}})
}

fn ip_group(id: &str, ips: &[&str]) -> Value {
    group(
        id,
        json!([{"resource_type": "IPAddressExpression", "ip_addresses": ips}]),
    )
}

fn rule(id: &str, seq: u64, src: Value, dst: Value, port: Option<u16>, action: &str) -> Value {
    let mut r = json!({"resource_type": "Rule", "id": id, "sequence_number": seq,
        "source_groups": src, "destination_groups": dst, "services": ["ANY"],
        "action": action, "direction": "IN_OUT"});
    if let Some(p) = port {
        r["services"] = json!([]);
        r["service_entries"] = json!([{"resource_type": "L4PortSetServiceEntry",
            "l4_protocol": "TCP", "destination_ports": [p.to_string()]}]);
    }
    json!({"resource_type": "ChildRule", "Rule": r})
}

const G: &str = "/infra/domains/default/groups/";

/// A policy like `generate --target nsxt` writes: site to shared on 443,
/// inside the site on 22, then DROP ANY to ANY; `scope` on the policy.
fn body(policy_scope: Value, rule_scope: Option<Value>, extra_groups: Vec<Value>) -> String {
    let mut rules = vec![
        rule(
            "web",
            10,
            json!([format!("{G}site")]),
            json!([format!("{G}shared")]),
            Some(443),
            "ALLOW",
        ),
        rule(
            "ssh",
            20,
            json!([format!("{G}site")]),
            json!([format!("{G}site")]),
            Some(22),
            "ALLOW",
        ),
        rule("deny", 30, json!(["ANY"]), json!(["ANY"]), None, "DROP"),
    ];
    if let Some(s) = rule_scope {
        for r in &mut rules {
            r["Rule"]["scope"] = s.clone();
        }
    }
    let mut children = vec![
        ip_group("site", &["198.18.1.0/24"]),
        ip_group("shared", &[SHARED]),
    ];
    children.extend(extra_groups);
    children.push(
        json!({"resource_type": "ChildSecurityPolicy", "SecurityPolicy": {
        "resource_type": "SecurityPolicy", "id": "p", "category": "Application",
        "scope": policy_scope, "children": rules}}),
    );
    json!({"resource_type": "Infra", "children": [
        {"resource_type": "ChildDomain", "Domain": {"resource_type": "Domain",
         "id": "default", "children": children}}]})
    .to_string()
}

fn tcp(src: &str, dst: &str, port: u16) -> Packet {
    Packet::new_connection(src.parse().unwrap(), dst.parse().unwrap(), 6, 40000, port)
}

fn verdicts(text: &str, packets: &[(Packet, Verdict)]) {
    let rs = nsx::parse(text, "x.json").unwrap_or_else(|e| panic!("{e}"));
    let t = Tracer::new(&rs);
    for (p, want) in packets {
        let got = t.trace(Hook::Forward, p);
        assert!(!got.uncertain, "{p:?}: uncertain: {got:?}");
        assert_eq!(got.verdict, *want, "{p:?}: {:?}", got.path);
    }
}

#[test]
fn policy_scope_confines_the_closing_drop_to_the_site_machines() {
    let text = body(json!([format!("{G}site")]), None, vec![]);
    let rs = nsx::parse(&text, "x.json").unwrap();
    let names: Vec<&str> = rs.chains.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"nsx dfw at source vNIC"), "{names:?}");
    assert!(names.contains(&"nsx dfw at destination vNIC"), "{names:?}");
    verdicts(
        &text,
        &[
            // Site machines: exactly the two allow rules, the rest dropped.
            (tcp(SITE, SHARED, 443), Verdict::Accept),
            (tcp(SITE, SHARED, 80), Verdict::Drop),
            (tcp(SITE, SITE2, 22), Verdict::Accept),
            (tcp(SITE, SITE2, 443), Verdict::Drop),
            // Into the site: the destination's vNIC drops it.
            (tcp(OUTSIDE, SITE, 22), Verdict::Drop),
            (tcp(SHARED, SITE, 443), Verdict::Drop),
            // Neither end in scope: no rule of the policy runs.
            (tcp(OUTSIDE, OUTSIDE2, 22), Verdict::Accept),
            (tcp(OUTSIDE, SHARED, 80), Verdict::Accept),
        ],
    );
}

#[test]
fn unscoped_policy_drops_between_vms_outside_the_site_too() {
    let text = body(json!(["ANY"]), None, vec![]);
    let rs = nsx::parse(&text, "x.json").unwrap();
    assert_eq!(rs.chains[0].name, "nsx dfw", "one chain without a scope");
    verdicts(
        &text,
        &[
            (tcp(SITE, SHARED, 443), Verdict::Accept),
            (tcp(SITE, SITE2, 22), Verdict::Accept),
            (tcp(OUTSIDE, OUTSIDE2, 22), Verdict::Drop),
            (tcp(OUTSIDE, SHARED, 80), Verdict::Drop),
        ],
    );
}

#[test]
fn rule_scope_applies_when_the_policy_scope_is_any_and_policy_scope_wins_otherwise() {
    // Rules scoped to the site, policy ANY: same as the policy scope.
    let site = json!([format!("{G}site")]);
    let text = body(json!(["ANY"]), Some(site.clone()), vec![]);
    verdicts(
        &text,
        &[
            (tcp(SITE, SHARED, 443), Verdict::Accept),
            (tcp(OUTSIDE, SITE, 22), Verdict::Drop),
            (tcp(OUTSIDE, OUTSIDE2, 22), Verdict::Accept),
        ],
    );
    // Policy scoped to the site, rules to the shared server: the policy's
    // scope takes precedence, so the shared server runs none of the rules.
    let text = body(site, Some(json!([format!("{G}shared")])), vec![]);
    verdicts(
        &text,
        &[
            (tcp(OUTSIDE, SHARED, 80), Verdict::Accept),
            (tcp(OUTSIDE, SITE, 80), Verdict::Drop),
        ],
    );
}

#[test]
fn a_packet_between_two_scopes_must_pass_both_vnics() {
    // Two policies: `a` (scope site) allows site -> shared on 443; `b`
    // (scope shared) drops everything into the shared server. The source's
    // vNIC allows, the destination's drops: the connection is dropped.
    let mut text: Value =
        serde_json::from_str(&body(json!([format!("{G}site")]), None, vec![])).unwrap();
    let domain = &mut text["children"][0]["Domain"]["children"];
    domain.as_array_mut().unwrap().push(json!({
    "resource_type": "ChildSecurityPolicy", "SecurityPolicy": {
    "resource_type": "SecurityPolicy", "id": "b", "category": "Application",
    "sequence_number": 20, "scope": [format!("{G}shared")], "children": [
        rule("into-shared", 10, json!(["ANY"]), json!([format!("{G}shared")]), None, "DROP")
    ]}}));
    let text = text.to_string();
    let rs = nsx::parse(&text, "x.json").unwrap();
    let t = Tracer::new(&rs);
    let got = t.trace(Hook::Forward, &tcp(SITE, SHARED, 443));
    assert_eq!(got.verdict, Verdict::Drop);
    assert!(
        got.path
            .iter()
            .any(|r| r.to_string().ends_with("/rules/into-shared")),
        "the destination vNIC's rule decides: {:?}",
        got.path
    );
    // Leaving the shared server is not affected by `b` (it matches
    // destinations in `shared` only), and the site's vNIC drops it.
    verdicts(
        &text,
        &[
            (tcp(SHARED, SITE, 443), Verdict::Drop),
            (tcp(OUTSIDE, SHARED, 80), Verdict::Drop),
            (tcp(OUTSIDE, OUTSIDE2, 80), Verdict::Accept),
        ],
    );
}

#[test]
fn direction_out_runs_at_the_source_vnic_only_when_vnics_are_modelled() {
    // Scoped policy with an OUT-only DROP of tcp/22 and an IN-only ALLOW of
    // tcp/22 into the site before the other rules. Site -> site on 22 leaves
    // a site machine's vNIC, where the OUT rule drops it; outside -> site on
    // 22 only enters one, where the OUT rule does not run and the IN rule
    // allows it.
    let mut text: Value =
        serde_json::from_str(&body(json!([format!("{G}site")]), None, vec![])).unwrap();
    let rules = &mut text["children"][0]["Domain"]["children"][2]["SecurityPolicy"]["children"];
    let mut out = rule(
        "no-ssh-out",
        5,
        json!(["ANY"]),
        json!(["ANY"]),
        Some(22),
        "DROP",
    );
    out["Rule"]["direction"] = json!("OUT");
    let mut allow_in = rule(
        "ssh-in",
        6,
        json!(["ANY"]),
        json!([format!("{G}site")]),
        Some(22),
        "ALLOW",
    );
    allow_in["Rule"]["direction"] = json!("IN");
    rules.as_array_mut().unwrap().insert(0, out);
    rules.as_array_mut().unwrap().insert(1, allow_in);
    verdicts(
        &text.to_string(),
        &[
            (tcp(SITE, SITE2, 22), Verdict::Drop),
            (tcp(OUTSIDE, SITE, 22), Verdict::Accept),
        ],
    );
}

#[test]
fn scope_group_with_dynamic_members_leaves_its_rules_unknown_naming_them() {
    let tagged = group(
        "tkg-vms",
        json!([{"resource_type": "Condition", "member_type": "VirtualMachine",
                "key": "Tag", "operator": "EQUALS", "value": "tkg"}]),
    );
    let text = body(json!([format!("{G}tkg-vms")]), None, vec![tagged]);
    let rs = nsx::parse(&text, "x.json").unwrap();
    let t = Tracer::new(&rs);
    // Whether 198.18.3.5 is a tagged VM is not in the export: the DROP may or
    // may not run at its vNIC.
    let got = t.trace(Hook::Forward, &tcp(OUTSIDE, OUTSIDE2, 80));
    assert!(got.uncertain, "{got:?}");
    assert_eq!(got.overall, Overall::Depends);
    let named = got
        .outcomes
        .iter()
        .filter_map(|o| o.rule.as_ref())
        .any(|r| r.to_string().ends_with("/rules/deny"));
    assert!(named, "the deny rule is named: {got:?}");
    let opaque: Vec<String> = rs
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .flat_map(|r| &r.matches.opaque)
        .map(|o| o.text.clone())
        .collect();
    assert!(
        opaque
            .iter()
            .any(|t| t.contains("applied-to scope") && t.contains("tkg-vms")),
        "{opaque:?}"
    );
}

#[test]
fn scope_group_missing_from_the_export_is_unknown_with_a_note_not_an_error() {
    let text = body(json!([format!("{G}elsewhere")]), None, vec![]);
    let rs = nsx::parse(&text, "x.json").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        rs.notes.iter().any(|n| n
            .message
            .contains("group /infra/domains/default/groups/elsewhere is not in the export")),
        "{:?}",
        rs.notes
    );
    let got = Tracer::new(&rs).trace(Hook::Forward, &tcp(SITE, SHARED, 80));
    assert!(got.uncertain, "{got:?}");
}
