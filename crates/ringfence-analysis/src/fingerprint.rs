//! Stable fingerprints of findings: what a finding *is*, not where it sits.
//!
//! A finding keeps its fingerprint across edits that do not change it:
//! inserting an unrelated rule, renumbering lines, new nft handles after a
//! chain is rewritten, chains listed in another order. The key of each kind:
//!
//! - a flow's status: the flow id, the direction (new connections or
//!   replies) and the status;
//! - an excess region (certain or possible): its header-space content, the
//!   source and destination addresses as merged numeric ranges (however
//!   they are written), protocol, ports and source ports as merged ranges;
//!   never the rules that accept it;
//! - a shadowed or redundant rule: its chain name and its normalized match
//!   and action (jump targets by chain name), never its line or handle;
//!   identical rules in one chain are told apart by their order among
//!   themselves;
//! - a parser note (a construct the model cannot evaluate): its message;
//! - a `diff` change: the region or the flow and its two statuses.
//!
//! The hash is FNV-1a with 128 bits over a length-prefixed canonical
//! serialization, written here so that it does not depend on the Rust
//! version or on `std`'s hasher; fingerprints are 32 hex digits. The scheme
//! name [`SCHEME`] goes with them (SARIF `partialFingerprints` key); a change
//! of what is hashed gets a new scheme name.

use crate::diff::DiffReport;
use crate::verify::{Region, RuleFinding, Status, VerifyReport};
use ringfence_model::{Action, AddrSet, IfacePattern, IfaceSet, Rule, Ruleset};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;

/// Name and version of the fingerprint scheme (the SARIF
/// `partialFingerprints` key).
pub const SCHEME: &str = "ringfenceFinding/v1";

/// A 128-bit finding fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u128);

impl Fingerprint {
    /// 32 lowercase hex digits.
    pub fn hex(self) -> String {
        format!("{:032x}", self.0)
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

const FNV128_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// A canonical serialization fed to FNV-1a: every field is written as its
/// name, its length and its bytes, so no two different field lists give the
/// same byte string.
struct Canon {
    h: u128,
}

impl Canon {
    fn new(kind: &str) -> Self {
        let mut c = Canon { h: FNV128_OFFSET };
        c.field("scheme", SCHEME);
        c.field("kind", kind);
        c
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.h ^= x as u128;
            self.h = self.h.wrapping_mul(FNV128_PRIME);
        }
    }
    fn field(&mut self, name: &str, value: &str) {
        for part in [name, value] {
            self.bytes(&(part.len() as u64).to_le_bytes());
            self.bytes(part.as_bytes());
        }
    }
    fn finish(&self) -> Fingerprint {
        Fingerprint(self.h)
    }
}

/// Which packets of a flow a status is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// New connections.
    New,
    /// Reply (established) traffic.
    Replies,
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Allowed => "allowed",
        Status::Partial => "partial",
        Status::Blocked => "blocked",
        Status::Unknown => "unknown",
        Status::Redirected => "redirected",
    }
}

/// The fingerprint of "flow `id` is `status`" for one direction.
pub fn flow(id: &str, direction: Direction, status: Status) -> Fingerprint {
    let mut c = Canon::new("flow");
    c.field("id", id);
    c.field(
        "direction",
        match direction {
            Direction::New => "new",
            Direction::Replies => "replies",
        },
    );
    c.field("status", status_name(status));
    c.finish()
}

