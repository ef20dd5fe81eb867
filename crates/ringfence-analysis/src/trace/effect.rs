//! Which packets a chain can act on, so the walk can pass over jumps that
//! would change nothing.
//!
//! For each chain a jump reaches, computed once when the tracer is built:
//! an over-approximation, one set per header field (addresses of each
//! family, protocol, ports), of the packets for which walking the chain and
//! the chains it calls could do anything but fall back to the caller with
//! the packet's marks and translations as they were. A rule adds its match
//! to that set when it may act: a verdict, a translation, a mark rewrite
//! (when marks are exact fields), a jump to a target the model cannot
//! follow, a rule that may or may not match with any of those actions (it
//! forks the walk), and a jump or goto, cut to its target's set. `RETURN`
//! and rules that only log or count add nothing. A `RETURN` that holds for
//! every packet of one address range (its only test; `! -d NET -j RETURN`
//! and the like) takes that range out of what later rules of the chain can
//! see, per family.
//!
//! A packet outside the target's set takes the jump and comes back as it
//! went, so a jump cut to that set leaves out exactly jumps that change
//! nothing: [`narrowed`] gives those cut matches, which the chain's rule
//! tables index (`Tracer::build`) for the walks that show no path.

use super::{Quick, MAX_DEPTH};
use ringfence_model::interval::Bound;
use ringfence_model::{Action, AddrSet, CtStates, IntervalSet, Match, Ruleset};
use std::rc::Rc;

/// Per header field, the values of the packets a chain may act on (each
/// field on its own: a packet outside one field's set is outside the whole
/// set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Effect {
    src: AddrSet,
    dst: AddrSet,
    proto: IntervalSet<u8>,
    sport: IntervalSet<u16>,
    dport: IntervalSet<u16>,
}

impl Effect {
    /// The indexed fields of `m`, each cut to this effect's.
    fn cut(&self, m: &Match) -> Self {
        Self {
            src: AddrSet {
                v4: m.src.v4.intersect(&self.src.v4),
                v6: m.src.v6.intersect(&self.src.v6),
            },
            dst: AddrSet {
                v4: m.dst.v4.intersect(&self.dst.v4),
                v6: m.dst.v6.intersect(&self.dst.v6),
            },
            proto: m.protocol.intersect(&self.proto),
            sport: m.sport.intersect(&self.sport),
            dport: m.dport.intersect(&self.dport),
        }
    }

    /// Whether every indexed field of `m` is inside this effect's (the cut
    /// would change nothing).
    fn holds(&self, m: &Match) -> bool {
        m.src.v4.is_subset(&self.src.v4)
            && m.src.v6.is_subset(&self.src.v6)
            && m.dst.v4.is_subset(&self.dst.v4)
            && m.dst.v6.is_subset(&self.dst.v6)
            && m.protocol.is_subset(&self.proto)
            && m.sport.is_subset(&self.sport)
            && m.dport.is_subset(&self.dport)
    }
}

/// Ranges of one field gathered from many rules, made canonical once.
struct Acc<T: Bound>(Vec<(T, T)>);

impl<T: Bound> Acc<T> {
    fn add(&mut self, s: &IntervalSet<T>) {
        self.0.extend_from_slice(s.ranges());
    }

    fn set(self) -> IntervalSet<T> {
        IntervalSet::from_ranges(self.0)
    }
}

/// The source and destination ranges of one family that packets still
/// walking a chain can have (after the plain `RETURN`s above).
struct Alive<T: Bound> {
    src: IntervalSet<T>,
    dst: IntervalSet<T>,
}

impl<T: Bound> Alive<T> {
    fn full() -> Self {
        Self {
            src: IntervalSet::full(),
            dst: IntervalSet::full(),
        }
    }

    /// A `RETURN` holding for every packet with a source in `src` and a
    /// destination in `dst` (of this family): when one of the two is every
    /// address, the other range returns, whatever else the packet carries.
    fn returned(&mut self, src: &IntervalSet<T>, dst: &IntervalSet<T>) {
        if src.is_full() {
            self.dst = self.dst.difference(dst);
        } else if dst.is_full() {
            self.src = self.src.difference(src);
        }
    }

    /// Add `src` × `dst`, cut to what is still walking, to the gathered
    /// ranges (nothing when the cut leaves no packet of the family).
    fn add(
        &self,
        src: &IntervalSet<T>,
        dst: &IntervalSet<T>,
        acc_src: &mut Acc<T>,
        acc_dst: &mut Acc<T>,
    ) {
        if src.is_empty() || dst.is_empty() {
            return;
        }
        if self.src.is_full() && self.dst.is_full() {
            // Nothing returned yet (the common case): no cut to make.
            acc_src.add(src);
            acc_dst.add(dst);
            return;
        }
        let s = src.intersect(&self.src);
        let d = dst.intersect(&self.dst);
        if !s.is_empty() && !d.is_empty() {
            acc_src.add(&s);
            acc_dst.add(&d);
        }
    }
}

