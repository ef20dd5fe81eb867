//! nftables: one `nft -f` script with its own `inet` table.
//!
//! Each zone becomes a named interval set per address family
//! (`zone_<name>_v4`, `zone_<name>_v6`), so a site with thousands of workload
//! networks still has one rule per flow and family. Flows that open each
//! network only to itself use a concatenated interval set of
//! `network . network` pairs (`same_<flow>_v4`), matched with
//! `ip saddr . ip daddr`. The base chain drops by default and accepts replies
//! (`ct state established,related`) first. Loading the script replaces the
//! table atomically (`table` + `delete table` + definition in one batch).

use crate::plan::{
    sanitize, unique_names, FlowPlan, Plan, Ports, Proto, Services, Shape, Side, Verdict,
    HOST_ICMP, HOST_ICMPV6,
};
use crate::{header_lines, Family, Hook, Options, OutputFile};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The table every generated script owns.
pub const TABLE: &str = "ringfence";

/// nft rejects comments longer than this many bytes.
const MAX_COMMENT: usize = 128;

fn fam_suffix(f: Family) -> &'static str {
    match f {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

fn addr_type(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    }
}

fn addr_kw(f: Family) -> &'static str {
    match f {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

fn ident(s: &str) -> String {
    sanitize(s).replace('-', "_")
}

fn comment(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| if c == '"' || c.is_control() { '_' } else { c })
        .collect();
    let mut out = String::new();
    for c in clean.chars() {
        if out.len() + c.len_utf8() > MAX_COMMENT {
            break;
        }
        out.push(c);
    }
    format!("comment \"{out}\"")
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn set_block(out: &mut String, name: &str, ty: &str, elements: &[String]) {
    let _ = writeln!(out, "\tset {name} {{");
    let _ = writeln!(out, "\t\ttype {ty}");
    let _ = writeln!(out, "\t\tflags interval");
    let _ = writeln!(out, "\t\telements = {{");
    for (i, e) in elements.iter().enumerate() {
        let sep = if i + 1 == elements.len() { "" } else { "," };
        let _ = writeln!(out, "\t\t\t{e}{sep}");
    }
    let _ = writeln!(out, "\t\t}}");
    let _ = writeln!(out, "\t}}");
}

fn anon(nets: &[IpNet]) -> String {
    if nets.len() == 1 {
        nets[0].to_string()
    } else {
        let items: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
        format!("{{ {} }}", items.join(", "))
    }
}

fn port_list(ranges: &[ringfence_site::PortRange]) -> String {
    let items: Vec<String> = ranges
        .iter()
        .map(|r| {
            if r.first == r.last {
                r.first.to_string()
            } else {
                format!("{}-{}", r.first, r.last)
            }
        })
        .collect();
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

/// The service matches of a flow, one string per rule (empty: no match).
fn service_matches(services: &Services, fam: Option<Family>) -> Vec<String> {
    match services {
        Services::Any => vec![String::new()],
        Services::Protocols(ps) => ps
            .iter()
            .map(|(p, ports)| match (p, ports) {
                (Proto::Icmp, _) => match fam {
                    Some(Family::V4) => "meta l4proto icmp".to_string(),
                    Some(Family::V6) => "meta l4proto ipv6-icmp".to_string(),
                    None => "meta l4proto { icmp, ipv6-icmp }".to_string(),
                },
                (p, Ports::Any) => format!("meta l4proto {}", p.name()),
                (p, Ports::List(r)) => format!("{} dport {}", p.name(), port_list(r)),
            })
            .collect(),
    }
}

struct Names {
    zone: BTreeMap<String, String>,
    flow: BTreeMap<String, String>,
}

fn names(plan: &Plan) -> Names {
    let zone_keys: Vec<&str> = plan.zones.keys().map(String::as_str).collect();
    let zone_names = unique_names(zone_keys.iter().copied(), 200, |z| {
        format!("zone_{}", ident(z))
    });
    let flow_names = unique_names(plan.flows.iter().map(|f| f.id.as_str()), 200, |f| {
        format!("same_{}", ident(f))
    });
    Names {
        zone: zone_keys
            .iter()
            .map(|z| z.to_string())
            .zip(zone_names)
            .collect(),
        flow: plan
            .flows
            .iter()
            .map(|f| f.id.clone())
            .zip(flow_names)
            .collect(),
    }
}

/// The address matches of one side in family `fam` (`None`: any address).
fn side_matches(
    plan: &Plan,
    names: &Names,
    side: &Side,
    fam: Family,
    dir: &str,
) -> Vec<Option<String>> {
    let kw = addr_kw(fam);
    match side {
        Side::Any => vec![None],
        Side::Zones(zs) => zs
            .iter()
            .filter(|z| !plan.zone_nets(z, fam).is_empty())
            .map(|z| Some(format!("{kw} {dir} @{}_{}", names.zone[z], fam_suffix(fam))))
            .collect(),
        Side::Nets(n) => {
            let nets = crate::plan::of_family(n, fam);
            if nets.is_empty() {
                vec![]
            } else {
                vec![Some(format!("{kw} {dir} {}", anon(&nets)))]
            }
        }
    }
}

fn rule_line(out: &mut String, parts: &[&str], verdict: Verdict, id: &str) {
    let v = match verdict {
        Verdict::Accept => "accept",
        Verdict::Drop => "drop",
    };
    let mut line = String::from("\t\t");
    for p in parts.iter().filter(|p| !p.is_empty()) {
        line.push_str(p);
        line.push(' ');
    }
    let _ = writeln!(out, "{line}{v} {}", comment(id));
}

fn flow_rules(out: &mut String, plan: &Plan, names: &Names, flow: &FlowPlan, opts: &Options) {
    let families: Vec<Family> = plan
        .flow_families(flow)
        .into_iter()
        .filter(|f| opts.families().contains(f))
        .collect();
    if families.is_empty() {
        return;
    }
    let _ = writeln!(out, "\t\t# {}: {}", flow.id, one_line(&flow.purpose));
    match &flow.shape {
        Shape::Pairs {
            src: Side::Any,
            dst: Side::Any,
        } => {
            // No address match: one rule serves both families.
            let fam_match = match opts.family {
                Some(Family::V4) => "meta nfproto ipv4",
                Some(Family::V6) => "meta nfproto ipv6",
                None => "",
            };
            for svc in service_matches(&flow.services, opts.family) {
                rule_line(out, &[fam_match, &svc], flow.verdict, &flow.id);
            }
        }
        Shape::Pairs { src, dst } => {
            for fam in families {
                for s in side_matches(plan, names, src, fam, "saddr") {
                    for d in side_matches(plan, names, dst, fam, "daddr") {
                        for svc in service_matches(&flow.services, Some(fam)) {
                            rule_line(
                                out,
                                &[s.as_deref().unwrap_or(""), d.as_deref().unwrap_or(""), &svc],
                                flow.verdict,
                                &flow.id,
                            );
                        }
                    }
                }
            }
        }
        Shape::SameNetwork(_) => {
            for fam in families {
                let kw = addr_kw(fam);
                let m = format!(
                    "{kw} saddr . {kw} daddr @{}_{}",
                    names.flow[&flow.id],
                    fam_suffix(fam)
                );
                for svc in service_matches(&flow.services, Some(fam)) {
                    rule_line(out, &[&m, &svc], flow.verdict, &flow.id);
                }
            }
        }
    }
}

/// What a host firewall (input or output hook) passes before the flows so
/// the host keeps working: loopback, ICMPv6 neighbour discovery, multicast
/// listener discovery and path errors, ICMP path errors, and DHCP client
/// traffic when the site has DHCP servers.
fn host_rules(out: &mut String, plan: &Plan, names: &Names, opts: &Options) {
    let input = opts.hook == Hook::Input;
    let fams = opts.families();
    let _ = writeln!(
        out,
        "\t\t# host: what this host needs whatever the flows say"
    );
    let lo = if input { "iifname" } else { "oifname" };
    let _ = writeln!(out, "\t\t{lo} \"lo\" accept comment \"host: loopback\"");
    if fams.contains(&Family::V6) {
        let types: Vec<&str> = HOST_ICMPV6.iter().map(|(_, n)| *n).collect();
        let _ = writeln!(
            out,
            "\t\ticmpv6 type {{ {} }} accept comment \"host: icmpv6 neighbour discovery, multicast listeners, path errors\"",
            types.join(", ")
        );
    }
    if fams.contains(&Family::V4) {
        let types: Vec<&str> = HOST_ICMP.iter().map(|(_, n)| *n).collect();
        let _ = writeln!(
            out,
            "\t\ticmp type {{ {} }} accept comment \"host: icmp path errors\"",
            types.join(", ")
        );
        if let Some(servers) = &plan.dhcp_servers {
            if input {
                // Replies from the DHCP servers to the client port.
                for s in side_matches(plan, names, servers, Family::V4, "saddr") {
                    rule_line(
                        out,
                        &[s.as_deref().unwrap_or(""), "udp sport 67 udp dport 68"],
                        Verdict::Accept,
                        "host: dhcp client replies",
                    );
                }
            } else {
                // Discovery goes to the broadcast address, not to a server.
                rule_line(
                    out,
                    &["udp sport 68 udp dport 67"],
                    Verdict::Accept,
                    "host: dhcp client requests",
                );
            }
        }
    }
}

/// Render the nftables script.
pub fn render(plan: &Plan, opts: &Options) -> Vec<OutputFile> {
    let names = names(plan);
    let families = opts.families();
    let mut out = String::from("#!/usr/sbin/nft -f\n");
    for l in header_lines(plan, "nftables ruleset") {
        let _ = writeln!(out, "# {l}");
    }
    let _ = writeln!(
        out,
        "# Load with `nft -f FILE`: the batch replaces table inet {TABLE} atomically.\n"
    );
    let _ = writeln!(out, "table inet {TABLE}");
    let _ = writeln!(out, "delete table inet {TABLE}\n");
    let _ = writeln!(out, "table inet {TABLE} {{");

    // Zone sets, per family, only where the zone has networks of that family.
    for (zone, nets) in &plan.zones {
        for &fam in &families {
            let elems: Vec<String> = crate::plan::of_family(nets, fam)
                .iter()
                .map(|n| n.to_string())
                .collect();
            if elems.is_empty() {
                continue;
            }
            let name = format!("{}_{}", names.zone[zone], fam_suffix(fam));
            let _ = writeln!(out, "\t# zone {zone}");
            set_block(&mut out, &name, addr_type(fam), &elems);
        }
    }
    // Network-to-itself pair sets.
    for flow in &plan.flows {
        if let Shape::SameNetwork(nets) = &flow.shape {
            for &fam in &families {
                let elems: Vec<String> = crate::plan::of_family(nets, fam)
                    .iter()
                    .map(|n| format!("{n} . {n}"))
                    .collect();
                if elems.is_empty() {
                    continue;
                }
                let name = format!("{}_{}", names.flow[&flow.id], fam_suffix(fam));
                let ty = format!("{0} . {0}", addr_type(fam));
                let _ = writeln!(out, "\t# {}: each network only to itself", flow.id);
                set_block(&mut out, &name, &ty, &elems);
            }
        }
    }

    let hook = opts.hook.nft_name();
    let _ = writeln!(out, "\tchain {hook} {{");
    let _ = writeln!(
        out,
        "\t\ttype filter hook {hook} priority filter; policy drop;"
    );
    let _ = writeln!(
        out,
        "\t\tct state established,related accept comment \"replies to allowed flows\""
    );
    if opts.hook != Hook::Forward {
        host_rules(&mut out, plan, &names, opts);
    }
    for flow in &plan.flows {
        flow_rules(&mut out, plan, &names, flow, opts);
    }
    let _ = writeln!(
        out,
        "\t\t# {}: {} (the chain's policy drop)",
        plan.default_deny.id,
        one_line(&plan.default_deny.purpose)
    );
    let _ = writeln!(out, "\t}}");
    let _ = writeln!(out, "}}");
    vec![OutputFile {
        path: format!("{}.nft", sanitize(&plan.site)),
        role: "nftables".into(),
        contents: out,
    }]
}
