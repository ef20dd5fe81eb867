//! Incremental verification (issue 19): keep `verify`'s findings current
//! while rules change, recomputing only what a change can touch.
//!
//! The principle: packets outside a rule's match never meet it, so a rule
//! insert, delete or replace in chain X changes the fate of packets inside
//! Δ, the union of the old and new rules' matches, and nothing else. In a
//! chain C that reaches X through jumps, the changed part of C's plan is Δ
//! cut by the jump rules on the way (Δ_C). So:
//!
//! - a required flow is judged again only when its packets meet Δ on its
//!   path;
//! - excess is kept per accepting (unknown, fork) box of the pivot chain:
//!   a box that does not meet Δ keeps its regions (everything its walk
//!   reads lies inside the box), the others are recomputed and the merged
//!   region list is updated group by group;
//! - a rule's shadowed/redundant judgement holds packet by packet, so for a
//!   rule whose match meets Δ_C only the part inside Δ_C is judged again,
//!   and combined with what was known outside it (a cached witness packet
//!   outside Δ_C keeps a rule "reached" or "not redundant").
//!
//! Each recomputation runs the ordinary [`Engine`] on a *sub-ruleset*: the
//! rules whose match, cut by the jumps that lead to them, meets the region
//! asked about (plus the base chains on the path, so it is the same). For the
//! questions that read only the rule that decides a packet (flows,
//! excess), the packets a rule certainly decides (accept, drop, reject,
//! nothing the model cannot evaluate) are taken out of the region for the
//! rules after it in that chain. Every box a walk of that region meets is
//! in it, in the same order, so the walk cuts the region exactly as on the
//! whole ruleset: findings and fingerprints are
//! those of a full `verify` (the replay property test in
//! `tests/incremental.rs` checks it after every step).
//!
//! When a change is outside what this handles (marks, a base chain's policy
//! or set of base chains, new interface names, a region that meets a large
//! part of the ruleset, a budget hit), the update is a full verify and the
//! [`ChangeRecord`] says why.

mod context;

use context::{Goal, Walk};

use crate::engine::{may_match, Engine, RuleAnomaly, DEFAULT_BUDGET};
use crate::fingerprint::{self, Finding, FindingKind};
use crate::space::{match_boxes, Boxes, Fam, ISet, IfaceUniverse, PBox};
use crate::verify::{
    auto_families, check_flow_in, enforced_part, fam_in, flow_boxes, render_merged, reply_hook,
    zone_sets, Checks, FamilyStatus, FlowResult, Status, Summary,
};
use ringfence_model::{Action, ChainId, CtStates, Hook, Match, Policy, Rule, RuleRef, Ruleset};
use ringfence_site::{FlowAction, ResolvedSite};
use std::collections::{BTreeMap, HashMap, HashSet};

mod hull;
mod merge;
use hull::{ChainHulls, HullSet};
use merge::{Merge, Merged, RKey};

/// A stable rule identity: survives renumbering and unrelated edits.
type Id = u64;

/// Budget of one rule's shadowed/redundant search (as `verify`).
const ANOMALY_BUDGET: usize = 20_000;

/// A change whose sub-ruleset would hold more than this share of the rules
/// is done as a full verify (it would cost about as much).
const MAX_SHARE: usize = 4;

/// At most this many boxes describe a changed region in one chain.
const MAX_DELTA_BOXES: usize = 512;

/// One edit of a ruleset, by chain name and rule position.
#[derive(Debug, Clone)]
pub enum RuleChange {
    /// Insert `rule` before position `at` of `chain`.
    Insert {
        /// Chain name.
        chain: String,
        /// Position.
        at: usize,
        /// The rule (jump targets must exist in the ruleset).
        rule: Rule,
    },
    /// Delete the rule at `at`.
    Delete {
        /// Chain name.
        chain: String,
        /// Position.
        at: usize,
    },
    /// Replace the rule at `at`.
    Replace {
        /// Chain name.
        chain: String,
        /// Position.
        at: usize,
        /// The new rule.
        rule: Rule,
    },
    /// Replace every rule of a chain (a kube-proxy resync). A chain that
    /// does not exist is created (not as a base chain).
    ReplaceChain {
        /// Chain name.
        chain: String,
        /// Its new rules.
        rules: Vec<Rule>,
    },
}

/// How an update was done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeRecord {
    /// `None`: incrementally; `Some(why)`: by a full verify, and why.
    pub full: Option<String>,
    /// Model rules that differ (old and new, counted once each).
    pub rules_changed: usize,
    /// Flows judged again.
    pub flows_rejudged: usize,
    /// Pivot boxes whose excess was recomputed.
    pub excess_boxes: usize,
    /// Rules whose shadowed/redundant judgement was looked at again.
    pub rules_rejudged: usize,
}

/// What a rule group (one source rule) is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    None,
    Shadowed,
    Redundant,
}

/// Chains with at least this many rules are searched through an index.
const INDEXED: usize = 8;

/// Pre-merge excess regions of one pivot box.
struct PieceEntry {
    b: PBox,
    items: Vec<usize>,
}

/// Everything known about the ruleset when it is verified incrementally.
struct Cache {
    /// Per chain (by name): stable id of each model rule (a source rule's
    /// model rules share one).
    ids: HashMap<String, Vec<Id>>,
    /// Per chain: each model rule's match boxes.
    boxes: HashMap<String, Vec<Boxes>>,
    /// id -> chain name.
    chain_of: HashMap<Id, String>,
    next_id: Id,
    /// Flow results in site order (rules as stable references).
    flows: Vec<FlowResult>,
    /// Per allow flow: its boxes for new connections and replies, on the path.
    flow_boxes: Vec<(Vec<PBox>, Vec<PBox>)>,
    scope: Vec<PBox>,
    allowed: Vec<PBox>,
    /// Pivot boxes with their regions; freed slots are `None`.
    pieces: Vec<Option<PieceEntry>>,
    free_pieces: Vec<usize>,
    /// Pivot box slots by destination hull.
    piece_hulls: HullSet<usize>,
    /// Per long chain (by name): its rules by destination hull, kept up
    /// to date as rules come and go.
    index: HashMap<String, ChainHulls>,
    merge: Merge,
    /// Merged regions by fingerprint and kind.
    regions: BTreeMap<(fingerprint::Fingerprint, bool), Merged>,
    /// Shadowed/redundant judgement per source rule id, with its `by`.
    kinds: HashMap<Id, (Kind, Vec<String>)>,
    /// Per chain (by name): the chains that jump or go to it, once per rule.
    callers: HashMap<String, Vec<String>>,
    /// Every interface pattern of the ruleset (`Debug` form).
    patterns: HashSet<String>,
    /// Witness packets: reach (for rules judged reached) or "decided
    /// differently without it" (for rules judged not redundant).
    witness: HashMap<Id, PBox>,
    /// Dead rules in context (see `context`).
    ctx: context::CtxCache,
}

/// An incremental verifier: build it from a ruleset, feed it changes, read
/// the findings (see the module documentation).
pub struct Incremental {
    rs: Ruleset,
    /// Chain name -> index in `rs` (the model's lookup is a linear scan).
    names: HashMap<String, usize>,
    /// The base chains on the path `hook` names and on its replies' path
    /// (they change only with the base chains, which a full verify follows).
    path: Vec<ChainId>,
    rpath: Vec<ChainId>,
    site: ResolvedSite,
    hook: Hook,
    u: IfaceUniverse,
    /// `None` when the ruleset is verified in full on every change (then
    /// `full` holds the findings of the last verify).
    cache: Option<Cache>,
    full: Option<(Vec<Finding>, Summary)>,
    /// The host's own addresses (`--local`), when given: routing by them is
    /// not followed incrementally, so every change is a full verify with them.
    locals: Option<ringfence_model::LocalAddrs>,
    /// The optional analyses, as `verify` runs them (dead rules in context).
    checks: Checks,
    /// Why updates are full verifies for this ruleset.
    why_full: Option<String>,
}

/// The stable reference a sub-ruleset gives a rule.
fn id_ref(id: Id) -> RuleRef {
    RuleRef::NsxPath {
        path: format!("\u{1}{id}"),
    }
}