/// Whether `m` holds for every packet of its address, protocol and port
/// sets, at every stage: it tests nothing else.
fn plain(m: &Match) -> bool {
    // Every field by name: a field added to `Match` must be judged here.
    let Match {
        src: _,
        dst: _,
        protocol: _,
        sport: _,
        dport: _,
        iif,
        oif,
        ct_state,
        marks,
        extra,
        ct_nat,
        ct_orig,
        src_type,
        dst_type,
        iface_types,
        opaque,
    } = m;
    iif.is_any()
        && oif.is_any()
        && *ct_state == CtStates::ALL
        && marks.is_empty()
        && extra.is_none()
        && !ct_nat.is_test()
        && ct_orig.is_none()
        && !src_type.is_test()
        && !dst_type.is_test()
        && iface_types.is_none()
        && opaque.is_empty()
}

/// Whether the walk may fork at a rule with these compact flags: it may or
/// may not match (an opaque part, a rarer field the packet may not give,
/// a test on the connection's translations).
fn may_fork(q: &Quick) -> bool {
    q.flags & (Quick::OPAQUE | Quick::FIELDS | Quick::CONN) != 0
}

/// The chains' effects, computed on demand (targets of jumps only).
struct Effects<'r> {
    rs: &'r Ruleset,
    quick: &'r [Vec<Quick>],
    unknown: &'r [bool],
    marks_exact: bool,
    /// Per chain: not yet asked (`None`), being computed (`Some(None)`,
    /// a call loop when met again), or done.
    memo: Vec<Option<Option<Rc<Effect>>>>,
    /// Per chain whose effect is done: the longest chain of calls below it.
    height: Vec<usize>,
}

impl Effects<'_> {
    /// Chain `c`'s effect, or `None` when a call loop or a call stack
    /// deeper than the walk follows passes through it (the walk then
    /// forks, and nothing may be left out).
    /// (`depth`: how many calls down from where the question started; a
    /// path that long is a stack at least that deep.)
    fn of(&mut self, c: usize, depth: usize) -> Option<Rc<Effect>> {
        match &self.memo[c] {
            Some(Some(e)) => return Some(Rc::clone(e)),
            Some(None) => return None,
            None => {}
        }
        if depth > MAX_DEPTH {
            return None;
        }
        self.memo[c] = Some(None);
        let mut height = 0;
        let rs = self.rs;
        let (mut src4, mut dst4) = (Acc(Vec::new()), Acc(Vec::new()));
        let (mut src6, mut dst6) = (Acc(Vec::new()), Acc(Vec::new()));
        let (mut proto, mut sport, mut dport) = (Acc(Vec::new()), Acc(Vec::new()), Acc(Vec::new()));
        let (mut alive4, mut alive6) = (Alive::<u32>::full(), Alive::<u128>::full());
        for (i, r) in rs.chains[c].rules.iter().enumerate() {
            let m = &r.matches;
            let fork = may_fork(&self.quick[c][i]);
            // What the rule may act on: nothing, its own match, or its
            // match cut to what the chain it calls acts on.
            let mut cut = None;
            let acts = match &r.action {
                Action::Continue => false,
                Action::Mark(_) => self.marks_exact,
                Action::Accept | Action::Drop | Action::Reject { .. } | Action::Nat(_) => true,
                Action::Return => {
                    if !fork
                        && plain(m)
                        && m.protocol.is_full()
                        && m.sport.is_full()
                        && m.dport.is_full()
                    {
                        alive4.returned(&m.src.v4, &m.dst.v4);
                        alive6.returned(&m.src.v6, &m.dst.v6);
                    }
                    fork
                }
                Action::Jump { target } | Action::Goto { target } => {
                    if !self.unknown[target.0] {
                        // Walked even when the jump may fork: its depth
                        // and loops count.
                        let callee = self.of(target.0, depth + 1)?;
                        height = height.max(1 + self.height[target.0]);
                        if height > MAX_DEPTH {
                            return None;
                        }
                        if !fork && !callee.holds(m) {
                            cut = Some(callee.cut(m));
                        }
                    }
                    true
                }
            };
            if acts {
                let (s, d, pr, sp, dp) = match &cut {
                    Some(e) => (&e.src, &e.dst, &e.proto, &e.sport, &e.dport),
                    None => (&m.src, &m.dst, &m.protocol, &m.sport, &m.dport),
                };
                alive4.add(&s.v4, &d.v4, &mut src4, &mut dst4);
                alive6.add(&s.v6, &d.v6, &mut src6, &mut dst6);
                proto.add(pr);
                sport.add(sp);
                dport.add(dp);
            }
        }
        let e = Effect {
            src: AddrSet {
                v4: src4.set(),
                v6: src6.set(),
            },
            dst: AddrSet {
                v4: dst4.set(),
                v6: dst6.set(),
            },
            proto: proto.set(),
            sport: sport.set(),
            dport: dport.set(),
        };
        let e = Rc::new(e);
        self.memo[c] = Some(Some(Rc::clone(&e)));
        self.height[c] = height;
        Some(e)
    }
}

