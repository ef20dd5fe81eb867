//! Joining the inputs into the report's data (what the templates show).

use crate::cis::{CisDoc, CisInput};
use crate::lab::{verdict, LabInput};
use crate::palette::{Kind, Palette};
use ipnet::IpNet;
use ringfence_analysis::verify::{ExamplePacket, Region, Status, VerifyReport};
use ringfence_site::{FlowAction, ResolvedFlow, ResolvedSite, Site};
use serde::Serialize;
use std::net::IpAddr;

/// A ruleset that was verified, with its text (to quote the rules).
#[derive(Debug, Clone, Copy)]
pub struct RulesetInput<'a> {
    /// The verify report.
    pub verify: &'a VerifyReport,
    /// The ruleset file's text.
    pub text: &'a str,
    /// Its format, as detected or given.
    pub format: &'a str,
}

/// Everything a report is made of.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The site.
    pub site: &'a Site,
    /// The site file name as shown (`(embedded example)` for the example).
    pub site_file: String,
    /// The verified ruleset, if any.
    pub ruleset: Option<RulesetInput<'a>>,
    /// CIS results.
    pub cis: Vec<CisInput>,
    /// Lab results.
    pub lab: Option<LabInput>,
    /// When the report was made (shown as given).
    pub generated: String,
    /// The ringfence version.
    pub version: String,
    /// Whether this is the embedded example (the header says so and lists its defects).
    pub example: bool,
}

/// The report's header.
#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    /// Site name.
    pub site: String,
    /// Site file.
    pub site_file: String,
    /// Catalog.
    pub catalog: String,
    /// TKG version of the site.
    pub tkg_version: String,
    /// Ruleset file (`null` without one).
    pub ruleset: Option<String>,
    /// Ruleset format.
    pub ruleset_format: Option<String>,
    /// Hook checked.
    pub hook: Option<String>,
    /// ringfence version.
    pub version: String,
    /// Generation time.
    pub generated: String,
    /// CIS input files.
    pub cis_files: Vec<String>,
    /// Lab input file.
    pub lab_file: Option<String>,
    /// The embedded example?
    pub example: bool,
    /// The example's deliberate defects (empty otherwise).
    pub defects: Vec<String>,
}

/// A rule reference with its text, when the ruleset file has it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    /// `file:line` or the parser's reference.
    pub reference: String,
    /// The rule's line in the ruleset, trimmed.
    pub text: Option<String>,
}

/// One required flow.
#[derive(Debug, Clone, Serialize)]
pub struct FlowView {
    /// Catalog id.
    pub id: String,
    /// Anchor id.
    pub anchor: String,
    /// Why the flow exists.
    pub purpose: String,
    /// Cell kind of the flow (`ok`, `partial`, `blocked`, `unknown`, `required`).
    pub kind: Kind,
    /// New connections (`allowed`, ...), `null` without a ruleset.
    pub status: Option<String>,
    /// Replies.
    pub replies: Option<String>,
    /// Services (`tcp/6443`).
    pub services: Vec<String>,
    /// Source zones.
    pub source_zones: Vec<String>,
    /// Destination zones.
    pub destination_zones: Vec<String>,
    /// Source networks.
    pub sources: Vec<String>,
    /// Destination networks.
    pub destinations: Vec<String>,
    /// A packet of the flow that is not accepted.
    pub example: Option<String>,
    /// Rules deciding new connections.
    pub rules: Vec<RuleView>,
    /// Rules deciding replies.
    pub reply_rules: Vec<RuleView>,
    /// Whether the flow is fine.
    pub ok: bool,
}

/// One region accepted beyond the required flows.
#[derive(Debug, Clone, Serialize)]
pub struct RegionView {
    /// Anchor id.
    pub anchor: String,
    /// Sources.
    pub sources: Vec<String>,
    /// Destinations.
    pub destinations: Vec<String>,
    /// Protocol.
    pub protocol: String,
    /// Destination ports.
    pub ports: String,
    /// Source ports, when restricted.
    pub source_ports: Option<String>,
    /// Zones of the sources (overlapping).
    pub source_zones: Vec<String>,
    /// Zones of the destinations.
    pub destination_zones: Vec<String>,
    /// Accepting rules.
    pub rules: Vec<RuleView>,
    /// An example packet in the region.
    pub example: String,
}