/// Address items (`198.18.1.20`, `198.18.10.0/24`, `a-b` ranges) as one
/// canonical list of merged numeric ranges per family, so a region keeps
/// its fingerprint whichever way it is written (`/32` or not, CIDRs or a
/// range, any order). Items that are no address are kept as text.
fn canon_addrs(items: &[String]) -> String {
    use std::net::IpAddr;
    fn num(a: IpAddr) -> (u8, u128) {
        match a {
            IpAddr::V4(a) => (4, u32::from(a) as u128),
            IpAddr::V6(a) => (6, u128::from(a)),
        }
    }
    let mut ranges: Vec<(u8, u128, u128)> = Vec::new();
    let mut other: Vec<&str> = Vec::new();
    for item in items {
        let t = item.trim();
        if let Ok(n) = t.parse::<ipnet::IpNet>() {
            let (f, lo) = num(n.network());
            let (_, hi) = num(n.broadcast());
            ranges.push((f, lo, hi));
        } else if let Ok(a) = t.parse::<IpAddr>() {
            let (f, v) = num(a);
            ranges.push((f, v, v));
        } else if let Some((a, b)) = t.split_once('-').and_then(|(a, b)| {
            Some((
                a.trim().parse::<IpAddr>().ok()?,
                b.trim().parse::<IpAddr>().ok()?,
            ))
        }) {
            let ((f, lo), (g, hi)) = (num(a), num(b));
            if f == g && lo <= hi {
                ranges.push((f, lo, hi));
            } else {
                other.push(t);
            }
        } else {
            other.push(t);
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u8, u128, u128)> = Vec::new();
    for (f, lo, hi) in ranges {
        match merged.last_mut() {
            Some((g, _, h)) if *g == f && lo <= h.saturating_add(1) => *h = (*h).max(hi),
            _ => merged.push((f, lo, hi)),
        }
    }
    other.sort_unstable();
    other.dedup();
    let mut s = String::new();
    for (f, lo, hi) in merged {
        let _ = write!(s, "v{f}:{lo}-{hi};");
    }
    for o in other {
        let _ = write!(s, "text:{o};");
    }
    s
}

/// A port list (`any`, `443`, `5556, 6443`, `8000-8080`) as merged numeric
/// ranges; anything else as its text.
fn canon_ports(text: &str) -> String {
    let t = text.trim();
    if t == "any" {
        return "0-65535".into();
    }
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for item in t.split(',') {
        let item = item.trim();
        let parsed = match item.split_once('-') {
            Some((a, b)) => a.trim().parse().ok().zip(b.trim().parse().ok()),
            None => item.parse().ok().map(|v| (v, v)),
        };
        match parsed {
            Some((lo, hi)) if lo <= hi && hi <= 65_535 => ranges.push((lo, hi)),
            _ => return format!("text:{t}"),
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some((_, h)) if lo <= *h + 1 => *h = (*h).max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    if merged == [(0, 65_535)] {
        return "0-65535".into();
    }
    let mut s = String::new();
    write_ranges(&mut s, merged.into_iter());
    s
}

fn region_fields(c: &mut Canon, r: &Region) {
    c.field("sources", &canon_addrs(&r.sources));
    c.field("destinations", &canon_addrs(&r.destinations));
    let mut proto: Vec<String> = r
        .protocol
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    proto.sort();
    c.field("protocol", &proto.join(","));
    c.field("ports", &canon_ports(&r.ports));
    c.field(
        "source-ports",
        &canon_ports(r.source_ports.as_deref().unwrap_or("any")),
    );
    // Only regions restricted in the rarer fields carry them, so every
    // other region keeps the fingerprint it had before they were fields.
    if let Some(h) = &r.header {
        c.field("header", h);
    }
}

/// The fingerprint of a region finding of kind `kind` (`excess`,
/// `possible-excess`, `newly-allowed`, `newly-blocked`): its header-space
/// content only.
pub fn region(kind: &str, r: &Region) -> Fingerprint {
    let mut c = Canon::new(kind);
    region_fields(&mut c, r);
    c.finish()
}

/// The fingerprint of a parser note (a construct the model cannot evaluate
/// exactly): its message without the leading location (`file:line: `).
pub fn note(text: &str) -> Fingerprint {
    let mut c = Canon::new("note");
    c.field("message", strip_location(text));
    c.finish()
}

/// `file:12: message` / `file:12:3: message` -> `message`; other text as is.
fn strip_location(text: &str) -> &str {
    let Some((head, rest)) = text.split_once(": ") else {
        return text;
    };
    let mut parts = head.rsplit(':');
    let numeric =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if numeric(parts.next()) {
        rest
    } else {
        text
    }
}

fn write_ranges<T: std::fmt::Display>(s: &mut String, ranges: impl Iterator<Item = (T, T)>) {
    for (i, (lo, hi)) in ranges.enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{lo}-{hi}");
    }
}

fn write_addrs(s: &mut String, a: &AddrSet) {
    s.push_str("v4[");
    write_ranges(s, a.v4.ranges().iter().copied());
    s.push_str("]v6[");
    write_ranges(s, a.v6.ranges().iter().copied());
    s.push(']');
}

fn write_ifaces(s: &mut String, set: &IfaceSet) {
    let mut pats: Vec<String> = set
        .patterns
        .iter()
        .map(|p| match p {
            IfacePattern::Exact(n) => format!("={n}"),
            IfacePattern::Prefix(n) => format!("^{n}"),
        })
        .collect();
    pats.sort();
    pats.dedup();
    let _ = write!(
        s,
        "{}[{}]",
        if set.negated { "not" } else { "only" },
        pats.join(",")
    );
}

/// The normalized text of one model rule: match fields and action, jump
/// targets by chain name. Neither the source position nor the comment.
fn rule_text(rs: &Ruleset, r: &Rule) -> String {
    let m = &r.matches;
    let mut s = String::new();
    s.push_str("src=");
    write_addrs(&mut s, &m.src);
    s.push_str(" dst=");
    write_addrs(&mut s, &m.dst);
    s.push_str(" proto=");
    write_ranges(&mut s, m.protocol.ranges().iter().copied());
    s.push_str(" sport=");
    write_ranges(&mut s, m.sport.ranges().iter().copied());
    s.push_str(" dport=");
    write_ranges(&mut s, m.dport.ranges().iter().copied());
    s.push_str(" iif=");
    write_ifaces(&mut s, &m.iif);
    s.push_str(" oif=");
    write_ifaces(&mut s, &m.oif);
    let _ = write!(s, " ct={}", m.ct_state.0);
    for t in &m.marks {
        let _ = write!(
            s,
            " {:?}{}{:#x}/{:#x}",
            t.field,
            if t.invert { "!=" } else { "=" },
            t.value,
            t.mask
        );
    }
    if m.ct_nat.is_test() {
        let _ = write!(s, " ctnat={:#x}", m.ct_nat.0);
    }
    if let Some(o) = &m.ct_orig {
        let _ = write!(
            s,
            " ctorig=[{:?} {:?} {:?} {:?} {:?} {:?}]",
            o.src.v4.ranges(),
            o.src.v6.ranges(),
            o.dst.v4.ranges(),
            o.dst.v6.ranges(),
            o.sport.ranges(),
            o.dport.ranges()
        );
    }
    if m.src_type.is_test() {
        let _ = write!(s, " srctype={:#x}", m.src_type.0);
    }
    if m.dst_type.is_test() {
        let _ = write!(s, " dsttype={:#x}", m.dst_type.0);
    }
    if let Some(l) = m.iface_types.as_deref() {
        for (t, side, dev) in l.tests() {
            let _ = write!(s, " {side:?}type@{dev:?}={:#x}", t.0);
        }
    }
    for o in &m.opaque {
        let _ = write!(s, " opaque[{}]", o.text);
    }
    let chain_name = |id: ringfence_model::ChainId| {
        rs.chains
            .get(id.0)
            .map_or_else(|| format!("#{}", id.0), |c| c.name.clone())
    };
    let _ = match &r.action {
        Action::Accept => write!(s, " -> accept"),
        Action::Drop => write!(s, " -> drop"),
        Action::Reject { with } => write!(s, " -> reject {}", with.as_deref().unwrap_or("")),
        Action::Return => write!(s, " -> return"),
        Action::Jump { target } => write!(s, " -> jump {}", chain_name(*target)),
        Action::Goto { target } => write!(s, " -> goto {}", chain_name(*target)),
        Action::Continue => write!(s, " -> continue"),
        Action::Nat(n) => write!(s, " -> {n}"),
        Action::Mark(m) => write!(
            s,
            " -> mark {:?} clear={:#x} xor={:#x} copy={:#x}",
            m.field, m.clear, m.xor, m.copy
        ),
    };
    s
}

/// The normalized text of every source rule of a ruleset, by the rule
/// reference `verify` prints (`file:line`, `family table chain handle N`),
/// with its chain name. Build it once per ruleset and fingerprint many rule
/// findings with [`RuleTexts::fingerprint`].
pub struct RuleTexts {
    by_ref: HashMap<String, (String, String)>,
}

impl RuleTexts {
    /// Index the rules of `rs`. A source rule that became several model
    /// rules (a disjunction) is the concatenation of their texts.
    pub fn new(rs: &Ruleset) -> Self {
        let mut by_ref: HashMap<String, (String, String)> = HashMap::new();
        for chain in &rs.chains {
            for r in &chain.rules {
                let text = rule_text(rs, r);
                let e = by_ref
                    .entry(r.origin.to_string())
                    .or_insert_with(|| (chain.name.clone(), String::new()));
                if !e.1.is_empty() {
                    e.1.push_str(" | ");
                }
                e.1.push_str(&text);
            }
        }
        RuleTexts { by_ref }
    }

    /// The normalized text of the rule `rule_ref`, if the ruleset has it.
    pub fn text(&self, rule_ref: &str) -> Option<&str> {
        self.by_ref.get(rule_ref).map(|(_, t)| t.as_str())
    }

    /// The fingerprint of a rule finding of kind `kind` (`shadowed`,
    /// `redundant`): chain name and normalized rule text. A rule this
    /// ruleset does not have (it cannot come from `verify` of the same
    /// ruleset) falls back to its reference, so it still gets a fingerprint.
    pub fn fingerprint(&self, kind: &str, f: &RuleFinding) -> Fingerprint {
        let mut c = Canon::new(kind);
        c.field("chain", &f.chain);
        match self.by_ref.get(&f.rule) {
            Some((_, text)) => c.field("rule", text),
            None => c.field("rule-ref", &f.rule),
        }
        c.finish()
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A flow's new-connection status (every flow has one; `allowed` is no problem).
    Flow,
    /// A flow's reply status.
    Replies,
    /// A region certainly accepted beyond the required flows.
    Excess,
    /// A region possibly accepted beyond the required flows (a rule the model cannot evaluate decides it).
    PossibleExcess,
    /// A rule that never matches.
    Shadowed,
    /// A rule whose removal changes nothing.
    Redundant,
    /// A construct the parser could not model exactly.
    Note,
    /// `diff`: accepted by the new ruleset, not by the old.
    NewlyAllowed,
    /// `diff`: accepted by the old ruleset, not by the new.
    NewlyBlocked,
    /// `diff`: a flow whose status changes.
    FlowChange,
}

impl FindingKind {
    /// The kebab-case name (`possible-excess`).
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Flow => "flow",
            FindingKind::Replies => "replies",
            FindingKind::Excess => "excess",
            FindingKind::PossibleExcess => "possible-excess",
            FindingKind::Shadowed => "shadowed",
            FindingKind::Redundant => "redundant",
            FindingKind::Note => "note",
            FindingKind::NewlyAllowed => "newly-allowed",
            FindingKind::NewlyBlocked => "newly-blocked",
            FindingKind::FlowChange => "flow-change",
        }
    }
}

/// One finding of a report with its fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// The fingerprint (hex in JSON).
    pub fingerprint: Fingerprint,
    /// The flow id, the region (`tcp 198.18.10.0/24 -> 198.18.1.20 ports
    /// 8080`), the rule reference, or the note.
    pub subject: String,
    /// For flow findings: the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The rules involved (where it is now; not part of the fingerprint).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// The chain of a rule finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The region of a region finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
}

