//! The same question ringfence's verify answers about a ruleset's filter
//! rules (what does the forward hook accept, which rules can never match),
//! answered the way Batfish does it: every header field as a vector of BDD
//! variables, every rule's match as one BDD, and chains evaluated in order
//! with jumps inlined, each step an exact set operation.
//!
//! It exists to measure the representation choice (docs/engine.md,
//! ARCHITECTURE.md) on the benchmark ruleset, side by side with `ringfence
//! verify` in `bench/bdd-vs-boxes.sh`. IPv4 only (the benchmark ruleset is
//! iptables-save for IPv4); fields: source and destination address, protocol,
//! source and destination port, input and output interface (as atoms: classes
//! of names no rule tells apart), conntrack state. A rule with a match the
//! model cannot evaluate (opaque) is counted and left out.
//!
//! Usage: ringfence-bdd-baseline RULESET [--hook forward]
//! Prints one JSON object: times, BDD sizes and rule counts.

use biodivine_lib_bdd::{Bdd, BddVariable, BddVariableSet};
use ringfence_model::{
    Action, ChainId, CtStates, Hook, IfacePattern, IfaceSet, IntervalSet, Match, Policy, Ruleset,
};
use std::collections::BTreeSet;
use std::time::Instant;

/// One header field: its variables, most significant bit first.
struct Field {
    bits: Vec<BddVariable>,
}

/// Interface names as atoms: one representative name per class of names that
/// every pattern in the ruleset treats alike, plus "no interface".
struct Atoms {
    reps: Vec<Option<String>>,
}

impl Atoms {
    fn new(rs: &Ruleset) -> Self {
        let mut exact = BTreeSet::new();
        let mut prefix = BTreeSet::new();
        for c in &rs.chains {
            for r in &c.rules {
                for set in [&r.matches.iif, &r.matches.oif] {
                    for p in &set.patterns {
                        match p {
                            IfacePattern::Exact(n) => exact.insert(n.clone()),
                            IfacePattern::Prefix(n) => prefix.insert(n.clone()),
                        };
                    }
                }
            }
        }
        // A name's class is fixed by the longest prefix pattern it starts
        // with and by whether it equals an exact name: one representative
        // each, with a character no real name has, plus "no interface" and
        // "a name no pattern mentions".
        let mut reps: Vec<Option<String>> = vec![None, Some("\u{2}".to_string())];
        reps.extend(exact.into_iter().map(Some));
        reps.extend(prefix.into_iter().map(|p| Some(format!("{p}\u{1}"))));
        Self { reps }
    }

    fn matching(&self, set: &IfaceSet) -> Vec<u64> {
        (0..self.reps.len() as u64)
            .filter(|&i| set.matches(self.reps[i as usize].as_deref()))
            .collect()
    }
}

struct Space {
    vars: BddVariableSet,
    src: Field,
    dst: Field,
    proto: Field,
    sport: Field,
    dport: Field,
    iif: Field,
    oif: Field,
    ct: Field,
    atoms: Atoms,
    /// The valid encodings (atom and ct indexes in range).
    domain: Bdd,
}

fn bits_for(n: u64) -> usize {
    (64 - (n.max(2) - 1).leading_zeros()) as usize
}

impl Space {
    fn new(rs: &Ruleset) -> Self {
        let atoms = Atoms::new(rs);
        let ab = bits_for(atoms.reps.len() as u64);
        // Variable order: destination, source, protocol, ports, interfaces,
        // state: addresses first, as most rules split on them.
        let widths = [32, 32, 8, 16, 16, ab, ab, 3];
        let total: usize = widths.iter().sum();
        let vars = BddVariableSet::new_anonymous(total as u16);
        let all = vars.variables();
        let mut at = 0;
        let mut take = |w: usize| {
            let f = Field {
                bits: all[at..at + w].to_vec(),
            };
            at += w;
            f
        };
        let dst = take(32);
        let src = take(32);
        let proto = take(8);
        let sport = take(16);
        let dport = take(16);
        let iif = take(ab);
        let oif = take(ab);
        let ct = take(3);
        let mut s = Space {
            domain: vars.mk_true(),
            vars,
            src,
            dst,
            proto,
            sport,
            dport,
            iif,
            oif,
            ct,
            atoms,
        };
        let n = s.atoms.reps.len() as u64 - 1;
        s.domain = s
            .range(&s.iif, 0, n)
            .and(&s.range(&s.oif, 0, n))
            .and(&s.range(&s.ct, 0, 4));
        s
    }

