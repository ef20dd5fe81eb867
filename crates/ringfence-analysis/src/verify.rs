//! `verify`: required flows, their replies, excess, shadowed and redundant
//! rules, default deny — the report documented in `docs/verify-json.md`.

use crate::engine::{Engine, Fate, Outcome, Settled, Xlat, DEFAULT_BUDGET};
use crate::space::{
    fam_full, format_addrs, format_addrs_text, format_endpoint, format_ports, format_ports_text,
    format_proto, format_proto_text, parse_addrs, parse_ports, parse_protos, proto_name, Fam,
    IfaceUniverse, PBox,
};
use crate::space::{flow_packets, FlowPackets, ISet};
use ipnet::IpNet;
use ringfence_model::{AddrSet, CtStates, EnforcedAt, Hook, Policy, RuleRef, Ruleset};
use ringfence_site::{FlowAction, Protocol, ResolvedFlow, ResolvedSite};
use serde::Serialize;

/// Status of a flow (or of its replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every packet of the flow is accepted.
    Allowed,
    /// Some packets are accepted, some are not.
    Partial,
    /// No packet is accepted.
    Blocked,
    /// A rule the model cannot evaluate decides part of the flow.
    Unknown,
    /// A rule translates the destination of some of the flow's packets so
    /// that they are not delivered where the flow goes (`redirected_to`
    /// says where they go), accepted there or not; no packet's fate is
    /// unsure.
    Redirected,
}

/// One concrete packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExamplePacket {
    /// Source address.
    pub src: String,
    /// Destination address.
    pub dst: String,
    /// Protocol name.
    pub proto: String,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// The verdict on one required flow.
#[derive(Debug, Clone, Serialize)]
pub struct FlowResult {
    /// Catalog id.
    pub id: String,
    /// Why the flow exists.
    pub purpose: String,
    /// Whether new connections pass.
    pub status: Status,
    /// Whether reply traffic (established) passes.
    pub replies: Status,
    /// A packet of the flow that is not accepted (null when allowed).
    pub blocked_example: Option<ExamplePacket>,
    /// Where a destination translation sends the flow's packets instead
    /// (`ADDR:PORT`, ranges as `A-B`), for a redirected flow; empty
    /// otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redirected_to: Vec<String>,
    /// The rules that decide the flow's new connections.
    pub rules: Vec<String>,
    /// The rules that decide its replies.
    pub reply_rules: Vec<String>,
}

/// A region accepted beyond the required flows.
#[derive(Debug, Clone, Serialize)]
pub struct Region {
    /// Source networks (CIDRs or `a-b` ranges).
    pub sources: Vec<String>,
    /// Destination networks.
    pub destinations: Vec<String>,
    /// Protocol(s): `tcp`, `udp`, `any`, numbers.
    pub protocol: String,
    /// Destination ports (`any`, `443`, `8000-8080`).
    pub ports: String,
    /// Source ports, when restricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ports: Option<String>,
    /// The rarer header fields, when restricted (`tcp flags FIN,SYN,RST,ACK
    /// = SYN`, `icmp type 8`, `length 0-100`, ...; see
    /// [`crate::space::format_extra`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Site zones containing every source of the region.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_zones: Vec<String>,
    /// Site zones containing every destination.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub destination_zones: Vec<String>,
    /// The rules that accept it (for a possible region: the rule the model
    /// cannot evaluate that makes it possible).
    pub rules: Vec<String>,
    /// True when the region is certainly accepted; false when it is possibly
    /// accepted: a rule the model cannot evaluate (an opaque match, an
    /// address-rewriting target) decides it.
    pub certain: bool,
    /// When a rule translates the region's destination: where its packets
    /// are delivered (`ADDR:PORT`); the other fields name them as they
    /// arrive, and `rules` names the translating rule first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnat: Option<String>,
}

impl Region {
    /// What the region is, for text output: `tcp 0.0.0.0/0 -> 198.18.1.20
    /// port 8080`, `udp 198.18.10.0/24 -> 198.18.1.53 ports all but 53`,
    /// `all but tcp, udp 198.18.10.0/24 -> 198.18.1.20` (the fields' sets
    /// through the `format_*_text` functions of [`crate::space`]; a field
    /// that does not read back is shown as it is), and where a destination
    /// translation delivers it: `..., translated to 198.18.10.12:22`.
    pub fn describe(&self) -> String {
        let protos = parse_protos(&self.protocol);
        let proto = match &protos {
            Some(p) if p.is_full() => "any protocol".to_string(),
            Some(p) => format_proto_text(p),
            None => self.protocol.clone(),
        };
        // Ports mean something only when every protocol of the region has them.
        let with_ports = protos.as_ref().is_some_and(|p| {
            p.ranges()
                .iter()
                .all(|&(a, b)| (a..=b).all(|n| PORT_PROTOCOLS.contains(&n)))
        });
        let ports = |text: &str, label: &str| match parse_ports(text) {
            Some(set) if set.is_full() => {
                if with_ports && label == "port" {
                    " any port".to_string()
                } else {
                    String::new()
                }
            }
            Some(set) => {
                let single = set.ranges().len() == 1 && set.ranges()[0].0 == set.ranges()[0].1;
                format!(
                    " {label}{} {}",
                    if single { "" } else { "s" },
                    format_ports_text(&set)
                )
            }
            None => format!(" {label}s {text}"),
        };
        let addrs = |items: &[String]| match parse_addrs(items) {
            Some((fam, set)) => format_addrs_text(fam, &set),
            None => items.join(", "),
        };
        format!(
            "{proto} {}{} -> {}{}{}{}",
            addrs(&self.sources),
            self.source_ports
                .as_deref()
                .map(|p| ports(p, "source port"))
                .unwrap_or_default(),
            addrs(&self.destinations),
            ports(&self.ports, "port"),
            self.header
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default(),
            self.dnat
                .as_deref()
                .map(|d| format!(", translated to {d}"))
                .unwrap_or_default()
        )
    }
}

/// Protocols with ports: TCP, UDP, DCCP, SCTP, UDP-Lite.
const PORT_PROTOCOLS: [u8; 5] = [6, 17, 33, 132, 136];

/// The service of a box as people read it: `tcp port 22`, `udp ports 53,
/// 123`, `tcp any port`, `any protocol`, `icmp`; restricted source ports
/// follow (`source ports 1024-65535`).
pub fn service_text(proto: &ISet<u8>, sport: &ISet<u16>, dport: &ISet<u16>) -> String {
    let with_ports = !proto.is_empty()
        && proto
            .ranges()
            .iter()
            .all(|&(a, b)| (a..=b).all(|n| PORT_PROTOCOLS.contains(&n)));
    let mut s = if proto.is_full() {
        "any protocol".to_string()
    } else {
        let text = format_proto_text(proto);
        // `all but tcp port 389` would read as everything except tcp/389.
        if text.starts_with("all but ") && !(dport.is_full() && sport.is_full()) {
            format!("protocols {text},")
        } else {
            text
        }
    };
    let ports = |set: &ISet<u16>, label: &str| {
        let single = set.ranges().len() == 1 && set.ranges()[0].0 == set.ranges()[0].1;
        format!(
            " {label}{} {}",
            if single { "" } else { "s" },
            format_ports_text(set)
        )
    };
    if !dport.is_full() {
        s.push_str(&ports(dport, "port"));
    } else if with_ports {
        s.push_str(" any port");
    }
    if !sport.is_full() {
        s.push_str(&ports(sport, "source port"));
    }
    s
}

/// The name the excess summary gives a side whose addresses are in no zone of the site.
pub const OUTSIDE_SITE: &str = "outside the site";

/// The name the excess summary gives a side that spans several zones, or a
/// zone and addresses outside every zone.
pub const ANY_ZONE: &str = "any";

/// At most this many rules are named per summary group (`rule_count` counts them all).
pub const SUMMARY_RULES: usize = 3;