fn parse_id(s: &str) -> Option<Id> {
    s.strip_prefix('\u{1}')?.parse().ok()
}

fn overlaps_any(a: &[PBox], b: &[PBox]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.overlaps(y)))
}

fn cut(a: &[PBox], b: &[PBox]) -> Vec<PBox> {
    if !overlaps_any(a, b) {
        return Vec::new();
    }
    a.iter()
        .flat_map(|x| b.iter().filter_map(move |y| x.intersect(y)))
        .collect()
}

/// A chain a sub-ruleset starts from, with the packets that enter it.
#[derive(Clone)]
struct Root {
    chain: usize,
    /// `None`: every packet (every rule is kept).
    region: Option<Vec<PBox>>,
    /// Whether the question asked of the sub-ruleset reads only the first
    /// rule that decides a packet (flows, excess): then a rule that
    /// certainly decides part of the region takes that part out for the
    /// rules after it. A rule's shadowed/redundant judgement reads what
    /// comes after the rule, so it never sets this.
    first_match: bool,
}

impl Root {
    fn all(chain: usize) -> Self {
        Root {
            chain,
            region: None,
            first_match: false,
        }
    }

    fn of(chain: usize, region: Vec<PBox>, first_match: bool) -> Self {
        Root {
            chain,
            region: Some(region),
            first_match,
        }
    }
}

/// At most this many boxes describe what is left of a region after the
/// rules that decide part of it are taken out; beyond, it is kept whole
/// (a larger region only keeps more rules).
const MAX_REST_BOXES: usize = 64;

/// `q` without the packets of `by`, when that takes few boxes.
fn subtract_region(q: &[PBox], by: &[PBox]) -> Option<Vec<PBox>> {
    if !overlaps_any(q, by) {
        return None;
    }
    let refs: Vec<&PBox> = by.iter().collect();
    let mut out = Vec::new();
    for x in q {
        out.extend(crate::space::subtract_all(x, &refs, MAX_REST_BOXES)?);
        if out.len() > MAX_REST_BOXES {
            return None;
        }
    }
    Some(out)
}

/// Whether the ruleset uses something the incremental path does not follow.
fn not_incremental(rs: &Ruleset, hook: Hook) -> Option<String> {
    if rs.enforced_at.is_some() {
        return Some("the ruleset is enforced only at some addresses".into());
    }
    for c in &rs.chains {
        for r in &c.rules {
            if matches!(r.action, Action::Mark(_)) || !r.matches.marks.is_empty() {
                return Some(format!("marks are rewritten or tested (chain {})", c.name));
            }
            // A translated packet meets later rules with other addresses, so
            // a rule's match no longer bounds the packets it changes.
            if matches!(r.action, Action::Nat(_)) || r.matches.has_nat_fields() {
                return Some(format!("addresses are translated (chain {})", c.name));
            }
        }
    }
    let bases = rs.path_chains(hook);
    match bases.first() {
        None => return Some("no base chain on the path".into()),
        Some(&c) if rs.chain(c).base.as_ref().map(|b| b.policy) != Some(Policy::Drop) => {
            return Some(format!(
                "the first base chain on the path ({}) does not drop by policy",
                rs.chain(c).name
            ))
        }
        _ => {}
    }
    for &h in &[reply_hook(hook), hook] {
        for c in rs.path_chains(h) {
            if !crate::space::Stage::of_chain(rs, h, c.0).is_plain() {
                return Some(format!(
                    "base chain {} runs at a stage that hides fields",
                    rs.chain(c).name
                ));
            }
        }
    }
    None
}

/// Rules equal for the delta: match and action, jump targets by name.
fn same_rule(a: &Rule, ars: &Ruleset, b: &Rule, brs: &Ruleset) -> bool {
    if a.matches != b.matches {
        return false;
    }
    match (&a.action, &b.action) {
        (Action::Jump { target: x }, Action::Jump { target: y })
        | (Action::Goto { target: x }, Action::Goto { target: y }) => {
            ars.chain(*x).name == brs.chain(*y).name
        }
        (x, y) => x == y,
    }
}

/// The rule-level delta between two rulesets, chain by chain (by name):
/// for each chain that differs, the range of old rules replaced by a range
/// of new ones (common first and last rules left out), widened so that a
/// source rule's model rules stay together. Chains only in `new` are
/// created (old range empty), chains only in `old` emptied.
pub fn delta(
    old: &Ruleset,
    new: &Ruleset,
) -> Vec<(String, std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let by_name: HashMap<&str, usize> = new
        .chains
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut seen = HashSet::new();
    for oc in &old.chains {
        let empty: &[Rule] = &[];
        let nr: &[Rule] = by_name
            .get(oc.name.as_str())
            .map_or(empty, |&i| &new.chains[i].rules);
        seen.insert(oc.name.as_str());
        let or = &oc.rules[..];
        let mut p = 0;
        while p < or.len() && p < nr.len() && same_rule(&or[p], old, &nr[p], new) {
            p += 1;
        }
        let mut s = 0;
        while s < or.len() - p
            && s < nr.len() - p
            && same_rule(&or[or.len() - 1 - s], old, &nr[nr.len() - 1 - s], new)
        {
            s += 1;
        }
        if p == or.len() && p == nr.len() {
            continue;
        }
        let (mut a, mut b) = (p, or.len() - s);
        let (mut c, mut d) = (p, nr.len() - s);
        // Keep source rules whole on both sides.
        while a > 0
            && ((a < or.len() && or[a - 1].origin == or[a].origin)
                || (c > 0 && c < nr.len() && nr[c - 1].origin == nr[c].origin))
        {
            a -= 1;
            c -= 1;
        }
        while b < or.len()
            && d < nr.len()
            && ((b > 0 && or[b - 1].origin == or[b].origin)
                || (d > 0 && nr[d - 1].origin == nr[d].origin))
        {
            b += 1;
            d += 1;
        }
        out.push((oc.name.clone(), a..b, c..d));
    }
    for nc in &new.chains {
        if !seen.contains(nc.name.as_str()) {
            out.push((nc.name.clone(), 0..0, 0..nc.rules.len()));
        }
    }
    out
}

impl Incremental {
    /// Verify `rs` for `site` on the path `hook` names (as
    /// [`crate::verify::verify`] does, with the families the site has
    /// addresses in) and keep what later changes need.
    pub fn new(rs: Ruleset, site: &ResolvedSite, hook: Hook) -> Self {
        Self::with_local(rs, site, hook, None)
    }

    /// [`Incremental::new`] on a host whose own addresses are `locals`
    /// (`--local`, as [`crate::verify::verify_with`] takes them). With them
    /// the packet's path after prerouting depends on its (rewritten)
    /// destination, which the incremental judgement does not follow: every
    /// change is then a full verify, with the same findings and
    /// fingerprints.
    pub fn with_local(
        rs: Ruleset,
        site: &ResolvedSite,
        hook: Hook,
        locals: Option<ringfence_model::AddrSet>,
    ) -> Self {
        Self::with_checks(rs, site, hook, locals, Checks::default())
    }

    /// The optional analyses this verifier keeps up to date.
    pub fn checks(&self) -> Checks {
        self.checks
    }

    /// [`Incremental::with_local`] with the optional analyses `checks`
    /// turns on, kept up to date on every change as
    /// [`crate::verify::verify_checked`] would give them.
    pub fn with_checks(
        rs: Ruleset,
        site: &ResolvedSite,
        hook: Hook,
        locals: Option<ringfence_model::AddrSet>,
        checks: Checks,
    ) -> Self {
        let host = locals.as_ref().map(ringfence_model::LocalAddrs::from_set);
        Self::with_host(rs, site, hook, host, checks)
    }

    /// [`Incremental::with_checks`] on a host whose addresses may come with
    /// their interfaces (`--local ADDR%IFACE`), as
    /// [`crate::verify::verify_host`] takes them.
    pub fn with_host(
        rs: Ruleset,
        site: &ResolvedSite,
        hook: Hook,
        locals: Option<ringfence_model::LocalAddrs>,
        checks: Checks,
    ) -> Self {
        let u = IfaceUniverse::new([&rs]);
        let mut me = Incremental {
            names: HashMap::new(),
            path: Vec::new(),
            rpath: Vec::new(),
            rs,
            site: site.clone(),
            hook,
            u,
            cache: None,
            full: None,
            locals,
            checks,
            why_full: None,
        };
        me.rebuild();
        me
    }

