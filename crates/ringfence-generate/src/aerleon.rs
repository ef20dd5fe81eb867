//! Aerleon: a policy (YAML) per address family plus its naming definitions.
//!
//! The files form the tree `aclgen` expects:
//! `policies/pol/<site>-v4.yaml`, `policies/pol/<site>-v6.yaml`,
//! `def/networks.yaml`, `def/services.yaml`. Render them with
//! `aclgen --base_directory policies --definitions_directory def --output_directory out`.
//! Each policy holds one filter whose header targets `iptables` and
//! `speedway` on the chosen chain with default action DROP (the deny-all
//! row); add further targets (juniper, cisco, paloalto, ...) to the header to
//! render the same terms for other platforms.
//!
//! Every filter starts with a term accepting established and related
//! packets (`option: established`, for the iptables and speedway targets):
//! Aerleon renders each flow's term for its own direction only, so without
//! it the replies of every allowed connection would meet the default DROP.
//!
//! Each zone is one network name (`MANAGEMENT`, `AVI_SE`, ...); flow sides
//! that are not a whole zone get their own name (`MC_PODS_INTERNAL_SOURCES`).
//! Aerleon matches a term's ports per protocol, so a flow that carries
//! several protocols becomes one term per protocol (`dns-ntp-outbound-tcp`,
//! `dns-ntp-outbound-udp`), each with its own service name. Flows that open
//! each network only to itself become one term per network.

use crate::plan::{
    of_family, unique_names, FlowPlan, Plan, Ports, Proto, Services, Shape, Side, Verdict,
};
use crate::{header_lines, Family, Options, OutputFile};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Aerleon's iptables generator refuses term names longer than this.
pub const MAX_TERM: usize = 24;

/// The first term of every filter: accept established and related packets
/// (`option: established`), so replies of the allowed flows pass.
pub const REPLIES: &str = "replies";

/// The Aerleon targets the replies term is rendered for (`platform:`): the
/// connection-tracking Linux ones, where `option: established` without a
/// protocol becomes `-m state --state ESTABLISHED,RELATED`. Stateless ACL
/// targets (juniper, cisco) refuse that option without a protocol and skip
/// the term.
pub const STATEFUL_PLATFORMS: &str = "iptables speedway";

/// Double-quoted YAML scalar.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.split_whitespace().collect::<Vec<_>>().join(" ").chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// One term of a filter, before naming.
struct Term<'a> {
    base: String,
    flow: &'a FlowPlan,
    src: Vec<String>,
    dst: Vec<String>,
    proto: Option<(Proto, Ports)>,
}

struct Defs {
    /// Network name → networks (insertion order kept by the Vec).
    networks: Vec<(String, Vec<IpNet>, String)>,
    network_index: BTreeMap<String, usize>,
    /// Service name → (protocol, ports) entries.
    services: Vec<(String, Proto, Vec<ringfence_site::PortRange>)>,
    taken: std::collections::BTreeSet<String>,
}

impl Defs {
    fn name(&mut self, base: &str) -> String {
        let mut b = upper(base);
        if !b.starts_with(|c: char| c.is_ascii_alphabetic()) {
            // Aerleon would read a leading digit as the start of an address.
            b = format!("N_{b}");
        }
        let mut n = b.clone();
        let mut i = 2;
        while self.taken.contains(&n) {
            n = format!("{b}_{i}");
            i += 1;
        }
        self.taken.insert(n.clone());
        n
    }

    fn network(&mut self, key: &str, base: &str, nets: Vec<IpNet>, comment: String) -> String {
        if let Some(&i) = self.network_index.get(key) {
            return self.networks[i].0.clone();
        }
        let name = self.name(base);
        self.network_index
            .insert(key.to_string(), self.networks.len());
        self.networks.push((name.clone(), nets, comment));
        name
    }
}

