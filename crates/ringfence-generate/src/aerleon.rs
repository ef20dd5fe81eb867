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
//! The stateless router targets (juniper, cisco) keep no connection state:
//! each allowed flow between different networks is followed by its return
//! terms for them (`platform: juniper cisco`): TCP from the flow's ports
//! with `option: tcp-established`, UDP from the flow's ports, ICMP
//! echo-reply. With `--hook input`/`output` the filter then holds the host
//! terms the nftables and iptables targets write (loopback, ICMP path errors
//! or ICMPv6 neighbour and multicast listener discovery, DHCP client).
//!
//! Each zone is one network name (`MANAGEMENT`, `AVI_SE`, ...); flow sides
//! that are not a whole zone get their own name (`MC_PODS_INTERNAL_SOURCES`).
//! Aerleon matches a term's ports per protocol, so a flow that carries
//! several protocols becomes one term per protocol (`dns-ntp-outbound-tcp`,
//! `dns-ntp-outbound-udp`), each with its own service name. Flows that open
//! each network only to itself become one term per network.

use crate::plan::{
    of_family, unique_names, FlowPlan, Plan, Ports, Proto, Services, Shape, Side, Verdict,
    HOST_ICMP, HOST_ICMPV6,
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

/// The stateless Aerleon targets the return terms are rendered for
/// (`platform:`): router ACLs keep no connection state, so each allowed flow
/// gets a term for its replies (TCP with `option: tcp-established` from the
/// flow's ports, UDP from the flow's ports, ICMP echo-reply). The stateful
/// targets skip these terms and use the replies term instead.
pub const STATELESS_PLATFORMS: &str = "juniper cisco";

/// A return term for a stateless target: the replies of one flow term.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Return {
    /// TCP from the flow's destination ports, established only.
    Tcp,
    /// UDP from the flow's destination ports.
    Udp,
    /// ICMP echo-reply (ICMPv6 in an inet6 filter).
    Icmp,
}

/// The return terms a flow term needs on a stateless target. A
/// network-to-itself term is its own return path (same source and
/// destination), and a deny term needs none.
fn returns_of(t: &Term) -> Vec<Return> {
    if t.flow.verdict != Verdict::Accept || matches!(t.flow.shape, Shape::SameNetwork(_)) {
        return Vec::new();
    }
    match &t.proto {
        Some((Proto::Tcp, _)) => vec![Return::Tcp],
        Some((Proto::Udp, _)) => vec![Return::Udp],
        Some((Proto::Icmp, _)) => vec![Return::Icmp],
        // All traffic: the replies a stateless ACL can tell apart.
        None => vec![Return::Tcp, Return::Udp, Return::Icmp],
    }
}

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
    /// The host terms' DHCP port services, by role.
    host_services: BTreeMap<&'static str, String>,
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
    // Each flow term, then its return terms for stateless targets.
    let mut entries: Vec<(&Term, Option<Return>, String)> = Vec::new();
    for t in &terms {
        entries.push((t, None, t.base.clone()));
        let rets = returns_of(t);
        for r in &rets {
            let base = match (rets.len(), r) {
                (1, _) => format!("{}-ret", t.base),
                (_, Return::Tcp) => format!("{}-ret-tcp", t.base),
                (_, Return::Udp) => format!("{}-ret-udp", t.base),
                (_, Return::Icmp) => format!("{}-ret-icmp", t.base),
            };
            entries.push((t, Some(*r), base));
        }
    }
    let host = host_terms(plan, opts, defs, fam);
    // The replies term and the host terms come first and keep their names.
    let mut names = unique_names(
        std::iter::once(REPLIES)
            .chain(host.iter().map(|h| h.0))
            .chain(entries.iter().map(|e| e.2.as_str())),
        MAX_TERM,
        crate::plan::sanitize,
    );
    let replies = names.remove(0);
    let host_names: Vec<String> = names.drain(..host.len()).collect();
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
    for ((_, body), name) in host.iter().zip(&host_names) {
        let _ = writeln!(out, "      - name: {name}");
        out.push_str(body);
    }
    let icmp_name = match fam {
        Family::V4 => "icmp",
        Family::V6 => "icmpv6",
    };
    for ((t, ret, _), name) in entries.iter().zip(&names) {
        let _ = writeln!(out, "      - name: {name}");
        let Some(ret) = ret else {
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
                let pname = match p {
                    Proto::Icmp => icmp_name,
                    p => p.name(),
                };
                let _ = writeln!(out, "        protocol: {pname}");
                if let Ports::List(r) = ports {
                    let svc = service_name(defs, service_names, &t.flow.id, *p, r);
                    let _ = writeln!(out, "        destination-port: {svc}");
                }
            }
            let action = match t.flow.verdict {
                Verdict::Accept => "accept",
                Verdict::Drop => "deny",
            };
            let _ = writeln!(out, "        action: {action}");
            continue;
        };
        // The replies of the flow term above: its destinations answer its
        // sources from the flow's ports.
        let _ = writeln!(
            out,
            "        comment: {}",
            q(&format!("replies of {} on stateless targets", t.flow.id))
        );
        if !t.dst.is_empty() {
            let _ = writeln!(out, "        source-address: {}", t.dst.join(" "));
        }
        if !t.src.is_empty() {
            let _ = writeln!(out, "        destination-address: {}", t.src.join(" "));
        }
        match ret {
            Return::Tcp | Return::Udp => {
                let p = if *ret == Return::Tcp {
                    Proto::Tcp
                } else {
                    Proto::Udp
                };
                let _ = writeln!(out, "        protocol: {}", p.name());
                if let Some((_, Ports::List(r))) = &t.proto {
                    let svc = service_name(defs, service_names, &t.flow.id, p, r);
                    let _ = writeln!(out, "        source-port: {svc}");
                }
                if p == Proto::Tcp {
                    let _ = writeln!(out, "        option: tcp-established");
                }
            }
            Return::Icmp => {
                let _ = writeln!(out, "        protocol: {icmp_name}");
                let _ = writeln!(out, "        icmp-type: echo-reply");
            }
        }
        let _ = writeln!(out, "        platform: {STATELESS_PLATFORMS}");
        let _ = writeln!(out, "        action: accept");
    }
    Some(out)
}

