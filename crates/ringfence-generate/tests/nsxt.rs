//! The NSX body has the Policy API's shapes: for each `resource_type`, only the
//! fields the API defines for it (required ones present), enum values from the
//! API's enumerations, every referenced group and service path defined in the
//! same body, rules in increasing `sequence_number` ending with DROP.
//!
//! Field and enum facts (NSX-T Policy API, hierarchical `PATCH /policy/api/v1/infra`):
//! Rule.action ALLOW|DROP|REJECT|JUMP_TO_APPLICATION; Rule.direction IN|OUT|IN_OUT;
//! Rule.ip_protocol IPV4|IPV6|IPV4_IPV6; SecurityPolicy.category for DFW
//! Ethernet|Emergency|Infrastructure|Environment|Application;
//! L4PortSetServiceEntry.l4_protocol TCP|UDP with at most 15 port values
//! (a range counting 2); ICMPTypeServiceEntry.protocol ICMPv4|ICMPv6;
//! ConjunctionOperator.conjunction_operator OR|AND; Rule.tag at most 32 characters.

mod common;

use ipnet::IpNet;
use ringfence_generate::{generate_site, Options, Target};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// resource_type → (allowed fields, required fields).
fn shapes() -> BTreeMap<&'static str, (Vec<&'static str>, Vec<&'static str>)> {
    let mut m = BTreeMap::new();
    m.insert(
        "Infra",
        (vec!["resource_type", "children"], vec!["children"]),
    );
    m.insert(
        "ChildDomain",
        (vec!["resource_type", "Domain"], vec!["Domain"]),
    );
    m.insert(
        "Domain",
        (vec!["resource_type", "id", "children"], vec!["id"]),
    );
    m.insert(
        "ChildGroup",
        (vec!["resource_type", "Group"], vec!["Group"]),
    );
    m.insert(
        "Group",
        (
            vec![
                "resource_type",
                "id",
                "display_name",
                "description",
                "expression",
                "tags",
            ],
            vec!["id", "display_name", "expression"],
        ),
    );
    m.insert(
        "IPAddressExpression",
        (vec!["resource_type", "ip_addresses"], vec!["ip_addresses"]),
    );
    m.insert(
        "ConjunctionOperator",
        (
            vec!["resource_type", "conjunction_operator"],
            vec!["conjunction_operator"],
        ),
    );
    m.insert(
        "ChildService",
        (vec!["resource_type", "Service"], vec!["Service"]),
    );
    m.insert(
        "Service",
        (
            vec![
                "resource_type",
                "id",
                "display_name",
                "description",
                "service_entries",
                "tags",
            ],
            vec!["id", "service_entries"],
        ),
    );
    m.insert(
        "L4PortSetServiceEntry",
        (
            vec![
                "resource_type",
                "id",
                "display_name",
                "l4_protocol",
                "source_ports",
                "destination_ports",
            ],
            vec!["id", "l4_protocol"],
        ),
    );
    m.insert(
        "ICMPTypeServiceEntry",
        (
            vec!["resource_type", "id", "display_name", "protocol"],
            vec!["id", "protocol"],
        ),
    );
    m.insert(
        "ChildSecurityPolicy",
        (
            vec!["resource_type", "SecurityPolicy"],
            vec!["SecurityPolicy"],
        ),
    );
    m.insert(
        "SecurityPolicy",
        (
            vec![
                "resource_type",
                "id",
                "display_name",
                "description",
                "category",
                "sequence_number",
                "stateful",
                "scope",
                "children",
                "tags",
            ],
            vec!["id", "category", "children"],
        ),
    );
    m.insert("ChildRule", (vec!["resource_type", "Rule"], vec!["Rule"]));
    m.insert(
        "Rule",
        (
            vec![
                "resource_type",
                "id",
                "display_name",
                "description",
                "sequence_number",
                "source_groups",
                "sources_excluded",
                "destination_groups",
                "destinations_excluded",
                "services",
                "action",
                "scope",
                "direction",
                "ip_protocol",
                "logged",
                "disabled",
                "tag",
            ],
            vec![
                "id",
                "sequence_number",
                "source_groups",
                "destination_groups",
                "services",
                "action",
            ],
        ),
    );
    m
}

