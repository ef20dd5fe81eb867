//! Dead rules in context, kept current by the incremental verifier.
//!
//! A full `verify` calls a rule shadowed when no packet that really reaches
//! it from the base chains matches it ([`crate::engine::Engine`]'s context
//! pass), and reports a user chain no base chain reaches once. Here that
//! judgement is kept per model rule (by its stable id and its place among
//! its source rule's model rules) next to the own-chain one the verifier
//! already keeps, and recomputed after a change only where it can move:
//!
//! - A change in chain X alters the fate of packets inside Δ (the old and
//!   new rules' matches) and nothing else, wherever X is inlined. So for
//!   any rule R whose own match does not meet Δ, every inlining of R that
//!   exists before and after the change gives the same answer (its cut is
//!   inside R's match, its reaching packets outside Δ are unchanged, and so
//!   is what earlier base chains do with them); an inlining the change adds
//!   or removes has a cut inside Δ, so for such an R it only ever said
//!   "dead". The only other thing that moves is which user chains are
//!   reached at all, and that is read off the jumps' own judgements.
//! - So the rules judged again are those whose match meets Δ, the new ones,
//!   and every rule of a chain that becomes reached. They are judged on a
//!   sub-ruleset: every base chain, holding only the rules whose match (cut
//!   by the jumps to it) meets the union of their matches. Each inlining
//!   of such a rule has its cut inside that union, and every box a walk of
//!   the cut meets is kept in the same order, so the answer is the one the
//!   whole ruleset gives. Whether an earlier base chain's verdicts may be
//!   used (no target the model cannot follow on the way) is decided on the
//!   whole ruleset and handed to the pass.
//! - When that sub-ruleset would be too large, the context pass runs on the
//!   whole ruleset instead.
//! - Most of that is never needed. An alive rule keeps a witness: a packet
//!   that reaches it and matches it. A packet outside Δ takes the same way
//!   through every chain after the change, so a rule whose witness lies
//!   outside Δ stays alive; one whose witness is inside Δ is first walked
//!   again, one packet, first match, from the base chain it was found from
//!   (only where that chain is the first of its path and its stage hides
//!   nothing, so the walk decides exactly what the plans do). A rule to
//!   judge is first tried with a few corner packets walked the same way.
//!   Alive is never reported, and the pass never calls a rule with such a
//!   packet dead, so the findings are those of a full verify.
//! - A rule without a verdict (LOG) has no place in a plan: its state comes
//!   from the jumps' boxes alone, so it is judged again only when a jump or
//!   goto is added or removed. A chain no longer reached is one finding
//!   whatever its rules' states, so only the jumps are judged first and
//!   the other rules of such a chain wait until it is reached again, when
//!   all of them are judged.

use super::*;
use crate::engine::{ContextOpts, Seen};

/// A model rule: its source rule's id and its place among that rule's
/// model rules (a changed rule gets a new id, so the key stays valid for
/// as long as the rule exists).
type Key = (Id, u32);

/// A model rule by place: (chain, rule).
type Rk = (usize, usize);

/// What is known of dead rules in context (see the module notes).
#[derive(Default)]
pub(super) struct CtxCache {
    /// Per model rule of a reached chain: its state and, when dead, the
    /// rules responsible (as the verifier's stable references).
    rules: HashMap<Key, (Seen, Vec<String>)>,
    /// For alive rules: a packet that reaches the rule and matches it
    /// (see [`crate::engine::Context::witness`]). A change whose region
    /// misses it leaves that packet's way through every chain as it was,
    /// so the rule stays alive without being judged again.
    /// With it, the base chain (by name) a first-match walk of the packet
    /// can start from to check it again.
    witness: HashMap<Key, (PBox, Option<String>)>,
    /// The user and base chains some base chain reaches (by name).
    reached: HashSet<String>,
}

/// The key of model rule `i` of a chain whose ids are `ids`.
/// Most boxes of a rule's match cut by the jumps into its chain that
/// [`Incremental::ctx_find_witness`] takes corners of.
const WITNESS_CUTS: usize = 8;