/// Aerleon's name of an ICMP (`v4`) or ICMPv6 type the host terms pass.
fn icmp_type_name(fam: Family, t: u8) -> &'static str {
    match (fam, t) {
        (Family::V4, 3) => "unreachable",
        (Family::V4, 11) => "time-exceeded",
        (Family::V4, 12) => "parameter-problem",
        (Family::V6, 1) => "destination-unreachable",
        (Family::V6, 2) => "packet-too-big",
        (Family::V6, 3) => "time-exceeded",
        (Family::V6, 4) => "parameter-problem",
        (Family::V6, 130) => "multicast-listener-query",
        (Family::V6, 131) => "multicast-listener-report",
        (Family::V6, 132) => "multicast-listener-done",
        (Family::V6, 133) => "router-solicit",
        (Family::V6, 134) => "router-advertisement",
        (Family::V6, 135) => "neighbor-solicit",
        (Family::V6, 136) => "neighbor-advertisement",
        (Family::V6, 143) => "version-2-multicast-listener-report",
        _ => unreachable!("no Aerleon name for ICMP type {t} of IPv{}", fam.number()),
    }
}

/// The terms a host firewall (input or output hook) needs before the flows
/// so the host keeps working, as the nftables and iptables targets write
/// them: loopback (iptables and speedway: `source-interface` /
/// `destination-interface: lo`), the ICMP path errors or the ICMPv6 types
/// of neighbour and multicast listener discovery, and DHCP client traffic
/// when the site has DHCP servers. Each is `(name, body lines)`.
fn host_terms(
    plan: &Plan,
    opts: &Options,
    defs: &mut Defs,
    fam: Family,
) -> Vec<(&'static str, String)> {
    let input = match opts.hook {
        crate::Hook::Forward => return Vec::new(),
        crate::Hook::Input => true,
        crate::Hook::Output => false,
    };
    let mut out = Vec::new();
    let mut body = String::new();
    let _ = writeln!(body, "        comment: \"host: loopback\"");
    let iface = if input {
        "source-interface"
    } else {
        "destination-interface"
    };
    let _ = writeln!(body, "        {iface}: lo");
    let _ = writeln!(body, "        platform: {STATEFUL_PLATFORMS}");
    let _ = writeln!(body, "        action: accept");
    out.push(("host-loopback", body));

    let (pname, types): (&str, Vec<u8>) = match fam {
        Family::V4 => ("icmp", HOST_ICMP.iter().map(|t| t.0).collect()),
        Family::V6 => ("icmpv6", HOST_ICMPV6.iter().map(|t| t.0).collect()),
    };
    let names: Vec<&str> = types.iter().map(|t| icmp_type_name(fam, *t)).collect();
    let mut body = String::new();
    let what = match fam {
        Family::V4 => "host: icmp path errors",
        Family::V6 => "host: icmpv6 neighbour discovery, multicast listeners, path errors",
    };
    let _ = writeln!(body, "        comment: \"{what}\"");
    let _ = writeln!(body, "        protocol: {pname}");
    let _ = writeln!(body, "        icmp-type: {}", names.join(" "));
    let _ = writeln!(body, "        action: accept");
    out.push(("host-icmp", body));

    if let (Family::V4, Some(servers)) = (fam, &plan.dhcp_servers) {
        let addrs: Option<Vec<String>> = match servers {
            Side::Any => Some(Vec::new()),
            Side::Zones(zs) => {
                let v: Vec<String> = zs
                    .iter()
                    .filter(|z| !plan.zone_nets(z, fam).is_empty())
                    .map(|z| {
                        defs.network(
                            &format!("zone:{z}"),
                            z,
                            plan.zones[z].clone(),
                            format!("TKG zone {z}"),
                        )
                    })
                    .collect();
                (!v.is_empty()).then_some(v)
            }
            Side::Nets(n) => (!of_family(n, fam).is_empty()).then(|| {
                vec![defs.network(
                    "host:dhcp-servers",
                    "dhcp_servers",
                    n.clone(),
                    "the site's DHCP servers".into(),
                )]
            }),
        };
        if let Some(addrs) = addrs {
            let port = |defs: &mut Defs, base: &'static str, p: u16| {
                if let Some(n) = defs.host_services.get(base) {
                    return n.clone();
                }
                let name = defs.name(base);
                defs.host_services.insert(base, name.clone());
                defs.services.push((
                    name.clone(),
                    Proto::Udp,
                    vec![ringfence_site::PortRange::single(p)],
                ));
                name
            };
            let server = port(defs, "dhcp_server", 67);
            let client = port(defs, "dhcp_client", 68);
            let mut body = String::new();
            if input {
                let _ = writeln!(body, "        comment: \"host: dhcp client replies\"");
                if !addrs.is_empty() {
                    let _ = writeln!(body, "        source-address: {}", addrs.join(" "));
                }
                let _ = writeln!(body, "        protocol: udp");
                let _ = writeln!(body, "        source-port: {server}");
                let _ = writeln!(body, "        destination-port: {client}");
            } else {
                let _ = writeln!(body, "        comment: \"host: dhcp client requests\"");
                let _ = writeln!(body, "        protocol: udp");
                let _ = writeln!(body, "        source-port: {client}");
                let _ = writeln!(body, "        destination-port: {server}");
            }
            let _ = writeln!(body, "        action: accept");
            out.push(("host-dhcp", body));
        }
    }
    out
}

/// The service name of a flow's ports for one protocol, defined on first use.
fn service_name(
    defs: &mut Defs,
    service_names: &mut BTreeMap<(String, Proto), String>,
    flow: &str,
    p: Proto,
    ranges: &[ringfence_site::PortRange],
) -> String {
    let key = (flow.to_string(), p);
    if let Some(s) = service_names.get(&key) {
        return s.clone();
    }
    let s = defs.name(&format!("{flow}_{}", p.name()));
    defs.services.push((s.clone(), p, ranges.to_vec()));
    service_names.insert(key, s.clone());
    s
}

/// Render the policies and naming definitions.
pub fn render(plan: &Plan, opts: &Options) -> Vec<OutputFile> {
    let site = crate::plan::sanitize(&plan.site);
    let mut defs = Defs {
        networks: Vec::new(),
        network_index: BTreeMap::new(),
        services: Vec::new(),
        taken: Default::default(),
        host_services: BTreeMap::new(),
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
