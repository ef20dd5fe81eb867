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
        .find(|s| s["id"] == "rf-all-features-dc-monitoring-scrape-v4")
        .expect("monitoring service (IPv4: the flow carries ICMP, so one service per family)");
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
    assert_eq!(icmp, vec!["ICMPv4"]);
}

#[test]
fn nsxt_icmp_flows_in_both_families_get_one_rule_per_family() {
    let site = common::all_features();
    let out = generate_site(&site, Target::Nsxt, &Options::default()).unwrap();
    let body: Value = serde_json::from_str(&out.files[0].contents).unwrap();
    let mut seen = Seen::default();
    walk(&body, &mut seen, "");
    let rules: Vec<(&str, &str)> = seen
        .rules
        .iter()
        .filter(|r| r["display_name"] == "monitoring-scrape")
        .map(|r| {
            (
                r["ip_protocol"].as_str().unwrap(),
                r["services"][0].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        vec![
            (
                "IPV4",
                "/infra/services/rf-all-features-dc-monitoring-scrape-v4"
            ),
            (
                "IPV6",
                "/infra/services/rf-all-features-dc-monitoring-scrape-v6"
            ),
        ]
    );
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

/// Every `scope` in the body: the security policy's and each rule's.
fn scopes(body: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<(String, Vec<String>)>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => {
                if let (Some(rt), Some(scope)) = (o.get("resource_type"), o.get("scope")) {
                    if rt == "Rule" || rt == "SecurityPolicy" {
                        let list = scope
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|s| s.as_str().unwrap().to_string())
                            .collect();
                        out.push((o["id"].as_str().unwrap().to_string(), list));
                    }
                }
                o.values().for_each(|x| walk(x, out));
            }
            _ => {}
        }
    }
    walk(body, &mut out);
    out
}

#[test]
fn nsxt_policy_and_every_rule_apply_only_to_the_sites_groups_never_any() {
    for (name, site) in common::sites() {
        for family in [None, Some(ringfence_generate::Family::V4)] {
            let out = generate_site(
                &site,
                Target::Nsxt,
                &Options {
                    family,
                    ..Options::default()
                },
            )
            .unwrap();
            let body: Value = serde_json::from_str(&out.files[0].contents).unwrap();
            let mut seen = Seen::default();
            walk(&body, &mut seen, "");
            let all = scopes(&body);
            assert!(
                all.len() == seen.rules.len() + 1,
                "{name}: every rule and the policy carry a scope"
            );
            // The groups of the zones the firewall is for, as the body defines them.
            let resolved = site.resolve();
            let want: BTreeSet<String> = resolved
                .protected_zones
                .iter()
                .map(|z| format!("/infra/domains/default/groups/rf-{}-zone-{z}", site.name))
                .collect();
            assert!(!want.is_empty());
            for (id, scope) in &all {
                assert!(
                    scope.iter().all(|s| !s.eq_ignore_ascii_case("ANY")),
                    "{name}: {id} has scope ANY"
                );
                let got: BTreeSet<String> = scope.iter().cloned().collect();
                assert_eq!(got, want, "{name}: scope of {id}");
                for g in scope {
                    assert!(seen.groups.contains(g), "{name}: {id} scope {g} undefined");
                }
            }
            // Shared services are outside the scope.
            for shared in ["dns", "vcenter", "harbor"] {
                assert!(want
                    .iter()
                    .all(|g| !g.ends_with(&format!("-zone-{shared}"))));
            }
        }
    }
}