fn key_of(ids: &[Id], i: usize) -> Key {
    let mut k = 0;
    while k < i && ids[i - k - 1] == ids[i] {
        k += 1;
    }
    (ids[i], k as u32)
}

impl Incremental {
    /// Per chain of the whole ruleset: whether a chain it reaches (itself
    /// included) jumps to a target the model cannot follow, rewrites marks
    /// or translates addresses, or is part of a loop (the context pass then
    /// ignores earlier base chains on that path).
    fn ctx_opaque(&self) -> Vec<bool> {
        let rs = &self.rs;
        let direct: Vec<bool> = rs
            .chains
            .iter()
            .map(|ch| {
                ch.rules.iter().any(|r| match r.action {
                    Action::Jump { target } | Action::Goto { target } => {
                        rs.chain(target).is_unknown_target()
                    }
                    Action::Mark(_) | Action::Nat(_) => true,
                    _ => false,
                })
            })
            .collect();
        (0..rs.chains.len())
            .map(|c| {
                let mut seen = vec![false; rs.chains.len()];
                let mut stack = vec![c];
                while let Some(x) = stack.pop() {
                    if std::mem::replace(&mut seen[x], true) {
                        continue;
                    }
                    if direct[x] {
                        return true;
                    }
                    for r in &rs.chains[x].rules {
                        if let Action::Jump { target } | Action::Goto { target } = r.action {
                            if seen[target.0] && target.0 == c {
                                return true;
                            }
                            stack.push(target.0);
                        }
                    }
                }
                false
            })
            .collect()
    }

    /// The context judgement of the whole ruleset, from an engine over a
    /// sub-ruleset that keeps every chain and rule in place (as
    /// `build_cache` makes it).
    pub(super) fn context_init(&self, c: &mut Cache, engine: &Engine<'_>) {
        let opts = ContextOpts {
            witnesses: true,
            ..ContextOpts::default()
        };
        let ctx = engine.context_pass(ANOMALY_BUDGET, &opts);
        c.ctx = CtxCache::default();
        for (ci, ch) in self.rs.chains.iter().enumerate() {
            if !ctx.reached[ci] {
                continue;
            }
            c.ctx.reached.insert(ch.name.clone());
            let ids = &c.ids[&ch.name];
            for i in 0..ch.rules.len() {
                let by = ctx
                    .by
                    .get(&(ci as u32, i as u32))
                    .map(|v| v.iter().map(|r| r.to_string()).collect())
                    .unwrap_or_default();
                let key = key_of(ids, i);
                if let Some((w, b)) = ctx.witness.get(&(ci as u32, i as u32)) {
                    let b = b.map(|b| engine.rs.chains[b].name.clone());
                    c.ctx.witness.insert(key, (w.clone(), b));
                }
                c.ctx.rules.insert(key, (ctx.seen[ci][i], by));
            }
        }
    }

