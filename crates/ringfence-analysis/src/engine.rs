//! The exact packet-space engine.
//!
//! Each chain is compiled once into a *plan*: an ordered list of boxes, each
//! with a fate (accept, drop, reject, unknown, return, or "skip to position
//! k"). A packet's fate in the chain is the fate of the first box containing
//! it. A jump inlines the target's plan cut down to the jump rule's box, with
//! the target's returns turned into skips past the inlined part; a goto inlines
//! it with returns kept (they return from the calling chain, iptables
//! semantics) and closes with a return box for whatever the target did not
//! decide. Each chain's plan is computed once however many rules jump to it.
//!
//! Region queries walk a plan with a list of disjoint fragments, each tagged
//! with the position it resumes at; a destination index limits the walk to the
//! boxes that can meet the query. Nothing ever builds the complement of a
//! large union unless a query asks for it, and every walk has a fragment budget:
//! a query over budget says so instead of answering wrongly.

use crate::index::DstIndex;
use crate::space::{match_boxes, IfaceUniverse, PBox};
use ringfence_model::{Action, ChainId, CtStates, Hook, Policy, RuleRef, Ruleset};

/// Path of `(chain, rule)` keys; rule `u32::MAX` stands for the chain policy.
pub type Path = Vec<(u32, u32)>;

/// What a plan box does with the packets in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Accepted by this chain.
    Accept,
    /// Dropped.
    Drop,
    /// Rejected.
    Reject,
    /// Decided by something the model cannot evaluate.
    Unknown,
    /// Falls back to the caller (or the base chain's policy).
    Return,
    /// Continues at this plan position (the rest of an inlined jump target is skipped).
    Skip(u32),
}

/// One plan box.
#[derive(Debug, Clone)]
pub struct Piece {
    /// The packets.
    pub b: PBox,
    /// Their fate.
    pub fate: Fate,
    /// The rules that lead here: the rule in this chain first, then inside jump targets.
    pub path: Path,
}

/// A compiled chain.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Boxes in first-match order.
    pub pieces: Vec<Piece>,
    /// Per rule of the chain: the plan positions `[start, end)` it produced.
    pub spans: Vec<(u32, u32)>,
    /// Per rule: the boxes of its own match.
    pub rule_boxes: Vec<Vec<PBox>>,
    index: DstIndex,
}

/// The walk produced more fragments than its budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

/// Default fragment budget of one walk.
pub const DEFAULT_BUDGET: usize = 200_000;

/// A region with the fate a hook gives it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The packets.
    pub b: PBox,
    /// Accept, Drop, Reject or Unknown.
    pub fate: Fate,
    /// The rules that decided, through every base chain on the hook.
    pub path: Path,
}

/// A ruleset compiled for region queries.
pub struct Engine<'a> {
    /// The ruleset.
    pub rs: &'a Ruleset,
    /// Interface atoms shared by every box of this engine.
    pub u: IfaceUniverse,
    plans: Vec<Plan>,
    /// Chains that are part of a jump loop (their plans are "unknown").
    pub loops: Vec<ChainId>,
}

fn hull(b: &PBox) -> (u128, u128) {
    let r = b.dst.ranges();
    (r[0].0, r[r.len() - 1].1)
}

impl<'a> Engine<'a> {
    /// Compile every chain. `u` must know every interface pattern of `rs`
    /// (build it from all rulesets that will be compared).
    pub fn new(rs: &'a Ruleset, u: IfaceUniverse) -> Self {
        let n = rs.chains.len();
        let mut state = vec![0u8; n]; // 0 new, 1 in progress, 2 done
        let mut plans: Vec<Option<Plan>> = vec![None; n];
        let mut loops = Vec::new();
        for c in 0..n {
            build(rs, &u, c, &mut state, &mut plans, &mut loops);
        }
        Self {
            rs,
            u,
            plans: plans.into_iter().map(|p| p.expect("built")).collect(),
            loops,
        }
    }

    /// Compile with an interface universe from `rs` alone.
    pub fn for_ruleset(rs: &'a Ruleset) -> Self {
        Self::new(rs, IfaceUniverse::new([rs]))
    }