/// A matrix cell.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Source zone.
    pub src: String,
    /// Destination zone.
    pub dst: String,
    /// Kind.
    pub kind: Kind,
    /// Anchor of its drill-down (`null` for empty cells).
    pub anchor: Option<String>,
    /// Required flows in the cell.
    pub flows: Vec<String>,
    /// Excess regions touching the cell (indexes into `excess`).
    pub excess: Vec<usize>,
    /// Required flows and also something extra.
    pub also_excess: bool,
}

/// A matrix row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Source zone.
    pub zone: String,
    /// Cells, one per destination zone.
    pub cells: Vec<Cell>,
}

/// A shadowed or redundant rule.
#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    /// The rule.
    pub rule: RuleView,
    /// Its chain.
    pub chain: String,
    /// The rules responsible.
    pub by: Vec<RuleView>,
    /// For a shadowed rule not judged in its own chain: why it never
    /// matches (dead in context, or its chain is never reached).
    pub why: Option<String>,
}

/// Top-of-page counts.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Whether a ruleset was checked.
    pub checked: bool,
    /// Required flows.
    pub flows: usize,
    /// Fine (new connections and replies allowed).
    pub ok: usize,
    /// Partly blocked (or replies blocked).
    pub partial: usize,
    /// Blocked.
    pub blocked: usize,
    /// Unknown.
    pub unknown: usize,
    /// Excess regions.
    pub excess: usize,
    /// Whether the excess list is complete.
    pub excess_complete: bool,
    /// Shadowed rules.
    pub shadowed: usize,
    /// Redundant rules.
    pub redundant: usize,
    /// Default deny on the hook.
    pub default_deny: Option<bool>,
    /// Firewall clean?
    pub firewall_ok: Option<bool>,
    /// CIS nodes.
    pub cis_nodes: usize,
    /// CIS expected failures, summed.
    pub cis_expected_fail: usize,
    /// CIS unexpected failures, summed.
    pub cis_unexpected_fail: usize,
    /// CIS checks not assessed (evidence absent or unreadable), summed.
    pub cis_not_assessed: usize,
    /// CIS checks that pass although the profile lists them as expected
    /// failures (stale profile entries), summed.
    pub cis_fixed: usize,
    /// CIS waivers past their expiry date, summed; each fails its node.
    pub cis_expired_waivers: usize,
    /// Nodes with unexpected failures or expired waivers.
    pub cis_nodes_failing: usize,
    /// Lab probes.
    pub lab_probes: usize,
    /// Lab probes where kernel and prediction differ.
    pub lab_mismatches: usize,
    /// Everything clean.
    pub all_ok: bool,
}

/// One CIS check in a node's lists.
#[derive(Debug, Clone, Serialize)]
pub struct CisCheckView {
    /// Check id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Observed.
    pub actual: Option<String>,
    /// Wanted.
    pub wanted: Option<String>,
    /// Remediation.
    pub remediation: String,
    /// Why a failure is accepted (profile or waiver).
    pub covered_by: Option<String>,
}

/// One node's CIS results.
#[derive(Debug, Clone, Serialize)]
pub struct CisNodeView {
    /// Node name.
    pub name: String,
    /// Anchor.
    pub anchor: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Kubernetes version.
    pub kubernetes_version: Option<String>,
    /// Benchmark.
    pub benchmark: String,
    /// Profile.
    pub profile: Option<String>,
    /// Input file.
    pub file: String,
    /// Counts.
    pub counts: crate::cis::Counts,
    /// Unexpected failures.
    pub unexpected: Vec<CisCheckView>,
    /// Expected failures.
    pub expected: Vec<CisCheckView>,
    /// Checks whose evidence was absent or unreadable (neither pass nor
    /// fail).
    pub not_assessed: Vec<CisCheckView>,
    /// Passing checks the profile still lists as expected failures: stale
    /// profile entries.
    pub fixed: Vec<CisCheckView>,
    /// Waivers past their expiry date; each one fails the node.
    pub expired_waivers: Vec<crate::cis::ExpiredWaiver>,
    /// Clean (no unexpected failure and no expired waiver)?
    pub ok: bool,
    /// Kind of the node's verdict.
    pub kind: Kind,
    /// From a fleet file (only counts and unexpected ids known).
    pub from_fleet: bool,
}

