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
use crate::space::ISet;
use crate::space::{match_boxes, IfaceUniverse, PBox};
use ringfence_model::{Action, ChainId, CtStates, Hook, Policy, RuleRef, Ruleset};

/// Path of `(chain, rule)` keys; rule `u32::MAX` stands for the chain policy.
pub type Path = smallvec::SmallVec<[(u32, u32); 3]>;

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
    pub rule_boxes: Vec<crate::space::Boxes>,
    index: DstIndex,
}

/// The walk produced more fragments than its budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

/// Default fragment budget of one walk.
pub const DEFAULT_BUDGET: usize = 200_000;

/// Most fragment-box comparisons one walk may make before it gives up.
pub const WORK_LIMIT: usize = 32_000_000;

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
    /// Base chains per hook, in evaluation order (computed once).
    bases: Vec<(Hook, Vec<ChainId>)>,
}

const HOOKS: [Hook; 5] = [
    Hook::Prerouting,
    Hook::Input,
    Hook::Forward,
    Hook::Output,
    Hook::Postrouting,
];

/// Per traversal (named by its hook, see [`Hook::path`]): the base chains a
/// packet meets, in evaluation order, computed once (the model computes them
/// per call).
pub(crate) fn bases_by_hook(rs: &Ruleset) -> Vec<(Hook, Vec<ChainId>)> {
    HOOKS.iter().map(|&h| (h, rs.path_chains(h))).collect()
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
            bases: bases_by_hook(rs),
        }
    }

    /// The base chains a packet meets on the traversal `hook` names, in
    /// evaluation order ([`Ruleset::path_chains`]): prerouting, forward and
    /// postrouting for `Forward`, and so on.
    pub fn base_chains(&self, hook: Hook) -> &[ChainId] {
        self.bases
            .iter()
            .find(|(h, _)| *h == hook)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
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
        // Work bound: fragment-box comparisons; a region that many boxes cut
        // apart could otherwise take quadratic time before the budget trips.
        let mut work: usize = 0;
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
            work += frags.len();
            if work > WORK_LIMIT {
                return Err(OverBudget);
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
            region.into_iter().map(|b| (b, Path::new())).collect(),
        )
    }

    fn classify_from(
        &self,
        hook: Hook,
        first_base: usize,
        mut current: Vec<(PBox, Path)>,
    ) -> Result<Vec<Outcome>, OverBudget> {
        let mut out = Vec::new();
        for &base in self.base_chains(hook).iter().skip(first_base) {
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

    /// Everything the path `hook` names may accept within `scope` (boxes)
    /// minus `allowed`, as disjoint regions with the rules that decide them.
    /// An outcome of fate [`Fate::Accept`] is certainly accepted; one of fate
    /// [`Fate::Unknown`] is possibly accepted (a rule the model cannot
    /// evaluate decides it; its path ends at that rule). The second value is
    /// true when a part could not be enumerated within the budget (then the
    /// list is incomplete and says so).
    ///
    /// Over-approximate, then classify: a packet the whole path accepts must
    /// get through the *pivot*, the first base chain on the path whose policy
    /// drops (else the first base chain). There, its first deciding box is an
    /// accept box or an unknown box (or, when the pivot's policy accepts, a
    /// return box or the chain's end). Each such box, cut to the scope, is
    /// walked from the top of the pivot's plan to find the part that really
    /// reaches it (every box decides in that walk, so each packet is found at
    /// exactly one box and no region is reported twice), and that part is
    /// classified through the whole path from its first base chain.
    pub fn accepted_beyond(
        &self,
        hook: Hook,
        scope: &[PBox],
        allowed: &[PBox],
        budget: usize,
    ) -> (Vec<Outcome>, bool) {
        let bases = self.base_chains(hook);
        let mut incomplete = false;
        let mut out = Vec::new();
        if bases.is_empty() {
            // No filtering at all on this path: the whole scope is accepted.
            for s in scope {
                let refs: Vec<&PBox> = allowed.iter().collect();
                match crate::space::subtract_all(s, &refs, budget) {
                    Some(v) => out.extend(v.into_iter().map(|b| Outcome {
                        b,
                        fate: Fate::Accept,
                        path: Path::new(),
                    })),
                    None => incomplete = true,
                }
            }
            return (out, incomplete);
        }
        let policy_of = |c: ChainId| self.rs.chain(c).base.as_ref().map(|b| b.policy);
        let pi = bases
            .iter()
            .position(|&c| policy_of(c) == Some(Policy::Drop))
            .unwrap_or(0);
        let pivot = bases[pi];
        let plan = &self.plans[pivot.0];
        let policy = policy_of(pivot);
        let minus_allowed = |b: &PBox| -> Option<Vec<PBox>> {
            let refs: Vec<&PBox> = allowed.iter().filter(|a| a.overlaps(b)).collect();
            crate::space::subtract_all(b, &refs, budget)
        };
        // What the whole path does with a region whose fate in the pivot is
        // `fate` (reached through the pivot's boxes on `path`). When the pivot
        // is the first base chain its decision is already known and only the
        // later chains are walked; otherwise the earlier chains may drop,
        // reject or not be evaluable, so the region is classified from the
        // start of the path.
        // False when the classification went over budget.
        let settle = |reach: Vec<(PBox, Path)>, fate: Fate, out: &mut Vec<Outcome>| -> bool {
            let result = if pi == 0 {
                match fate {
                    Fate::Unknown => Ok(reach
                        .into_iter()
                        .map(|(b, path)| Outcome {
                            b,
                            fate: Fate::Unknown,
                            path,
                        })
                        .collect()),
                    _ => self.classify_from(hook, 1, reach),
                }
            } else {
                self.classify_from(
                    hook,
                    0,
                    reach.into_iter().map(|(b, _)| (b, Path::new())).collect(),
                )
            };
            match result {
                Ok(v) => {
                    out.extend(
                        v.into_iter()
                            .filter(|o| matches!(o.fate, Fate::Accept | Fate::Unknown)),
                    );
                    true
                }
                Err(_) => false,
            }
        };
        // Accepting and unknown boxes of the pivot, each walked from the top.
        for (j, piece) in plan.pieces.iter().enumerate() {
            if !matches!(piece.fate, Fate::Accept | Fate::Unknown) {
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
            if !reach.is_empty() && !settle(reach, piece.fate, &mut out) {
                incomplete = true;
            }
        }
        // Return boxes and the fall-through, when the pivot's policy accepts.
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
                            p.push((pivot.0 as u32, u32::MAX));
                            (b, p)
                        })
                        .collect();
                    reach.extend(
                        surv.into_iter()
                            .map(|(b, _)| (b, smallvec::smallvec![(pivot.0 as u32, u32::MAX)])),
                    );
                    if !reach.is_empty() && !settle(reach, Fate::Accept, &mut out) {
                        incomplete = true;
                    }
                }
                Err(_) => incomplete = true,
            }
        }
        (out, incomplete)
    }

    /// Shadowed and redundant rules of every chain.
    pub fn anomalies(&self, budget: usize) -> Anomalies {
        self.anomalies_in(0..self.rs.chains.len(), budget)
    }

    /// [`Engine::anomalies`] shared by several threads: each caller takes
    /// the next unclaimed run of `chunk` chains from `next` until none is
    /// left, and returns its results keyed by run. Concatenating every
    /// caller's results in key order gives exactly [`Engine::anomalies`].
    pub fn anomalies_shared(
        &self,
        budget: usize,
        next: &std::sync::atomic::AtomicUsize,
        chunk: usize,
    ) -> Vec<(usize, Anomalies)> {
        let n = self.rs.chains.len();
        let chunk = chunk.max(1);
        let mut out = Vec::new();
        loop {
            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let start = k.saturating_mul(chunk);
            if start >= n {
                return out;
            }
            out.push((k, self.anomalies_in(start..n.min(start + chunk), budget)));
        }
    }

    /// Shadowed and redundant rules of the chains in `range`, in chain order.
    fn anomalies_in(&self, range: std::ops::Range<usize>, budget: usize) -> Anomalies {
        let mut shadowed = Vec::new();
        let mut redundant = Vec::new();
        for ci in range {
            let chain = &self.rs.chains[ci];
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
        let mut left = budget;
        // Shadowed: no packet of the rule's match gets past the boxes before it.
        // Opaque boxes may not match, so they never shadow anything.
        let mut reached = false;
        for b in boxes {
            match self.reaches(plan, b, start, (start, start), &mut left) {
                Some(true) => {
                    reached = true;
                    break;
                }
                Some(false) => {}
                None => return RuleAnomaly::None,
            }
        }
        if !reached {
            let mut by: Vec<RuleRef> = Vec::new();
            for b in boxes {
                for j in self.candidates(plan, b, 0, start) {
                    let q = &plan.pieces[j as usize];
                    if q.fate != Fate::Unknown && q.b.overlaps(b) {
                        let rr = self.rule_ref(q.path[0]);
                        if !by.contains(&rr) && by.len() < 10 {
                            by.push(rr);
                        }
                    }
                }
            }
            return RuleAnomaly::Shadowed(by);
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
        let fall_fate = match base_policy {
            Some(Policy::Drop) => Fate::Drop,
            Some(Policy::Accept) => Fate::Accept,
            None => Fate::Return,
        };
        let normalize = |f: Fate| if f == Fate::Return { fall_fate } else { f };
        let own = normalize(own);
        // Redundant: without the rule, no packet of it reaches a box (or the
        // chain's end) that decides differently.
        let len = plan.pieces.len() as u32;
        let mut by: Vec<RuleRef> = Vec::new();
        for b in boxes {
            for j in self.candidates(plan, b, end, len) {
                let q = &plan.pieces[j as usize];
                if matches!(q.fate, Fate::Skip(_)) {
                    continue;
                }
                let Some(x) = q.b.intersect(b) else { continue };
                if normalize(q.fate) == own {
                    let rr = self.rule_ref(q.path[0]);
                    if !by.contains(&rr) && by.len() < 10 {
                        by.push(rr);
                    }
                    continue;
                }
                match self.reaches_excluding(plan, &x, j, (start, end), &mut left, true) {
                    Some(false) => {}
                    _ => return RuleAnomaly::None,
                }
            }
            match self.reaches_excluding(plan, b, len, (start, end), &mut left, true) {
                Some(false) => {}
                Some(true) if fall_fate == own => {
                    if base_policy.is_some() {
                        let p = RuleRef::Policy {
                            chain: self.rs.chains[ci].name.clone(),
                        };
                        if !by.contains(&p) {
                            by.push(p);
                        }
                    }
                }
                _ => return RuleAnomaly::None,
            }
        }
        RuleAnomaly::Redundant(by)
    }

    /// Plan positions in `[from, to)` whose box may meet `b`, ascending.
    fn candidates(&self, plan: &Plan, b: &PBox, from: u32, to: u32) -> Vec<u32> {
        let (lo, hi) = hull(b);
        let mut c = plan.index.query(b.fam, lo, hi);
        c.retain(|&j| j >= from && j < to);
        c
    }

    /// Whether some packet of `b`, entering the plan at position 0, is still
    /// undecided when it reaches position `to` (opaque boxes let packets through).
    /// `None` when the search exceeds the budget.
    fn reaches(
        &self,
        plan: &Plan,
        b: &PBox,
        to: u32,
        exclude: (u32, u32),
        left: &mut usize,
    ) -> Option<bool> {
        self.reaches_excluding(plan, b, to, exclude, left, true)
    }

    /// [`Engine::reaches`], ignoring the boxes in `exclude` (a removed rule).
    /// Tries a few concrete packets first (a witness ends the search at once),
    /// then searches the box exhaustively.
    fn reaches_excluding(
        &self,
        plan: &Plan,
        b: &PBox,
        to: u32,
        exclude: (u32, u32),
        left: &mut usize,
        may_not_match: bool,
    ) -> Option<bool> {
        let mut cands = self.candidates(plan, b, 0, to);
        cands.retain(|&j| {
            (j < exclude.0 || j >= exclude.1)
                && !(may_not_match && plan.pieces[j as usize].fate == Fate::Unknown)
        });
        // Witnesses: corner and middle points of the box.
        for w in witness_points(b) {
            if point_reaches(plan, &cands, &w, to) {
                return Some(true);
            }
        }
        // Exhaustive depth-first search over fragments.
        let mut stack: Vec<(PBox, usize, u32)> = vec![(b.clone(), 0, 0)];
        let mut work: usize = 0;
        while let Some((f, mut k, rp)) = stack.pop() {
            loop {
                work += 1;
                if work > WORK_LIMIT / 16 {
                    return None;
                }
                if k == cands.len() {
                    if rp <= to {
                        return Some(true);
                    }
                    break;
                }
                let j = cands[k];
                if j >= rp && plan.pieces[j as usize].b.overlaps(&f) {
                    break;
                }
                k += 1;
            }
            if k == cands.len() {
                continue;
            }
            let q = &plan.pieces[cands[k] as usize];
            if let Fate::Skip(s) = q.fate {
                if let Some(inside) = f.intersect(&q.b) {
                    stack.push((inside, k + 1, s));
                }
            }
            let mut outs = f.subtract(&q.b);
            outs.reverse();
            for o in outs {
                stack.push((o, k + 1, rp));
            }
            if *left == 0 {
                return None;
            }
            *left -= 1;
        }
        Some(false)
    }
}

/// A few concrete packets of a box (as one-point boxes): low corner, high
/// corner, and mixed choices per field.
fn witness_points(b: &PBox) -> impl Iterator<Item = PBox> + '_ {
    fn pick<T: ringfence_model::interval::Bound>(s: &ISet<T>, k: usize) -> ISet<T> {
        let r = s.ranges();
        let v = match k % 3 {
            0 => r[0].0,
            1 => r[r.len() - 1].1,
            _ => r[r.len() / 2].0,
        };
        ISet::single(v)
    }
    // The state bits present, lowest first (at least one unless the box is
    // empty, which has no witness).
    let mut ct_bits = [0u8; 8];
    let mut n_bits = 0;
    for i in 0..8 {
        if b.ct & (1u8 << i) != 0 {
            ct_bits[n_bits] = 1u8 << i;
            n_bits += 1;
        }
    }
    let count = if b.is_empty() { 0 } else { 6usize };
    // Built one at a time as the caller asks: it usually stops early.
    (0..count).map(move |k| PBox {
        fam: b.fam,
        src: pick(&b.src, k),
        dst: pick(&b.dst, k + 1),
        proto: pick(&b.proto, k + 2),
        sport: pick(&b.sport, k),
        dport: pick(&b.dport, k + 2),
        iif: pick(&b.iif, k + 1),
        oif: pick(&b.oif, k),
        ct: ct_bits[k % n_bits],
    })
}

/// Whether the one-point box `p` gets past every candidate box before `to`.
fn point_reaches(plan: &Plan, cands: &[u32], p: &PBox, to: u32) -> bool {
    let mut rp = 0u32;
    for &j in cands {
        if j < rp {
            continue;
        }
        if j >= to {
            break;
        }
        let q = &plan.pieces[j as usize];
        if q.b.overlaps(p) {
            match q.fate {
                Fate::Skip(s) => rp = s,
                _ => return false,
            }
        }
    }
    rp <= to
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
                    path: smallvec::smallvec![key],
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
        let mut path = Path::with_capacity(src.path.len() + 1);
        path.push(key);
        path.extend_from_slice(&src.path);
        pieces.push(Piece { b: x, fate, path });
    }
}

/// Conntrack state NEW only.
pub const NEW: u8 = CtStates::NEW;
/// Conntrack state ESTABLISHED only.
pub const ESTABLISHED: u8 = CtStates::ESTABLISHED;
