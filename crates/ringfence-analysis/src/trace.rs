//! One packet through a ruleset: a direct first-match walk.
//!
//! This is deliberately independent of the set engine (it never builds a
//! region), so property tests can compare the two. Long chains get a
//! destination index so a walk only looks at rules that can match the
//! packet's destination: that keeps batch tracing fast on 100k-rule rulesets.
//!
//! A rule whose match the model cannot evaluate (an opaque match) may or may
//! not match: the packet goes both ways, and its *outcomes* are those of
//! every branch. The first walk takes the branch in which no such rule
//! matches; only when it met one is the packet walked again, every branch
//! at once: since no branch changes the packet, branches that continue in a
//! chain continue alike, so that walk keeps per chain only the set of
//! outcomes reached so far and whether some branch goes on, and costs about
//! one first-match walk.

use crate::index::DstIndex;
use crate::space::Fam;
use ringfence_model::{Action, ChainId, Hook, Packet, Policy, RuleRef, Ruleset, Verdict};
use serde::Serialize;
use std::net::IpAddr;

/// Chains longer than this get a destination index.
const INDEX_THRESHOLD: usize = 16;
/// Deeper call stacks are treated as a loop (the kernel refuses loops).
const MAX_DEPTH: usize = 128;

/// What one branch of a packet's walk ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Accepted by every base chain of the path.
    Accept,
    /// Dropped.
    Drop,
    /// Rejected.
    Reject,
    /// Reached a target the model cannot follow (DNAT, REDIRECT, a queue,
    /// an unknown extension, a jump loop): anything may happen.
    Unknown,
}

impl Decision {
    /// The name used in JSON and text output.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Drop => "drop",
            Decision::Reject => "reject",
            Decision::Unknown => "unknown",
        }
    }
}

impl From<Verdict> for Decision {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Accept => Decision::Accept,
            Verdict::Drop => Decision::Drop,
            Verdict::Reject => Decision::Reject,
        }
    }
}

/// A packet's verdict over all its outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    /// Every outcome accepts.
    Accept,
    /// Every outcome drops.
    Drop,
    /// Every outcome rejects.
    Reject,
    /// Outcomes differ: a rule the model cannot evaluate decides.
    Depends,
    /// Every outcome is a target the model cannot follow.
    Unknown,
}

impl Overall {
    /// The name used in JSON and text output.
    pub fn name(self) -> &'static str {
        match self {
            Overall::Accept => "accept",
            Overall::Drop => "drop",
            Overall::Reject => "reject",
            Overall::Depends => "depends",
            Overall::Unknown => "unknown",
        }
    }

    /// The overall verdict of a packet's outcomes.
    pub fn of(outcomes: &[RawOutcome]) -> Self {
        let Some(first) = outcomes.first() else {
            return Overall::Unknown;
        };
        if outcomes.iter().any(|o| o.verdict != first.verdict) {
            return Overall::Depends;
        }
        match first.verdict {
            Decision::Accept => Overall::Accept,
            Decision::Drop => Overall::Drop,
            Decision::Reject => Overall::Reject,
            Decision::Unknown => Overall::Unknown,
        }
    }
}

/// One possible outcome of a packet: the end of one or more branches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceOutcome {
    /// What the branch ends in.
    pub verdict: Decision,
    /// The deciding rule or chain policy (for `unknown`: the rule that
    /// jumped to the target the model cannot follow); `None` when no base
    /// chain is on the path.
    pub rule: Option<RuleRef>,
    /// The path the branch took, named by its filter hook (input, forward
    /// or output; see [`Hook::path`]).
    pub path: Hook,
    /// The rewritten destination (`IP:PORT`); always `None` until address
    /// rewrites are modelled (a DNAT is an `unknown` outcome today).
    pub dnat: Option<String>,
    /// The rewritten source (`IP[:PORT]` or `masquerade`); always `None`
    /// until address rewrites are modelled (source NAT continues unseen).
    pub snat: Option<String>,
}

