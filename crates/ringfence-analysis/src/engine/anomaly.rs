//! Shadowed and redundant rules: a rule no packet reaches, or one whose
//! removal changes no packet's fate. A rule is judged first in its own
//! chain (for every packet that may enter the chain), then in context
//! ([`context`]: for the packets that really reach it from the base chains).

mod context;

pub(crate) use context::{Context, ContextOpts, Seen, AREA_BUDGET};

use super::*;

impl Engine<'_> {
    /// Shadowed and redundant rules of every chain (in context too when
    /// [`Engine::with_dead_in_context`] turned that on).
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

    /// Shadowed and redundant rules of every chain, each judged in its own
    /// chain only (no rule dead in context, no chain never reached): what
    /// the incremental verifier keeps per rule, next to its own context
    /// bookkeeping.
    pub fn anomalies_own(&self, budget: usize) -> Anomalies {
        self.anomalies_with(0..self.rs.chains.len(), budget, None)
    }

    /// Shadowed and redundant rules of the chains in `range`, in chain order.
    fn anomalies_in(&self, range: std::ops::Range<usize>, budget: usize) -> Anomalies {
        let ctx = self.dead_in_context.then(|| self.context(budget));
        self.anomalies_with(range, budget, ctx)
    }

    /// [`Engine::anomalies_in`] with the context result `ctx` (`None`:
    /// own chains only).
    fn anomalies_with(
        &self,
        range: std::ops::Range<usize>,
        budget: usize,
        ctx: Option<&Context>,
    ) -> Anomalies {
        let mut shadowed = Vec::new();
        let mut redundant = Vec::new();
        for ci in range {
            let chain = &self.rs.chains[ci];
            if chain.is_unknown_target() || chain.rules.is_empty() {
                continue;
            }
            if let Some(ctx) = ctx.filter(|x| !x.reached[ci]) {
                // Never reached: one finding for the chain, none for its rules.
                shadowed.push(self.never_reached(ctx, ci));
                continue;
            }
            // Own-chain questions in the plan of the stage the chain runs
            // at, or not at all (see `OwnPlan`).
            let own_plan = self.own_plan(ci);
            let plain = self.own_is_plain(ci);
            let base_policy = chain.base.as_ref().map(|b| b.policy);
            let mut dead_ends = DeadEnds::default();
            // Group model rules by their source rule (multiport --ports splits one rule in two).
            let mut i = 0;
            while i < chain.rules.len() {
                let mut j = i + 1;
                while j < chain.rules.len() && chain.rules[j].origin == chain.rules[i].origin {
                    j += 1;
                }
                let mut all_shadowed = true;
                let mut in_chain = true;
                let mut all_redundant = true;
                let mut shadow_by = Vec::new();
                let mut redundant_by = Vec::new();
                for r in i..j {
                    // A rule some packet reaches in context is reached in its
                    // own chain too: only the redundancy question is left;
                    // the context pass may have asked the own-chain one.
                    // (The context's own-chain answers are plain-plan ones.)
                    let known = ctx.and_then(|x| match x.own_reached(ci, r) {
                        Some(k) if plain => Some(k),
                        _ => x.alive(ci, r).then_some(true),
                    });
                    // A synthesized rule (the nat-skip accept the nft
                    // parser adds) stands for how the kernel runs the chain,
                    // not for a rule anyone wrote: never dead in context.
                    let synthesized = matches!(chain.rules[r].origin, RuleRef::Policy { .. });
                    let dead = !synthesized && ctx.is_some_and(|x| x.dead(ci, r));
                    let found = match own_plan {
                        Some(plan) => {
                            let own = (base_policy, budget, None, known);
                            self.rule_anomaly(ci, plan, r, own, &mut dead_ends)
                        }
                        None => RuleAnomaly::None,
                    };
                    match found {
                        RuleAnomaly::Shadowed(by) => {
                            shadow_by.extend(by);
                            all_redundant = false;
                        }
                        // Dead in context is stronger than redundant.
                        _ if dead => {
                            in_chain = false;
                            all_redundant = false;
                            shadow_by.extend(
                                ctx.and_then(|x| x.by.get(&(ci as u32, r as u32)))
                                    .cloned()
                                    .unwrap_or_default(),
                            );
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
                        reason: if in_chain {
                            DeadReason::Chain
                        } else {
                            DeadReason::Context
                        },
                    });
                } else if all_redundant {
                    redundant.push(Anomaly {
                        rule: me.clone(),
                        chain: chain.name.clone(),
                        by: dedup(redundant_by),
                        reason: DeadReason::Chain,
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

    /// The finding for a user chain no base chain reaches: named by its
    /// first rule; `by` lists the jumps to it (each dead where it stands).
    fn never_reached(&self, ctx: &Context, ci: usize) -> Anomaly {
        let chain = &self.rs.chains[ci];
        let mut by: Vec<RuleRef> = Vec::new();
        for (c, caller) in self.rs.chains.iter().enumerate() {
            if !ctx.reached[c] {
                continue;
            }
            for rule in &caller.rules {
                if let Action::Jump { target } | Action::Goto { target } = &rule.action {
                    if target.0 == ci && !by.contains(&rule.origin) && by.len() < 10 {
                        by.push(rule.origin.clone());
                    }
                }
            }
        }
        Anomaly {
            rule: chain.rules[0].origin.clone(),
            chain: chain.name.clone(),
            by,
            reason: DeadReason::NeverReached,
        }
    }

    /// Whether rule `r` of chain `ci` is shadowed or redundant in `plan`,
    /// asked with the chain's base policy, the search budget, the part of
    /// its match to judge (`None`: all of it) and whether it is known to
    /// be reached; `dead_ends` carries what earlier rules of the same
    /// chain and plan proved.
    fn rule_anomaly(
        &self,
        ci: usize,
        plan: &Plan,
        r: usize,
        (base_policy, budget, within, known): (
            Option<Policy>,
            usize,
            Option<&[PBox]>,
            Option<bool>,
        ),
        dead_ends: &mut DeadEnds,
    ) -> RuleAnomaly {
        let rule = &self.rs.chains[ci].rules[r];
        // Judged on the part of the match inside `within` only, when given.
        let cut: Vec<PBox>;
        let boxes: &[PBox] = match within {
            None => &plan.rule_boxes[r],
            Some(w) => {
                cut = plan.rule_boxes[r]
                    .iter()
                    .flat_map(|b| w.iter().filter_map(|x| b.intersect(x)))
                    .collect();
                &cut
            }
        };
        let (start, end) = plan.spans[r];
        let mut left = budget;
        // Shadowed: no packet of the rule's match gets past the boxes before it.
        // Opaque boxes may not match, so they never shadow anything.
        let mut reached = known == Some(true);
        for b in boxes
            .iter()
            .take(if known.is_some() { 0 } else { usize::MAX })
        {
            match self.reaches_past(plan, b, start, &mut left, dead_ends) {
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
            // Rules that may not match never shadow anything: their fork
            // boxes and their actions' boxes are not named.
            let may_match = |q: &Piece| {
                may_match(
                    &self.rs.chains[ci].rules[q.path[0].1 as usize].matches,
                    &self.u,
                )
            };
            // The first ten rules, in plan order: the rest is not read.
            'named: for b in boxes {
                for j in self.candidates(plan, b, 0, start) {
                    if by.len() == 10 {
                        break 'named;
                    }
                    let q = &plan.pieces[j as usize];
                    if q.fate != Fate::Unknown && !may_match(q) && q.b.overlaps(b) {
                        let rr = self.rule_ref(q.path[0]);
                        if !by.contains(&rr) {
                            by.push(rr);
                        }
                    }
                }
            }
            return RuleAnomaly::Shadowed(by);
        }
        // Redundancy compares boxes at different positions; a rewrite in
        // between would make them speak of different marks.
        if may_match(&rule.matches, &self.u) || plan.rewrites_marks() {
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
                    if by.len() < 10 {
                        let rr = self.rule_ref(q.path[0]);
                        if !by.contains(&rr) {
                            by.push(rr);
                        }
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
        let mut c = Vec::new();
        plan.query_below(b, to, &mut c);
        c.retain(|&j| j >= from);
        c.sort_unstable();
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

    /// [`Engine::reaches`] from position 0 with nothing excluded, answered
    /// at once where `dead_ends` shows that no packet of a box holding `b`
    /// gets to an earlier position; a new proof that none of `b` gets to
    /// `to` is kept there when no packet may pass `to` over.
    fn reaches_past(
        &self,
        plan: &Plan,
        b: &PBox,
        to: u32,
        left: &mut usize,
        dead_ends: &mut DeadEnds,
    ) -> Option<bool> {
        // The kept boxes have every mark, so `b` lies inside one exactly
        // when `b` with its marks erased does: no copy is needed to ask.
        if dead_ends
            .0
            .iter()
            .any(|(d, at)| *at <= to && b.is_subset(d))
        {
            return Some(false);
        }
        let found = self.reaches(plan, b, to, (to, to), left);
        if found == Some(false) && !plan.passed_over(to) {
            if dead_ends.0.len() == DeadEnds::KEPT {
                dead_ends.0.pop();
            }
            dead_ends.0.insert(0, (self.u.marks.erase(b.clone()), to));
        }
        found
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
        self.reaches_among(plan, b, &cands, to, left)
    }

    /// [`Engine::reaches`] through the candidate boxes `cands` only: every
    /// plan position before `to` whose box may meet `b` and that the
    /// search does not ignore, ascending (the caller has them at hand).
    fn reaches_among(
        &self,
        plan: &Plan,
        b: &PBox,
        cands: &[u32],
        to: u32,
        left: &mut usize,
    ) -> Option<bool> {
        // Witnesses: corner and middle points of the box.
        for w in witness_points(b) {
            if point_reaches(plan, cands, &w, to) {
                return Some(true);
            }
        }
        // Exhaustive depth-first search over fragments. The chain may be
        // entered with any marks, and a rewrite may give any: both are
        // over-approximated (more packets reach, so nothing is called
        // shadowed or redundant wrongly).
        let mut stack: Vec<(PBox, usize, u32)> = vec![(self.u.marks.erase(b.clone()), 0, 0)];
        let mut work: usize = 0;
        let keys = plan.keys();
        while let Some((f, mut k, rp)) = stack.pop() {
            let fk = plan.frag_key(&f);
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
                if j >= rp
                    && fk.may_meet(&keys[j as usize])
                    && plan.pieces[j as usize].b.overlaps(&f)
                {
                    break;
                }
                k += 1;
            }
            if k == cands.len() {
                continue;
            }
            let q = &plan.pieces[cands[k] as usize];
            // One pass gives the part inside the box and the pieces outside
            // (the scan found them overlapping), reusing the fragment's sets.
            let (mut outs, inside) = f.split_owned(&q.b);
            match q.fate {
                Fate::Skip(s) => stack.push((inside, k + 1, s)),
                // Both branches; the one past the rule (searched first) is
                // the likelier to reach a later position.
                Fate::Fork(m, n) => {
                    stack.push((inside.clone(), k + 1, m));
                    stack.push((inside, k + 1, n));
                }
                Fate::Mark(..) => stack.push((self.u.marks.erase(inside), k + 1, rp)),
                _ => {}
            }
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

/// Boxes of one plan that no packet gets from the top of the plan to a
/// position (forks both ways, any marks), with that position, most
/// recent first; kept only for positions no skip or fork passes over.
/// Every packet of such a box is decided before its position, so a box
/// inside it is decided before any later position too: the shadow
/// question of a later rule whose match lies inside it is answered at
/// once (a firewall's `-s NET -j ZONE` jumps after every packet from NET
/// is decided, each an exhaustive search through the zones before it).
#[derive(Debug, Default)]
struct DeadEnds(Vec<(PBox, u32)>);

impl DeadEnds {
    /// How many boxes are kept.
    const KEPT: usize = 16;
}

/// A few concrete packets of a box (as one-point boxes): low corner, high
/// corner, and mixed choices per field.
fn witness_points(b: &PBox) -> impl Iterator<Item = PBox> + '_ {
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
    (0..count).map(move |k| b.corner_point(k, ct_bits[k % n_bits]))
}

/// Most branches [`point_reaches`] follows for one point (each rule that may
/// or may not match it adds one); beyond that the point is no witness and
/// the exhaustive search decides.
const POINT_BRANCHES: usize = 64;

/// Whether the one-point box `p` gets past every candidate box before `to`
/// on some branch: at a rule that may or may not match it, the point goes
/// both ways (not matching first), as the exhaustive search does. A rule
/// of a user chain reached only where a `statistic` jump matches (the
/// endpoints of a kube-proxy service but the last) has witnesses that way.
fn point_reaches(plan: &Plan, cands: &[u32], p: &PBox, to: u32) -> bool {
    // Branches to try: (index into `cands`, position the point resumes at).
    let mut branches: Vec<(usize, u32)> = vec![(0, 0)];
    let mut taken = 1;
    let (keys, pk) = (plan.keys(), plan.frag_key(p));
    'branch: while let Some((first, mut rp)) = branches.pop() {
        for (i, &j) in cands.iter().enumerate().skip(first) {
            if j < rp {
                continue;
            }
            if j >= to {
                break;
            }
            if !pk.may_meet(&keys[j as usize]) {
                continue;
            }
            let q = &plan.pieces[j as usize];
            if q.b.overlaps(p) {
                match q.fate {
                    Fate::Skip(s) => rp = s,
                    Fate::Fork(m, n) => {
                        if taken < POINT_BRANCHES {
                            taken += 1;
                            branches.push((i + 1, m));
                        }
                        rp = n;
                    }
                    // Marks are over-approximated here: the point goes on.
                    Fate::Mark(..) => {}
                    _ => continue 'branch,
                }
            }
        }
        if rp <= to {
            return true;
        }
    }
    false
}

/// What [`Engine::rule_anomaly_within`] finds for one model rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAnomaly {
    /// No packet of the (cut) match reaches the rule; the rules before it that cover it.
    Shadowed(Vec<RuleRef>),
    /// Packets of it reach it, and none would be decided differently
    /// without it; the rules (or policy) that would decide them.
    Redundant(Vec<RuleRef>),
    /// Neither (or the search went over its budget).
    None,
}

impl Engine<'_> {
    /// The shadowed/redundant judgement of rule `r` of chain `c` (in that
    /// chain's own plan, as [`Engine::anomalies`] judges it) on the packets
    /// of its match inside `within` only. Because both properties hold
    /// packet by packet, the incremental verifier combines this with what
    /// it knew of the rest of the match.
    pub fn rule_anomaly_within(
        &self,
        c: ChainId,
        r: usize,
        within: &[PBox],
        budget: usize,
    ) -> RuleAnomaly {
        let chain = &self.rs.chains[c.0];
        let base_policy = chain.base.as_ref().map(|b| b.policy);
        let Some(plan) = self.own_plan(c.0) else {
            return RuleAnomaly::None;
        };
        let own = (base_policy, budget, Some(within), None);
        self.rule_anomaly(c.0, plan, r, own, &mut DeadEnds::default())
    }
}

/// A rule that never matches, or whose removal changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// The rule (for [`DeadReason::NeverReached`]: the chain's first rule).
    pub rule: RuleRef,
    /// Its chain.
    pub chain: String,
    /// The rules responsible (earlier rules that cover it, or later rules
    /// that would decide its packets the same way; for a rule dead in
    /// context, the rules of any chain on the way that decide its packets
    /// first, or the jump whose box excludes it; for a chain never
    /// reached, the jumps to it).
    pub by: Vec<RuleRef>,
    /// Why a shadowed rule never matches ([`DeadReason::Chain`] for
    /// redundant rules).
    pub reason: DeadReason,
}

/// Why a rule never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadReason {
    /// Earlier rules of its own chain decide every packet it matches,
    /// whatever calls the chain.
    Chain,
    /// Of the packets that reach it on their way through the base chains
    /// (every jump to its chain, and the base chains before its own on the
    /// packet's path), none matches it.
    Context,
    /// Its chain (a user chain) is reached by no base chain; the finding
    /// stands for every rule of the chain.
    NeverReached,
}

/// Shadowed and redundant rules.
#[derive(Debug, Clone, Default)]
pub struct Anomalies {
    /// Rules no packet can reach.
    pub shadowed: Vec<Anomaly>,
    /// Rules whose removal changes no verdict.
    pub redundant: Vec<Anomaly>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfence_parse::{parse_ruleset, RulesetFormat};

    fn chain_of(rs: &ringfence_model::Ruleset, name: &str) -> usize {
        rs.chains
            .iter()
            .position(|c| c.name.ends_with(name))
            .expect("the chain")
    }

    #[test]
    fn a_rule_inside_a_box_no_packet_gets_past_is_shadowed_without_a_search_and_others_are_not() {
        // Z1 decides every packet from 10.1/16, so the second jump and the
        // /24 accept after it are shadowed; the /24 is answered from the
        // first proof. 10.2/16 still gets through.
        let text = "*filter\n:FORWARD DROP [0:0]\n:Z1 - [0:0]\n:Z2 - [0:0]\n\
                    -A FORWARD -s 10.1.0.0/16 -j Z1\n\
                    -A FORWARD -s 10.1.0.0/16 -j Z2\n\
                    -A FORWARD -s 10.1.2.0/24 -p tcp -j ACCEPT\n\
                    -A FORWARD -s 10.2.0.0/16 -p tcp -j ACCEPT\n\
                    -A Z1 -p tcp -j ACCEPT\n-A Z1 -j DROP\n\
                    -A Z2 -j ACCEPT\nCOMMIT\n";
        let rs = parse_ruleset(text, "t.rules", RulesetFormat::Auto).expect("parses");
        let e = Engine::new(&rs, IfaceUniverse::new([&rs]));
        let fwd = chain_of(&rs, "FORWARD");
        let plan = e.own_plan(fwd).expect("FORWARD's plan");
        let own = (Some(Policy::Drop), DEFAULT_BUDGET, None, None);
        let mut dead_ends = DeadEnds::default();
        let found: Vec<RuleAnomaly> = (0..4)
            .map(|r| e.rule_anomaly(fwd, plan, r, own, &mut dead_ends))
            .collect();
        assert!(!matches!(found[0], RuleAnomaly::Shadowed(_)));
        assert!(
            matches!(found[1], RuleAnomaly::Shadowed(_)),
            "{:?}",
            found[1]
        );
        assert!(
            matches!(found[2], RuleAnomaly::Shadowed(_)),
            "{:?}",
            found[2]
        );
        assert!(
            !matches!(found[3], RuleAnomaly::Shadowed(_)),
            "{:?}",
            found[3]
        );
        // The second jump's proof is what answered the /24.
        assert_eq!(dead_ends.0.len(), 1, "one proof kept: {:?}", dead_ends.0);
        // Each answer is the one a search of its own gives.
        for (r, f) in found.iter().enumerate() {
            let alone = e.rule_anomaly(fwd, plan, r, own, &mut DeadEnds::default());
            assert_eq!(&alone, f, "rule {r}");
        }
    }

    #[test]
    fn positions_inside_an_inlined_chain_after_its_return_are_passed_over() {
        // Z's RETURN sends tcp/22 to the end of Z's block: the positions
        // after it inside the block are passed over, FORWARD's own are not.
        let text = "*filter\n:FORWARD DROP [0:0]\n:Z - [0:0]\n\
                    -A FORWARD -s 10.1.0.0/16 -j Z\n\
                    -A FORWARD -p tcp -j ACCEPT\n\
                    -A Z -p tcp -m tcp --dport 22 -j RETURN\n\
                    -A Z -p tcp -j DROP\n-A Z -j ACCEPT\nCOMMIT\n";
        let rs = parse_ruleset(text, "t.rules", RulesetFormat::Auto).expect("parses");
        let e = Engine::new(&rs, IfaceUniverse::new([&rs]));
        let plan = e
            .own_plan(chain_of(&rs, "FORWARD"))
            .expect("FORWARD's plan");
        let skip = plan
            .pieces
            .iter()
            .position(|p| matches!(p.fate, Fate::Skip(_)))
            .expect("the inlined RETURN") as u32;
        let Fate::Skip(to) = plan.pieces[skip as usize].fate else {
            unreachable!()
        };
        assert!(to > skip + 1, "the RETURN skips Z's later boxes");
        assert!(!plan.passed_over(skip));
        for q in skip + 1..to {
            assert!(plan.passed_over(q), "position {q}");
        }
        for q in to..plan.pieces.len() as u32 {
            assert!(!plan.passed_over(q), "position {q}");
        }
    }

    #[test]
    fn a_point_reaches_a_rule_behind_a_statistic_jump_on_the_branch_where_it_matches() {
        // EP's accept is reached only where the statistic jump matches: on
        // the other branch the packet goes on to FORWARD's drop.
        let text = "*filter\n:FORWARD DROP [0:0]\n:EP - [0:0]\n\
                    -A FORWARD -m statistic --mode random --probability 0.5 -j EP\n\
                    -A FORWARD -j DROP\n\
                    -A EP -p tcp -j ACCEPT\nCOMMIT\n";
        let rs = parse_ruleset(text, "t.rules", RulesetFormat::Auto).expect("parses");
        let e = Engine::new(&rs, IfaceUniverse::new([&rs]));
        let fwd = rs
            .chains
            .iter()
            .position(|c| c.name.ends_with("FORWARD"))
            .expect("FORWARD");
        let plan = &e.plans[fwd];
        let s = plan
            .pieces
            .iter()
            .position(|p| p.path.len() == 2 && p.fate == Fate::Accept)
            .expect("EP's accept is inlined") as u32;
        assert!(
            plan.pieces[..s as usize]
                .iter()
                .any(|p| matches!(p.fate, Fate::Fork(..))),
            "the statistic jump forks before it"
        );
        let p = witness_points(&plan.pieces[s as usize].b)
            .next()
            .expect("a point");
        let cands: Vec<u32> = (0..s).collect();
        assert!(point_reaches(plan, &cands, &p, s));
        // Past EP the point meets the drop on both branches.
        let end = plan.pieces.len() as u32;
        let all: Vec<u32> = (0..end).collect();
        assert!(!point_reaches(plan, &all, &p, end));
    }
}