fn enums() -> BTreeMap<(&'static str, &'static str), Vec<&'static str>> {
    let mut m = BTreeMap::new();
    m.insert(
        ("Rule", "action"),
        vec!["ALLOW", "DROP", "REJECT", "JUMP_TO_APPLICATION"],
    );
    m.insert(("Rule", "direction"), vec!["IN", "OUT", "IN_OUT"]);
    m.insert(("Rule", "ip_protocol"), vec!["IPV4", "IPV6", "IPV4_IPV6"]);
    m.insert(
        ("SecurityPolicy", "category"),
        vec![
            "Ethernet",
            "Emergency",
            "Infrastructure",
            "Environment",
            "Application",
        ],
    );
    m.insert(("L4PortSetServiceEntry", "l4_protocol"), vec!["TCP", "UDP"]);
    m.insert(
        ("ICMPTypeServiceEntry", "protocol"),
        vec!["ICMPv4", "ICMPv6"],
    );
    m.insert(
        ("ConjunctionOperator", "conjunction_operator"),
        vec!["OR", "AND"],
    );
    m
}

#[derive(Default)]
struct Seen {
    groups: BTreeSet<String>,
    services: BTreeSet<String>,
    rules: Vec<Value>,
    types: BTreeSet<String>,
}

fn walk(v: &Value, seen: &mut Seen, ptr: &str) {
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, seen, &format!("{ptr}/{i}"));
            }
        }
        Value::Object(o) => {
            let Some(rt) = o.get("resource_type").and_then(Value::as_str) else {
                // Tags are the only untyped objects we emit.
                let keys: BTreeSet<&str> = o.keys().map(String::as_str).collect();
                assert_eq!(
                    keys,
                    BTreeSet::from(["scope", "tag"]),
                    "{ptr}: untyped object"
                );
                return;
            };
            seen.types.insert(rt.to_string());
            let shapes = shapes();
            let (allowed, required) = shapes
                .get(rt)
                .unwrap_or_else(|| panic!("{ptr}: unexpected resource_type {rt}"));
            for k in o.keys() {
                assert!(
                    allowed.contains(&k.as_str()),
                    "{ptr}: {rt} has no field `{k}`"
                );
            }
            for r in required {
                assert!(o.contains_key(*r), "{ptr}: {rt} lacks required `{r}`");
            }
            for ((t, field), values) in enums() {
                if t == rt {
                    if let Some(x) = o.get(field) {
                        let s = x.as_str().unwrap();
                        assert!(
                            values.contains(&s),
                            "{ptr}: {rt}.{field} = {s} is not an API value"
                        );
                    }
                }
            }
            match rt {
                "Group" => {
                    seen.groups.insert(format!(
                        "/infra/domains/default/groups/{}",
                        o["id"].as_str().unwrap()
                    ));
                }
                "Service" => {
                    seen.services
                        .insert(format!("/infra/services/{}", o["id"].as_str().unwrap()));
                }
                "IPAddressExpression" => {
                    let ips = o["ip_addresses"].as_array().unwrap();
                    assert!(!ips.is_empty() && ips.len() <= 4000, "{ptr}: address count");
                    for ip in ips {
                        ip.as_str().unwrap().parse::<IpNet>().unwrap();
                    }
                }
                "L4PortSetServiceEntry" => {
                    let ports = o["destination_ports"].as_array().unwrap();
                    let cost: usize = ports
                        .iter()
                        .map(|p| {
                            let s = p.as_str().unwrap();
                            match s.split_once('-') {
                                Some((a, b)) => {
                                    assert!(a.parse::<u16>().unwrap() < b.parse::<u16>().unwrap());
                                    2
                                }
                                None => {
                                    s.parse::<u16>().unwrap();
                                    1
                                }
                            }
                        })
                        .sum();
                    assert!(cost <= 15, "{ptr}: {cost} port values in one entry");
                }
                "Rule" => {
                    assert!(o["tag"].as_str().unwrap().len() <= 32);
                    seen.rules.push(v.clone());
                }
                _ => {}
            }
            for (k, x) in o {
                walk(x, seen, &format!("{ptr}/{k}"));
            }
        }
        _ => {}
    }
}

