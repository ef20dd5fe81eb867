//! iptables: `iptables-restore` input for IPv4 and `ip6tables-restore` input for IPv6.
//!
//! Each file replaces the `filter` table. The chosen built-in chain
//! (`FORWARD` by default) has policy DROP, accepts replies
//! (`conntrack --ctstate ESTABLISHED,RELATED`) first, then jumps to one user
//! chain per flow (`rf-<flow id>`). Source networks are matched by the jump
//! rules and destinations and services inside the flow's chain, so a flow
//! costs |sources| + |destinations| × |port groups| rules, never a cross
//! product. Flows that open each network only to itself hold one
//! `-s N -d N` rule per network. Port lists use `-m multiport` (at most 15
//! values per match, a range counting 2). Every rule carries
//! `-m comment --comment <flow id>`. Source and destination networks of a
//! side are merged into the fewest CIDR blocks first (adjacent workload
//! networks collapse into one match); network-to-itself flows never are.

use crate::plan::{
    aggregate, of_family, unique_names, FlowPlan, Plan, Ports, Proto, Services, Shape, Side,
    Verdict, HOST_ICMP, HOST_ICMPV6,
};
use crate::{header_lines, Family, Hook, Options, OutputFile};
use ipnet::IpNet;
use ringfence_site::PortRange;
use std::fmt::Write;

/// iptables chain names hold at most this many characters.
pub const MAX_CHAIN: usize = 28;

/// The most port values one `-m multiport` match takes (a range counts 2).
pub const MULTIPORT_MAX: usize = 15;