/// One line of the excess summary: what is accepted beyond the required
/// flows from one zone to another in one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExcessGroup {
    /// The source zone, or `outside the site`.
    pub from: String,
    /// The destination zone, or `outside the site`.
    pub to: String,
    /// Protocol and ports, as the text output writes them (`tcp port 8080`).
    pub service: String,
    /// Excess regions in the group (each region of the full list counts
    /// once, in the group its sides' names and its service give).
    pub regions: usize,
    /// Regions certainly accepted.
    pub certain: usize,
    /// Regions possibly accepted (a rule the model cannot evaluate decides them).
    pub possible: usize,
    /// The first rules (at most [`SUMMARY_RULES`]) responsible, in the order met.
    pub rules: Vec<String>,
    /// How many distinct rules are responsible in all.
    pub rule_count: usize,
}

/// The name of one side of a region in the excess summary: the zone that
/// holds all its addresses (the first such zone), [`OUTSIDE_SITE`] when
/// none of its addresses is in a zone, [`ANY_ZONE`] when it spans several
/// zones or a zone and addresses outside every zone.
fn side_name<'z>(fam: Fam, set: &ISet<u128>, zones: &'z [(String, Fam, ISet<u128>)]) -> &'z str {
    let mut zones = zones.iter().filter(|(_, f, _)| *f == fam);
    if let Some((name, _, _)) = zones.clone().find(|(_, _, z)| set.is_subset(z)) {
        return name;
    }
    if zones.any(|(_, _, z)| !set.intersect(z).is_empty()) {
        ANY_ZONE
    } else {
        OUTSIDE_SITE
    }
}

/// Group excess regions (each a box, the rule responsible if any, and
/// whether it is certainly accepted) by (source side, destination side,
/// service), each side named by `side_name`: a zone, `outside the site` or
/// `any`. Groups come with the most regions first, then by names and service.
pub fn summarize_excess<'a>(
    regions: impl IntoIterator<Item = (&'a PBox, Option<String>, bool)>,
    zones: &[(String, Fam, ISet<u128>)],
) -> Vec<ExcessGroup> {
    use std::collections::{BTreeMap, HashSet};
    let mut groups: BTreeMap<(String, String, String), (ExcessGroup, HashSet<String>)> =
        BTreeMap::new();
    for (b, rule, certain) in regions {
        if b.is_empty() {
            continue;
        }
        let service = service_text(&b.proto, &b.sport, &b.dport);
        let from = side_name(b.fam, &b.src, zones);
        let to = side_name(b.fam, &b.dst, zones);
        let key = (from.to_string(), to.to_string(), service.clone());
        let (g, seen) = groups.entry(key).or_insert_with(|| {
            (
                ExcessGroup {
                    from: from.to_string(),
                    to: to.to_string(),
                    service,
                    regions: 0,
                    certain: 0,
                    possible: 0,
                    rules: Vec::new(),
                    rule_count: 0,
                },
                HashSet::new(),
            )
        });
        g.regions += 1;
        if certain {
            g.certain += 1;
        } else {
            g.possible += 1;
        }
        if let Some(r) = rule {
            if g.rules.len() < SUMMARY_RULES && !seen.contains(&r) {
                g.rules.push(r.clone());
            }
            if seen.insert(r) {
                g.rule_count += 1;
            }
        }
    }
    let mut out: Vec<ExcessGroup> = groups.into_values().map(|(g, _)| g).collect();
    // Stable: equal counts stay in zone and service order.
    out.sort_by_key(|g| std::cmp::Reverse(g.regions));
    out
}

/// Whether `verify` analyses an address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilyStatus {
    /// In scope and covered by a ruleset: its flows and excess are judged.
    Analysed,
    /// Out of scope: none of its packets is judged.
    NotAnalysed,
    /// In scope, but no ruleset given covers it: a finding (not OK).
    NotCovered,
}

/// One address family's place in a `verify` run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FamilyScope {
    /// `IPv4` or `IPv6`.
    pub family: String,
    /// Whether it is analysed.
    pub status: FamilyStatus,
    /// Why, for people (and how to change it).
    pub reason: String,
}

impl FamilyScope {
    /// The scope of `family` (`IPv4`/`IPv6`).
    pub fn new(family: &str, status: FamilyStatus, reason: impl Into<String>) -> Self {
        FamilyScope {
            family: family.to_string(),
            status,
            reason: reason.into(),
        }
    }
}

/// The families a site has addresses in: `[IPv4, IPv6]`.
pub fn site_families(site: &ResolvedSite) -> [bool; 2] {
    let zones = zone_sets(site);
    let has = |fam: Fam| zones.iter().any(|(_, f, _)| *f == fam);
    [has(Fam::V4), has(Fam::V6)]
}

/// The `auto` scope: the families the site has addresses in (both when it
/// has none), each assumed covered by the ruleset.
pub fn auto_families(site: &ResolvedSite) -> Vec<FamilyScope> {
    let has = site_families(site);
    let has = if has == [false, false] {
        [true, true]
    } else {
        has
    };
    ["IPv4", "IPv6"]
        .iter()
        .zip(has)
        .map(|(name, has)| {
            if has {
                FamilyScope::new(
                    name,
                    FamilyStatus::Analysed,
                    format!("the site has {name} addresses"),
                )
            } else {
                FamilyScope::new(
                    name,
                    FamilyStatus::NotAnalysed,
                    format!("the site has no {name} addresses; --families 4,6 to include it"),
                )
            }
        })
        .collect()
}

/// A shadowed or redundant rule.
#[derive(Debug, Clone, Serialize)]
pub struct RuleFinding {
    /// The rule.
    pub rule: String,
    /// Its chain.
    pub chain: String,
    /// The rules responsible.
    pub by: Vec<String>,
    /// Shadowed rules only, when not judged in the rule's own chain:
    /// `context` (no packet that reaches it from the base chains matches
    /// it) or `never_reached` (the finding stands for the whole chain, no
    /// base chain reaches it). Absent: earlier rules of its own chain cover it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<DeadReason>,
}

/// Why a shadowed rule never matches, when not because of its own chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadReason {
    /// Dead in context: no packet that reaches it through the base chains
    /// (and the jumps to its chain) matches it.
    Context,
    /// Its user chain is never reached from a base chain.
    NeverReached,
}

/// Counts.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Required (allow) flows checked.
    pub flows: usize,
    /// Flows allowed.
    pub allowed: usize,
    /// Flows partly allowed.
    pub partial: usize,
    /// Flows blocked.
    pub blocked: usize,
    /// Flows whose status is unknown.
    pub unknown: usize,
    /// Flows whose replies are not (fully) allowed.
    pub replies_not_allowed: usize,
    /// Excess regions (certain and possible).
    pub excess: usize,
    /// Excess regions that are only possibly accepted (`certain: false`).
    pub possible_excess: usize,
    /// Whether the excess list is complete (false: the analysis hit its size budget).
    pub excess_complete: bool,
    /// Address families in scope that no ruleset covers (each a finding).
    pub families_not_covered: usize,
    /// Shadowed rules.
    pub shadowed: usize,
    /// Redundant rules.
    pub redundant: usize,
    /// True when every flow is allowed with replies, no flow is unknown,
    /// nothing is excess (certain or possible) and the excess list is complete.
    pub ok: bool,
}

/// The whole verify report.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The ruleset file.
    pub ruleset: String,
    /// The hook checked.
    pub hook: String,
    /// The site name.
    pub site: String,
    /// The catalog version.
    pub catalog: String,
    /// Which address families are analysed, and why.
    pub families: Vec<FamilyScope>,
    /// Required flows.
    pub flows: Vec<FlowResult>,
    /// Regions accepted beyond the required flows (within the deny-all rows).
    pub excess: Vec<Region>,
    /// Every excess region (listed or not) grouped by source zone,
    /// destination zone and service: see [`summarize_excess`].
    pub excess_summary: Vec<ExcessGroup>,
    /// Rules that never match.
    pub shadowed: Vec<RuleFinding>,
    /// Rules whose removal changes nothing.
    pub redundant: Vec<RuleFinding>,
    /// Whether traffic no rule matches is dropped.
    pub default_deny: bool,
    /// Constructs the parser could not model exactly (their results are unknown).
    pub notes: Vec<String>,
    /// When the ruleset is enforced only at some addresses (an NSX DFW
    /// applied to groups, see [`Ruleset::enforced_at`]), the line saying so:
    /// excess covers only packets with the source or the destination there.
    /// `None`: every packet is judged. The same line is among `notes`.
    pub enforced_at: Option<String>,
    /// Counts.
    pub summary: Summary,
}