    fn reindex(&mut self) {
        self.names = self
            .rs
            .chains
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        self.path = self.rs.path_chains(self.hook);
        self.rpath = self.rs.path_chains(reply_hook(self.hook));
    }

    fn chain_id(&self, name: &str) -> Option<ChainId> {
        self.names.get(name).map(|&i| ChainId(i))
    }

    /// The ruleset as it is now.
    pub fn ruleset(&self) -> &Ruleset {
        &self.rs
    }

    /// Why every update is a full verify for this ruleset, if it is.
    pub fn not_incremental(&self) -> Option<&str> {
        self.why_full.as_deref()
    }

    fn analysed(&self) -> [bool; 2] {
        let fams = auto_families(&self.site);
        let st = |n: &str| {
            fams.iter().find(|f| f.family == n).map(|f| f.status) == Some(FamilyStatus::Analysed)
        };
        [st("IPv4"), st("IPv6")]
    }

    /// Recompute everything (a full verify).
    fn rebuild(&mut self) {
        self.reindex();
        self.u = IfaceUniverse::new([&self.rs]);
        self.cache = None;
        self.full = None;
        self.why_full = match self.locals {
            Some(_) => Some(
                "the host's addresses (--local) route packets, which is verified in full".into(),
            ),
            None => not_incremental(&self.rs, self.hook),
        };
        if self.why_full.is_none() {
            match self.build_cache() {
                Ok(c) => self.cache = Some(c),
                Err(why) => self.why_full = Some(why),
            }
        }
        if self.cache.is_none() {
            let report = crate::verify::verify_host(
                &self.rs,
                &self.site,
                self.hook,
                auto_families(&self.site),
                self.locals.as_ref(),
                self.checks,
            );
            let f = fingerprint::verify_findings(&report, &self.rs);
            self.full = Some((f, report.summary));
        }
    }

    fn build_cache(&self) -> Result<Cache, String> {
        let mut c = Cache {
            ids: HashMap::new(),
            boxes: HashMap::new(),
            chain_of: HashMap::new(),
            next_id: 0,
            flows: Vec::new(),
            flow_boxes: Vec::new(),
            scope: Vec::new(),
            allowed: Vec::new(),
            pieces: Vec::new(),
            free_pieces: Vec::new(),
            piece_hulls: HullSet::default(),
            index: HashMap::new(),
            merge: Merge::default(),
            regions: BTreeMap::new(),
            kinds: HashMap::new(),
            witness: HashMap::new(),
            callers: HashMap::new(),
            patterns: HashSet::new(),
            ctx: Default::default(),
        };
        for ch in &self.rs.chains {
            for r in &ch.rules {
                if let Action::Jump { target } | Action::Goto { target } = r.action {
                    c.callers
                        .entry(self.rs.chain(target).name.clone())
                        .or_default()
                        .push(ch.name.clone());
                }
                for set in [&r.matches.iif, &r.matches.oif] {
                    for p in &set.patterns {
                        c.patterns.insert(format!("{p:?}"));
                    }
                }
            }
            let (ids, boxes) = self.number(&mut c, &ch.name, &ch.rules);
            if boxes.len() >= INDEXED {
                c.index.insert(
                    ch.name.clone(),
                    ChainHulls::build(boxes.iter().map(|b| b.as_slice())),
                );
            }
            c.ids.insert(ch.name.clone(), ids);
            c.boxes.insert(ch.name.clone(), boxes);
        }
        let all: Vec<Root> = (0..self.rs.chains.len()).map(Root::all).collect();
        let (sub, _) = self.sub_ruleset(&c, &all, usize::MAX).expect("no limit");
        let engine = Engine::new(&sub, self.u.clone());
        if !engine.loops.is_empty() {
            return Err("chains jump to each other in a loop".into());
        }
        let analysed = self.analysed();
        let hook = self.hook;
        for f in self.site.allowed() {
            let fwd: Vec<PBox> = flow_boxes(f, &engine.u, false)
                .into_iter()
                .filter(|b| fam_in(analysed, b.fam))
                .map(|b| engine.restrict_to_hook(b, hook, CtStates::NEW))
                .collect();
            let rev: Vec<PBox> = flow_boxes(f, &engine.u, true)
                .into_iter()
                .filter(|b| fam_in(analysed, b.fam))
                .map(|b| engine.restrict_to_hook(b, reply_hook(hook), CtStates::ESTABLISHED))
                .collect();
            c.flow_boxes.push((fwd, rev));
            c.flows.push(check_flow_in(&engine, hook, f, analysed));
        }
        c.allowed = self
            .site
            .allowed()
            .flat_map(|f| flow_boxes(f, &engine.u, false))
            .filter(|b| fam_in(analysed, b.fam))
            .collect();
        c.scope = self
            .site
            .flows
            .iter()
            .filter(|f| f.action == FlowAction::Deny)
            .flat_map(|f| flow_boxes(f, &engine.u, false))
            .filter(|b| fam_in(analysed, b.fam))
            .map(|b| engine.restrict_to_hook(b, hook, CtStates::NEW))
            .flat_map(|b| enforced_part(b, None))
            .collect();
        let (pieces, incomplete) = engine
            .accepted_beyond_pieces(hook, &c.scope, &c.allowed, DEFAULT_BUDGET, &|_| true)
            .ok_or("the excess search cannot be split by box on this path")?;
        if incomplete {
            return Err("the excess search went over its budget".into());
        }
        let mut added = Vec::new();
        let mut spans = Vec::new();
        for (b, outs) in pieces {
            let n = outs.len();
            added.extend(region_items(&engine, outs));
            spans.push((b, n));
        }
        let (_, came, ids) = c.merge.update(&[], added);
        let mut ids = ids.into_iter();
        for (b, n) in spans {
            let items = ids.by_ref().take(n).collect();
            add_piece(&mut c, PieceEntry { b, items });
        }
        let zones = zone_sets(&self.site);
        for m in came {
            let fp = self.region_fp(&m, &zones);
            c.regions.insert(fp, m);
        }
        let an = engine.anomalies_own(ANOMALY_BUDGET);
        if self.checks.dead_in_context {
            self.context_init(&mut c, &engine);
        }
        for (list, kind) in [
            (an.shadowed, Kind::Shadowed),
            (an.redundant, Kind::Redundant),
        ] {
            for a in list {
                if let Some(id) = parse_id(&a.rule.to_string()) {
                    c.kinds.insert(
                        id,
                        (kind.clone(), a.by.iter().map(|r| r.to_string()).collect()),
                    );
                }
            }
        }
        Ok(c)
    }