/// An outcome as keys: what [`Tracer::trace_with`] leaves in its scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOutcome {
    /// What the branch ends in.
    pub verdict: Decision,
    /// The deciding `(chain, rule)` key (rule `u32::MAX` for a chain
    /// policy), as [`Tracer::rule_ref`] reads it.
    pub rule: Option<(u32, u32)>,
}

/// The fate of one packet on one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceResult {
    /// Accept, drop or reject in the branch where no rule the model cannot
    /// evaluate matches and targets it cannot follow are passed over (the
    /// one verdict of a packet with one outcome).
    pub verdict: Verdict,
    /// The rules that branch matched, in order (jumps, non-terminal rules,
    /// and the rule or chain policy that decided).
    pub path: Vec<RuleRef>,
    /// True when the packet's outcomes do not all agree on one verdict, or
    /// one is `unknown`: `verdict` may not be what happens.
    pub uncertain: bool,
    /// Every possible outcome, once each (one unless a rule the model
    /// cannot evaluate matched on every modelled field, or the packet
    /// reached a target the model cannot follow).
    pub outcomes: Vec<TraceOutcome>,
    /// The verdict over all outcomes.
    pub overall: Overall,
    /// The rule every outcome names, or, when they name different rules,
    /// the first rule on the way that the model cannot evaluate (where the
    /// branches part).
    pub rule: Option<RuleRef>,
}

/// A ruleset prepared for fast repeated tracing.
pub struct Tracer<'a> {
    rs: &'a Ruleset,
    index: Vec<Option<DstIndex>>,
    /// Per chain, per rule: a compact copy of the match (see [`Quick`]).
    quick: Vec<Vec<Quick>>,
    bases: Vec<(Hook, Vec<ChainId>)>,
    /// Per chain: it stands for a target the model cannot follow.
    unknown: Vec<bool>,
}

/// A rule's IPv4 match in 28 bytes, so the walk over candidate rules reads a
/// dense array instead of the model's rules. Each field holds the hull of
/// the rule's set (`(1, 0)` when the set is empty), so "packet outside a
/// hull" proves the rule does not match. When `EXACT` is set every hull *is*
/// the set and the interfaces are unrestricted, so "inside every hull" proves
/// it matches; otherwise the walk asks the model rule.
#[derive(Debug, Clone, Copy)]
struct Quick {
    src: (u32, u32),
    dst: (u32, u32),
    sport: (u16, u16),
    dport: (u16, u16),
    proto: (u8, u8),
    ct: u8,
    flags: u8,
    /// The first rule of the chain with the same origin: two rules come from
    /// one source rule exactly when their groups are equal.
    group: u32,
}

impl Quick {
    /// Hulls equal the sets and interfaces are unrestricted.
    const EXACT: u8 = 1;
    /// The rule has parts the model cannot evaluate.
    const OPAQUE: u8 = 2;

    fn of(m: &ringfence_model::Match, group: u32) -> Self {
        fn hull<T: ringfence_model::interval::Bound>(
            s: &ringfence_model::IntervalSet<T>,
            none: (T, T),
        ) -> ((T, T), bool) {
            match s.ranges() {
                [] => (none, true),
                [r] => (*r, true),
                [first, .., last] => ((first.0, last.1), false),
            }
        }
        let (src, e1) = hull(&m.src.v4, (1, 0));
        let (dst, e2) = hull(&m.dst.v4, (1, 0));
        let (sport, e3) = hull(&m.sport, (1, 0));
        let (dport, e4) = hull(&m.dport, (1, 0));
        let (proto, e5) = hull(&m.protocol, (1, 0));
        let exact = e1 && e2 && e3 && e4 && e5 && m.iif.is_any() && m.oif.is_any();
        Self {
            src,
            dst,
            sport,
            dport,
            proto,
            ct: m.ct_state.0,
            flags: if exact { Self::EXACT } else { 0 }
                | if m.opaque.is_empty() { 0 } else { Self::OPAQUE },
            group,
        }
    }