fn side_names(
    plan: &Plan,
    defs: &mut Defs,
    flow: &FlowPlan,
    side: &Side,
    which: &str,
    fam: Family,
) -> Option<Vec<String>> {
    match side {
        Side::Any => Some(vec![]),
        Side::Zones(zs) => {
            let mut out = Vec::new();
            for z in zs {
                if plan.zone_nets(z, fam).is_empty() {
                    continue;
                }
                let nets = plan.zones[z].clone();
                out.push(defs.network(&format!("zone:{z}"), z, nets, format!("TKG zone {z}")));
            }
            (!out.is_empty()).then_some(out)
        }
        Side::Nets(n) => {
            if of_family(n, fam).is_empty() {
                return None;
            }
            let name = defs.network(
                &format!("flow:{}:{which}", flow.id),
                &format!("{}_{which}", flow.id),
                n.clone(),
                format!("{which} of flow {}", flow.id),
            );
            Some(vec![name])
        }
    }
}

fn protocol_splits(services: &Services) -> Vec<Option<(Proto, Ports)>> {
    match services {
        Services::Any => vec![None],
        Services::Protocols(ps) => ps.iter().cloned().map(Some).collect(),
    }
}

fn filter_terms<'a>(plan: &'a Plan, defs: &mut Defs, fam: Family) -> Vec<Term<'a>> {
    let mut terms = Vec::new();
    for flow in &plan.flows {
        if !plan.flow_families(flow).contains(&fam) {
            continue;
        }
        let splits = protocol_splits(&flow.services);
        let multi = splits.len() > 1;
        let pairs: Vec<(String, Vec<String>, Vec<String>)> = match &flow.shape {
            Shape::Pairs { src, dst } => {
                let (Some(s), Some(d)) = (
                    side_names(plan, defs, flow, src, "sources", fam),
                    side_names(plan, defs, flow, dst, "destinations", fam),
                ) else {
                    continue;
                };
                vec![(flow.id.clone(), s, d)]
            }
            Shape::SameNetwork(nets) => {
                // Number networks across both families so names do not depend on --family.
                nets.iter()
                    .enumerate()
                    .filter(|(_, n)| Family::of(n) == fam)
                    .map(|(i, n)| {
                        let name = defs.network(
                            &format!("flow:{}:net:{}", flow.id, i + 1),
                            &format!("{}_net_{}", flow.id, i + 1),
                            vec![*n],
                            format!("network {} of flow {} (only to itself)", i + 1, flow.id),
                        );
                        (
                            format!("{}-{}", flow.id, i + 1),
                            vec![name.clone()],
                            vec![name],
                        )
                    })
                    .collect()
            }
        };
        for (base, s, d) in pairs {
            for split in &splits {
                let base = match (multi, split) {
                    (true, Some((p, _))) => format!("{base}-{}", p.name()),
                    _ => base.clone(),
                };
                terms.push(Term {
                    base,
                    flow,
                    src: s.clone(),
                    dst: d.clone(),
                    proto: split.clone(),
                });
            }
        }
    }
    terms
}