    /// Ids and boxes for new rules of chain `chain`.
    fn number(&self, c: &mut Cache, chain: &str, rules: &[Rule]) -> (Vec<Id>, Vec<Boxes>) {
        let mut ids = Vec::with_capacity(rules.len());
        let mut boxes = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            if i > 0 && rules[i - 1].origin == r.origin {
                ids.push(ids[i - 1]);
            } else {
                c.next_id += 1;
                c.chain_of.insert(c.next_id, chain.to_string());
                ids.push(c.next_id);
            }
            boxes.push(match_boxes(&r.matches, &self.u));
        }
        (ids, boxes)
    }

    fn region_fp(
        &self,
        m: &Merged,
        zones: &[(String, Fam, ISet<u128>)],
    ) -> (fingerprint::Fingerprint, bool) {
        let r = self.render(m, zones);
        let kind = if m.key.1 {
            FindingKind::Excess
        } else {
            FindingKind::PossibleExcess
        };
        (fingerprint::region(kind.name(), &r), m.key.1)
    }

    fn render(&self, m: &Merged, zones: &[(String, Fam, ISet<u128>)]) -> crate::verify::Region {
        // Render with no rule, then name the rule where it is now.
        let sub = Ruleset {
            format: self.rs.format,
            source: String::new(),
            chains: Vec::new(),
            notes: Vec::new(),
            enforced_at: None,
        };
        let e = Engine::new(&sub, self.u.clone());
        let mut r = render_merged(&e, vec![(m.b.clone(), (None, m.key.1, None))], zones, 1)
            .pop()
            .expect("one region");
        if let Some(k) = &m.key.0 {
            r.rules = vec![self.name_ref(k)];
        }
        r
    }

    /// The current reference of a stable one (`\u{1}id`); others as they are.
    fn name_ref(&self, s: &str) -> String {
        let (Some(id), Some(c)) = (parse_id(s), self.cache.as_ref()) else {
            return s.to_string();
        };
        let Some(chain) = c.chain_of.get(&id) else {
            return s.to_string();
        };
        let Some(ci) = self.chain_id(chain) else {
            return s.to_string();
        };
        match c.ids[chain].iter().position(|&x| x == id) {
            Some(i) => self.rs.chains[ci.0].rules[i].origin.to_string(),
            None => s.to_string(),
        }
    }

    /// Whether `r` certainly ends the walk of every packet it matches in
    /// this base chain: it accepts, drops or rejects, and the model decides
    /// its whole match.
    fn decides(&self, r: &Rule) -> bool {
        matches!(
            r.action,
            Action::Accept | Action::Drop | Action::Reject { .. }
        ) && !may_match(&r.matches, &self.u)
            && r.matches.marks.is_empty()
            && !r.matches.has_nat_fields()
    }

    /// Positions of the rules of chain `name` whose boxes may meet `q`
    /// (a superset, ascending): through the chain's index when it is long.
    fn candidates(&self, c: &Cache, name: &str, q: &[PBox]) -> Vec<u32> {
        let boxes = &c.boxes[name];
        match c.index.get(name) {
            Some(ix) => ix.meeting(q),
            None => (0..boxes.len() as u32).collect(),
        }
    }

    /// The sub-ruleset of the rules that packets in `roots` can meet: for
    /// each root chain, the rules whose match meets its region (`None`:
    /// every rule), and inside a jump target those whose match meets the
    /// region cut by the jump. Every root chain is kept (one left without
    /// rules keeps one that matches nothing, so a path through it is the
    /// same); flows and excess name every base chain on their path as
    /// roots. Rules get their stable ids as references. `None` when it
    /// would hold more than `limit` rules. Also returns, per sub chain, the
    /// original chain index.
    fn sub_ruleset(
        &self,
        c: &Cache,
        roots: &[Root],
        limit: usize,
    ) -> Option<(Ruleset, Vec<usize>)> {
        // Per chain reached: the positions kept (a chain of 11k rules is
        // not walked whole to find the few kept ones).
        let mut keep: HashMap<usize, Vec<u32>> = HashMap::new();
        let mut kept: HashSet<(usize, u32)> = HashSet::new();
        let mut count = 0usize;
        let mut stack: Vec<(Root, u32)> = roots.iter().cloned().map(|r| (r, 0)).collect();
        while let Some((root, depth)) = stack.pop() {
            if depth > 64 {
                return None;
            }
            let Root {
                chain: ci,
                region: mut q,
                first_match,
            } = root;
            let ch = &self.rs.chains[ci];
            let boxes = &c.boxes[&ch.name];
            let k = keep.entry(ci).or_default();
            let cands: Vec<u32> = match &q {
                Some(q) => self.candidates(c, &ch.name, q),
                None => (0..ch.rules.len() as u32).collect(),
            };
            for i in cands {
                let i = i as usize;
                let r = &ch.rules[i];
                let qi = match &q {
                    None => None,
                    Some(q) if q.is_empty() => break,
                    Some(q) => {
                        let x = cut(q, &boxes[i]);
                        if x.is_empty() {
                            continue;
                        }
                        Some(x)
                    }
                };
                if kept.insert((ci, i as u32)) {
                    k.push(i as u32);
                    count += 1;
                    if count > limit {
                        return None;
                    }
                }
                if let Action::Jump { target } | Action::Goto { target } = r.action {
                    stack.push((
                        Root {
                            chain: target.0,
                            region: qi,
                            first_match,
                        },
                        depth + 1,
                    ));
                } else if first_match && self.decides(r) {
                    // Packets this rule decides meet no later rule of the
                    // chain (nor of its callers, in this base chain).
                    if let Some(q) = &mut q {
                        if let Some(rest) = subtract_region(q, &boxes[i]) {
                            *q = rest;
                        }
                    }
                }
            }
        }
        // Every chain a walk started from or reached (a root chain left
        // without rules keeps one that matches nothing).
        let mut orig: Vec<usize> = keep.keys().copied().collect();
        orig.sort_unstable();
        orig.dedup();
        let map: HashMap<usize, usize> = orig.iter().enumerate().map(|(k, &i)| (i, k)).collect();
        let ids = |name: &str| &c.ids[name];
        let chains = orig
            .iter()
            .map(|&i| {
                let ch = &self.rs.chains[i];
                let mut ks: Vec<u32> = keep.get(&i).cloned().unwrap_or_default();
                ks.sort_unstable();
                let mut rules: Vec<Rule> = ks
                    .iter()
                    .map(|&j| {
                        let j = j as usize;
                        let mut r = ch.rules[j].clone();
                        r.origin = id_ref(ids(&ch.name)[j]);
                        r.comment = None;
                        if let Action::Jump { target } | Action::Goto { target } = &mut r.action {
                            *target = ChainId(map[&target.0]);
                        }
                        r
                    })
                    .collect();
                if rules.is_empty() && !ch.rules.is_empty() {
                    let mut m = Match::any();
                    m.src = ringfence_model::AddrSet::empty();
                    rules.push(Rule {
                        matches: m,
                        action: Action::Continue,
                        origin: RuleRef::Policy {
                            chain: ch.name.clone(),
                        },
                        comment: None,
                    });
                }
                ringfence_model::Chain {
                    name: ch.name.clone(),
                    base: ch.base.clone(),
                    rules,
                }
            })
            .collect();
        Some((
            Ruleset {
                format: self.rs.format,
                source: self.rs.source.clone(),
                chains,
                notes: Vec::new(),
                enforced_at: None,
            },
            orig,
        ))
    }

    /// Apply edits in order, each incrementally when it can be (see the
    /// module documentation). The record sums the edits' records; its
    /// `full` names the last reason an edit needed a full verify.
    pub fn apply(&mut self, changes: Vec<RuleChange>) -> ChangeRecord {
        let mut total = ChangeRecord::default();
        for ch in changes {
            let r = self.apply_one(ch);
            total.rules_changed += r.rules_changed;
            total.flows_rejudged += r.flows_rejudged;
            total.excess_boxes += r.excess_boxes;
            total.rules_rejudged += r.rules_rejudged;
            if r.full.is_some() {
                total.full = r.full;
            }
        }
        total
    }

    fn apply_one(&mut self, ch: RuleChange) -> ChangeRecord {
        let name = match &ch {
            RuleChange::Insert { chain, .. }
            | RuleChange::Delete { chain, .. }
            | RuleChange::Replace { chain, .. }
            | RuleChange::ReplaceChain { chain, .. } => chain.clone(),
        };
        let ci = match self.chain_id(&name) {
            Some(c) => c.0,
            None => {
                self.rs.chains.push(ringfence_model::Chain {
                    name: name.clone(),
                    base: None,
                    rules: Vec::new(),
                });
                self.names.insert(name.clone(), self.rs.chains.len() - 1);
                if let Some(c) = &mut self.cache {
                    c.ids.insert(name.clone(), Vec::new());
                    c.boxes.insert(name.clone(), Vec::new());
                }
                self.rs.chains.len() - 1
            }
        };
        let len = self.rs.chains[ci].rules.len();
        let (range, mut rules) = match ch {
            RuleChange::Insert { at, rule, .. } => (at.min(len)..at.min(len), vec![rule]),
            RuleChange::Delete { at, .. } if at < len => (at..at + 1, vec![]),
            RuleChange::Replace { at, rule, .. } if at < len => (at..at + 1, vec![rule]),
            RuleChange::ReplaceChain { rules, .. } => (0..len, rules),
            _ => return ChangeRecord::default(),
        };
        // Leave out the rules a chain rewrite keeps as they are.
        let (mut a, mut b) = (range.start, range.end);
        {
            let old = &self.rs.chains[ci].rules;
            let mut p = 0;
            while a < b && p < rules.len() && same_rule(&old[a], &self.rs, &rules[p], &self.rs) {
                a += 1;
                p += 1;
            }
            rules.drain(..p);
            while a < b
                && !rules.is_empty()
                && same_rule(&old[b - 1], &self.rs, rules.last().unwrap(), &self.rs)
            {
                b -= 1;
                rules.pop();
            }
            // Keep source rules whole.
            while a > 0 && a < old.len() && old[a - 1].origin == old[a].origin {
                a -= 1;
                rules.insert(0, old[a].clone());
            }
            while b > 0 && b < old.len() && old[b - 1].origin == old[b].origin {
                rules.push(old[b].clone());
                b += 1;
            }
        }
        if a == b && rules.is_empty() {
            return ChangeRecord::default();
        }
        let n = rules.len();
        let mut rec = ChangeRecord {
            rules_changed: (b - a) + n,
            ..Default::default()
        };
        let why = self.why_full.clone().or_else(|| self.unsupported(&rules));
        let removed: Vec<Rule> = self.rs.chains[ci].rules.splice(a..b, rules).collect();
        if let Some(why) = why {
            self.rebuild();
            rec.full = Some(why);
            return rec;
        }
        let old_targets = vec![removed
            .iter()
            .filter_map(|r| match r.action {
                Action::Jump { target } | Action::Goto { target } => {
                    Some(self.rs.chain(target).name.clone())
                }
                _ => None,
            })
            .collect()];
        let d = vec![(name, a..b, a..a + n)];
        if let Err(why) = self.incremental(&d, old_targets, &mut rec) {
            self.rebuild();
            rec = ChangeRecord {
                rules_changed: rec.rules_changed,
                full: Some(why),
                ..Default::default()
            };
        }
        rec
    }

    /// Why new rules cannot be taken incrementally: marks, or interface
    /// names the ruleset did not have (they change every box's interface atoms).
    fn unsupported(&self, rules: &[Rule]) -> Option<String> {
        let c = self.cache.as_ref()?;
        for r in rules {
            if matches!(r.action, Action::Mark(_)) || !r.matches.marks.is_empty() {
                return Some("a rule rewrites or tests marks".into());
            }
            if matches!(r.action, Action::Nat(_)) || r.matches.has_nat_fields() {
                return Some("a rule translates addresses or tests a translation".into());
            }
            for set in [&r.matches.iif, &r.matches.oif] {
                for p in &set.patterns {
                    if !c.patterns.contains(&format!("{p:?}")) {
                        return Some("a rule names an interface the ruleset did not".into());
                    }
                }
            }
        }
        None
    }

    /// Move to the ruleset `new` (e.g. a re-read of the live ruleset): the
    /// rule-level [`delta`] is applied incrementally when it can be, else
    /// the new ruleset is verified in full; the record says which.
    pub fn update(&mut self, new: Ruleset) -> ChangeRecord {
        let d = delta(&self.rs, &new);
        let rules_changed = d.iter().map(|(_, a, b)| a.len() + b.len()).sum();
        let mut rec = ChangeRecord {
            rules_changed,
            ..Default::default()
        };
        let base_changed = base_list(&new) != base_list(&self.rs);
        if d.is_empty() && !base_changed {
            // Only references, comments or notes differ: nothing to judge
            // again (a full verify's findings name rules where they are).
            self.rs = new;
            self.reindex();
            if self.cache.is_none() {
                self.rebuild();
            }
            return rec;
        }
        let why = if self.cache.is_none() {
            Some(
                self.why_full
                    .clone()
                    .unwrap_or_else(|| "not incremental".into()),
            )
        } else {
            not_incremental(&new, self.hook).or_else(|| {
                base_changed.then(|| "base chains or their policies changed".to_string())
            })
        };
        let why = why.or_else(|| {
            let added: Vec<Rule> = d
                .iter()
                .filter_map(|(name, _, n)| {
                    new.chain_by_name(name)
                        .map(|c| new.chain(c).rules[n.clone()].to_vec())
                })
                .flatten()
                .collect();
            self.unsupported(&added)
        });
        if let Some(why) = why {
            self.rs = new;
            self.rebuild();
            rec.full = Some(why);
            return rec;
        }
        let old_targets: Vec<Vec<String>> = d
            .iter()
            .map(|(name, o, _)| match self.chain_id(name) {
                Some(c) => self.rs.chain(c).rules[o.clone()]
                    .iter()
                    .filter_map(|r| match r.action {
                        Action::Jump { target } | Action::Goto { target } => {
                            Some(self.rs.chain(target).name.clone())
                        }
                        _ => None,
                    })
                    .collect(),
                None => Vec::new(),
            })
            .collect();
        self.rs = new;
        self.reindex();
        if let Err(why) = self.incremental(&d, old_targets, &mut rec) {
            self.rebuild();
            rec = ChangeRecord {
                rules_changed,
                full: Some(why),
                ..Default::default()
            };
        }
        rec
    }

    fn incremental(
        &mut self,
        d: &[(String, std::ops::Range<usize>, std::ops::Range<usize>)],
        old_targets: Vec<Vec<String>>,
        rec: &mut ChangeRecord,
    ) -> Result<(), String> {
        let mut c = self.cache.take().expect("cache");
        let r = self.incremental_in(&mut c, d, old_targets, rec);
        self.cache = Some(c);
        r
    }

    fn incremental_in(
        &mut self,
        c: &mut Cache,
        d: &[(String, std::ops::Range<usize>, std::ops::Range<usize>)],
        old_targets: Vec<Vec<String>>,
        rec: &mut ChangeRecord,
    ) -> Result<(), String> {
        // 1. Splice ids, boxes and callers; the changed region of each changed chain.
        let mut delta: HashMap<String, Vec<PBox>> = HashMap::new();
        let mut new_ids: HashSet<Id> = HashSet::new();
        // The targets of the jumps and gotos added or removed (for context).
        let mut jump_targets: HashSet<String> = old_targets.iter().flatten().cloned().collect();
        for ((name, o, n), gone) in d.iter().zip(old_targets) {
            for t in gone {
                if let Some(v) = c.callers.get_mut(&t) {
                    if let Some(p) = v.iter().position(|x| x == name) {
                        v.swap_remove(p);
                    }
                }
            }
            let mut dx: Vec<PBox> = Vec::new();
            if let Some(bs) = c.boxes.get(name) {
                for b in &bs[o.clone()] {
                    dx.extend(b.iter().cloned());
                }
            }
            let nc = self.chain_id(name).map(|x| x.0);
            let new_rules: &[Rule] = match nc {
                Some(i) => &self.rs.chains[i].rules[n.clone()],
                None => &[],
            };
            for r in new_rules {
                if let Action::Jump { target } | Action::Goto { target } = r.action {
                    jump_targets.insert(self.rs.chain(target).name.clone());
                    c.callers
                        .entry(self.rs.chain(target).name.clone())
                        .or_default()
                        .push(name.clone());
                }
            }
            let (ids, boxes) = self.number(c, name, new_rules);
            for b in &boxes {
                dx.extend(b.iter().cloned());
            }
            new_ids.extend(ids.iter().copied());
            let e_ids = c.ids.entry(name.clone()).or_default();
            for id in e_ids.splice(o.clone(), ids) {
                if !new_ids.contains(&id) {
                    c.kinds.remove(&id);
                    c.witness.remove(&id);
                    c.chain_of.remove(&id);
                }
            }
            if let Some(ix) = c.index.get_mut(name) {
                let refs: Vec<&[PBox]> = boxes.iter().map(|b| b.as_slice()).collect();
                ix.splice(o.start, o.len(), &refs);
            }
            let bs = c.boxes.entry(name.clone()).or_default();
            bs.splice(o.clone(), boxes);
            if bs.len() >= INDEXED && !c.index.contains_key(name) {
                c.index.insert(
                    name.clone(),
                    ChainHulls::build(bs.iter().map(|b| b.as_slice())),
                );
            }
            if nc.is_none() {
                c.ids.remove(name);
                c.boxes.remove(name);
                c.index.remove(name);
            }
            delta.entry(name.clone()).or_default().extend(dx);
        }
        // 2. Up the jumps: the changed region in each chain that reaches a changed one.
        let mut work: Vec<String> = delta.keys().cloned().collect();
        let mut rounds = 0;
        while let Some(x) = work.pop() {
            rounds += 1;
            if rounds > 100_000 {
                return Err("changed region did not settle".into());
            }
            let Some(xi) = self.chain_id(&x) else {
                continue;
            };
            let dx = delta[&x].clone();
            let mut callers = c.callers.get(&x).cloned().unwrap_or_default();
            callers.sort();
            callers.dedup();
            for cname in callers {
                let Some(ci) = self.chain_id(&cname) else {
                    continue;
                };
                let ch = &self.rs.chains[ci.0];
                let mut add = Vec::new();
                for i in self.candidates(c, &ch.name, &dx) {
                    let i = i as usize;
                    if let Action::Jump { target } | Action::Goto { target } = ch.rules[i].action {
                        if target == xi {
                            add.extend(cut(&dx, &c.boxes[&ch.name][i]));
                        }
                    }
                }
                if add.is_empty() {
                    continue;
                }
                let e = delta.entry(cname.clone()).or_default();
                let before = e.len();
                for b in add {
                    if !e.iter().any(|y| b.is_subset(y)) {
                        e.push(b);
                    }
                }
                if e.len() > MAX_DELTA_BOXES {
                    return Err(format!(
                        "the changed region in chain {cname} is too fragmented"
                    ));
                }
                if e.len() != before {
                    work.push(cname);
                }
            }
        }
        let total: usize = self.rs.chains.iter().map(|ch| ch.rules.len()).sum();
        let limit = (total / MAX_SHARE).max(64);
        let analysed = self.analysed();
        let hook = self.hook;
        let (path, rpath) = (self.path.clone(), self.rpath.clone());
        let dpath = |p: &[ChainId]| -> Vec<PBox> {
            p.iter()
                .flat_map(|b| {
                    delta
                        .get(&self.rs.chain(*b).name)
                        .cloned()
                        .unwrap_or_default()
                })
                .collect()
        };
        let (dfwd, drev) = (dpath(&path), dpath(&rpath));
        // 3. Flows whose packets meet the change.
        for (k, f) in self.site.allowed().enumerate() {
            let (fwd, rev) = &c.flow_boxes[k];
            if !overlaps_any(fwd, &dfwd) && !overlaps_any(rev, &drev) {
                continue;
            }
            let mut roots: Vec<Root> = path
                .iter()
                .map(|b| Root::of(b.0, fwd.clone(), true))
                .collect();
            roots.extend(rpath.iter().map(|b| Root::of(b.0, rev.clone(), true)));
            let (sub, _) = self
                .sub_ruleset(c, &roots, limit)
                .ok_or("a changed flow meets too many rules")?;
            let engine = Engine::new(&sub, self.u.clone());
            c.flows[k] = check_flow_in(&engine, hook, f, analysed);
            rec.flows_rejudged += 1;
        }
        // 4. Excess: the pivot's accepting boxes that meet the change.
        let pivot = path[0].0;
        let dp = delta
            .get(&self.rs.chains[pivot].name)
            .cloned()
            .unwrap_or_default();
        if !dp.is_empty() {
            // Only packets in the scope are walked: the rest of an accepting
            // rule's box (other states, other addresses) is never read.
            let q = cut(&self.accepting_region(c, pivot, &dp), &c.scope);
            let mut roots: Vec<Root> = path
                .iter()
                .map(|b| Root::of(b.0, q.clone(), true))
                .collect();
            // Every pivot box that meets the change, decided earlier or not,
            // as the pieces taken out are all of those.
            roots.push(Root::of(pivot, dp.clone(), false));
            let (sub, _) = self
                .sub_ruleset(c, &roots, limit)
                .ok_or("the changed excess meets too many rules")?;
            let engine = Engine::new(&sub, self.u.clone());
            if !engine.loops.is_empty() {
                return Err("chains jump to each other in a loop".into());
            }
            let sel = |b: &PBox| dp.iter().any(|x| x.overlaps(b));
            let (pieces, incomplete) = engine
                .accepted_beyond_pieces(hook, &c.scope, &c.allowed, DEFAULT_BUDGET, &sel)
                .ok_or("the excess search cannot be split by box")?;
            if incomplete {
                return Err("the excess search went over its budget".into());
            }
            let mut removed = Vec::new();
            for slot in pieces_meeting(c, &dp) {
                if c.pieces[slot].as_ref().is_some_and(|p| sel(&p.b)) {
                    let p = remove_piece(c, slot);
                    removed.extend(p.items);
                }
            }
            let mut added = Vec::new();
            let mut spans = Vec::new();
            for (b, outs) in pieces {
                let n = outs.len();
                added.extend(region_items(&engine, outs));
                spans.push((b, n));
            }
            rec.excess_boxes = spans.len();
            let (gone, came, ids) = c.merge.update(&removed, added);
            let mut ids = ids.into_iter();
            for (b, n) in spans {
                let items = ids.by_ref().take(n).collect();
                add_piece(c, PieceEntry { b, items });
            }
            let zones = zone_sets(&self.site);
            for m in gone {
                let fp = self.region_fp(&m, &zones);
                c.regions.remove(&fp);
            }
            for m in came {
                let fp = self.region_fp(&m, &zones);
                c.regions.insert(fp, m);
            }
        }
        // 5. Shadowed/redundant: rules whose match meets the change in their chain.
        for (name, dx) in &delta {
            let Some(ci) = self.chain_id(name) else {
                continue;
            };
            let ch = &self.rs.chains[ci.0];
            if ch.is_unknown_target() {
                continue;
            }
            let mut groups: Vec<(usize, usize)> = Vec::new();
            {
                let ids = &c.ids[name];
                let boxes = &c.boxes[name];
                let mut at: Vec<usize> = self
                    .candidates(c, name, dx)
                    .into_iter()
                    .map(|i| i as usize)
                    .filter(|&i| boxes[i].iter().any(|b| dx.iter().any(|x| x.overlaps(b))))
                    .collect();
                at.extend((0..ids.len()).filter(|&i| new_ids.contains(&ids[i])));
                at.sort_unstable();
                at.dedup();
                for i in at {
                    // The whole source rule.
                    let (mut a, mut b) = (i, i + 1);
                    while a > 0 && ids[a - 1] == ids[i] {
                        a -= 1;
                    }
                    while b < ids.len() && ids[b] == ids[i] {
                        b += 1;
                    }
                    if groups.last() != Some(&(a, b)) {
                        groups.push((a, b));
                    }
                }
            }
            let ids = c.ids[name].clone();
            // One sub-ruleset for the whole changed region of this chain:
            // each rule is judged again inside it only.
            let shared = if groups.is_empty() {
                None
            } else {
                Some(
                    self.sub_ruleset(c, &[Root::of(ci.0, dx.clone(), false)], limit)
                        .ok_or("a changed region meets too many rules")?,
                )
            };
            let engine = shared
                .as_ref()
                .map(|(sub, _)| Engine::new(sub, self.u.clone()));
            for (i, j) in groups {
                rec.rules_rejudged += 1;
                let id = ids[i];
                let known = c
                    .kinds
                    .get(&id)
                    .cloned()
                    .or_else(|| (!new_ids.contains(&id)).then(|| (Kind::None, Vec::new())));
                let result = match known {
                    Some(old) if j == i + 1 => {
                        let (sub, orig) = shared.as_ref().expect("groups");
                        let e = engine.as_ref().expect("groups");
                        self.rejudge(c, (sub, orig, e), ci.0, i, dx, old, limit)?
                    }
                    _ => self.judge_whole(c, ci.0, i, j, limit)?,
                };
                match result {
                    (Kind::None, _) => {
                        c.kinds.remove(&id);
                    }
                    k => {
                        c.kinds.insert(id, k);
                    }
                }
            }
        }
        if self.checks.dead_in_context {
            self.context_update(c, &delta, &new_ids, &jump_targets, limit)
        } else {
            Ok(())
        }
    }

    /// The part of the pivot's rules that accept (or may, or jump where the
    /// model cannot follow) and meet `dp`, each cut by the jumps that lead
    /// to it but not by `dp`: the boxes whose excess must be recomputed
    /// and everything their walks read.
    fn accepting_region(&self, c: &Cache, pivot: usize, dp: &[PBox]) -> Vec<PBox> {
        let mut out: Vec<PBox> = dp.to_vec();
        let full: Vec<PBox> = [Fam::V4, Fam::V6]
            .iter()
            .map(|&f| PBox::full(f, &self.u))
            .collect();
        let mut stack: Vec<(usize, Vec<PBox>, Vec<PBox>, u32)> =
            vec![(pivot, full, dp.to_vec(), 0)];
        while let Some((ci, ctx, dq, depth)) = stack.pop() {
            if depth > 64 {
                continue;
            }
            let ch = &self.rs.chains[ci];
            for i in self.candidates(c, &ch.name, &dq) {
                let i = i as usize;
                let r = &ch.rules[i];
                let b = &c.boxes[&ch.name][i];
                let dqi = cut(&dq, b);
                if dqi.is_empty() {
                    continue;
                }
                let ctxi = cut(&ctx, b);
                let unknown_jump = matches!(r.action, Action::Jump { target } | Action::Goto { target } if self.rs.chain(target).is_unknown_target());
                if matches!(r.action, Action::Accept)
                    || !r.matches.opaque.is_empty()
                    || unknown_jump
                {
                    out.extend(ctxi.iter().cloned());
                }
                if let Action::Jump { target } | Action::Goto { target } = r.action {
                    stack.push((target.0, ctxi, dqi, depth + 1));
                }
            }
        }
        out
    }

    /// A rule group judged on its whole match, on the sub-ruleset of its chain's rules that meet it.
    fn judge_whole(
        &self,
        c: &Cache,
        ci: usize,
        i: usize,
        j: usize,
        limit: usize,
    ) -> Result<(Kind, Vec<String>), String> {
        let name = &self.rs.chains[ci].name;
        let bx: Vec<PBox> = c.boxes[name][i..j].iter().flatten().cloned().collect();
        let (sub, orig) = self
            .sub_ruleset(c, &[Root::of(ci, bx.clone(), false)], limit)
            .ok_or("a changed rule meets too many rules")?;
        let engine = Engine::new(&sub, self.u.clone());
        let sc = orig.iter().position(|&o| o == ci).expect("root kept");
        let ids = &c.ids[name];
        let mut at = sub.chains[sc]
            .rules
            .iter()
            .enumerate()
            .filter(|(_, x)| x.origin == id_ref(ids[i]))
            .map(|(p, _)| p);
        let mut verdicts = Vec::new();
        for r in i..j {
            let sr = if c.boxes[name][r].is_empty() {
                None
            } else {
                at.next()
            };
            let v = match sr {
                Some(sr) => {
                    engine.rule_anomaly_within(ChainId(sc), sr, &c.boxes[name][r], ANOMALY_BUDGET)
                }
                // A rule that matches nothing is shadowed by nothing.
                None => RuleAnomaly::Shadowed(Vec::new()),
            };
            verdicts.push(v);
        }
        Ok(combine(verdicts, &id_ref(ids[i]).to_string()))
    }

    /// One model rule judged again inside `dx` only, combined with what
    /// was known of the rest of its match (`old`).
    #[allow(clippy::too_many_arguments)]
    fn rejudge(
        &self,
        c: &mut Cache,
        (sub, orig, engine): (&Ruleset, &Vec<usize>, &Engine<'_>),
        ci: usize,
        i: usize,
        dx: &[PBox],
        old: (Kind, Vec<String>),
        limit: usize,
    ) -> Result<(Kind, Vec<String>), String> {
        let name = self.rs.chains[ci].name.clone();
        let sc = orig.iter().position(|&o| o == ci).expect("root kept");
        let id = c.ids[&name][i];
        let sr = sub.chains[sc]
            .rules
            .iter()
            .position(|x| x.origin == id_ref(id))
            .expect("rule meets its own region");
        let within = engine.rule_anomaly_within(ChainId(sc), sr, dx, ANOMALY_BUDGET);
        let merge_by = |a: &[RuleRefS], b: Vec<String>| {
            let mut v: Vec<String> = b;
            for x in a {
                if !v.contains(x)
                    && v.len() < 10
                    && parse_id(x).is_none_or(|i| c.chain_of.contains_key(&i))
                {
                    v.push(x.clone());
                }
            }
            v
        };
        let by_of = |v: &[RuleRef]| {
            v.iter()
                .map(|r| r.to_string())
                .filter(|s| *s != id_ref(id).to_string())
                .collect::<Vec<_>>()
        };
        Ok(match (old.0, within) {
            (Kind::Shadowed, RuleAnomaly::Shadowed(by)) => {
                (Kind::Shadowed, merge_by(&old.1, by_of(&by)))
            }
            (Kind::Shadowed, RuleAnomaly::Redundant(by)) => (Kind::Redundant, by_of(&by)),
            (_, RuleAnomaly::None) => (Kind::None, Vec::new()),
            (Kind::Redundant, RuleAnomaly::Redundant(by)) => {
                (Kind::Redundant, merge_by(&old.1, by_of(&by)))
            }
            (Kind::Redundant, RuleAnomaly::Shadowed(_)) => {
                // Still redundant if some packet outside the change reaches it.
                if self.find_witness(c, ci, i, dx, false) {
                    (Kind::Redundant, old.1)
                } else {
                    self.judge_whole(c, ci, i, i + 1, limit)?
                }
            }
            (Kind::None, _) => {
                let eligible = self.redundancy_applies(ci, i);
                if self.find_witness(c, ci, i, dx, eligible) {
                    (Kind::None, Vec::new())
                } else {
                    self.judge_whole(c, ci, i, i + 1, limit)?
                }
            }
        })
    }

    fn redundancy_applies(&self, ci: usize, i: usize) -> bool {
        let r = &self.rs.chains[ci].rules[i];
        !may_match(&r.matches, &self.u)
            && matches!(
                r.action,
                Action::Accept | Action::Drop | Action::Reject { .. } | Action::Return
            )
    }

    /// A packet outside `dx` that reaches rule `i` of chain `ci` (and, with
    /// `differ`, that the chain decides differently without the rule): the
    /// cached one when it is still outside the change, else one searched
    /// among a few corners of the match outside it.
    fn find_witness(&self, c: &mut Cache, ci: usize, i: usize, dx: &[PBox], differ: bool) -> bool {
        let name = &self.rs.chains[ci].name;
        let id = c.ids[name][i];
        if let Some(w) = c.witness.get(&id) {
            if !dx.iter().any(|x| x.overlaps(w)) && self.is_witness(c, ci, i, w, differ) {
                return true;
            }
        }
        let refs: Vec<&PBox> = dx.iter().collect();
        for b in c.boxes[name][i].iter() {
            let Some(outside) = crate::space::subtract_all(b, &refs, 4096) else {
                continue;
            };
            for o in outside.iter().take(16) {
                for p in corners(o) {
                    if self.is_witness(c, ci, i, &p, differ) {
                        c.witness.insert(id, p);
                        return true;
                    }
                }
            }
        }
        false
    }

    fn is_witness(&self, c: &Cache, ci: usize, i: usize, p: &PBox, differ: bool) -> bool {
        if context::walk(self, c, ci, p, Goal::At(i), 0) != Walk::Reached {
            return false;
        }
        if !differ {
            return true;
        }
        let ch = &self.rs.chains[ci];
        let fall = match ch.base.as_ref().map(|b| b.policy) {
            Some(Policy::Drop) => Walk::Drop,
            Some(Policy::Accept) => Walk::Accept,
            None => Walk::Return,
        };
        let norm = |w: Walk| {
            if matches!(w, Walk::Return | Walk::End) {
                fall
            } else {
                w
            }
        };
        let own = match ch.rules[i].action {
            Action::Accept => Walk::Accept,
            Action::Drop => Walk::Drop,
            Action::Reject { .. } => Walk::Reject,
            Action::Return => Walk::Return,
            _ => return false,
        };
        match context::walk(self, c, ci, p, Goal::Without(i), 0) {
            Walk::Unsure | Walk::Reached => false,
            w => norm(w) != norm(own),
        }
    }

    /// The findings now, as [`fingerprint::verify_findings`] gives them
    /// for a full `verify` (same fingerprints), except that every excess
    /// region is listed (ordered by fingerprint), not the first
    /// [`crate::verify::MAX_REGIONS`]; `limit` caps that list.
    pub fn findings(&self, limit: usize) -> (Vec<Finding>, Summary) {
        let Some(c) = &self.cache else {
            let (f, s) = self.full.clone().expect("full findings");
            return (f, s);
        };
        let mut out = Vec::new();
        let mut flows = c.flows.clone();
        for f in &mut flows {
            for r in f.rules.iter_mut().chain(f.reply_rules.iter_mut()) {
                *r = self.name_ref(r);
            }
        }
        let zones = zone_sets(&self.site);
        let regions: Vec<crate::verify::Region> = c
            .regions
            .values()
            .take(limit)
            .map(|m| self.render(m, &zones))
            .collect();
        let mut report_flows = Vec::new();
        for f in &flows {
            report_flows.push(f.clone());
        }
        let mut shadowed = Vec::new();
        let mut redundant = Vec::new();
        // The rules these findings name, per chain: their fingerprints read
        // only their own text, so the fingerprinting is given these and not
        // all 100k rules (normalizing every rule's text took about half of
        // `watch`'s time per change on the benchmark ruleset).
        let mut named: Vec<Vec<Rule>> = vec![Vec::new(); self.rs.chains.len()];
        for (ci, ch) in self.rs.chains.iter().enumerate() {
            let Some(ids) = c.ids.get(&ch.name) else {
                continue;
            };
            let mut i = 0;
            while i < ids.len() {
                let mut j = i + 1;
                while j < ids.len() && ids[j] == ids[i] {
                    j += 1;
                }
                if let Some((k, by)) = c.kinds.get(&ids[i]) {
                    let f = crate::verify::RuleFinding {
                        rule: ch.rules[i].origin.to_string(),
                        chain: ch.name.clone(),
                        by: {
                            let mut v: Vec<String> = by
                                .iter()
                                .map(|b| self.name_ref(b))
                                .filter(|b| parse_id(b).is_none())
                                .collect();
                            if *k == Kind::Redundant && v.is_empty() {
                                v.push(format!("return at end of {}", ch.name));
                            }
                            v
                        },
                        reason: None,
                    };
                    match k {
                        Kind::Shadowed => shadowed.push(f),
                        Kind::Redundant => redundant.push(f),
                        Kind::None => {}
                    }
                    named[ci].extend(ch.rules[i..j].iter().cloned());
                }
                i = j;
            }
        }
        if self.checks.dead_in_context {
            self.context_findings(c, &mut shadowed, &mut redundant, &mut named);
        }
        let count = |s: Status| flows.iter().filter(|f| f.status == s).count();
        let replies_not_allowed = flows
            .iter()
            .filter(|f| f.replies != Status::Allowed)
            .count();
        let excess = c.regions.len();
        let possible = c.regions.keys().filter(|(_, certain)| !certain).count();
        let summary = Summary {
            flows: flows.len(),
            allowed: count(Status::Allowed),
            partial: count(Status::Partial),
            blocked: count(Status::Blocked),
            unknown: count(Status::Unknown),
            replies_not_allowed,
            excess,
            possible_excess: possible,
            excess_complete: true,
            families_not_covered: 0,
            shadowed: shadowed.len(),
            redundant: redundant.len(),
            ok: flows.iter().all(|f| f.status == Status::Allowed)
                && replies_not_allowed == 0
                && excess == 0,
        };
        let report = crate::verify::VerifyReport {
            ruleset: self.rs.source.clone(),
            hook: self.hook.to_string(),
            site: self.site.site.clone(),
            catalog: self.site.catalog.clone(),
            families: auto_families(&self.site),
            flows,
            excess: regions,
            excess_summary: Vec::new(),
            shadowed,
            redundant,
            default_deny: true,
            notes: self
                .rs
                .notes
                .iter()
                .map(|n| format!("{}: {}", n.location, n.message))
                .collect(),
            enforced_at: None,
            summary: summary.clone(),
        };
        let named = Ruleset {
            format: self.rs.format,
            source: self.rs.source.clone(),
            // Every chain, in place, so jump targets keep their names.
            chains: self
                .rs
                .chains
                .iter()
                .zip(named)
                .map(|(ch, rules)| ringfence_model::Chain {
                    name: ch.name.clone(),
                    base: ch.base.clone(),
                    rules,
                })
                .collect(),
            notes: self.rs.notes.clone(),
            enforced_at: self.rs.enforced_at.clone(),
        };
        out.extend(fingerprint::verify_findings(&report, &named));
        (out, summary)
    }
}