    /// Whether an IPv4 packet (addresses as integers) is inside every hull.
    #[inline]
    fn admits(&self, src: u32, dst: u32, p: &Packet) -> bool {
        let within = |(lo, hi): (u32, u32), v: u32| lo <= v && v <= hi;
        within(self.dst, dst)
            && within(self.src, src)
            && self.proto.0 <= p.protocol
            && p.protocol <= self.proto.1
            && self.dport.0 <= p.dport
            && p.dport <= self.dport.1
            && self.sport.0 <= p.sport
            && p.sport <= self.sport.1
            && self.ct & p.ct_state != 0
    }
}

enum Flow {
    Decided(Verdict),
    Return,
}

/// What a chain does with a packet, over all branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Out(Decision, Option<(u32, u32)>),
    Return,
}

type ResSet = smallvec::SmallVec<[Res; 4]>;

fn add(set: &mut ResSet, r: Res) {
    if !set.contains(&r) {
        set.push(r);
    }
}

#[derive(Default)]
struct Walk {
    path: Vec<(u32, u32)>,
    /// The first walk met a rule that may or may not match, a target the
    /// model cannot follow, or a call stack too deep.
    forked: bool,
    /// The first such rule.
    split: Option<(u32, u32)>,
    outcomes: Vec<RawOutcome>,
    buf: Vec<Vec<u32>>,
}

/// Reusable buffers for [`Tracer::trace_with`], and the outcomes of the
/// last packet traced with them.
#[derive(Default)]
pub struct TraceScratch(Walk);

impl TraceScratch {
    /// Every possible outcome of the last packet, once each.
    pub fn outcomes(&self) -> &[RawOutcome] {
        &self.0.outcomes
    }

    /// The verdict over the last packet's outcomes.
    pub fn overall(&self) -> Overall {
        Overall::of(&self.0.outcomes)
    }

    /// The rule every outcome of the last packet names, or, when they
    /// differ, the first rule on its way that the model cannot evaluate.
    pub fn rule(&self) -> Option<(u32, u32)> {
        let o = &self.0.outcomes;
        match o.first() {
            Some(first) if o.iter().all(|x| x.rule == first.rule) => first.rule,
            _ => self.0.split,
        }
    }

    /// Whether the outcomes differ in verdict or one is unknown.
    pub fn uncertain(&self) -> bool {
        !matches!(
            self.overall(),
            Overall::Accept | Overall::Drop | Overall::Reject
        )
    }
}