#[test]
fn nsx_scope_option_replaces_the_scope_and_refuses_any() {
    let site = common::example();
    let out = generate_site(
        &site,
        Target::Nsxt,
        &Options {
            nsx_scope: vec![
                "tkg-vms".into(),
                "/infra/domains/default/groups/jump".into(),
            ],
            ..Options::default()
        },
    )
    .unwrap();
    let body: Value = serde_json::from_str(&out.files[0].contents).unwrap();
    for (id, scope) in scopes(&body) {
        assert_eq!(
            scope,
            vec![
                "/infra/domains/default/groups/tkg-vms",
                "/infra/domains/default/groups/jump"
            ],
            "{id}"
        );
    }
    for bad in ["ANY", "any", "", "/infra/services/x", "a b"] {
        let err = generate_site(
            &site,
            Target::Nsxt,
            &Options {
                nsx_scope: vec![bad.into()],
                ..Options::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--nsx-scope"), "{bad}: {err}");
    }
}

/// A reference model of where the DFW enforces the body: each VM's vNIC
/// runs the rules whose `scope` holds the VM (first match in sequence order,
/// `IN_OUT`), and no match means NSX's own default rule, which allows. A new
/// connection passes when both the source VM's and the destination VM's
/// vNIC pass it (a VM outside every scope group has no rules at all).
struct Dfw {
    groups: BTreeMap<String, Vec<IpNet>>,
    services: BTreeMap<String, Vec<(u8, u16, u16)>>,
    rules: Vec<Value>,
}

impl Dfw {
    fn new(body: &Value) -> Dfw {
        let mut seen = Seen::default();
        walk(body, &mut seen, "");
        let mut groups = BTreeMap::new();
        let mut services = BTreeMap::new();
        fn collect(
            v: &Value,
            groups: &mut BTreeMap<String, Vec<IpNet>>,
            services: &mut BTreeMap<String, Vec<(u8, u16, u16)>>,
        ) {
            match v {
                Value::Array(a) => a.iter().for_each(|x| collect(x, groups, services)),
                Value::Object(o) => {
                    match o.get("resource_type").and_then(Value::as_str) {
                        Some("Group") => {
                            let nets = o["expression"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .filter_map(|e| e.get("ip_addresses"))
                                .flat_map(|a| a.as_array().unwrap().iter())
                                .map(|ip| ip.as_str().unwrap().parse().unwrap())
                                .collect();
                            groups.insert(
                                format!(
                                    "/infra/domains/default/groups/{}",
                                    o["id"].as_str().unwrap()
                                ),
                                nets,
                            );
                        }
                        Some("Service") => {
                            let mut entries = Vec::new();
                            for e in o["service_entries"].as_array().unwrap() {
                                if e["resource_type"] == "ICMPTypeServiceEntry" {
                                    let p = if e["protocol"] == "ICMPv4" { 1 } else { 58 };
                                    entries.push((p, 0, u16::MAX));
                                    continue;
                                }
                                let p = if e["l4_protocol"] == "TCP" { 6 } else { 17 };
                                let ports = e["destination_ports"].as_array().unwrap();
                                if ports.is_empty() {
                                    entries.push((p, 0, u16::MAX));
                                }
                                for port in ports {
                                    let s = port.as_str().unwrap();
                                    let (a, b) = s.split_once('-').unwrap_or((s, s));
                                    entries.push((p, a.parse().unwrap(), b.parse().unwrap()));
                                }
                            }
                            services.insert(
                                format!("/infra/services/{}", o["id"].as_str().unwrap()),
                                entries,
                            );
                        }
                        _ => {}
                    }
                    o.values().for_each(|x| collect(x, groups, services));
                }
                _ => {}
            }
        }
        collect(body, &mut groups, &mut services);
        let mut rules = seen.rules;
        rules.sort_by_key(|r| r["sequence_number"].as_u64().unwrap());
        Dfw {
            groups,
            services,
            rules,
        }
    }

    fn holds(&self, list: &Value, a: std::net::IpAddr) -> bool {
        list.as_array().unwrap().iter().any(|g| {
            let g = g.as_str().unwrap();
            g == "ANY"
                || g.parse::<IpNet>().is_ok_and(|n| n.contains(&a))
                || self
                    .groups
                    .get(g)
                    .is_some_and(|n| n.iter().any(|n| n.contains(&a)))
        })
    }

    fn rule_matches(&self, r: &Value, p: &common::eval::Packet) -> bool {
        let fam_ok = match r["ip_protocol"].as_str().unwrap() {
            "IPV4" => p.src.is_ipv4(),
            "IPV6" => p.src.is_ipv6(),
            _ => true,
        };
        let svc_ok = r["services"].as_array().unwrap().iter().any(|s| {
            let s = s.as_str().unwrap();
            s == "ANY"
                || self.services[s].iter().any(|(proto, a, b)| {
                    *proto == p.proto && (matches!(p.proto, 1 | 58) || (*a..=*b).contains(&p.dport))
                })
        });
        fam_ok
            && svc_ok
            && self.holds(&r["source_groups"], p.src)
            && self.holds(&r["destination_groups"], p.dst)
    }

    /// The verdict at the vNIC of the VM with address `vm`.
    fn at_vnic(&self, vm: std::net::IpAddr, p: &common::eval::Packet) -> bool {
        for r in self.rules.iter().filter(|r| self.holds(&r["scope"], vm)) {
            if self.rule_matches(r, p) {
                return r["action"] == "ALLOW";
            }
        }
        true
    }

    fn passes(&self, p: &common::eval::Packet) -> bool {
        self.at_vnic(p.src, p) && self.at_vnic(p.dst, p)
    }
}

#[test]
fn nsxt_scope_leaves_vms_outside_the_site_unaffected_and_enforces_the_site() {
    use common::eval::Verdict;
    for (name, site) in common::sites() {
        let out = generate_site(&site, Target::Nsxt, &Options::default()).unwrap();
        let body: Value = serde_json::from_str(&out.files[0].contents).unwrap();
        let dfw = Dfw::new(&body);
        let resolved = site.resolve();
        let protected: Vec<IpNet> = resolved
            .protected_zones
            .iter()
            .flat_map(|z| site.zones[z].clone())
            .collect();
        let inside = |a: &std::net::IpAddr| protected.iter().any(|n| n.contains(a));
        let (mut outside_pairs, mut enforced) = (0, 0);
        for fam in ringfence_generate::Family::BOTH {
            for p in common::probes(&resolved, fam) {
                let got = dfw.passes(&p);
                if inside(&p.src) || inside(&p.dst) {
                    // A site machine's vNIC enforces exactly the site's flows.
                    let want = common::expected(&resolved, &p) == Verdict::Accept;
                    assert_eq!(got, want, "{name}: {p:?}");
                    enforced += 1;
                } else {
                    // Neither end is a site machine: the policy does not touch it.
                    assert!(got, "{name}: a VM outside the site lost {p:?}");
                    outside_pairs += 1;
                }
            }
        }
        assert!(outside_pairs > 0 && enforced > 0, "{name}");
        // Concretely: two VMs outside every zone talk on any port, and one
        // of them still reaches the DNS server (a shared service).
        let outside: std::net::IpAddr = "198.19.255.1".parse().unwrap();
        let other: std::net::IpAddr = "198.19.255.2".parse().unwrap();
        let dns = match site.zones["dns"][0] {
            IpNet::V4(n) => std::net::IpAddr::V4(n.network()),
            IpNet::V6(n) => std::net::IpAddr::V6(n.network()),
        };
        for (dst, proto, dport) in [
            (other, 6, 22),
            (other, 17, 9999),
            (dns, 17, 53),
            (dns, 6, 80),
        ] {
            let p = common::eval::Packet {
                src: outside,
                dst,
                proto,
                dport,
            };
            assert!(dfw.passes(&p), "{name}: {p:?} blocked outside the site");
        }
        // Without a scope (the old body) the same VMs would lose their network.
        let unscoped: Value = serde_json::from_str(
            &out.files[0]
                .contents
                .replace("\"scope\": [", "\"scope\": [\"ANY\", "),
        )
        .unwrap();
        let p = common::eval::Packet {
            src: outside,
            dst: other,
            proto: 6,
            dport: 22,
        };
        assert!(
            !Dfw::new(&unscoped).passes(&p),
            "{name}: the evaluator sees scope"
        );
    }
}
