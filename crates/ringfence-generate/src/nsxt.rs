//! NSX-T: a body for `PATCH /policy/api/v1/infra` (the Policy hierarchical API).
//!
//! The body holds one `Group` per zone (an `IPAddressExpression` of its
//! networks, split every [`MAX_IPS_PER_EXPRESSION`] addresses with OR), one
//! `Group` per flow side that is not a whole zone (e.g. the cluster CIDR), one
//! `Service` per flow whose traffic is not "any" (`L4PortSetServiceEntry` with
//! at most 15 port values each, a range counting 2; `ICMPTypeServiceEntry` for
//! ICMP), and one `SecurityPolicy` in the chosen DFW category whose rules
//! follow the flows with increasing `sequence_number` and end with a DROP
//! rule for the deny-all row. Flows that open each network only to itself get
//! one rule per network with the network itself (a CIDR, which the Policy API
//! accepts in `source_groups`/`destination_groups`) on both sides.
//!
//! The policy and every rule apply (`scope`) only to the groups of the site's
//! protected zones (TKG's nodes, jumpbox and bootstrap machine) or the
//! groups `--nsx-scope` names, never to ANY: the DFW runs a rule only on the
//! vNICs of the VMs in its scope, so the closing DROP cannot cut off VMs
//! outside the site. A flow carrying ICMP in both families gets one rule and
//! one service per family, each with its own `ip_protocol`.
//!
//! JSON has no comments, so the header (site, catalog, ringfence version) is
//! the security policy's `description`, and every object carries tags naming
//! the site and the generator.

use crate::iptables::multiport_chunks;
use crate::plan::{
    of_family, sanitize, unique_names, FlowPlan, Plan, Ports, Proto, Services, Shape, Side, Verdict,
};
use crate::{header_lines, Family, GenerateError, Options, OutputFile, NSX_CATEGORIES, VERSION};
use ipnet::IpNet;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The NSX domain the groups and the policy live in.
pub const DOMAIN: &str = "default";

/// Addresses per `IPAddressExpression` (NSX's documented maximum).
pub const MAX_IPS_PER_EXPRESSION: usize = 4000;

/// Rule `tag` values hold at most this many characters.
const MAX_TAG: usize = 32;

fn canonical_category(given: &str) -> Result<&'static str, GenerateError> {
    NSX_CATEGORIES
        .into_iter()
        .find(|c| c.eq_ignore_ascii_case(given))
        .ok_or_else(|| GenerateError::UnknownNsxCategory {
            given: given.to_string(),
            suggestion: ringfence_diag::closest(given, NSX_CATEGORIES).map(str::to_string),
        })
}

fn group_path(id: &str) -> String {
    format!("/infra/domains/{DOMAIN}/groups/{id}")
}

fn tags(plan: &Plan) -> Value {
    json!([
        {"scope": "ringfence", "tag": format!("ringfence {VERSION}")},
        {"scope": "ringfence-site", "tag": plan.site},
        {"scope": "ringfence-catalog", "tag": plan.catalog},
    ])
}

fn ip_expressions(nets: &[IpNet]) -> Value {
    let mut exprs = Vec::new();
    for (i, chunk) in nets.chunks(MAX_IPS_PER_EXPRESSION).enumerate() {
        if i > 0 {
            exprs.push(
                json!({"resource_type": "ConjunctionOperator", "conjunction_operator": "OR"}),
            );
        }
        let ips: Vec<String> = chunk.iter().map(|n| n.to_string()).collect();
        exprs.push(json!({"resource_type": "IPAddressExpression", "ip_addresses": ips}));
    }
    Value::Array(exprs)
}

fn group(plan: &Plan, id: &str, display: &str, description: &str, nets: &[IpNet]) -> Value {
    json!({
        "resource_type": "ChildGroup",
        "Group": {
            "resource_type": "Group",
            "id": id,
            "display_name": display,
            "description": description,
            "expression": ip_expressions(nets),
            "tags": tags(plan),
        }
    })
}