/// The number of values of a field (as a float: an IPv6 set may hold 2^128).
trait Size: Bound {
    fn size(s: &IntervalSet<Self>) -> f64;
}

macro_rules! impl_size {
    ($($t:ty),*) => {$(
        impl Size for $t {
            fn size(s: &IntervalSet<Self>) -> f64 {
                s.ranges().iter().map(|&(lo, hi)| (hi - lo) as f64 + 1.0).sum()
            }
        }
    )*};
}
impl_size!(u8, u16, u32, u128);

/// Take `cut` for the field `own` of a jump when it leaves at most half of
/// its values (setting `any`): a cut that removes little would only add a
/// table to the caller's lookups (a zone chain with a rule on every
/// address but one network still acts on nearly every destination). The
/// jump's own set is kept otherwise, which leaves out fewer jumps, never
/// one that could act.
fn worth<T: Size>(own: &mut IntervalSet<T>, cut: IntervalSet<T>, any: &mut bool) {
    if !own.is_empty() && (cut.is_empty() || T::size(&cut) <= T::size(own) / 2.0) {
        *own = cut;
        *any = true;
    }
}

/// Per chain: the jumps whose match their target's effect cuts, as (rule
/// number, ascending; the match the chain's rule tables should index in
/// place of the rule's own); the whole result `None` when the ruleset has
/// a call loop or a call stack deeper than the walk follows (the walk
/// forks there, and nothing may be left out).
/// `quick` and `unknown` are the tracer's compact matches and unknown
/// targets; `marks_exact` whether mark rewrites are followed.
pub(super) fn narrowed(
    rs: &Ruleset,
    quick: &[Vec<Quick>],
    unknown: &[bool],
    marks_exact: bool,
) -> Option<Vec<Vec<(usize, Match)>>> {
    let mut fx = Effects {
        rs,
        quick,
        unknown,
        marks_exact,
        memo: vec![None; rs.chains.len()],
        height: vec![0; rs.chains.len()],
    };
    // Any loop or over-deep stack anywhere: no cut at all (the depth a
    // chain is entered at depends on its callers).
    for c in 0..rs.chains.len() {
        fx.of(c, 0)?;
    }
    let out = rs
        .chains
        .iter()
        .enumerate()
        .map(|(c, chain)| {
            chain
                .rules
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let Action::Jump { target } = r.action else {
                        return None;
                    };
                    if unknown[target.0] || may_fork(&quick[c][i]) {
                        return None;
                    }
                    let callee = fx.of(target.0, 0)?;
                    if callee.holds(&r.matches) {
                        return None;
                    }
                    let cut = callee.cut(&r.matches);
                    let mut m = r.matches.clone();
                    let mut any = false;
                    worth(&mut m.src.v4, cut.src.v4, &mut any);
                    worth(&mut m.src.v6, cut.src.v6, &mut any);
                    worth(&mut m.dst.v4, cut.dst.v4, &mut any);
                    worth(&mut m.dst.v6, cut.dst.v6, &mut any);
                    worth(&mut m.protocol, cut.proto, &mut any);
                    worth(&mut m.sport, cut.sport, &mut any);
                    worth(&mut m.dport, cut.dport, &mut any);
                    any.then_some((i, m))
                })
                .collect()
        })
        .collect();
    Some(out)
}

#[cfg(test)]
mod tests {
    use crate::Tracer;
    use ringfence_model::{ChainId, IntervalSet, Match, Ruleset};

    fn ruleset(text: &str) -> Ruleset {
        ringfence_parse::parse_ruleset(text, "t.rules", ringfence_parse::RulesetFormat::Auto)
            .expect("parses")
    }