impl Finding {
    /// Whether this finding is a problem: anything but an allowed flow.
    pub fn is_problem(&self) -> bool {
        !(matches!(self.kind, FindingKind::Flow | FindingKind::Replies)
            && self.status == Some(Status::Allowed))
    }
}

/// Give equal fingerprints in one list distinct values: the n-th repeat
/// (n >= 1, in list order) is rehashed with its ordinal. Identical rules in
/// one chain stay apart, and each keeps its value while the others' order
/// among themselves stays.
fn separate(findings: &mut [Finding]) {
    let mut seen: HashMap<Fingerprint, u32> = HashMap::new();
    for f in findings.iter_mut() {
        let n = seen.entry(f.fingerprint).or_insert(0);
        if *n > 0 {
            let mut c = Canon::new("repeat");
            c.field("of", &f.fingerprint.hex());
            c.field("ordinal", &n.to_string());
            f.fingerprint = c.finish();
        }
        *n += 1;
    }
}

fn region_finding(kind: FindingKind, r: &Region) -> Finding {
    Finding {
        kind,
        fingerprint: region(kind.name(), r),
        subject: r.describe(),
        status: None,
        rules: r.rules.clone(),
        chain: None,
        region: Some(r.clone()),
    }
}

/// Every finding of a verify report, fingerprinted: each flow's status for
/// new connections and for replies (allowed ones too, so that a watcher
/// sees a flow become blocked), each excess region, each shadowed and
/// redundant rule (their text from `rs`, the ruleset verified) and each
/// note. Order: as in the report.
pub fn verify_findings(report: &VerifyReport, rs: &Ruleset) -> Vec<Finding> {
    let mut out = Vec::new();
    for f in &report.flows {
        for (kind, dir, status, rules) in [
            (FindingKind::Flow, Direction::New, f.status, &f.rules),
            (
                FindingKind::Replies,
                Direction::Replies,
                f.replies,
                &f.reply_rules,
            ),
        ] {
            out.push(Finding {
                kind,
                fingerprint: flow(&f.id, dir, status),
                subject: f.id.clone(),
                status: Some(status),
                rules: rules.clone(),
                chain: None,
                region: None,
            });
        }
    }
    for r in &report.excess {
        let kind = if r.certain {
            FindingKind::Excess
        } else {
            FindingKind::PossibleExcess
        };
        out.push(region_finding(kind, r));
    }
    let texts = RuleTexts::new(rs);
    for (kind, list) in [
        (FindingKind::Shadowed, &report.shadowed),
        (FindingKind::Redundant, &report.redundant),
    ] {
        for x in list {
            out.push(Finding {
                kind,
                fingerprint: texts.fingerprint(kind.name(), x),
                subject: x.rule.clone(),
                status: None,
                rules: x.by.clone(),
                chain: Some(x.chain.clone()),
                region: None,
            });
        }
    }
    for n in &report.notes {
        // A parser note's location (file, line) is no part of what it is.
        let message = rs
            .notes
            .iter()
            .find(|p| {
                n.len() == p.location.len() + 2 + p.message.len()
                    && n.starts_with(&p.location)
                    && n.ends_with(&p.message)
            })
            .map_or(n.as_str(), |p| p.message.as_str());
        out.push(Finding {
            kind: FindingKind::Note,
            fingerprint: note(message),
            subject: n.clone(),
            status: None,
            rules: Vec::new(),
            chain: None,
            region: None,
        });
    }
    separate(&mut out);
    out
}