fn service_entries(services: &Services, families: &[Family]) -> Vec<Value> {
    let mut out = Vec::new();
    let Services::Protocols(ps) = services else {
        return out;
    };
    for (p, ports) in ps {
        match (p, ports) {
            (Proto::Icmp, _) => {
                for fam in families {
                    let proto = match fam {
                        Family::V4 => "ICMPv4",
                        Family::V6 => "ICMPv6",
                    };
                    out.push(json!({
                        "resource_type": "ICMPTypeServiceEntry",
                        "id": proto.to_ascii_lowercase(),
                        "display_name": proto,
                        "protocol": proto,
                    }));
                }
            }
            (p, Ports::Any) => {
                let l4 = p.name().to_ascii_uppercase();
                out.push(json!({
                    "resource_type": "L4PortSetServiceEntry",
                    "id": format!("{}-any", p.name()),
                    "display_name": format!("{l4} any port"),
                    "l4_protocol": l4,
                    "source_ports": [],
                    "destination_ports": [],
                }));
            }
            (p, Ports::List(ranges)) => {
                let l4 = p.name().to_ascii_uppercase();
                for (i, chunk) in multiport_chunks(ranges).iter().enumerate() {
                    let ports: Vec<String> = chunk
                        .iter()
                        .map(|r| {
                            if r.first == r.last {
                                r.first.to_string()
                            } else {
                                format!("{}-{}", r.first, r.last)
                            }
                        })
                        .collect();
                    out.push(json!({
                        "resource_type": "L4PortSetServiceEntry",
                        "id": format!("{}-{}", p.name(), i + 1),
                        "display_name": format!("{l4} {}", ports.join(",")),
                        "l4_protocol": l4,
                        "source_ports": [],
                        "destination_ports": ports,
                    }));
                }
            }
        }
    }
    out
}

fn ip_protocol(families: &[Family]) -> &'static str {
    match families {
        [Family::V4] => "IPV4",
        [Family::V6] => "IPV6",
        _ => "IPV4_IPV6",
    }
}

#[allow(clippy::too_many_arguments)]
fn rule(
    id: &str,
    display: &str,
    flow: &FlowPlan,
    seq: u64,
    src: Value,
    dst: Value,
    services: Value,
    families: &[Family],
    scope: &[String],
) -> Value {
    let tag: String = flow.id.chars().take(MAX_TAG).collect();
    json!({
        "resource_type": "ChildRule",
        "Rule": {
            "resource_type": "Rule",
            "id": id,
            "display_name": display,
            "description": flow.purpose.split_whitespace().collect::<Vec<_>>().join(" "),
            "sequence_number": seq,
            "source_groups": src,
            "sources_excluded": false,
            "destination_groups": dst,
            "destinations_excluded": false,
            "services": services,
            "action": match flow.verdict { Verdict::Accept => "ALLOW", Verdict::Drop => "DROP" },
            "scope": scope,
            "direction": "IN_OUT",
            "ip_protocol": ip_protocol(families),
            "logged": false,
            "disabled": false,
            "tag": tag,
        }
    })
}

