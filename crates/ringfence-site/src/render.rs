//! Rendering resolved flows as an aligned table, Markdown, CSV or JSON.
//!
//! JSON is the stable machine format documented in `docs/flows-json.md`.
//!
//! Flows the site shaped are marked in every format: a narrowed flow's
//! purpose ends with `[narrowed by the site: sources were workload]` (its
//! diagram edges with `[narrowed]`), and each disabled flow is a row whose
//! action is `disabled` after the other rows (a comment in DOT and Mermaid).
//! See docs/site.md.

use crate::resolve::{FlowAction, ResolvedFlow, ResolvedSite};
use crate::shape::DisabledFlow;

/// Output formats of `ringfence flows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowFormat {
    /// Aligned columns for a terminal.
    Table,
    /// A GitHub-flavoured Markdown table.
    Markdown,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// Stable JSON (see docs/flows-json.md).
    Json,
    /// A Graphviz digraph: zones as nodes, flows as labelled edges.
    Dot,
    /// A Mermaid flowchart, for Markdown renderers that draw diagrams.
    Mermaid,
}

/// One diagram edge: source zone, destination zone, label (flow id and services), deny?
fn edges(site: &ResolvedSite) -> Vec<(String, String, String, bool)> {
    let mut out = Vec::new();
    for f in &site.flows {
        for s in &f.source_zones {
            for (i, d) in f.destination_zones.iter().enumerate() {
                if f.same_network && s != d {
                    continue;
                }
                // Each destination with the services it receives.
                let services = match f.destination_services.get(i) {
                    Some(ds) => join_services(&ds.services),
                    None => join_services(&f.services),
                };
                let mark = if f.narrowed.is_some() {
                    " [narrowed]"
                } else {
                    ""
                };
                out.push((
                    s.clone(),
                    d.clone(),
                    format!("{} ({services}){mark}", f.id),
                    f.action == FlowAction::Deny,
                ));
            }
        }
    }
    out
}