    /// Bring the context judgement up to date after the change whose
    /// changed region per chain is `delta` (see the module notes);
    /// `jump_targets`: the targets of the jumps and gotos it adds or removes.
    pub(super) fn context_update(
        &self,
        c: &mut Cache,
        delta: &HashMap<String, Vec<PBox>>,
        new_ids: &HashSet<Id>,
        jump_targets: &HashSet<String>,
        limit: usize,
    ) -> Result<(), String> {
        let dboxes: Vec<PBox> = delta.values().flatten().cloned().collect();
        // The changed region as any stage sees it (a stage only widens the
        // interfaces, the conntrack state and the translation status).
        let wide: Vec<PBox> = dboxes
            .iter()
            .map(|b| {
                let mut b = b.clone();
                b.iif = self.u.full();
                b.oif = self.u.full();
                b.ct = ringfence_model::CtStates::ALL.0;
                b.nat = crate::space::nat::ALL;
                b
            })
            .collect();
        // The chains a jump added or removed may lead to (every path that
        // appears or goes away ends under one of their targets).
        let mut below: HashSet<usize> = HashSet::new();
        let mut stack: Vec<usize> = jump_targets
            .iter()
            .filter_map(|t| self.chain_id(t).map(|x| x.0))
            .collect();
        while let Some(x) = stack.pop() {
            if !below.insert(x) {
                continue;
            }
            for r in &self.rs.chains[x].rules {
                if let Action::Jump { target } | Action::Goto { target } = r.action {
                    stack.push(target.0);
                }
            }
        }
        // 1. The rules whose match meets the change, and the new ones.
        let mut want: HashSet<(usize, usize)> = HashSet::new();
        for (ci, ch) in self.rs.chains.iter().enumerate() {
            if ch.is_unknown_target() || !c.ctx.reached.contains(&ch.name) {
                continue;
            }
            let boxes = &c.boxes[&ch.name];
            let ids = &c.ids[&ch.name];
            if !dboxes.is_empty() {
                for i in self.candidates(c, &ch.name, &dboxes) {
                    let i = i as usize;
                    if !overlaps_any(&boxes[i], &dboxes) {
                        continue;
                    }
                    // A rule without a verdict (LOG) has no place in a plan:
                    // unknown wherever a jump's box lets some of its packets
                    // in, dead where none does. Only a jump on the way to
                    // it moves that.
                    if matches!(ch.rules[i].action, Action::Continue) && !below.contains(&ci) {
                        continue;
                    }
                    // Alive through a packet the change does not touch:
                    // still alive (see the module notes).
                    let key = key_of(ids, i);
                    let alive = c.ctx.rules.get(&key).map(|x| x.0) == Some(Seen::Alive);
                    if alive
                        && c.ctx
                            .witness
                            .get(&key)
                            .is_some_and(|(w, _)| !overlaps_any(std::slice::from_ref(w), &wide))
                    {
                        continue;
                    }
                    // Or through a packet that still gets there.
                    if alive && self.witness_holds(c, ci, i) {
                        continue;
                    }
                    want.insert((ci, i));
                }
            }
            if delta.contains_key(&ch.name) {
                let ids = &c.ids[&ch.name];
                want.extend(
                    (0..ids.len())
                        .filter(|&i| new_ids.contains(&ids[i]))
                        .map(|i| (ci, i)),
                );
            }
        }
        // The jumps first: a rule of a chain no longer reached needs no
        // judgement now (its chain is one finding, and every rule of it is
        // judged when it is reached again).
        let (jumps, rest): (HashSet<Rk>, HashSet<Rk>) = want.into_iter().partition(|&(ci, i)| {
            matches!(
                self.rs.chains[ci].rules[i].action,
                Action::Jump { .. } | Action::Goto { .. }
            )
        });
        if !self.ctx_judge(c, &jumps, limit)? {
            return Ok(());
        }
        let now = self.ctx_reached(c);
        let rest: HashSet<(usize, usize)> = rest
            .into_iter()
            .filter(|&(ci, _)| now.contains(&self.rs.chains[ci].name))
            .collect();
        if !self.ctx_judge(c, &rest, limit)? {
            return Ok(());
        }
        // 2. Which chains are reached now: every rule of a chain newly
        // reached is judged (its jumps may reach further chains).
        let old = std::mem::take(&mut c.ctx.reached);
        let mut judged: HashSet<String> = HashSet::new();
        loop {
            let reached = self.ctx_reached(c);
            let fresh: Vec<usize> = (0..self.rs.chains.len())
                .filter(|&ci| {
                    let n = &self.rs.chains[ci].name;
                    reached.contains(n) && !old.contains(n) && !judged.contains(n)
                })
                .collect();
            if fresh.is_empty() {
                c.ctx.reached = reached;
                break;
            }
            let mut more = HashSet::new();
            for ci in fresh {
                judged.insert(self.rs.chains[ci].name.clone());
                // What was known may be old (the chain was not reached):
                // only a witness that still gets there keeps a rule alive.
                more.extend(
                    (0..self.rs.chains[ci].rules.len())
                        .filter(|&i| {
                            let key = key_of(&c.ids[&self.rs.chains[ci].name], i);
                            !(c.ctx.rules.get(&key).map(|x| x.0) == Some(Seen::Alive)
                                && self.witness_holds(c, ci, i))
                        })
                        .map(|i| (ci, i)),
                );
            }
            // The chains judged so far count as reached while their rules
            // are judged (`ctx_reached` reads their jumps next round).
            c.ctx.reached = reached;
            if !self.ctx_judge(c, &more, limit)? {
                return Ok(());
            }
        }
        // Forget the rules that are gone, now and then.
        let total: usize = self.rs.chains.iter().map(|ch| ch.rules.len()).sum();
        if c.ctx.rules.len() > 2 * total + 1024 {
            let chain_of = &c.chain_of;
            c.ctx.rules.retain(|(id, _), _| chain_of.contains_key(id));
            c.ctx.witness.retain(|(id, _), _| chain_of.contains_key(id));
        }
        Ok(())
    }