#[test]
fn nsxt_body_uses_only_policy_api_fields_and_enum_values() {
    for (name, site) in common::sites() {
        for category in ["Infrastructure", "Application", "emergency"] {
            let out = generate_site(
                &site,
                Target::Nsxt,
                &Options {
                    nsx_category: category.into(),
                    ..Options::default()
                },
            )
            .unwrap();
            let body: Value = serde_json::from_str(&out.files[0].contents).unwrap();
            assert_eq!(body["resource_type"], "Infra");
            let mut seen = Seen::default();
            walk(&body, &mut seen, "");
            for t in [
                "Group",
                "IPAddressExpression",
                "Service",
                "L4PortSetServiceEntry",
                "SecurityPolicy",
                "Rule",
            ] {
                assert!(seen.types.contains(t), "{name}: no {t} emitted");
            }
            // References resolve inside the body.
            let mut last = 0;
            for r in &seen.rules {
                let seq = r["sequence_number"].as_u64().unwrap();
                assert!(seq > last, "{name}: sequence numbers must increase");
                last = seq;
                for side in ["source_groups", "destination_groups"] {
                    for g in r[side].as_array().unwrap() {
                        let g = g.as_str().unwrap();
                        assert!(
                            g == "ANY" || seen.groups.contains(g) || g.parse::<IpNet>().is_ok(),
                            "{name}: {side} refers to undefined {g}"
                        );
                    }
                }
                for s in r["services"].as_array().unwrap() {
                    let s = s.as_str().unwrap();
                    assert!(
                        s == "ANY" || seen.services.contains(s),
                        "{name}: undefined service {s}"
                    );
                }
            }
            let last_rule = seen.rules.last().unwrap();
            assert_eq!(last_rule["action"], "DROP");
            assert_eq!(last_rule["display_name"], "deny-all");
            for side in ["source_groups", "destination_groups", "services"] {
                assert_eq!(last_rule[side], serde_json::json!(["ANY"]));
            }
            let policy_category = body["children"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|c| c.get("Domain"))
                .and_then(|d| {
                    d["children"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find_map(|c| c.get("SecurityPolicy"))
                })
                .map(|p| p["category"].as_str().unwrap().to_string())
                .unwrap();
            assert!(policy_category.eq_ignore_ascii_case(category));
            // deny-all appears once, as the last rule; other DROP rules are explicit deny flows.
            let deny_all = seen
                .rules
                .iter()
                .filter(|r| r["display_name"] == "deny-all")
                .count();
            assert_eq!(deny_all, 1, "{name}");
            let explicit: Vec<&str> = seen.rules[..seen.rules.len() - 1]
                .iter()
                .filter(|r| r["action"] == "DROP")
                .map(|r| r["display_name"].as_str().unwrap())
                .collect();
            let deny_flows: Vec<String> = site
                .resolve()
                .flows
                .iter()
                .filter(|f| f.action == ringfence_site::FlowAction::Deny && f.id != "deny-all")
                .map(|f| f.id.clone())
                .collect();
            assert_eq!(
                explicit, deny_flows,
                "{name}: DROP rules must be the deny flows"
            );
        }
    }
}

#[test]
fn nsxt_same_network_rules_pair_each_workload_network_only_with_itself() {
    let site = common::all_features();
    let out = generate_site(&site, Target::Nsxt, &Options::default()).unwrap();
    let body: Value = serde_json::from_str(&out.files[0].contents).unwrap();
    let mut seen = Seen::default();
    walk(&body, &mut seen, "");
    let wl: Vec<&Value> = seen
        .rules
        .iter()
        .filter(|r| r["tag"] == "allow-wl-subnet")
        .collect();
    let expected: Vec<String> = site.zones["workload"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(wl.len(), expected.len());
    for (r, n) in wl.iter().zip(&expected) {
        assert_eq!(r["source_groups"], serde_json::json!([n]));
        assert_eq!(r["destination_groups"], serde_json::json!([n]));
        let fam = if n.contains(':') { "IPV6" } else { "IPV4" };
        assert_eq!(r["ip_protocol"], fam);
    }
}

#[test]
fn nsxt_splits_long_port_lists_into_entries_of_at_most_15_values() {
    let site = common::all_features();
    let out = generate_site(&site, Target::Nsxt, &Options::default()).unwrap();
    let body: Value = serde_json::from_str(&out.files[0].contents).unwrap();
    let svc = body["children"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.get("Service"))
        .find(|s| s["id"] == "rf-all-features-dc-monitoring-scrape")
        .expect("monitoring service");
    let entries = svc["service_entries"].as_array().unwrap();
    let tcp: Vec<&Value> = entries
        .iter()
        .filter(|e| e["l4_protocol"] == "TCP")
        .collect();
    assert_eq!(
        tcp.len(),
        2,
        "16 TCP port values need two entries: {entries:?}"
    );
    let icmp: Vec<&str> = entries
        .iter()
        .filter(|e| e["resource_type"] == "ICMPTypeServiceEntry")
        .map(|e| e["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(icmp, vec!["ICMPv4", "ICMPv6"]);
}

#[test]
fn unknown_nsx_category_is_rejected_with_a_suggestion() {
    let err = generate_site(
        &common::example(),
        Target::Nsxt,
        &Options {
            nsx_category: "Infrastructur".into(),
            ..Options::default()
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("did you mean `Infrastructure`"), "{msg}");
}