/// One lab probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeView {
    /// Flow id.
    pub flow: String,
    /// `proto src -> dst:port`.
    pub packet: String,
    /// Kernel verdict word.
    pub kernel: String,
    /// Predicted verdict word.
    pub predicted: String,
    /// Required?
    pub required: Option<bool>,
    /// Kernel and prediction agree?
    pub agree: bool,
    /// Kind (ok when the kernel matches what the site requires).
    pub kind: Kind,
}

/// The report's data.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Header.
    pub meta: Meta,
    /// Counts.
    pub summary: Summary,
    /// Palette (colours, symbols, words).
    pub palette: Palette,
    /// Matrix columns (destination zones).
    pub columns: Vec<String>,
    /// Matrix rows.
    pub rows: Vec<Row>,
    /// Non-empty cells, row by row (drill-downs).
    pub cells: Vec<Cell>,
    /// Required flows.
    pub flows: Vec<FlowView>,
    /// Deny rows of the site (the scope of the excess check).
    pub deny_flows: Vec<String>,
    /// Excess regions.
    pub excess: Vec<RegionView>,
    /// Shadowed rules.
    pub shadowed: Vec<FindingView>,
    /// Redundant rules.
    pub redundant: Vec<FindingView>,
    /// Parser notes.
    pub notes: Vec<String>,
    /// CIS nodes.
    pub cis: Vec<CisNodeView>,
    /// Lab probes.
    pub lab: Vec<ProbeView>,
    /// Zone addresses.
    pub zones: Vec<(String, Vec<String>)>,
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Allowed => "allowed",
        Status::Partial => "partial",
        Status::Blocked => "blocked",
        Status::Unknown => "unknown",
        Status::Redirected => "redirected",
    }
}

/// An anchor-safe id.
fn slug(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("--")
}

fn first_host(n: &IpNet) -> IpNet {
    match n {
        IpNet::V4(v) if v.prefix_len() < 31 => IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(
            u32::from(v.network()) + 1,
        ))),
        IpNet::V6(v) if v.prefix_len() < 127 => IpNet::from(IpAddr::from(
            std::net::Ipv6Addr::from(u128::from(v.network()) + 1),
        )),
        n => *n,
    }
}

/// Address ranges (family, first, last) of a zone label.
fn label_ranges(site: &Site, label: &str) -> Vec<(bool, u128, u128)> {
    let nets: Vec<IpNet> = match label {
        "any" => vec![
            "0.0.0.0/0".parse().expect("net"),
            "::/0".parse().expect("net"),
        ],
        "cluster_cidr" => site.tkg.cluster_cidrs(),
        "cluster_cidr.first_host" => site.tkg.cluster_cidrs().iter().map(first_host).collect(),
        "service_cidr.first_host" => site.tkg.service_cidrs().iter().map(first_host).collect(),
        z => site.zones.get(z).cloned().unwrap_or_default(),
    };
    nets.iter().map(net_range).collect()
}

fn net_range(n: &IpNet) -> (bool, u128, u128) {
    match n {
        IpNet::V4(v) => (
            true,
            u128::from(u32::from(v.network())),
            u128::from(u32::from(v.broadcast())),
        ),
        IpNet::V6(v) => (false, u128::from(v.network()), u128::from(v.broadcast())),
    }
}

fn addr_num(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(v) => (true, u128::from(u32::from(v))),
        IpAddr::V6(v) => (false, u128::from(v)),
    }
}

/// Ranges of an address string of a verify region (`CIDR` or `a-b`).
fn region_ranges(items: &[String]) -> Vec<(bool, u128, u128)> {
    let mut out = Vec::new();
    for s in items {
        if let Some((a, b)) = s.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
                let (fa, a) = addr_num(a);
                let (_, b) = addr_num(b);
                out.push((fa, a, b));
            }
        } else if let Ok(n) = s.parse::<IpNet>() {
            out.push(net_range(&n));
        } else if let Ok(a) = s.parse::<IpAddr>() {
            let (f, v) = addr_num(a);
            out.push((f, v, v));
        }
    }
    out
}

fn overlaps(a: &[(bool, u128, u128)], b: &[(bool, u128, u128)]) -> bool {
    a.iter()
        .any(|x| b.iter().any(|y| x.0 == y.0 && x.1 <= y.2 && y.1 <= x.2))
}

fn covers_all(a: &[(bool, u128, u128)]) -> bool {
    a.iter()
        .any(|x| x.1 == 0 && x.2 == if x.0 { u128::from(u32::MAX) } else { u128::MAX })
}