    /// The plan of a chain.
    pub fn plan(&self, c: ChainId) -> &Plan {
        &self.plans[c.0]
    }

    /// The source reference of a path key.
    pub fn rule_ref(&self, (c, r): (u32, u32)) -> RuleRef {
        let chain = &self.rs.chains[c as usize];
        if r == u32::MAX {
            RuleRef::Policy {
                chain: chain.name.clone(),
            }
        } else {
            chain.rules[r as usize].origin.clone()
        }
    }

    /// The whole header space a hook can see for new connections: every
    /// address of both families, every protocol and port, state NEW, and the
    /// interfaces the hook has (input: no output interface; output: no input
    /// interface; forward: both named).
    pub fn hook_space(&self, hook: Hook, ct: u8) -> Vec<PBox> {
        [crate::space::Fam::V4, crate::space::Fam::V6]
            .into_iter()
            .map(|f| self.restrict_to_hook(PBox::full(f, &self.u), hook, ct))
            .collect()
    }

    /// Restrict a box to the interfaces a hook has and to one conntrack state set.
    pub fn restrict_to_hook(&self, mut b: PBox, hook: Hook, ct: u8) -> PBox {
        let (iif, oif) = match hook {
            Hook::Input | Hook::Prerouting => (self.u.named(), self.u.none()),
            Hook::Output => (self.u.none(), self.u.named()),
            Hook::Forward | Hook::Postrouting => (self.u.named(), self.u.named()),
        };
        // Postrouting has no input interface for local traffic; keep both.
        let (iif, oif) = if hook == Hook::Postrouting {
            (self.u.full(), oif)
        } else {
            (iif, oif)
        };
        b.iif = b.iif.intersect(&iif);
        b.oif = b.oif.intersect(&oif);
        b.ct &= ct;
        b
    }

    /// Walk fragments `(box, resume position, path so far)` through plan
    /// positions `[from, to)`. Returns the decided fragments (with the deciding
    /// plan position) and the survivors.
    #[allow(clippy::type_complexity)]
    pub fn walk(
        &self,
        plan: &Plan,
        frags: Vec<(PBox, u32)>,
        from: u32,
        to: u32,
        budget: usize,
    ) -> Result<(Vec<(PBox, u32)>, Vec<(PBox, u32)>), OverBudget> {
        self.walk_with(plan, frags, from, to, budget, false)
    }

    /// [`Engine::walk`]; with `may_not_match`, boxes of unknown fate (opaque
    /// matches) let packets through instead of deciding them, which is the
    /// reading needed to prove that a later rule can be reached.
    #[allow(clippy::type_complexity)]
    pub fn walk_with(
        &self,
        plan: &Plan,
        mut frags: Vec<(PBox, u32)>,
        from: u32,
        to: u32,
        budget: usize,
        may_not_match: bool,
    ) -> Result<(Vec<(PBox, u32)>, Vec<(PBox, u32)>), OverBudget> {
        let mut cands = Vec::new();
        for (f, _) in &frags {
            let (lo, hi) = hull(f);
            plan.index.query_into(f.fam, lo, hi, &mut cands);
        }
        cands.sort_unstable();
        cands.dedup();
        let mut decided = Vec::new();
        for j in cands {
            if j < from || j >= to {
                continue;
            }
            if frags.is_empty() {
                break;
            }
            let q = &plan.pieces[j as usize];
            if may_not_match && q.fate == Fate::Unknown {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len());
            for (f, pos) in frags {
                if pos > j || !f.overlaps(&q.b) {
                    next.push((f, pos));
                    continue;
                }
                let inside = f.intersect(&q.b).expect("overlaps");
                for o in f.subtract(&q.b) {
                    next.push((o, pos));
                }
                match q.fate {
                    Fate::Skip(k) => next.push((inside, k)),
                    _ => decided.push((inside, j)),
                }
            }
            if next.len() + decided.len() > budget {
                return Err(OverBudget);
            }
            frags = next;
        }
        Ok((decided, frags))
    }