/// The number of addresses in `a`, both families, for people (saturating).
fn addr_count(a: &AddrSet) -> u128 {
    let v4: u128 =
        a.v4.ranges()
            .iter()
            .map(|&(lo, hi)| (hi - lo) as u128 + 1)
            .sum();
    a.v6.ranges().iter().fold(v4, |n, &(lo, hi)| {
        n.saturating_add((hi - lo).saturating_add(1))
    })
}

/// The line `verify` writes for a ruleset enforced only at `e`.
fn enforced_at_line(e: &EnforcedAt) -> String {
    let n = addr_count(&e.addrs);
    format!(
        "scope: the ruleset applies to {} ({n} address{}); traffic with neither end there is not judged",
        e.what,
        if n == 1 { "" } else { "es" }
    )
}

/// The part of `b` the ruleset judges when it is enforced only at `e`:
/// packets whose source or destination is in `e` (two disjoint boxes).
pub(crate) fn enforced_part(b: PBox, e: Option<&EnforcedAt>) -> Vec<PBox> {
    let Some(e) = e else {
        return vec![b];
    };
    let at: ISet<u128> = match b.fam {
        Fam::V4 => ISet::from_ranges(
            e.addrs
                .v4
                .ranges()
                .iter()
                .map(|&(lo, hi)| (lo as u128, hi as u128)),
        ),
        Fam::V6 => e.addrs.v6.clone(),
    };
    let mut from = b.clone();
    from.src = b.src.intersect(&at);
    let mut to = b;
    to.dst = to.dst.intersect(&at);
    to.src = to.src.difference(&at);
    [from, to].into_iter().filter(|x| !x.is_empty()).collect()
}

/// At most this many excess regions are listed (the summary counts them all).
pub const MAX_REGIONS: usize = 200;

fn ipnet_set(n: &IpNet) -> (Fam, ISet<u128>) {
    match n {
        IpNet::V4(n) => (
            Fam::V4,
            ISet::range(
                u32::from(n.network()) as u128,
                u32::from(n.broadcast()) as u128,
            ),
        ),
        IpNet::V6(n) => (
            Fam::V6,
            ISet::range(u128::from(n.network()), u128::from(n.broadcast())),
        ),
    }
}

/// The boxes of a flow's new connections (or, with `reply`, of its replies).
pub fn flow_boxes(f: &ResolvedFlow, u: &IfaceUniverse, reply: bool) -> Vec<PBox> {
    let mut out = Vec::new();
    // Each destination with only the services it receives (dns-ntp-outbound:
    // DNS to the DNS servers, NTP to the NTP servers).
    for (s, d, svcs) in f.paths() {
        let (fam, src) = ipnet_set(&s);
        let (_, dst) = ipnet_set(&d);
        for svc in &svcs {
            let proto = match svc.protocol {
                Protocol::Tcp => ISet::single(6u8),
                Protocol::Udp => ISet::single(17),
                Protocol::Icmp => ISet::single(if fam == Fam::V4 { 1 } else { 58 }),
                Protocol::Any => ISet::full(),
            };
            let ports = match svc.protocol {
                Protocol::Tcp | Protocol::Udp => ISet::range(svc.ports.first, svc.ports.last),
                _ => ISet::full(),
            };
            let mut b = PBox::full(fam, u);
            b.proto = proto;
            if reply {
                b.src = dst.clone();
                b.dst = src.clone();
                b.sport = ports;
                b.ct = CtStates::ESTABLISHED;
            } else {
                b.src = src.clone();
                b.dst = dst.clone();
                b.dport = ports;
                b.ct = CtStates::NEW;
            }
            out.push(b);
        }
    }
    out
}

/// How certain the fate of a settled region is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Certainty {
    /// Every branch accepts and delivers the packets where the flow goes.
    Accepted,
    /// Every branch translates the destination away from the flow's.
    Redirected,
    /// Every branch drops or rejects.
    Blocked,
    /// Branches differ, or one ends where the model cannot follow.
    Unsure,
}

fn certainty(s: &Settled) -> Certainty {
    certainty_in(s, &[])
}

/// [`certainty`] for a region of a flow whose packets are `flow`: a branch
/// that translates the destination delivers where the flow goes when the
/// translated packets are still among the flow's; otherwise it redirects
/// them.
fn certainty_in(s: &Settled, flow: &[PBox]) -> Certainty {
    let elsewhere = |x: &Option<Xlat>| match Xlat::dnat_of(x) {
        None => false,
        Some((dst, dport)) => {
            let mut d = s.b.clone();
            d.dst = dst.clone();
            d.dport = dport.clone();
            let refs: Vec<&PBox> = flow.iter().filter(|f| f.overlaps(&d)).collect();
            !matches!(crate::space::subtract_all(&d, &refs, 64), Some(v) if v.is_empty())
        }
    };
    if s.outcomes
        .iter()
        .all(|(f, _, x)| *f != Fate::Unknown && elsewhere(x))
    {
        Certainty::Redirected
    } else if s.outcomes.iter().any(|(_, _, x)| elsewhere(x)) {
        Certainty::Unsure
    } else if s.all_accept() {
        Certainty::Accepted
    } else if s.all_blocked() {
        Certainty::Blocked
    } else {
        Certainty::Unsure
    }
}

/// A flow's status from its settled regions (every translation counts as
/// a redirect).
fn status_of(settled: &[Settled]) -> Status {
    status_in(settled, &[])
}

/// A flow's status from its settled regions: allowed when every branch of
/// every packet accepts and delivers where the flow goes, blocked when none
/// accepts, partial when some packets are certainly accepted and others
/// certainly blocked, redirected when the others are certainly redirected,
/// unknown otherwise.
fn status_in(settled: &[Settled], flow: &[PBox]) -> Status {
    let has = |c: Certainty| settled.iter().any(|s| certainty_in(s, flow) == c);
    match (
        has(Certainty::Accepted),
        has(Certainty::Blocked),
        has(Certainty::Unsure),
        has(Certainty::Redirected),
    ) {
        (true, true, _, _) => Status::Partial,
        (_, _, true, _) => Status::Unknown,
        (_, _, false, true) => Status::Redirected,
        (true, false, false, false) => Status::Allowed,
        (false, true, false, false) => Status::Blocked,
        // An empty flow (no address pairs of one family) has nothing to block.
        (false, false, false, false) => Status::Allowed,
    }
}

/// Where the branches of `settled` that `flow` does not receive deliver
/// their packets, as `ADDR:PORT` (at most 10, each once, sorted).
fn redirect_targets(settled: &[Settled], flow: &[PBox]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in settled {
        if certainty_in(s, flow) != Certainty::Redirected {
            continue;
        }
        for (_, _, x) in &s.outcomes {
            if let Some((dst, dport)) = Xlat::dnat_of(x) {
                let t = delivery_text(s.b.fam, dst, dport);
                if !out.contains(&t) && out.len() < 10 {
                    out.push(t);
                }
            }
        }
    }
    out.sort();
    out
}

/// A translated destination for people: `198.18.1.99:443`,
/// `[2001:db8::1]:443`, ranges as `A-B`, any port as the address alone.
pub fn delivery_text(fam: Fam, dst: &ISet<u128>, dport: &ISet<u16>) -> String {
    let addr = format_addrs_text(fam, dst);
    let one = |r: &[(u128, u128)]| r.len() == 1 && r[0].0 == r[0].1;
    let ports = dport.ranges();
    if dport.is_full() {
        addr
    } else if one(dst.ranges()) && ports.len() == 1 && ports[0].0 == ports[0].1 {
        format_endpoint(&addr, ports[0].0)
    } else {
        format!("{addr} port {}", format_ports_text(dport))
    }
}