type RuleRefS = String;

/// The region items (box, merge key) of excess outcomes, with stable references.
fn region_items(engine: &Engine<'_>, outs: Vec<crate::engine::Outcome>) -> Vec<(PBox, RKey)> {
    crate::verify::outcome_boxes(engine, &outs)
        .into_iter()
        .map(|(b, (k, certain, _))| (b, (k.map(|k| engine.rule_ref(k).to_string()), certain)))
        .collect()
}

/// Combine the verdicts of a source rule's model rules as `anomalies` does.
fn combine(v: Vec<RuleAnomaly>, me: &str) -> (Kind, Vec<String>) {
    let all_s = v.iter().all(|x| matches!(x, RuleAnomaly::Shadowed(_)));
    let all_r = v.iter().all(|x| matches!(x, RuleAnomaly::Redundant(_)));
    let mut by: Vec<String> = Vec::new();
    for x in v {
        if let RuleAnomaly::Shadowed(b) | RuleAnomaly::Redundant(b) = x {
            for r in b {
                let s = r.to_string();
                if s != me && !by.contains(&s) {
                    by.push(s);
                }
            }
        }
    }
    if all_s {
        (Kind::Shadowed, by)
    } else if all_r {
        (Kind::Redundant, by)
    } else {
        (Kind::None, Vec::new())
    }
}