    /// Classify a region on a hook: every base chain in priority order must
    /// accept. Returns disjoint outcomes covering the region.
    pub fn classify(&self, hook: Hook, region: Vec<PBox>) -> Result<Vec<Outcome>, OverBudget> {
        self.classify_from(
            hook,
            0,
            region.into_iter().map(|b| (b, Vec::new())).collect(),
        )
    }

    fn classify_from(
        &self,
        hook: Hook,
        first_base: usize,
        mut current: Vec<(PBox, Path)>,
    ) -> Result<Vec<Outcome>, OverBudget> {
        let mut out = Vec::new();
        for base in self.rs.base_chains(hook).into_iter().skip(first_base) {
            let plan = &self.plans[base.0];
            let policy = self.rs.chain(base).base.as_ref().map(|b| b.policy);
            let mut next = Vec::new();
            for (b, path) in current {
                let (decided, surv) = self.walk(
                    plan,
                    vec![(b, 0)],
                    0,
                    plan.pieces.len() as u32,
                    DEFAULT_BUDGET,
                )?;
                for (d, j) in decided {
                    let piece = &plan.pieces[j as usize];
                    let mut p = path.clone();
                    p.extend_from_slice(&piece.path);
                    match piece.fate {
                        Fate::Accept => next.push((d, p)),
                        Fate::Return => {
                            self.policy_outcome(base, policy, d, p, &mut next, &mut out)
                        }
                        f => out.push(Outcome {
                            b: d,
                            fate: f,
                            path: p,
                        }),
                    }
                }
                for (s, _) in surv {
                    self.policy_outcome(base, policy, s, path.clone(), &mut next, &mut out);
                }
            }
            current = next;
        }
        out.extend(current.into_iter().map(|(b, path)| Outcome {
            b,
            fate: Fate::Accept,
            path,
        }));
        Ok(out)
    }

    fn policy_outcome(
        &self,
        base: ChainId,
        policy: Option<Policy>,
        b: PBox,
        mut path: Path,
        next: &mut Vec<(PBox, Path)>,
        out: &mut Vec<Outcome>,
    ) {
        path.push((base.0 as u32, u32::MAX));
        match policy {
            Some(Policy::Drop) => out.push(Outcome {
                b,
                fate: Fate::Drop,
                path,
            }),
            _ => next.push((b, path)),
        }
    }

    /// What the hook accepts inside `region`.
    pub fn accepted_region(
        &self,
        hook: Hook,
        region: Vec<PBox>,
    ) -> Result<Vec<Outcome>, OverBudget> {
        Ok(self
            .classify(hook, region)?
            .into_iter()
            .filter(|o| o.fate == Fate::Accept)
            .collect())
    }