/// The key of the destination-translating rule on a path, if any.
fn nat_key(engine: &Engine<'_>, path: &[(u32, u32)]) -> Option<(u32, u32)> {
    path.iter().copied().find(|&(c, r)| {
        r != u32::MAX
            && matches!(
                &engine.rs.chains[c as usize].rules[r as usize].action,
                ringfence_model::Action::Nat(rw) if rw.is_destination()
            )
    })
}

/// The key of the rule that decided a path: its last rule outside the
/// chains the parsers synthesize for targets they cannot model (`?NAME`,
/// whose one rule stands for every use of the target), so an unknown verdict
/// names the rule that made it unknown.
fn deciding_key(engine: &Engine<'_>, path: &[(u32, u32)]) -> Option<(u32, u32)> {
    engine.deciding_key(path)
}

/// The rules behind the settled regions `keep` selects, at most 20: for a
/// region whose branches differ, the rule where they part first, then the
/// deciding rule of each branch `ending` selects (after the rule that
/// translated its destination, if one did).
fn deciding_rules(
    engine: &Engine<'_>,
    settled: &[Settled],
    keep: impl Fn(&Settled) -> bool,
    ending: impl Fn(&crate::engine::Ending) -> bool,
) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let add = |k: Option<(u32, u32)>, v: &mut Vec<String>| {
        if let Some(k) = k {
            let r = engine.rule_ref(k).to_string();
            if !v.contains(&r) {
                v.push(r);
            }
        }
    };
    for s in settled.iter().filter(|s| keep(s)) {
        if certainty(s) == Certainty::Unsure {
            add(s.fork, &mut v);
        }
        for e in &s.outcomes {
            if ending(e) {
                // A translated branch: the translating rule, then the deciding one.
                if Xlat::dnat_of(&e.2).is_some() {
                    add(nat_key(engine, &e.1), &mut v);
                }
                add(deciding_key(engine, &e.1), &mut v);
            }
        }
        if v.len() >= 20 {
            v.truncate(20);
            break;
        }
    }
    v
}

/// The hook replies of traffic on `hook` traverse.
pub fn reply_hook(hook: Hook) -> Hook {
    match hook {
        Hook::Input => Hook::Output,
        Hook::Output => Hook::Input,
        h => h,
    }
}

fn example(b: &PBox, u: &IfaceUniverse) -> Option<ExamplePacket> {
    let p = b.example(u)?;
    Some(ExamplePacket {
        src: p.src.to_string(),
        dst: p.dst.to_string(),
        proto: proto_name(p.protocol),
        sport: p.sport,
        dport: p.dport,
    })
}

/// Check one flow on a hook: status, replies, example, rules.
pub fn check_flow(engine: &Engine<'_>, hook: Hook, f: &ResolvedFlow) -> FlowResult {
    check_flow_in(engine, hook, f, [true, true])
}

/// Whether a box's family is analysed (`analysed` is `[IPv4, IPv6]`).
pub(crate) fn fam_in(analysed: [bool; 2], fam: Fam) -> bool {
    match fam {
        Fam::V4 => analysed[0],
        Fam::V6 => analysed[1],
    }
}

/// [`check_flow`] on the packets of the analysed families only.
pub(crate) fn check_flow_in(
    engine: &Engine<'_>,
    hook: Hook,
    f: &ResolvedFlow,
    analysed: [bool; 2],
) -> FlowResult {
    // With the host's addresses known, routing picks input or forward
    // after prerouting; packets arrive on an interface either way.
    let split = engine.split_route(hook).is_some();
    let entry_hook = if split { Hook::Forward } else { hook };
    let fwd: Vec<PBox> = flow_boxes(f, &engine.u, false)
        .into_iter()
        .filter(|b| fam_in(analysed, b.fam))
        .flat_map(|b| flow_packets(b, FlowPackets::Opening))
        .map(|b| engine.restrict_to_hook(b, entry_hook, CtStates::NEW))
        .collect();
    let out = classify_new(engine, hook, &fwd);
    let (status, blocked_example, rules, redirected_to) = match &out {
        Ok(o) => {
            let st = status_in(o, &fwd);
            let cert = |x: &Settled| certainty_in(x, &fwd);
            let ex = o
                .iter()
                .find(|x| cert(x) == Certainty::Blocked)
                .or_else(|| o.iter().find(|x| cert(x) == Certainty::Redirected))
                .or_else(|| o.iter().find(|x| cert(x) == Certainty::Unsure))
                .and_then(|x| example(&x.b, &engine.u));
            let rules = if st == Status::Allowed {
                deciding_rules(engine, o, |_| true, |_| true)
            } else {
                deciding_rules(
                    engine,
                    o,
                    |s| cert(s) != Certainty::Accepted,
                    |(f, _, x)| *f != Fate::Accept || Xlat::dnat_of(x).is_some(),
                )
            };
            (st, ex, rules, redirect_targets(o, &fwd))
        }
        Err(_) => (Status::Unknown, None, vec![], vec![]),
    };
    let (replies, reply_rules) = check_replies(engine, hook, f, analysed, out.as_deref().ok());
    FlowResult {
        id: f.id.clone(),
        purpose: f.purpose.clone(),
        status,
        replies,
        blocked_example: if status == Status::Allowed {
            None
        } else {
            blocked_example
        },
        redirected_to,
        rules,
        reply_rules,
    }
}

/// A flow box without loopback addresses on either side: no packet of a
/// flow between hosts carries one (routing drops them as martians), so with
/// the host's addresses known they are left out (`None`: nothing is left).
fn off_loopback(b: &PBox) -> Option<PBox> {
    let lo = crate::space::Locals::loopback();
    let mut x = b.clone();
    x.src = x.src.difference(lo.of(x.fam));
    x.dst = x.dst.difference(lo.of(x.fam));
    (!x.is_empty()).then_some(x)
}

/// Classify a flow's first packets, settled. With the host's addresses
/// known, the packets the host itself sends take the output path and the
/// others arrive on the path `hook` names, split by routing.
fn classify_new(
    engine: &Engine<'_>,
    hook: Hook,
    fwd: &[PBox],
) -> Result<Vec<Settled>, crate::engine::OverBudget> {
    let (Some(_), Some(locals)) = (engine.split_route(hook), engine.u.locals.as_ref()) else {
        return engine.classify_settled(hook, fwd.to_vec());
    };
    let (mut host, mut arriving) = (Vec::new(), Vec::new());
    for b in fwd.iter().filter_map(off_loopback) {
        let b = &b;
        let here = locals.of(b.fam);
        let (mut h, mut a) = (b.clone(), b.clone());
        h.src = h.src.intersect(here);
        a.src = a.src.difference(here);
        if !h.is_empty() {
            host.push(engine.restrict_to_hook(h, Hook::Output, CtStates::NEW));
        }
        if !a.is_empty() {
            arriving.push(a);
        }
    }
    let mut out = engine.classify_settled(hook, arriving)?;
    if !host.is_empty() {
        out.extend(engine.classify_settled(Hook::Output, host)?);
    }
    Ok(out)
}

