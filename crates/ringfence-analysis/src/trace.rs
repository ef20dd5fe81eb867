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
}

enum Flow {
    Decided(Verdict),
    Return,
}

struct Walk {
    path: Vec<(u32, u32)>,
    uncertain: bool,
    buf: Vec<Vec<u32>>,
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
        Self { rs, index }
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
        let mut w = Walk {
            path: Vec::new(),
            uncertain: false,
            buf: Vec::new(),
        };
        for base in self.rs.base_chains(hook) {
            let policy = self.rs.chain(base).base.as_ref().map(|b| b.policy);
            match self.eval(base, p, &mut w, 0) {
                Flow::Decided(Verdict::Accept) => continue,
                Flow::Decided(v) => return (v, w.path, w.uncertain),
                Flow::Return => {
                    w.path.push((base.0 as u32, u32::MAX));
                    if policy == Some(Policy::Drop) {
                        return (Verdict::Drop, w.path, w.uncertain);
                    }
                }
            }
        }
        (Verdict::Accept, w.path, w.uncertain)
    }

    fn eval(&self, c: ChainId, p: &Packet, w: &mut Walk, depth: usize) -> Flow {
        if depth > MAX_DEPTH {
            w.uncertain = true;
            return Flow::Return;
        }
        let chain = &self.rs.chains[c.0];
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
            let rule = &chain.rules[i];
            if !rule.matches.matches_fields(p) {
                continue;
            }
            if !rule.matches.opaque.is_empty() {
                w.uncertain = true;
                continue;
            }
            let key = (c.0 as u32, i as u32);
            let dup = w.path.last().is_some_and(|&(pc, pr)| {
                pc == key.0
                    && self.rs.chains[pc as usize]
                        .rules
                        .get(pr as usize)
                        .is_some_and(|prev| prev.origin == rule.origin)
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