    /// `lo <= field <= hi`.
    fn range(&self, f: &Field, lo: u64, hi: u64) -> Bdd {
        let w = f.bits.len();
        let (mut le, mut ge) = (self.vars.mk_true(), self.vars.mk_true());
        for (i, &v) in f.bits.iter().enumerate().rev() {
            let bit = (w - 1 - i) as u32;
            let x = self.vars.mk_var(v);
            le = if hi >> bit & 1 == 1 {
                x.not().or(&le)
            } else {
                x.not().and(&le)
            };
            ge = if lo >> bit & 1 == 0 {
                x.or(&ge)
            } else {
                x.and(&ge)
            };
        }
        le.and(&ge)
    }

    fn set<T: ringfence_model::interval::Bound + Into<u64>>(
        &self,
        f: &Field,
        s: &IntervalSet<T>,
    ) -> Bdd {
        let mut out = self.vars.mk_false();
        for &(lo, hi) in s.ranges() {
            out = out.or(&self.range(f, lo.into(), hi.into()));
        }
        out
    }

    fn values(&self, f: &Field, vals: &[u64]) -> Bdd {
        let mut out = self.vars.mk_false();
        for &v in vals {
            out = out.or(&self.range(f, v, v));
        }
        out
    }

    /// The packets a match covers; `None` when it holds an opaque part.
    fn matches(&self, m: &Match) -> Option<Bdd> {
        if !m.opaque.is_empty() {
            return None;
        }
        if m.src.v4.is_empty() || m.dst.v4.is_empty() {
            return Some(self.vars.mk_false());
        }
        let mut b = self.vars.mk_true();
        let mut and = |x: Bdd| b = b.and(&x);
        if !m.dst.v4.is_full() {
            and(self.set(&self.dst, &m.dst.v4));
        }
        if !m.src.v4.is_full() {
            and(self.set(&self.src, &m.src.v4));
        }
        if !m.protocol.is_full() {
            and(self.set(&self.proto, &m.protocol));
        }
        if !m.sport.is_full() {
            and(self.set(&self.sport, &m.sport));
        }
        if !m.dport.is_full() {
            and(self.set(&self.dport, &m.dport));
        }
        if !m.iif.is_any() {
            and(self.values(&self.iif, &self.atoms.matching(&m.iif)));
        }
        if !m.oif.is_any() {
            and(self.values(&self.oif, &self.atoms.matching(&m.oif)));
        }
        if m.ct_state != CtStates::ALL {
            let states: Vec<u64> = [
                CtStates::NEW,
                CtStates::ESTABLISHED,
                CtStates::RELATED,
                CtStates::INVALID,
                CtStates::UNTRACKED,
            ]
            .iter()
            .enumerate()
            .filter(|(_, s)| m.ct_state.contains(**s))
            .map(|(i, _)| i as u64)
            .collect();
            and(self.values(&self.ct, &states));
        }
        Some(b)
    }
}

/// What a chain does with the packets it is given.
struct Outcome {
    accept: Bdd,
    drop: Bdd,
    back: Bdd,
}

struct Walker<'a> {
    rs: &'a Ruleset,
    space: &'a Space,
    /// Per chain, per rule: its match (None: opaque).
    matches: Vec<Vec<Option<Bdd>>>,
    /// Per chain, per rule: whether any packet ever reached and matched it.
    hit: Vec<Vec<bool>>,
    /// Per chain: whether any packet entered it.
    entered: Vec<bool>,
    steps: u64,
}

