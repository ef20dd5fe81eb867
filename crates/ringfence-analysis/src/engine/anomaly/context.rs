//! Dead rules in context: which rules a packet can reach, and match, on
//! its real way through the ruleset.
//!
//! A base chain's plan (at the stage it runs at) has every chain it reaches
//! inlined, cut down to the jump rule's box, so a rule of a user chain
//! appears there once per way of calling it (an *inlining*, named by the
//! path of jump rules that leads to it). The rule's pieces in one inlining
//! are consecutive and start where the rule is evaluated; the packets it
//! matches there are its own box cut by the boxes of every jump on the way.
//! A rule is **alive** when, in some inlining of some plan, some packet
//! reaches that position inside that box (every branch of a rule that may
//! or may not match counts: it may go either way), **dead** when that holds
//! in no inlining, and **unknown** when a check went over its budget or the
//! rule's position cannot be found (a rule without a verdict compiles to no
//! piece). A user chain that no jump reaches in any plan is **never
//! reached**. Dead is claimed only when every check says so; everything
//! else is alive or unknown, and neither is ever reported.
//!
//! Base chains are walked on the three paths a packet really takes (input,
//! forward, output). On a path, a base chain after others (filter after
//! raw and mangle) sees only what those pass on: where no chain up to it
//! rewrites marks or reaches a target the model cannot follow, a rule is
//! alive there only if some packet that reaches it also gets through every
//! earlier base chain (some branch accepts, or its policy does).

use super::super::*;
use super::{point_reaches, witness_points};
use std::collections::HashMap;

/// What the checks so far say about one rule (ordered: a later state wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Seen {
    /// No inlining has it (yet): its chain is not reached.
    Not,
    /// Every inlining checked so far: no packet reaches it and matches.
    Dead,
    /// Some check could not decide.
    Unknown,
    /// Some packet reaches it and matches it.
    Alive,
}

/// The context-dead result for every rule of the ruleset.
pub(crate) struct Context {
    /// Per chain, per rule.
    pub seen: Vec<Vec<Seen>>,
    /// Per chain: some plan inlines it (or it is a base chain, or the
    /// analysis could not tell).
    pub reached: Vec<bool>,
    /// For dead rules: the rules responsible, in the order found.
    pub by: HashMap<(u32, u32), Vec<RuleRef>>,
    /// Per chain, per rule: whether some packet that enters the rule's own
    /// chain reaches it (`Some(false)`: shadowed in its chain), when the
    /// pass asked; asked once per rule and reused by the own-chain judgement.
    pub own: Vec<Vec<Option<Option<bool>>>>,
    /// For alive rules, when the pass was asked for them
    /// ([`ContextOpts::witnesses`]) and found one: a packet (a one-point
    /// box but for its marks and rarer fields) that reaches the rule in one
    /// of its inlinings, matches it and gets through the earlier base
    /// chains. The incremental verifier keeps a rule alive without judging
    /// it again for as long as no change touches that packet. With it, the
    /// base chain it was found from when a plain first-match walk from
    /// there decides it again (the first base chain of its path, at a
    /// stage that hides nothing).
    pub witness: HashMap<(u32, u32), (PBox, Option<usize>)>,
}

impl Context {
    fn mark(&mut self, (c, r): (u32, u32), s: Seen) {
        let x = &mut self.seen[c as usize][r as usize];
        if s > *x {
            *x = s;
        }
    }

    fn blame(&mut self, key: (u32, u32), rules: impl IntoIterator<Item = RuleRef>) {
        let v = self.by.entry(key).or_default();
        for r in rules {
            if v.len() >= MAX_BY {
                break;
            }
            if !v.contains(&r) {
                v.push(r);
            }
        }
    }

    /// Whether rule `r` of chain `c` is dead in every inlining (and its
    /// chain is reached: the rules of a chain never reached are reported
    /// once, as their chain).
    pub fn dead(&self, c: usize, r: usize) -> bool {
        self.reached[c] && self.seen[c][r] == Seen::Dead
    }