    fn v4(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().expect("IPv4"))
    }

    /// The cut matches of chain `name`'s rules (`None`: the rule's own).
    fn cuts_of(rs: &Ruleset, name: &str) -> Option<Vec<Option<Match>>> {
        let n = rs
            .chains
            .iter()
            .find(|c| c.name == name)
            .expect("chain")
            .rules
            .len();
        let t = Tracer::new(rs);
        let c = rs
            .chains
            .iter()
            .position(|c| c.name == name)
            .expect("chain");
        super::narrowed(rs, &t.quick, &t.unknown, t.marks.exact()).map(|mut v| {
            let mut all = vec![None; n];
            for (i, m) in v.swap_remove(c) {
                all[i] = Some(m);
            }
            all
        })
    }

    #[test]
    fn a_jump_is_cut_to_what_its_target_acts_on_after_one_field_returns() {
        let rs = ruleset(
            "*filter\n:FORWARD DROP [0:0]\n:ZONE - [0:0]\n:QUIET - [0:0]\n\
             -A FORWARD -s 10.0.0.0/16 -j ZONE\n\
             -A FORWARD -s 10.1.0.0/16 -j QUIET\n\
             -A ZONE ! -d 172.16.0.0/14 -j RETURN\n\
             -A ZONE -p udp -m udp --dport 53 -j RETURN\n\
             -A ZONE -j LOG\n\
             -A ZONE -d 172.16.1.0/24 -p tcp -m tcp --dport 443 -j ACCEPT\n\
             -A ZONE ! -d 172.17.0.0/24 -p tcp -m tcp --dport 22 -j DROP\n\
             -A QUIET -d 172.16.0.0/24 -j RETURN\n\
             -A QUIET -j LOG\n\
             COMMIT\n",
        );
        let cuts = cuts_of(&rs, "FORWARD").expect("no loop");
        let zone = cuts[0].as_ref().expect("the jump to ZONE is cut");
        // Source as the jump says; destination: the two rules that act,
        // inside 172.16.0.0/14 (the guard returns every other address).
        assert_eq!(
            zone.src.v4,
            IntervalSet::range(v4("10.0.0.0"), v4("10.0.255.255"))
        );
        let want = IntervalSet::range(v4("172.16.0.0"), v4("172.16.255.255"))
            .union(&IntervalSet::range(v4("172.17.1.0"), v4("172.19.255.255")));
        assert_eq!(zone.dst.v4, want);
        assert_eq!(zone.protocol, IntervalSet::single(6));
        assert_eq!(
            zone.dport,
            IntervalSet::single(22).union(&IntervalSet::single(443))
        );
        // A chain that only returns and logs acts on nothing.
        let quiet = cuts[1].as_ref().expect("the jump to QUIET is cut");
        assert!(quiet.dst.v4.is_empty() && quiet.protocol.is_empty());
        assert_eq!(Tracer::new(&rs).cut_jumps(), 2);
    }

    #[test]
    fn jumps_that_may_fork_or_reach_an_unknown_target_or_a_mark_are_not_cut() {
        let rs = ruleset(
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:M - [0:0]\n\
             -A PREROUTING -j M\n\
             -A M -d 172.16.0.0/24 -j MARK --set-xmark 0x1/0xff\n\
             COMMIT\n\
             *filter\n:FORWARD DROP [0:0]\n:ZONE - [0:0]\n:ODD - [0:0]\n\
             -A FORWARD -m mark --mark 0x1/0xff -j ACCEPT\n\
             -A FORWARD -m statistic --mode random --probability 0.5 -j ZONE\n\
             -A FORWARD -j ODD\n\
             -A ZONE -d 172.16.0.0/24 -j ACCEPT\n\
             -A ODD -m limit --limit 5/min -j RETURN\n\
             COMMIT\n",
        );
        // The jump to M is cut to the marked destination; the jump that
        // may or may not match is left whole, and so is one to a chain
        // whose RETURN may or may not match (it forks the walk).
        let m = cuts_of(&rs, "mangle:PREROUTING").expect("no loop");
        let cut = m[0].as_ref().expect("cut to the marked range");
        assert_eq!(
            cut.dst.v4,
            IntervalSet::range(v4("172.16.0.0"), v4("172.16.0.255"))
        );
        let f = cuts_of(&rs, "FORWARD").expect("no loop");
        assert!(f[1].is_none() && f[2].is_none(), "{f:?}");
    }

    #[test]
    fn a_call_loop_cuts_nothing() {
        let mut rs = ruleset(
            "*filter\n:FORWARD DROP [0:0]\n:A - [0:0]\n:B - [0:0]\n\
             -A FORWARD -j A\n-A A -j B\n-A B -d 172.16.0.0/24 -j ACCEPT\n\
             COMMIT\n",
        );
        assert!(cuts_of(&rs, "FORWARD").is_some());
        // B jumps back to A: the kernel refuses it, the walk forks there.
        let a = rs.chains.iter().position(|c| c.name == "A").expect("A");
        let b = rs.chains.iter().position(|c| c.name == "B").expect("B");
        let mut back = rs.chains[b].rules[0].clone();
        back.action = ringfence_model::Action::Jump { target: ChainId(a) };
        rs.chains[b].rules.insert(0, back);
        assert!(cuts_of(&rs, "FORWARD").is_none());
        assert_eq!(Tracer::new(&rs).cut_jumps(), 0);
    }
}