fn base_list(rs: &Ruleset) -> Vec<(String, Hook, i32, Policy)> {
    rs.chains
        .iter()
        .filter_map(|c| {
            c.base
                .as_ref()
                .map(|b| (c.name.clone(), b.hook, b.priority, b.policy))
        })
        .collect()
}

/// A few one-packet boxes of `b`: low and high corners and a middle point,
/// with each conntrack state the box has.
fn corners(b: &PBox) -> Vec<PBox> {
    let mut out = Vec::new();
    if b.is_empty() {
        return out;
    }
    for bit in 0..8 {
        if b.ct & (1 << bit) == 0 {
            continue;
        }
        for k in 0..3 {
            out.push(b.corner_point(k, 1 << bit));
        }
    }
    out
}

fn add_piece(c: &mut Cache, p: PieceEntry) {
    let slot = match c.free_pieces.pop() {
        Some(s) => s,
        None => {
            c.pieces.push(None);
            c.pieces.len() - 1
        }
    };
    c.piece_hulls.insert(&p.b, slot);
    c.pieces[slot] = Some(p);
}

fn remove_piece(c: &mut Cache, slot: usize) -> PieceEntry {
    let p = c.pieces[slot].take().expect("live piece");
    c.piece_hulls.remove(&p.b, slot);
    c.free_pieces.push(slot);
    p
}

/// Slots of pivot boxes that may meet `q` (a superset).
fn pieces_meeting(c: &Cache, q: &[PBox]) -> Vec<usize> {
    c.piece_hulls.meeting(q, 0, usize::MAX)
}