    /// The base chains a first-match walk of one packet decides exactly:
    /// the first of a path, at a stage that hides nothing (as the context
    /// pass marks its witnesses).
    fn ctx_walk_bases(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for t in [Hook::Input, Hook::Forward, Hook::Output] {
            if let Some(&b) = self.rs.path_chains(t).first() {
                if crate::space::Stage::of_chain(&self.rs, t, b.0).is_plain() && !out.contains(&b.0)
                {
                    out.push(b.0);
                }
            }
        }
        out
    }

    /// A few packets of rule `i` of chain `ci` (corners and middles of its
    /// boxes): the first that a walk from one of `bases` takes to the rule,
    /// with that base chain's name.
    fn ctx_find_witness(
        &self,
        c: &Cache,
        bases: &[usize],
        ci: usize,
        i: usize,
    ) -> Option<(PBox, Option<String>)> {
        let name = &self.rs.chains[ci].name;
        let boxes = &c.boxes[name][i];
        // The rule's own boxes first, then (for a user chain) its boxes cut
        // by the first few jumps into its chain: a chain reached only
        // through a narrow jump (a kube-proxy service chain, behind its
        // cluster IP and port) rarely has a corner of its own match there.
        // Any packet will do: the walk decides whether it is a witness.
        let mut cut: Vec<PBox> = Vec::new();
        let mut callers = c.callers.get(name).cloned().unwrap_or_default();
        callers.sort();
        callers.dedup();
        'callers: for caller in &callers {
            let Some(cc) = self.chain_id(caller) else {
                continue;
            };
            for (r, rule) in self.rs.chains[cc.0].rules.iter().enumerate() {
                let (Action::Jump { target } | Action::Goto { target }) = rule.action else {
                    continue;
                };
                if target.0 != ci {
                    continue;
                }
                for j in c
                    .boxes
                    .get(caller)
                    .and_then(|v| v.get(r))
                    .into_iter()
                    .flatten()
                {
                    cut.extend(boxes.iter().filter_map(|b| b.intersect(j)));
                }
                if cut.len() >= WITNESS_CUTS {
                    break 'callers;
                }
            }
        }
        for b in boxes.iter().chain(&cut).filter(|b| !b.is_empty()) {
            let bits: Vec<u8> = (0..8)
                .map(|k| 1u8 << k)
                .filter(|&x| b.ct & x != 0)
                .collect();
            for k in 0..6 {
                let p = b.corner_point(k, bits[k % bits.len()]);
                for &base in bases {
                    if walk(self, c, base, &p, Goal::Match(ci, i), 0) == Walk::Reached {
                        return Some((p, Some(self.rs.chains[base].name.clone())));
                    }
                }
            }
        }
        None
    }

    /// Whether the witness kept for alive rule `i` of chain `ci` still
    /// reaches it and matches it: a first-match walk of that packet from
    /// the base chain it was found from (kept only where nothing before
    /// that chain and no stage changes the packet).
    fn witness_holds(&self, c: &Cache, ci: usize, i: usize) -> bool {
        let key = key_of(&c.ids[&self.rs.chains[ci].name], i);
        let Some((p, Some(base))) = c.ctx.witness.get(&key) else {
            return false;
        };
        let Some(b) = self.chain_id(base) else {
            return false;
        };
        walk(self, c, b.0, p, Goal::Match(ci, i), 0) == Walk::Reached
    }

    /// The base chains of the ruleset (indexes).
    fn ctx_bases(&self) -> Vec<usize> {
        (0..self.rs.chains.len())
            .filter(|&c| self.rs.chains[c].base.is_some())
            .collect()
    }

    /// The chains reached from the base chains through jumps that some
    /// packet may take (their judgement is alive or unknown).
    fn ctx_reached(&self, c: &Cache) -> HashSet<String> {
        let mut reached: HashSet<String> = HashSet::new();
        let mut stack: Vec<usize> = self.ctx_bases();
        while let Some(ci) = stack.pop() {
            let ch = &self.rs.chains[ci];
            if !reached.insert(ch.name.clone()) {
                continue;
            }
            let ids = &c.ids[&ch.name];
            for (i, r) in ch.rules.iter().enumerate() {
                let (Action::Jump { target } | Action::Goto { target }) = r.action else {
                    continue;
                };
                if self.rs.chain(target).is_unknown_target() {
                    continue;
                }
                let seen = c.ctx.rules.get(&key_of(ids, i)).map(|x| x.0);
                // A jump not judged yet (its chain is new here) is entered:
                // its chain is judged next and the set computed again.
                if seen.is_none_or(|s| s >= Seen::Unknown) {
                    stack.push(target.0);
                }
            }
        }
        reached
    }

    /// Judge the model rules `want` (chain, rule) in context. `Ok(false)`
    /// when that took a pass over the whole ruleset (everything is then
    /// current).
    fn ctx_judge(
        &self,
        c: &mut Cache,
        want: &HashSet<(usize, usize)>,
        limit: usize,
    ) -> Result<bool, String> {
        // A packet of the rule's match that a first-match walk takes there
        // settles it at once (alive), as the context pass's witnesses do.
        let bases = self.ctx_walk_bases();
        let mut settled = Vec::new();
        for &(ci, i) in want {
            if let Some(w) = self.ctx_find_witness(c, &bases, ci, i) {
                settled.push(((ci, i), w));
            }
        }
        let want: HashSet<(usize, usize)> = if settled.is_empty() {
            want.clone()
        } else {
            let done: HashSet<(usize, usize)> = settled.iter().map(|x| x.0).collect();
            want.iter().copied().filter(|x| !done.contains(x)).collect()
        };
        for ((ci, i), w) in settled {
            let key = key_of(&c.ids[&self.rs.chains[ci].name], i);
            c.ctx.rules.insert(key, (Seen::Alive, Vec::new()));
            c.ctx.witness.insert(key, w);
        }
        let want = &want;
        if want.is_empty() {
            return Ok(true);
        }
        let q: Vec<PBox> = want
            .iter()
            .flat_map(|&(ci, i)| c.boxes[&self.rs.chains[ci].name][i].iter().cloned())
            .collect();
        // Not first-match roots: a rule's judgement reads every rule
        // before it that its packets meet.
        let roots: Vec<Root> = self
            .ctx_bases()
            .into_iter()
            .map(|b| Root::of(b, q.clone(), false))
            .collect();
        let sub = if want.len() > limit {
            None
        } else {
            self.sub_ruleset(c, &roots, limit)
        };
        let Some((sub, orig)) = sub else {
            // Too much would be judged again: the whole ruleset.
            let all: Vec<Root> = (0..self.rs.chains.len()).map(Root::all).collect();
            let (sub, _) = self.sub_ruleset(c, &all, usize::MAX).expect("no limit");
            let engine = Engine::new(&sub, self.u.clone());
            if !engine.loops.is_empty() {
                return Err("chains jump to each other in a loop".into());
            }
            self.context_init(c, &engine);
            return Ok(false);
        };
        let engine = Engine::new(&sub, self.u.clone());
        if !engine.loops.is_empty() {
            return Err("chains jump to each other in a loop".into());
        }
        // Each sub rule's place in its original chain: the kept rules are
        // in order, so the next original rule with the same id and match.
        let place: Vec<Vec<Option<usize>>> = sub
            .chains
            .iter()
            .zip(&orig)
            .map(|(sch, &oc)| {
                let och = &self.rs.chains[oc];
                let ids = &c.ids[&och.name];
                let mut at = 0;
                sch.rules
                    .iter()
                    .map(|sr| {
                        let id = parse_id(&sr.origin.to_string())?;
                        while at < ids.len()
                            && !(ids[at] == id && och.rules[at].matches == sr.matches)
                        {
                            at += 1;
                        }
                        let p = (at < ids.len()).then_some(at);
                        at += 1;
                        p
                    })
                    .collect()
            })
            .collect();
        let opaque_full = self.ctx_opaque();
        let opts = ContextOpts {
            want: Some(&|sc: usize, sr: usize| {
                place[sc][sr].is_some_and(|i| want.contains(&(orig[sc], i)))
            }),
            opaque: Some(orig.iter().map(|&oc| opaque_full[oc]).collect()),
            witnesses: true,
        };
        let ctx = engine.context_pass(ANOMALY_BUDGET, &opts);
        let mut done: HashSet<(usize, usize)> = HashSet::new();
        for (sc, places) in place.iter().enumerate() {
            let oc = orig[sc];
            let ids = &c.ids[&self.rs.chains[oc].name];
            for (sr, p) in places.iter().enumerate() {
                let Some(i) = *p else { continue };
                if !want.contains(&(oc, i)) {
                    continue;
                }
                // No inlining in the sub-ruleset: every inlining's cut is
                // empty, so the rule is dead wherever its chain is reached.
                let seen = match ctx.seen[sc][sr] {
                    Seen::Not => Seen::Dead,
                    s => s,
                };
                let by = ctx
                    .by
                    .get(&(sc as u32, sr as u32))
                    .map(|v| v.iter().map(|r| r.to_string()).collect())
                    .unwrap_or_default();
                let key = key_of(ids, i);
                match ctx.witness.get(&(sc as u32, sr as u32)) {
                    Some((w, b)) if seen == Seen::Alive => {
                        let b = b.map(|b| sub.chains[b].name.clone());
                        c.ctx.witness.insert(key, (w.clone(), b));
                    }
                    _ => {
                        c.ctx.witness.remove(&key);
                    }
                }
                c.ctx.rules.insert(key, (seen, by));
                done.insert((oc, i));
            }
        }
        // Wanted rules the sub-ruleset does not hold match nothing there.
        for &(oc, i) in want {
            if !done.contains(&(oc, i)) {
                let ids = &c.ids[&self.rs.chains[oc].name];
                c.ctx.witness.remove(&key_of(ids, i));
                c.ctx.rules.insert(key_of(ids, i), (Seen::Dead, Vec::new()));
            }
        }
        Ok(true)
    }

    /// The shadowed and redundant rule findings with the context judgement
    /// folded in, as a full `verify` gives them: own-chain findings win, a
    /// rule every model rule of which is dead (in its chain or in context)
    /// is shadowed, a chain never reached is one finding, and a rule dead
    /// in context is not also redundant. Replaces `shadowed`/`redundant`
    /// and `named` (per chain, the rules the findings name, which their
    /// fingerprints read).
    pub(super) fn context_findings(
        &self,
        c: &Cache,
        shadowed: &mut Vec<crate::verify::RuleFinding>,
        redundant: &mut Vec<crate::verify::RuleFinding>,
        named: &mut [Vec<Rule>],
    ) {
        use crate::verify::{DeadReason, RuleFinding};
        shadowed.clear();
        redundant.clear();
        for v in named.iter_mut() {
            v.clear();
        }
        let render = |by: &[String]| -> Vec<String> {
            by.iter()
                .map(|b| self.name_ref(b))
                .filter(|b| parse_id(b).is_none())
                .collect()
        };
        for (ci, ch) in self.rs.chains.iter().enumerate() {
            if ch.is_unknown_target() || ch.rules.is_empty() {
                continue;
            }
            let Some(ids) = c.ids.get(&ch.name) else {
                continue;
            };
            if !c.ctx.reached.contains(&ch.name) {
                let mut by: Vec<String> = Vec::new();
                for caller in &self.rs.chains {
                    if !c.ctx.reached.contains(&caller.name) {
                        continue;
                    }
                    for r in &caller.rules {
                        if let Action::Jump { target } | Action::Goto { target } = r.action {
                            let s = r.origin.to_string();
                            if target.0 == ci && !by.contains(&s) && by.len() < 10 {
                                by.push(s);
                            }
                        }
                    }
                }
                shadowed.push(RuleFinding {
                    rule: ch.rules[0].origin.to_string(),
                    chain: ch.name.clone(),
                    by,
                    reason: Some(DeadReason::NeverReached),
                });
                let first = &ch.rules[0].origin;
                named[ci].extend(ch.rules.iter().take_while(|r| r.origin == *first).cloned());
                continue;
            }
            let mut i = 0;
            while i < ids.len() {
                let mut j = i + 1;
                while j < ids.len() && ids[j] == ids[i] {
                    j += 1;
                }
                let me = ch.rules[i].origin.to_string();
                let own = c.kinds.get(&ids[i]);
                // Synthesized rules are never dead in context (as in verify).
                let synthesized = matches!(ch.rules[i].origin, RuleRef::Policy { .. });
                let dead: Vec<bool> = (i..j)
                    .map(|r| {
                        !synthesized
                            && c.ctx.rules.get(&key_of(ids, r)).map(|x| x.0) == Some(Seen::Dead)
                    })
                    .collect();
                let before = shadowed.len() + redundant.len();
                let finding = |by: Vec<String>, reason| RuleFinding {
                    rule: me.clone(),
                    chain: ch.name.clone(),
                    by,
                    reason,
                };
                match own {
                    Some((Kind::Shadowed, by)) => shadowed.push(finding(render(by), None)),
                    _ if dead.iter().any(|&d| d) && self.ctx_all_dead(c, ci, i, j, &dead) => {
                        let mut by: Vec<String> = Vec::new();
                        for r in i..j {
                            let from_ctx = c.ctx.rules.get(&key_of(ids, r)).map(|x| &x.1);
                            for b in render(from_ctx.map(Vec::as_slice).unwrap_or(&[])) {
                                if b != me && !by.contains(&b) {
                                    by.push(b);
                                }
                            }
                        }
                        shadowed.push(finding(by, Some(DeadReason::Context)));
                    }
                    Some((Kind::Redundant, by)) if !dead.iter().any(|&d| d) => {
                        let mut v = render(by);
                        if v.is_empty() {
                            v.push(format!("return at end of {}", ch.name));
                        }
                        redundant.push(finding(v, None));
                    }
                    _ => {}
                }
                if shadowed.len() + redundant.len() > before {
                    named[ci].extend(ch.rules[i..j].iter().cloned());
                }
                i = j;
            }
        }
    }

    /// Whether every model rule `i..j` of chain `ci` is dead in context
    /// (`dead`) or shadowed in its own chain (asked one by one only for a
    /// source rule of several model rules that are not all dead in context).
    fn ctx_all_dead(&self, c: &Cache, ci: usize, i: usize, j: usize, dead: &[bool]) -> bool {
        if dead.iter().all(|&d| d) {
            return true;
        }
        if j == i + 1 || c.kinds.contains_key(&c.ids[&self.rs.chains[ci].name][i]) {
            // One model rule, or a source rule the own chain calls redundant
            // (no model rule of it shadowed there).
            return false;
        }
        let total: usize = self.rs.chains.iter().map(|ch| ch.rules.len()).sum();
        (i..j).zip(dead).all(|(r, &d)| {
            d || matches!(
                self.judge_whole(c, ci, r, r + 1, total),
                Ok((Kind::Shadowed, _))
            )
        })
    }
}