/// The groups the policy and every rule apply to: `--nsx-scope`, or the
/// groups of the site's protected zones. Never ANY: a DROP at scope ANY would
/// cut off every VM in the domain, not only the site's.
fn scope(
    plan: &Plan,
    opts: &Options,
    zone_group: &BTreeMap<&str, String>,
) -> Result<Vec<String>, GenerateError> {
    if opts.nsx_scope.is_empty() {
        let groups: Vec<String> = plan
            .protected
            .keys()
            .filter_map(|z| zone_group.get(z.as_str()).cloned())
            .collect();
        if groups.is_empty() {
            return Err(GenerateError::NsxScope(format!(
                "none of the zones the policy is for ({}) has addresses of the chosen family; pass --nsx-scope GROUP to name the NSX group of the TKG VMs",
                plan.protected.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        return Ok(groups);
    }
    let mut out = Vec::new();
    for given in &opts.nsx_scope {
        let g = given.trim();
        if g.eq_ignore_ascii_case("ANY") {
            return Err(GenerateError::NsxScope(
                "--nsx-scope ANY would apply the policy, and its closing DROP, to every VM in the domain; name the NSX group(s) of the site's VMs".into(),
            ));
        }
        let path = if g.starts_with('/') {
            if !g.starts_with("/infra/domains/") || !g.contains("/groups/") {
                return Err(GenerateError::NsxScope(format!(
                    "--nsx-scope `{g}` is not a group path; expected /infra/domains/<domain>/groups/<id> or a group id"
                )));
            }
            g.to_string()
        } else if !g.is_empty()
            && g.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            group_path(g)
        } else {
            return Err(GenerateError::NsxScope(format!(
                "--nsx-scope `{g}` is not a group id (letters, digits, `-`, `_`, `.`) or a group path"
            )));
        };
        if !out.contains(&path) {
            out.push(path);
        }
    }
    Ok(out)
}

/// Render the PATCH body.
pub fn render(plan: &Plan, opts: &Options) -> Result<Vec<OutputFile>, GenerateError> {
    let category = canonical_category(&opts.nsx_category)?;
    let families = opts.families();
    let site = sanitize(&plan.site);
    let prefix = format!("rf-{site}");

    // Zone groups.
    let mut domain_children = Vec::new();
    let mut zone_group: BTreeMap<&str, String> = BTreeMap::new();
    let mut zone_keys: Vec<&str> = plan
        .zones
        .keys()
        .chain(plan.protected.keys())
        .map(String::as_str)
        .collect();
    zone_keys.sort_unstable();
    zone_keys.dedup();
    let zone_ids = unique_names(zone_keys.iter().copied(), 255, |z| {
        format!("{prefix}-zone-{}", sanitize(z))
    });
    for (z, id) in zone_keys.iter().zip(zone_ids) {
        let all = plan.zones.get(*z).or_else(|| plan.protected.get(*z));
        let nets: Vec<IpNet> = families
            .iter()
            .flat_map(|f| of_family(all.map(Vec::as_slice).unwrap_or(&[]), *f))
            .collect();
        if nets.is_empty() {
            continue;
        }
        domain_children.push(group(
            plan,
            &id,
            &format!("{} zone {z}", plan.site),
            &format!("TKG zone `{z}` of site {}", plan.site),
            &nets,
        ));
        zone_group.insert(z, group_path(&id));
    }

    let scope = scope(plan, opts, &zone_group)?;

    let flows: Vec<&FlowPlan> = plan
        .flows
        .iter()
        .filter(|f| plan.flow_families(f).iter().any(|x| families.contains(x)))
        .collect();
    let flow_ids = unique_names(flows.iter().map(|f| f.id.as_str()), 200, |f| {
        format!("{prefix}-{}", sanitize(f))
    });

    let mut infra_children = Vec::new();
    let mut rules = Vec::new();
    let mut seq = 0u64;
    for (flow, fid) in flows.iter().zip(&flow_ids) {
        let fams: Vec<Family> = plan
            .flow_families(flow)
            .into_iter()
            .filter(|f| families.contains(f))
            .collect();
        // An ICMPv4 entry says nothing about IPv6 packets (and ICMPv6 about
        // IPv4), so a flow carrying ICMP in both families gets one service
        // and one rule per family, each with its own `ip_protocol`.
        let has_icmp = matches!(&flow.services, Services::Protocols(ps)
            if ps.iter().any(|(p, _)| *p == Proto::Icmp));
        let units: Vec<(String, Vec<Family>)> = if has_icmp && fams.len() > 1 {
            fams.iter()
                .map(|f| (format!("-v{}", f.number()), vec![*f]))
                .collect()
        } else {
            vec![(String::new(), fams.clone())]
        };
        let mut services_of_unit = Vec::new();
        for (suffix, unit_fams) in &units {
            services_of_unit.push(match &flow.services {
                Services::Any => json!(["ANY"]),
                s => {
                    let sid = format!("{fid}{suffix}");
                    infra_children.push(json!({
                        "resource_type": "ChildService",
                        "Service": {
                            "resource_type": "Service",
                            "id": sid,
                            "display_name": format!("{} {}{suffix}", plan.site, flow.id),
                            "description": format!("Ports of flow {}", flow.id),
                            "service_entries": service_entries(s, unit_fams),
                            "tags": tags(plan),
                        }
                    }));
                    json!([format!("/infra/services/{sid}")])
                }
            });
        }
        match &flow.shape {
            Shape::Pairs { src, dst } => {
                let mut side = |s: &Side, which: &str| -> Value {
                    match s {
                        Side::Any => json!(["ANY"]),
                        Side::Zones(zs) => Value::Array(
                            zs.iter()
                                .filter_map(|z| zone_group.get(z.as_str()))
                                .map(|p| json!(p))
                                .collect(),
                        ),
                        Side::Nets(n) => {
                            let nets: Vec<IpNet> =
                                fams.iter().flat_map(|f| of_family(n, *f)).collect();
                            let id = format!("{fid}-{which}");
                            domain_children.push(group(
                                plan,
                                &id,
                                &format!("{} {} {which}", plan.site, flow.id),
                                &format!("The {which} of flow {}", flow.id),
                                &nets,
                            ));
                            json!([group_path(&id)])
                        }
                    }
                };
                let s = side(src, "sources");
                let d = side(dst, "destinations");
                for ((suffix, unit_fams), services) in units.iter().zip(&services_of_unit) {
                    seq += 10;
                    rules.push(rule(
                        &format!("{fid}{suffix}"),
                        &flow.id,
                        flow,
                        seq,
                        s.clone(),
                        d.clone(),
                        services.clone(),
                        unit_fams,
                        &scope,
                    ));
                }
            }
            Shape::SameNetwork(nets) => {
                for (i, n) in fams.iter().flat_map(|f| of_family(nets, *f)).enumerate() {
                    seq += 10;
                    let fam = [Family::of(&n)];
                    let unit = units
                        .iter()
                        .position(|(_, f)| f.contains(&fam[0]))
                        .unwrap_or(0);
                    rules.push(rule(
                        &format!("{fid}-{}", i + 1),
                        &format!("{} {n}", flow.id),
                        flow,
                        seq,
                        json!([n.to_string()]),
                        json!([n.to_string()]),
                        services_of_unit[unit].clone(),
                        &fam,
                        &scope,
                    ));
                }
            }
        }
    }
    // The deny-all row: NSX sections have no default, so an explicit last rule.
    seq += 10;
    let deny = FlowPlan {
        id: plan.default_deny.id.clone(),
        purpose: plan.default_deny.purpose.clone(),
        verdict: Verdict::Drop,
        shape: Shape::Pairs {
            src: Side::Any,
            dst: Side::Any,
        },
        services: Services::Any,
    };
    rules.push(rule(
        &format!("{prefix}-{}", sanitize(&deny.id)),
        &deny.id,
        &deny,
        seq,
        json!(["ANY"]),
        json!(["ANY"]),
        json!(["ANY"]),
        &families,
        &scope,
    ));

    let header = header_lines(plan, "NSX DFW policy").join(" ");
    domain_children.push(json!({
        "resource_type": "ChildSecurityPolicy",
        "SecurityPolicy": {
            "resource_type": "SecurityPolicy",
            "id": prefix,
            "display_name": format!("ringfence {}", plan.site),
            "description": header,
            "category": category,
            "sequence_number": 10,
            "stateful": true,
            "scope": scope,
            "children": rules,
            "tags": tags(plan),
        }
    }));
    infra_children.push(json!({
        "resource_type": "ChildDomain",
        "Domain": {
            "resource_type": "Domain",
            "id": DOMAIN,
            "children": domain_children,
        }
    }));
    let body = json!({
        "resource_type": "Infra",
        "children": infra_children,
    });
    let mut text = serde_json::to_string_pretty(&body).expect("JSON values always serialize");
    text.push('\n');
    Ok(vec![OutputFile {
        path: format!("{site}.nsxt.json"),
        role: "nsxt".into(),
        contents: text,
    }])
}