/// Every finding of a diff report, fingerprinted: newly allowed and newly
/// blocked regions by content, flow changes by flow id and both statuses of
/// both directions.
pub fn diff_findings(report: &DiffReport) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in &report.newly_allowed {
        out.push(region_finding(FindingKind::NewlyAllowed, r));
    }
    for r in &report.newly_blocked {
        out.push(region_finding(FindingKind::NewlyBlocked, r));
    }
    for f in &report.flows {
        let mut c = Canon::new(FindingKind::FlowChange.name());
        c.field("id", &f.id);
        c.field("old", status_name(f.old));
        c.field("new", status_name(f.new));
        c.field("old-replies", status_name(f.old_replies));
        c.field("new-replies", status_name(f.new_replies));
        out.push(Finding {
            kind: FindingKind::FlowChange,
            fingerprint: c.finish(),
            subject: f.id.clone(),
            status: Some(f.new),
            rules: Vec::new(),
            chain: None,
            region: None,
        });
    }
    separate(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_128_matches_the_published_test_vector() {
        // FNV-1a 128 of "a" (from the FNV reference test suite).
        let mut c = Canon { h: FNV128_OFFSET };
        c.bytes(b"a");
        assert_eq!(c.finish().hex(), "d228cb696f1a8caf78912b704e4a8964");
    }

    #[test]
    fn flow_fingerprint_is_pinned_and_depends_on_every_part() {
        let a = flow("to-vcenter", Direction::New, Status::Blocked);
        // Pinned: a different value means every stored fingerprint changes,
        // which needs a new SCHEME.
        assert_eq!(a.hex(), "2f7db62e11eeccd32c185d41312cfc71");
        assert_ne!(a, flow("to-vcenter", Direction::Replies, Status::Blocked));
        assert_ne!(a, flow("to-vcenter", Direction::New, Status::Partial));
        assert_ne!(a, flow("to-harbor", Direction::New, Status::Blocked));
    }

    #[test]
    fn location_prefix_of_notes_is_ignored() {
        assert_eq!(
            note("a.rules:12: -m recent cannot be evaluated"),
            note("a.rules:40: -m recent cannot be evaluated")
        );
        assert_eq!(note("a.rules:12:3: x"), note("b.rules:1:1: x"));
        assert_ne!(note("a.rules:12: x"), note("a.rules:12: y"));
        assert_eq!(strip_location("no location: here"), "no location: here");
    }

    #[test]
    fn region_content_is_canonical_however_it_is_written() {
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            canon_addrs(&strs(&["198.18.1.20/32", "198.18.10.0/24"])),
            canon_addrs(&strs(&["198.18.10.0-198.18.10.255", "198.18.1.20"]))
        );
        assert_eq!(
            canon_addrs(&strs(&["198.18.10.0/25", "198.18.10.128/25"])),
            canon_addrs(&strs(&["198.18.10.0/24"]))
        );
        assert_ne!(
            canon_addrs(&strs(&["198.18.10.0/24"])),
            canon_addrs(&strs(&["198.18.11.0/24"]))
        );
        assert_eq!(canon_ports("6443, 5556"), canon_ports("5556,6443"));
        assert_eq!(canon_ports("any"), canon_ports("0-65535"));
        assert_eq!(canon_ports("80-89, 90"), canon_ports("80-90"));
        assert_ne!(canon_ports("8080"), canon_ports("8081"));
        assert_eq!(canon_ports("all but 53"), "text:all but 53");
    }

    #[test]
    fn repeats_get_distinct_fingerprints_in_order() {
        let f = |fp| Finding {
            kind: FindingKind::Shadowed,
            fingerprint: Fingerprint(fp),
            subject: String::new(),
            status: None,
            rules: vec![],
            chain: None,
            region: None,
        };
        let mut v = vec![f(1), f(2), f(1), f(1)];
        separate(&mut v);
        assert_eq!(v[0].fingerprint, Fingerprint(1));
        assert_eq!(v[1].fingerprint, Fingerprint(2));
        assert_ne!(v[2].fingerprint, Fingerprint(1));
        assert_ne!(v[2].fingerprint, v[3].fingerprint);
    }
}