    /// Whether some packet certainly reaches rule `r` of chain `c` and matches it.
    pub fn alive(&self, c: usize, r: usize) -> bool {
        self.seen[c][r] == Seen::Alive
    }

    /// What is known of rule `r` of chain `c` in its own chain:
    /// `Some(true)` reached, `Some(false)` shadowed there, `None` not asked
    /// or over budget.
    pub fn own_reached(&self, c: usize, r: usize) -> Option<bool> {
        self.own[c][r].flatten()
    }
}

/// Most rules named as responsible for one dead rule.
const MAX_BY: usize = 10;

/// Most fragments a walk for the packets that reach an inlining may hold
/// (beyond it each of the inlining's rules is walked from position 0 on
/// its own). A test may set another ([`Engine::with_area_budget`]).
pub(crate) const AREA_BUDGET: usize = 256;

/// Most fragments a walk of one rule's cut from position 0 may hold
/// (beyond it the rule is searched from position 0). Larger budgets were
/// slower on `return` at 100k rules (BENCHMARKS.md): a walk that needs
/// more costs more than the search.
const RULE_WALK_BUDGET: usize = 256;

/// Most boxes a cut may have before it is replaced by a coarser one.
const MAX_CUT: usize = 64;

/// One chain to look at inside a plan: its rules are evaluated with the
/// packets of `cut` (the boxes of every jump on `prefix`).
struct Work {
    chain: usize,
    prefix: Path,
    /// `None`: the base chain itself (every packet).
    cut: Option<Vec<PBox>>,
    /// The packets that reach the start of this inlining, when known.
    area: Area,
}

/// What reaches the start of an inlining (see [`Engine::context_unit`]).
enum Area {
    /// The base chain: every packet, from plan position 0.
    All,
    /// Exactly these packets, at this plan position.
    Exact(Vec<PBox>, u32),
    /// Not computed (a plan whose boxes a walk may not read this way, or
    /// over budget): each rule is searched from position 0.
    Lost,
}

/// A plan and how packets reach it on one path.
struct Unit<'p> {
    plan: &'p Plan,
    base: ChainId,
    stage: Stage,
    /// Earlier base chains of the path whose verdicts restrict what reaches
    /// `plan` (empty when they cannot be used: see the module notes).
    earlier: Vec<(&'p Plan, ChainId)>,
    /// The first base chain of its path, at a stage that hides nothing.
    first: bool,
}

/// How a context pass is restricted (the incremental verifier runs it on
/// a sub-ruleset: see [`crate::incremental`]).
#[derive(Default)]
pub(crate) struct ContextOpts<'o> {
    /// Judge only these rules (chain, rule) and enter every jump target
    /// whatever the jump's own state: each inlining of a wanted rule is
    /// then looked at (one where a jump on the way is dead only adds a
    /// dead result, which the caller's reachability bookkeeping absorbs).
    pub want: Option<&'o dyn Fn(usize, usize) -> bool>,
    /// Per chain of this engine's ruleset: whether what it reaches holds a
    /// target the model cannot follow (or a rewrite), decided on a larger
    /// ruleset than this one; `None`: read from this engine's plans.
    pub opaque: Option<Vec<bool>>,
    /// Keep a witness packet for each rule found alive (see
    /// [`Context::witness`]).
    pub witnesses: bool,
}