    /// Everything the hook accepts within `scope` (boxes) minus `allowed`,
    /// as regions with the rules that accept them. The second value is true
    /// when a part could not be enumerated within the budget (then the list is
    /// incomplete and says so).
    pub fn accepted_beyond(
        &self,
        hook: Hook,
        scope: &[PBox],
        allowed: &[PBox],
        budget: usize,
    ) -> (Vec<Outcome>, bool) {
        let bases = self.rs.base_chains(hook);
        let mut incomplete = false;
        let mut out = Vec::new();
        let Some(&first) = bases.first() else {
            // No filtering at all on this hook: the whole scope is accepted.
            for s in scope {
                let refs: Vec<&PBox> = allowed.iter().collect();
                match crate::space::subtract_all(s, &refs, budget) {
                    Some(v) => out.extend(v.into_iter().map(|b| Outcome {
                        b,
                        fate: Fate::Accept,
                        path: Vec::new(),
                    })),
                    None => incomplete = true,
                }
            }
            return (out, incomplete);
        };
        let plan = &self.plans[first.0];
        let policy = self.rs.chain(first).base.as_ref().map(|b| b.policy);
        let minus_allowed = |b: &PBox| -> Option<Vec<PBox>> {
            let refs: Vec<&PBox> = allowed.iter().filter(|a| a.overlaps(b)).collect();
            crate::space::subtract_all(b, &refs, budget)
        };
        // Accepting boxes of the first base chain, each walked from the top.
        for (j, piece) in plan.pieces.iter().enumerate() {
            if piece.fate != Fate::Accept {
                continue;
            }
            let mut frags = Vec::new();
            for s in scope {
                if let Some(x) = piece.b.intersect(s) {
                    match minus_allowed(&x) {
                        Some(v) => frags.extend(v.into_iter().map(|b| (b, 0))),
                        None => incomplete = true,
                    }
                }
            }
            if frags.is_empty() {
                continue;
            }
            let Ok((decided, surv)) = self.walk(plan, frags, 0, j as u32, budget) else {
                incomplete = true;
                continue;
            };
            drop(decided);
            let reach: Vec<(PBox, Path)> = surv
                .into_iter()
                .filter(|(_, pos)| *pos <= j as u32)
                .map(|(b, _)| (b, piece.path.clone()))
                .collect();
            if reach.is_empty() {
                continue;
            }
            match self.classify_from(hook, 1, reach) {
                Ok(v) => out.extend(v.into_iter().filter(|o| o.fate == Fate::Accept)),
                Err(_) => incomplete = true,
            }
        }
        // Return boxes and the fall-through, when the policy accepts.
        if policy != Some(Policy::Drop) {
            let mut frags = Vec::new();
            for s in scope {
                match minus_allowed(s) {
                    Some(v) => frags.extend(v.into_iter().map(|b| (b, 0))),
                    None => incomplete = true,
                }
            }
            match self.walk(plan, frags, 0, plan.pieces.len() as u32, budget) {
                Ok((decided, surv)) => {
                    let mut reach: Vec<(PBox, Path)> = decided
                        .into_iter()
                        .filter(|(_, j)| plan.pieces[*j as usize].fate == Fate::Return)
                        .map(|(b, j)| {
                            let mut p = plan.pieces[j as usize].path.clone();
                            p.push((first.0 as u32, u32::MAX));
                            (b, p)
                        })
                        .collect();
                    reach.extend(
                        surv.into_iter()
                            .map(|(b, _)| (b, vec![(first.0 as u32, u32::MAX)])),
                    );
                    match self.classify_from(hook, 1, reach) {
                        Ok(v) => out.extend(v.into_iter().filter(|o| o.fate == Fate::Accept)),
                        Err(_) => incomplete = true,
                    }
                }
                Err(_) => incomplete = true,
            }
        }
        (out, incomplete)
    }

    /// Shadowed and redundant rules of every chain.
    pub fn anomalies(&self, budget: usize) -> Anomalies {
        let mut shadowed = Vec::new();
        let mut redundant = Vec::new();
        for (ci, chain) in self.rs.chains.iter().enumerate() {
            if chain.name.starts_with('?') {
                continue;
            }
            let plan = &self.plans[ci];
            let base_policy = chain.base.as_ref().map(|b| b.policy);
            // Group model rules by their source rule (multiport --ports splits one rule in two).
            let mut i = 0;
            while i < chain.rules.len() {
                let mut j = i + 1;
                while j < chain.rules.len() && chain.rules[j].origin == chain.rules[i].origin {
                    j += 1;
                }
                let mut all_shadowed = true;
                let mut all_redundant = true;
                let mut shadow_by = Vec::new();
                let mut redundant_by = Vec::new();
                for r in i..j {
                    match self.rule_anomaly(ci, plan, r, base_policy, budget) {
                        RuleAnomaly::Shadowed(by) => {
                            shadow_by.extend(by);
                            all_redundant = false;
                        }
                        RuleAnomaly::Redundant(by) => {
                            all_shadowed = false;
                            redundant_by.extend(by);
                        }
                        RuleAnomaly::None => {
                            all_shadowed = false;
                            all_redundant = false;
                        }
                    }
                }
                let me = chain.rules[i].origin.clone();
                let dedup = |v: Vec<RuleRef>| {
                    let mut out: Vec<RuleRef> = Vec::new();
                    for r in v {
                        if r != me && !out.contains(&r) {
                            out.push(r);
                        }
                    }
                    out
                };
                if all_shadowed {
                    shadowed.push(Anomaly {
                        rule: me.clone(),
                        chain: chain.name.clone(),
                        by: dedup(shadow_by),
                    });
                } else if all_redundant {
                    redundant.push(Anomaly {
                        rule: me.clone(),
                        chain: chain.name.clone(),
                        by: dedup(redundant_by),
                    });
                }
                i = j;
            }
        }
        Anomalies {
            shadowed,
            redundant,
        }
    }