/// Where a one-packet walk ([`walk`]) ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Walk {
    Accept,
    Drop,
    Reject,
    Return,
    /// It went past the last rule of the chain it started in.
    End,
    /// It got to the rule the [`Goal`] names.
    Reached,
    /// A rule that may or may not match it, or a target the model cannot
    /// follow, is on its way.
    Unsure,
}

/// What a one-packet walk ([`walk`]) looks for besides the packet's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Goal {
    /// Nothing: the walk ends with the packet's fate.
    Fate,
    /// Rule `i` of the chain the walk starts in: `Reached` as soon as the
    /// packet gets there (the own-chain witness check; the packet is one
    /// of the rule's).
    At(usize),
    /// Rule `i` of the chain the walk starts in is passed over, as if it
    /// were removed (the own-chain redundancy check).
    Without(usize),
    /// Rule (chain, rule) wherever the jumps lead: `Reached` when the
    /// packet gets there and matches it (the context witness check).
    Match(usize, usize),
}

/// The first-match walk of the one-packet box `p` through chain `ci` of
/// the verifier's ruleset, jumps and gotos followed as the plans inline
/// them, stopping early as `goal` says. Shared by the own-chain witness
/// checks and the context ones: both ask what one packet does, and a walk
/// is exact only where no rule on the way may or may not match it.
pub(super) fn walk(
    me: &Incremental,
    c: &Cache,
    ci: usize,
    p: &PBox,
    goal: Goal,
    depth: u32,
) -> Walk {
    if depth > 64 {
        return Walk::Unsure;
    }
    let ch = &me.rs.chains[ci];
    let boxes = &c.boxes[&ch.name];
    // Only the rules whose boxes may hold the point, and the one to stop at.
    let mut cands = me.candidates(c, &ch.name, std::slice::from_ref(p));
    let stop = match goal {
        Goal::At(s) | Goal::Without(s) => Some(s),
        Goal::Fate | Goal::Match(..) => None,
    };
    if let Some(s) = stop {
        if let Err(k) = cands.binary_search(&(s as u32)) {
            cands.insert(k, s as u32);
        }
    }
    for i in cands {
        let i = i as usize;
        let r = &ch.rules[i];
        if stop == Some(i) {
            if matches!(goal, Goal::Without(_)) {
                continue;
            }
            return Walk::Reached;
        }
        if !boxes[i].iter().any(|b| b.overlaps(p)) {
            continue;
        }
        // A point with every value of the rarely tested fields is no single
        // packet for a rule that tests them.
        if p.x.is_none() && boxes[i].iter().any(|b| b.x.is_some()) {
            return Walk::Unsure;
        }
        if goal == Goal::Match(ci, i) {
            return Walk::Reached;
        }
        // Opaque parts, marks, address types and the conntrack original
        // tuple: the box may hold packets the rule does not match.
        if !r.matches.opaque.is_empty() || !r.matches.marks.is_empty() || r.matches.has_nat_fields()
        {
            return Walk::Unsure;
        }
        match &r.action {
            Action::Accept => return Walk::Accept,
            Action::Drop => return Walk::Drop,
            Action::Reject { .. } => return Walk::Reject,
            Action::Return => return Walk::Return,
            Action::Continue => {}
            Action::Mark(_) | Action::Nat(_) => return Walk::Unsure,
            Action::Jump { target } | Action::Goto { target } => {
                if me.rs.chain(*target).is_unknown_target() {
                    return Walk::Unsure;
                }
                // Inside the target only a `Match` goal still means anything.
                let inner = match goal {
                    Goal::Match(..) => goal,
                    _ => Goal::Fate,
                };
                match walk(me, c, target.0, p, inner, depth + 1) {
                    Walk::Return | Walk::End => {
                        if matches!(r.action, Action::Goto { .. }) {
                            return Walk::Return;
                        }
                    }
                    w => return w,
                }
            }
        }
    }
    Walk::End
}