/// The replies of a flow: swapped and established, on the reply path
/// (with the host's addresses known: from the host on the output path,
/// through it on the split path). A translated connection's replies are
/// judged soundly, not exactly: when a rule translated the destination of
/// some of the flow's packets, the replies come from elsewhere and are
/// unknown (named by that rule); when one translated the source, they
/// arrive addressed to the translated source until nat prerouting undoes
/// it, so they are unknown if a chain before that reads the destination.
fn check_replies(
    engine: &Engine<'_>,
    hook: Hook,
    f: &ResolvedFlow,
    analysed: [bool; 2],
    forward: Option<&[Settled]>,
) -> (Status, Vec<String>) {
    let endings = || {
        forward
            .into_iter()
            .flatten()
            .flat_map(|s| s.outcomes.iter())
    };
    let dnat_rules: Vec<String> = endings()
        .filter(|(_, _, x)| Xlat::dnat_of(x).is_some())
        .filter_map(|(_, p, _)| nat_key(engine, p))
        .map(|k| engine.rule_ref(k).to_string())
        .fold(Vec::new(), |mut v, r| {
            if !v.contains(&r) {
                v.push(r);
            }
            v
        });
    let rev: Vec<PBox> = if dnat_rules.is_empty() {
        flow_boxes(f, &engine.u, true)
            .into_iter()
            .filter(|b| fam_in(analysed, b.fam))
            .flat_map(|b| flow_packets(b, FlowPackets::Replies))
            .collect()
    } else {
        // Replies of translated connections come from where the first
        // packets went; a chain that reads them after conntrack has given
        // them back the address they were sent to is not followed.
        match (forward, reads_after_reply_untranslated(engine)) {
            (Some(settled), None) => translated_replies(engine, settled, analysed),
            (_, Some(k)) => return (Status::Unknown, vec![engine.rule_ref(k).to_string()]),
            (None, None) => return (Status::Unknown, dnat_rules),
        }
    };
    let snat = endings().any(|(_, _, x)| x.as_ref().is_some_and(|x| x.snat));
    // (path, its replies)
    let mut parts: Vec<(Hook, Vec<PBox>)> = Vec::new();
    match (engine.split_route(hook), engine.u.locals.as_ref()) {
        (Some(_), Some(locals)) => {
            let (mut host, mut through) = (Vec::new(), Vec::new());
            for b in rev.iter().filter_map(off_loopback) {
                // A reply's source is the flow's destination.
                let here = locals.of(b.fam);
                let (mut h, mut t) = (b.clone(), b);
                h.src = h.src.intersect(here);
                t.src = t.src.difference(here);
                if !h.is_empty() {
                    host.push(engine.restrict_to_hook(h, Hook::Output, CtStates::ESTABLISHED));
                }
                if !t.is_empty() {
                    through.push(engine.restrict_to_hook(t, Hook::Forward, CtStates::ESTABLISHED));
                }
            }
            parts.push((Hook::Output, host));
            parts.push((hook, through));
        }
        _ => {
            let rh = reply_hook(hook);
            parts.push((
                rh,
                rev.into_iter()
                    .map(|b| engine.restrict_to_hook(b, rh, CtStates::ESTABLISHED))
                    .collect(),
            ));
        }
    }
    let mut settled = Vec::new();
    for (h, boxes) in parts {
        if boxes.is_empty() {
            continue;
        }
        if snat {
            if let Some(k) = engine.reads_dst_before_nat(h) {
                return (Status::Unknown, vec![engine.rule_ref(k).to_string()]);
            }
        }
        match engine.classify_settled(h, boxes) {
            Ok(v) => settled.extend(v),
            Err(_) => return (Status::Unknown, vec![]),
        }
    }
    (
        status_of(&settled),
        deciding_rules(engine, &settled, |_| true, |_| true),
    )
}

/// The replies of a flow some of whose first packets had their destination
/// translated, from its settled regions: a region's packets swapped (source
/// and destination, ports), and for each branch that translated them, from
/// the address and port they were sent on to instead. Conntrack gives a
/// reply its original source back only at the source-translating hooks
/// (nat postrouting, nat input), after every chain but those that run
/// later ([`reads_after_reply_untranslated`]), so the chains before see it
/// from the translated address.
fn translated_replies(engine: &Engine<'_>, settled: &[Settled], analysed: [bool; 2]) -> Vec<PBox> {
    let mut out = Vec::new();
    for s in settled.iter().filter(|s| fam_in(analysed, s.b.fam)) {
        let swapped = |src: &ISet<u128>, sport: &ISet<u16>| {
            let mut b = PBox::full(s.b.fam, &engine.u);
            b.proto = s.b.proto.clone();
            b.src = src.clone();
            b.sport = sport.clone();
            b.dst = s.b.src.clone();
            b.dport = s.b.sport.clone();
            b.ct = CtStates::ESTABLISHED;
            b
        };
        let mut untranslated = false;
        for (_, _, x) in &s.outcomes {
            match Xlat::dnat_of(x) {
                Some((dst, dport)) => {
                    out.extend(flow_packets(swapped(dst, dport), FlowPackets::Replies))
                }
                None => untranslated = true,
            }
        }
        if untranslated {
            out.extend(flow_packets(
                swapped(&s.b.dst, &s.b.dport),
                FlowPackets::Replies,
            ));
        }
    }
    out
}

/// The first rule of a chain that runs after conntrack has given a reply
/// back the address its connection's first packet was sent to (a chain
/// other than nat on postrouting or input, at a priority above the
/// source-translating nat hook's, 100): it reads the reply's source as the
/// address the model does not carry there.
fn reads_after_reply_untranslated(engine: &Engine<'_>) -> Option<(u32, u32)> {
    engine.rs.chains.iter().enumerate().find_map(|(i, c)| {
        let b = c.base.as_ref()?;
        let late = matches!(b.hook, Hook::Postrouting | Hook::Input)
            && !b.nat
            && b.runs_at() > b.hook.nat_priority().unwrap_or(100);
        (late && !c.rules.is_empty()).then_some((i as u32, 0))
    })
}

/// Address ranges of one side, one range inline.
type Ranges = smallvec::SmallVec<[(u128, u128); 1]>;

/// Merge regions with equal fields except one address side, to keep the list short.
fn merge_regions<K: Clone + Eq + std::hash::Hash>(mut boxes: Vec<(PBox, K)>) -> Vec<(PBox, K)> {
    use std::collections::HashMap;
    use std::hash::{BuildHasher, Hash, Hasher};
    for pass in 0..2 {
        // Two boxes join one group when every field but the merged side (and
        // the key) is equal. Groups refer to their first box by index and
        // are found by a hash of those fields, so no box is cloned and the
        // table holds 12 bytes per group instead of a copy of the box.
        fn side(pass: usize, b: &PBox) -> &[(u128, u128)] {
            if pass == 0 {
                b.dst.ranges()
            } else {
                b.src.ranges()
            }
        }
        fn other(pass: usize, b: &PBox) -> &ISet<u128> {
            if pass == 0 {
                &b.src
            } else {
                &b.dst
            }
        }
        let key_hash = |b: &PBox, k: &K| {
            let mut h = rustc_hash::FxBuildHasher.build_hasher();
            b.fam.hash(&mut h);
            other(pass, b).hash(&mut h);
            b.proto.hash(&mut h);
            b.sport.hash(&mut h);
            b.dport.hash(&mut h);
            b.iif.hash(&mut h);
            b.oif.hash(&mut h);
            b.ct.hash(&mut h);
            b.x.hash(&mut h);
            k.hash(&mut h);
            h.finish()
        };
        let same_key = |a: &(PBox, K), b: &(PBox, K)| {
            a.1 == b.1
                && a.0.fam == b.0.fam
                && other(pass, &a.0) == other(pass, &b.0)
                && a.0.proto == b.0.proto
                && a.0.sport == b.0.sport
                && a.0.dport == b.0.dport
                && a.0.iif == b.0.iif
                && a.0.oif == b.0.oif
                && a.0.ct == b.0.ct
                && a.0.x == b.0.x
        };
        // (index of the group's first box, the merged side's ranges)
        let mut groups: Vec<(usize, Ranges)> = Vec::new();
        // Hash -> latest group with that hash; `chain` links groups sharing a hash.
        let mut by_hash: rustc_hash::FxHashMap<u64, u32> =
            HashMap::with_capacity_and_hasher(boxes.len(), rustc_hash::FxBuildHasher);
        let mut chain: Vec<u32> = Vec::new();
        for (i, item) in boxes.iter().enumerate() {
            let h = key_hash(&item.0, &item.1);
            let mut g = by_hash.get(&h).copied().unwrap_or(u32::MAX);
            while g != u32::MAX && !same_key(&boxes[groups[g as usize].0], item) {
                g = chain[g as usize];
            }
            if g != u32::MAX {
                groups[g as usize].1.extend_from_slice(side(pass, &item.0));
            } else {
                let new = groups.len() as u32;
                groups.push((i, smallvec::SmallVec::from_slice(side(pass, &item.0))));
                chain.push(by_hash.insert(h, new).unwrap_or(u32::MAX));
            }
        }
        // Groups are in order of their first box: one pass picks those boxes.
        let mut groups = groups.into_iter().peekable();
        let mut out = Vec::with_capacity(groups.len());
        for (i, (mut b, k)) in boxes.into_iter().enumerate() {
            let Some((_, ranges)) = groups.next_if(|(first, _)| *first == i) else {
                continue;
            };
            let set = ISet::from_ranges(ranges);
            if pass == 0 {
                b.dst = set;
            } else {
                b.src = set;
            }
            out.push((b, k));
        }
        boxes = out;
    }
    boxes
}