/// Split port ranges into groups of at most [`MULTIPORT_MAX`] values.
pub fn multiport_chunks(ranges: &[PortRange]) -> Vec<Vec<PortRange>> {
    let mut out: Vec<Vec<PortRange>> = Vec::new();
    let mut cur: Vec<PortRange> = Vec::new();
    let mut used = 0;
    for r in ranges {
        let cost = if r.first == r.last { 1 } else { 2 };
        if used + cost > MULTIPORT_MAX {
            out.push(std::mem::take(&mut cur));
            used = 0;
        }
        cur.push(*r);
        used += cost;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn port_text(r: &PortRange) -> String {
    if r.first == r.last {
        r.first.to_string()
    } else {
        format!("{}:{}", r.first, r.last)
    }
}

/// The protocol/port matches of a flow, one per rule (empty: any traffic).
fn service_matches(services: &Services, fam: Family) -> Vec<String> {
    match services {
        Services::Any => vec![String::new()],
        Services::Protocols(ps) => {
            let mut out = Vec::new();
            for (p, ports) in ps {
                match (p, ports) {
                    (Proto::Icmp, _) => out.push(match fam {
                        Family::V4 => "-p icmp".to_string(),
                        Family::V6 => "-p ipv6-icmp".to_string(),
                    }),
                    (p, Ports::Any) => out.push(format!("-p {}", p.name())),
                    (p, Ports::List(ranges)) => {
                        for chunk in multiport_chunks(ranges) {
                            let name = p.name();
                            if chunk.len() == 1 {
                                out.push(format!(
                                    "-p {name} -m {name} --dport {}",
                                    port_text(&chunk[0])
                                ));
                            } else {
                                let list: Vec<String> = chunk.iter().map(port_text).collect();
                                out.push(format!(
                                    "-p {name} -m multiport --dports {}",
                                    list.join(",")
                                ));
                            }
                        }
                    }
                }
            }
            out
        }
    }
}

fn quote(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .take(255)
        .collect();
    format!("-m comment --comment \"{clean}\"")
}

/// The networks of a side in family `fam`, merged into the fewest CIDR blocks
/// (iptables matches one block per rule); `None` means any address.
fn side_nets(plan: &Plan, side: &Side, fam: Family) -> Option<Vec<IpNet>> {
    match side {
        Side::Any => None,
        Side::Zones(zs) => {
            let all: Vec<IpNet> = zs.iter().flat_map(|z| plan.zone_nets(z, fam)).collect();
            Some(aggregate(&all))
        }
        Side::Nets(n) => Some(aggregate(&of_family(n, fam))),
    }
}

fn line(out: &mut String, parts: &[&str]) {
    let text: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    let _ = writeln!(out, "{}", text.join(" "));
}

fn target(v: Verdict) -> &'static str {
    match v {
        Verdict::Accept => "-j ACCEPT",
        Verdict::Drop => "-j DROP",
    }
}

fn flow_rules(
    jumps: &mut String,
    body: &mut String,
    plan: &Plan,
    flow: &FlowPlan,
    chain: &str,
    base: &str,
    fam: Family,
) {
    let c = quote(&flow.id);
    let jump = format!("-j {chain}");
    let add_base = format!("-A {base}");
    let add_chain = format!("-A {chain}");
    let svcs = service_matches(&flow.services, fam);
    match &flow.shape {
        Shape::Pairs { src, dst } => {
            match side_nets(plan, src, fam) {
                None => line(jumps, &[&add_base, &c, &jump]),
                Some(nets) => {
                    for n in nets {
                        line(jumps, &[&add_base, &format!("-s {n}"), &c, &jump]);
                    }
                }
            }
            let dsts: Vec<String> = match side_nets(plan, dst, fam) {
                None => vec![String::new()],
                Some(nets) => nets.iter().map(|n| format!("-d {n}")).collect(),
            };
            for d in &dsts {
                for s in &svcs {
                    line(body, &[&add_chain, d, s, &c, target(flow.verdict)]);
                }
            }
        }
        Shape::SameNetwork(nets) => {
            line(jumps, &[&add_base, &c, &jump]);
            for n in of_family(nets, fam) {
                let m = format!("-s {n} -d {n}");
                for s in &svcs {
                    line(body, &[&add_chain, &m, s, &c, target(flow.verdict)]);
                }
            }
        }
    }
}

/// What a host firewall (input or output hook) passes before the flows so
/// the host keeps working: loopback, ICMPv6 neighbour discovery, multicast
/// listener discovery and path errors (one rule per type), ICMP path errors,
/// and DHCP client traffic when the site has DHCP servers.
fn host_rules(out: &mut String, plan: &Plan, opts: &Options, fam: Family) {
    let input = opts.hook == Hook::Input;
    let base = format!("-A {}", opts.hook.iptables_chain());
    let lo = if input { "-i lo" } else { "-o lo" };
    line(out, &[&base, lo, &quote("host: loopback"), "-j ACCEPT"]);
    match fam {
        Family::V6 => {
            for (t, name) in HOST_ICMPV6 {
                line(
                    out,
                    &[
                        &base,
                        &format!("-p ipv6-icmp -m icmp6 --icmpv6-type {t}"),
                        &quote(&format!("host: icmpv6 {name}")),
                        "-j ACCEPT",
                    ],
                );
            }
        }
        Family::V4 => {
            for (t, name) in HOST_ICMP {
                line(
                    out,
                    &[
                        &base,
                        &format!("-p icmp -m icmp --icmp-type {t}"),
                        &quote(&format!("host: icmp {name}")),
                        "-j ACCEPT",
                    ],
                );
            }
            if let Some(servers) = &plan.dhcp_servers {
                if input {
                    let srcs: Vec<String> = match side_nets(plan, servers, fam) {
                        None => vec![String::new()],
                        Some(nets) => nets.iter().map(|n| format!("-s {n}")).collect(),
                    };
                    for s in &srcs {
                        line(
                            out,
                            &[
                                &base,
                                s,
                                "-p udp -m udp --sport 67 --dport 68",
                                &quote("host: dhcp client replies"),
                                "-j ACCEPT",
                            ],
                        );
                    }
                } else {
                    line(
                        out,
                        &[
                            &base,
                            "-p udp -m udp --sport 68 --dport 67",
                            &quote("host: dhcp client requests"),
                            "-j ACCEPT",
                        ],
                    );
                }
            }
        }
    }
}

/// The restore file for one family.
pub fn render_family(plan: &Plan, opts: &Options, fam: Family) -> String {
    let tool = match fam {
        Family::V4 => "iptables-restore",
        Family::V6 => "ip6tables-restore",
    };
    let base = opts.hook.iptables_chain();
    let flows: Vec<&FlowPlan> = plan
        .flows
        .iter()
        .filter(|f| plan.flow_families(f).contains(&fam))
        .collect();
    let chains = unique_names(flows.iter().map(|f| f.id.as_str()), MAX_CHAIN, |id| {
        format!("rf-{}", crate::plan::sanitize(id))
    });
    let mut out = String::new();
    for l in header_lines(plan, &format!("IPv{} filter table", fam.number())) {
        let _ = writeln!(out, "# {l}");
    }
    let _ = writeln!(
        out,
        "# Load with `{tool} FILE`: it replaces the filter table. Chain {base} drops by default;\n\
         # {} ({}) is that policy.",
        plan.default_deny.id,
        plan.default_deny.purpose.trim()
    );
    let _ = writeln!(out, "*filter");
    for h in [Hook::Input, Hook::Forward, Hook::Output] {
        let policy = if h == opts.hook { "DROP" } else { "ACCEPT" };
        let _ = writeln!(out, ":{} {policy} [0:0]", h.iptables_chain());
    }
    for c in &chains {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    let _ = writeln!(
        out,
        "-A {base} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"replies to allowed flows\" -j ACCEPT"
    );
    if opts.hook != Hook::Forward {
        host_rules(&mut out, plan, opts, fam);
    }
    let mut bodies = String::new();
    for (flow, chain) in flows.iter().zip(&chains) {
        let mut body = String::new();
        flow_rules(&mut out, &mut body, plan, flow, chain, base, fam);
        let _ = writeln!(
            bodies,
            "# {}: {}",
            flow.id,
            flow.purpose
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
        bodies.push_str(&body);
    }
    out.push_str(&bodies);
    let _ = writeln!(out, "COMMIT");
    out
}

/// Render one file per family (or only `opts.family`).
pub fn render(plan: &Plan, opts: &Options) -> Vec<OutputFile> {
    let site = crate::plan::sanitize(&plan.site);
    opts.families()
        .into_iter()
        .map(|fam| OutputFile {
            path: format!("{site}.v{}.rules", fam.number()),
            role: format!("ipv{}", fam.number()),
            contents: render_family(plan, opts, fam),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiport_chunks_count_a_range_as_two_values() {
        let r = |a: u16, b: u16| PortRange { first: a, last: b };
        let mut ranges: Vec<PortRange> = (1..=14).map(|p| r(p, p)).collect();
        ranges.push(r(100, 200));
        ranges.push(r(300, 300));
        let chunks = multiport_chunks(&ranges);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].len(), 14);
        assert_eq!(chunks[1], vec![r(100, 200), r(300, 300)]);
    }
}