    fn rule_anomaly(
        &self,
        ci: usize,
        plan: &Plan,
        r: usize,
        base_policy: Option<Policy>,
        budget: usize,
    ) -> RuleAnomaly {
        let rule = &self.rs.chains[ci].rules[r];
        let boxes = &plan.rule_boxes[r];
        let (start, end) = plan.spans[r];
        let frags: Vec<(PBox, u32)> = boxes.iter().map(|b| (b.clone(), 0)).collect();
        let Ok((decided, surv)) = self.walk_with(plan, frags, 0, start, budget, true) else {
            return RuleAnomaly::None;
        };
        let deciders = |d: &[(PBox, u32)]| -> Vec<RuleRef> {
            let mut v: Vec<RuleRef> = Vec::new();
            for (_, j) in d {
                let key = plan.pieces[*j as usize].path[0];
                let rr = self.rule_ref(key);
                if !v.contains(&rr) {
                    v.push(rr);
                }
            }
            v
        };
        let reach: Vec<(PBox, u32)> = surv.into_iter().filter(|(_, p)| *p <= start).collect();
        if reach.is_empty() {
            return RuleAnomaly::Shadowed(deciders(&decided));
        }
        if !rule.matches.opaque.is_empty() {
            return RuleAnomaly::None;
        }
        let own = match rule.action {
            Action::Accept => Fate::Accept,
            Action::Drop => Fate::Drop,
            Action::Reject { .. } => Fate::Reject,
            Action::Return => Fate::Return,
            _ => return RuleAnomaly::None,
        };
        // Without the rule, where would its packets go?
        let reach: Vec<(PBox, u32)> = reach.into_iter().map(|(b, p)| (b, p.max(end))).collect();
        let Ok((later, fall)) = self.walk(plan, reach, end, plan.pieces.len() as u32, budget)
        else {
            return RuleAnomaly::None;
        };
        let fall_fate = match base_policy {
            Some(Policy::Drop) => Fate::Drop,
            Some(Policy::Accept) => Fate::Accept,
            None => Fate::Return,
        };
        let normalize = |f: Fate| if f == Fate::Return { fall_fate } else { f };
        let own = normalize(own);
        let same = later
            .iter()
            .all(|(_, j)| normalize(plan.pieces[*j as usize].fate) == own)
            && (fall.is_empty() || fall_fate == own);
        if same {
            let mut by = deciders(&later);
            if !fall.is_empty() && base_policy.is_some() {
                by.push(RuleRef::Policy {
                    chain: self.rs.chains[ci].name.clone(),
                });
            }
            RuleAnomaly::Redundant(by)
        } else {
            RuleAnomaly::None
        }
    }
}

enum RuleAnomaly {
    Shadowed(Vec<RuleRef>),
    Redundant(Vec<RuleRef>),
    None,
}

/// A rule that never matches, or whose removal changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// The rule.
    pub rule: RuleRef,
    /// Its chain.
    pub chain: String,
    /// The rules responsible (earlier rules that cover it, or later rules
    /// that would decide its packets the same way).
    pub by: Vec<RuleRef>,
}

/// Shadowed and redundant rules.
#[derive(Debug, Clone, Default)]
pub struct Anomalies {
    /// Rules no packet can reach.
    pub shadowed: Vec<Anomaly>,
    /// Rules whose removal changes no verdict.
    pub redundant: Vec<Anomaly>,
}