impl Engine<'_> {
    /// The context-dead analysis of the whole ruleset (computed once per engine).
    pub(in crate::engine) fn context(&self, budget: usize) -> &Context {
        self.anomaly_context
            .get_or_init(|| self.context_pass(budget, &ContextOpts::default()))
    }

    /// The context-dead analysis with `opts` (see [`ContextOpts`]).
    pub(crate) fn context_pass(&self, budget: usize, opts: &ContextOpts<'_>) -> Context {
        let rs = self.rs;
        let mut ctx = Context {
            seen: rs
                .chains
                .iter()
                .map(|c| vec![Seen::Not; c.rules.len()])
                .collect(),
            reached: rs.chains.iter().map(|c| c.base.is_some()).collect(),
            by: HashMap::new(),
            own: rs
                .chains
                .iter()
                .map(|c| vec![None; c.rules.len()])
                .collect(),
            witness: HashMap::new(),
        };
        // Chains in a jump loop have no plan the analysis can read: they and
        // everything they may call are taken as reached, their rules unknown.
        for &l in &self.loops {
            self.reached_unknown(&mut ctx, l.0);
        }
        let mut done: std::collections::HashSet<Vec<usize>> = Default::default();
        for t in [Hook::Input, Hook::Forward, Hook::Output] {
            let bases = self.base_chains(t);
            for (k, &base) in bases.iter().enumerate() {
                let plan = self.stage_plan(t, base);
                let stage = Stage::of_chain(rs, t, base.0);
                let earlier = self.earlier_usable(t, &bases[..k], base, plan, opts);
                // The same plan behind the same earlier chains is looked at once.
                let mut sig: Vec<usize> = vec![plan as *const Plan as usize, stage_key(stage)];
                sig.extend(earlier.iter().map(|(p, _)| *p as *const Plan as usize));
                if !done.insert(sig) {
                    continue;
                }
                let unit = Unit {
                    plan,
                    base,
                    stage,
                    earlier,
                    first: k == 0 && stage.is_plain(),
                };
                self.context_unit(&unit, &mut ctx, budget, opts);
            }
        }
        ctx
    }

    /// The earlier base chains of a path that may restrict what reaches
    /// `plan`: only when no chain up to and including `plan` rewrites marks
    /// or has a target the model cannot follow (their boxes then speak of
    /// the packets as they entered), and some earlier chain can drop.
    fn earlier_usable<'p>(
        &'p self,
        t: Hook,
        before: &[ChainId],
        base: ChainId,
        plan: &'p Plan,
        opts: &ContextOpts<'_>,
    ) -> Vec<(&'p Plan, ChainId)> {
        let plans: Vec<(&Plan, ChainId)> =
            before.iter().map(|&c| (self.stage_plan(t, c), c)).collect();
        let opaque = |p: &Plan, c: ChainId| match &opts.opaque {
            Some(o) => o[c.0],
            None => p
                .pieces
                .iter()
                .any(|q| matches!(q.fate, Fate::Mark(..) | Fate::Nat(..) | Fate::Unknown)),
        };
        let drops = |(p, c): &(&Plan, ChainId)| {
            self.rs.chain(*c).base.as_ref().map(|b| b.policy) == Some(Policy::Drop)
                || p.pieces
                    .iter()
                    .any(|q| matches!(q.fate, Fate::Drop | Fate::Reject | Fate::Return))
        };
        if opaque(plan, base)
            || plans.iter().any(|&(p, c)| opaque(p, c))
            || !plans.iter().any(drops)
        {
            return Vec::new();
        }
        plans
    }

    /// Mark chain `c` and every chain it may call as reached, their rules unknown.
    fn reached_unknown(&self, ctx: &mut Context, c: usize) {
        let mut seen = vec![false; self.rs.chains.len()];
        let mut stack = vec![c];
        while let Some(c) = stack.pop() {
            if std::mem::replace(&mut seen[c], true) {
                continue;
            }
            ctx.reached[c] = true;
            for (r, rule) in self.rs.chains[c].rules.iter().enumerate() {
                ctx.mark((c as u32, r as u32), Seen::Unknown);
                if let Action::Jump { target } | Action::Goto { target } = &rule.action {
                    stack.push(target.0);
                }
            }
        }
    }

    /// Every rule the plan of `unit` inlines, in every inlining.
    fn context_unit(
        &self,
        unit: &Unit<'_>,
        ctx: &mut Context,
        budget: usize,
        opts: &ContextOpts<'_>,
    ) {
        let plan = unit.plan;
        // Where each inlining of each rule starts: its pieces are consecutive.
        let mut starts: HashMap<Path, u32> = HashMap::new();
        for (j, p) in plan.pieces.iter().enumerate() {
            let prev = j.checked_sub(1).map(|i| &plan.pieces[i].path);
            for n in 1..=p.path.len() {
                let pre = &p.path[..n];
                if prev.is_none_or(|q| q.len() < n || q[..n] != *pre) {
                    starts.entry(Path::from_slice(pre)).or_insert(j as u32);
                }
            }
        }
        // In a plan without rewrites or targets the model cannot follow, a
        // walk from the start of an inlining decides exactly which packets
        // get from there to each rule: the packets reaching a jump's
        // position are what its target's inlining starts with, so each rule
        // is looked at with a short walk inside its own chain's inlining
        // instead of a search through everything before it.
        let walkable = !plan
            .pieces
            .iter()
            .any(|q| matches!(q.fate, Fate::Mark(..) | Fate::Nat(..) | Fate::Unknown))
            && opts.want.is_none();
        let mut stack = vec![Work {
            chain: unit.base.0,
            prefix: Path::new(),
            cut: None,
            area: if walkable { Area::All } else { Area::Lost },
        }];
        while let Some(w) = stack.pop() {
            let chain = &self.rs.chains[w.chain];
            for (r, rule) in chain.rules.iter().enumerate() {
                let key = (w.chain as u32, r as u32);
                let mut prefix = w.prefix.clone();
                prefix.push(key);
                // The rule's box where it is evaluated, cut by the jumps on the way.
                let own: crate::space::Boxes = if w.cut.is_none() {
                    plan.rule_boxes[r].clone()
                } else {
                    self.staged_boxes(rule, unit.stage)
                };
                let cut: Vec<PBox> = match &w.cut {
                    None => own.to_vec(),
                    Some(outer) if outer.len() * own.len() <= MAX_CUT * 4 => outer
                        .iter()
                        .flat_map(|o| own.iter().filter_map(move |b| o.intersect(b)))
                        .collect(),
                    // Too many pieces to intersect: the rule's own boxes
                    // are coarser (more packets), so nothing is called dead
                    // wrongly, and stay inside the rule's match (which the
                    // incremental verifier's sub-rulesets rely on).
                    Some(_) => own.to_vec(),
                };
                let target = match &rule.action {
                    Action::Jump { target } | Action::Goto { target } => Some(target.0),
                    _ => None,
                };
                let wanted = opts.want.is_none_or(|f| f(w.chain, r));
                if cut.is_empty() {
                    // No packet that gets here matches it.
                    if !wanted {
                        continue;
                    }
                    ctx.mark(key, Seen::Dead);
                    if ctx.seen[w.chain][r] == Seen::Dead {
                        let jump = w.prefix.last().map(|&k| self.rule_ref(k));
                        ctx.blame(key, jump);
                    }
                    continue;
                }
                // Whether its own chain lets any packet reach it, asked once:
                // a rule shadowed there is dead in every context, and a base
                // chain's rule read where nothing earlier restricts it is
                // judged exactly as in its chain.
                let own_seen = if wanted && ctx.seen[w.chain][r] < Seen::Unknown {
                    *ctx.own[w.chain][r].get_or_insert_with(|| self.own_reach(w.chain, r, budget))
                } else {
                    None
                };
                let plain_base = w.cut.is_none()
                    && unit.earlier.is_empty()
                    && std::ptr::eq(plan, &self.plans[w.chain]);
                // The packets of the cut that get from the inlining's start
                // to the rule, when the area is known and it is worth a walk:
                // a jump (its target's inlining starts with them) or a rule
                // not settled yet.
                let unsettled = wanted
                    && ctx.seen[w.chain][r] < Seen::Unknown
                    && own_seen != Some(false)
                    && !(own_seen == Some(true) && plain_base);
                // From a base chain's start only a jump's region is
                // walked (its target's start); a rule of the base chain
                // itself is searched as before (a witness usually ends it).
                // Inside an inlining whose area was too large to keep, in
                // a walkable plan, the rule's own cut is walked from the
                // plan's top instead: as exact, and a narrow box meets few
                // of the boxes before it.
                let from_top = |s: u32| self.region_at(plan, cut.clone(), 0, s, RULE_WALK_BUDGET);
                let (region, from_exact) = match (&w.area, starts.get(&prefix)) {
                    (_, None) => (None, false),
                    _ if !(unsettled || target.is_some()) => (None, false),
                    (Area::Lost, Some(&s)) if walkable && w.cut.is_some() => (from_top(s), true),
                    (Area::Lost, _) => (None, false),
                    (Area::All, Some(&s)) if target.is_some() => (
                        self.region_at(plan, cut.clone(), 0, s, self.area_budget),
                        false,
                    ),
                    (Area::All, _) => (None, false),
                    (Area::Exact(a, p0), Some(&s)) => {
                        let region = if a.len() * cut.len() > self.area_budget {
                            from_top(s)
                        } else {
                            let frags: Vec<PBox> = a
                                .iter()
                                .flat_map(|x| cut.iter().filter_map(move |b| x.intersect(b)))
                                .collect();
                            self.region_at(plan, frags, *p0, s, self.area_budget)
                        };
                        (region, true)
                    }
                };
                let state = if !wanted {
                    // Not asked about: only its target is entered.
                    Seen::Unknown
                } else if ctx.seen[w.chain][r] >= Seen::Unknown {
                    // Already alive or unknown: nothing more to learn here.
                    ctx.seen[w.chain][r]
                } else if own_seen == Some(false) {
                    ctx.mark(key, Seen::Dead);
                    Seen::Dead
                } else if own_seen == Some(true) && plain_base {
                    ctx.mark(key, Seen::Alive);
                    if opts.witnesses {
                        if let Some(&s) = starts.get(&prefix) {
                            if let Some(p) = self.point_witness(unit, &cut, s, budget) {
                                ctx.witness
                                    .insert(key, (p, unit.first.then_some(unit.base.0)));
                            }
                        }
                    }
                    Seen::Alive
                } else if let (Some(&s), Some(region), true) =
                    (starts.get(&prefix), &region, from_exact)
                {
                    // The walk from the inlining's start (or, where its
                    // area was not kept, from the plan's top) says it exactly.
                    let mut by = Vec::new();
                    let st = self.judge_region(unit, &cut, region, s, budget, &mut by);
                    ctx.mark(key, st);
                    if st == Seen::Alive && opts.witnesses {
                        // A packet of the region reaches the rule; with
                        // earlier base chains, one that also gets through.
                        let p = if unit.earlier.is_empty() {
                            region.iter().find_map(|b| witness_points(b).next())
                        } else {
                            self.point_witness(unit, region, s, budget)
                        };
                        if let Some(p) = p {
                            ctx.witness.insert(
                                key,
                                (self.u.marks.erase(p), unit.first.then_some(unit.base.0)),
                            );
                        }
                    }
                    if ctx.seen[w.chain][r] == Seen::Dead {
                        ctx.blame(key, by);
                    }
                    st
                } else if let Some(&s) = starts.get(&prefix) {
                    let mut by = Vec::new();
                    let mut found = None;
                    let st = self.reached_at(unit, &cut, s, budget, &mut by, &mut found);
                    ctx.mark(key, st);
                    if let (Some(p), true) = (found, opts.witnesses) {
                        ctx.witness
                            .insert(key, (p, unit.first.then_some(unit.base.0)));
                    }
                    if ctx.seen[w.chain][r] == Seen::Dead {
                        ctx.blame(key, by);
                    }
                    st
                } else {
                    // No piece: a rule without a verdict, or a jump to a
                    // chain none of whose rules its packets reach. Its place
                    // is unknown, so it is never called dead.
                    ctx.mark(key, Seen::Unknown);
                    Seen::Unknown
                };
                let Some(t) = target else { continue };
                if (state == Seen::Dead && opts.want.is_none())
                    || self.rs.chains[t].is_unknown_target()
                {
                    continue;
                }
                // A jump loop (the kernel refuses it): unknown, as the plans say.
                if self.loops.iter().any(|l| l.0 == t)
                    || prefix.iter().any(|&(c, _)| c as usize == t)
                {
                    self.reached_unknown(ctx, t);
                    continue;
                }
                ctx.reached[t] = true;
                // A target that rewrites marks is inlined cut to the jump's box
                // without its marks (see the plan builder).
                let rewrites = self.plans[t]
                    .pieces
                    .iter()
                    .any(|p| matches!(p.fate, Fate::Mark(..)));
                let mut cut = cut;
                if rewrites {
                    cut = cut.into_iter().map(|b| self.u.marks.erase(b)).collect();
                }
                if cut.len() > MAX_CUT {
                    // Coarser (the jump's own boxes hold every packet it
                    // matches): more packets, so nothing is called dead wrongly.
                    cut = own.iter().map(|b| self.u.marks.erase(b.clone())).collect();
                }
                let area = match (region, starts.get(&prefix)) {
                    (Some(a), Some(&s)) if state != Seen::Dead || a.is_empty() => Area::Exact(a, s),
                    _ => Area::Lost,
                };
                stack.push(Work {
                    chain: t,
                    prefix,
                    cut: Some(cut),
                    area,
                });
            }
        }
    }

    /// The packets of `frags` that, entering the plan at position `from`,
    /// are still undecided at position `s`; `None` over budget.
    fn region_at(
        &self,
        plan: &Plan,
        frags: Vec<PBox>,
        from: u32,
        s: u32,
        budget: usize,
    ) -> Option<Vec<PBox>> {
        if frags.is_empty() {
            return Some(Vec::new());
        }
        // Marks as the packets entered are not known here (as in the
        // searches): any marks, which only adds packets.
        let frags = frags
            .into_iter()
            .map(|b| Frag::new(self.u.marks.erase(b), from))
            .collect();
        let (_, surv) = self
            .walk(plan, frags, from, s, budget, Forks::Branch)
            .ok()?;
        Some(
            surv.into_iter()
                .filter(|f| f.pos <= s)
                .map(|f| f.b)
                .collect(),
        )
    }

    /// The judgement of a rule at plan position `s` whose packets that get
    /// there are exactly `region` (of its cut `cut`): dead when none, else
    /// as the earlier base chains let them through.
    fn judge_region(
        &self,
        unit: &Unit<'_>,
        cut: &[PBox],
        region: &[PBox],
        s: u32,
        budget: usize,
        by: &mut Vec<RuleRef>,
    ) -> Seen {
        if region.is_empty() {
            self.blame_in_plan(unit.plan, cut, s, by);
            return Seen::Dead;
        }
        if unit.earlier.is_empty() {
            return Seen::Alive;
        }
        let mut earlier_by = Vec::new();
        match self.passes_earlier(unit, region.to_vec(), budget, &mut earlier_by) {
            Some(true) => Seen::Alive,
            Some(false) => {
                by.extend(earlier_by);
                self.blame_in_plan(unit.plan, cut, s, by);
                Seen::Dead
            }
            None => Seen::Unknown,
        }
    }

    /// Whether some packet of rule `r`'s match that enters its chain `c`
    /// reaches it (the own-chain shadow question); `None` over budget.
    /// (Asked in the plan of the stage the chain runs at; `None` for a
    /// chain that runs at stages that see its rules differently.)
    fn own_reach(&self, c: usize, r: usize, budget: usize) -> Option<bool> {
        let plan = self.own_plan(c)?;
        let (start, _) = plan.spans[r];
        let mut left = budget;
        for b in &plan.rule_boxes[r] {
            if self.reaches(plan, b, start, (start, start), &mut left)? {
                return Some(true);
            }
        }
        Some(false)
    }

    /// A rule's match boxes as `stage` evaluates them (as the plan builder
    /// compiles them).
    fn staged_boxes(&self, rule: &ringfence_model::Rule, stage: Stage) -> crate::space::Boxes {
        let boxes = match_boxes(&rule.matches, &self.u);
        if stage.is_plain() {
            boxes
        } else if stage.never_matches(&rule.matches) {
            crate::space::Boxes::new()
        } else {
            boxes
                .into_iter()
                .filter_map(|b| stage.rewrite(b, &self.u))
                .collect()
        }
    }

    /// Whether some packet of `cut` reaches plan position `s` of the unit's
    /// plan (and gets through the unit's earlier base chains). On `Dead`,
    /// `by` holds the rules that decide those packets first.
    fn reached_at(
        &self,
        unit: &Unit<'_>,
        cut: &[PBox],
        s: u32,
        budget: usize,
        by: &mut Vec<RuleRef>,
        found: &mut Option<PBox>,
    ) -> Seen {
        let plan = unit.plan;
        // The boxes before `s` that may meet each box of the cut, looked up
        // once for the witnesses, the search and the blame (the index
        // reads no marks, so they serve the boxes with marks erased too).
        let near: Vec<Vec<u32>> = cut.iter().map(|b| self.candidates(plan, b, 0, s)).collect();
        // Witnesses first: one concrete packet that gets there ends it.
        if let Some(w) = self.point_witness_among(unit, cut, &near, s, budget) {
            *found = Some(w);
            return Seen::Alive;
        }
        // Then every packet, within the budget (boxes of targets the model
        // cannot follow let packets through there, as in any search).
        let mut left = budget;
        let mut reached = false;
        let mut cands = Vec::new();
        for (b, near) in cut.iter().zip(&near) {
            cands.clear();
            cands.extend(
                near.iter()
                    .copied()
                    .filter(|&j| plan.pieces[j as usize].fate != Fate::Unknown),
            );
            match self.reaches_among(plan, b, &cands, s, &mut left) {
                Some(true) => {
                    reached = true;
                    break;
                }
                Some(false) => {}
                None => return Seen::Unknown,
            }
        }
        let blame = |by: &mut Vec<RuleRef>| {
            let mut all: Vec<u32> = near.iter().flatten().copied().collect();
            all.sort_unstable();
            all.dedup();
            self.blame_among(plan, cut, &all, s, by);
        };
        if !reached {
            blame(by);
            return Seen::Dead;
        }
        if unit.earlier.is_empty() {
            return Seen::Alive;
        }
        // Reached in this plan: is any packet that gets there let through by
        // the base chains before it?
        let frags: Vec<Frag> = cut
            .iter()
            .map(|b| Frag::new(self.u.marks.erase(b.clone()), 0))
            .collect();
        let Ok((_, surv)) = self.walk(plan, frags, 0, s, budget, Forks::Branch) else {
            return Seen::Unknown;
        };
        let region: Vec<PBox> = surv
            .into_iter()
            .filter(|f| f.pos <= s)
            .map(|f| f.b)
            .collect();
        if region.is_empty() {
            // The exhaustive search over-approximates; the walk is exact.
            blame(by);
            return Seen::Dead;
        }
        let mut earlier_by = Vec::new();
        match self.passes_earlier(unit, region, budget, &mut earlier_by) {
            Some(true) => Seen::Alive,
            Some(false) => {
                by.extend(earlier_by);
                blame(by);
                Seen::Dead
            }
            None => Seen::Unknown,
        }
    }

    /// A few concrete packets of `cut` (corners and middles, marks
    /// erased): the first that gets from the plan's start to position `s`
    /// and through the unit's earlier base chains.
    fn point_witness(&self, unit: &Unit<'_>, cut: &[PBox], s: u32, budget: usize) -> Option<PBox> {
        let near: Vec<Vec<u32>> = cut
            .iter()
            .map(|b| self.candidates(unit.plan, b, 0, s))
            .collect();
        self.point_witness_among(unit, cut, &near, s, budget)
    }

    /// [`Engine::point_witness`] with `near[i]`, the plan positions before
    /// `s` whose box may meet `cut[i]` (ascending), at hand: a point of a
    /// box meets only boxes that the box meets, marks erased or not (the
    /// index reads no marks).
    fn point_witness_among(
        &self,
        unit: &Unit<'_>,
        cut: &[PBox],
        near: &[Vec<u32>],
        s: u32,
        budget: usize,
    ) -> Option<PBox> {
        let plan = unit.plan;
        for (b, cands) in cut.iter().zip(near) {
            for w in witness_points(b) {
                let w = self.u.marks.erase(w);
                if point_reaches(plan, cands, &w, s)
                    && (unit.earlier.is_empty()
                        || self.passes_earlier(unit, vec![w.clone()], budget, &mut Vec::new())
                            == Some(true))
                {
                    return Some(w);
                }
            }
        }
        None
    }

    /// Whether some packet of `region` gets through every earlier base
    /// chain of the unit (some branch accepted by each, or let through by
    /// its policy). `None` over budget. When none does, `by` gets the rules
    /// and policies that stopped them.
    fn passes_earlier(
        &self,
        unit: &Unit<'_>,
        region: Vec<PBox>,
        budget: usize,
        by: &mut Vec<RuleRef>,
    ) -> Option<bool> {
        let mut cur = region;
        for &(plan, base) in &unit.earlier {
            let policy = self.rs.chain(base).base.as_ref().map(|b| b.policy);
            let policy_ref = || RuleRef::Policy {
                chain: self.rs.chain(base).name.clone(),
            };
            let frags = cur.into_iter().map(|b| Frag::new(b, 0)).collect();
            let (decided, surv) = self
                .walk(
                    plan,
                    frags,
                    0,
                    plan.pieces.len() as u32,
                    budget,
                    Forks::Branch,
                )
                .ok()?;
            let mut next = Vec::new();
            for d in decided {
                let piece = &plan.pieces[d.pos as usize];
                match piece.fate {
                    Fate::Accept => next.push(d.b),
                    Fate::Return if policy != Some(Policy::Drop) => next.push(d.b),
                    Fate::Return => push_once(by, policy_ref()),
                    Fate::Drop | Fate::Reject => {
                        if let Some(k) = self.deciding_key(&piece.path) {
                            push_once(by, self.rule_ref(k));
                        }
                    }
                    // Not in a usable earlier chain (see `earlier_usable`).
                    _ => return None,
                }
            }
            for f in surv {
                if policy == Some(Policy::Drop) {
                    push_once(by, policy_ref());
                } else {
                    next.push(f.b);
                }
            }
            if next.is_empty() {
                return Some(false);
            }
            if next.len() > budget {
                return None;
            }
            cur = next;
        }
        Some(true)
    }

    /// The rules of `plan` before position `s` that decide packets of
    /// `cut`: rules that certainly match (not ones that may or may not),
    /// returns and skips past `s`, named by the rule that decides.
    fn blame_in_plan(&self, plan: &Plan, cut: &[PBox], s: u32, by: &mut Vec<RuleRef>) {
        let mut cands = Vec::new();
        for b in cut {
            plan.query_below(b, s, &mut cands);
        }
        cands.sort_unstable();
        cands.dedup();
        self.blame_among(plan, cut, &cands, s, by);
    }

    /// [`Engine::blame_in_plan`] with the plan positions before `s` whose
    /// box may meet some box of `cut` at hand (ascending, each once).
    fn blame_among(&self, plan: &Plan, cut: &[PBox], cands: &[u32], s: u32, by: &mut Vec<RuleRef>) {
        for &j in cands {
            let q = &plan.pieces[j as usize];
            let covers = match q.fate {
                Fate::Accept | Fate::Drop | Fate::Reject | Fate::Return | Fate::Nat(..) => true,
                Fate::Skip(k) => k > s,
                Fate::Unknown | Fate::Fork(..) | Fate::Mark(..) => false,
            };
            if !covers || !cut.iter().any(|b| q.b.overlaps(b)) {
                continue;
            }
            // Reached only on the branch where a rule that may not match did.
            let branch = q.path.iter().any(|&(c, r)| {
                may_match(
                    &self.rs.chains[c as usize].rules[r as usize].matches,
                    &self.u,
                )
            });
            if branch {
                continue;
            }
            if let Some(k) = self.deciding_key(&q.path) {
                push_once(by, self.rule_ref(k));
            }
            if by.len() >= MAX_BY {
                return;
            }
        }
    }
}

fn push_once(v: &mut Vec<RuleRef>, r: RuleRef) {
    if v.len() < MAX_BY && !v.contains(&r) {
        v.push(r);
    }
}

/// A number that tells stages apart (for the de-duplication signature).
fn stage_key(s: Stage) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&s, &mut h);
    std::hash::Hasher::finish(&h) as usize
}