impl<'a> Tracer<'a> {
    /// Build the per-chain indexes.
    pub fn new(rs: &'a Ruleset) -> Self {
        let index = rs
            .chains
            .iter()
            .map(|c| {
                (c.rules.len() > INDEX_THRESHOLD).then(|| {
                    DstIndex::build(c.rules.iter().enumerate().flat_map(|(i, r)| {
                        let d = &r.matches.dst;
                        let v4 = d.v4.ranges();
                        let v6 = d.v6.ranges();
                        let a = (!v4.is_empty()).then(|| {
                            (
                                Fam::V4,
                                v4[0].0 as u128,
                                v4[v4.len() - 1].1 as u128,
                                i as u32,
                            )
                        });
                        let b = (!v6.is_empty())
                            .then(|| (Fam::V6, v6[0].0, v6[v6.len() - 1].1, i as u32));
                        a.into_iter().chain(b)
                    }))
                })
            })
            .collect();
        let quick = rs
            .chains
            .iter()
            .map(|c| {
                let mut first: std::collections::HashMap<&RuleRef, u32> =
                    std::collections::HashMap::with_capacity(c.rules.len());
                c.rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let group = *first.entry(&r.origin).or_insert(i as u32);
                        Quick::of(&r.matches, group)
                    })
                    .collect()
            })
            .collect();
        Self {
            rs,
            index,
            quick,
            bases: crate::engine::bases_by_hook(rs),
            unknown: rs.chains.iter().map(|c| c.is_unknown_target()).collect(),
        }
    }

    /// The ruleset being traced.
    pub fn ruleset(&self) -> &Ruleset {
        self.rs
    }

    /// Trace one packet on the path `hook` names.
    pub fn trace(&self, hook: Hook, p: &Packet) -> TraceResult {
        let mut scratch = TraceScratch::default();
        let (verdict, _, uncertain) = self.trace_with(hook, p, &mut scratch);
        let w = &scratch.0;
        TraceResult {
            verdict,
            path: w.path.iter().map(|&k| self.rule_ref(k)).collect(),
            uncertain,
            outcomes: w
                .outcomes
                .iter()
                .map(|o| TraceOutcome {
                    verdict: o.verdict,
                    rule: o.rule.map(|k| self.rule_ref(k)),
                    path: hook,
                    dnat: None,
                    snat: None,
                })
                .collect(),
            overall: scratch.overall(),
            rule: scratch.rule().map(|k| self.rule_ref(k)),
        }
    }

    /// The source reference of a `(chain, rule)` key; rule `u32::MAX` is the chain policy.
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

    /// Trace one packet; the path is `(chain, rule)` keys (rule `u32::MAX`
    /// for a chain policy), without consecutive duplicates of one source rule.
    pub fn trace_raw(&self, hook: Hook, p: &Packet) -> (Verdict, Vec<(u32, u32)>, bool) {
        let mut scratch = TraceScratch::default();
        let (v, _, uncertain) = self.trace_with(hook, p, &mut scratch);
        (v, std::mem::take(&mut scratch.0.path), uncertain)
    }

    /// Trace one packet reusing `scratch` (no allocation per packet once
    /// warm): the verdict and deciding rule key of the branch in which no
    /// rule the model cannot evaluate matches, and whether the packet's
    /// outcomes are uncertain ([`TraceResult::uncertain`]). Every outcome is
    /// left in `scratch` ([`TraceScratch::outcomes`]).
    pub fn trace_with(
        &self,
        hook: Hook,
        p: &Packet,
        scratch: &mut TraceScratch,
    ) -> (Verdict, Option<(u32, u32)>, bool) {
        let w = &mut scratch.0;
        w.path.clear();
        w.forked = false;
        w.split = None;
        w.outcomes.clear();
        let bases = self
            .bases
            .iter()
            .find(|(h, _)| *h == hook)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[]);
        let mut verdict = Verdict::Accept;
        for &base in bases {
            let policy = self.rs.chain(base).base.as_ref().map(|b| b.policy);
            match self.eval(base, p, w, 0) {
                Flow::Decided(Verdict::Accept) => continue,
                Flow::Decided(v) => {
                    verdict = v;
                    break;
                }
                Flow::Return => {
                    w.path.push((base.0 as u32, u32::MAX));
                    if policy == Some(Policy::Drop) {
                        verdict = Verdict::Drop;
                        break;
                    }
                }
            }
        }
        let last = w.path.last().copied();
        if w.forked {
            self.branches(bases, p, w);
        } else {
            let rule = last.map(|k| self.group_key(k));
            w.outcomes.push(RawOutcome {
                verdict: verdict.into(),
                rule,
            });
        }
        (verdict, last, scratch.uncertain())
    }

    /// A rule key as outcomes name it: the first model rule of its source
    /// rule (several model rules can share one source rule).
    fn group_key(&self, (c, r): (u32, u32)) -> (u32, u32) {
        match self.quick[c as usize].get(r as usize) {
            Some(q) => (c, q.group),
            None => (c, r),
        }
    }

    /// Every outcome of the packet along `bases`, every branch at once.
    fn branches(&self, bases: &[ChainId], p: &Packet, w: &mut Walk) {
        w.outcomes.clear();
        let push = |w: &mut Walk, verdict: Decision, rule: Option<(u32, u32)>| {
            let o = RawOutcome { verdict, rule };
            if !w.outcomes.contains(&o) {
                w.outcomes.push(o);
            }
        };
        if bases.is_empty() {
            push(w, Decision::Accept, None);
            return;
        }
        for (n, &base) in bases.iter().enumerate() {
            let last = n + 1 == bases.len();
            let policy = self.rs.chain(base).base.as_ref().map(|b| b.policy);
            let results = self.eval_all(base, p, w, 0, None);
            // Whether some branch is accepted by this chain and goes on.
            let mut live = false;
            for r in results {
                let (d, k) = match r {
                    Res::Out(d, k) => (d, k),
                    Res::Return => (
                        if policy == Some(Policy::Drop) {
                            Decision::Drop
                        } else {
                            Decision::Accept
                        },
                        Some((base.0 as u32, u32::MAX)),
                    ),
                };
                if d == Decision::Accept && !last {
                    live = true;
                } else {
                    push(w, d, k);
                }
            }
            if !live {
                break;
            }
        }
    }

    /// Chain `c`'s outcomes for the packet over every branch: decisions with
    /// their deciding rule, and `Return` when some branch falls back to the
    /// caller. `jumper` is the rule that called `c` (it names an unknown
    /// outcome of a call stack that is too deep).
    fn eval_all(
        &self,
        c: ChainId,
        p: &Packet,
        w: &mut Walk,
        depth: usize,
        jumper: Option<(u32, u32)>,
    ) -> ResSet {
        let mut out = ResSet::new();
        if depth > MAX_DEPTH {
            out.push(Res::Out(Decision::Unknown, jumper));
            return out;
        }
        let chain = &self.rs.chains[c.0];
        let quick = &self.quick[c.0];
        let v4 = match (p.src, p.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some((u32::from(s), u32::from(d))),
            _ => None,
        };
        let mut cands = w.buf.pop().unwrap_or_default();
        let n = self.candidates(c, p, &mut cands);
        let indexed = n.is_some();
        let n = n.unwrap_or(chain.rules.len());
        // Whether some branch is still walking this chain.
        let mut live = true;
        #[allow(clippy::needless_range_loop)] // two index sources share one loop
        for k in 0..n {
            let i = if indexed { cands[k] as usize } else { k };
            let q = &quick[i];
            if !self.matches(c, i, v4, p) {
                continue;
            }
            let may_match = q.flags & Quick::OPAQUE != 0;
            let key = (c.0 as u32, q.group);
            // Whether every branch that matched the rule is decided by it.
            let decided = match &chain.rules[i].action {
                Action::Continue => false,
                Action::Accept => {
                    add(&mut out, Res::Out(Decision::Accept, Some(key)));
                    true
                }
                Action::Drop => {
                    add(&mut out, Res::Out(Decision::Drop, Some(key)));
                    true
                }
                Action::Reject { .. } => {
                    add(&mut out, Res::Out(Decision::Reject, Some(key)));
                    true
                }
                Action::Return => {
                    add(&mut out, Res::Return);
                    true
                }
                Action::Jump { target } | Action::Goto { target } => {
                    let goto = matches!(chain.rules[i].action, Action::Goto { .. });
                    if self.unknown[target.0] {
                        add(&mut out, Res::Out(Decision::Unknown, Some(key)));
                        true
                    } else {
                        let mut returns = false;
                        for r in self.eval_all(*target, p, w, depth + 1, Some(key)) {
                            if r == Res::Return && !goto {
                                returns = true;
                            } else {
                                add(&mut out, r);
                            }
                        }
                        !returns
                    }
                }
            };
            // A rule that may not match lets every branch go on as well.
            if decided && !may_match {
                live = false;
                break;
            }
        }
        if live {
            add(&mut out, Res::Return);
        }
        w.buf.push(cands);
        out
    }

    /// The candidate rules of chain `c` for the packet's destination, into
    /// `cands` (ascending): their count, or `None` when the chain has no
    /// index (then every rule is a candidate).
    fn candidates(&self, c: ChainId, p: &Packet, cands: &mut Vec<u32>) -> Option<usize> {
        cands.clear();
        let idx = self.index[c.0].as_ref()?;
        let (fam, d) = match p.dst {
            IpAddr::V4(a) => (Fam::V4, u32::from(a) as u128),
            IpAddr::V6(a) => (Fam::V6, u128::from(a)),
        };
        idx.query_into(fam, d, d, cands);
        cands.sort_unstable();
        Some(cands.len())
    }

    /// Whether rule `i` of chain `c` matches the packet on every modelled
    /// field (`v4`: its addresses when IPv4).
    #[inline]
    fn matches(&self, c: ChainId, i: usize, v4: Option<(u32, u32)>, p: &Packet) -> bool {
        let q = &self.quick[c.0][i];
        match v4 {
            Some((s, d)) => {
                q.admits(s, d, p)
                    && (q.flags & Quick::EXACT != 0
                        || self.rs.chains[c.0].rules[i].matches.matches_fields(p))
            }
            None => self.rs.chains[c.0].rules[i].matches.matches_fields(p),
        }
    }

    fn eval(&self, c: ChainId, p: &Packet, w: &mut Walk, depth: usize) -> Flow {
        if depth > MAX_DEPTH {
            w.forked = true;
            return Flow::Return;
        }
        let chain = &self.rs.chains[c.0];
        let quick = &self.quick[c.0];
        // IPv4 packets take the compact prefilter; IPv6 ones ask the model.
        let v4 = match (p.src, p.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some((u32::from(s), u32::from(d))),
            _ => None,
        };
        let mut cands = w.buf.pop().unwrap_or_default();
        cands.clear();
        let indexed = match &self.index[c.0] {
            Some(idx) => {
                let (fam, d) = match p.dst {
                    IpAddr::V4(a) => (Fam::V4, u32::from(a) as u128),
                    IpAddr::V6(a) => (Fam::V6, u128::from(a)),
                };
                idx.query_into(fam, d, d, &mut cands);
                cands.sort_unstable();
                true
            }
            None => false,
        };
        let n = if indexed {
            cands.len()
        } else {
            chain.rules.len()
        };
        let mut result = Flow::Return;
        #[allow(clippy::needless_range_loop)] // two index sources share one loop
        for k in 0..n {
            let i = if indexed { cands[k] as usize } else { k };
            let q = &quick[i];
            let matched = match v4 {
                Some((s, d)) => {
                    q.admits(s, d, p)
                        && (q.flags & Quick::EXACT != 0 || chain.rules[i].matches.matches_fields(p))
                }
                None => chain.rules[i].matches.matches_fields(p),
            };
            if !matched {
                continue;
            }
            let rule = &chain.rules[i];
            let key = (c.0 as u32, i as u32);
            if q.flags & Quick::OPAQUE != 0 {
                // This walk takes the branch where it does not match; a rule
                // without a verdict changes nothing either way.
                if !matches!(rule.action, Action::Continue) {
                    w.forked = true;
                    w.split.get_or_insert((c.0 as u32, q.group));
                }
                continue;
            }
            let dup = w.path.last().is_some_and(|&(pc, pr)| {
                pc == key.0
                    && quick
                        .get(pr as usize)
                        .is_some_and(|prev| prev.group == q.group)
            });
            if !dup {
                w.path.push(key);
            }
            match &rule.action {
                Action::Accept => {
                    result = Flow::Decided(Verdict::Accept);
                    break;
                }
                Action::Drop => {
                    result = Flow::Decided(Verdict::Drop);
                    break;
                }
                Action::Reject { .. } => {
                    result = Flow::Decided(Verdict::Reject);
                    break;
                }
                Action::Return => break,
                Action::Continue => {}
                Action::Jump { target } | Action::Goto { target } if self.unknown[target.0] => {
                    // A target the model cannot follow: this walk passes
                    // over it (as if its chain's one rule did not match);
                    // its outcome is unknown.
                    w.forked = true;
                    w.split.get_or_insert((c.0 as u32, q.group));
                    if matches!(rule.action, Action::Goto { .. }) {
                        break;
                    }
                }
                Action::Jump { target } => {
                    if let Flow::Decided(v) = self.eval(*target, p, w, depth + 1) {
                        result = Flow::Decided(v);
                        break;
                    }
                }
                Action::Goto { target } => {
                    result = self.eval(*target, p, w, depth + 1);
                    break;
                }
            }
        }
        w.buf.push(cands);
        result
    }
}

/// Trace one packet (builds a [`Tracer`]; for many packets build one and reuse it).
pub fn trace(rs: &Ruleset, hook: Hook, p: &Packet) -> TraceResult {
    Tracer::new(rs).trace(hook, p)
}