/// The zone labels a region side touches: site zones it overlaps, pseudo
/// endpoints it overlaps, `any` only when it covers a whole family.
fn touched(site: &Site, labels: &[String], side: &[String]) -> Vec<String> {
    let r = region_ranges(side);
    labels
        .iter()
        .filter(|l| {
            if l.as_str() == "any" {
                covers_all(&r)
            } else {
                overlaps(&r, &label_ranges(site, l))
            }
        })
        .cloned()
        .collect()
}

fn example_str(e: &ExamplePacket) -> String {
    format!("{} {}:{} → {}:{}", e.proto, e.src, e.sport, e.dst, e.dport)
}

fn first_addr(items: &[String]) -> String {
    let r = region_ranges(items);
    match r.first() {
        Some(&(true, lo, hi)) => {
            let v = if hi > lo + 1 { lo + 1 } else { lo };
            std::net::Ipv4Addr::from(v as u32).to_string()
        }
        Some(&(false, lo, hi)) => {
            let v = if hi > lo + 1 { lo + 1 } else { lo };
            std::net::Ipv6Addr::from(v).to_string()
        }
        None => items.first().cloned().unwrap_or_default(),
    }
}

fn region_example(r: &Region) -> String {
    let port = r
        .ports
        .split(['-', ','])
        .next()
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty())
        .unwrap_or("");
    let dst = first_addr(&r.destinations);
    let dst = if port.is_empty() || r.ports == "any" {
        dst
    } else {
        format!("{dst}:{port}")
    };
    format!("{} {} → {}", r.protocol, first_addr(&r.sources), dst)
}

struct RuleText<'a> {
    name: &'a str,
    lines: Vec<&'a str>,
}

impl RuleText<'_> {
    fn view(&self, reference: &str) -> RuleView {
        let text = reference
            .rsplit_once(':')
            .filter(|(file, _)| *file == self.name)
            .and_then(|(_, line)| line.parse::<usize>().ok())
            .and_then(|n| self.lines.get(n.checked_sub(1)?))
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty());
        RuleView {
            reference: reference.to_string(),
            text,
        }
    }
    fn views(&self, refs: &[String]) -> Vec<RuleView> {
        refs.iter().map(|r| self.view(r)).collect()
    }
}

fn flow_kind(status: Status, replies: Status) -> &'static str {
    match (status, replies) {
        (Status::Allowed, Status::Allowed) => "ok",
        (Status::Blocked, _) => "blocked",
        (Status::Unknown, _) | (_, Status::Unknown) => "unknown",
        _ => "partial",
    }
}

fn zone_order(site: &Site, flows: &[&ResolvedFlow], source: bool) -> Vec<String> {
    let mut out: Vec<String> = site.zones.keys().cloned().collect();
    for f in flows {
        let zs = if source {
            &f.source_zones
        } else {
            &f.destination_zones
        };
        for z in zs {
            if !out.contains(z) {
                out.push(z.clone());
            }
        }
    }
    out
}

/// The palette key of a CIS node's verdict: an unexpected failure outweighs
/// an expired waiver, and either one fails the node.
fn cis_verdict(unexpected_fail: usize, expired_waivers: usize) -> &'static str {
    if unexpected_fail > 0 {
        "unexpected_fail"
    } else if expired_waivers > 0 {
        "expired_waiver"
    } else {
        "pass"
    }
}