fn policy(
    plan: &Plan,
    opts: &Options,
    defs: &mut Defs,
    fam: Family,
    service_names: &mut BTreeMap<(String, Proto), String>,
) -> Option<String> {
    let terms = filter_terms(plan, defs, fam);
    if terms.is_empty() {
        return None;
    }
    // The replies term comes first and keeps its name.
    let mut names = unique_names(
        std::iter::once(REPLIES).chain(terms.iter().map(|t| t.base.as_str())),
        MAX_TERM,
        crate::plan::sanitize,
    );
    let replies = names.remove(0);
    let chain = opts.hook.iptables_chain();
    let af = match fam {
        Family::V4 => "",
        Family::V6 => " inet6",
    };
    let mut out = String::new();
    for l in header_lines(plan, &format!("Aerleon policy (IPv{})", fam.number())) {
        let _ = writeln!(out, "# {l}");
    }
    let _ = writeln!(
        out,
        "# Render: aclgen --base_directory policies --definitions_directory def --output_directory out"
    );
    let _ = writeln!(out, "filters:");
    let _ = writeln!(out, "  - header:");
    let _ = writeln!(
        out,
        "      comment: {}",
        q(&format!(
            "TKG firewall paths for site {} ({}); default action DROP is {}",
            plan.site, plan.catalog, plan.default_deny.id
        ))
    );
    let _ = writeln!(out, "      targets:");
    let _ = writeln!(out, "        iptables: {chain} DROP{af}");
    let _ = writeln!(out, "        speedway: {chain} DROP{af}");
    let _ = writeln!(out, "    terms:");
    // Every term matches its flow's direction only; without this term the
    // rendered rules would drop the replies of every allowed connection.
    let _ = writeln!(out, "      - name: {replies}");
    let _ = writeln!(
        out,
        "        comment: \"replies to allowed flows (established, related)\""
    );
    let _ = writeln!(out, "        option: established");
    let _ = writeln!(out, "        platform: {STATEFUL_PLATFORMS}");
    let _ = writeln!(out, "        action: accept");
    for (t, name) in terms.iter().zip(&names) {
        let _ = writeln!(out, "      - name: {name}");
        let _ = writeln!(
            out,
            "        comment: {}",
            q(&format!("{}: {}", t.flow.id, t.flow.purpose))
        );
        if !t.src.is_empty() {
            let _ = writeln!(out, "        source-address: {}", t.src.join(" "));
        }
        if !t.dst.is_empty() {
            let _ = writeln!(out, "        destination-address: {}", t.dst.join(" "));
        }
        if let Some((p, ports)) = &t.proto {
            let pname = match (p, fam) {
                (Proto::Icmp, Family::V6) => "icmpv6",
                (p, _) => p.name(),
            };
            let _ = writeln!(out, "        protocol: {pname}");
            if let Ports::List(r) = ports {
                let key = (t.flow.id.clone(), *p);
                let svc = match service_names.get(&key) {
                    Some(s) => s.clone(),
                    None => {
                        let s = defs.name(&format!("{}_{}", t.flow.id, p.name()));
                        defs.services.push((s.clone(), *p, r.clone()));
                        service_names.insert(key, s.clone());
                        s
                    }
                };
                let _ = writeln!(out, "        destination-port: {svc}");
            }
        }
        let action = match t.flow.verdict {
            Verdict::Accept => "accept",
            Verdict::Drop => "deny",
        };
        let _ = writeln!(out, "        action: {action}");
    }
    Some(out)
}

/// Render the policies and naming definitions.
pub fn render(plan: &Plan, opts: &Options) -> Vec<OutputFile> {
    let site = crate::plan::sanitize(&plan.site);
    let mut defs = Defs {
        networks: Vec::new(),
        network_index: BTreeMap::new(),
        services: Vec::new(),
        taken: Default::default(),
    };
    let mut service_names = BTreeMap::new();
    let mut files = Vec::new();
    for fam in opts.families() {
        if let Some(text) = policy(plan, opts, &mut defs, fam, &mut service_names) {
            files.push(OutputFile {
                path: format!("policies/pol/{site}-v{}.yaml", fam.number()),
                role: format!("policy-v{}", fam.number()),
                contents: text,
            });
        }
    }

    let mut nets = String::new();
    for l in header_lines(plan, "Aerleon network definitions") {
        let _ = writeln!(nets, "# {l}");
    }
    if defs.networks.is_empty() {
        let _ = writeln!(nets, "networks: {{}}");
    } else {
        let _ = writeln!(nets, "networks:");
    }
    for (name, list, comment) in &defs.networks {
        let _ = writeln!(nets, "  {name}:");
        let _ = writeln!(nets, "    values:");
        for n in list {
            let _ = writeln!(nets, "      - address: {n}");
        }
        let _ = writeln!(nets, "      # {comment}");
    }
    let mut svcs = String::new();
    for l in header_lines(plan, "Aerleon service definitions") {
        let _ = writeln!(svcs, "# {l}");
    }
    if defs.services.is_empty() {
        let _ = writeln!(svcs, "services: {{}}");
    } else {
        let _ = writeln!(svcs, "services:");
    }
    for (name, p, ranges) in &defs.services {
        let _ = writeln!(svcs, "  {name}:");
        for r in ranges {
            let port = if r.first == r.last {
                r.first.to_string()
            } else {
                format!("{}-{}", r.first, r.last)
            };
            let _ = writeln!(svcs, "    - port: {port}");
            let _ = writeln!(svcs, "      protocol: {}", p.name());
        }
    }
    files.push(OutputFile {
        path: "def/networks.yaml".into(),
        role: "networks".into(),
        contents: nets,
    });
    files.push(OutputFile {
        path: "def/services.yaml".into(),
        role: "services".into(),
        contents: svcs,
    });
    files
}
