//! One packet through a ruleset: a direct first-match walk.
//!
//! This is deliberately independent of the set engine (it never builds a
//! region), so property tests can compare the two. Long chains get a
//! destination index so a walk only looks at rules that can match the
//! packet's destination: that keeps batch tracing fast on 100k-rule rulesets.

use crate::index::DstIndex;
use crate::space::Fam;
use ringfence_model::{Action, ChainId, Hook, Packet, Policy, RuleRef, Ruleset, Verdict};
use serde::Serialize;
use std::net::IpAddr;

/// Chains longer than this get a destination index.
const INDEX_THRESHOLD: usize = 16;
/// Deeper call stacks are treated as a loop (the kernel refuses loops).
const MAX_DEPTH: usize = 128;

/// The fate of one packet on one hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceResult {
    /// Accept, drop or reject.
    pub verdict: Verdict,
    /// The rules the packet matched, in order (jumps, non-terminal rules, and
    /// the rule or chain policy that decided).
    pub path: Vec<RuleRef>,
    /// True when a rule the model cannot evaluate exactly (an opaque match)
    /// matched on every modelled field: the verdict assumes it did not match.
    pub uncertain: bool,
}

/// A ruleset prepared for fast repeated tracing.
pub struct Tracer<'a> {
    rs: &'a Ruleset,
    index: Vec<Option<DstIndex>>,
    /// Per chain, per rule: a compact copy of the match (see [`Quick`]).
    quick: Vec<Vec<Quick>>,
    bases: Vec<(Hook, Vec<ChainId>)>,
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

#[derive(Default)]
struct Walk {
    path: Vec<(u32, u32)>,
    uncertain: bool,
    buf: Vec<Vec<u32>>,
}

/// Reusable buffers for [`Tracer::trace_with`].
#[derive(Default)]
pub struct TraceScratch(Walk);

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
        }
    }

    /// The ruleset being traced.
    pub fn ruleset(&self) -> &Ruleset {
        self.rs
    }

    /// Trace one packet on `hook`.
    pub fn trace(&self, hook: Hook, p: &Packet) -> TraceResult {
        let (verdict, path, uncertain) = self.trace_raw(hook, p);
        TraceResult {
            verdict,
            path: path.into_iter().map(|k| self.rule_ref(k)).collect(),
            uncertain,
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

    /// Trace one packet reusing `scratch` (no allocation per packet once warm):
    /// the verdict, the deciding rule key, and whether it is uncertain.
    pub fn trace_with(
        &self,
        hook: Hook,
        p: &Packet,
        scratch: &mut TraceScratch,
    ) -> (Verdict, Option<(u32, u32)>, bool) {
        let w = &mut scratch.0;
        w.path.clear();
        w.uncertain = false;
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
        (verdict, w.path.last().copied(), w.uncertain)
    }

    fn eval(&self, c: ChainId, p: &Packet, w: &mut Walk, depth: usize) -> Flow {
        if depth > MAX_DEPTH {
            w.uncertain = true;
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
            if q.flags & Quick::OPAQUE != 0 {
                w.uncertain = true;
                continue;
            }
            let rule = &chain.rules[i];
            let key = (c.0 as u32, i as u32);
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