/// Zones with the address sets they cover, from flows that name one zone per side.
pub(crate) fn zone_sets(site: &ResolvedSite) -> Vec<(String, Fam, ISet<u128>)> {
    let mut zones: Vec<(String, Fam, ISet<u128>)> = Vec::new();
    let mut add = |name: &String, nets: &[IpNet]| {
        for n in nets {
            let (fam, set) = ipnet_set(n);
            if set == fam_full(fam) {
                continue;
            }
            match zones.iter_mut().find(|(z, f, _)| z == name && *f == fam) {
                Some((_, _, s)) => *s = s.union(&set),
                None => zones.push((name.clone(), fam, set)),
            }
        }
    };
    for f in &site.flows {
        if f.source_zones.len() == 1 {
            add(&f.source_zones[0], &f.sources);
        }
        if f.destination_zones.len() == 1 {
            add(&f.destination_zones[0], &f.destinations);
        }
    }
    zones
}

/// Regions for accepted boxes, merged and rendered.
pub fn render_regions(
    engine: &Engine<'_>,
    outcomes: &[Outcome],
    zones: &[(String, Fam, ISet<u128>)],
) -> Vec<Region> {
    render_merged(
        engine,
        merge_regions(outcome_boxes(engine, outcomes)),
        zones,
        usize::MAX,
    )
}

/// The merge key of a region: its deciding rule's key, whether it is
/// certainly accepted, and for a translated region the translating rule's
/// key and where it delivers.
pub(crate) type RegionKey = (Option<(u32, u32)>, bool, Option<((u32, u32), String)>);

/// Accepted (certain) and unknown (possible) outcomes as boxes with their
/// deciding rule's key.
pub(crate) fn outcome_boxes(engine: &Engine<'_>, outcomes: &[Outcome]) -> Vec<(PBox, RegionKey)> {
    outcomes
        .iter()
        .map(|o| {
            let nat = Xlat::dnat_of(&o.xlat).map(|(dst, dport)| {
                (
                    nat_key(engine, &o.path).unwrap_or((u32::MAX, u32::MAX)),
                    delivery_text(o.b.fam, dst, dport),
                )
            });
            (
                o.b.clone(),
                (deciding_key(engine, &o.path), o.fate == Fate::Accept, nat),
            )
        })
        .collect()
}

/// Render already merged regions, at most `limit` of them.
pub(crate) fn render_merged(
    engine: &Engine<'_>,
    merged: Vec<(PBox, RegionKey)>,
    zones: &[(String, Fam, ISet<u128>)],
    limit: usize,
) -> Vec<Region> {
    merged
        .into_iter()
        .take(limit)
        .map(|(b, (key, certain, nat))| {
            let mut rules: Vec<String> = Vec::new();
            for k in nat.as_ref().map(|(k, _)| *k).into_iter().chain(key) {
                if k.0 != u32::MAX {
                    let r = engine.rule_ref(k).to_string();
                    if !rules.contains(&r) {
                        rules.push(r);
                    }
                }
            }
            let zones_of = |s: &ISet<u128>| {
                zones
                    .iter()
                    .filter(|(_, f, z)| *f == b.fam && s.is_subset(z))
                    .map(|(n, _, _)| n.clone())
                    .collect::<Vec<_>>()
            };
            Region {
                sources: format_addrs(b.fam, &b.src),
                destinations: format_addrs(b.fam, &b.dst),
                protocol: format_proto(&b.proto),
                ports: format_ports(&b.dport),
                source_ports: (!b.sport.is_full()).then(|| format_ports(&b.sport)),
                header: crate::space::format_extra(&b.x),
                source_zones: zones_of(&b.src),
                destination_zones: zones_of(&b.dst),
                rules,
                certain,
                dnat: nat.map(|(_, to)| to),
            }
        })
        .collect()
}

/// Whether packets no rule decides are dropped on the path `hook` names.
pub fn default_deny(rs: &Ruleset, hook: Hook) -> bool {
    rs.path_chains(hook).into_iter().any(|c| {
        let chain = rs.chain(c);
        chain
            .base
            .as_ref()
            .is_some_and(|b| b.policy == Policy::Drop)
            || chain.rules.iter().any(|r| {
                r.matches.opaque.is_empty()
                    && !r.matches.has_nat_fields()
                    && matches!(
                        r.action,
                        ringfence_model::Action::Drop | ringfence_model::Action::Reject { .. }
                    )
                    && r.matches.protocol.is_full()
                    && r.matches.sport.is_full()
                    && r.matches.dport.is_full()
                    && r.matches.iif.is_any()
                    && r.matches.oif.is_any()
                    && r.matches.ct_state.contains(CtStates::NEW)
                    && (r.matches.src.v4.is_full() || r.matches.src.v6.is_full())
                    && (r.matches.dst.v4.is_full() || r.matches.dst.v6.is_full())
            })
    })
}

fn rule_string(r: &RuleRef) -> String {
    r.to_string()
}

/// Chains per run of the shared shadowed/redundant search.
const ANOMALY_RUN: usize = 64;

/// Run every check of `verify` on the families the site has addresses in
/// ([`auto_families`]).
pub fn verify(rs: &Ruleset, site: &ResolvedSite, hook: Hook) -> VerifyReport {
    verify_families(rs, site, hook, auto_families(site))
}

/// Run every check of `verify` on the families `families` marks
/// [`FamilyStatus::Analysed`]: packets of the others are not judged (not
/// in the flows, not in the excess). A family marked
/// [`FamilyStatus::NotCovered`] is a finding.
pub fn verify_families(
    rs: &Ruleset,
    site: &ResolvedSite,
    hook: Hook,
    families: Vec<FamilyScope>,
) -> VerifyReport {
    verify_with(rs, site, hook, families, None)
}

/// [`verify_families`] on a host whose own addresses are `locals` (`--local`;
/// loopback is added): after prerouting, packets to those addresses go to
/// input and the others through forward and postrouting, whatever `hook`
/// says for the forward and input paths, and address-type `LOCAL` tests
/// read them. Without them, `hook` names the path, and a ruleset that
/// translates destinations on it is not OK (a translated packet may be
/// routed to the host instead): the report says so.
pub fn verify_with(
    rs: &Ruleset,
    site: &ResolvedSite,
    hook: Hook,
    families: Vec<FamilyScope>,
    locals: Option<&AddrSet>,
) -> VerifyReport {
    verify_checked(rs, site, hook, families, locals, Checks::default())
}

/// The analyses of `verify` that are off unless asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checks {
    /// Shadowed rules judged in context as well (`verify
    /// --dead-in-context`): a rule that no packet reaching it from the base
    /// chains matches, and a user chain that no base chain reaches. Off by
    /// default for its cost (BENCHMARKS.md, "Dead rules in context").
    pub dead_in_context: bool,
}

/// With `RINGFENCE_TIMING`: the calling thread's time on a CPU and waiting
/// for one so far (Linux's per-thread scheduler statistics; nothing where
/// they are not kept), to see how verify's threads share the work.
fn thread_time(who: &str) {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/schedstat") else {
        return;
    };
    let mut ns = stat
        .split_whitespace()
        .map(|f| f.parse::<u64>().unwrap_or(0));
    let (run, wait) = (ns.next().unwrap_or(0), ns.next().unwrap_or(0));
    eprintln!(
        "timing: {who}: {:.3} s on a CPU, {:.3} s waiting for one",
        run as f64 / 1e9,
        wait as f64 / 1e9
    );
}