impl Walker<'_> {
    fn eval(&mut self, c: usize, input: Bdd) -> Outcome {
        let f = self.space.vars.mk_false();
        let mut out = Outcome {
            accept: f.clone(),
            drop: f.clone(),
            back: f,
        };
        if input.is_false() {
            return out;
        }
        self.entered[c] = true;
        let mut rest = input;
        for i in 0..self.rs.chains[c].rules.len() {
            if rest.is_false() {
                break;
            }
            self.steps += 1;
            let Some(m) = self.matches[c][i].clone() else {
                continue;
            };
            let here = m.and(&rest);
            if here.is_false() {
                continue;
            }
            self.hit[c][i] = true;
            let others = rest.and_not(&m);
            match &self.rs.chains[c].rules[i].action {
                Action::Accept => {
                    out.accept = out.accept.or(&here);
                    rest = others;
                }
                Action::Drop | Action::Reject { .. } => {
                    out.drop = out.drop.or(&here);
                    rest = others;
                }
                Action::Return => {
                    out.back = out.back.or(&here);
                    rest = others;
                }
                Action::Continue => {}
                Action::Jump { target } => {
                    let sub = self.eval(target.0, here);
                    out.accept = out.accept.or(&sub.accept);
                    out.drop = out.drop.or(&sub.drop);
                    rest = others.or(&sub.back);
                }
                Action::Goto { target } => {
                    let sub = self.eval(target.0, here);
                    out.accept = out.accept.or(&sub.accept);
                    out.drop = out.drop.or(&sub.drop);
                    out.back = out.back.or(&sub.back);
                    rest = others;
                }
            }
        }
        out.back = out.back.or(&rest);
        out
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: ringfence-bdd-baseline RULESET");
        std::process::exit(2);
    };
    let t0 = Instant::now();
    let text = std::fs::read_to_string(path).expect("read the ruleset");
    let rs = ringfence_parse::parse_ruleset(&text, path, ringfence_parse::RulesetFormat::Auto)
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    let parsed = t0.elapsed();

    let t1 = Instant::now();
    let space = Space::new(&rs);
    let mut opaque = 0usize;
    let matches: Vec<Vec<Option<Bdd>>> = rs
        .chains
        .iter()
        .map(|c| {
            c.rules
                .iter()
                .map(|r| {
                    let m = space.matches(&r.matches);
                    opaque += m.is_none() as usize;
                    m
                })
                .collect()
        })
        .collect();
    let encoded = t1.elapsed();

    let t2 = Instant::now();
    let mut w = Walker {
        rs: &rs,
        space: &space,
        hit: rs
            .chains
            .iter()
            .map(|c| vec![false; c.rules.len()])
            .collect(),
        entered: vec![false; rs.chains.len()],
        matches,
        steps: 0,
    };
    let mut accept = space.vars.mk_false();
    let mut input = space.domain.clone();
    for ChainId(c) in rs.base_chains(Hook::Forward) {
        let out = w.eval(c, input.clone());
        let policy = rs.chains[c].base.as_ref().map(|b| b.policy);
        let passed = match policy {
            Some(Policy::Accept) => out.accept.or(&out.back),
            _ => out.accept,
        };
        // The next base chain on the hook sees what this one accepted.
        accept = passed.clone();
        input = passed;
    }
    let new_conn = accept.and(&space.range(&space.ct, 0, 0));
    let walked = t2.elapsed();

    let mut never = 0usize;
    let mut unreached = 0usize;
    for (c, chain) in rs.chains.iter().enumerate() {
        for (i, _) in chain.rules.iter().enumerate() {
            if !w.entered[c] {
                unreached += 1;
            } else if !w.hit[c][i] && w.matches[c][i].is_some() {
                never += 1;
                if std::env::var_os("LIST").is_some() {
                    eprintln!("never: {:?}", chain.rules[i].origin);
                }
            }
        }
    }
    let rules: usize = rs.chains.iter().map(|c| c.rules.len()).sum();
    println!(
        "{{\"rules\": {rules}, \"chains\": {}, \"variables\": {}, \"parse_s\": {:.3}, \"encode_s\": {:.3}, \"walk_s\": {:.3}, \"analysis_s\": {:.3}, \"rule_steps\": {}, \"accepted_nodes\": {}, \"accepted_new_nodes\": {}, \"rules_never_matching_in_reached_chains\": {never}, \"rules_in_unreached_chains\": {unreached}, \"opaque_rules_left_out\": {opaque}}}",
        rs.chains.len(),
        space.vars.num_vars(),
        parsed.as_secs_f64(),
        encoded.as_secs_f64(),
        walked.as_secs_f64(),
        (encoded + walked).as_secs_f64(),
        w.steps,
        accept.size(),
        new_conn.size(),
    );
}