/// Join the inputs into the report's data.
pub fn build(inp: &Inputs<'_>) -> Report {
    let palette = Palette::embedded();
    let resolved: ResolvedSite = inp.site.resolve();
    let required: Vec<&ResolvedFlow> = resolved.allowed().collect();
    let kind = |k: &str| palette.cell(k).clone();
    let (vr, rt) = match inp.ruleset {
        Some(r) => (
            Some(r.verify),
            RuleText {
                name: r.verify.ruleset.as_str(),
                lines: r.text.lines().collect(),
            },
        ),
        None => (
            None,
            RuleText {
                name: "",
                lines: vec![],
            },
        ),
    };

    // Flows.
    let flows: Vec<FlowView> = required
        .iter()
        .map(|f| {
            let res = vr.and_then(|v| v.flows.iter().find(|x| x.id == f.id));
            let k = match res {
                Some(x) => flow_kind(x.status, x.replies),
                None => "required",
            };
            FlowView {
                id: f.id.clone(),
                anchor: slug(&["flow", &f.id]),
                purpose: f.purpose.clone(),
                kind: kind(k),
                status: res.map(|x| status_word(x.status).to_string()),
                replies: res.map(|x| status_word(x.replies).to_string()),
                services: f.services.iter().map(ToString::to_string).collect(),
                source_zones: f.source_zones.clone(),
                destination_zones: f.destination_zones.clone(),
                sources: f.sources.iter().map(ToString::to_string).collect(),
                destinations: f.destinations.iter().map(ToString::to_string).collect(),
                example: res.and_then(|x| x.blocked_example.as_ref().map(example_str)),
                rules: res.map(|x| rt.views(&x.rules)).unwrap_or_default(),
                reply_rules: res.map(|x| rt.views(&x.reply_rules)).unwrap_or_default(),
                ok: k == "ok",
            }
        })
        .collect();

    let rows_z = zone_order(inp.site, &required, true);
    let cols_z = zone_order(inp.site, &required, false);
    let all_labels: Vec<String> = {
        let mut v = rows_z.clone();
        for c in &cols_z {
            if !v.contains(c) {
                v.push(c.clone());
            }
        }
        v
    };

    // Excess regions.
    let excess: Vec<RegionView> = vr
        .map(|v| {
            v.excess
                .iter()
                .enumerate()
                .map(|(i, r)| RegionView {
                    anchor: format!("excess-{}", i + 1),
                    sources: r.sources.clone(),
                    destinations: r.destinations.clone(),
                    protocol: r.protocol.clone(),
                    ports: r.ports.clone(),
                    source_ports: r.source_ports.clone(),
                    source_zones: touched(inp.site, &all_labels, &r.sources),
                    destination_zones: touched(inp.site, &all_labels, &r.destinations),
                    rules: rt.views(&r.rules),
                    example: region_example(r),
                })
                .collect()
        })
        .unwrap_or_default();

    // Matrix.
    let mut rows = Vec::new();
    let mut cells = Vec::new();
    for s in &rows_z {
        let mut row = Vec::new();
        for d in &cols_z {
            let in_cell: Vec<&FlowView> = flows
                .iter()
                .zip(&required)
                .filter(|(_, f)| {
                    f.source_zones.contains(s)
                        && f.destination_zones.contains(d)
                        && (!f.same_network || s == d)
                })
                .map(|(v, _)| v)
                .collect();
            let ex: Vec<usize> = excess
                .iter()
                .enumerate()
                .filter(|(_, r)| r.source_zones.contains(s) && r.destination_zones.contains(d))
                .map(|(i, _)| i)
                .collect();
            let k = if in_cell.is_empty() {
                if ex.is_empty() {
                    "none"
                } else {
                    "excess"
                }
            } else {
                let first = in_cell[0].kind.key.as_str();
                if in_cell.iter().all(|f| f.kind.key == first) {
                    first
                } else if in_cell
                    .iter()
                    .all(|f| f.kind.key == "ok" || f.kind.key == "unknown")
                {
                    "unknown"
                } else {
                    "partial"
                }
            };
            let cell = Cell {
                src: s.clone(),
                dst: d.clone(),
                kind: kind(k),
                anchor: (k != "none").then(|| slug(&["cell", s, d])),
                flows: in_cell.iter().map(|f| f.id.clone()).collect(),
                also_excess: !in_cell.is_empty() && !ex.is_empty(),
                excess: ex,
            };
            if k != "none" {
                cells.push(cell.clone());
            }
            row.push(cell);
        }
        rows.push(Row {
            zone: s.clone(),
            cells: row,
        });
    }

    let finding = |f: &ringfence_analysis::verify::RuleFinding| {
        FindingView {
        rule: rt.view(&f.rule),
        chain: f.chain.clone(),
        by: rt.views(&f.by),
        why: f.reason.map(|r| {
            match r {
                ringfence_analysis::verify::DeadReason::Context => {
                    "dead in context: no packet that reaches it from the base chains matches it"
                }
                ringfence_analysis::verify::DeadReason::NeverReached => {
                    "its chain is never reached from a base chain (this stands for all its rules; because of: the jumps to it)"
                }
            }
            .to_string()
        }),
    }
    };
    let shadowed: Vec<FindingView> = vr
        .map(|v| v.shadowed.iter().map(finding).collect())
        .unwrap_or_default();
    let redundant: Vec<FindingView> = vr
        .map(|v| v.redundant.iter().map(finding).collect())
        .unwrap_or_default();

    // CIS.
    let mut cis = Vec::new();
    for c in &inp.cis {
        match &c.doc {
            CisDoc::Node(n) => {
                let mut counts = crate::cis::Counts::default();
                let mut unexpected = Vec::new();
                let mut expected = Vec::new();
                let mut not_assessed = Vec::new();
                let mut fixed = Vec::new();
                for ch in &n.checks {
                    let view = |covered_by: Option<String>| CisCheckView {
                        id: ch.id.clone(),
                        title: ch.title.clone().unwrap_or_default(),
                        actual: ch.actual.clone(),
                        wanted: ch.expected_value.clone(),
                        remediation: ch.remediation.clone().unwrap_or_default(),
                        covered_by,
                    };
                    match ch.status.as_str() {
                        "pass" => {
                            counts.pass += 1;
                            if ch.fixed.unwrap_or(false) {
                                counts.fixed += 1;
                                fixed.push(view(Some(format!(
                                    "profile {}",
                                    n.profile.clone().unwrap_or_else(|| "?".into())
                                ))));
                            }
                        }
                        "warn" => counts.warn += 1,
                        "info" => counts.info += 1,
                        "not-assessed" => {
                            counts.not_assessed += 1;
                            not_assessed.push(view(None));
                        }
                        _ if ch.covered() => {
                            counts.expected_fail += 1;
                            let by = match &ch.waiver {
                                Some(w) if !w.expired && !ch.expected.unwrap_or(false) => {
                                    format!(
                                        "waiver until {} ({}): {}",
                                        w.expires, w.owner, w.reason
                                    )
                                }
                                _ => format!(
                                    "profile {}",
                                    n.profile.clone().unwrap_or_else(|| "?".into())
                                ),
                            };
                            expected.push(view(Some(by)));
                        }
                        _ => {
                            counts.unexpected_fail += 1;
                            unexpected.push(view(None));
                        }
                    }
                }
                let expired_waivers = n.expired_waivers.clone().unwrap_or_default();
                let ok = counts.unexpected_fail == 0 && expired_waivers.is_empty();
                let verdict = cis_verdict(counts.unexpected_fail, expired_waivers.len());
                cis.push(CisNodeView {
                    name: n.node.name.clone(),
                    anchor: slug(&["node", &n.node.name]),
                    roles: n.node.roles.clone().unwrap_or_default(),
                    kubernetes_version: n.node.kubernetes_version.clone(),
                    benchmark: n.benchmark.clone(),
                    profile: n.profile.clone(),
                    file: c.file.clone(),
                    counts,
                    unexpected,
                    expected,
                    not_assessed,
                    fixed,
                    expired_waivers,
                    ok,
                    kind: palette.cis_kind(verdict).clone(),
                    from_fleet: false,
                });
            }
            CisDoc::Fleet(f) => {
                let titles: Vec<(String, String)> = f
                    .checks
                    .iter()
                    .flatten()
                    .map(|c| (c.id.clone(), c.title.clone().unwrap_or_default()))
                    .collect();
                for n in f.nodes.iter().flatten() {
                    let unexpected: Vec<CisCheckView> = n
                        .unexpected
                        .iter()
                        .flatten()
                        .map(|u| CisCheckView {
                            id: u.id.clone(),
                            title: u.title.clone().unwrap_or_else(|| {
                                titles
                                    .iter()
                                    .find(|(i, _)| *i == u.id)
                                    .map(|(_, t)| t.clone())
                                    .unwrap_or_default()
                            }),
                            actual: None,
                            wanted: None,
                            remediation: String::new(),
                            covered_by: None,
                        })
                        .collect();
                    let expired_waivers = n.expired_waivers.clone().unwrap_or_default();
                    let ok = n.counts.unexpected_fail == 0 && expired_waivers.is_empty();
                    let verdict = cis_verdict(n.counts.unexpected_fail, expired_waivers.len());
                    cis.push(CisNodeView {
                        name: n.name.clone(),
                        anchor: slug(&["node", &n.name]),
                        roles: n.roles.clone().unwrap_or_default(),
                        kubernetes_version: n.kubernetes_version.clone(),
                        benchmark: f.benchmark.clone().unwrap_or_default(),
                        profile: n.profile.clone(),
                        file: c.file.clone(),
                        counts: n.counts.clone(),
                        unexpected,
                        expected: vec![],
                        not_assessed: vec![],
                        fixed: vec![],
                        expired_waivers,
                        ok,
                        kind: palette.cis_kind(verdict).clone(),
                        from_fleet: true,
                    });
                }
            }
        }
    }

    // Lab.
    let word = |b: Option<bool>| match b {
        Some(true) => "accepted",
        Some(false) => "blocked",
        None => "unknown",
    };
    let lab: Vec<ProbeView> = inp
        .lab
        .iter()
        .flat_map(|l| l.probes.iter())
        .map(|p| {
            let k = verdict(&p.kernel);
            let pr = p.predicted.as_ref().and_then(verdict);
            let agree = pr.is_none() || pr == k;
            let good = agree && p.required.is_none_or(|r| Some(r) == k);
            let port = p.port.map(|x| format!(":{x}")).unwrap_or_default();
            ProbeView {
                flow: p.flow.clone().unwrap_or_default(),
                packet: format!(
                    "{} {} → {}{}",
                    p.proto.clone().unwrap_or_default(),
                    p.src.clone().unwrap_or_default(),
                    p.dst.clone().unwrap_or_default(),
                    port
                ),
                kernel: word(k).into(),
                predicted: word(pr).into(),
                required: p.required,
                agree,
                kind: kind(if good { "ok" } else { "blocked" }),
            }
        })
        .collect();

    let count = |k: &str| flows.iter().filter(|f| f.kind.key == k).count();
    let firewall_ok = vr.map(|v| v.summary.ok);
    let cis_unexpected: usize = cis.iter().map(|n| n.counts.unexpected_fail).sum();
    let cis_expired: usize = cis.iter().map(|n| n.expired_waivers.len()).sum();
    let lab_mismatches = lab.iter().filter(|p| !p.agree).count();
    let summary = Summary {
        checked: vr.is_some(),
        flows: flows.len(),
        ok: count("ok"),
        partial: count("partial"),
        blocked: count("blocked"),
        unknown: count("unknown"),
        excess: vr.map_or(0, |v| v.summary.excess),
        excess_complete: vr.is_none_or(|v| v.summary.excess_complete),
        shadowed: shadowed.len(),
        redundant: redundant.len(),
        default_deny: vr.map(|v| v.default_deny),
        firewall_ok,
        cis_nodes: cis.len(),
        cis_expected_fail: cis.iter().map(|n| n.counts.expected_fail).sum(),
        cis_unexpected_fail: cis_unexpected,
        cis_not_assessed: cis.iter().map(|n| n.counts.not_assessed).sum(),
        cis_fixed: cis.iter().map(|n| n.counts.fixed).sum(),
        cis_expired_waivers: cis_expired,
        cis_nodes_failing: cis.iter().filter(|n| !n.ok).count(),
        lab_probes: lab.len(),
        lab_mismatches,
        all_ok: firewall_ok != Some(false)
            && cis_unexpected == 0
            && cis_expired == 0
            && lab_mismatches == 0,
    };

    Report {
        meta: Meta {
            site: resolved.site.clone(),
            site_file: inp.site_file.clone(),
            catalog: resolved.catalog.clone(),
            tkg_version: inp.site.tkg.version.clone(),
            ruleset: inp.ruleset.map(|r| r.verify.ruleset.clone()),
            ruleset_format: inp.ruleset.map(|r| r.format.to_string()),
            hook: inp.ruleset.map(|r| r.verify.hook.clone()),
            version: inp.version.clone(),
            generated: inp.generated.clone(),
            cis_files: inp.cis.iter().map(|c| c.file.clone()).collect(),
            lab_file: inp.lab.as_ref().map(|l| l.file.clone()),
            example: inp.example,
            defects: if inp.example {
                crate::example::DEFECTS
                    .iter()
                    .map(|d| d.to_string())
                    .collect()
            } else {
                vec![]
            },
        },
        summary,
        palette,
        columns: cols_z,
        rows,
        cells,
        flows,
        deny_flows: resolved
            .flows
            .iter()
            .filter(|f| f.action == FlowAction::Deny)
            .map(|f| f.id.clone())
            .collect(),
        excess,
        shadowed,
        redundant,
        notes: vr.map(|v| v.notes.clone()).unwrap_or_default(),
        cis,
        lab,
        zones: inp
            .site
            .zones
            .iter()
            .map(|(z, n)| (z.clone(), n.iter().map(ToString::to_string).collect()))
            .collect(),
    }
}