/// [`verify_with`] with the optional analyses `checks` turns on.
pub fn verify_checked(
    rs: &Ruleset,
    site: &ResolvedSite,
    hook: Hook,
    families: Vec<FamilyScope>,
    locals: Option<&AddrSet>,
    checks: Checks,
) -> VerifyReport {
    let host = locals.map(ringfence_model::LocalAddrs::from_set);
    verify_host(rs, site, hook, families, host.as_ref(), checks)
}

/// [`verify_checked`] on a host whose addresses may come with their
/// interfaces (`--local ADDR%IFACE`): address-type tests limited to one
/// interface ([`ringfence_model::IfaceTypes`]) read them.
pub fn verify_host(
    rs: &Ruleset,
    site: &ResolvedSite,
    hook: Hook,
    families: Vec<FamilyScope>,
    locals: Option<&ringfence_model::LocalAddrs>,
    checks: Checks,
) -> VerifyReport {
    let status_of_fam = |name: &str| families.iter().find(|f| f.family == name).map(|f| f.status);
    let analysed = [
        status_of_fam("IPv4") == Some(FamilyStatus::Analysed),
        status_of_fam("IPv6") == Some(FamilyStatus::Analysed),
    ];
    let families_not_covered = families
        .iter()
        .filter(|f| f.status == FamilyStatus::NotCovered)
        .count();
    let timing = std::env::var_os("RINGFENCE_TIMING").is_some();
    let t0 = std::time::Instant::now();
    let lap = |what: &str| {
        if timing {
            eprintln!("timing: {what}: {:?}", t0.elapsed());
        }
    };
    let u = IfaceUniverse::new([rs]);
    let u = match locals {
        Some(l) => u.with_local_addrs(l),
        None => u,
    };
    let engine = Engine::new(rs, u).with_dead_in_context(checks.dead_in_context);
    lap("compile plans");
    // Destination translations on a path routing would split, without the
    // host's addresses: where a translated packet goes is not known.
    let routing_note = (locals.is_none() && matches!(hook, Hook::Forward | Hook::Input))
        .then(|| engine.first_dnat(hook))
        .flatten()
        .map(|k| {
            format!(
                "{} translates destinations, and without --local the host's own addresses are not known: a translated packet may be routed to the host (input) instead of through it, so the result is not OK; give --local ADDR[,ADDR...]",
                engine.rule_ref(k)
            )
        });
    // Marks that are not exact fields change verdicts into unknown or
    // possible ones: say why, so the user is not left to guess.
    let marks_note = engine.u.marks.inexact.as_ref().and_then(|why| {
        let tests_marks = rs
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .any(|r| !r.matches.marks.is_empty());
        tests_marks.then(|| {
            format!(
                "marks are not exact packet fields here ({why}): every mark test may or may not match and mark rewrites are not followed, so verdicts that depend on a mark are unknown or possible"
            )
        })
    });
    // Excess: what is accepted inside the deny rows beyond every allow flow.
    let allowed: Vec<PBox> = site
        .allowed()
        .flat_map(|f| flow_boxes(f, &engine.u, false))
        .filter(|b| fam_in(analysed, b.fam))
        .collect();
    let scope: Vec<PBox> = site
        .flows
        .iter()
        .filter(|f| f.action == FlowAction::Deny)
        .flat_map(|f| flow_boxes(f, &engine.u, false))
        .filter(|b| fam_in(analysed, b.fam))
        .map(|b| {
            let h = if engine.split_route(hook).is_some() {
                Hook::Forward
            } else {
                hook
            };
            engine.restrict_to_hook(b, h, CtStates::NEW)
        })
        .flat_map(|b| enforced_part(b, rs.enforced_at.as_ref()))
        .collect();
    let search = engine.excess_search(hook, &scope, &allowed, DEFAULT_BUDGET);
    // Every core shares the work: each helper thread takes runs of chains
    // for the shadowed/redundant search from a shared counter until none is
    // left, then walks the excess search's pivot boxes (on a path that
    // rewrites marks or destinations, then classifies its disjoint
    // candidates once this thread has made them). This thread checks
    // the flows, walks pivot boxes, finishes the excess (what follows the
    // pivot boxes, the region merge and rendering) and then takes any run
    // left. Both kinds of results are put back in order. Runs first on the
    // helpers: a run is at least one whole chain and may take seconds, so
    // it should not be the last thing left; pivot boxes come in small
    // chunks.
    let next_run = std::sync::atomic::AtomicUsize::new(0);
    let helpers = crate::engine::pool::threads().saturating_sub(1);
    let (an, (flows, excess_total, excess, incomplete)) = std::thread::scope(|sc| {
        let next = &next_run;
        let engine = &engine;
        let search = &search;
        let workers: Vec<_> = (0..helpers)
            .map(|_| {
                sc.spawn(move || {
                    let runs = engine.anomalies_shared(20_000, next, ANOMALY_RUN);
                    search.help();
                    if timing {
                        thread_time("helper thread");
                    }
                    runs
                })
            })
            .collect();
        let flows: Vec<FlowResult> = site
            .allowed()
            .map(|f| check_flow_in(engine, hook, f, analysed))
            .collect();
        lap("flows and replies");
        let (acc, incomplete) = search.finish();
        lap("excess");
        let zones = zone_sets(site);
        let merged = merge_regions(outcome_boxes(engine, &acc));
        let total = merged.len();
        let possible = merged
            .iter()
            .filter(|(_, (_, certain, _))| !certain)
            .count();
        let excess_summary = summarize_excess(
            merged.iter().map(|(b, (key, certain, _))| {
                (b, key.map(|k| engine.rule_ref(k).to_string()), *certain)
            }),
            &zones,
        );
        lap("excess summary");
        let excess = render_merged(engine, merged, &zones, MAX_REGIONS);
        lap("render excess");
        let mut runs = engine.anomalies_shared(20_000, next, ANOMALY_RUN);
        for w in workers {
            runs.extend(w.join().expect("verify worker panicked"));
        }
        runs.sort_unstable_by_key(|(k, _)| *k);
        let mut an = crate::engine::Anomalies {
            shadowed: Vec::new(),
            redundant: Vec::new(),
        };
        for (_, part) in runs {
            an.shadowed.extend(part.shadowed);
            an.redundant.extend(part.redundant);
        }
        lap("shadowed and redundant");
        if timing {
            thread_time("main thread");
        }
        (
            an,
            (
                flows,
                (total, possible),
                (excess, excess_summary),
                incomplete,
            ),
        )
    });
    let (excess_total, possible_excess) = excess_total;
    let (excess, excess_summary) = excess;
    let finding = |a: &crate::engine::Anomaly| RuleFinding {
        rule: rule_string(&a.rule),
        chain: a.chain.clone(),
        by: a.by.iter().map(rule_string).collect(),
        reason: match a.reason {
            crate::engine::DeadReason::Chain => None,
            crate::engine::DeadReason::Context => Some(DeadReason::Context),
            crate::engine::DeadReason::NeverReached => Some(DeadReason::NeverReached),
        },
    };
    let shadowed: Vec<RuleFinding> = an.shadowed.iter().map(finding).collect();
    let redundant: Vec<RuleFinding> = an
        .redundant
        .iter()
        .map(|a| {
            let mut f = finding(a);
            // Nothing later decides it: the user chain's end (a return to the
            // caller) treats its packets the same way. Say so rather than
            // leave `by` empty.
            if f.by.is_empty() {
                f.by.push(format!("return at end of {}", f.chain));
            }
            f
        })
        .collect();
    let count = |s: Status| flows.iter().filter(|f| f.status == s).count();
    let replies_not_allowed = flows
        .iter()
        .filter(|f| f.replies != Status::Allowed)
        .count();
    // Never OK when unsure: an unknown flow is not allowed, a possible
    // excess region is excess, and a list cut short by the budget may hide
    // excess.
    let ok = flows.iter().all(|f| f.status == Status::Allowed)
        && replies_not_allowed == 0
        && excess_total == 0
        && !incomplete
        && families_not_covered == 0
        && routing_note.is_none();
    let summary = Summary {
        flows: flows.len(),
        allowed: count(Status::Allowed),
        partial: count(Status::Partial),
        blocked: count(Status::Blocked),
        unknown: count(Status::Unknown),
        replies_not_allowed,
        excess: excess_total,
        possible_excess,
        excess_complete: !incomplete,
        families_not_covered,
        shadowed: shadowed.len(),
        redundant: redundant.len(),
        ok,
    };
    let enforced_at = rs.enforced_at.as_ref().map(enforced_at_line);
    VerifyReport {
        ruleset: rs.source.clone(),
        hook: hook.to_string(),
        site: site.site.clone(),
        catalog: site.catalog.clone(),
        families,
        flows,
        excess,
        excess_summary,
        shadowed,
        redundant,
        default_deny: default_deny(rs, hook),
        notes: {
            let mut notes: Vec<String> = rs
                .notes
                .iter()
                .map(|n| format!("{}: {}", n.location, n.message))
                .collect();
            notes.extend(enforced_at.clone());
            notes.extend(marks_note);
            notes.extend(routing_note);
            if incomplete {
                notes.push(format!(
                    "the excess list is incomplete: part of the scope went over the analysis budget, so more may be accepted than `excess` lists ({excess_total} region(s) found); the result is not OK"
                ));
            }
            notes
        },
        enforced_at,
        summary,
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;

    fn v4(a: [u8; 4]) -> u128 {
        u32::from_be_bytes(a) as u128
    }

    fn zones() -> Vec<(String, Fam, ISet<u128>)> {
        vec![
            (
                "mgmt".to_string(),
                Fam::V4,
                ISet::range(v4([198, 18, 1, 0]), v4([198, 18, 1, 255])),
            ),
            (
                "workload".to_string(),
                Fam::V4,
                ISet::range(v4([198, 18, 2, 0]), v4([198, 18, 2, 255])),
            ),
        ]
    }

    fn tcp_box(src: ISet<u128>, dst: ISet<u128>, ports: ISet<u16>) -> PBox {
        let u = IfaceUniverse::new(std::iter::empty::<&Ruleset>());
        let mut b = PBox::full(Fam::V4, &u);
        b.src = src;
        b.dst = dst;
        b.proto = ISet::single(6);
        b.dport = ports;
        b
    }

    fn host(a: [u8; 4]) -> ISet<u128> {
        ISet::single(v4(a))
    }

    #[test]
    fn a_deny_row_keeps_exactly_the_packets_with_an_end_where_the_ruleset_is_enforced() {
        let site = ISet::range(v4([198, 18, 1, 0]), v4([198, 18, 1, 255]));
        let e = EnforcedAt {
            what: "vNICs in group site".into(),
            addrs: AddrSet {
                v4: ringfence_model::IntervalSet::range(
                    u32::from_be_bytes([198, 18, 1, 0]),
                    u32::from_be_bytes([198, 18, 1, 255]),
                ),
                v6: ringfence_model::IntervalSet::empty(),
            },
        };
        let all = fam_full(Fam::V4);
        let row = tcp_box(all.clone(), all.clone(), ISet::full());
        assert_eq!(enforced_part(row.clone(), None), vec![row.clone()]);
        let parts = enforced_part(row, Some(&e));
        assert_eq!(parts.len(), 2);
        // From the site to anywhere, then from elsewhere to the site: disjoint,
        // and together every packet with an end in the site.
        assert_eq!((&parts[0].src, &parts[0].dst), (&site, &all));
        assert_eq!(
            (&parts[1].src, &parts[1].dst),
            (&all.difference(&site), &site)
        );
        assert_eq!(
            enforced_at_line(&e),
            "scope: the ruleset applies to vNICs in group site (256 addresses); traffic with neither end there is not judged"
        );
        // A row between two outside hosts is not judged at all.
        let outside = tcp_box(host([198, 18, 3, 1]), host([198, 18, 3, 2]), ISet::full());
        assert!(enforced_part(outside, Some(&e)).is_empty());
    }

    #[test]
    fn regions_in_one_zone_pair_and_service_form_one_group_with_their_rules() {
        let a = tcp_box(
            host([198, 18, 1, 5]),
            host([198, 18, 2, 9]),
            ISet::single(22),
        );
        let b = tcp_box(
            host([198, 18, 1, 6]),
            host([198, 18, 2, 9]),
            ISet::single(22),
        );
        let c = tcp_box(
            host([198, 18, 1, 7]),
            host([198, 18, 2, 9]),
            ISet::single(22),
        );
        let g = summarize_excess(
            [
                (&a, Some("fw:1".to_string()), true),
                (&b, Some("fw:2".to_string()), false),
                (&c, Some("fw:1".to_string()), true),
            ],
            &zones(),
        );
        assert_eq!(
            g,
            vec![ExcessGroup {
                from: "mgmt".into(),
                to: "workload".into(),
                service: "tcp port 22".into(),
                regions: 3,
                certain: 2,
                possible: 1,
                rules: vec!["fw:1".into(), "fw:2".into()],
                rule_count: 2,
            }]
        );
    }

    #[test]
    fn a_side_is_its_zone_outside_the_site_or_any_when_it_spans_zones() {
        let dst = host([198, 18, 1, 20]);
        // All of mgmt and all of workload: two zones.
        let two = ISet::range(v4([198, 18, 1, 0]), v4([198, 18, 2, 255]));
        // One host of workload and one host in no zone.
        let mixed = host([198, 18, 2, 7]).union(&host([10, 0, 0, 1]));
        let outside = ISet::range(v4([10, 0, 0, 0]), v4([10, 0, 0, 255]));
        let boxes = [
            tcp_box(two, dst.clone(), ISet::range(8000, 8080)),
            tcp_box(mixed, dst.clone(), ISet::range(8000, 8080)),
            tcp_box(outside.clone(), dst.clone(), ISet::range(8000, 8080)),
            tcp_box(dst.clone(), outside, ISet::range(8000, 8080)),
        ];
        let g = summarize_excess(
            boxes.iter().map(|b| (b, Some("fw:9".to_string()), true)),
            &zones(),
        );
        let pairs: Vec<(&str, &str, &str, usize)> = g
            .iter()
            .map(|g| {
                (
                    g.from.as_str(),
                    g.to.as_str(),
                    g.service.as_str(),
                    g.regions,
                )
            })
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("any", "mgmt", "tcp ports 8000-8080", 2),
                ("mgmt", "outside the site", "tcp ports 8000-8080", 1),
                ("outside the site", "mgmt", "tcp ports 8000-8080", 1),
            ]
        );
        assert!(g
            .iter()
            .all(|g| g.certain == g.regions && g.rules == ["fw:9"]));
    }

    #[test]
    fn different_services_and_many_rules_stay_apart_and_rules_are_capped() {
        let boxes: Vec<PBox> = (0..5u8)
            .map(|i| {
                tcp_box(
                    host([198, 18, 2, i]),
                    host([198, 18, 1, 1]),
                    ISet::single(443),
                )
            })
            .collect();
        let udp = {
            let mut b = tcp_box(host([198, 18, 2, 1]), host([198, 18, 1, 1]), ISet::full());
            b.proto = ISet::single(17);
            b
        };
        let mut items: Vec<(&PBox, Option<String>, bool)> = boxes
            .iter()
            .enumerate()
            .map(|(i, b)| (b, Some(format!("fw:{i}")), true))
            .collect();
        items.push((&udp, None, false));
        let g = summarize_excess(items, &zones());
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].service, "tcp port 443");
        assert_eq!((g[0].regions, g[0].rule_count), (5, 5));
        assert_eq!(g[0].rules, ["fw:0", "fw:1", "fw:2"]);
        assert_eq!(g[1].service, "udp any port");
        assert_eq!((g[1].regions, g[1].possible, g[1].rule_count), (1, 1, 0));
    }

    #[test]
    fn a_protocol_complement_with_ports_is_not_read_as_a_port_complement() {
        let all_but_tcp = ISet::single(6u8).complement();
        assert_eq!(
            service_text(&all_but_tcp, &ISet::full(), &ISet::single(389)),
            "protocols all but tcp, port 389"
        );
        assert_eq!(
            service_text(&all_but_tcp, &ISet::full(), &ISet::full()),
            "all but tcp"
        );
    }
}