fn join_services(services: &[crate::resolve::Service]) -> String {
    services
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A flow's services cell: the services, or, when its destinations receive
/// different services, `zone: services` per destination (`dns: udp/53
/// tcp/53; ntp: udp/123`).
fn services_cell(f: &ResolvedFlow) -> String {
    if f.destination_services.is_empty() {
        return join_services(&f.services);
    }
    f.destination_services
        .iter()
        .map(|d| format!("{}: {}", d.zone, join_services(&d.services)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A node name that is safe in both DOT and Mermaid.
fn node_id(zone: &str) -> String {
    zone.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
}

/// Every zone that an edge starts or ends at, sorted, once each.
fn zones_of(edges: &[(String, String, String, bool)]) -> Vec<String> {
    let mut nodes: Vec<String> = edges
        .iter()
        .flat_map(|e| [e.0.clone(), e.1.clone()])
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

fn render_dot(site: &ResolvedSite) -> String {
    let mut out = format!(
        "// Flows for site {} (catalog {})\ndigraph flows {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n",
        site.site, site.catalog
    );
    let edges = edges(site);
    let nodes = zones_of(&edges);
    for n in &nodes {
        out.push_str(&format!(
            "  {} [label=\"{}\"];\n",
            node_id(n),
            n.replace('"', "'")
        ));
    }
    for (s, d, label, deny) in edges {
        let style = if deny {
            ", style=dashed, color=gray40"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {} -> {} [label=\"{}\"{style}];\n",
            node_id(&s),
            node_id(&d),
            label.replace('"', "'")
        ));
    }
    for d in &site.disabled {
        out.push_str(&format!("  // disabled by the site: {}\n", d.id));
    }
    out.push_str("}\n");
    out
}

fn render_mermaid(site: &ResolvedSite) -> String {
    let mut out = format!(
        "%% Flows for site {} (catalog {})\nflowchart LR\n",
        site.site, site.catalog
    );
    let edges = edges(site);
    let nodes = zones_of(&edges);
    for n in &nodes {
        out.push_str(&format!("  {}[\"{}\"]\n", node_id(n), n.replace('"', "'")));
    }
    for (s, d, label, deny) in edges {
        let arrow = if deny { "-.->" } else { "-->" };
        out.push_str(&format!(
            "  {} {arrow}|\"{}\"| {}\n",
            node_id(&s),
            label.replace('"', "'"),
            node_id(&d)
        ));
    }
    for d in &site.disabled {
        out.push_str(&format!("  %% disabled by the site: {}\n", d.id));
    }
    out
}

/// One flow as display strings: id, sources, destinations, services, action, purpose.
fn cells(f: &ResolvedFlow) -> [String; 6] {
    let join = |v: &[ipnet::IpNet]| {
        v.iter()
            .map(|n| match n {
                ipnet::IpNet::V4(x) if x.prefix_len() == 32 => x.addr().to_string(),
                ipnet::IpNet::V6(x) if x.prefix_len() == 128 => x.addr().to_string(),
                _ => n.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut dst = join(&f.destinations);
    if f.same_network {
        dst = "(same network)".to_string();
    }
    [
        f.id.clone(),
        join(&f.sources),
        dst,
        services_cell(f),
        match f.action {
            FlowAction::Allow => "allow".into(),
            FlowAction::Deny => "deny".into(),
        },
        match &f.narrowed {
            Some(n) => format!("{} [narrowed by the site: {}]", f.purpose, n.describe()),
            None => f.purpose.clone(),
        },
    ]
}

/// A disabled flow as display strings; `none` fills the address and
/// service cells (`-` for people, empty in CSV).
fn disabled_cells(d: &DisabledFlow, none: &str) -> [String; 6] {
    [
        d.id.clone(),
        none.to_string(),
        none.to_string(),
        none.to_string(),
        "disabled".to_string(),
        d.purpose.clone(),
    ]
}

const HEADERS: [&str; 6] = [
    "ID",
    "SOURCES",
    "DESTINATIONS",
    "SERVICES",
    "ACTION",
    "PURPOSE",
];

/// Render in the chosen format. Output always ends with a newline.
pub fn render(site: &ResolvedSite, format: FlowFormat) -> String {
    match format {
        FlowFormat::Dot => render_dot(site),
        FlowFormat::Mermaid => render_mermaid(site),
        FlowFormat::Json => {
            let mut s = serde_json::to_string_pretty(site).expect("resolved sites serialize");
            s.push('\n');
            s
        }
        FlowFormat::Csv => {
            let mut out = String::new();
            let row = |c: &[String]| {
                c.iter()
                    .map(|v| {
                        if v.contains([',', '"', '\n']) {
                            format!("\"{}\"", v.replace('"', "\"\""))
                        } else {
                            v.clone()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            };
            out.push_str(&row(&HEADERS.map(|h| h.to_ascii_lowercase())));
            out.push('\n');
            for f in &site.flows {
                out.push_str(&row(&cells(f)));
                out.push('\n');
            }
            for d in &site.disabled {
                out.push_str(&row(&disabled_cells(d, "")));
                out.push('\n');
            }
            out
        }
        FlowFormat::Markdown => {
            let mut out = format!(
                "Flows for site `{}` (catalog {})\n\n| {} |\n|{}\n",
                site.site,
                site.catalog,
                HEADERS.join(" | "),
                "---|".repeat(HEADERS.len())
            );
            let rows = site
                .flows
                .iter()
                .map(cells)
                .chain(site.disabled.iter().map(|d| disabled_cells(d, "-")));
            for c in rows {
                let c = c.map(|v| v.replace('|', "\\|"));
                let mut row = c.clone();
                row[0] = format!("`{}`", c[0]);
                out.push_str(&format!("| {} |\n", row.join(" | ")));
            }
            out
        }
        FlowFormat::Table => {
            let rows: Vec<[String; 6]> = site
                .flows
                .iter()
                .map(cells)
                .chain(site.disabled.iter().map(|d| disabled_cells(d, "-")))
                .collect();
            // The purpose column is last and not padded.
            let mut widths = [0usize; 5];
            for (i, h) in HEADERS.iter().take(5).enumerate() {
                widths[i] = h.len();
            }
            for r in &rows {
                for i in 0..5 {
                    widths[i] = widths[i].max(r[i].chars().count());
                }
            }
            let line = |c: [&str; 6]| {
                let mut s = String::new();
                for i in 0..5 {
                    s.push_str(&format!("{:<w$}  ", c[i], w = widths[i]));
                }
                s.push_str(c[5]);
                s.trim_end().to_string() + "\n"
            };
            let mut out = format!("site {} (catalog {})\n", site.site, site.catalog);
            out.push_str(&line(HEADERS));
            for r in &rows {
                out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
            }
            out
        }
    }
}