fn build(
    rs: &Ruleset,
    u: &IfaceUniverse,
    c: usize,
    state: &mut [u8],
    plans: &mut Vec<Option<Plan>>,
    loops: &mut Vec<ChainId>,
) {
    if state[c] != 0 {
        return;
    }
    state[c] = 1;
    let chain = &rs.chains[c];
    let mut pieces: Vec<Piece> = Vec::new();
    let mut spans = Vec::with_capacity(chain.rules.len());
    let mut rule_boxes = Vec::with_capacity(chain.rules.len());
    for (ri, rule) in chain.rules.iter().enumerate() {
        let boxes = match_boxes(&rule.matches, u);
        let start = pieces.len() as u32;
        let key = (c as u32, ri as u32);
        let push_all = |pieces: &mut Vec<Piece>, fate: Fate| {
            for b in &boxes {
                pieces.push(Piece {
                    b: b.clone(),
                    fate,
                    path: vec![key],
                });
            }
        };
        if !rule.matches.opaque.is_empty() {
            if !matches!(rule.action, Action::Continue) {
                push_all(&mut pieces, Fate::Unknown);
            }
        } else {
            match &rule.action {
                Action::Accept => push_all(&mut pieces, Fate::Accept),
                Action::Drop => push_all(&mut pieces, Fate::Drop),
                Action::Reject { .. } => push_all(&mut pieces, Fate::Reject),
                Action::Return => push_all(&mut pieces, Fate::Return),
                Action::Continue => {}
                Action::Jump { target } | Action::Goto { target } => {
                    let goto = matches!(rule.action, Action::Goto { .. });
                    let t = target.0;
                    build(rs, u, t, state, plans, loops);
                    match plans[t].as_ref() {
                        None => {
                            // A loop: the kernel refuses these; the result is unknown.
                            if !loops.contains(target) {
                                loops.push(*target);
                            }
                            push_all(&mut pieces, Fate::Unknown);
                        }
                        Some(tp) => {
                            inline(&mut pieces, tp, &boxes, key, goto);
                            if goto {
                                push_all(&mut pieces, Fate::Return);
                            }
                        }
                    }
                }
            }
        }
        spans.push((start, pieces.len() as u32));
        rule_boxes.push(boxes);
    }
    let index = DstIndex::build(pieces.iter().enumerate().map(|(i, p)| {
        let (lo, hi) = hull(&p.b);
        (p.b.fam, lo, hi, i as u32)
    }));
    plans[c] = Some(Plan {
        pieces,
        spans,
        rule_boxes,
        index,
    });
    state[c] = 2;
}

/// Inline target plan `tp` under the jump rule's boxes.
fn inline(pieces: &mut Vec<Piece>, tp: &Plan, boxes: &[PBox], key: (u32, u32), goto: bool) {
    // (original position, piece cut to the rule's box)
    let mut cut: Vec<(u32, PBox)> = Vec::new();
    for b in boxes {
        let (lo, hi) = hull(b);
        for j in tp.index.query(b.fam, lo, hi) {
            if let Some(x) = tp.pieces[j as usize].b.intersect(b) {
                cut.push((j, x));
            }
        }
    }
    cut.sort_by_key(|(j, _)| *j);
    let base = pieces.len() as u32;
    let end = base + cut.len() as u32;
    let origs: Vec<u32> = cut.iter().map(|(j, _)| *j).collect();
    for (j, x) in cut {
        let src = &tp.pieces[j as usize];
        let fate = match src.fate {
            Fate::Return if !goto => Fate::Skip(end),
            Fate::Skip(k) => Fate::Skip(base + origs.partition_point(|&o| o < k) as u32),
            f => f,
        };
        let mut path = Vec::with_capacity(src.path.len() + 1);
        path.push(key);
        path.extend_from_slice(&src.path);
        pieces.push(Piece { b: x, fate, path });
    }
}

/// Conntrack state NEW only.
pub const NEW: u8 = CtStates::NEW;
/// Conntrack state ESTABLISHED only.
pub const ESTABLISHED: u8 = CtStates::ESTABLISHED;
